"""A step meeting another process's DuckDB lock waits a bounded time, then fails with the lock error (which the
transient retry policy retries); the zone's file is closed whether the step's body succeeded or not."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import duckdb
import pytest

from orchestration.defs.resources import ZoneDuckDBResource, connect_waiting

HOLD = ("import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
        "sys.stdin.readline(); con.close()")


def _holder(db) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_held_lock_is_waited_for_a_bounded_time_then_raised(tmp_path):
    db = tmp_path / "zone.duckdb"
    holder = _holder(db)
    try:
        start = time.monotonic()
        with pytest.raises(duckdb.IOException):
            connect_waiting(str(db), {}, 1.0)
        waited = time.monotonic() - start
        assert 0.6 <= waited < 5, waited   # it did wait (0.1 + 0.2 + 0.4 s), and not dagster-duckdb's ~102 s
    finally:
        holder.communicate("release\n", timeout=30)


def test_a_lock_released_while_waiting_is_taken(tmp_path):
    db = tmp_path / "zone.duckdb"
    holder = _holder(db)
    threading.Timer(0.5, lambda: holder.communicate("release\n", timeout=30)).start()
    con = connect_waiting(str(db), {}, 30.0)
    con.execute("create table t as select 1 as n")
    con.close()


def test_the_zone_file_is_closed_when_the_body_fails(tmp_path):
    db = tmp_path / "zone.duckdb"
    resource = ZoneDuckDBResource(database=str(db))
    with pytest.raises(ValueError), resource.get_connection() as con:
        con.execute("create table t as select 1 as n")
        raise ValueError("the step's body failed")
    # another process can now write the file: this process let go of it
    holder = _holder(db)
    holder.communicate("release\n", timeout=30)
    assert holder.returncode == 0
