"""Retention deletes only records older than their feed's agreed period, everywhere, and logs it."""

from __future__ import annotations

import duckdb

from orchestration.lib.governance.audit import read_events
from orchestration.lib.governance.retention import apply_retention, cutoff_for

from .conftest import TODAY


def _ids(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(r[0] for r in con.execute(sql).fetchall())
    finally:
        con.close()


def test_cutoff_is_calendar_months():
    assert str(cutoff_for(24, TODAY)) == "2023-12-01"
    assert str(cutoff_for(72, TODAY)) == "2019-12-01"


def test_retention_deletes_only_expired_rows(zone_home):
    s, feeds, keys = zone_home["settings"], zone_home["feeds_dir"], zone_home["keys"]
    result = apply_retention(s, today=TODAY, feeds_dir=feeds)

    # police keeps 72 months: PR-9 (2018) goes; NHS keeps 24 months: AE-2 (2023-11-30) goes, AE-3 (2023-12-01) stays
    assert _ids(s.identifiable_db, "SELECT _record_id FROM raw.police__person_records") == ["PR-1", "PR-2"]
    assert _ids(s.identifiable_db, "SELECT _record_id FROM raw.nhs__ae_attendances") == ["AE-1", "AE-3"]
    assert _ids(s.identifiable_db, "SELECT record_id FROM link.person_index") == [
        "nhs.ae_attendances:AE-1", "nhs.ae_attendances:AE-3", "police.person_records:PR-1",
        "police.person_records:PR-2"]
    assert _ids(s.identifiable_db, "SELECT line FROM ops.quarantine") == [9, 10]        # the 2018 drop's row went
    assert _ids(s.identifiable_db, "SELECT source_file FROM ops.load_log") == ["old.csv"]  # drop log kept
    expired_keys = {keys["police.person_records:PR-9"], keys["nhs.ae_attendances:AE-2"]}
    for table in ("src.police__person_records", "src.nhs__ae_attendances"):
        assert not expired_keys & set(_ids(s.warehouse_db, f"SELECT record_key FROM {table}"))
    assert len(_ids(s.warehouse_db, "SELECT event_key FROM intermediate.int_events_joined_to_places")) == 4
    assert sorted(p.name for p in s.landing.rglob("*.*")) == ["2023-12-04.jsonl", "2025-07-04.csv"]

    by_table: dict = {}
    for d in result.deleted:
        by_table[(d["zone"], d["table"])] = by_table.get((d["zone"], d["table"]), 0) + d["rows"]
    assert by_table[("identifiable", "raw.nhs__ae_attendances")] == 1
    assert by_table[("warehouse", "src.police__person_records")] == 1
    assert by_table[("identifiable", "link.person_records")] == 2   # PR-9 and AE-2, cascaded by record_id
    event = read_events(s, action="retention")[-1]
    assert event["details"]["total"] == result.total and result.total > 0

    again = apply_retention(s, today=TODAY, feeds_dir=feeds)
    assert again.total == 0


def test_dry_run_counts_without_deleting(zone_home):
    s, feeds = zone_home["settings"], zone_home["feeds_dir"]
    result = apply_retention(s, today=TODAY, feeds_dir=feeds, dry_run=True)
    assert result.total > 0
    assert len(_ids(s.identifiable_db, "SELECT _record_id FROM raw.police__person_records")) == 3
    assert len(list(s.landing.rglob("*.*"))) == 4
    assert read_events(s, action="retention_dry_run")
