"""The SQL examples in docs/warehouse.md run against the built warehouse and return sensible rows."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from orchestration.lib.config import get_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "warehouse.md"


def doc_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def results(dbt_warehouse):
    con = duckdb.connect(str(get_settings(home=dbt_warehouse).warehouse_db), read_only=True)
    try:
        yield [con.execute(sql).df() for sql in doc_queries()]
    finally:
        con.close()


def test_the_doc_has_three_questions():
    assert len(doc_queries()) == 3


def test_fastest_rising_social_care_referrals(results):
    top = results[0]
    assert len(top) == 10
    assert top["referrals_trend_per_month"].is_monotonic_decreasing
    assert top["lsoa_code"].str.startswith("E01").all()
    assert top["also_rising"].notna().any()


def test_ae_rates_by_deprivation_decile(results):
    deciles = results[1]
    assert set(deciles["imd_decile"]) <= set(range(1, 11)) and len(deciles) >= 5
    assert (deciles["attendances_per_1000_per_year"] >= 0).all() and deciles["attendances"].sum() > 0
    assert deciles["lsoas"].sum() == 12


def test_multiple_needs_households_by_district(results):
    by_district = results[2]
    assert len(by_district) == 2
    assert (by_district["multiple_needs_households"] <= by_district["households"]).all()
    assert by_district["pct_multiple_needs"].between(0, 100).all()
