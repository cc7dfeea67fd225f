"""Real in-process Dagster runs: a feed with a broken structure blocks its downstream assets; a clean feed
passes and lets them run; soft problems warn without blocking."""

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from orchestration.defs.partitions import monthly_partitions
from orchestration.defs.quality.checks import STRUCTURE, WARNINGS, build_quality_definitions
from orchestration.defs.resources import settings_resource
from orchestration.lib.config import get_settings
from orchestration.lib.docs_site import docs_base_url

from .conftest import ae_frame

PARTITION = "2025-03-01"
RAW = dg.AssetKey(["raw", "nhs__ae_attendances"])
SRC = dg.AssetKey(["src", "nhs__ae_attendances"])


def _graph(frame: pd.DataFrame):
    """A stand-in for the feeds stage's raw asset (it writes the given frame) plus a downstream asset."""

    @dg.asset(key=RAW, partitions_def=monthly_partitions)
    def raw(context: dg.AssetExecutionContext, identifiable_db: DuckDBResource) -> None:
        with identifiable_db.get_connection() as con:
            con.execute("CREATE SCHEMA IF NOT EXISTS raw")
            con.register("f", frame)
            con.execute("CREATE OR REPLACE TABLE raw.nhs__ae_attendances AS SELECT * FROM f")

    @dg.asset(key=SRC, deps=[RAW], partitions_def=monthly_partitions)
    def src() -> None:
        return None

    quality = build_quality_definitions(["nhs__ae_attendances"])
    return [raw, src, *quality.asset_checks]


def _run(tmp_path, frame):
    db = tmp_path / "identifiable.duckdb"
    return dg.materialize(_graph(frame), partition_key=PARTITION, raise_on_error=False,
                          resources={"identifiable_db": DuckDBResource(database=str(db)),
                                     "placelink_settings": settings_resource(get_settings())},
                          instance=dg.DagsterInstance.ephemeral())


def _evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _materialized(result) -> set[dg.AssetKey]:
    return {m.asset_key for m in result.get_asset_materialization_events()}


def test_clean_feed_passes_and_downstream_runs(tmp_path):
    result = _run(tmp_path, ae_frame(partition=PARTITION))
    checks = _evaluations(result)
    assert checks[STRUCTURE].passed and checks[WARNINGS].passed
    assert SRC in _materialized(result)
    meta = checks[STRUCTURE].metadata
    assert meta["rows_validated"].value == 40
    # an http:// URL of `placelink docs` (a browser will not open a file:// link from the Dagster UI)
    assert meta["data_docs"].value.startswith(f"{docs_base_url()}/quality/validations/")


@pytest.mark.parametrize("breakage", [
    pytest.param(lambda d: d.drop(columns=["arrival_datetime"]), id="missing-column"),
    pytest.param(lambda d: d.assign(acuity=d["acuity"].astype(str)), id="wrong-type"),
])
def test_broken_structure_blocks_downstream(tmp_path, breakage):
    result = _run(tmp_path, breakage(ae_frame(partition=PARTITION)))
    checks = _evaluations(result)
    assert not checks[STRUCTURE].passed
    assert checks[STRUCTURE].severity == dg.AssetCheckSeverity.ERROR
    assert RAW in _materialized(result)
    assert SRC not in _materialized(result), "a failed blocking check must stop downstream assets"
    assert not result.success
    failed = checks[STRUCTURE].metadata["failed_expectations"].value
    assert "expect_column" in failed


def test_soft_problems_warn_with_masked_samples_and_do_not_block(tmp_path):
    frame = ae_frame(partition=PARTITION)
    frame.loc[[1, 2, 3], "postcode"] = ["sh1 2ab", "SH12AB", "SH12AB"]
    frame.loc[4, "nhs_number"] = "943 476 5918"
    result = _run(tmp_path, frame)
    checks = _evaluations(result)
    assert checks[STRUCTURE].passed
    assert not checks[WARNINGS].passed and checks[WARNINGS].severity == dg.AssetCheckSeverity.WARN
    assert SRC in _materialized(result)
    counts = checks[WARNINGS].metadata["unexpected_counts"].value
    assert counts == {"expect_column_values_to_match_regex:postcode": 3,
                      "expect_column_values_to_be_in_set:_nhs_number_valid": 1}
    samples = checks[WARNINGS].metadata["masked_failing_rows"].value
    text = str(samples)
    assert "SH12AB" not in text and "943 476 5918" not in text and "S*****" in text


def test_scorecard_asset_writes_the_warehouse(tmp_path):
    from orchestration.defs.quality.checks import SCORECARD_KEY

    idz = tmp_path / "identifiable.duckdb"
    con = duckdb.connect(str(idz))
    con.execute("CREATE SCHEMA raw")
    con.register("f", ae_frame(partition=PARTITION))
    con.execute("CREATE TABLE raw.nhs__ae_attendances AS SELECT * FROM f")
    con.close()
    quality = build_quality_definitions(["nhs__ae_attendances"])
    (scorecard,) = quality.assets
    wh = tmp_path / "warehouse.duckdb"
    result = dg.materialize([scorecard], instance=dg.DagsterInstance.ephemeral(),
                            resources={"identifiable_db": DuckDBResource(database=str(idz)),
                                       "warehouse_db": DuckDBResource(database=str(wh)),
                                       "placelink_settings": settings_resource(get_settings())})
    assert result.success
    (m,) = [m for m in result.get_asset_materialization_events() if m.asset_key == SCORECARD_KEY]
    with duckdb.connect(str(wh), read_only=True) as w:
        rows = w.execute("SELECT partner, feed, month, rows_loaded, validity FROM quality.feed_scorecard").fetchall()
    assert [r[:2] + (str(r[2]), r[3], r[4]) for r in rows] == [("nhs", "ae_attendances", PARTITION, 40, 1.0)]
