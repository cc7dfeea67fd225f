"""Turn what a pipeline run materialised into audit events (used by the Dagster audit sensor and the CLI).

Kept free of Dagster: the sensor passes plain asset key paths. The action follows the zone the asset writes
(``raw`` = ingest, ``link`` = link, ``src`` = pseudonymise, ``published`` = export, ``ml`` = train/score,
everything else = build); the agreement and purpose come from the feed contract for per-feed assets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestration.lib.config import Settings
from orchestration.lib.governance.audit import record_events
from orchestration.lib.governance.register import read_feed_agreements

ACTIONS = {"raw": "ingest", "link": "link", "src": "pseudonymise", "published": "export", "ml": "train"}
#: CLI commands that touch data -> audit action (the rest, e.g. `where`, are not audited)
CLI_ACTIONS = {"generate": "generate", "ingest": "ingest", "link": "link", "match": "link",
               "pseudonymise": "pseudonymise", "build": "build", "publish": "export", "train": "train",
               "score": "score", "refresh": "refresh", "demo": "refresh", "quality": "quality"}


def action_for(key_path: list[str]) -> str:
    return ACTIONS.get(key_path[0], "build") if key_path else "build"


def events_for_run(key_paths: list[tuple[list[str], str | None]], *, feeds_dir: Path | None = None
                   ) -> list[dict[str, Any]]:
    """One event (kwargs for :func:`record_event`) per materialised asset (and partition)."""
    agreements = {f["table"]: f for f in read_feed_agreements(feeds_dir)}
    out = []
    for path, partition in key_paths:
        feed = agreements.get(path[-1]) if path and path[0] in ("raw", "src") else None
        out.append({
            "action": action_for(path), "target": ".".join(path),
            "agreement_id": feed["agreement_id"] if feed else None,
            "purpose": ", ".join(feed["purposes"]) if feed else None,
            "details": {"partition": partition} if partition else {},
        })
    return out


def record_run(settings: Settings, *, run_id: str, job: str, who: str,
               key_paths: list[tuple[list[str], str | None]], status: str = "success",
               feeds_dir: Path | None = None, identity_details: dict[str, str] | None = None) -> int:
    """Append the events of one finished run, once: returns how many (0 when the log already holds the run's
    events, whoever recorded them: the runner that executed it or the daemon's audit sensors).

    ``who`` and ``identity_details`` come from :func:`.identity.run_identity` (the run's OS account, or the
    web tier's identity only where the role file trusts it) or :func:`.identity.current_user`.
    """
    events = events_for_run(key_paths, feeds_dir=feeds_dir)
    return len(record_events(settings, [{**e, "who": who, "role": "engineer",
                                         "details": {**e["details"], "run_id": run_id, "job": job, "status": status,
                                                     "via": "dagster", **(identity_details or {})}}
                                        for e in events], once_per_run=run_id))
