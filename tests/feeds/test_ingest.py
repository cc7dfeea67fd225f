"""Ingest: exact quarantine accounting, idempotent reruns, agreements, schema changes, person records."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pytest

from orchestration.lib.config import get_settings
from orchestration.lib.contracts import load_contracts
from orchestration.lib.errors import DataError, PlacelinkError
from orchestration.lib.feeds import ingest, ingest_partition, read_opt_outs
from tests.feeds.conftest import (
    CONTRACTS,
    VISITS_HEADER,
    VISITS_ROWS,
    write_attendances,
    write_referrals,
    write_visits,
)


@pytest.fixture(scope="module")
def acme():
    return load_contracts(CONTRACTS)


def _load(home, feed, partition="2025-03-01", **kw):
    with duckdb.connect(str(home / "identifiable.duckdb")) as con:
        return ingest_partition(con, feed, partition, home / "landing", home=home,
                                opt_outs=read_opt_outs(home / "reference"), **kw)


def _q(home, sql, params=None):
    with duckdb.connect(str(home / "identifiable.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_bad_rows_are_quarantined_exactly_and_nothing_is_lost(acme_home, acme):
    write_visits(acme_home)
    res = _load(acme_home, acme.feed("acme", "visits"))
    assert (res.rows_received, res.rows_loaded, res.rows_quarantined) == (7, 3, 4)
    assert res.quarantined_by_reason == {"wrong_column_count": 1, "invalid_date": 1, "bad_encoding": 1,
                                         "national_data_opt_out": 1}
    q = _q(acme_home, "SELECT line, split_part(reason, ':', 1), raw_text, source_file FROM ops.quarantine "
                      "ORDER BY line")
    assert [(r[0], r[1]) for r in q] == [(3, "wrong_column_count"), (4, "invalid_date"), (5, "bad_encoding"),
                                         (7, "national_data_opt_out")]
    # Notes is outside the agreement: redacted by position, or the whole row withheld when fields don't line up
    assert q[0][2].startswith("[withheld: 11 fields where the header has 10")
    assert q[1][2] == "V3;31/02/2025;Ann;Jones;02/02/1970;F;SH1 4EF;;[not in agreement];1"
    assert "\\x81" in q[2][2]                     # the undecodable byte is shown, not lost
    assert q[3][2] is None                        # nothing identifying kept about an opted-out patient
    assert q[0][3] == "landing/acme/visits/2025-03-04.csv"
    # the duplicate row (line 6) is loaded, not quarantined: deduplication belongs to matching
    loaded = _q(acme_home, "SELECT _line, _record_id, forename, dob, score FROM raw.acme__visits ORDER BY _line")
    assert loaded == [(2, "V1", "Zoë", dt.date(1980, 5, 12), 3), (6, "V1", "Zoë", dt.date(1980, 5, 12), 3),
                      (8, "V6", "Ian", dt.date(2000, 5, 5), None)]
    log = _q(acme_home, "SELECT source_file, rows_received, rows_loaded, rows_quarantined, status FROM ops.load_log")
    assert log == [("landing/acme/visits/2025-03-04.csv", 7, 3, 4, "loaded")]


def test_rerun_is_identical(acme_home, acme):
    write_visits(acme_home)
    feed = acme.feed("acme", "visits")
    cols = "* EXCLUDE (_loaded_at)"
    _load(acme_home, feed)
    first = (_q(acme_home, f"SELECT {cols} FROM raw.acme__visits ORDER BY _line"),
             _q(acme_home, "SELECT line, reason, raw_text FROM ops.quarantine ORDER BY line"),
             _q(acme_home, "SELECT * EXCLUDE (\"partition\") FROM link.person_records ORDER BY ALL"))
    _load(acme_home, feed)
    second = (_q(acme_home, f"SELECT {cols} FROM raw.acme__visits ORDER BY _line"),
              _q(acme_home, "SELECT line, reason, raw_text FROM ops.quarantine ORDER BY line"),
              _q(acme_home, "SELECT * EXCLUDE (\"partition\") FROM link.person_records ORDER BY ALL"))
    assert first == second and len(first[0]) == 3
    assert _q(acme_home, "SELECT count(*) FROM ops.load_log")[0][0] == 1


def test_column_outside_the_agreement_never_reaches_a_table(acme_home, acme):
    write_visits(acme_home)
    res = _load(acme_home, acme.feed("acme", "visits"))
    assert res.columns_dropped == ["Notes"]
    cols = [r[0] for r in _q(acme_home, "SELECT column_name FROM information_schema.columns "
                                        "WHERE table_name='acme__visits'")]
    assert "notes" not in cols and "forename" in cols
    for schema, table in _q(acme_home, "SELECT table_schema, table_name FROM information_schema.tables"):
        text = str(_q(acme_home, f'SELECT * FROM "{schema}"."{table}"'))
        assert "SECRET-NOTE" not in text, f"{schema}.{table}"


def test_renamed_column_fails_with_the_difference_and_loads_nothing(acme_home, acme):
    write_visits(acme_home, header=VISITS_HEADER.replace("Postcode", "Post Code"))
    with pytest.raises(PlacelinkError) as err:
        _load(acme_home, acme.feed("acme", "visits"))
    msg = str(err.value)
    assert isinstance(err.value, DataError)  # a bad drop: never retried
    # contract columns by name; the file's own header cells only by position (they can be a person's details)
    assert "missing: ['Postcode']" in msg and "not in the contract: column 7 of the 10-column header" in msg
    assert "looks renamed: column 7 -> 'Postcode'" in msg and "2025-03-04.csv:1" in msg
    assert "Post Code" not in msg
    assert not (acme_home / "identifiable.duckdb").exists() or not _q(
        acme_home, "SELECT * FROM information_schema.tables WHERE table_name='acme__visits'")


def test_empty_file_and_duplicate_file(acme_home, acme):
    feed = acme.feed("acme", "visits")
    first = write_visits(acme_home, "2025-03-04.csv")
    shutil.copy(first, first.with_name("2025-03-20.csv"))           # same content dropped again
    shutil.copy(first, first.parent / "2025-04-02.csv")             # ... and again next month
    (first.parent / "2025-03-25.csv").write_bytes(b"")              # an empty drop
    res = _load(acme_home, feed)
    assert [(f.source_file.rsplit("/", 1)[1], f.status) for f in res.files] == [
        ("2025-03-04.csv", "loaded"), ("2025-03-20.csv", "duplicate"), ("2025-03-25.csv", "empty")]
    assert res.rows_loaded == 3 and res.rows_quarantined == 4
    april = _load(acme_home, feed, "2025-04-01")
    assert [f.status for f in april.files] == ["duplicate"] and april.rows_received == 0
    assert "2025-03-04.csv" in april.files[0].note
    assert _q(acme_home, "SELECT count(*) FROM raw.acme__visits")[0][0] == 3


def test_expired_agreement_or_missing_lawful_basis_does_not_load(acme_home, acme):
    write_visits(acme_home)
    feed = acme.feed("acme", "visits")
    with pytest.raises(PlacelinkError, match="expired on 2030-12-31"):
        _load(acme_home, feed, today=dt.date(2031, 1, 1))
    no_condition = feed.model_copy(update={"agreement": feed.agreement.model_copy(update={
        "lawful_basis": feed.agreement.lawful_basis.model_copy(update={"dpa_2018_condition": None})})})
    with pytest.raises(PlacelinkError, match="no DPA 2018 condition"):
        _load(acme_home, no_condition)
    no_basis = feed.model_copy(update={"agreement": feed.agreement.model_copy(update={"lawful_basis": None})})
    with pytest.raises(PlacelinkError, match="no lawful basis"):
        _load(acme_home, no_basis)
    assert not (acme_home / "identifiable.duckdb").exists() or not _q(
        acme_home, "SELECT * FROM information_schema.tables WHERE table_name='acme__visits'")


def test_jsonl_and_excel_feeds_and_standard_person_records(acme_home, acme):
    write_visits(acme_home)
    write_attendances(acme_home)
    write_referrals(acme_home)
    report = ingest(get_settings(home=acme_home), feeds_dir=CONTRACTS)
    assert report.ok, report.failures
    by = {r.feed: r for r in report.results}
    assert (by["attendances"].rows_loaded, by["attendances"].rows_quarantined) == (2, 0)
    assert (by["referrals"].rows_received, by["referrals"].rows_loaded) == (3, 1)
    assert by["referrals"].quarantined_by_reason == {"invalid_date": 1, "wrong_column_count": 1}
    people = {r[0]: r[1:] for r in _q(
        acme_home, "SELECT record_id, given_name, family_name, date_of_birth, sex, postcode, nhs_number "
                   "FROM link.person_records")}
    assert people["acme.visits:V1"] == ("ZOE", "O'BRIEN", dt.date(1980, 5, 12), "F", "SH1 2AB", "9434765919")
    assert people["acme.attendances:A1"] == ("ZOE", "O'BRIEN", dt.date(1980, 5, 12), "F", "SH1 2AB", "9434765919")
    assert people["acme.visits:V6"][4] == "SH1 2AB"      # "SH12AB" normalised
    # V1 was sent twice: both rows are in raw, the matching input keeps record_id unique
    assert _q(acme_home, "SELECT count(*), count(DISTINCT record_id) FROM link.person_records") == [(5, 5)]
    assert _q(acme_home, "SELECT count(*) FROM raw.acme__visits WHERE _record_id = 'V1'") == [(2,)]
    assert people["acme.referrals:101"][:2] == ("AMY JO", "CARTER")   # full name split
    assert _q(acme_home, "SELECT arrival_datetime FROM raw.acme__attendances WHERE _record_id='A1'") == [
        (dt.datetime(2025, 3, 2, 10, 0),)]
    # every row accounted for, file by file
    for received, loaded, quarantined in _q(acme_home, "SELECT rows_received, rows_loaded, rows_quarantined "
                                                       "FROM ops.load_log"):
        assert loaded + quarantined == received


def test_preview_masks_identifiers(acme_home, acme):
    write_visits(acme_home)
    md = _load(acme_home, acme.feed("acme", "visits")).preview_markdown
    assert "Zoë" not in md and "O'Brien" not in md and "9434765919" not in md and "943 476 5919" not in md
    assert "1980-••-••" in md and "V1" in md


def _snapshot(home) -> dict:
    """Every table ingest writes, without the load timestamps."""
    return {
        "raw": _q(home, "SELECT * EXCLUDE (_loaded_at) FROM raw.acme__visits ORDER BY _source_file, _line"),
        "quarantine": _q(home, "SELECT * EXCLUDE (quarantined_at) FROM ops.quarantine ORDER BY source_file, line"),
        "load_log": _q(home, "SELECT * EXCLUDE (loaded_at) FROM ops.load_log ORDER BY source_file"),
        "people": _q(home, "SELECT * FROM link.person_records ORDER BY record_id"),
    }


def test_months_parsed_in_worker_processes_load_exactly_what_one_process_loads(acme_home, monkeypatch):
    """A full refresh parses a feed's months side by side (parse_partitions) and writes them one by one: same
    rows, quarantine (reasons, redacted text), load log (a file resent in a later month stays a duplicate) and
    person records as parsing each month while loading it."""
    from orchestration.lib.feeds import load

    for month in range(1, 7):
        rows = [r.replace("/03/2025", f"/{month:02d}/2025").replace("V", f"M{month}V") for r in VISITS_ROWS]
        write_visits(acme_home, name=f"2025-{month:02d}-04.csv", rows=rows)
    shutil.copy(acme_home / "landing/acme/visits/2025-02-04.csv", acme_home / "landing/acme/visits/2025-05-20.csv")
    homes = {}
    for workers in ("1", "2"):
        home = acme_home.parent / f"workers_{workers}"
        shutil.copytree(acme_home, home)
        monkeypatch.setenv("PLACELINK_INGEST_WORKERS", workers)
        monkeypatch.setattr(load, "PARALLEL_MIN_BYTES", 0)
        if workers == "2":
            feed = load_contracts(CONTRACTS).feed("acme", "visits")
            parts = [f"2025-{m:02d}-01" for m in range(1, 7)]
            with load.parse_partitions(feed, parts, home / "landing", home=home,
                                       opt_outs=read_opt_outs(home / "reference")) as parsed:
                assert len(parsed) == 7  # every file goes to the workers
        report = ingest(get_settings(home=home), partner="acme", feed="visits", feeds_dir=CONTRACTS)
        assert report.ok, report.failures
        homes[workers] = _snapshot(home)
    one, two = homes["1"], homes["2"]
    assert len(one["raw"]) == 18 and len(one["quarantine"]) == 24
    assert [r[-2] for r in one["load_log"]].count("duplicate") == 1
    assert one == two


def test_a_schema_change_found_by_a_worker_fails_its_month_with_the_difference(acme_home, acme, monkeypatch):
    from orchestration.lib.feeds import load

    write_visits(acme_home, name="2025-02-04.csv")
    write_visits(acme_home, name="2025-03-04.csv", header=VISITS_HEADER.replace("Surname", "Last Name"))
    monkeypatch.setattr(load, "PARALLEL_MIN_BYTES", 0)
    feed = acme.feed("acme", "visits")
    with load.parse_partitions(feed, ["2025-02-01", "2025-03-01"], acme_home / "landing", home=acme_home,
                               workers=2) as parsed:
        assert len(parsed) == 2
        with pytest.raises(PlacelinkError, match="2025-03-04.csv:1 \\(header\\).*missing: \\['Surname'\\]; "
                                                 "not in the contract: column 4 of the 10-column header"):
            _load(acme_home, feed, "2025-03-01", parsed=parsed)
    # nothing loaded; the refused file is on record (status 'rejected'), not silently gone
    assert _q(acme_home, "SELECT status, count(*) FROM ops.load_log GROUP BY 1") == [("rejected", 1)]
