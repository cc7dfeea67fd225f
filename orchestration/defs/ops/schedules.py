"""The 02:00 Europe/London nightly refresh and the sensors that finish it.

The same plan as ``placelink refresh`` (:mod:`orchestration.defs.ops.planning`): the schedule loads the months
with new or changed drops; once every load of the night has finished, successful or not, a sensor rebuilds the
downstream of what is loaded and not yet caught up (a failed feed loaded nothing and stays pending; the others go
on). A night with nothing new to load but an earlier night's downstream unfinished gets it rebuilt by
``nightly_catch_up_schedule``.
"""

from __future__ import annotations

import dagster as dg
from dagster import DagsterRunStatus

from orchestration.defs.ops.jobs import ops_downstream_refresh_job, ops_partitioned_refresh_job
from orchestration.defs.ops.planning import (
    LATE_TAG,
    MONTHS_TAG,
    NEW_MONTHS_TAG,
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    REFRESH_TAG,
    full_refresh_op_config,
    month_ranges,
    plan_catch_up,
    plan_refresh,
)
from orchestration.defs.resources import PlacelinkSettings
from orchestration.lib.config import Settings

_UNFINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
               DagsterRunStatus.STARTED]
_FAILED = [DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


@dg.schedule(
    name="nightly_refresh_schedule",
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/London",
    job=ops_partitioned_refresh_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="02:00 Europe/London: load the months that have new or changed partner drops (one run per month, or "
                "per stretch of consecutive months when the feeds load ranges); ops_nightly_downstream_sensor then "
                "rebuilds what depends on them once they succeed.",
)
def nightly_refresh_schedule(context: dg.ScheduleEvaluationContext, placelink_settings: PlacelinkSettings):
    from orchestration.lib.governance.erasure import exclusions_fingerprint

    settings = placelink_settings.get()  # the home the code location is bound to, not os.environ
    plan = plan_refresh(context.repository_def.asset_graph, context.instance, settings.landing,
                        exclusions=exclusions_fingerprint(settings))
    if not plan.partitions:
        return dg.SkipReason("no new or changed partner drops since the last load")
    tick = context.scheduled_execution_time.strftime("nightly-%Y-%m-%d")
    # a changed erasure / opt-out list: the downstream run rebuilds from scratch, as after a late drop
    tags = {REFRESH_TAG: tick, **({LATE_TAG: "true"} if plan.late or plan.exclusions_changed else {}),
            **({NEW_MONTHS_TAG: "true"} if plan.new_months_only else {})}
    if plan.single_run:
        # the feeds load a range of months in one run (BackfillPolicy.single_run): one run per stretch of
        # consecutive months, usually one in all
        ranges = month_ranges(context.repository_def.asset_graph, plan.partitions)
        return [
            dg.RunRequest(run_key=f"{tick}:{months[0]}", partition_key=months[0], asset_selection=keys,
                          tags=tags)
            if len(months) == 1 else
            dg.RunRequest(run_key=f"{tick}:{months[0]}..{months[-1]}", asset_selection=keys,
                          tags={**tags, PARTITION_RANGE_START_TAG: months[0],
                                PARTITION_RANGE_END_TAG: months[-1]})
            for months, keys in ranges
        ]
    return [
        dg.RunRequest(
            run_key=f"{tick}:{pk}",
            partition_key=pk,
            asset_selection=keys,
            tags=tags,
        )
        for pk, keys in plan.partitions.items()
    ]


def _downstream_request(asset_graph, instance, settings: Settings, refresh: str,
                        run_key: str) -> dg.RunRequest | dg.SkipReason:
    """The downstream run that finishes ``refresh``: everything loaded and not yet caught up (plan_catch_up)."""
    from orchestration.lib.governance.erasure import exclusions_fingerprint

    plan = plan_catch_up(asset_graph, instance, exclusions=exclusions_fingerprint(settings))
    if not plan.downstream:
        return dg.SkipReason(f"nothing to rebuild after {refresh}: every loaded month's downstream has completed")
    # a late month or a changed erasure / opt-out list: rebuilt from scratch (people leave every month)
    ops = full_refresh_op_config(asset_graph, plan.downstream) if plan.late or plan.exclusions_changed else {}
    tags = {REFRESH_TAG: refresh}
    if plan.new_months_only:
        tags[MONTHS_TAG] = ",".join(plan.months)
    return dg.RunRequest(run_key=run_key, asset_selection=plan.downstream,
                         run_config={"ops": ops} if ops else None, tags=tags)


def _finish_night(context: dg.RunStatusSensorContext, settings: Settings):
    refresh = context.dagster_run.tags.get(REFRESH_TAG)
    if not refresh:
        return dg.SkipReason("not part of a nightly refresh (no placelink/refresh tag)")
    runs = context.instance.get_run_records(
        dg.RunsFilter(job_name=ops_partitioned_refresh_job.name, tags={REFRESH_TAG: refresh})
    )
    waiting = [r.dagster_run.run_id for r in runs if r.dagster_run.status in _UNFINISHED]
    if waiting:
        return dg.SkipReason(f"{len(waiting)} monthly load(s) of {refresh} still running")
    # both sensors (a night's last load may succeed or fail) and the daemon's retries come here: one rebuild
    if context.instance.get_run_records(dg.RunsFilter(job_name=ops_downstream_refresh_job.name,
                                                      tags={REFRESH_TAG: refresh}), limit=1):
        return dg.SkipReason(f"the downstream of {refresh} has been requested already")
    failed = [r.dagster_run.run_id for r in runs if r.dagster_run.status in _FAILED]
    if failed:
        # the failed feeds' months stay pending (nothing of theirs loaded); the run failure sensor alerts on them
        context.log.warning(f"monthly load run(s) {failed} of {refresh} failed: their months stay pending; "
                            "rebuilding the downstream of the feeds that loaded")
    return _downstream_request(context.repository_def.asset_graph, context.instance, settings, refresh,
                               f"{refresh}:downstream")


@dg.run_status_sensor(
    name="ops_nightly_downstream_sensor",
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[ops_partitioned_refresh_job],
    request_job=ops_downstream_refresh_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When the last monthly load of a nightly refresh has finished, rebuild once what depends on the "
                "months loaded and not yet caught up (model training excepted: weekly).",
)
def ops_nightly_downstream_sensor(context: dg.RunStatusSensorContext, placelink_settings: PlacelinkSettings):
    return _finish_night(context, placelink_settings.get())


@dg.run_status_sensor(
    name="ops_nightly_downstream_after_failure_sensor",
    run_status=DagsterRunStatus.FAILURE,
    monitored_jobs=[ops_partitioned_refresh_job],
    request_job=ops_downstream_refresh_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="The same when the night's last load failed: one feed's bad drop must not keep the other feeds' "
                "months out of the marts; the failed feed's month stays pending for the next night.",
)
def ops_nightly_downstream_after_failure_sensor(context: dg.RunStatusSensorContext, placelink_settings: PlacelinkSettings):
    return _finish_night(context, placelink_settings.get())


@dg.schedule(
    name="nightly_catch_up_schedule",
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/London",
    job=ops_downstream_refresh_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="02:00 Europe/London, on a night with nothing new to load: rebuild the downstream of months an "
                "earlier night loaded but did not finish (its downstream run failed or was never run).",
)
def nightly_catch_up_schedule(context: dg.ScheduleEvaluationContext, placelink_settings: PlacelinkSettings):
    settings = placelink_settings.get()
    graph = context.repository_def.asset_graph
    plan = plan_refresh(graph, context.instance, settings.landing)
    if plan.partitions:
        return dg.SkipReason("months load tonight: ops_nightly_downstream_sensor rebuilds after them")
    tick = context.scheduled_execution_time.strftime("nightly-%Y-%m-%d")
    return _downstream_request(graph, context.instance, settings, tick, f"{tick}:catch-up")
