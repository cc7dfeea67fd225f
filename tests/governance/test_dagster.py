"""The governance jobs run in process through Dagster and are scheduled."""

from __future__ import annotations

import os
import pwd

import dagster as dg
import duckdb
import pytest

from orchestration.defs.governance import (
    defs,
    governance_audit_check_job,
    governance_retention_job,
)
from orchestration.defs.resources import settings_resource
from orchestration.lib.config import get_settings
from orchestration.lib.governance.audit import read_events, record_event

from .conftest import TODAY


def _bound(settings) -> dict:
    """The governance ops and sensors take the home from the ``placelink_settings`` resource, as every asset does."""
    return {"placelink_settings": settings_resource(settings)}


@pytest.fixture
def decoy(tmp_path, monkeypatch):
    """PLACELINK_HOME names another home: what the jobs and sensors do must follow the bound resource, not it."""
    home = tmp_path / "decoy"
    monkeypatch.setenv("PLACELINK_HOME", str(home))
    yield home
    assert not (home / "audit.duckdb").exists()  # nothing audited in the environment's home


def test_retention_job_deletes_expired_rows(zone_home, decoy):
    s = zone_home["settings"]
    cfg = {"today": str(TODAY), "feeds_dir": str(zone_home["feeds_dir"])}
    result = governance_retention_job.execute_in_process(run_config={"ops": {
        name: {"config": cfg} for name in ("governance_retention_identifiable", "governance_retention_warehouse",
                                            "governance_retention_landing")}}, resources=_bound(s))
    assert result.success
    assert result.output_for_node("governance_retention_identifiable") > 0
    con = duckdb.connect(str(s.identifiable_db), read_only=True)
    assert con.execute("SELECT count(*) FROM raw.police__person_records").fetchone()[0] == 2
    con.close()
    assert {e["target"] for e in read_events(s, action="retention")} == {"identifiable", "warehouse", "landing"}


def test_audit_check_job_fails_on_tampering(tmp_path, decoy):
    s = get_settings(home=tmp_path / "home")
    record_event(s, action="ingest", target="raw.x")
    record_event(s, action="ingest", target="raw.y")
    assert governance_audit_check_job.execute_in_process(resources=_bound(s)).success
    con = duckdb.connect(str(s.audit_db))
    con.execute("UPDATE audit_log SET target = 'raw.z' WHERE seq = 1")
    con.close()
    with pytest.raises(Exception, match="TAMPERED"):
        governance_audit_check_job.execute_in_process(resources=_bound(s))


def test_schedules_are_weekly_and_daily():
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["governance_retention_schedule"].cron_schedule == "0 4 * * 0"
    assert schedules["governance_audit_check_schedule"].execution_timezone == "Europe/London"


def test_audit_sensor_records_every_materialisation_of_a_run(zone_home, monkeypatch, decoy):
    from orchestration.defs.governance import governance_audit_sensor

    s = zone_home["settings"]
    monkeypatch.setattr("orchestration.lib.governance.register.FEEDS_DIR", zone_home["feeds_dir"])

    @dg.asset(key=["raw", "police__person_records"])
    def raw_police():
        return 1

    @dg.asset(key=["marts", "lsoa_monthly_indicators"], deps=[raw_police])
    def mart():
        return 1

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([raw_police, mart], instance=instance, tags={"dagster/user": "sam.engineer"})
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    success = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records[0]
    ctx = dg.build_run_status_sensor_context(sensor_name="governance_audit_sensor", dagster_instance=instance,
                                             dagster_run=run, dagster_event=success.event_log_entry.dagster_event,
                                             resources=_bound(s))
    governance_audit_sensor(ctx)

    events = {e["target"]: e for e in read_events(s)}
    assert events["raw.police__person_records"]["action"] == "ingest"
    assert events["raw.police__person_records"]["agreement_id"] == "DSA-POL-TEST"
    # the open-source webserver lets anyone type the user tag: it is recorded as a claim, the account acted
    me = pwd.getpwuid(os.getuid()).pw_name
    assert events["raw.police__person_records"]["who"] == me
    assert events["raw.police__person_records"]["details"]["claimed_user"] == "sam.engineer"
    assert events["marts.lsoa_monthly_indicators"]["action"] == "build"
    assert events["marts.lsoa_monthly_indicators"]["details"]["run_id"] == result.run_id

    # production, where the administrator's role file says the web tier sets the tag from its login
    roles = s.home / "etc-roles.yml"
    roles.write_text(f"engineer: {{users: [{me}]}}\nweb_identity: {{run_tag: dagster/user}}\n")
    monkeypatch.setattr("orchestration.lib.config.PRODUCTION_ROLES_FILE", roles)
    monkeypatch.setenv("PLACELINK_ENV", "production")
    governance_audit_sensor(ctx)                      # the same run again: already in the log, nothing added
    assert len({e["details"].get("run_id") for e in read_events(s)}) == 1 and len(read_events(s)) == len(events)
    second = dg.materialize([raw_police, mart], instance=instance, tags={"dagster/user": "sam.engineer"})
    success = instance.get_records_for_run(second.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records[0]
    governance_audit_sensor(dg.build_run_status_sensor_context(
        sensor_name="governance_audit_sensor", dagster_instance=instance,
        dagster_run=instance.get_run_by_id(second.run_id), dagster_event=success.event_log_entry.dagster_event,
        resources=_bound(get_settings(home=s.home, env="production"))))
    last = read_events(s)[-1]
    assert last["who"] == "sam.engineer" and last["details"]["os_user"] == me


def test_audit_sensor_records_a_scheduled_nightly_once_and_not_what_the_runner_recorded(zone_home, monkeypatch):
    """The 02:00 schedule's runs carry the refresh tag like the runner's, but nobody else audits them: the sensor
    must, once. A run the in-process runner executed is already in the log: the sensor adds nothing."""
    from orchestration.defs.governance import governance_audit_sensor
    from orchestration.defs.ops.planning import REFRESH_TAG
    from orchestration.lib.governance.pipeline_audit import record_run

    s = zone_home["settings"]
    monkeypatch.setenv("PLACELINK_HOME", str(s.home))  # the production identity below reads the environment's
    monkeypatch.setattr("orchestration.lib.governance.register.FEEDS_DIR", zone_home["feeds_dir"])

    @dg.asset(key=["raw", "police__person_records"])
    def raw_police():
        return 1

    instance = dg.DagsterInstance.ephemeral()

    def sensed(tags, *, runner_recorded: bool = False, times: int = 1) -> int:
        result = dg.materialize([raw_police], instance=instance, tags=tags)
        if runner_recorded:  # as runner._audit does right after its in-process run
            record_run(s, run_id=result.run_id, job="ops_partitioned_refresh_job", who="me",
                       key_paths=[(["raw", "police__person_records"], None)])
        run = instance.get_run_by_id(result.run_id)
        success = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records[0]
        ctx = dg.build_run_status_sensor_context(sensor_name="governance_audit_sensor", dagster_instance=instance,
                                                 dagster_run=run, dagster_event=success.event_log_entry.dagster_event,
                                                 resources=_bound(s))
        before = len(read_events(s))
        for _ in range(times):
            governance_audit_sensor(ctx)
        return len(read_events(s)) - before

    assert sensed({REFRESH_TAG: "2026-12-03T02:00"}, times=2) == 1    # the schedule's nightly: audited here, once
    assert sensed({REFRESH_TAG: "r1"}, runner_recorded=True) == 0      # the runner's: in the log already
