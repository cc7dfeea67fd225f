"""The 02:00 Europe/London nightly refresh and the sensor that finishes it."""

from __future__ import annotations

import dagster as dg
from dagster import DagsterRunStatus
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.defs.ops.jobs import ops_downstream_refresh_job, ops_partitioned_refresh_job
from orchestration.defs.ops.planning import (
    LATE_TAG,
    MONTHS_TAG,
    NEW_MONTHS_TAG,
    REFRESH_TAG,
    UNPARTITIONED,
    downstream_of,
    full_refresh_op_config,
    month_ranges,
    plan_refresh,
)
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
    description="02:00 Europe/London: load the months that have new or changed partner drops (one run per month, or "
                "per stretch of consecutive months when the feeds load ranges); ops_nightly_downstream_sensor then "
                "rebuilds what depends on them once they succeed.",
)
def nightly_refresh_schedule(context: dg.ScheduleEvaluationContext):
    from orchestration.lib.governance.erasure import exclusions_fingerprint

    settings = get_settings()
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
                          tags={**tags, ASSET_PARTITION_RANGE_START_TAG: months[0],
                                ASSET_PARTITION_RANGE_END_TAG: months[-1]})
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


@dg.run_status_sensor(
    name="ops_nightly_downstream_sensor",
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[ops_partitioned_refresh_job],
    request_job=ops_downstream_refresh_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When the last monthly load of a nightly refresh succeeds, rebuild once what depends on the feeds "
                "it loaded (model training excepted: weekly).",
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
    feeds = sorted({k for r in runs for k in (r.dagster_run.asset_selection or ())},
                   key=lambda k: k.to_user_string())
    months = sorted({m for r in runs for m in _months_of(r.dagster_run, context.repository_def.asset_graph, feeds)})
    selection = downstream_of(context.repository_def.asset_graph, context.instance, feeds) if feeds else None
    if selection == []:
        return dg.SkipReason(f"nothing downstream of the feeds {refresh} loaded")
    graph = context.repository_def.asset_graph
    late = any(r.dagster_run.tags.get(LATE_TAG) == "true" for r in runs)
    ops = full_refresh_op_config(graph, selection if selection is not None else
                                 UNPARTITIONED.resolve(graph)) if late else {}
    tags = {REFRESH_TAG: refresh}
    if all(r.dagster_run.tags.get(NEW_MONTHS_TAG) == "true" for r in runs) and "".join(months):
        tags[MONTHS_TAG] = ",".join(months)
    return dg.RunRequest(run_key=f"{refresh}:downstream", asset_selection=selection,
                         run_config={"ops": ops} if ops else None, tags=tags)


def _months_of(run, asset_graph, feeds) -> list[str]:
    """The partitions a load run loaded: its partition, or every partition of its range."""
    if run.tags.get("dagster/partition"):
        return [run.tags["dagster/partition"]]
    start, end = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if not (start and end and feeds):
        return []
    keys = asset_graph.get(feeds[0]).partitions_def.get_partition_keys()
    return [k for k in keys if start <= k <= end]
