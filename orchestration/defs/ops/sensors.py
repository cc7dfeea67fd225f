"""Run-failure alerts through a pluggable sink (``<home>/logs/alerts.log`` by default)."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from orchestration.lib.config import get_settings
from orchestration.lib.ops.alerts import Alert, AlertSink, default_sink


def alert_from_failure(context: dg.RunFailureSensorContext) -> Alert:
    run = context.dagster_run
    steps = [
        {"step": e.step_key, "error": (e.step_failure_data.error.message.strip()
                                       if e.step_failure_data and e.step_failure_data.error else None)}
        for e in context.get_step_failure_events()
    ]
    return Alert(
        title=f"placelink run of {run.job_name} failed",
        message=context.failure_event.message or "run failed",
        run_id=run.run_id,
        job_name=run.job_name,
        details={"partition": run.tags.get("dagster/partition"), "steps": steps,
                 "tags": {k: v for k, v in run.tags.items() if not k.startswith("dagster/")}},
    )


def make_run_failure_alert_sensor(
    sink_factory: Callable[[], AlertSink] = lambda: default_sink(get_settings()),
    name: str = "ops_run_failure_alert_sensor",
) -> dg.SensorDefinition:
    """A run-failure sensor that sends each failed run to ``sink_factory()`` (plug in email/Teams/Slack)."""

    @dg.run_failure_sensor(name=name, default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Every failed run becomes an alert (log file by default).")
    def _sensor(context: dg.RunFailureSensorContext):
        alert = alert_from_failure(context)
        sink_factory().send(alert)
        context.log.info(f"alert sent for failed run {alert.run_id}")

    return _sensor


ops_run_failure_alert_sensor = make_run_failure_alert_sensor()
