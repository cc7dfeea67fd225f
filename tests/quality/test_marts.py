"""Mart and published suites on the real dbt output: clean tables pass; identifiers, broken keys and
suppression breaches are blocking; an empty mart warns. A breach blocks publishing in a real Dagster run."""

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from expectations.runner import validate_dataframe
from expectations.suite import load_suite
from orchestration.defs.quality.checks import STRUCTURE, WARNINGS, build_quality_definitions
from orchestration.defs.resources import settings_resource
from orchestration.lib.config import get_settings

MART = "marts__lsoa_monthly_indicators"
PUB = "published__place_monthly_indicators"


@pytest.fixture(scope="module")
def tables(dbt_warehouse):
    out = {}
    with duckdb.connect(str(dbt_warehouse / "warehouse.duckdb"), read_only=True) as con:
        for name in (MART, PUB):
            spec = load_suite(f"expectations/suites/{name}.yml")
            out[name] = (spec, con.execute(f"SELECT * FROM {spec.table}").df())
    return out


def _blocking(result):
    return {(o.expectation, o.column) for o in result.blocking_failures}


def test_dbt_outputs_pass(tables):
    for name, (spec, df) in tables.items():
        result = validate_dataframe(df, spec)
        assert result.success, (name, [(o.expectation, o.column, o.observed_value) for o in result.outcomes
                                       if not o.success])


def _suppressed_row(df):
    rows = df.index[df["is_suppressed"]]
    assert len(rows), "the fixture warehouse publishes at least one suppressed cell"
    return rows[0]


@pytest.mark.parametrize("breach, expected", [
    (lambda d: d.assign(nhs_number="943 476 5919"), ("expect_table_columns_to_match_set", None)),
    (lambda d: pd.concat([d, d.iloc[[0]]], ignore_index=True),
     ("expect_compound_columns_to_be_unique", None)),
    (lambda d: d.assign(area_code=d["area_code"].where(d.index != 0, "SH1 2AB")),
     ("expect_column_values_to_not_match_regex", "area_code")),
])
def test_published_breaches_are_blocking(tables, breach, expected):
    spec, df = tables[PUB]
    assert expected in _blocking(validate_dataframe(breach(df.copy()), spec))


def test_published_suppression_breaches_are_blocking(tables):
    spec, df = tables[PUB]
    df = df.copy()
    row = _suppressed_row(df)
    df["event_count"] = df["event_count"].astype("Int64")
    df.loc[row, "event_count"] = 3            # a small count shown on a row flagged suppressed
    df.loc[row, "rate_per_1000"] = 1.5        # and its rate
    result = validate_dataframe(df, spec)
    assert {("expect_column_values_to_not_be_in_set", "event_count"),
            ("expect_column_values_to_be_null", "event_count"),
            ("expect_column_values_to_be_null", "rate_per_1000")} <= _blocking(result)


def test_mart_breaches(tables):
    spec, df = tables[MART]
    result = validate_dataframe(df.assign(postcode="SH1 2AB"), spec)
    assert ("expect_table_columns_to_match_set", None) in _blocking(result)
    broken = df.copy()
    broken.loc[0, "event_count"] = -1
    assert ("expect_column_values_to_be_between", "event_count") in _blocking(validate_dataframe(broken, spec))
    zeros = validate_dataframe(df.assign(event_count=0), spec)
    assert zeros.passed_blocking
    assert [(o.expectation, o.column) for o in zeros.warnings] == [("expect_column_sum_to_be_between", "event_count")]


def test_a_suppression_breach_blocks_publishing_in_a_real_run(tables, tmp_path):
    spec, df = tables[PUB]
    df = df.copy()
    df["event_count"] = df["event_count"].astype("Int64")
    df.loc[_suppressed_row(df), "event_count"] = 2
    pub_key = dg.AssetKey(["published", "place_monthly_indicators"])
    files_key = dg.AssetKey(["published", "files"])

    @dg.asset(key=pub_key)
    def published(warehouse_db: DuckDBResource) -> None:
        with warehouse_db.get_connection() as con:
            con.execute("CREATE SCHEMA IF NOT EXISTS published")
            con.register("f", df)
            con.execute("CREATE TABLE published.place_monthly_indicators AS SELECT * FROM f")

    @dg.asset(key=files_key, deps=[pub_key])
    def files() -> None:
        return None

    checks = build_quality_definitions([], [spec.asset]).asset_checks
    result = dg.materialize([published, files, *checks], raise_on_error=False,
                            instance=dg.DagsterInstance.ephemeral(),
                            resources={"warehouse_db": DuckDBResource(database=str(tmp_path / "w.duckdb")),
                                       "placelink_settings": settings_resource(get_settings())})
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations[STRUCTURE].passed and evaluations[WARNINGS].passed
    assert files_key not in {m.asset_key for m in result.get_asset_materialization_events()}
