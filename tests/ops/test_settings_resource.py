"""Settings reach Dagster runs as a resource (``placelink_settings``), not through the environment (issue #24).

A run started for one home works on that home even when the process's environment names another, and nothing
writes ``os.environ`` to get there; the code location ``dagster dev`` loads reads the environment through
``dg.EnvVar`` instead.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil

import dagster as dg
import duckdb

from orchestration.defs.feeds.assets import reference_tables
from orchestration.defs.resources import SETTINGS, PlacelinkSettings, settings_resource, shared_resources
from orchestration.lib.config import get_settings


def test_a_run_works_on_the_home_it_was_bound_to_not_the_environments(tiny_county, tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "bound", tmp_path / "elsewhere"
    shutil.copytree(tiny_county / "reference", home / "reference")
    monkeypatch.setenv("PLACELINK_HOME", str(elsewhere))
    settings = get_settings(home=home).ensure()

    keys = [dg.AssetKey(["ref", "lsoas"]), dg.AssetKey(["ref", "wards"])]
    result = dg.materialize([reference_tables], selection=keys, resources=shared_resources(settings),
                            instance=dg.DagsterInstance.ephemeral())

    assert result.success
    assert {e.asset_key for e in result.get_asset_materialization_events()} == set(keys)
    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        assert con.execute("select count(*) from ref.lsoas").fetchone()[0] > 0
    assert not elsewhere.exists()  # the environment's home was neither read nor written
    assert os.environ["PLACELINK_HOME"] == str(elsewhere)  # and nobody rewrote the environment


def test_the_code_location_reads_the_environment_through_envvar(tmp_path, monkeypatch):
    monkeypatch.setenv("PLACELINK_HOME", str(tmp_path / "from-env"))
    resource = settings_resource()
    assert isinstance(resource.home, dg.EnvVar) and resource.home.env_var_name == "PLACELINK_HOME"

    seen = {}

    @dg.asset
    def probe(placelink_settings: PlacelinkSettings) -> None:
        seen["home"] = placelink_settings.get().home

    assert dg.materialize([probe], resources={SETTINGS: resource}).success
    assert seen["home"] == (tmp_path / "from-env").resolve()


def test_no_dagster_definition_resolves_settings_from_the_environment(tmp_path, monkeypatch):
    """Every sensor and schedule of the code location, ticked as the daemon would, works on the home its
    ``placelink_settings`` resource is bound to: a decoy home named by ``PLACELINK_HOME`` (with a drop of its own)
    is neither read nor written. A new sensor or schedule fails this test until it says what its tick does."""
    from zoneinfo import ZoneInfo

    from orchestration.definitions import build_definitions
    from orchestration.defs.ops.jobs import ops_partitioned_refresh_job
    from orchestration.defs.ops.planning import REFRESH_TAG
    from orchestration.lib.landing import contract_extensions
    from orchestration.runner import instance_for
    from tests.support.daemon_ticks import finished_run, tick
    from tests.support.touched import touches

    bound, decoy = (get_settings(home=tmp_path / name).ensure() for name in ("bound", "decoy"))
    ext = contract_extensions()[("police", "street_crimes")]
    for settings, day in ((bound, "2025-03-04"), (decoy, "2025-02-04")):  # one new drop each, different months
        drop = settings.landing / "police" / "street_crimes" / f"{day}.{ext}"
        drop.parent.mkdir(parents=True)
        drop.write_text("header\nrow\n")
    monkeypatch.setenv("PLACELINK_HOME", str(decoy.home))
    decoy_before = sorted(p.relative_to(decoy.home) for p in decoy.home.rglob("*"))

    defs = build_definitions(bound)
    repo = defs.get_repository_def()
    instance = instance_for(bound)  # the home's own instance, as the daemon of `placelink ui` uses
    night = dt.datetime(2025, 3, 5, 2, tzinfo=ZoneInfo("Europe/London"))
    definitions = [*repo.sensor_defs, *repo.schedule_defs]
    with touches(decoy.home) as seen:
        # run-status sensors see runs that end after their first tick: set their cursors, then end a night's loads
        cursors = {d.name: tick(d, defs, instance).cursor for d in repo.sensor_defs
                   if isinstance(d, dg.RunStatusSensorDefinition)}
        for status, refresh in ((dg.DagsterRunStatus.SUCCESS, "nightly-2025-03-04"),
                                (dg.DagsterRunStatus.FAILURE, "nightly-2025-03-05")):
            finished_run(instance, ops_partitioned_refresh_job.name, status, {REFRESH_TAG: refresh})
        ticks = {d.name: tick(d, defs, instance, cursor=cursors.get(d.name), when=night) for d in definitions}

    march = "2025-03-01"  # the bound home's drop; the decoy's is in February
    months = lambda t: {r.partition_key for r in t.run_requests}  # noqa: E731
    skipped = lambda *words: lambda t: all(w in (t.skip_message or "") for w in words)  # noqa: E731
    expected = {
        "landing_drop_sensor": lambda t: months(t) == {march},
        "nightly_refresh_schedule": lambda t: months(t) == {march},
        "nightly_catch_up_schedule": skipped("months load tonight"),
        "ops_nightly_downstream_sensor": skipped("nothing to rebuild after nightly-2025-03-04"),
        "ops_nightly_downstream_after_failure_sensor": skipped("nothing to rebuild after nightly-2025-03-05"),
        "ops_run_failure_alert_sensor": lambda t: (bound.logs_dir / "alerts.log").exists(),
        "governance_audit_sensor": skipped("audited", "(success)"),
        "governance_audit_failed_run_sensor": skipped("audited", "(failure)"),
        # plain schedules of a fixed job: their runs get the home from the resource when they run
        "governance_retention_schedule": lambda t: len(t.run_requests) == 1,
        "governance_audit_check_schedule": lambda t: len(t.run_requests) == 1,
        "ml_weekly_training_schedule": lambda t: len(t.run_requests) == 1,
    }
    assert set(ticks) == set(expected), "say what the tick of each new sensor or schedule does on the bound home"
    assert [name for name, t in ticks.items() if not expected[name](t)] == []
    assert seen == []  # nothing under the decoy home was opened, listed or written from Python
    assert sorted(p.relative_to(decoy.home) for p in decoy.home.rglob("*")) == decoy_before  # nor by DuckDB


def test_binding_the_code_location_to_a_home_touches_no_home_and_picks_that_homes_dbt(tmp_path, monkeypatch):
    """The ``dbt`` resource is bound with the other shared resources: its executable is the bound home's (on Spark,
    the wrapper under ``<home>/dbt/bin``, written before a build, not when binding), never one chosen from the
    environment when the code location was imported; binding reads and writes nothing in either home."""
    from orchestration.definitions import build_definitions
    from tests.support.touched import touches

    bound = get_settings(home=tmp_path / "bound", engine="spark")
    decoy = tmp_path / "decoy"
    monkeypatch.setenv("PLACELINK_HOME", str(decoy))
    monkeypatch.setenv("PLACELINK_ENGINE", "duckdb")

    with touches(tmp_path) as seen:
        dbt = build_definitions(bound).resources["dbt"]
    assert dbt.dbt_executable == str(bound.home / "dbt" / "bin" / "dbt")  # dbt_spark.executable_path
    assert seen == [] and not bound.home.exists() and not decoy.exists()
