"""Data quality: run the GX suites in ``expectations/suites`` on DuckDB tables, and the partner scorecard.

GX cannot validate a DuckDB table through SQLAlchemy here (docs/design.md), so each table (or one monthly
partition of a raw feed) is read into a DataFrame and validated by :mod:`expectations.runner`.

Plain functions, no Dagster: the asset checks in ``orchestration/defs/quality`` and ``placelink quality``
both call these.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import duckdb
import pandas as pd

from expectations.runner import QualityResult, rules_day, validate_dataframe
from expectations.suite import EARLIER_COPY_COLUMN, SuiteSpec, add_derived_columns, load_suites
from orchestration.lib.config import Settings
from orchestration.lib.errors import PlacelinkError

#: Plausible volume: this partition's rows within [LOW x, HIGH x] the median of up to VOLUME_MONTHS earlier
#: partitions; with fewer than VOLUME_MIN_HISTORY months of history only "not empty" is checked.
VOLUME_MONTHS = 6
VOLUME_MIN_HISTORY = 3
VOLUME_LOW, VOLUME_HIGH = 0.5, 2.0

SCORECARD_TABLE = "quality.feed_scorecard"


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".", 1)
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, name]).fetchall()[0][0])


def read_table(con: duckdb.DuckDBPyConnection, spec: SuiteSpec, partition: str | None = None) -> pd.DataFrame:
    """The table a suite guards as a DataFrame (one ``_partition`` of a raw feed if ``partition`` is given)."""
    if not _table_exists(con, spec.table):
        raise PlacelinkError(f"table {spec.table} does not exist", where=f"{spec.database} database",
                             fix=f"materialise {spec.asset} first (placelink ingest / placelink build)")
    if partition is not None and spec.kind == "feed":
        return con.execute(f'SELECT * FROM {spec.table} WHERE "_partition" = CAST(? AS DATE) ORDER BY "_line"',
                           [partition]).df()
    return con.execute(f"SELECT * FROM {spec.table}").df()


def volume_bounds(con: duckdb.DuckDBPyConnection, partner: str, feed: str, partition: str) -> tuple[int, int | None]:
    """``(min, max)`` rows plausible for ``partition`` given the rows loaded in recent earlier partitions."""
    if not _table_exists(con, "ops.load_log"):
        return 1, None
    history = con.execute(
        """SELECT "partition", sum(rows_loaded) AS rows FROM ops.load_log
           WHERE partner = ? AND feed = ? AND "partition" < CAST(? AS DATE) AND rows_loaded > 0
           GROUP BY 1 ORDER BY 1 DESC LIMIT ?""", [partner, feed, partition, VOLUME_MONTHS]).df()
    if len(history) < VOLUME_MIN_HISTORY:
        return 1, None
    median = float(history["rows"].median())
    return max(1, math.floor(VOLUME_LOW * median)), math.ceil(VOLUME_HIGH * median)


def validate_suite(con: duckdb.DuckDBPyConnection, spec: SuiteSpec, *, partition: str | None = None,
                   settings: Settings, docs: bool = True, docs_index: bool = True,
                   today: pd.Timestamp | None = None) -> QualityResult:
    """Validate the table of ``spec`` (optionally one partition) and build Data Docs under ``<home>/quality``."""
    params: dict = {"today": rules_day(today)}
    if partition is not None and spec.kind == "feed" and spec.volume:
        params["volume_min"], params["volume_max"] = volume_bounds(con, spec.partner, spec.feed, partition)
    df = read_table(con, spec, partition)
    quality_dir = settings.quality_dir if docs else None
    if quality_dir is not None:
        quality_dir.mkdir(parents=True, exist_ok=True)
    result = validate_dataframe(df, spec, params=params, quality_dir=quality_dir, partition=partition,
                                docs_index=docs_index)
    if quality_dir is not None and spec.kind == "feed" and not df.empty:
        store_verdicts(quality_dir / VERDICTS_DIR, spec, partition, df, result, params["today"])
    return result


# --- row verdicts shared by a feed check and the scorecard ---------------------------------------------------
#: Under the quality directory: per feed and month, which rows the feed check found invalid.
VERDICTS_DIR = "verdicts"


#: The verdicts file of a check that validated the whole table (a run over many months: the full refresh).
WHOLE_TABLE = "all"


def _verdicts_file(verdicts_dir: Path, spec: SuiteSpec, month) -> Path:
    name = WHOLE_TABLE if month is None else f"{pd.Timestamp(month):%Y-%m-%d}"
    return Path(verdicts_dir) / spec.name / f"{name}.json"


def store_verdicts(verdicts_dir: Path, spec: SuiteSpec, partition: str | None, df: pd.DataFrame,
                   result: QualityResult, today: pd.Timestamp) -> None:
    """Keep the rows a feed check found invalid (drop file and line, never a value), so the scorecard need not
    validate the same rows again: a county month of the nine feeds is ~15 s of GX, and the nightly refresh
    validated each new month twice (the check, then the scorecard); the full refresh, whose checks validate
    each whole table (``partition`` None), validated every table twice. Stored with what makes it reusable: the
    suite version, the row count and latest load time, and the day the rules were applied on."""
    import json

    rows = df.iloc[sorted(result.invalid_rows())]
    payload = {"suite_version": suite_version(spec), "partition": partition, "rows": len(df),
               "loaded_at": str(df["_loaded_at"].max()), "today": f"{pd.Timestamp(today):%Y-%m-%d}",
               "invalid": [[str(f), int(n)] for f, n in zip(rows["_source_file"], rows["_line"], strict=True)]}
    path = _verdicts_file(verdicts_dir, spec, partition)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)  # a reader never sees half a file


def _stored_invalid(verdicts_dir: Path | None, spec: SuiteSpec, months: list | None, df: pd.DataFrame,
                    today: pd.Timestamp) -> pd.Series | None:
    """Row-invalid flags for ``df`` from the feed check's stored verdicts, or None when they may not apply.

    Only where the check validated exactly these rows, so that even rules comparing rows with each other
    (uniqueness) saw the same rows: one month scored alone against that month's check, or every month
    (``months`` None) against a whole-table check. The rows must not have changed since (row count, latest
    load), the suite must be the same version and the day the same (rules about the future)."""
    import json

    if verdicts_dir is None or (months is not None and len(months) != 1):
        return None
    path = _verdicts_file(verdicts_dir, spec, None if months is None else months[0])
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: validate instead
    keys = pd.MultiIndex.from_arrays([df["_source_file"].astype(str), df["_line"].astype(int)])
    if (stored.get("suite_version") != suite_version(spec) or stored.get("rows") != len(df)
            or stored.get("loaded_at") != str(df["_loaded_at"].max())
            or stored.get("today") != f"{pd.Timestamp(today):%Y-%m-%d}" or not keys.is_unique):
        return None
    invalid = pd.MultiIndex.from_tuples([tuple(k) for k in stored["invalid"]]) if stored["invalid"] else []
    return pd.Series(keys.isin(invalid), index=df.index)


def feed_suite(partner: str, feed: str) -> SuiteSpec:
    for spec in load_suites("feed"):
        if spec.partner == partner and spec.feed == feed:
            return spec
    raise PlacelinkError(f"no quality suite for feed {partner}.{feed}", where="expectations/suites",
                         fix=f"add expectations/suites/{partner}__{feed}.yml (copy a neighbour's)")


def run_quality(settings: Settings, *, partner: str | None = None, kind: str | None = None,
                docs: bool = True) -> list[QualityResult]:
    """Validate every suite whose table exists (feeds: the whole raw table), for ``placelink quality``.

    Raw feeds are read from the identifiable zone read-only; marts/published from the warehouse.
    """
    results = []
    specs = [s for s in load_suites(kind) if partner is None or s.partner == partner]
    by_db: dict[str, list[SuiteSpec]] = {}
    for spec in specs:
        by_db.setdefault(spec.database, []).append(spec)
    for database, group in by_db.items():
        path = settings.identifiable_db if database == "identifiable" else settings.warehouse_db
        if not Path(path).exists():
            continue
        with connect_read_only(path) as con:
            for spec in group:
                if _table_exists(con, spec.table):
                    results.append(validate_suite(con, spec, settings=settings, docs=docs))
    return results


# --- scorecard ------------------------------------------------------------------------------------------------
def _drop_dates(source_files: pd.Series) -> pd.Series:
    """Drop date from ``landing/<partner>/<feed>/<YYYY-MM-DD>.<ext>``.

    Parsed once per distinct file (a month's rows come from a handful of drops): a regex per row was 2 s of the
    nightly scorecard."""
    codes, files = pd.factorize(source_files.astype("string"))
    dates = pd.to_datetime(pd.Series(files, dtype="string").str.extract(r"(\d{4}-\d{2}-\d{2})\.[^/]*$")[0],
                           errors="coerce")
    return pd.Series(dates.reindex(codes).to_numpy(), index=source_files.index)


#: Row-level measures: functions of a month's rows (and, for duplicates, of earlier months') that need GX.
ROW_MEASURES = ["rows_loaded", "completeness", "validity", "timeliness", "median_lag_days", "duplicate_rate"]


def suite_version(spec: SuiteSpec) -> str:
    """A short hash of the suite file: months scored under another version of the rules are scored again."""
    import hashlib

    text = spec.path.read_bytes() if spec.path is not None and spec.path.exists() else repr(spec).encode()
    return hashlib.sha256(text).hexdigest()[:12]


def _dup_derivation_columns(spec: SuiteSpec) -> list[str]:
    return [c for d in spec.derive if d.get("function") == "duplicate_of_earlier" for c in d.get("columns", [])]


def _read_months(con: duckdb.DuckDBPyConnection, spec: SuiteSpec, months: list | None) -> pd.DataFrame:
    """Rows of ``months`` (all when None) in drop order, each marked when a copy of it (by the suite's duplicate
    key) was loaded in an earlier month: a month scored alone then counts duplicates as a whole-table score would."""
    where = 'WHERE r."_partition" IN (SELECT CAST(unnest(?) AS DATE))' if months is not None else ""
    params = [[str(m) for m in months]] if months is not None else []
    key = _dup_derivation_columns(spec) or ["_record_id"]
    earlier = " AND ".join(f'e."{c}" IS NOT DISTINCT FROM r."{c}"' for c in key)
    flag = (f'EXISTS (SELECT 1 FROM {spec.table} e WHERE e."_partition" < r."_partition" AND {earlier})'
            if months is not None else "false")
    return con.execute(f'SELECT r.*, {flag} AS "{EARLIER_COPY_COLUMN}" FROM {spec.table} r {where} '
                       f'ORDER BY r."_partition", r."_line"', params).df()


def _row_measures(con: duckdb.DuckDBPyConnection, spec: SuiteSpec, months: list | None,
                  today: pd.Timestamp | None, verdicts_dir: Path | None = None) -> pd.DataFrame:
    """The GX-based measures per month for ``months`` (all when None); ``attrs["reused"]`` is True when the
    feed check's stored verdicts stood in for a validation (:func:`_stored_invalid`)."""
    df = _read_months(con, spec, months)
    if df.empty:
        return pd.DataFrame(columns=["month", *ROW_MEASURES])
    today = rules_day(today)
    df = df.reset_index(drop=True)
    invalid = _stored_invalid(verdicts_dir, spec, months, df, today)
    reused = invalid is not None
    if invalid is None:
        result = validate_dataframe(df, spec, params={"today": today})
        invalid = pd.Series(False, index=df.index)
        invalid.iloc[sorted(result.invalid_rows())] = True
    df = add_derived_columns(df, spec).reset_index(drop=True)
    columns = [c for c in spec.columns if not c.startswith("_") and c in df.columns]
    nonnull = df[columns].notna().mean(axis=1) if columns else pd.Series(1.0, index=df.index)
    month = pd.to_datetime(df["_partition"])
    drop = _drop_dates(df["_source_file"]).fillna(month)
    if spec.event_date and spec.event_date in df.columns:
        event = pd.to_datetime(df[spec.event_date], errors="coerce")
        event_month = event.dt.to_period("M").dt.to_timestamp()
        on_time = (event_month >= (month - pd.DateOffset(months=1))).astype(float).where(event.notna())
        lag = (drop - event).dt.days
    else:
        on_time = pd.Series(float("nan"), index=df.index)
        lag = pd.Series(float("nan"), index=df.index)
    dup = df["_record_id"].duplicated(keep="first") | df[EARLIER_COPY_COLUMN].astype(bool)
    rows = pd.DataFrame({"month": month.dt.date, "complete": nonnull, "valid": ~invalid.to_numpy(),
                         "on_time": on_time, "lag": lag, "dup": dup})
    out = rows.groupby("month").agg(
        rows_loaded=("valid", "size"), completeness=("complete", "mean"), validity=("valid", "mean"),
        timeliness=("on_time", "mean"), median_lag_days=("lag", "median"), duplicate_rate=("dup", "mean"),
    ).reset_index()
    out.attrs["reused"] = reused
    return out


def months_to_rescore(con: duckdb.DuckDBPyConnection, spec: SuiteSpec, previous: pd.DataFrame | None) -> list | None:
    """The months whose row-level measures must be computed again (None = every month).

    A month is scored again when it is new, its row count changed, a drop of it was loaded after it was scored,
    or it was scored under another version of the suite; and so is every later month, since a later row's
    duplicate status depends on the earlier months.
    """
    if previous is None or previous.empty:
        return None
    now = con.execute(f'SELECT "_partition" AS month, count(*) AS n, max("_loaded_at") AS loaded_at '
                      f'FROM {spec.table} GROUP BY 1').df()
    now["month"] = pd.to_datetime(now["month"]).dt.date
    seen = now.merge(previous[["month", "rows_loaded", "scored_at", "suite_version"]], on="month", how="left")
    stale = (seen["rows_loaded"].isna() | (seen["n"] != seen["rows_loaded"])
             | (pd.to_datetime(seen["loaded_at"]) > pd.to_datetime(seen["scored_at"]))
             | (seen["suite_version"] != suite_version(spec)))
    if not stale.any():
        return []
    first = seen.loc[stale, "month"].min()
    return sorted(m for m in now["month"] if m >= first)


def feed_scorecard_frame(con: duckdb.DuckDBPyConnection, spec: SuiteSpec, today: pd.Timestamp | None = None,
                         previous: pd.DataFrame | None = None, linked: str | None = None,
                         verdicts_dir: Path | None = None) -> pd.DataFrame:
    """Quality per month (partition) for one feed: aggregates only, never a record.

    - ``completeness``: mean share of non-null values over the contract's columns;
    - ``validity``: share of rows failing no row-level expectation of the suite (GX verdicts);
    - ``timeliness``: share of rows whose event falls in the drop's month or the month before;
      ``median_lag_days``: median days from event to drop;
    - ``duplicate_rate``: surplus copies of a record id (in this month or an earlier one) / rows;
    - ``quarantine_rate``: quarantined / received rows (``ops.load_log``);
    - ``address_match_rate``: share of the feed's person records matched to a UPRN (``link.address_matches``);
    - ``person_linked_rate``: share whose person is also known to another feed (``link.person_index``).

    ``previous`` is this feed's scorecard as last stored: the GX measures (a whole-table read and validation,
    the slow part) are kept for the months that have not changed since (:func:`months_to_rescore`); the cheap
    SQL measures (quarantine and match rates, which move as people link) are recomputed for every month.
    ``linked``: a table from :func:`_linked_records` shared by several feeds (else made here).
    ``verdicts_dir``: the feed checks' stored row verdicts (:func:`store_verdicts`), used instead of validating
    a month again where they apply.
    """
    months = months_to_rescore(con, spec, previous)
    fresh = (_row_measures(con, spec, months, today, verdicts_dir) if months != []
             else pd.DataFrame(columns=["month"]))
    reused = bool(fresh.attrs.get("reused"))
    if not fresh.empty:
        fresh["scored_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
        fresh["suite_version"] = suite_version(spec)
    if months is not None:
        kept = previous[~previous["month"].isin(set(fresh["month"]))][["month", *ROW_MEASURES, "scored_at",
                                                                       "suite_version"]]
        still = set(con.execute(f'SELECT DISTINCT "_partition" FROM {spec.table}').df()["_partition"]
                    .pipe(pd.to_datetime).dt.date)
        kept = kept[kept["month"].isin(still)]
        card = pd.concat([kept, fresh], ignore_index=True) if not fresh.empty else kept.reset_index(drop=True)
    else:
        card = fresh
    if card.empty:
        return pd.DataFrame()
    card = card.sort_values("month").reset_index(drop=True)
    card.insert(0, "feed", spec.feed)
    card.insert(0, "partner", spec.partner)

    if _table_exists(con, "ops.load_log"):
        log = con.execute("""SELECT "partition" AS month, sum(rows_received) AS rows_received,
                                    sum(rows_quarantined) AS rows_quarantined
                             FROM ops.load_log WHERE partner = ? AND feed = ? GROUP BY 1""",
                          [spec.partner, spec.feed]).df()
        log["month"] = pd.to_datetime(log["month"]).dt.date
        card = card.merge(log, on="month", how="left")
        card["quarantine_rate"] = card["rows_quarantined"] / card["rows_received"].where(card["rows_received"] > 0)
    else:
        card["rows_received"] = card["rows_loaded"]
        card["rows_quarantined"] = 0
        card["quarantine_rate"] = float("nan")

    card["address_match_rate"] = float("nan")
    card["person_linked_rate"] = float("nan")
    # the feed's record ids per month, read in SQL (no whole-table DataFrame): prefixed as link.* keys them
    ids = (f"""SELECT CAST("_partition" AS DATE) AS month, '{spec.partner}.{spec.feed}:' || "_record_id" AS record_id
               FROM {spec.table}""")
    if _table_exists(con, "link.address_matches"):
        m = con.execute(f"""SELECT i.month, avg(CASE WHEN a.uprn IS NOT NULL AND a.match_method <> 'none'
                                               THEN 1.0 ELSE 0.0 END) AS rate
                           FROM ({ids}) i JOIN link.address_matches a USING (record_id)
                           GROUP BY 1""").df()
        card = _fill(card, m, "address_match_rate")
    if _table_exists(con, "link.person_index"):
        linked = linked or _linked_records(con)
        m = con.execute(f"""SELECT i.month, avg(CASE WHEN l.linked THEN 1.0 ELSE 0.0 END) AS rate
                           FROM ({ids}) i JOIN {linked} l USING (record_id) GROUP BY 1""").df()
        card = _fill(card, m, "person_linked_rate")
    # stored column order: identity, measures, then when and under which rules the GX measures were scored
    card = card[[c for c in card.columns if c not in ("scored_at", "suite_version")] + ["scored_at", "suite_version"]]
    card.attrs["months_rescored"] = len(fresh)
    card.attrs["months_from_checks"] = len(fresh) if reused else 0
    return card


def _linked_records(con: duckdb.DuckDBPyConnection) -> str:
    """TEMP table ``_scorecard_linked`` (record_id, linked): is the record's person known to another feed?

    Made once per scorecard (a TEMP table works on the read-only connection): computing it inside every feed's
    query re-grouped the whole person index nine times (county nightly: scorecard step 31.7 -> 25.1 s)."""
    con.execute("""CREATE OR REPLACE TEMP TABLE _scorecard_linked AS
        WITH multi AS (SELECT person_id FROM link.person_index GROUP BY 1
                       HAVING count(DISTINCT split_part(record_id, ':', 1)) > 1)
        SELECT p.record_id, m.person_id IS NOT NULL AS linked
        FROM link.person_index p LEFT JOIN multi m USING (person_id)""")
    return "_scorecard_linked"


def _fill(card: pd.DataFrame, rates: pd.DataFrame, column: str) -> pd.DataFrame:
    if rates.empty:
        return card
    rates = rates.assign(month=pd.to_datetime(rates["month"]).dt.date).rename(columns={"rate": f"_{column}"})
    card = card.merge(rates, on="month", how="left")
    card[column] = card.pop(f"_{column}")
    return card


def _stored_scorecard(warehouse: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """The scorecard as last stored, or None when absent or from an older layout (then every month is scored)."""
    if not _table_exists(warehouse, SCORECARD_TABLE):
        return None
    stored = warehouse.execute(f"SELECT * FROM {SCORECARD_TABLE}").df()
    if "suite_version" not in stored.columns:
        return None
    return stored.assign(month=pd.to_datetime(stored["month"]).dt.date)


def build_feed_scorecard(identifiable: duckdb.DuckDBPyConnection, warehouse: duckdb.DuckDBPyConnection,
                         *, partner: str | None = None, today: pd.Timestamp | None = None,
                         rescore_all: bool = False, verdicts_dir: Path | None = None) -> pd.DataFrame:
    """Score the loaded feeds (all, or one partner's) into ``quality.feed_scorecard`` (aggregates only).

    Only months that changed since they were last scored are validated again (see :func:`months_to_rescore`),
    so the nightly refresh validates the new drop, not every month of every feed; ``rescore_all`` scores every
    month. Other feeds' rows in the stored table are kept. Returns the scored feeds' rows; ``attrs``
    ``months_rescored`` says how many feed-months were scored again, ``months_from_checks`` how many of those
    took their row verdicts from the feed checks (``verdicts_dir``) instead of a second validation.
    """
    stored = _stored_scorecard(warehouse)
    specs = [spec for spec in load_suites("feed") if (partner is None or spec.partner == partner)
             and _table_exists(identifiable, spec.table)]

    def previous(spec: SuiteSpec) -> pd.DataFrame | None:
        if stored is None or rescore_all:
            return None
        return stored[(stored["partner"] == spec.partner) & (stored["feed"] == spec.feed)]

    linked = _linked_records(identifiable) if _table_exists(identifiable, "link.person_index") else None
    cards = [feed_scorecard_frame(identifiable, spec, today=today, previous=previous(spec), linked=linked,
                                  verdicts_dir=verdicts_dir) for spec in specs]
    rescored = sum(c.attrs.get("months_rescored", 0) for c in cards)
    from_checks = sum(c.attrs.get("months_from_checks", 0) for c in cards)
    cards = [c for c in cards if not c.empty]
    if not cards:
        raise PlacelinkError("no raw feed tables to score", where="identifiable zone raw.*",
                             fix="load some feeds first: placelink ingest")
    card = pd.concat(cards, ignore_index=True)
    scored = {(s.partner, s.feed) for s in specs}
    # other feeds' rows are kept (a table of an older layout is not: those feeds are scored when next asked for)
    others = pd.DataFrame()
    if stored is not None and set(stored.columns) == set(card.columns):
        others = stored[[(p, f) not in scored for p, f in zip(stored["partner"], stored["feed"], strict=True)]]
    whole = pd.concat([others, card], ignore_index=True) if not others.empty else card
    warehouse.execute("CREATE SCHEMA IF NOT EXISTS quality")
    warehouse.register("_scorecard", whole)
    try:
        warehouse.execute(f"CREATE OR REPLACE TABLE {SCORECARD_TABLE} AS SELECT * FROM _scorecard "
                          "ORDER BY partner, feed, month")
    finally:
        warehouse.unregister("_scorecard")
    card.attrs["months_rescored"] = rescored
    card.attrs["months_from_checks"] = from_checks
    return card


def connect_read_only(path: str | Path, wait_seconds: float = 120) -> duckdb.DuckDBPyConnection:
    """Open a zone read-only, waiting while another process (an ingest) holds its write lock."""
    path = Path(path)
    if not path.exists():
        raise PlacelinkError(f"{path.name} does not exist yet", where=str(path),
                             fix="run placelink ingest first")
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


_SHORT = {"expect_column_values_to_not_be_null": "missing", "expect_column_values_to_match_regex": "format",
          "expect_column_values_to_be_in_set": "code", "expect_column_values_to_be_between": "range",
          "expect_column_values_to_be_in_type_list": "type", "expect_column_to_exist": "no column",
          "expect_table_row_count_to_be_between": "volume",
          "expect_column_pair_values_a_to_be_greater_than_b": "date order"}


def _short(o) -> str:
    label = {"_duplicate_of_earlier": "duplicates", "_nhs_number_valid": "NHS check digit"}.get(o.column or "")
    label = label or f"{o.column} {_SHORT.get(o.expectation, o.expectation)}" if o.column else \
        _SHORT.get(o.expectation, o.expectation)
    return label + (f" {o.unexpected_count:,}" if o.unexpected_count else "")


# --- CLI report ---------------------------------------------------------------------------------------------------
def print_quality_report(settings: Settings, *, partner: str | None = None, kind: str | None = None,
                         console=None) -> int:
    """Validate, print a rich summary table and return the exit code (1 = blocking)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    with console.status("validating with Great Expectations"):
        results = run_quality(settings, partner=partner, kind=kind)
    if not results:
        raise PlacelinkError("no table to validate", where=str(settings.home),
                             fix="load data first: placelink ingest (feeds) / placelink build (marts)")
    table = Table(title="placelink data quality", show_lines=False)
    for col in ("suite", "rows", "structure", "warnings", "top problems"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for r in results:
        problems = sorted(r.blocking_failures + r.warnings, key=lambda o: -(o.unexpected_count or 0))
        top = ", ".join(_short(o) for o in problems[:3])
        table.add_row(r.suite, f"{r.rows:,}",
                      "[green]ok[/]" if r.passed_blocking else f"[bold red]FAIL {len(r.blocking_failures)}[/]",
                      "[green]0[/]" if not r.warnings else f"[yellow]{len(r.warnings)}[/]", top)
    console.print(table)
    index = settings.quality_dir / "docs" / "index.html"
    console.print(f"Data Docs: file://{index}" if index.exists() else "Data Docs: not built",
                  soft_wrap=True, highlight=False)
    return 1 if any(not r.passed_blocking for r in results) else 0


def print_scorecard(card: pd.DataFrame, *, partner: str | None = None, console=None) -> None:
    """The latest month of each feed of the scorecard (``quality.feed_scorecard``), as a table."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if partner:
        card = card[card["partner"] == partner]
    latest = card.sort_values("month").groupby(["partner", "feed"]).tail(1).sort_values(["partner", "feed"])
    st = Table(title=f"feed scorecard, latest month, % ({SCORECARD_TABLE})")
    cols = {"feed": "feed", "month": "month", "rows_loaded": "rows", "completeness": "complete",
            "validity": "valid", "timeliness": "timely", "duplicate_rate": "dup", "quarantine_rate": "quar",
            "address_match_rate": "addr", "person_linked_rate": "linked"}
    for label in cols.values():
        st.add_column(label, justify="left" if label == "feed" else "right")
    for _, row in latest.iterrows():
        cells = [row["feed"], str(row["month"])[:7], f"{int(row['rows_loaded']):,}"]
        cells += ["-" if pd.isna(row[c]) else f"{100 * row[c]:.1f}" for c in list(cols)[3:]]
        st.add_row(*cells)
    console.print(st)
