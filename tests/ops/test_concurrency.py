"""DuckDB's single writer: two overlapping runs writing the same file neither fail nor corrupt each other.

Two real runs in two processes load different months into ``identifiable.duckdb``; each holds the file
for a while and logs when its step entered and when it held the file. The second run is launched once the
first one's step is inside the asset, and is up, about to ask for its slot, while the first still holds the file.
With the pool limit from ``infra/dagster.local.yaml`` the second run's step does not even start until the
first released the ``identifiable_writer`` slot. The control (Dagster's default instance, no pool limit) shows
the runs really overlap: both steps are inside the asset at once, one blocked on DuckDB's file lock.

(Why the second waits for the first to enter: on SQLite storage Dagster claims a pool slot with a SELECT ... FOR
UPDATE that SQLite ignores, so two claims in the same few milliseconds can both win. The local profile is
single-machine and its refreshes run one after another; the production profile's Postgres storage locks the
slot row. Two claims milliseconds apart are a Dagster-on-SQLite limit, not what this test is about.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.lib.ops.profiles import dagster_yaml_template
from orchestration.runner import instance_for
from tests.ops.conftest import write_drop

ROOT = Path(__file__).resolve().parents[2]
HOLD = 30.0  # the most a feed step holds its file waiting for the other run (fixture_location._hold)


def _two_overlapping_runs(settings, dagster_yaml: Path | None, tmp_path):
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    if dagster_yaml:
        shutil.copyfile(dagster_yaml, home / "dagster.yaml")
        instance_for(settings).dispose()  # storage and pool slots created before the race, as refresh/ui do
    else:
        dg.DagsterInstance.from_config(str(home)).dispose()  # Dagster's defaults: no pools at all
    write_drop("police", "street_crimes", "2025-01-04", ["jan1", "jan2"])
    write_drop("police", "street_crimes", "2025-02-04", ["feb1"])
    log, entered, ready = tmp_path / "holds.log", tmp_path / "entered.log", tmp_path / "ready.log"
    env = {**os.environ, "PLACELINK_HOME": str(settings.home), "PLACELINK_TEST_HOLD_SECONDS": str(HOLD),
           "PLACELINK_TEST_HOLD_LOG": str(log), "PLACELINK_TEST_ENTER_LOG": str(entered),
           "PLACELINK_TEST_READY_LOG": str(ready)}
    start = time.monotonic()

    def launch(pk: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "tests.ops.run_one_partition", str(home), pk], cwd=ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    procs = [launch("2025-01-01")]
    while not (entered.exists() and entered.read_text().strip()):
        assert procs[0].poll() is None, procs[0].communicate()[1][-3000:]
        assert time.monotonic() - start < 180, "the first run's step never started"
        time.sleep(0.1)
    procs.append(launch("2025-02-01"))
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-3000:] for o in outs]
    holds = sorted(tuple(map(float, line.split()[1:])) for line in log.read_text().splitlines())
    assert len(holds) == 2
    # the second run was up, about to ask for its slot, while the first still held the file: the runs overlapped
    second_ready = float(dict(line.split() for line in ready.read_text().splitlines())["2025-02-01"])
    assert second_ready < holds[0][2], "the second run started after the first had finished: no overlap tested"
    with duckdb.connect(str(settings.identifiable_db), read_only=True) as con:
        rows = con.execute("select part::text, count(*) from raw.police__street_crimes group by 1 order by 1").fetchall()
    assert rows == [("2025-01-01", 2), ("2025-02-01", 1)]  # both months, nothing lost or doubled
    return holds, time.monotonic() - start


@pytest.mark.slow
def test_pool_serialises_two_overlapping_writers(settings, tmp_path):
    (first_entered, _, first_released), (second_entered, _, _) = _two_overlapping_runs(
        settings, dagster_yaml_template("local"), tmp_path)[0]
    assert second_entered >= first_released  # the second step waited for the slot, outside DuckDB
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    assert instance.event_log_storage.get_concurrency_info("identifiable_writer").slot_count == 1
    assert {r.status for r in instance.get_runs()} == {dg.DagsterRunStatus.SUCCESS}


@pytest.mark.slow
def test_control_without_pool_limits_the_steps_overlap(settings, tmp_path):
    (first_entered, _, first_released), (second_entered, _, _) = _two_overlapping_runs(
        settings, None, tmp_path)[0]
    # both steps ran at once; only DuckDBResource's connect retries kept the second from failing
    assert second_entered < first_released


def test_instance_for_creates_the_writer_pools_before_any_run(settings):
    """Pools exist with one slot each before the first step claims one (no lazy, racy creation)."""
    instance = instance_for(settings)
    try:
        infos = {p: instance.event_log_storage.get_concurrency_info(p) for p in ("identifiable_writer", "warehouse_writer")}
        assert {p: i.slot_count for p, i in infos.items()} == {"identifiable_writer": 1, "warehouse_writer": 1}
        assert instance.get_runs() == []
    finally:
        instance.dispose()
    instance_for(settings).dispose()  # idempotent: a second call neither fails nor adds slots
    again = dg.DagsterInstance.from_config(str(settings.dagster_home))
    assert again.event_log_storage.get_concurrency_info("identifiable_writer").slot_count == 1
