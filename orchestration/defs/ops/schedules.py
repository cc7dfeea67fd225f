"""The 02:00 Europe/London nightly refresh and the sensor that finishes it."""

from __future__ import annotations

import dagster as dg
from dagster import DagsterRunStatus

from orchestration.defs.ops.jobs import ops_downstream_refresh_job, ops_partitioned_refresh_job
from orchestration.defs.ops.planning import REFRESH_TAG, plan_refresh
from orchestration.lib.config import get_settings

_UNFINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
               DagsterRunStatus.STARTED]
_FAILED = [DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


@dg.schedule(
    name="nightly_refresh_schedule",
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/London",
    job=ops_partitioned_refresh_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="02:00 Europe/London: one run per month that has new or changed partner drops; "
                "ops_nightly_downstream_sensor then rebuilds everything downstream once they succeed.",
)
def nightly_refresh_schedule(context: dg.ScheduleEvaluationContext):
    plan = plan_refresh(context.repository_def.asset_graph, context.instance, get_settings().landing)
    if not plan.partitions:
        return dg.SkipReason("no new or changed partner drops since the last load")
    tick = context.scheduled_execution_time.strftime("nightly-%Y-%m-%d")
    return [
        dg.RunRequest(
            run_key=f"{tick}:{pk}",
            partition_key=pk,
            asset_selection=keys,
            tags={REFRESH_TAG: tick},
        )
        for pk, keys in plan.partitions.items()
    ]


@dg.run_status_sensor(
    name="ops_nightly_downstream_sensor",
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[ops_partitioned_refresh_job],
    request_job=ops_downstream_refresh_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When the last monthly load of a nightly refresh succeeds, rebuild everything downstream once.",
)
def ops_nightly_downstream_sensor(context: dg.RunStatusSensorContext):
    refresh = context.dagster_run.tags.get(REFRESH_TAG)
    if not refresh:
        return dg.SkipReason("not part of a nightly refresh (no placelink/refresh tag)")
    runs = context.instance.get_run_records(
        dg.RunsFilter(job_name=ops_partitioned_refresh_job.name, tags={REFRESH_TAG: refresh})
    )
    waiting = [r.dagster_run.run_id for r in runs if r.dagster_run.status in _UNFINISHED]
    if waiting:
        return dg.SkipReason(f"{len(waiting)} monthly load(s) of {refresh} still running")
    failed = [r.dagster_run.run_id for r in runs if r.dagster_run.status in _FAILED]
    if failed:
        return dg.SkipReason(f"downstream of {refresh} not rebuilt: monthly load run(s) {failed} failed")
    return dg.RunRequest(run_key=f"{refresh}:downstream", tags={REFRESH_TAG: refresh})
