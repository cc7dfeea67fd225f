"""src.* tables are updated, not rebuilt, when only some records changed: and the update must equal a rebuild.

Each test changes one input a src row depends on (a new drop, a re-link, an address match, the postcode
directory, a re-sent drop that drops a record) and compares the updated table, row for row, with a table
rebuilt from scratch.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from orchestration.lib.config import get_settings
from orchestration.lib.feeds import ingest, warehouse_sources
from orchestration.lib.feeds.warehouse_sources import (
    IDZ,
    attach_identifiable,
    build_warehouse_source,
    build_warehouse_sources,
    source_build,
)
from orchestration.lib.pseudonymise import pseudonymiser
from tests.feeds.conftest import CONTRACTS, VISITS_ROWS, write_attendances, write_visits

pytestmark = pytest.mark.filterwarnings("ignore::orchestration.lib.pseudonymise.DemoKeyWarning")

VISITS, ATTENDANCES = "acme__visits", "acme__attendances"
LONG_AGO = dt.datetime(2025, 1, 1)


def _link(settings, person: dict[str, str], household: dict[str, str], addresses: dict[str, tuple],
          at: dt.datetime) -> None:
    """Write the link tables as matching does: every row stamped with when its value last changed."""
    with duckdb.connect(str(settings.identifiable_db)) as con:
        for name, col, values in (("person_index", "person_id", person), ("household_index", "household_id",
                                                                           household)):
            con.execute(f"CREATE TABLE IF NOT EXISTS link.{name} (record_id VARCHAR, {col} VARCHAR, "
                        "changed_at TIMESTAMP)")
            for rid, value in values.items():
                con.execute(f"DELETE FROM link.{name} WHERE record_id = ?", [rid])
                con.execute(f"INSERT INTO link.{name} VALUES (?, ?, ?)", [rid, value, at])
        con.execute("CREATE TABLE IF NOT EXISTS link.address_matches (record_id VARCHAR, uprn VARCHAR, "
                    "lsoa_code VARCHAR, match_score DOUBLE, match_method VARCHAR, matched_at TIMESTAMP)")
        for rid, (uprn, lsoa) in addresses.items():
            con.execute("DELETE FROM link.address_matches WHERE record_id = ?", [rid])
            con.execute("INSERT INTO link.address_matches VALUES (?, ?, ?, 1.0, 'exact', ?)", [rid, uprn, lsoa, at])


def _build(settings, feed_name: str, incremental: bool = True) -> tuple[int, dict]:
    from orchestration.lib.contracts import load_contracts

    feed = next(f for f in load_contracts(CONTRACTS).feeds() if f.name == feed_name)
    with duckdb.connect(str(settings.warehouse_db)) as con:
        attach_identifiable(con, settings.identifiable_db)
        rows = build_warehouse_source(con, feed, pseudonymiser(settings), incremental=incremental)
        build = source_build(con, feed)
        con.execute(f"DETACH {IDZ}")
    return rows, build


def _rows(settings, feed_name: str) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        return sorted(con.execute(f"SELECT * FROM src.{feed_name}").fetchall(), key=repr)


def _same_as_a_rebuild(settings, feed_name: str) -> list[tuple]:
    """The updated table's rows, after checking a rebuild from scratch gives exactly the same rows."""
    updated = _rows(settings, feed_name)
    rows, build = _build(settings, feed_name, incremental=False)
    assert build["mode"] == "rebuild" and rows == len(updated)
    assert _rows(settings, feed_name) == updated
    return updated


@pytest.fixture
def linked(acme_home):
    """The acme home loaded, linked (V1 and A1 are one person) and its src tables built once."""
    write_visits(acme_home)
    write_attendances(acme_home)
    (acme_home / "reference" / "postcodes.csv").write_text(
        "postcode,lsoa_code,easting,northing\nSH1 2AB,E01000001,1,2\nSH9 9ZZ,E01000009,3,4\n")
    settings = get_settings(home=acme_home)
    assert ingest(settings, feeds_dir=CONTRACTS).ok
    _link(settings, {"acme.visits:V1": "7", "acme.visits:V6": "9", "acme.attendances:A1": "7",
                     "acme.attendances:A2": "8"},
          {"acme.visits:V1": "H1", "acme.visits:V6": "H2", "acme.attendances:A1": "H1",
           "acme.attendances:A2": "H3"},
          {"acme.visits:V1": ("100", "E01000001"), "acme.attendances:A2": ("200", "E01000009")}, LONG_AGO)
    build_warehouse_sources(settings, feeds_dir=CONTRACTS)
    return settings


def test_first_build_rebuilds_then_an_unchanged_night_updates_nothing(linked):
    with duckdb.connect(str(linked.warehouse_db), read_only=True) as con:
        builds = dict(con.execute("SELECT source_table, reason FROM ops.src_builds").fetchall())
    assert builds == {f"src.{VISITS}": "no earlier build", f"src.{ATTENDANCES}": "no earlier build"}
    before = _rows(linked, VISITS)

    rows, build = _build(linked, VISITS)

    assert (rows, build["mode"], build["records_changed"]) == (2, "update", 0)
    assert _rows(linked, VISITS) == before


