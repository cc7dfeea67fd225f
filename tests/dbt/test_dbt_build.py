"""dbt on the fixture warehouse: every model builds and its tests pass (session fixture ``dbt_warehouse``);
the marts add up; the published table passes disclosure control; one month rebuilds on its own."""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pytest

from orchestration.lib import dbt_runner
from orchestration.lib.config import get_settings
from orchestration.lib.disclosure import attacker_bounds
from orchestration.lib.errors import PlacelinkError

ARCHITECTURE_MODELS = [
    "intermediate.int_events_joined_to_places", "marts.lsoa_monthly_indicators", "marts.ward_monthly_indicators",
    "marts.msoa_monthly_indicators", "marts.district_monthly_indicators", "marts.lsoa_profile",
    "marts.person_footprint", "marts.household_footprint", "marts.person_monthly_events", "marts.dim_lsoa",
    "marts.dim_ward", "marts.dim_district", "marts.dim_calendar", "published.place_monthly_indicators",
    "staging.stg_police__street_crimes", "staging.stg_nhs__ae_attendances",
]


@pytest.fixture(scope="module")
def con(dbt_warehouse):
    c = duckdb.connect(str(get_settings(home=dbt_warehouse).warehouse_db), read_only=True)
    yield c
    c.close()


def q(con, sql) -> pd.DataFrame:
    return con.execute(sql).df()


def test_every_model_the_later_stages_rely_on_exists(con):
    tables = set(q(con, "select table_schema || '.' || table_name as t from information_schema.tables")["t"])
    assert set(ARCHITECTURE_MODELS) <= tables


def test_lsoa_mart_counts_every_placed_event_and_keeps_zeros(con):
    src = q(con, "select count(*) n from src.nhs__ae_attendances where lsoa_code is not null")["n"].item()
    mart = q(con, "select sum(event_count) n from marts.lsoa_monthly_indicators where indicator='ae_attendances'")
    assert mart["n"].item() == src
    shape = q(con, """select count(*) n, count(distinct lsoa_code) l, count(distinct month) m,
                      count(distinct indicator) i, sum((event_count = 0)::int) zeros
                      from marts.lsoa_monthly_indicators""").iloc[0]
    assert shape["n"] == shape["l"] * shape["m"] * shape["i"] == 12 * 6 * 25
    assert shape["zeros"] > 0
    crimes = q(con, """select sum(case when indicator = 'crimes_total' then event_count else 0 end) total,
                       sum(case when indicator like 'crimes_%' and indicator <> 'crimes_total'
                           then event_count else 0 end) by_group from marts.lsoa_monthly_indicators""").iloc[0]
    assert crimes["total"] == crimes["by_group"] > 0


def test_a_parent_indicator_counts_every_event_of_its_children(con):
    """crimes_total is the seed's parent of every crime type, counted from the hierarchy (seed column parent), not
    from a feed named in SQL: per LSOA and month it is still every placed street crime of the source."""
    diff = q(con, """
        with src as (
            select lsoa_code, event_month as month, count(*) as n from src.police__street_crimes
            where lsoa_code is not null group by all
        )
        select m.lsoa_code, m.month, m.event_count, coalesce(src.n, 0) as n
        from marts.lsoa_monthly_indicators as m
        left join src on m.lsoa_code = src.lsoa_code and m.month = src.month
        where m.indicator = 'crimes_total' and m.event_count <> coalesce(src.n, 0)
    """)
    assert diff.empty, diff.head()
    assert q(con, "select sum(event_count) n from marts.lsoa_monthly_indicators where indicator = 'crimes_total'")[
        "n"].item() > 0


def test_district_total_equals_the_sum_of_its_lsoas_before_suppression(con):
    diff = q(con, """
        select d.district_code, d.month, d.indicator, d.event_count, sum(l.event_count) lsoa_sum
        from marts.district_monthly_indicators d
        join marts.lsoa_monthly_indicators l using (district_code, month, indicator)
        group by all having d.event_count <> sum(l.event_count)""")
    assert diff.empty, diff
    assert q(con, "select count(*) n from marts.district_monthly_indicators")["n"].item() == 2 * 6 * 25


