"""``placelink build`` goes through Dagster (issue #24: one way to run each stage): the command's work is a run of
the code location's job on the home's instance, the assets show its materialisations, and the audit has one event
per asset for it (the runner's), which the daemon's audit sensor does not record a second time."""

from __future__ import annotations

import shutil

import dagster as dg
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.defs.governance import governance_audit_sensor
from orchestration.defs.ops.jobs import ops_downstream_refresh_job
from orchestration.lib.config import get_settings
from orchestration.lib.governance.audit import read_events
from orchestration.runner import instance_for

BUILT = [dg.AssetKey(["marts", "dim_calendar"])]


def test_placelink_build_is_a_dagster_run_audited_once(dbt_warehouse, tmp_path):
    home = tmp_path / "bound"  # the environment's home (tests/conftest.py) is tmp_path / "home": not this one
    shutil.copytree(dbt_warehouse, home)
    settings = get_settings(home=home)

    out = CliRunner().invoke(app, ["build", "--home", str(home), "--select", "dim_calendar"])
    assert out.exit_code == 0, out.output

    with instance_for(settings) as instance:
        runs = instance.get_runs()
        assert [r.job_name for r in runs] == [ops_downstream_refresh_job.name]
        (run,) = runs
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.run_id in out.output
        for key in BUILT:
            assert instance.get_latest_materialization_event(key).run_id == run.run_id
        events = [e for e in read_events(settings) if e["details"].get("run_id") == run.run_id]
        assert sorted(e["target"] for e in events) == ["marts.dim_calendar"]

        # the daemon's audit sensor sees the same successful run and leaves it to the command that ran it
        success = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records[0]
        ctx = dg.build_run_status_sensor_context(
            sensor_name="governance_audit_sensor", dagster_instance=instance, dagster_run=run,
            dagster_event=success.event_log_entry.dagster_event)
        governance_audit_sensor(ctx)
    assert len([e for e in read_events(settings) if e["details"].get("run_id") == run.run_id]) == 1
    # nothing of the run went to the environment's home; only the CLI's own record of the command does, since
    # under CliRunner its callback cannot see --home in the process's argv (governance_cli; a real shell can)
    env_home = tmp_path / "home"
    assert {p.name for p in env_home.iterdir()} <= {"audit.duckdb", "audit.duckdb.lock", "governance"}
