"""Evaluate a code location's sensors and schedules as the Dagster daemon would, in this process and without one.

``tick`` evaluates any sensor or schedule with the resources of the definitions it belongs to; ``finished_run``
leaves a run in the instance that ended in success or failure, for the run-status sensors to react to (they see
only runs that finish after their first tick, which sets their cursor).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.utils import make_new_run_id


def tick(definition: dg.SensorDefinition | dg.ScheduleDefinition, defs: dg.Definitions,
         instance: dg.DagsterInstance, *, cursor: str | None = None, when: dt.datetime | None = None):
    """One evaluation of ``definition`` (a member of ``defs``; a schedule's at ``when``, a sensor's from ``cursor``):
    the daemon's ``evaluate_tick``, given the
    top-level resources of the definitions that it asks for, as the code server gives them
    (``dagster._grpc.impl``: ``build_sensor_context(repository_def=...)`` alone gives none)."""
    repo = defs.get_repository_def()
    resources = resources_for(definition, defs)
    # entered and left like the code server's: the resources, and the instance a schedule context opens from the
    # instance's ref, are torn down here, not whenever the garbage collector gets to them (in a later test)
    if isinstance(definition, dg.ScheduleDefinition):
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when, resources=resources,
                                       repository_def=repo) as context:
            return definition.evaluate_tick(context)
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                                 repository_def=repo) as context:
        return definition.evaluate_tick(context)


def resources_for(definition: dg.SensorDefinition | dg.ScheduleDefinition, defs: dg.Definitions) -> dict:
    """The top-level resources of ``defs`` that ``definition`` asks for: what the code server builds for its tick."""
    return {k: v for k, v in defs.get_repository_def().get_top_level_resources().items()
            if k in definition.required_resource_keys}


def finished_run(instance: dg.DagsterInstance, job_name: str, status: dg.DagsterRunStatus,
                 tags: dict[str, str] | None = None) -> dg.DagsterRun:
    """A run of ``job_name`` that started and ended with ``status`` (SUCCESS or FAILURE), without executing it."""
    run = instance.add_run(dg.DagsterRun(job_name=job_name, run_id=make_new_run_id(), tags=tags or {},
                                         status=dg.DagsterRunStatus.STARTED))
    if status == dg.DagsterRunStatus.FAILURE:
        instance.report_run_failed(run, "failed for the test")
    elif status == dg.DagsterRunStatus.SUCCESS:
        instance.report_dagster_event(DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value,
                                                   job_name=job_name, message="finished for the test"),
                                      run_id=run.run_id)
    else:
        raise ValueError(f"finished_run makes SUCCESS or FAILURE runs, not {status}")
    return instance.get_run_by_id(run.run_id)
