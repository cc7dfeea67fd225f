"""Findings of the review of the integration branch (c0357e8..e-review): each test fails on the defect it names.

Kept small (seconds each): they call the asset, sensor or function at fault directly, not a refresh.
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource


# --- (4) settings / home confusion ------------------------------------------------------------------------------

def test_matching_asset_links_with_the_engine_and_home_of_its_settings_resource_not_the_environments(
        tmp_path, monkeypatch):
    """The runner no longer wraps a run in ``settings.active()``: assets must get everything from their
    ``placelink_settings`` resource. ``linkage.index.update_index`` still calls ``engine.splink_api(con)`` with no
    settings, so Splink's engine and (for Spark) its checkpoint / spill folders -- clear identifiers -- come from
    the process environment: another home's identifiable zone, or ``./.placelink`` when PLACELINK_HOME is unset
    (``PLACELINK_ENGINE=spark placelink refresh --home B``)."""
    from orchestration.defs.matching.assets import build_matching_asset
    from orchestration.defs.resources import settings_resource
    from orchestration.lib.config import get_settings
    from orchestration.lib.contracts import load_contracts
    from orchestration.lib.linkage import engine
    from tests.support.matching_county import make_county, write_home

    home_b, home_a = tmp_path / "b", tmp_path / "a"
    write_home(home_b, make_county(n_people=40, seed=3))
    settings = get_settings(home=home_b, env="local", engine="duckdb")   # what the run was given
    monkeypatch.setenv("PLACELINK_HOME", str(home_a))                    # what the process happens to say
    monkeypatch.setenv("PLACELINK_ENGINE", "spark")
    used: list = []

    def spark_api(con, s):  # stands in for the JVM: records which home's zone it would write checkpoints into
        used.append(s.home)
        raise RuntimeError(f"Spark engine picked up from the environment, checkpoints under {s.home}")

    monkeypatch.setattr(engine, "_spark_api", spark_api)
    asset = build_matching_asset(load_contracts())
    result = dg.materialize([asset], raise_on_error=False, resources={
        "identifiable_db": DuckDBResource(database=str(settings.identifiable_db)),
        "placelink_settings": settings_resource(settings)})
    assert used == [], f"linkage of home {home_b} used the environment's engine and home {used}"
    assert result.success
