"""Attack: implausible dates (issue #22). One street-crimes row dated ``1900-01`` (and events in 2031) was loaded, the
calendar ran from 1900 (capped at 1,000 months) and every mart and published file lost 2024-2026 while all dbt tests
passed. Now the contract's plausible ranges quarantine such rows at ingest, the calendar and marts are bounded by the
platform's period whatever reaches the warehouse, and a dbt test fails when a mart or the calendar loses months.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import dagster as dg
import duckdb
import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orchestration.defs.resources import settings_resource
from orchestration.lib import dbt_runner
from orchestration.lib.config import get_settings
from orchestration.lib.contracts import load_contracts, validate_contract_data
from orchestration.lib.feeds.coerce import CoerceError

# the names the fix added are imported where used, so the ingest and dbt tests also run (and fail) without it


def _coerce():
    from orchestration.lib.feeds import coerce

    return coerce

DROP = "2026-11-05"
CRIMES_HEADER = ("Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
                 "Crime type,Last outcome category,Context")
# (row, expected reason prefix or None = loaded)
CRIMES = [
    ("c-ok-1,2026-10,Shire,Shire,-1.2,52.6,On or near A Street,E01000001,,Burglary,,", None),
    ("c-ok-2,2026-11,Shire,Shire,-1.2,52.6,On or near A Street,E01000001,,Burglary,,", None),
    ("c-1900,1900-01,Shire,Shire,-1.2,52.6,On or near A Street,E01000001,,Burglary,,",
     "implausible_date: column 'Month' is more than 3 years before the drop date"),
    ("c-2031,2031-01,Shire,Shire,-1.2,52.6,On or near A Street,E01000001,,Burglary,,",
     "implausible_date: column 'Month' is more than 1 day after the drop date"),
    ("c-bad,2026-13,Shire,Shire,-1.2,52.6,On or near A Street,E01000001,,Burglary,,", "invalid_date"),
]
PEOPLE_HEADER = ("record_ref,occurrence_ref,person_ref,role,forename,surname,date_of_birth,gender,address,"
                 "postcode,occurrence_date,offence_group,notes")
PEOPLE = [
    ("p1,OCC/1,N1,victim,Ada,Lovelace,12/05/1980,F,1 Road,SH1 2AB,01/11/2026,theft,", None),
    ("p2,OCC/2,N2,victim,Bea,Plant,12/05/1981,F,1 Road,SH1 2AB,03/03/2031,theft,",
     "implausible_date: column 'occurrence_date' is more than 1 day after the drop date"),
    ("p3,OCC/3,N3,victim,Cy,Plant,17/07/2030,M,1 Road,SH1 2AB,01/11/2026,theft,",
     "implausible_date: column 'date_of_birth' is after the drop date"),
    ("p4,OCC/4,N4,victim,Di,Plant,10/10/2025,F,1 Road,SH1 2AB,01/10/2025,theft,",
     "implausible_date: column 'occurrence_date' is before the date of birth (column 'date_of_birth')"),
    ("p5,OCC/5,N5,victim,Ed,Plant,01/01/1890,M,1 Road,SH1 2AB,01/11/2026,theft,",
     "implausible_date: column 'date_of_birth' is more than 120 years before the drop date"),
]
#: values planted in the hostile rows: a quarantine reason or the CLI output must quote none of them
PLANTED = ["1900-01", "2031", "17/07/2030", "10/10/2025", "01/01/1890", "1890"]


def _write_drops(home) -> None:
    crimes = home / "landing" / "police" / "street_crimes" / f"{DROP}.csv"
    crimes.parent.mkdir(parents=True, exist_ok=True)
    crimes.write_text("\n".join([CRIMES_HEADER, *(r for r, _ in CRIMES)]) + "\n", encoding="utf-8")
    people = home / "landing" / "police" / "person_records" / f"{DROP}.csv"
    people.parent.mkdir(parents=True, exist_ok=True)
    people.write_bytes(("\r\n".join([PEOPLE_HEADER, *(r for r, _ in PEOPLE)]) + "\r\n").encode("windows-1252"))


def _check_outcome(home, expected_by_feed: dict[str, list]) -> None:
    with duckdb.connect(str(home / "identifiable.duckdb"), read_only=True) as con:
        for feed, rows in expected_by_feed.items():
            quarantined = dict(con.execute(
                "select line, reason from ops.quarantine where partner = 'police' and feed = ? order by line",
                [feed]).fetchall())
            want = {i + 2: reason for i, (_, reason) in enumerate(rows) if reason}
            assert set(quarantined) == set(want), feed
            for line, reason in want.items():
                assert quarantined[line].startswith(reason), (feed, line, quarantined[line])
                assert not [p for p in PLANTED if p in quarantined[line]], quarantined[line]
            loaded = con.execute(f"select count(*) from raw.police__{feed}").fetchone()[0]
            received, n_loaded, n_quarantined = con.execute(
                "select sum(rows_received), sum(rows_loaded), sum(rows_quarantined) from ops.load_log "
                "where partner = 'police' and feed = ?", [feed]).fetchone()
            assert (received, n_loaded, n_quarantined) == (len(rows), len(rows) - len(want), len(want))
            assert loaded == n_loaded and n_loaded + n_quarantined == received
        months = con.execute("select distinct month from raw.police__street_crimes order by 1").fetchall()
        assert months == [(dt.date(2026, 10, 1),), (dt.date(2026, 11, 1),)]
        people = {r for (r,) in con.execute("select record_id from link.person_records").fetchall()}
        assert people == {"police.person_records:p1"}  # no implausible person reaches matching


def test_the_1900_crime_and_the_2031_events_are_quarantined_with_a_reason_through_the_cli(tmp_path):
    from orchestration.cli import app

    home = tmp_path / "home"
    _write_drops(home)
    result = CliRunner().invoke(app, ["ingest", "--home", str(home), "--partner", "police"])
    assert result.exit_code == 0, result.output
    assert "implausible_date" in result.output
    assert not [p for p in PLANTED if p in result.output]
    _check_outcome(home, {"street_crimes": CRIMES, "person_records": PEOPLE})


def test_the_same_rows_through_a_dagster_partition_run(tmp_path, monkeypatch):
    from dagster_duckdb import DuckDBResource

    from orchestration.defs.feeds.assets import build_feed_assets

    home = tmp_path / "home"
    _write_drops(home)
    monkeypatch.setenv("PLACELINK_HOME", str(home))
    wanted = {dg.AssetKey(["raw", "police__street_crimes"]), dg.AssetKey(["raw", "police__person_records"])}
    assets = [a for a in build_feed_assets(load_contracts()) if a.key in wanted]
    result = dg.materialize(assets, partition_key="2026-11-01",
                            resources={"identifiable_db": DuckDBResource(database=str(home / "identifiable.duckdb")),
                                       "placelink_settings": settings_resource(get_settings(home=home))})
    assert result.success
    md = result.asset_materializations_for_node("raw__police__street_crimes")[0].metadata
    assert md["quarantined_by_reason"].value == {"implausible_date": 2, "invalid_date": 1}
    assert not [p for p in PLANTED if p in json.dumps({k: str(v.value) for k, v in md.items()})]
    _check_outcome(home, {"street_crimes": CRIMES, "person_records": PEOPLE})


# --- the range check, property-based ----------------------------------------------------------------

UNITS = {"day": "days", "days": "days", "month": "months", "months": "months", "year": "years", "years": "years"}
spans = st.one_of(st.none(), st.tuples(st.integers(0, 400), st.sampled_from(sorted(UNITS))))
dates = st.dates(min_value=dt.date(1700, 1, 1), max_value=dt.date(2300, 12, 31))


def _text(span) -> str | None:
    return None if span is None else f"{span[0]} {span[1]}"


def _oracle(drop: dt.date, span, sign: int) -> dt.date | None:
    """The limit by dateutil (an independent month arithmetic: 29 Feb - 1 year = 28 Feb)."""
    return None if span is None else drop + sign * relativedelta(**{UNITS[span[1]]: span[0]})


def _passes(checks: list, typed: dict) -> bool:
    try:
        _coerce().check_plausible(checks, typed)
        return True
    except CoerceError as exc:
        assert exc.reason.startswith("implausible_date: column 'd' ")
        assert typed["d"].isoformat()[:10] not in exc.reason  # the reason never quotes the value
        return False


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drop=dates, after=spans, before=spans, value=dates, as_datetime=st.booleans())
def test_a_date_passes_exactly_when_it_is_inside_the_range(drop, after, before, value, as_datetime):
    from orchestration.lib.contracts import Plausible

    DateCheck = _coerce().DateCheck  # noqa: N806 - a class
    rule = Plausible(after_drop=_text(after), before_drop=_text(before))
    lo, hi = rule.bounds(drop)
    assert (lo, hi) == (_oracle(drop, before, -1), _oracle(drop, after, 1))
    checks = [DateCheck("d", lo, hi, None, "implausible_date: column 'd' is late",
                        "implausible_date: column 'd' is early", "implausible_date: column 'd' is unborn")]
    typed_value = dt.datetime.combine(value, dt.time(23, 59, 59)) if as_datetime else value
    inside = (lo is None or lo <= value) and (hi is None or value <= hi)
    assert _passes(checks, {"d": typed_value}) == inside
    # the limits themselves are inside; one day beyond either is not
    for edge, beyond in ((lo, -1), (hi, 1)):
        if edge is not None:
            assert _passes(checks, {"d": edge})
            assert not _passes(checks, {"d": edge + dt.timedelta(days=beyond)})
    assert _passes(checks, {"d": None})  # an empty optional date is not implausible


@settings(max_examples=100, deadline=None)
@given(born=dates, event=dates)
def test_an_event_passes_the_birth_check_exactly_when_it_is_not_before_the_birth(born, event):
    DateCheck = _coerce().DateCheck  # noqa: N806 - a class
    checks = [DateCheck("d", None, None, "dob", "", "", "implausible_date: column 'd' is before the date of birth")]
    assert _passes(checks, {"d": event, "dob": born}) == (event >= born)
    assert _passes(checks, {"d": event, "dob": None})


_CRIMES_FEED = load_contracts().feed("police", "street_crimes")


@settings(max_examples=100, deadline=None)
@given(drop=st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2030, 12, 31)), days=st.integers(-2000, 2000))
def test_the_county_contracts_defaults_hold_for_every_drop_date(drop, days):
    """Real contracts, no override: a crime month is plausible from 3 years before the drop to the day after."""
    feed = _CRIMES_FEED
    DateCheck = _coerce().DateCheck  # noqa: N806 - a class
    (check,) = _coerce().date_checks(feed, drop)
    value = drop + dt.timedelta(days=days)
    inside = drop - relativedelta(years=3) <= value <= drop + dt.timedelta(days=1)
    assert _passes([DateCheck("d", check.lo, check.hi, None, "implausible_date: column 'd' late",
                              "implausible_date: column 'd' early", "")], {"d": value}) == inside


def test_the_contract_validates_plausible_keys():
    def feed(columns, person=None):
        data = {"partner": {"id": "acme", "name": "Acme", "owner": "a@b.example"},
                "feeds": [{"id": "visits", "description": "x", "format": {"type": "csv"}, "record_id": "id",
                           "event_date": {"column": "when"}, "columns": columns,
                           **({"person": person} if person else {}),
                           "agreement": {"id": "A", "purposes": ["p"], "allowed_columns": [c["name"] for c in columns],
                                         "retention_months": 1}}]}
        return validate_contract_data(data, "acme.yml")

    ok, problems = feed([{"name": "id"}, {"name": "when", "type": "date",
                                          "plausible": {"before_drop": "18 months", "after_drop": None}},
                         {"name": "dob", "type": "date"}], person={"date_of_birth": "dob"})
    assert not problems
    rules = ok.feeds[0].plausibility()
    # overrides win, the rest is the role's default; null removes a limit
    assert (rules["when"].before_drop, rules["when"].after_drop, rules["when"].not_before_birth) == \
        ("18 months", None, True)
    assert (rules["dob"].after_drop, rules["dob"].before_drop) == ("0 days", "120 years")
    _, problems = feed([{"name": "id", "plausible": {"after_drop": "1 day"}},
                        {"name": "when", "type": "date", "plausible": {"after_drop": "soon"}},
                        {"name": "other", "type": "date", "plausible": {"not_before_birth": True}}])
    text = " ".join(" ".join(p) for p in problems)
    assert "columns[id].plausible" in text and "only used for date and datetime" in text
    assert "'soon' is not a span" in text
    assert "columns[other].plausible.not_before_birth" in text and "maps no date of birth" in text


# --- the warehouse: calendar and marts bounded by the period, months that cannot be lost -----------

def _months(con, table: str, column: str = "month") -> list[dt.date]:
    return [m for (m,) in con.execute(f"select distinct {column} from {table} order by 1").fetchall()]


@pytest.fixture(scope="module")
def out_of_period_build(dbt_warehouse, tmp_path_factory):
    """A copy of the built fixture warehouse with a street crime dated 1900-01 and one in 2031 added to
    ``src.police__street_crimes`` (as if they had slipped past ingest), rebuilt by dbt: the models between that
    source and the LSOA mart and the person mart, with their tests (the whole project would take a minute more)."""
    home = tmp_path_factory.mktemp("plausibility") / "home"
    shutil.copytree(dbt_warehouse, home)
    s = get_settings(home=home, env="local")
    with duckdb.connect(str(s.warehouse_db)) as con:
        before = {t: _months(con, t) for t in ("marts.dim_calendar", "marts.lsoa_monthly_indicators")}
        latest_partition = con.execute("select max(partition_month) from src.police__street_crimes").fetchone()[0]
        for key, day in (("sc-1900", dt.date(1900, 1, 1)), ("sc-2031", dt.date(2031, 1, 1))):
            con.execute("insert into src.police__street_crimes by name select * replace (? as record_key, "
                        "? as event_date, ? as event_month, ? as partition_month) "
                        "from src.police__street_crimes limit 1", [key, day, day, latest_partition])
    select = ["stg_police__street_crimes", "int_events_joined_to_places", "dim_calendar", "lsoa_monthly_indicators",
              "person_monthly_events"]
    result = dbt_runner.run_dbt(dbt_runner.build_args("build", select, full_refresh=True), settings=s,
                                raise_on_failure=False)
    return s, before, result


def test_an_event_outside_the_period_never_stretches_the_calendar_nor_empties_a_mart(out_of_period_build):
    s, before, result = out_of_period_build
    with duckdb.connect(str(s.warehouse_db), read_only=True) as con:
        after = {t: _months(con, t) for t in before}
        assert after == before  # the same months as without the two rows: 2024-11..2025-04 (the LSOA mart's
        # months feed every roll-up and the published table; that they cannot drift is the next test)
        assert len(after["marts.dim_calendar"]) == 6
        assert result.success, result.failures
        from orchestration.lib.config import platform_period

        first, last = platform_period()
        assert all(first <= m <= last for m in after["marts.dim_calendar"])
        assert con.execute("select count(*) from intermediate.int_events_joined_to_places "
                           "where event_key in ('sc-1900', 'sc-2031')").fetchone()[0] == 0
        assert con.execute("select count(*) from marts.person_monthly_events where month < ? or month > ?",
                           [first, last]).fetchone()[0] == 0
    # the two events are left out visibly: the staging model's within_period test warns and counts them
    (warning,) = [r for r in result.results if "within_period_stg_police__street_crimes" in r["unique_id"]]
    assert warning["status"] == "warn" and "Got 2 results" in str(warning["message"])


def _test_results(s, select: list[str]) -> dict[str, str]:
    res = dbt_runner.run_dbt(dbt_runner.build_args("test", select), settings=s, raise_on_failure=False)
    return {r["unique_id"].split(".")[2]: r["status"] for r in res.results}


def test_the_dbt_tests_fail_when_a_mart_or_the_calendar_loses_months(dbt_warehouse, tmp_path):
    """Manipulated builds: a month deleted from the LSOA mart and from the published table, and the calendar
    replaced by the one the 1900 row made (1,000 months from 1900-01, none of 2024-2026)."""
    home = tmp_path / "home"
    shutil.copytree(dbt_warehouse, home)
    s = get_settings(home=home, env="local")
    select = ["dim_calendar", "lsoa_monthly_indicators", "place_monthly_indicators"]
    untouched = _test_results(s, select)
    names = ("same_months_as_lsoa_monthly_indicators", "same_months_as_place_monthly_indicators",
             "covers_event_months_dim_calendar", "within_period_dim_calendar")
    ours = {n: [v for k, v in untouched.items() if k.startswith(n)] for n in names}
    assert all(v == ["pass"] for v in ours.values()), ours

    with duckdb.connect(str(s.warehouse_db)) as con:
        lost = _months(con, "marts.lsoa_monthly_indicators")[2]
        con.execute("delete from marts.lsoa_monthly_indicators where month = ?", [lost])
        con.execute("delete from published.place_monthly_indicators where month = ?", [lost])
    broken = _test_results(s, select)
    assert _status(broken, "same_months_as_lsoa_monthly_indicators") == "fail"
    assert _status(broken, "same_months_as_place_monthly_indicators") == "fail"
    assert _status(broken, "covers_event_months_dim_calendar") == "pass"  # the calendar itself is intact

    with duckdb.connect(str(s.warehouse_db)) as con:
        con.execute("""create or replace table marts.dim_calendar as
            select m.month, cast(date_trunc('year', m.month) as date) as year_start,
                   cast(year(m.month) as integer) as calendar_year, cast(month(m.month) as integer) as month_number,
                   cast(year(m.month) as integer) as financial_year_start,
                   cast(999 - n as integer) as months_before_latest, n = 999 as is_latest_month
            from (select n, cast(date '1900-01-01' + to_months(n) as date) as month from range(1000) t(n)) m""")
    bad_calendar = _test_results(s, ["dim_calendar"])
    assert _status(bad_calendar, "within_period_dim_calendar") == "fail"
    assert _status(bad_calendar, "covers_event_months_dim_calendar") == "fail"


def _status(results: dict[str, str], prefix: str) -> str:
    (status,) = [v for k, v in results.items() if k.startswith(prefix)]
    return status
