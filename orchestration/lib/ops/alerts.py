"""Where run-failure alerts go: a pluggable sink, a JSON-lines log file by default.

A partnership plugs in its own channel by implementing :class:`AlertSink` (one ``send`` method) or by
pointing :class:`WebhookSink` at a Microsoft Teams / Slack incoming webhook. Sending an alert must never
break the thing that failed, so sinks raise only for misconfiguration, and callers log anything else.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from orchestration.lib.config import Settings


@dataclass(frozen=True)
class Alert:
    """One thing a person should look at: what failed, where, and how to find out more."""

    title: str
    message: str
    run_id: str | None = None
    job_name: str | None = None
    severity: str = "error"
    details: dict = field(default_factory=dict)
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class AlertSink(Protocol):
    def send(self, alert: Alert) -> None: ...


class JsonLinesFileSink:
    """Append each alert as one JSON object per line (default: ``<home>/logs/alerts.log``)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def send(self, alert: Alert) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(alert.to_dict(), default=str, sort_keys=True) + "\n")

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


class WebhookSink:
    """POST ``{"text": ...}`` to an incoming webhook (Teams and Slack both accept this shape).

    Uses the standard library on purpose: one JSON POST does not justify another dependency.
    """

    def __init__(self, url: str, timeout: float = 10.0):
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"alert webhook URL must start with https:// (got {url!r}); check PLACELINK_ALERT_WEBHOOK")
        self.url = url
        self.timeout = timeout

    def send(self, alert: Alert) -> None:
        text = f"[placelink {alert.severity}] {alert.title}\n{alert.message}"
        if alert.run_id:
            text += f"\nrun: {alert.run_id}"
        body = json.dumps({"text": text}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout):  # noqa: S310 (URL checked above)
            pass


class FanOutSink:
    """Send to several sinks; the log file always gets the alert even if a webhook is down."""

    def __init__(self, *sinks: AlertSink):
        self.sinks = sinks

    def send(self, alert: Alert) -> None:
        errors = []
        for sink in self.sinks:
            try:
                sink.send(alert)
            except Exception as exc:  # one broken channel must not silence the others
                errors.append(f"{type(sink).__name__}: {exc}")
        if errors:
            raise RuntimeError("alert not delivered to every sink: " + "; ".join(errors))


def default_sink(settings: Settings) -> AlertSink:
    """The log file under the home, plus a webhook when ``PLACELINK_ALERT_WEBHOOK`` is set."""
    log = JsonLinesFileSink(settings.logs_dir / "alerts.log")
    url = os.environ.get("PLACELINK_ALERT_WEBHOOK")
    return FanOutSink(log, WebhookSink(url)) if url else log
