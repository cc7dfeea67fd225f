"""A failed nightly strands nothing: data errors fail fast, infrastructure errors are retried, pending months are
picked up by the next plain ``placelink refresh``.

On a copy of the tiny county after its full refresh (the shared session home), a new month lands for two feeds:
police street crimes (good) and fire safe-and-well visits (a header missing a contract column). The first nightly
(the runner, in process) must fail with the schema change reported once and never retried, while the police month
goes on to the marts. The fire drop is then corrected and the next refresh runs while another process holds
the identifiable zone's DuckDB write lock: the fire load hits the lock,
is retried, loads once the lock is released, and the marts hold both feeds' new month; nothing stays pending.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.lib.config import get_settings
from orchestration.lib.errors import PlacelinkError
from orchestration.runner import _load_defs, instance_for, refresh

pytestmark = pytest.mark.slow

GOOD = ("police", "street_crimes", "Crime ID", "Month")
BAD = ("fire", "safe_and_well_visits", "VisitID", "VisitDate")
MISSING = "Postcode"  # the column the bad drop leaves out


def _step(feed) -> str:
    return f"raw__{feed[0]}__{feed[1]}"


def _next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12}-{mon % 12 + 1:02d}"


def _new_drop(home: Path, feed, day: str, *, drop_column: str | None = None) -> Path:
    """The feed's newest drop, re-sent as a new month: new record ids, event dates in the month before the drop,
    optionally without one column (header and rows)."""
    partner, name, id_column, date_column = feed
    newest = max((home / "landing" / partner / name).glob("*.*"))
    delimiter = "\t" if "\t" in newest.read_text().splitlines()[0] else ","
    with newest.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=delimiter))
    header = [c for c in rows[0] if c != drop_column]
    previous = f"{int(day[:4]) - (day[5:7] == '01')}-{(int(day[5:7]) - 2) % 12 + 1:02d}"
    target = newest.with_name(f"{day}{newest.suffix}")
    with target.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, header, delimiter=delimiter, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            row[id_column] = "9" + row[id_column][::-1] if row[id_column].isdigit() else row[id_column][::-1]
            row[date_column] = previous if len(row[date_column]) == 7 else f"{previous}-15"
            writer.writerow(row)
    return target


def _events(settings, month: str) -> dict[str, int]:
    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        return dict(con.execute("select feed, count(*) from intermediate.int_events_joined_to_places "
                                "where partition_month = cast(? as date) group by 1", [month]).fetchall())


def _step_events(instance, run_id, step_key) -> list[dg.DagsterEventType]:
    return [e.dagster_event.event_type for e in instance.all_logs(run_id)
            if e.dagster_event and e.dagster_event.step_key == step_key]


@pytest.fixture(scope="module")
def night(refreshed_tiny_county, tmp_path_factory):
    """A copy of the refreshed tiny county and the month that lands next."""
    source, _ = refreshed_tiny_county
    home = tmp_path_factory.mktemp("recovery") / "home"
    shutil.copytree(source.home, home, ignore=shutil.ignore_patterns("*.lock"))
    settings = get_settings(home=home, env="local").ensure()
    newest = max(p.name[:7] for p in (home / "landing").glob("*/*/*.*"))
    month = _next_month(newest)
    return settings, month


def test_a_bad_drop_fails_fast_strands_nothing_and_the_next_refresh_recovers_through_a_lock(night, monkeypatch):
    settings, month = night
    pk = f"{month}-01"
    monkeypatch.setenv("PLACELINK_HOME", str(settings.home))
    instance = instance_for(settings)
    graph = _load_defs(settings).resolve_asset_graph()
    from orchestration.defs.ops.planning import plan_refresh

    assert plan_refresh(graph, instance, settings.landing).empty  # the full refresh left nothing pending
    _new_drop(settings.home, GOOD, f"{month}-02")
    bad = _new_drop(settings.home, BAD, f"{month}-03", drop_column=MISSING)
    before = {r.run_id for r in instance.get_runs()}

    # --- night 1: the schema change fails its step once, police's month still reaches the marts
    with pytest.raises(PlacelinkError) as failure:
        refresh(settings=settings, log_level="WARNING")
    message = str(failure.value)
    assert message.count("schema change") == 1 and f"missing: ['{MISSING}']" in message
    assert f"still pending for the next refresh: raw/fire__safe_and_well_visits {month}" in message
    runs = {r.run_id: r for r in instance.get_runs() if r.run_id not in before}
    load = next(r for r in runs.values() if r.job_name == "ops_partitioned_refresh_job")
    assert load.status == dg.DagsterRunStatus.FAILURE
    fire = _step_events(instance, load.run_id, _step(BAD))
    # a DataError is not retried: one attempt (an in-process retry logs STEP_RESTARTED, not a second STEP_START)
    assert fire.count(dg.DagsterEventType.STEP_START) + fire.count(dg.DagsterEventType.STEP_RESTARTED) == 1
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in fire and dg.DagsterEventType.STEP_FAILURE in fire
    assert dg.DagsterEventType.STEP_SUCCESS in _step_events(instance, load.run_id, _step(GOOD))
    [downstream] = [r for r in runs.values() if r.job_name == "ops_downstream_refresh_job"]
    assert downstream.status == dg.DagsterRunStatus.SUCCESS
    assert downstream.tags.get("placelink/months") == pk
    after_night_1 = _events(settings, pk)
    assert after_night_1.get("street_crimes", 0) > 0 and "safe_and_well_visits" not in after_night_1
    plan = plan_refresh(graph, instance, settings.landing)
    assert plan.feeds == {"raw/fire__safe_and_well_visits": [pk]} and plan.unfinished == {}

    # --- night 2: the partner re-sends the drop; the next `placelink refresh` runs while another process holds
    # the zone's write lock (released as soon as the fire load has met it and been put up for retry)
    bad.unlink()
    _new_drop(settings.home, BAD, f"{month}-03")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
                               "sys.stdin.readline(); con.close()", str(settings.identifiable_db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    before = {r.run_id for r in instance.get_runs()}
    finished, retried = threading.Event(), []

    def release_once_retried():
        try:
            retried.append(_wait_for_retry(instance_for(settings), before, _step(BAD), finished))
        finally:
            holder.communicate("release\n", timeout=30)

    watcher = threading.Thread(target=release_once_retried, daemon=True)
    watcher.start()
    try:
        # in this process (the CLI's own path, `placelink refresh`, is the same runner: tests/attack/test_erasure.py
        # runs it); the retry delay is the suite's (tests/conftest.py), the policy's count and backoff its own
        refresh(settings=settings, log_level="WARNING")
    finally:
        finished.set()
        watcher.join(timeout=60)
    assert retried == [True]
    [load] = [r for r in instance.get_runs() if r.run_id not in before and r.job_name == "ops_partitioned_refresh_job"]
    fire = _step_events(instance, load.run_id, _step(BAD))
    assert fire.count(dg.DagsterEventType.STEP_UP_FOR_RETRY) >= 1 and fire[-1] == dg.DagsterEventType.STEP_SUCCESS
    retry = next(e for e in instance.all_logs(load.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY))
    error = retry.dagster_event.event_specific_data.error  # RetryRequestedFromPolicy, caused by DuckDB's lock
    # DuckDB's "Could not set lock on file" (an IOException; where library messages are withheld, only its type)
    assert "IOException" in error.message + (error.cause.message if error.cause else "")
    after_night_2 = _events(settings, pk)
    assert after_night_2.get("safe_and_well_visits", 0) > 0
    assert after_night_2["street_crimes"] == after_night_1["street_crimes"]
    assert plan_refresh(graph, instance, settings.landing).empty


def _wait_for_retry(instance, before: set[str], step_key: str, finished: threading.Event,
                    timeout: float = 600) -> bool:
    """Until the refresh's load run has put ``step_key`` up for retry (it met the lock), or the refresh ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not finished.is_set():
        for run in instance.get_runs(limit=5):
            if run.run_id not in before and dg.DagsterEventType.STEP_UP_FOR_RETRY in _step_events(
                    instance, run.run_id, step_key):
                return True
        time.sleep(0.5)
    return False
