"""Transient failures are retried with backoff, data errors are not; failed runs become alerts."""

from __future__ import annotations

import http.server
import json
import threading

import dagster as dg
import pytest

from orchestration.defs.ops.policies import (
    TRANSIENT_RETRY_POLICY,
    data_errors_fail_fast,
    feed_freshness_policy,
    transient_retry_policy,
    with_feed_freshness,
)
from orchestration.defs.ops.sensors import make_run_failure_alert_sensor, ops_run_failure_alert_sensor
from orchestration.defs.resources import settings_resource
from orchestration.lib.errors import DataError, PlacelinkError
from orchestration.lib.ops.alerts import Alert, FanOutSink, JsonLinesFileSink, WebhookSink, default_sink

ATTEMPTS: dict[str, int] = {}


@dg.asset
def flaky():
    ATTEMPTS["flaky"] = ATTEMPTS.get("flaky", 0) + 1
    if ATTEMPTS["flaky"] < 3:
        raise OSError("IO Error: Could not set lock on file (transient)")


@dg.asset
def bad_data():
    ATTEMPTS["bad_data"] = ATTEMPTS.get("bad_data", 0) + 1
    with data_errors_fail_fast():
        raise DataError("date '31/02/2025' is impossible", where="drop.csv:7 column Month", fix="resend")


@dg.asset
def busy_zone():
    """A placelink error that is not about the data (a file another process holds): may pass on a retry."""
    ATTEMPTS["busy_zone"] = ATTEMPTS.get("busy_zone", 0) + 1
    with data_errors_fail_fast():
        if ATTEMPTS["busy_zone"] < 2:
            raise PlacelinkError("the identifiable zone is being written by another process", where="zone.duckdb",
                                 fix="retry when the running job has finished")


def _run(asset):
    ATTEMPTS.clear()
    job = dg.define_asset_job("j", selection=[asset.key], op_retry_policy=transient_retry_policy(delay=0.01))
    defs = dg.Definitions(assets=[asset], jobs=[job])
    return defs.resolve_job_def("j").execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                                        raise_on_error=False)


def test_retry_policy_is_exponential_with_three_retries():
    assert TRANSIENT_RETRY_POLICY.max_retries == 3
    assert TRANSIENT_RETRY_POLICY.backoff == dg.Backoff.EXPONENTIAL
    assert TRANSIENT_RETRY_POLICY.calculate_delay(3) > TRANSIENT_RETRY_POLICY.calculate_delay(1)


def test_transient_failure_is_retried_until_it_succeeds():
    result = _run(flaky)
    assert result.success and ATTEMPTS["flaky"] == 3


def test_data_error_is_not_retried_and_keeps_where_and_fix():
    result = _run(bad_data)
    assert not result.success and ATTEMPTS["bad_data"] == 1
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_failure_data.user_failure_data.metadata["where"].value == "drop.csv:7 column Month"
    assert "fix: resend" in failure.step_failure_data.user_failure_data.description


def test_a_placelink_error_that_is_not_about_the_data_is_retried():
    result = _run(busy_zone)
    assert result.success and ATTEMPTS["busy_zone"] == 2


def test_feed_freshness_policy_deadline_and_validation():
    policy = feed_freshness_policy(due_day=7)
    assert policy.deadline_cron == "0 9 7 * *" and policy.timezone == "Europe/London"
    with pytest.raises(PlacelinkError, match="between 1 and 28"):
        feed_freshness_policy(due_day=31)
    spec = with_feed_freshness(dg.AssetSpec(["raw", "police__street_crimes"]), due_day=3)
    assert spec.freshness_policy.deadline_cron == "0 9 3 * *"
    # an explicit policy on the feed wins
    kept = with_feed_freshness(spec, due_day=10)
    assert kept.freshness_policy.deadline_cron == "0 9 3 * *"


def test_failed_run_is_written_to_the_alert_log(settings):
    instance = dg.DagsterInstance.ephemeral()
    job = dg.define_asset_job("bad_job", selection=[bad_data.key])
    defs = dg.Definitions(assets=[bad_data], jobs=[job])
    result = defs.resolve_job_def("bad_job").execute_in_process(instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    failure = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
    ctx = dg.build_run_status_sensor_context(
        sensor_name=ops_run_failure_alert_sensor.name, dagster_event=failure.dagster_event,
        dagster_instance=instance, dagster_run=run,
        resources={"placelink_settings": settings_resource(settings)}).for_run_failure()
    ops_run_failure_alert_sensor(ctx)
    [alert] = JsonLinesFileSink(settings.logs_dir / "alerts.log").read()
    assert alert["run_id"] == run.run_id and alert["job_name"] == "bad_job"
    assert "impossible" in alert["details"]["steps"][0]["error"]

    # a plugged-in sink gets the same alert
    got: list[Alert] = []

    class Collect:
        def send(self, a):
            got.append(a)

    make_run_failure_alert_sensor(lambda s: Collect() if s == settings else None, name="custom")(ctx)
    assert got[0].run_id == run.run_id  # the factory was given the bound home's settings


def test_webhook_sink_posts_text_and_fan_out_keeps_the_log(settings, monkeypatch):
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    monkeypatch.setenv("PLACELINK_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/hook")
    sink = default_sink(settings)
    assert isinstance(sink, FanOutSink)
    sink.send(Alert(title="nightly failed", message="boom", run_id="r1"))
    server.server_close()
    assert received and "nightly failed" in received[0]["text"] and "r1" in received[0]["text"]
    assert JsonLinesFileSink(settings.logs_dir / "alerts.log").read()[0]["title"] == "nightly failed"

    # webhook down: the log still gets the alert, and the caller hears about the broken channel
    broken = FanOutSink(JsonLinesFileSink(settings.logs_dir / "alerts.log"), WebhookSink("http://127.0.0.1:9/x", 1))
    with pytest.raises(RuntimeError, match="WebhookSink"):
        broken.send(Alert(title="second", message="m"))
    assert len(JsonLinesFileSink(settings.logs_dir / "alerts.log").read()) == 2
    with pytest.raises(ValueError, match="PLACELINK_ALERT_WEBHOOK"):
        WebhookSink("ftp://x")


def test_apply_feed_freshness_marks_every_feed_asset():
    from orchestration.defs.ops.policies import apply_feed_freshness

    monthly = dg.MonthlyPartitionsDefinition(start_date="2025-01-01")

    @dg.asset(key=["raw", "police__street_crimes"], partitions_def=monthly)
    def crimes():
        pass

    @dg.asset(key=["raw", "nhs__ae_attendances"], partitions_def=monthly)
    def ae():
        pass

    @dg.asset(key=["link", "person_records"], deps=[crimes, ae])
    def person_records():
        pass

    defs = apply_feed_freshness(dg.Definitions(assets=[crimes, ae, person_records]),
                                {"raw/nhs__ae_attendances": 10})
    graph = defs.resolve_asset_graph()
    assert graph.get(crimes.key).freshness_policy.deadline_cron == "0 9 5 * *"
    assert graph.get(ae.key).freshness_policy.deadline_cron == "0 9 10 * *"
    assert graph.get(person_records.key).freshness_policy is None
