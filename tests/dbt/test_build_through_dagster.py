"""``placelink build`` goes through Dagster (issue #24: one way to run each stage): the command's work is a run of
the code location's job on the home's instance, the assets show its materialisations, and the audit has one event
per asset for it (the runner's), which the daemon's audit sensor does not record a second time."""

from __future__ import annotations

import json
import os
import shutil

import dagster as dg
import duckdb
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.defs.governance import governance_audit_sensor
from orchestration.defs.ops.jobs import ops_downstream_refresh_job
from orchestration.defs.resources import settings_resource
from orchestration.lib import dbt_runner
from orchestration.lib.config import get_settings
from orchestration.lib.governance.audit import read_events
from orchestration.runner import instance_for

BUILT = [dg.AssetKey(["marts", "dim_calendar"])]


def test_placelink_build_is_a_dagster_run_audited_once(dbt_warehouse, tmp_path):
    home = tmp_path / "bound"  # the environment's home (tests/conftest.py) is tmp_path / "home": not this one
    shutil.copytree(dbt_warehouse, home)
    settings = get_settings(home=home)
    # a home with a long history of builds: each left its artefact folder; the oldest go after this build
    old = []
    for n in range(dbt_runner.KEEP_DBT_RUNS):
        folder = dbt_runner.target_dir(settings) / f"placelink_dbt_models-{n:07x}-0000{n:03d}"
        folder.mkdir(parents=True)
        (folder / "dbt.log").write_text("an old build")
        os.utime(folder, (1_700_000_000 + n, 1_700_000_000 + n))
        old.append(folder)

    out = CliRunner().invoke(app, ["build", "--home", str(home), "--select", "dim_calendar"])
    assert out.exit_code == 0, out.output

    # its artefacts are the home's last run (run_results.json, compiled SQL); the home keeps KEEP_DBT_RUNS of them
    last = dbt_runner.last_run(settings)
    results = json.loads((last / "run_results.json").read_text())["results"]
    assert [r["unique_id"] for r in results if r["unique_id"].startswith("model.")] == ["model.placelink.dim_calendar"]
    assert not old[0].exists() and all(p.exists() for p in old[1:])
    assert len(list(dbt_runner.target_dir(settings).glob("placelink_dbt_models-*"))) == dbt_runner.KEEP_DBT_RUNS
    # a copied home reused the parse its source saved (dbt's profile holds the warehouse path: it used to re-parse
    # the whole project on a new, moved or copied home's first build)
    log = (last / "dbt.log").read_text()
    assert "Unable to do partial parsing" not in log and "Partial parse save file not found" not in log
    assert "Partial parsing enabled" in log or "partial parse" in log.lower()

    with instance_for(settings) as instance:
        runs = instance.get_runs()
        assert [r.job_name for r in runs] == [ops_downstream_refresh_job.name]
        (run,) = runs
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.run_id in out.output
        assert last.name.startswith(f"placelink_dbt_models-{run.run_id[:7]}-")
        for key in BUILT:
            assert instance.get_latest_materialization_event(key).run_id == run.run_id
        events = [e for e in read_events(settings) if e["details"].get("run_id") == run.run_id]
        assert sorted(e["target"] for e in events) == ["marts.dim_calendar"]

        # the daemon's audit sensor sees the same successful run and leaves it to the command that ran it
        success = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records[0]
        ctx = dg.build_run_status_sensor_context(
            sensor_name="governance_audit_sensor", dagster_instance=instance, dagster_run=run,
            dagster_event=success.event_log_entry.dagster_event,
            resources={"placelink_settings": settings_resource(settings)})
        governance_audit_sensor(ctx)
    assert len([e for e in read_events(settings) if e["details"].get("run_id") == run.run_id]) == 1
    # a build whose data test fails: the command fails, and its message's first line names the failed test (the
    # refresh and placelink build show a step's first line; it used to say only "The dbt CLI process with command")
    with duckdb.connect(str(settings.warehouse_db)) as con:
        con.execute("insert into src.police__street_crimes select * from src.police__street_crimes limit 1")
    out = CliRunner().invoke(app, ["build", "--home", str(home), "--select", "stg_police__street_crimes"])
    assert out.exit_code != 0
    failure = next(line for line in out.output.splitlines() if "dbt build failed" in line)
    assert "test unique_stg_police__street_crimes_record_key" in failure, out.output
    assert "model " not in failure  # the model built; only its test failed

    # nothing of the run went to the environment's home; only the CLI's own record of the command does, since
    # under CliRunner its callback cannot see --home in the process's argv (governance_cli; a real shell can)
    env_home = tmp_path / "home"
    assert {p.name for p in env_home.iterdir()} <= {"audit.duckdb", "audit.duckdb.lock", "governance"}
