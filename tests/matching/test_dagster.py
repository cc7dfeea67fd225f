"""The matching assets run in process with Dagster and put the metrics in metadata."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from orchestration.defs.matching.assets import (
    ADDRESS_MATCHES,
    HOUSEHOLD_INDEX,
    PERSON_INDEX,
    build_matching_asset,
)
from orchestration.defs.resources import settings_resource
from orchestration.lib.config import get_settings
from orchestration.lib.contracts import load_contracts
from tests.support.matching_county import make_county, write_home


def test_matching_assets_materialise_with_metrics(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("PLACELINK_HOME", str(home))
    write_home(home, make_county(n_people=300, seed=3))
    settings = get_settings()
    asset = build_matching_asset(load_contracts())
    result = dg.materialize([asset], resources={"identifiable_db": DuckDBResource(
        database=str(settings.identifiable_db)), "placelink_settings": settings_resource(settings)})
    assert result.success
    mats = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert set(mats) == {ADDRESS_MATCHES, PERSON_INDEX, HOUSEHOLD_INDEX}
    assert mats[PERSON_INDEX]["person_f1"].value >= 0.9
    assert mats[ADDRESS_MATCHES]["address_uprn_accuracy"].value >= 0.95
    assert mats[PERSON_INDEX]["mode"].text == "full"

