"""Nightly operations: the 02:00 refresh schedule, the jobs it runs, failure alerts.

Imports nothing from other domains: the jobs select assets by partitioning when the merged code location
resolves, so feeds, matching, dbt and ML assets join the nightly refresh as they land. Other domains may
import :mod:`orchestration.defs.ops.policies` (retry/freshness helpers) without an import cycle.
"""

from __future__ import annotations

import dagster as dg

from orchestration.defs.ops.jobs import (
    ops_downstream_refresh_job,
    ops_full_refresh_job,
    ops_partitioned_refresh_job,
)
from orchestration.defs.ops.schedules import (
    nightly_catch_up_schedule,
    nightly_refresh_schedule,
    ops_nightly_downstream_after_failure_sensor,
    ops_nightly_downstream_sensor,
)
from orchestration.defs.ops.sensors import ops_run_failure_alert_sensor


def build_ops_definitions() -> dg.Definitions:
    return dg.Definitions(
        jobs=[ops_partitioned_refresh_job, ops_downstream_refresh_job, ops_full_refresh_job],
        schedules=[nightly_refresh_schedule, nightly_catch_up_schedule],
        sensors=[ops_nightly_downstream_sensor, ops_nightly_downstream_after_failure_sensor,
                 ops_run_failure_alert_sensor],
    )


defs = build_ops_definitions()
