"""The 02:00 Europe/London tick requests one run per month with new drops; the sensor finishes the night."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import dagster as dg

from orchestration.defs.ops.planning import REFRESH_TAG
from orchestration.defs.ops.schedules import nightly_refresh_schedule, ops_nightly_downstream_sensor
from orchestration.runner import instance_for
from tests.ops.conftest import write_drop
from tests.support import daemon_ticks

LONDON = ZoneInfo("Europe/London")


def _tick(defs, instance, when):
    return daemon_ticks.tick(nightly_refresh_schedule, defs, instance, when=when)


def test_schedule_is_0200_london_and_running_by_default():
    assert nightly_refresh_schedule.cron_schedule == "0 2 * * *"
    assert nightly_refresh_schedule.execution_timezone == "Europe/London"
    assert nightly_refresh_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    # 02:00 London is 02:00 UTC in winter and 01:00 UTC in summer
    ticks = nightly_refresh_schedule.cron_schedule, nightly_refresh_schedule.execution_timezone
    from dagster._utils.schedules import cron_string_iterator

    it = cron_string_iterator(dt.datetime(2025, 3, 28, 12, tzinfo=dt.UTC).timestamp(), *ticks)
    assert [next(it).astimezone(dt.UTC).hour for _ in range(2)] == [2, 1]  # 29 March GMT, 30 March BST


def test_tick_requests_runs_for_months_with_new_drops(settings, fixture_defs):
    instance = instance_for(settings)
    old = time.time() - 3600
    write_drop("police", "street_crimes", "2025-01-04", ["c1"], mtime=old)
    write_drop("nhs", "ae_attendances", "2025-03-02", ["a1"], mtime=old)
    tick_time = dt.datetime(2025, 3, 5, 2, 0, tzinfo=LONDON)

    result = _tick(fixture_defs, instance, tick_time)
    requests = {r.partition_key: r for r in result.run_requests}
    assert sorted(requests) == ["2025-01-01", "2025-03-01"]
    assert requests["2025-01-01"].asset_selection == [dg.AssetKey(["raw", "police__street_crimes"])]
    assert requests["2025-03-01"].asset_selection == [dg.AssetKey(["raw", "nhs__ae_attendances"])]
    assert requests["2025-03-01"].run_key == "nightly-2025-03-05:2025-03-01"
    assert requests["2025-03-01"].tags[REFRESH_TAG] == "nightly-2025-03-05"

    # run what the tick asked for; the next night has nothing new and skips
    job = fixture_defs.resolve_job_def("ops_partitioned_refresh_job")
    for r in result.run_requests:
        assert job.execute_in_process(instance=instance, partition_key=r.partition_key,
                                      asset_selection=r.asset_selection, tags=r.tags).success
    nxt = _tick(fixture_defs, instance, tick_time + dt.timedelta(days=1))
    assert nxt.run_requests == [] and "no new or changed partner drops" in nxt.skip_message

    # a late drop for January the night after: only January of police is requested
    write_drop("police", "street_crimes", "2025-01-28", ["late"])
    late = _tick(fixture_defs, instance, tick_time + dt.timedelta(days=2))
    assert [(r.partition_key, r.asset_selection) for r in late.run_requests] == [
        ("2025-01-01", [dg.AssetKey(["raw", "police__street_crimes"])])]


def test_downstream_sensor_waits_for_every_month_of_the_night(settings, fixture_defs):
    instance = instance_for(settings)
    write_drop("police", "street_crimes", "2025-01-04", ["c1"])
    write_drop("police", "street_crimes", "2025-02-04", ["c2"])
    job = fixture_defs.resolve_job_def("ops_partitioned_refresh_job")
    night = {REFRESH_TAG: "nightly-2025-03-05"}
    first = job.execute_in_process(instance=instance, partition_key="2025-01-01", tags=night)
    # a second month not yet started of the same night: the sensor must wait
    queued = instance.create_run_for_job(job_def=job, tags={**night, "dagster/partition": "2025-02-01"},
                                         status=dg.DagsterRunStatus.NOT_STARTED)

    def evaluate(run):
        success = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)[0]
        with dg.build_run_status_sensor_context(
                sensor_name=ops_nightly_downstream_sensor.name, dagster_event=success.dagster_event,
                dagster_instance=instance, dagster_run=run, repository_def=fixture_defs.get_repository_def(),
                resources=daemon_ticks.resources_for(ops_nightly_downstream_sensor, fixture_defs)) as ctx:
            return ops_nightly_downstream_sensor(ctx)

    waiting = evaluate(first.dagster_run)
    assert isinstance(waiting, dg.SkipReason) and "1 monthly load(s) of nightly-2025-03-05 still running" in waiting.skip_message
    instance.delete_run(queued.run_id)
    second = job.execute_in_process(instance=instance, partition_key="2025-02-01", tags=night)
    request = evaluate(second.dagster_run)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "nightly-2025-03-05:downstream"
    assert ops_nightly_downstream_sensor.targets[0].job_name == "ops_downstream_refresh_job"


def test_a_failed_night_still_finishes_the_good_feed_and_a_quiet_night_catches_up(settings, fixture_defs):
    """One feed's bad drop fails the month's load run: the after-failure sensor still rebuilds the downstream of the
    feed that loaded; if that rebuild never happens, the next night with nothing to load catches it up."""
    from orchestration.defs.ops.schedules import (
        nightly_catch_up_schedule,
        ops_nightly_downstream_after_failure_sensor,
    )

    instance = instance_for(settings)
    write_drop("police", "street_crimes", "2024-12-04", ["c0"])
    bad = write_drop("police", "street_crimes", "2025-01-04", ["c1", "BROKEN"])
    write_drop("nhs", "ae_attendances", "2025-01-06", ["a1"])
    night = dt.datetime(2025, 2, 5, 2, 0, tzinfo=LONDON)
    december, january = _tick(fixture_defs, instance, night).run_requests
    job = fixture_defs.resolve_job_def("ops_partitioned_refresh_job")
    for request in (december, january):
        load = job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                      asset_selection=request.asset_selection, tags=request.tags,
                                      raise_on_error=False)
    assert not load.success  # January: police's drop has a row that is not CSV (DataError); NHS's loaded
    failure = instance.all_logs(load.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
    with dg.build_run_status_sensor_context(
            sensor_name=ops_nightly_downstream_after_failure_sensor.name, dagster_event=failure.dagster_event,
            dagster_instance=instance, dagster_run=load.dagster_run, repository_def=fixture_defs.get_repository_def(),
            resources=daemon_ticks.resources_for(ops_nightly_downstream_after_failure_sensor, fixture_defs)) as ctx:
        finish = ops_nightly_downstream_after_failure_sensor(ctx)
    assert isinstance(finish, dg.RunRequest) and finish.run_key == "nightly-2025-02-05:downstream"
    assert finish.asset_selection == [dg.AssetKey(["link", "person_records"]),
                                      dg.AssetKey(["marts", "lsoa_monthly_indicators"])]
    assert finish.tags["placelink/months"] == "2024-12-01,2025-01-01"

    # that downstream run never happens (the daemon was down); police's drop is still bad the next night: the load
    # is retried (and the sensor will finish the night), so the catch-up schedule stands aside
    def catch_up(when):
        return daemon_ticks.tick(nightly_catch_up_schedule, fixture_defs, instance, when=when)

    next_night = night + dt.timedelta(days=1)
    assert [r.partition_key for r in _tick(fixture_defs, instance, next_night).run_requests] == ["2025-01-01"]
    assert "months load tonight" in catch_up(next_night).skip_message
    # the partner withdraws the bad drop: nothing to load, but December and NHS's January are not in the mart yet
    bad.unlink()
    later = night + dt.timedelta(days=2)
    assert _tick(fixture_defs, instance, later).run_requests == []
    [rebuild] = catch_up(later).run_requests
    assert rebuild.run_key == "nightly-2025-02-07:catch-up"
    assert rebuild.tags["placelink/months"] == "2024-12-01,2025-01-01"
    downstream = fixture_defs.resolve_job_def("ops_downstream_refresh_job")
    assert downstream.execute_in_process(instance=instance, asset_selection=rebuild.asset_selection,
                                         tags=rebuild.tags).success
    assert catch_up(later + dt.timedelta(days=1)).run_requests == []
