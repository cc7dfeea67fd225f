"""Retention: delete every record older than its feed's agreed retention period, everywhere, and log it.

For each feed contract, ``cutoff = today - agreement.retention_months``. Records whose event date is before
the cutoff are deleted from:

* the identifiable zone: ``raw.<partner>__<feed>`` (by the contract's event-date column, else the drop
  month ``_partition``), every table keyed by the standard ``record_id`` (``link.*``) for those records,
  and ``ops.quarantine`` rows of drops before the cutoff;
* the warehouse: ``src.<partner>__<feed>`` and every other base table that has ``partner``, ``feed`` and
  ``event_date`` columns (e.g. ``intermediate.int_events_joined_to_places`` when it is a table);
* ``landing/<partner>/<feed>/<YYYY-MM-DD>.*`` drops dated before the cutoff (a drop only holds events
  from before its date, so all of it has expired).

Place-level aggregates (marts of counts) hold no records; the next ``placelink build`` recomputes them
from what remains. Views need nothing. Every run appends one ``retention`` audit event with the counts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta

from orchestration.lib.config import Settings
from orchestration.lib.governance._tables import base_tables, open_zone, qualified
from orchestration.lib.governance.audit import record_event
from orchestration.lib.governance.register import read_feed_agreements
from orchestration.lib.landing import leading_date

ZONES = ("identifiable", "warehouse", "landing")


@dataclass
class RetentionResult:
    today: dt.date
    dry_run: bool
    deleted: list[dict[str, Any]] = field(default_factory=list)  # zone, table/file, feed, cutoff, rows

    @property
    def total(self) -> int:
        return sum(d["rows"] for d in self.deleted)


def cutoff_for(retention_months: int, today: dt.date) -> dt.date:
    """Events strictly before this date have expired."""
    return today - relativedelta(months=int(retention_months))


def apply_retention(settings: Settings, *, today: dt.date | None = None, dry_run: bool = False,
                    feeds_dir: Path | None = None, zones: tuple[str, ...] = ZONES) -> RetentionResult:
    """Delete (or with ``dry_run`` only count) expired records in ``zones``; audit what was deleted."""
    today = today or dt.date.today()
    result = RetentionResult(today=today, dry_run=dry_run)
    feeds = [f for f in read_feed_agreements(feeds_dir) if f["retention_months"]]
    if "identifiable" in zones:
        _identifiable(settings, feeds, today, dry_run, result)
    if "warehouse" in zones:
        _warehouse(settings, feeds, today, dry_run, result)
    if "landing" in zones:
        _landing(settings, feeds, today, dry_run, result)
    record_event(settings, action="retention_dry_run" if dry_run else "retention", target=",".join(zones),
                 purpose="retention", details={"today": today, "deleted": result.deleted, "total": result.total})
    return result


def _count_then_delete(con, table: str, where: str, params: list, dry_run: bool) -> int:
    n = con.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()[0]
    if n and not dry_run:
        con.execute(f"DELETE FROM {table} WHERE {where}", params)
    return n


def _identifiable(settings, feeds, today, dry_run, result) -> None:
    with open_zone(settings.identifiable_db, read_only=dry_run) as con:
        if con is None:
            return
        tables = base_tables(con)
        if not dry_run:
            con.execute("BEGIN TRANSACTION")  # a zone's deletions all happen, or none
        for f in feeds:
            cutoff = cutoff_for(f["retention_months"], today)
            raw = ("raw", f["table"])
            expired: list[str] = []
            if raw in tables:
                from orchestration.lib.contracts import snake_case  # the ingest rule for column names

                ev = snake_case(f["event_date_column"]) if f["event_date_column"] else None
                column = ev if ev in tables[raw] else "_partition"
                where = f'TRY_CAST("{column}" AS DATE) < ?'
                if "_record_id" in tables[raw]:
                    expired = [r[0] for r in con.execute(
                        f"SELECT DISTINCT CAST(_record_id AS VARCHAR) FROM {qualified(*raw)} WHERE {where}",
                        [cutoff]).fetchall()]
                n = _count_then_delete(con, qualified(*raw), where, [cutoff], dry_run)
                result.deleted.append({"zone": "identifiable", "table": ".".join(raw), "feed": f["table"],
                                       "cutoff": cutoff.isoformat(), "by": column, "rows": n})
            link_ids = [f"{f['partner']}.{f['feed']}:{r}" for r in expired]
            for (schema, table), cols in tables.items():
                if schema == "raw":
                    continue
                name = qualified(schema, table)
                if "record_id" in cols and link_ids:
                    where = "record_id IN (SELECT unnest(?))"
                    n = _count_then_delete(con, name, where, [link_ids], dry_run)
                elif {"partner", "feed", "partition"} <= cols and "rows_loaded" not in cols:
                    # ops.quarantine, by drop month (ops.load_log is a log of drops, not records: kept)
                    where = "partner = ? AND feed = ? AND TRY_CAST(\"partition\" AS DATE) < ?"
                    n = _count_then_delete(con, name, where, [f["partner"], f["feed"], cutoff], dry_run)
                else:
                    continue
                if n:
                    result.deleted.append({"zone": "identifiable", "table": f"{schema}.{table}", "feed": f["table"],
                                           "cutoff": cutoff.isoformat(), "by": "record_id/partition", "rows": n})
        if not dry_run:
            con.execute("COMMIT")


def _warehouse(settings, feeds, today, dry_run, result) -> None:
    with open_zone(settings.warehouse_db, read_only=dry_run) as con:
        if con is None:
            return
        tables = base_tables(con)
        if not dry_run:
            con.execute("BEGIN TRANSACTION")  # a zone's deletions all happen, or none
        for f in feeds:
            cutoff = cutoff_for(f["retention_months"], today)
            for (schema, table), cols in tables.items():
                name = qualified(schema, table)
                if (schema, table) == ("src", f["table"]) and "event_date" in cols:
                    where, params = "TRY_CAST(event_date AS DATE) < ?", [cutoff]
                elif {"partner", "feed", "event_date"} <= cols:
                    where = "partner = ? AND feed = ? AND TRY_CAST(event_date AS DATE) < ?"
                    params = [f["partner"], f["feed"], cutoff]
                else:
                    continue
                n = _count_then_delete(con, name, where, params, dry_run)
                if n or schema == "src":
                    result.deleted.append({"zone": "warehouse", "table": f"{schema}.{table}", "feed": f["table"],
                                           "cutoff": cutoff.isoformat(), "by": "event_date", "rows": n})
        if not dry_run:
            con.execute("COMMIT")


def _landing(settings, feeds, today, dry_run, result) -> None:
    for f in feeds:
        cutoff = cutoff_for(f["retention_months"], today)
        folder = settings.landing / str(f["partner"]) / str(f["feed"])
        for path in sorted(folder.glob("*")) if folder.exists() else []:
            drop_date = leading_date(path.name)  # the landing rule's date: `_v2` drops and backups age too
            if drop_date is None:
                continue  # not a dated drop: leave it for a person to look at (ingest reports it)
            if drop_date < cutoff:
                if not dry_run:
                    path.unlink()
                result.deleted.append({"zone": "landing", "table": str(path.relative_to(settings.home)),
                                       "feed": f["table"], "cutoff": cutoff.isoformat(), "by": "drop date", "rows": 1})