def test_no_published_count_is_between_one_and_four(con):
    bad = q(con, "select * from published.place_monthly_indicators where event_count between 1 and 4")
    assert bad.empty, bad
    stats = q(con, """select sum(is_suppressed::int) hidden, sum((event_count = 0)::int) zeros,
                      sum((rate_per_1000 is not null and event_count is null)::int) rate_without_count
                      from published.place_monthly_indicators""").iloc[0]
    assert stats["hidden"] > 0 and stats["zeros"] > 0 and stats["rate_without_count"] == 0


def test_published_values_are_the_true_values_where_shown(con):
    wrong = q(con, """
        select * from published.place_monthly_indicators p
        join marts.place_indicator_cells c using (geography_level, area_code, month, indicator)
        where not p.is_suppressed and p.event_count <> c.event_count""")
    assert wrong.empty, wrong
    missed = q(con, """
        select * from published.place_monthly_indicators p
        join marts.place_indicator_cells c using (geography_level, area_code, month, indicator)
        where c.is_primary_suppressed and not p.is_suppressed""")
    assert missed.empty, missed


def test_no_suppressed_cell_is_recoverable_from_the_published_margins(con):
    """Solve every published additive relation (linprog) for every suppressed cell of two months: the geography
    margins and the indicator hierarchy (crime types -> crimes_total, from the seed) together."""
    published = q(con, "select * from published.place_monthly_indicators")
    hierarchy = q(con, "select lsoa_code, ward_code, msoa_code, district_code from marts.dim_lsoa")
    months = sorted(published["month"].unique())[:2]
    checked = 0
    for month in months:
        bounds = attacker_bounds(published[published["month"] == month], hierarchy)
        pinned = bounds[bounds["upper"] - bounds["lower"] < 1 - 1e-6]
        assert pinned.empty, f"{month}: recoverable cells\n{pinned}"
        checked += len(bounds)
        assert bounds["indicator"].isin(["crimes_total", "crimes_asb"]).any()
    assert checked > 100


def test_published_files_match_the_published_table(dbt_warehouse, con):
    s = get_settings(home=dbt_warehouse)
    parquet = duckdb.sql(f"select * from '{s.published / 'place_monthly_indicators.parquet'}'").df()
    csv = pd.read_csv(s.published / "place_monthly_indicators.csv")
    table = q(con, "select count(*) n, sum(event_count) s from published.place_monthly_indicators").iloc[0]
    assert len(parquet) == len(csv) == table["n"]
    assert parquet["event_count"].sum() == csv["event_count"].sum() == table["s"]


def test_people_marts_flag_multiple_needs_from_the_latest_twelve_months(con):
    fp = q(con, "select * from marts.person_footprint")
    assert fp["person_key"].is_unique and len(fp) > 100
    assert (fp["multiple_needs_flag"] == (fp["agency_count_12m"] >= 3)).all()
    one = fp.iloc[0]
    events = q(con, f"""select count(distinct agency) n from intermediate.int_events_joined_to_places
                        where person_key = '{one.person_key}'""")["n"].item()
    assert events == one["agency_count"]
    hh = q(con, "select * from marts.household_footprint")
    assert hh["household_key"].is_unique and (hh["people_count"] >= 1).all()


@pytest.mark.parametrize("key", ["person_key", "household_key"])
def test_footprints_agree_with_a_direct_count_of_the_events(con, key):
    """The footprint macro aggregates in two stages (key x agency, then key); every key's figures must equal
    the plain one-pass definition written with DISTINCT aggregates over the events."""
    direct = q(con, f"""
        with e as (
            select *, event_month > (select max(event_month) from intermediate.int_events_joined_to_places)
                                    - interval 12 month as recent
            from intermediate.int_events_joined_to_places where {key} is not null)
        select {key}, string_agg(distinct agency, ', ' order by agency) as agencies_known_to,
               count(distinct agency) as agency_count, count(distinct case when recent then agency end)
                   as agency_count_12m,
               count(*) as events_total, count(*) filter (where recent) as events_12m,
               count(*) filter (where agency = 'health') as health_events_total,
               count(*) filter (where agency = 'police' and recent) as police_events_12m,
               min(event_date) as first_event_date, max(event_date) as last_event_date,
               count(distinct person_key) as people_count
        from e group by 1 order by 1""")
    mart = q(con, f"select * from marts.{key.removesuffix('_key')}_footprint order by {key}")
    assert len(direct) > 50 and list(mart[key]) == list(direct[key])
    columns = ["agencies_known_to", "agency_count", "agency_count_12m", "events_total", "events_12m",
               "health_events_total", "police_events_12m", "first_event_date", "last_event_date"]
    columns += ["people_count"] if key == "household_key" else []
    for column in columns:
        assert (mart[column].astype(str).to_numpy() == direct[column].astype(str).to_numpy()).all(), column