def test_a_relinked_record_is_rekeyed_and_the_rest_kept(linked):
    pz = pseudonymiser(linked)
    before = {r[0]: r for r in _rows(linked, ATTENDANCES)}
    _link(linked, {"acme.attendances:A2": "7"}, {"acme.attendances:A2": "H1"}, {}, dt.datetime.now())

    rows, build = _build(linked, ATTENDANCES)

    assert (rows, build["mode"], build["records_changed"]) == (2, "update", 1)
    after = {r[0]: r for r in _same_as_a_rebuild(linked, ATTENDANCES)}
    a2 = pz.token("record", "acme.attendances:A2")
    a1 = pz.token("record", "acme.attendances:A1")
    assert after[a2][1:3] == (pz.token("person", "7"), pz.token("household", "H1"))
    assert after[a1] == before[a1]


def test_a_new_address_match_and_a_new_drop_reach_the_table(linked, monkeypatch):
    monkeypatch.setattr(warehouse_sources, "REBUILD_SHARE", 2.0)  # 3 of 3 records change: update all the same
    _link(linked, {}, {}, {"acme.visits:V6": ("300", "E01000005")}, dt.datetime.now())
    write_visits(linked.home, name="2025-04-02.csv",
                 rows=["V7;01/04/2025;Al;Stone;06/06/1966;M;SH9 9ZZ;;;4", VISITS_ROWS[0]])
    assert ingest(linked, feeds_dir=CONTRACTS, month="2025-04").ok  # only the new month, as a nightly

    rows, build = _build(linked, VISITS)

    # V7 is new, V1 was re-sent in April (its newest copy wins), V6 has a new address match
    assert (rows, build["mode"], build["records_changed"]) == (3, "update", 3)
    after = _same_as_a_rebuild(linked, VISITS)
    by_key = {r[0]: r for r in after}
    pz = pseudonymiser(linked)
    assert by_key[pz.token("record", "acme.visits:V6")][3:5] == (300, "E01000005")
    assert by_key[pz.token("record", "acme.visits:V1")][7] == dt.date(2025, 4, 1)  # partition_month
    assert by_key[pz.token("record", "acme.visits:V7")][4] == "E01000009"  # LSOA from the postcode directory


def test_when_most_records_changed_it_rebuilds(linked):
    _link(linked, {"acme.visits:V1": "70", "acme.visits:V6": "90"}, {}, {}, dt.datetime.now())

    rows, build = _build(linked, VISITS)

    assert (rows, build["mode"], build["reason"]) == (2, "rebuild", "2 records changed, most of the table")
    _same_as_a_rebuild(linked, VISITS)


def test_a_changed_postcode_directory_rebuilds(linked):
    (linked.reference / "postcodes.csv").write_text(
        "postcode,lsoa_code,easting,northing\nSH1 2AB,E01000002,1,2\nSH9 9ZZ,E01000009,3,4\n")
    build_warehouse_sources(linked, feeds_dir=CONTRACTS)  # copies ref.postcodes again, then builds

    rows, build = _build(linked, VISITS)
    assert build["mode"] == "update"  # the directory is unchanged since that build
    with duckdb.connect(str(linked.warehouse_db), read_only=True) as con:
        reasons = dict(con.execute("SELECT source_table, reason FROM ops.src_builds").fetchall())
    assert reasons[f"src.{ATTENDANCES}"] == "the query, key, postcode directory or ethnicity codes changed"
    assert ("E01000002",) in {(r[4],) for r in _rows(linked, ATTENDANCES)}  # A1's LSOA, from SH1 2AB


def test_a_resent_drop_that_drops_a_record(linked, monkeypatch):
    monkeypatch.setattr(warehouse_sources, "REBUILD_SHARE", 2.0)
    pz = pseudonymiser(linked)
    # the March drop is sent again without V6: its month's rows are replaced, so V6 leaves the table
    write_visits(linked.home, rows=[VISITS_ROWS[0]])
    assert ingest(linked, feeds_dir=CONTRACTS, month="2025-03").ok
    rows, build = _build(linked, VISITS)
    assert (rows, build["mode"]) == (1, "update")
    _same_as_a_rebuild(linked, VISITS)

    # V1 is re-sent in April, then April's drop is sent again without it: V1's March copy is its newest again,
    # which the records changed since the last build do not show; the update sees the count is off and rebuilds
    write_visits(linked.home, name="2025-04-02.csv", rows=[VISITS_ROWS[0].replace("SECRET-NOTE-1;3", ";5")])
    assert ingest(linked, feeds_dir=CONTRACTS, month="2025-04").ok
    assert _build(linked, VISITS)[1]["mode"] == "update"
    write_visits(linked.home, name="2025-04-02.csv", rows=["V7;01/04/2025;Al;Stone;06/06/1966;M;SH9 9ZZ;;;4"])
    assert ingest(linked, feeds_dir=CONTRACTS, month="2025-04").ok

    rows, build = _build(linked, VISITS)

    assert (rows, build["mode"], build["reason"]) == (2, "rebuild", "the update left other than one row per "
                                                                    "raw record")
    after = {r[0]: r for r in _same_as_a_rebuild(linked, VISITS)}
    assert after[pz.token("record", "acme.visits:V1")][7] == dt.date(2025, 3, 1)


def test_link_tables_without_change_stamps_always_rebuild(acme_home):
    write_visits(acme_home)
    settings = get_settings(home=acme_home)
    assert ingest(settings, feeds_dir=CONTRACTS).ok
    with duckdb.connect(str(settings.identifiable_db)) as con:  # as written before matching stamped its rows
        con.execute("CREATE TABLE link.person_index AS SELECT 'acme.visits:V1' AS record_id, '7' AS person_id")
    _build(settings, VISITS)

    rows, build = _build(settings, VISITS)

    assert build["mode"] == "rebuild" and "no change stamps" in build["reason"]
