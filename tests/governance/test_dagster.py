"""The governance jobs run in process through Dagster and are scheduled."""

from __future__ import annotations

import duckdb
import pytest

from orchestration.defs.governance import (
    defs,
    governance_audit_check_job,
    governance_retention_job,
)
from orchestration.lib.governance.audit import read_events, record_event

from .conftest import TODAY


def test_retention_job_deletes_expired_rows(zone_home, monkeypatch):
    s = zone_home["settings"]
    monkeypatch.setenv("PLACELINK_HOME", str(s.home))
    cfg = {"today": str(TODAY), "feeds_dir": str(zone_home["feeds_dir"])}
    result = governance_retention_job.execute_in_process(run_config={"ops": {
        name: {"config": cfg} for name in ("governance_retention_identifiable", "governance_retention_warehouse",
                                            "governance_retention_landing")}})
    assert result.success
    assert result.output_for_node("governance_retention_identifiable") > 0
    con = duckdb.connect(str(s.identifiable_db), read_only=True)
    assert con.execute("SELECT count(*) FROM raw.police__person_records").fetchone()[0] == 2
    con.close()
    assert {e["target"] for e in read_events(s, action="retention")} == {"identifiable", "warehouse", "landing"}


def test_audit_check_job_fails_on_tampering(tmp_path, monkeypatch):
    monkeypatch.setenv("PLACELINK_HOME", str(tmp_path / "home"))
    from orchestration.lib.config import get_settings

    s = get_settings()
    record_event(s, action="ingest", target="raw.x")
    record_event(s, action="ingest", target="raw.y")
    assert governance_audit_check_job.execute_in_process().success
    con = duckdb.connect(str(s.audit_db))
    con.execute("UPDATE audit_log SET target = 'raw.z' WHERE seq = 1")
    con.close()
    with pytest.raises(Exception, match="TAMPERED"):
        governance_audit_check_job.execute_in_process()


def test_schedules_are_weekly_and_daily():
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["governance_retention_schedule"].cron_schedule == "0 4 * * 0"
    assert schedules["governance_audit_check_schedule"].execution_timezone == "Europe/London"
