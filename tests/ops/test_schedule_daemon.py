"""The scheduler daemon's own loop evaluates the 02:00 Europe/London tick and queues the right runs.

Uses Dagster's scheduler iteration (what ``dagster-daemon run`` calls every few seconds) against a
real SQLite instance with the local profile, the fixture code location served by a real gRPC code
server, and the clock frozen around 02:00 London. Dagster exposes no public hook to step the
scheduler at a chosen time, so this uses its test utilities (``dagster._core.test_utils``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time, load_remote_repo
from dagster._core.workspace.load_target import PythonFileTarget
from dagster._scheduler.scheduler import launch_scheduled_runs
from dagster._time import get_current_datetime

from orchestration.defs.ops.planning import REFRESH_TAG
from orchestration.runner import instance_for
from tests.ops.conftest import write_drop
from tests.ops.webserver import ROOT

LONDON = ZoneInfo("Europe/London")


def _iterate(ctx, when):
    with freeze_time(when):
        list(launch_scheduled_runs(ctx, logging.getLogger("scheduler"), get_current_datetime(), {}))


@pytest.mark.slow
def test_daemon_tick_at_0200_london_queues_one_run_per_new_month(settings):
    old = time.time() - 3600
    write_drop("police", "street_crimes", "2025-06-04", ["c1"], mtime=old)
    write_drop("nhs", "ae_attendances", "2025-07-02", ["a1"], mtime=old)
    instance = instance_for(settings)  # local profile: SQLite + QueuedRunCoordinator
    target = PythonFileTarget(python_file=str(ROOT / "tests" / "ops" / "fixture_location.py"), attribute=None,
                              working_directory=str(ROOT), location_name="placelink")
    with create_test_daemon_workspace_context(target, instance) as ctx:
        schedule = load_remote_repo(ctx, "__repository__").get_schedule("nightly_refresh_schedule")
        # summer time: 02:00 BST is 01:00 UTC. The first iteration only records the schedule's start.
        _iterate(ctx, dt.datetime(2025, 7, 5, 1, 50, tzinfo=LONDON))
        assert instance.get_runs() == []
        _iterate(ctx, dt.datetime(2025, 7, 5, 2, 0, 20, tzinfo=LONDON))

        [tick] = instance.get_ticks(schedule.get_remote_origin_id(), schedule.selector_id)
        assert tick.status == TickStatus.SUCCESS
        assert dt.datetime.fromtimestamp(tick.timestamp, dt.UTC) == dt.datetime(2025, 7, 5, 1, 0, tzinfo=dt.UTC)
        runs = {r.tags["dagster/partition"]: r for r in instance.get_runs()}
        assert sorted(runs) == ["2025-06-01", "2025-07-01"]
        assert runs["2025-06-01"].asset_selection == {dg.AssetKey(["raw", "police__street_crimes"])}
        assert runs["2025-07-01"].asset_selection == {dg.AssetKey(["raw", "nhs__ae_attendances"])}
        assert {r.status for r in runs.values()} == {dg.DagsterRunStatus.QUEUED}  # waiting for the run queue
        assert {r.tags[REFRESH_TAG] for r in runs.values()} == {"nightly-2025-07-05"}
        assert {r.job_name for r in runs.values()} == {"ops_partitioned_refresh_job"}

        # the same tick evaluated again (daemon restart) does not queue the runs twice
        _iterate(ctx, dt.datetime(2025, 7, 5, 2, 1, tzinfo=LONDON))
        assert len(instance.get_runs()) == 2