def test_lsoa_profile_ranks_within_district(con):
    prof = q(con, "select * from marts.lsoa_profile where indicator = 'ae_attendances'")
    assert len(prof) == 12
    for _, d in prof.groupby("district_code"):
        top = d.sort_values("rate_per_1000_12m", ascending=False).iloc[0]
        assert top["rank_in_district"] == 1


@pytest.mark.slow
def test_one_month_rebuilds_on_its_own(dbt_warehouse, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(dbt_warehouse, home)
    s = get_settings(home=home)
    with duckdb.connect(str(s.warehouse_db)) as c:
        before = c.execute("""select month, sum(event_count) from marts.lsoa_monthly_indicators
                              where indicator = 'ae_attendances' group by 1 order by 1""").fetchall()
        c.execute("delete from src.nhs__ae_attendances where event_month in ('2025-02-01', '2025-03-01')")
    dbt_runner.build(select=["int_events_joined_to_places+"], month="2025-02", settings=s)
    with duckdb.connect(str(s.warehouse_db), read_only=True) as c:
        after = dict(c.execute("""select month, sum(event_count) from marts.lsoa_monthly_indicators
                                  where indicator = 'ae_attendances' group by 1 order by 1""").fetchall())
    for month, total in before:
        if str(month) == "2025-02-01":
            assert after[month] == 0  # rebuilt from the changed source
        else:
            assert after[month] == total  # untouched, including 2025-03 whose source also changed


def test_a_bad_month_is_refused_before_dbt_runs():
    with pytest.raises(PlacelinkError, match="not a month"):
        dbt_runner.build_args("build", month="2025-3")
    assert dbt_runner.build_args("build", month="2025-03")[-2:] == ["--vars", '{"month": "2025-03-01"}']


def test_build_without_a_warehouse_says_what_to_run(tmp_path):
    with pytest.raises(PlacelinkError, match="pseudonymise"):
        dbt_runner.build(settings=get_settings(home=tmp_path / "empty"))


def test_every_model_and_column_is_documented():
    import json

    manifest = json.loads(dbt_runner.ensure_manifest().read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert len(models) >= 30
    undocumented = [n["name"] for n in models if not n["description"].strip()]
    assert not undocumented
    blank_columns = [f"{n['name']}.{c}" for n in models for c, col in n["columns"].items()
                     if not col["description"].strip()]
    assert not blank_columns
    no_columns = [n["name"] for n in models if not n["columns"]]
    assert not no_columns


@pytest.mark.slow
def test_dbt_docs_generate_writes_a_catalog_of_the_warehouse(dbt_warehouse, tmp_path):
    import json
    import shutil

    # on a copy: other tests of this session hold read-only connections to the shared warehouse, and DuckDB
    # refuses a second configuration of the same file in one process
    home = tmp_path / "home"
    shutil.copytree(dbt_warehouse, home)
    target = dbt_runner.docs_generate(get_settings(home=home))
    catalog = json.loads((target / "catalog.json").read_text())
    node = catalog["nodes"]["model.placelink.lsoa_monthly_indicators"]
    assert {"lsoa_code", "month", "indicator", "event_count", "rate_per_1000"} <= {c.lower() for c in node["columns"]}
    assert (target / "index.html").exists()
    assert "model.placelink.lsoa_monthly_indicators" in (target / "static_index.html").read_text()  # --static
