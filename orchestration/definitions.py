"""The Dagster code location: load every domain under ``orchestration/defs`` and add the shared resources.

Kept thin on purpose: each domain folder (one per partner-facing stage) exports a ``defs``
(``dagster.Definitions``) and this file merges them.
"""

from __future__ import annotations

import importlib
import pkgutil

import dagster as dg

from orchestration import defs as defs_pkg
from orchestration.defs.ops.policies import apply_feed_freshness
from orchestration.defs.resources import shared_resources
from orchestration.lib.config import Settings
from orchestration.lib.filemodes import restrict_umask

# The code location is where every Dagster run process starts (code server, run workers, in-process
# tests): files its runs create (DuckDB zones and .wal files, the audit log, review queues) are owner-only.
restrict_umask()


def _domain_definitions() -> list[dg.Definitions]:
    found = []
    for module in sorted(pkgutil.iter_modules(defs_pkg.__path__), key=lambda m: m.name):
        if not module.ispkg:
            continue
        mod = importlib.import_module(f"{defs_pkg.__name__}.{module.name}")
        domain_defs = getattr(mod, "defs", None)
        if isinstance(domain_defs, dg.Definitions):
            found.append(domain_defs)
    return found


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Every domain's definitions with the shared resources bound to ``settings`` (default: the environment's,
    through ``dg.EnvVar``: what ``dagster dev`` loads)."""
    merged = dg.Definitions.merge(*_domain_definitions(), dg.Definitions(resources=shared_resources(settings)))
    # cross-cutting: every monthly partner feed shows as late when its drop has not arrived by the due day
    return apply_feed_freshness(merged)


defs = build_definitions()
