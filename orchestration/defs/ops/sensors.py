"""Run-failure alerts through a pluggable sink (``<home>/logs/alerts.log`` by default)."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from orchestration.defs.resources import PlacelinkSettings
from orchestration.lib.config import Settings
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
    sink_factory: Callable[[Settings], AlertSink] = default_sink,
    name: str = "ops_run_failure_alert_sensor",
) -> dg.SensorDefinition:
    """A run-failure sensor that sends each failed run to ``sink_factory(settings)`` (plug in email/Teams/Slack),
    ``settings`` being the home the code location is bound to (the ``placelink_settings`` resource)."""

    @dg.run_failure_sensor(name=name, default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Every failed run becomes an alert (log file by default).")
    def _sensor(context: dg.RunFailureSensorContext, placelink_settings: PlacelinkSettings):
        alert = alert_from_failure(context)
        sink_factory(placelink_settings.get()).send(alert)
        context.log.info(f"alert sent for failed run {alert.run_id}")

    return _sensor


ops_run_failure_alert_sensor = make_run_failure_alert_sensor()
