"""A tiny code location shaped like placelink's: two partner feeds, matching, a mart, plus the real ops defs.

Feed assets read their month's drops from ``landing/<partner>/<feed>/`` and append rows to the real
identifiable DuckDB file; downstream assets read all months and write the warehouse. Each writer holds
its DuckDB file for ``PLACELINK_TEST_HOLD_SECONDS`` so overlapping runs really overlap. Loadable by
``dagster dev -f`` (module-level ``defs``) and by tests (``build_fixture_defs()``).
"""

from __future__ import annotations

import os
import time

import dagster as dg
from dagster_duckdb import DuckDBResource

from orchestration.defs.ops import build_ops_definitions
from orchestration.defs.ops.policies import data_errors_fail_fast, feed_freshness_policy
from orchestration.defs.resources import settings_resource
from orchestration.lib.config import get_settings
from orchestration.lib.errors import DataError
from orchestration.lib.ops.drops import list_drops

MONTHLY = dg.MonthlyPartitionsDefinition(start_date="2024-11-01", end_offset=1)
FEEDS = [("police", "street_crimes"), ("nhs", "ae_attendances")]


def _enter(context: dg.AssetExecutionContext) -> float:
    """Note that this step is inside its asset now (tells a test, and the other run's :func:`_hold`)."""
    entered = time.time()
    if os.environ.get("PLACELINK_TEST_ENTER_LOG"):
        with open(os.environ["PLACELINK_TEST_ENTER_LOG"], "a") as fh:
            fh.write(f"{context.run_id} {entered}\n")
    return entered


def _hold(name: str, entered: float, context: dg.AssetExecutionContext, pool: str):
    """Keep the DuckDB file open while another run is waiting on it (tests of overlapping runs), and log when we
    held it.

    A feed step holds until the other run is really waiting: its step is inside the asset (blocked on DuckDB's
    file lock: the control without pools) or queued for this pool's slot (the pool test), then a moment more.
    ``PLACELINK_TEST_HOLD_SECONDS`` is only the cap (a fixed sleep long enough for the other run to start cost
    the suite about 30 s a run).
    """
    cap = float(os.environ.get("PLACELINK_TEST_HOLD_SECONDS", "0"))
    start = time.time()
    if cap:
        while time.time() - start < cap and not _other_run_waits(context, pool):
            time.sleep(0.1)
        time.sleep(min(SETTLE, max(0.0, cap - (time.time() - start))))
    log = os.environ.get("PLACELINK_TEST_HOLD_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{name} {entered or start} {start} {time.time()}\n")


#: after the other run is seen waiting, how long to keep holding so it really meets the lock or the slot
SETTLE = 1.0


def _other_run_waits(context: dg.AssetExecutionContext, pool: str) -> bool:
    path = os.environ.get("PLACELINK_TEST_ENTER_LOG")
    if path and os.path.exists(path):
        with open(path) as fh:
            if any(line.split()[0] != context.run_id for line in fh if line.strip()):
                return True   # the other step is inside the asset too
    info = context.instance.event_log_storage.get_concurrency_info(pool)
    return bool(info.pending_run_ids - {context.run_id})   # the other step is queued for the slot


def _feed_asset(partner: str, feed: str):
    @dg.asset(
        key=["raw", f"{partner}__{feed}"], group_name=partner, partitions_def=MONTHLY,
        pool="identifiable_writer", owners=[f"team:{partner}"], kinds={"duckdb"},
        freshness_policy=feed_freshness_policy(),
    )
    def _asset(context, identifiable_db: DuckDBResource) -> dg.MaterializeResult:
        entered = _enter(context)
        pk = context.partition_key
        rows = []
        for drop in list_drops(get_settings().landing, partner, feed):
            if drop.partition != pk:
                continue
            for line_no, line in enumerate(drop.path.read_text().splitlines()[1:], start=2):
                if line == "BROKEN":
                    with data_errors_fail_fast():
                        raise DataError("row is not CSV", where=f"{drop.path}:{line_no}", fix="ask the partner")
                rows.append((pk, drop.path.name, line))
        table = f"raw.{partner}__{feed}"
        with identifiable_db.get_connection() as con:
            con.execute("create schema if not exists raw")
            con.execute(f"create table if not exists {table} (part date, file text, line text)")
            con.execute(f"delete from {table} where part = ?", [pk])
            if rows:
                con.executemany(f"insert into {table} values (?, ?, ?)", rows)
            _hold(f"{table}:{pk}", entered, context, "identifiable_writer")
        return dg.MaterializeResult(metadata={"rows": len(rows)})

    return _asset


feed_assets = [_feed_asset(p, f) for p, f in FEEDS]


@dg.asset(key=["link", "person_records"], group_name="matching", deps=[a.key for a in feed_assets],
          pool="identifiable_writer")
def person_records(context, identifiable_db: DuckDBResource) -> dg.MaterializeResult:
    entered = _enter(context)
    with identifiable_db.get_connection() as con:
        con.execute("create schema if not exists link")
        union = " union all ".join(f"select part, line from raw.{p}__{f}" for p, f in FEEDS)
        con.execute(f"create or replace table link.person_records as {union}")
        n = con.execute("select count(*) from link.person_records").fetchone()[0]
        _hold("link.person_records", entered, context, "identifiable_writer")
    return dg.MaterializeResult(metadata={"rows": n})


@dg.asset(key=["marts", "lsoa_monthly_indicators"], group_name="marts", deps=[person_records],
          pool="warehouse_writer")
def lsoa_monthly_indicators(context, warehouse_db: DuckDBResource) -> dg.MaterializeResult:
    entered = _enter(context)
    with warehouse_db.get_connection() as con:
        con.execute("create schema if not exists marts")
        con.execute("create or replace table marts.lsoa_monthly_indicators as select 1 as n")
        _hold("marts.lsoa_monthly_indicators", entered, context, "warehouse_writer")
    return dg.MaterializeResult(metadata={"rows": 1})


def build_fixture_defs() -> dg.Definitions:
    s = get_settings()
    return dg.Definitions.merge(
        dg.Definitions(
            assets=[*feed_assets, person_records, lsoa_monthly_indicators],
            resources={"identifiable_db": DuckDBResource(database=str(s.identifiable_db)),
                       "warehouse_db": DuckDBResource(database=str(s.warehouse_db)),
                       "placelink_settings": settings_resource(s)},
        ),
        build_ops_definitions(),
    )


defs = build_fixture_defs()
