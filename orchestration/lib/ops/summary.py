"""The figures that matter after a refresh, for the closing summary of ``placelink demo``.

Read from where each fact lives, never from what a run meant to do: counts from the identifiable zone's
``ops.load_log`` and link tables (counts only: no value leaves the zone), the marts and the published table
from the warehouse. Linkage F1 and the ethics gate's decisions are metadata of the Dagster assets that computed
them; the caller (which may import Dagster) passes them in, so this module stays free of Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from orchestration.lib.config import Settings


@dataclass
class ModelOutcome:
    name: str
    version: str | None  # None: not trained (e.g. too little history)
    promoted: bool
    decision: str


@dataclass
class Summary:
    received: int = 0
    loaded: int = 0
    quarantined: int = 0
    persons: int = 0
    households: int = 0
    lsoas: int = 0
    months: int = 0
    first_month: str | None = None
    last_month: str | None = None
    cells: int = 0
    suppressed: int = 0
    #: pairwise F1 of the person index against the synthetic county's truth (None without truth/)
    person_f1: float | None = None
    household_f1: float | None = None
    models: list[ModelOutcome] = field(default_factory=list)
    #: dependency warnings and output captured during the refresh: (warnings, path of the log)
    captured: tuple[int, str] | None = None


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    try:
        return con.execute(sql).fetchone()
    except duckdb.CatalogException:  # a stage that has not run yet: its figures stay zero
        return ()


def read_summary(settings: Settings) -> Summary:
    """Counts from the home's DuckDB files (read-only)."""
    s = Summary()
    if settings.identifiable_db.exists():
        with duckdb.connect(str(settings.identifiable_db), read_only=True) as con:
            row = _one(con, "SELECT coalesce(sum(rows_received), 0), coalesce(sum(rows_loaded), 0), "
                            "coalesce(sum(rows_quarantined), 0) FROM ops.load_log")
            if row:
                s.received, s.loaded, s.quarantined = map(int, row)
            s.persons = int((_one(con, "SELECT count(DISTINCT person_id) FROM link.person_index") or [0])[0])
            s.households = int((_one(con, "SELECT count(DISTINCT household_id) FROM link.household_index "
                                          "WHERE household_id IS NOT NULL") or [0])[0])
    if settings.warehouse_db.exists():
        with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
            row = _one(con, "SELECT count(DISTINCT lsoa_code), count(DISTINCT month), min(month)::VARCHAR, "
                            "max(month)::VARCHAR FROM marts.lsoa_monthly_indicators")
            if row:
                s.lsoas, s.months, s.first_month, s.last_month = int(row[0]), int(row[1]), row[2], row[3]
            row = _one(con, "SELECT count(*), count(*) FILTER (WHERE is_suppressed) "
                            "FROM published.place_monthly_indicators")
            if row:
                s.cells, s.suppressed = map(int, row)
    return s


def render(s: Summary) -> list[str]:
    """The summary as lines of plain text (label, figure)."""
    f1 = "no truth/ in this home" if s.person_f1 is None else f"{s.person_f1:.3f}"
    hh = "" if s.household_f1 is None else f" (households {s.household_f1:.3f})"
    lines = [
        f"records       {s.received:,} received, {s.loaded:,} loaded, {s.quarantined:,} quarantined "
        "(reasons in ops.quarantine)",
        f"linked        {s.persons:,} persons in {s.households:,} households; "
        f"pairwise F1 against the synthetic truth {f1}{hh}",
        f"marts         {s.lsoas:,} LSOAs x {s.months} months"
        + (f" ({s.first_month[:7]} .. {s.last_month[:7]})" if s.first_month and s.last_month else ""),
        f"published     {s.cells:,} cells, {s.suppressed:,} suppressed (disclosure control)",
    ]
    def short(text: str, limit: int = 110) -> str:
        return text if len(text) <= limit else text[:limit - 3] + "..."

    if not s.models:
        lines.append("models        none trained")
    for m in s.models:
        if m.version is None:
            lines.append(f"model         {m.name}: not trained ({short(m.decision)})")
        else:
            gate = "passed the ethics gate, promoted" if m.promoted else "refused by the ethics gate"
            lines.append(f"model         {m.name} v{m.version}: {gate} ({short(m.decision)})")
    if s.captured is not None:
        count, path = s.captured
        lines.append(f"warnings      {count} warning(s) from the libraries captured, with their other output, "
                     f"in {path}")
    return lines
