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

LONDON = ZoneInfo("Europe/London")


def _tick(defs, instance, when):
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                        repository_def=defs.get_repository_def())
    return nightly_refresh_schedule.evaluate_tick(context)


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
        ctx = dg.build_run_status_sensor_context(
            sensor_name=ops_nightly_downstream_sensor.name, dagster_event=success.dagster_event,
            dagster_instance=instance, dagster_run=run, repository_def=fixture_defs.get_repository_def())
        return ops_nightly_downstream_sensor(ctx)

    waiting = evaluate(first.dagster_run)
    assert isinstance(waiting, dg.SkipReason) and "1 monthly load(s) of nightly-2025-03-05 still running" in waiting.skip_message
    instance.delete_run(queued.run_id)
    second = job.execute_in_process(instance=instance, partition_key="2025-02-01", tags=night)
    request = evaluate(second.dagster_run)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "nightly-2025-03-05:downstream"
    assert ops_nightly_downstream_sensor.targets[0].job_name == "ops_downstream_refresh_job"
