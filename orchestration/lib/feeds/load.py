"""Load one feed's monthly partition from ``landing/`` into the identifiable zone.

For one (feed, partition) this reads every drop whose date falls in the month, checks the header against
the contract (a renamed or missing column stops the feed, nothing written), applies the sharing agreement
(expired / no lawful basis -> refuse; columns outside it -> dropped and reported; NHS national data
opt-out), types each value, and then, in ONE transaction, replaces the partition in:

* ``raw.<partner>__<feed>``  loaded rows (+ ``_record_id, _partition, _source_file, _line, _loaded_at``)
* ``ops.quarantine``         malformed rows with file, line, reason and raw text
* ``ops.load_log``           which file fed which partition (sha256, counts, status)
* ``link.person_records``    the standard person record of every loaded row (feeds with people)

so a rerun gives exactly the same rows. For every file, loaded + quarantined = received.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from orchestration.lib.contracts import Column, Feed
from orchestration.lib.errors import DataError, PlacelinkError, withhold_library_errors
from orchestration.lib.feeds.coerce import SQL_TYPES, CoerceError, check_plausible, coerce, date_checks
from orchestration.lib.feeds.readers import Drop, RawRow, read_drop

# the exclusion lists (erasure, objection, the national data opt-out) and their quarantine reasons are governance's
from orchestration.lib.governance.erasure import (
    ERASED_REASON,
    OPT_OUT_REASON,
    Exclusions,
    load_exclusions,
)
from orchestration.lib.landing import REJECTED, LandingFile, leading_date, open_drop, partition_of, scan_feed
from orchestration.lib.pseudonymise import (
    normalise_name,
    normalise_nhs_number,
    normalise_postcode,
    normalise_sex,
    normalise_text,
)

_ARROW = {"string": pa.string(), "integer": pa.int64(), "float": pa.float64(), "date": pa.date32(),
          "datetime": pa.timestamp("us"), "boolean": pa.bool_()}

OPS_DDL = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS link;
CREATE TABLE IF NOT EXISTS ops.quarantine (
    partner VARCHAR, feed VARCHAR, "partition" DATE, source_file VARCHAR, line BIGINT,
    reason VARCHAR, raw_text VARCHAR, quarantined_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS ops.load_log (
    partner VARCHAR, feed VARCHAR, "partition" DATE, source_file VARCHAR, sha256 VARCHAR,
    rows_received BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, loaded_at TIMESTAMP,
    status VARCHAR, note VARCHAR);
CREATE TABLE IF NOT EXISTS link.person_records (
    record_id VARCHAR, source VARCHAR, given_name VARCHAR, family_name VARCHAR, date_of_birth DATE,
    sex VARCHAR, postcode VARCHAR, address VARCHAR, nhs_number VARCHAR, uprn BIGINT, age_band VARCHAR,
    event_date DATE, "partition" DATE);
"""
#: reason code of a landing file refused whole for its content (encoding, binary, header): see _record_refused
REFUSED_FILE = "refused_file"
PERSON_COLUMNS = ["record_id", "source", "given_name", "family_name", "date_of_birth", "sex", "postcode",
                  "address", "nhs_number", "uprn", "age_band", "event_date", "partition"]


@dataclass
class FileResult:
    source_file: str
    sha256: str
    status: str                # loaded | empty | duplicate
    rows_received: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    note: str | None = None
    #: physical data lines (non-blank, after the header), counted from the file's text: each is covered by a
    #: loaded or a quarantined row, so lines_received = lines_loaded + lines_quarantined (a quoted field that
    #: legitimately spans lines makes one row of several lines; a runaway quote is quarantined line by line)
    lines_received: int = 0
    lines_loaded: int = 0
    lines_quarantined: int = 0


@dataclass
class PartitionResult:
    partner: str
    feed: str
    partition: str             # YYYY-MM-01
    files: list[FileResult] = field(default_factory=list)
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    columns_dropped: list[str] = field(default_factory=list)
    preview_markdown: str = ""

    @property
    def rows_received(self) -> int:
        return sum(f.rows_received for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    def metadata(self) -> dict:
        """Plain values for a Dagster materialisation / CLI summary."""
        return {
            "partition": self.partition,
            "rows_received": self.rows_received,
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "quarantined_by_reason": dict(sorted(self.quarantined_by_reason.items())),
            "columns_dropped": self.columns_dropped,
            "source_files": [{"file": f.source_file, "sha256": f.sha256, "status": f.status,
                              "received": f.rows_received, "loaded": f.rows_loaded,
                              "quarantined": f.rows_quarantined, "lines": f.lines_received,
                              "note": f.note} for f in self.files],
        }


# --- landing --------------------------------------------------------------------------------------

def drop_partition(path: Path, extension: str | None = None) -> str | None:
    """Partition (first of month) of a drop by the landing rule (:mod:`orchestration.lib.landing`); None if the
    rule rejects its name."""
    return partition_of(path.name, extension)


def drop_date(path: Path, partition: dt.date) -> dt.date:
    """The day a drop was made (the date its name starts with, by the landing rule), against which the contract's
    plausible dates are measured; the partition's last day for a name that carries none (not a landing drop)."""
    day = leading_date(path.name)
    if day is not None:
        return day
    return (partition.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


def feed_drops(landing: Path, feed: Feed) -> dict[str, list[Path]]:
    """``{partition: [drop files, sorted]}`` for one feed's landing folder, by the landing rule (the planner and
    the sensor list the same files). Rejected files are not here: :func:`record_rejected` accounts for them."""
    out: dict[str, list[Path]] = {}
    for f in scan_feed(landing, feed.partner, feed.id, feed.drop_extension):
        if f.partition:
            out.setdefault(f.partition, []).append(f.path)
    return out


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open_drop(path) as fh:  # never through a link
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def landing_rel(landing: Path, home: Path | None, file: LandingFile) -> str:
    """Where a landing entry is, as ops tables record files: relative to the home (``landing/p/f/x.csv``)."""
    try:
        base = Path(landing).resolve().relative_to(home.resolve()) if home else Path(landing)
    except ValueError:
        base = Path(landing)
    return f"{base.as_posix()}/{file.rel}"


def record_rejected(con: duckdb.DuckDBPyConnection, files: list[LandingFile], *, feeds: list[tuple[str, str]],
                    known: set[tuple[str, str]] | None = None, landing: Path, home: Path | None = None) -> None:
    """Replace the records of rejected landing files, in one transaction: those of ``feeds`` and, when ``known``
    (every contract feed) is given, of files outside any of them. One row each in ``ops.load_log`` (status
    ``rejected``, no partition, no sha256: the file is never read) and in ``ops.quarantine`` (the whole file: no
    partition, no line, no raw text), rewritten on every run so a file is reported until it is fixed."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    scopes = set(feeds)
    keep = [f for f in files if f.reason and ((f.partner, f.feed) in scopes
                                              or (known is not None and (f.partner, f.feed) not in known))]
    ensure_ops_tables(con)
    con.execute("BEGIN TRANSACTION")
    try:
        for partner, feed_id in scopes:
            # landing rejections have no partition; a partition's refused files are _record_refused's
            con.execute(f"DELETE FROM ops.load_log WHERE status='{REJECTED}' AND \"partition\" IS NULL "
                        "AND partner=? AND feed=?", [partner, feed_id])
            con.execute('DELETE FROM ops.quarantine WHERE "partition" IS NULL AND line IS NULL AND partner=? '
                        "AND feed=?", [partner, feed_id])
        if known is not None:
            pairs = [list(k) for k in sorted(known)]
            outside = ("NOT list_contains(?, [coalesce(partner, ''), coalesce(feed, '')])")
            con.execute(f'DELETE FROM ops.load_log WHERE status=\'{REJECTED}\' AND "partition" IS NULL AND {outside}',
                        [pairs])
            con.execute(f'DELETE FROM ops.quarantine WHERE "partition" IS NULL AND line IS NULL AND {outside}',
                        [pairs])
        rows = [(f.partner, f.feed, landing_rel(landing, home, f), f.reason, f.fix) for f in keep]
        if rows:
            con.executemany("INSERT INTO ops.load_log VALUES (?, ?, NULL, ?, NULL, NULL, NULL, NULL, ?, "
                            f"'{REJECTED}', ? || '; fix: ' || ?)", [(p, fd, rel, now, r, fx) for p, fd, rel, r, fx
                                                                   in rows])
            con.executemany("INSERT INTO ops.quarantine VALUES (?, ?, NULL, ?, NULL, ?, NULL, ?)",
                            [(p, fd, rel, r, now) for p, fd, rel, r, _ in rows])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def _record_refused(con: duckdb.DuckDBPyConnection, feed: Feed, part_date: dt.date,
                    refused: list[tuple[str, str, tuple[str, str | None, str | None]]], now: dt.datetime) -> None:
    """Files of a partition refused whole by their content (not text in the contract's encoding, binary, a
    workbook that will not open, a header other than the contract's), accounted for like the files the landing
    rule rejects: one ``ops.load_log`` row each (status ``rejected``, with the partition and sha256: the file was
    read) and one whole-file ``ops.quarantine`` row (no line, no raw text), replacing those of an earlier attempt
    at the partition. A later successful load of the partition replaces them. The reason is our own message,
    which names the encoding or columns, never a value."""
    rows = [(rel, digest, f"{REFUSED_FILE}: {message}", fix or "") for rel, digest, (message, _, fix) in refused]
    ensure_ops_tables(con)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f'DELETE FROM ops.load_log WHERE partner=? AND feed=? AND "partition"=? AND status=\'{REJECTED}\'',
                    [feed.partner, feed.id, part_date])
        con.execute('DELETE FROM ops.quarantine WHERE partner=? AND feed=? AND "partition"=? AND line IS NULL',
                    [feed.partner, feed.id, part_date])
        con.executemany("INSERT INTO ops.load_log VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?, "
                        f"'{REJECTED}', ? || '; fix: ' || ?)",
                        [(feed.partner, feed.id, part_date, rel, digest, now, r, fx) for rel, digest, r, fx in rows])
        con.executemany("INSERT INTO ops.quarantine VALUES (?, ?, ?, ?, NULL, ?, NULL, ?)",
                        [(feed.partner, feed.id, part_date, rel, r, now) for rel, _, r, _ in rows])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


# --- schema and agreement ---------------------------------------------------------------------------

def check_agreement(feed: Feed, today: dt.date | None = None) -> None:
    problems = feed.agreement.problems(today)
    if problems:
        raise DataError(f"feed {feed.source} may not load: " + "; ".join(problems),
                             where=f"orchestration/feeds/{feed.partner}.yml feeds[{feed.id}].agreement",
                             fix="renew the sharing agreement (valid_to) or record its lawful basis, then rerun")


def _positions(numbers: list[int]) -> str:
    return ("column " if len(numbers) == 1 else "columns ") + ", ".join(str(n) for n in numbers)


def check_header(feed: Feed, drop: Drop, rel: str) -> list[str]:
    """Raise on a missing/renamed contract column; return unexpected extra columns (dropped).

    The message names contract columns by name and the file's other header cells only by position (1-based):
    a header cell is the partner's text, and a drop sent without its header line has a person's name, date of
    birth and address there (issue #22: they reached the audit trail and Dagster's logs).
    """
    import difflib

    expected = [c.name for c in feed.columns]
    missing = [c for c in expected if c not in drop.header]
    unexpected = [c for c in drop.header if c not in expected]
    dupes = sorted({c for c in drop.header if drop.header.count(c) > 1})
    if missing or dupes:
        lines = [f"schema change in {feed.source}: the file's columns differ from the contract"]
        if missing:
            lines.append(f"missing: {missing}")
        if unexpected:
            positions = [i for i, c in enumerate(drop.header, start=1) if c not in expected]
            lines.append(f"not in the contract: {_positions(positions)} of the {len(drop.header)}-column header")
        if dupes:
            named = [c for c in dupes if c in expected]
            others = [i for i, c in enumerate(drop.header, start=1) if c in dupes and c not in expected]
            lines.append("repeated: " + ", ".join([repr(c) for c in named] + ([_positions(others)] if others else [])))
        renames = [f"column {i} -> {m[0]!r}" for i, u in enumerate(drop.header, start=1) if u not in expected
                   if (m := difflib.get_close_matches(u, missing, n=1, cutoff=0.5))]
        if renames:
            lines.append(f"looks renamed: {', '.join(renames)}")
        raise DataError("; ".join(lines), where=f"{rel}:1 (header)",
                        fix=f"ask {feed.partner} to send the agreed columns with a header line, or update "
                            f"orchestration/feeds/{feed.partner}.yml if the change is agreed; nothing was loaded")
    return unexpected


def extra_column_labels(drop: Drop, extra: list[str]) -> list[str]:
    """How header columns outside the contract are reported (metadata, CLI): by position, never by their text."""
    return [f"column {i} of the file's header (not in the contract)"
            for i, c in enumerate(drop.header, start=1) if c in set(extra)]


# --- rows -> records --------------------------------------------------------------------------------

def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    text = str(value).strip()
    return text or None


def _uprn(value: object) -> int | None:
    text = _text(value)
    if text and re.fullmatch(r"\d{1,12}(\.0+)?", text):
        return int(float(text)) if "." in text else int(text)
    return None


def person_record(feed: Feed, record_id: str, typed: dict[str, object], partition: dt.date,
                  event_date: dt.date | None) -> dict:
    """The standard person record of one typed row (native column name -> value)."""
    pm = feed.person
    assert pm is not None

    def get(name: str | None) -> object:
        return typed.get(name) if name else None

    given, family = normalise_name(get(pm.given_name)), normalise_name(get(pm.family_name))
    if pm.full_name:
        parts = (normalise_name(get(pm.full_name)) or "").split(" ")
        given, family = (" ".join(parts[:-1]) or None, parts[-1] or None) if len(parts) > 1 else (parts[0] or None, None)
    address_cols = [pm.address] if isinstance(pm.address, str) else (pm.address or [])
    address = ", ".join(t for t in (normalise_text(get(c)) for c in address_cols) if t) or None
    dob = get(pm.date_of_birth)
    postcode_raw = get(pm.postcode)
    uprn_col = feed.place.uprn if feed.place else None
    return {
        "record_id": f"{feed.source}:{record_id}",
        "source": feed.source,
        "given_name": given,
        "family_name": family,
        "date_of_birth": dob if isinstance(dob, dt.date) else None,
        "sex": normalise_sex(get(pm.sex)) if pm.sex else None,
        "postcode": normalise_postcode(postcode_raw) or normalise_text(postcode_raw),
        "address": address,
        # an NHS number failing its check digit would link the wrong people: null it for matching
        "nhs_number": normalise_nhs_number(get(pm.nhs_number)) if pm.nhs_number else None,
        "uprn": _uprn(get(uprn_col)),
        "age_band": _text(get(pm.age_band)),
        "event_date": event_date,
        "partition": partition,
    }


def _event_date(feed: Feed, typed: dict[str, object]) -> dt.date | None:
    if not feed.event_date:
        return None
    value = typed.get(feed.event_date.column)
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else None


# --- quarantine text ---------------------------------------------------------------------------------

NOT_IN_AGREEMENT = "[not in agreement]"


def quarantine_text(feed: Feed, drop: Drop, row: RawRow, disallowed: set[str]) -> str:
    """The raw text kept for a quarantined row, with columns outside the agreement redacted.

    A column the agreement does not allow must never reach a table, quarantine included: fields are
    redacted by header position; a row whose fields cannot be matched to the header (wrong column count)
    is withheld entirely when the feed has such columns — the file and line say where to look.
    """
    if not disallowed:
        return row.raw_text
    if row.fields is not None and len(row.fields) == len(drop.header):
        sep = feed.format.delimiter
        return sep.join(NOT_IN_AGREEMENT if h in disallowed else f for h, f in zip(drop.header, row.fields,
                                                                                     strict=True))
    if row.values is not None:
        import json

        return json.dumps({k: (NOT_IN_AGREEMENT if k in disallowed else _text(v)) for k, v in row.values.items()},
                          ensure_ascii=False)
    n = len(row.fields) if row.fields is not None else "?"
    return (f"[withheld: {n} fields where the header has {len(drop.header)}, and this feed has columns outside "
            f"its agreement; see line {row.line} of the landing file]")


# --- masked preview ---------------------------------------------------------------------------------

def _mask(col: Column, value: object) -> str:
    if value is None:
        return ""
    if col.identifier == "direct":
        return "•••"
    if col.identifier == "quasi":
        if isinstance(value, dt.date):
            return f"{value.year}-••-••"
        pc = normalise_postcode(value)
        if pc:
            return pc[:-2] + "••"
        text = str(value)
        return text[:1] + "•••" if text else ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def preview_markdown(feed: Feed, rows: list[dict[str, object]], limit: int = 5) -> str:
    """First rows as a markdown table with identifiers masked (direct fully, quasi coarsened).

    Hand-written because pandas' ``to_markdown`` needs ``tabulate``, which is not one of our dependencies.
    """
    cols = feed.loaded_columns
    head = "| " + " | ".join(c.sql_name for c in cols) + " |"
    sep = "|" + "---|" * len(cols)
    body = ["| " + " | ".join(_mask(c, r.get(c.name)) for c in cols) + " |" for r in rows[:limit]]
    return "\n".join([head, sep, *body])


# --- the partition load -----------------------------------------------------------------------------

def ensure_ops_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ops/link tables once (DDL commits are slow; skip them when the tables exist)."""
    have = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND "
                       "((schema_name='ops' AND table_name IN ('quarantine','load_log')) OR "
                       "(schema_name='link' AND table_name='person_records'))").fetchall()[0][0]
    if have < 3:
        con.execute(OPS_DDL)


def ensure_tables(con: duckdb.DuckDBPyConnection, feed: Feed) -> None:
    ensure_ops_tables(con)
    cols = [(c.sql_name, SQL_TYPES[c.type]) for c in feed.loaded_columns]
    cols += [("_record_id", "VARCHAR"), ("_partition", "DATE"), ("_source_file", "VARCHAR"),
             ("_line", "BIGINT"), ("_loaded_at", "TIMESTAMP")]
    ddl = ", ".join(f'"{n}" {t}' for n, t in cols)
    con.execute(f"CREATE TABLE IF NOT EXISTS {feed.table} ({ddl})")
    have = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema='raw' "
        "AND table_name=? ORDER BY ordinal_position", [feed.name]).fetchall()
    if [(n, t) for n, t in have] != cols:
        raise DataError(
            f"{feed.table} was created from an older version of the contract (columns differ)",
            where=feed.table,
            fix=f"reload every partition: placelink ingest --partner {feed.partner} --feed {feed.id} --rebuild")


def drop_feed(con: duckdb.DuckDBPyConnection, feed: Feed) -> None:
    """Forget everything loaded for a feed (used by ``--rebuild`` after an agreed contract change)."""
    ensure_ops_tables(con)
    con.execute(f"DROP TABLE IF EXISTS {feed.table}")
    for table in ("ops.quarantine", "ops.load_log"):
        con.execute(f"DELETE FROM {table} WHERE partner=? AND feed=?", [feed.partner, feed.id])
    con.execute("DELETE FROM link.person_records WHERE source=?", [feed.source])


def _relative(path: Path, home: Path | None) -> str:
    try:
        return str(path.resolve().relative_to(home.resolve())) if home else str(path)
    except ValueError:
        return str(path)


@dataclass
class ParsedFile:
    """One landing file read, checked against its contract and typed row by row. Needs no database, so the files
    of a multi-month load can be parsed in worker processes (:func:`parse_partitions`) while the identifiable
    zone's single writer only writes."""

    path: Path
    rel: str
    digest: str
    empty: bool = False
    #: (message, where, fix) of the schema-change error, raised when the partition is loaded
    header_error: tuple[str, str | None, str | None] | None = None
    result: FileResult | None = None
    #: loaded rows (contract sql names + meta columns) and their standard person records, as Arrow tables: a
    #: worker hands them back as a few buffers, not a million pickled Python objects
    rows: pa.Table | None = None
    people: pa.Table | None = None
    quarantine: list[tuple] = field(default_factory=list)
    preview: list[dict] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    extra_dropped: list[str] = field(default_factory=list)


_META_COLUMNS = ("_record_id", "_partition", "_source_file", "_line", "_loaded_at")


def parse_file(feed: Feed, path: Path, rel: str, digest: str, part_date: dt.date, now: dt.datetime,
               opt_outs: AbstractSet[str], erased: Exclusions) -> ParsedFile:
    """Read one drop, check its header and type every row: loaded columns, quarantine rows with reasons,
    standard person records and a preview. Loaded + quarantined = received for the file, in rows and in
    physical lines. A file that is not what the contract says (binary, another encoding, another header) is
    refused whole: ``header_error`` is raised when the partition is loaded, and nothing from it is written.

    A row of a person on the exclusion list (``placelink erase``: their record id, or their NHS number or name
    and date of birth on a new record) is quarantined as ``erased_or_objected`` with no raw text, before it
    reaches any table; so is a row under the national data opt-out."""
    try:
        drop = read_drop(path, feed.format, [c.name for c in feed.columns], where=rel)
    except PlacelinkError as exc:
        return ParsedFile(path, rel, digest, header_error=(exc.message, exc.where, exc.fix))
    if drop.empty:
        return ParsedFile(path, rel, digest, empty=True)
    try:
        extra = check_header(feed, drop, rel)
    except PlacelinkError as exc:
        return ParsedFile(path, rel, digest, header_error=(exc.message, exc.where, exc.fix))
    loaded_cols = feed.loaded_columns
    opt_col = feed.person.nhs_number if (feed.agreement.national_data_opt_out and feed.person) else None
    nhs_col = feed.person.nhs_number if feed.person else None
    # hoisted out of the per-row loop below (contract properties are recomputed on every access)
    loaded_names = [(c.name, c.sql_name) for c in loaded_cols]
    dropped_names = list(feed.dropped_columns)
    all_columns = list(feed.columns)
    record_id_columns = feed.record_id_columns
    out = ParsedFile(path, rel, digest, result=FileResult(rel, digest, "loaded"),
                     extra_dropped=extra_column_labels(drop, extra))
    columns: dict[str, list] = {**{c.sql_name: [] for c in loaded_cols}, **{m: [] for m in _META_COLUMNS}}
    people: list[dict] = []
    fr, quarantine, reasons = out.result, out.quarantine, out.reasons
    disallowed = set(feed.dropped_columns) | (set(drop.header) - {c.name for c in feed.columns})
    plausible = date_checks(feed, drop_date(path, part_date))
    fr.lines_received = drop.data_lines
    for row in drop.rows:
        fr.rows_received += 1
        reason = row.problem
        typed: dict[str, object] = {}
        record_id = None
        if reason is None:
            assert row.values is not None
            rid_parts = [_text(row.values.get(c)) for c in record_id_columns]
            if any(p is None for p in rid_parts):
                reason = f"missing_record_id: {record_id_columns} must not be empty"
            else:
                record_id = "|".join(rid_parts)  # type: ignore[arg-type]
                try:
                    # every contract column is typed (a malformed row is malformed even in a column the
                    # agreement drops); only allowed columns are kept below
                    values = row.values
                    for col in all_columns:
                        typed[col.name] = coerce(col, values.get(col.name))
                    check_plausible(plausible, typed)  # the contract's date ranges: 1900 or 2031 is no event
                except CoerceError as exc:
                    reason = exc.reason
        if reason is None and opt_col and normalise_nhs_number(typed.get(opt_col), validate=False) in opt_outs:
            # the row is accounted for but nothing identifying about an opted-out patient is kept
            quarantine.append((feed.partner, feed.id, part_date, rel, row.line, OPT_OUT_REASON, None, now))
            reasons[OPT_OUT_REASON] += 1
            fr.rows_quarantined += 1
            fr.lines_quarantined += row.lines
            continue
        person = None
        if reason is None:
            for name in dropped_names:  # columns outside the agreement reach nothing, the person record included
                typed.pop(name, None)
        if reason is None and feed.person:
            person = person_record(feed, record_id, typed, part_date,  # type: ignore[arg-type]
                                   _event_date(feed, typed))
        if reason is None and erased and (
                erased.record(feed.partner, feed.id, record_id)  # type: ignore[arg-type]
                or (person is not None and erased.person(
                    # the number as sent (a failed check digit is still theirs), the names as matching sees them
                    nhs_number=typed.get(nhs_col) if nhs_col else None, given_name=person["given_name"],
                    family_name=person["family_name"], date_of_birth=person["date_of_birth"]))):
            quarantine.append((feed.partner, feed.id, part_date, rel, row.line, ERASED_REASON, None, now))
            reasons[ERASED_REASON] += 1
            fr.rows_quarantined += 1
            fr.lines_quarantined += row.lines
            continue
        if reason is not None and erased and row.values is not None and _malformed_but_erased(
                feed, erased, row.values, record_id, part_date, nhs_col, dropped_names):
            # malformed, but the raw text would keep an erased person's identifiers: it is withheld
            quarantine.append((feed.partner, feed.id, part_date, rel, row.line, ERASED_REASON, None, now))
            reasons[ERASED_REASON] += 1
            fr.rows_quarantined += 1
            fr.lines_quarantined += row.lines
            continue
        if reason is not None:
            quarantine.append((feed.partner, feed.id, part_date, rel, row.line, reason,
                               quarantine_text(feed, drop, row, disallowed), now))
            reasons[reason.split(":", 1)[0]] += 1
            fr.rows_quarantined += 1
            fr.lines_quarantined += row.lines
            continue
        fr.rows_loaded += 1
        fr.lines_loaded += row.lines
        for name, sql_name in loaded_names:
            columns[sql_name].append(typed[name])
        columns["_record_id"].append(record_id)
        columns["_partition"].append(part_date)
        columns["_source_file"].append(rel)
        columns["_line"].append(row.line)
        columns["_loaded_at"].append(now)
        if len(out.preview) < 5:
            out.preview.append(typed)
        if person is not None:
            people.append(person | {"_line": row.line})
    assert fr.rows_loaded + fr.rows_quarantined == fr.rows_received
    # every physical data line of the file is in a loaded or a quarantined row: none swallowed, none counted twice
    assert fr.lines_loaded + fr.lines_quarantined == fr.lines_received, (rel, fr)
    out.rows, out.people = _rows_table(loaded_cols, columns), _people_table(people)
    return out


def _malformed_but_erased(feed: Feed, erased: Exclusions, values: dict, record_id: str | None, part_date: dt.date,
                         nhs_col: str | None, dropped: list[str]) -> bool:
    """Whether a row quarantined for another reason belongs to an erased person: its record id, or its person
    columns typed one by one (a bad value elsewhere in the row does not hide the name and date of birth)."""
    if record_id is not None and erased.record(feed.partner, feed.id, record_id):
        return True
    if feed.person is None:
        return False
    typed: dict[str, object] = {}
    for col in feed.columns:
        if col.name in dropped:
            continue
        try:
            typed[col.name] = coerce(col, values.get(col.name))
        except CoerceError:
            typed[col.name] = None
    person = person_record(feed, record_id or "", typed, part_date, None)
    return erased.person(nhs_number=values.get(nhs_col) if nhs_col else None, given_name=person["given_name"],
                         family_name=person["family_name"], date_of_birth=person["date_of_birth"])


_PERSON_TYPES = [pa.string(), pa.string(), pa.string(), pa.string(), pa.date32(), pa.string(), pa.string(),
                 pa.string(), pa.string(), pa.int64(), pa.string(), pa.date32(), pa.date32()]


def _rows_table(loaded_cols: list[Column], columns: dict[str, list] | None = None) -> pa.Table:
    """The loaded rows as Arrow, typed as the contract says (empty when ``columns`` is None)."""
    columns = columns or {}
    arrays = {c.sql_name: pa.array(columns.get(c.sql_name, []), type=_ARROW[c.type]) for c in loaded_cols}
    arrays |= {"_record_id": pa.array(columns.get("_record_id", []), pa.string()),
               "_partition": pa.array(columns.get("_partition", []), pa.date32()),
               "_source_file": pa.array(columns.get("_source_file", []), pa.string()),
               "_line": pa.array(columns.get("_line", []), pa.int64()),
               "_loaded_at": pa.array(columns.get("_loaded_at", []), pa.timestamp("us"))}
    return pa.table(arrays)


def _people_table(people: list[dict]) -> pa.Table:
    return pa.table({k: pa.array([p[k] for p in people], type=t)
                     for k, t in zip(PERSON_COLUMNS, _PERSON_TYPES, strict=True)}
                    | {"_line": pa.array([p["_line"] for p in people], pa.int64())})


#: a multi-month load smaller than this is parsed in the loading process: spawning a worker (importing
#: pyarrow, duckdb and the contracts afresh) costs about a second
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
WORKERS_ENV = "PLACELINK_INGEST_WORKERS"
_WORKER: dict = {}


def _exclusions(home: Path | None) -> Exclusions:
    """The home's exclusion list, read once per load (an empty one without a home: a bare library call)."""
    from orchestration.lib.config import get_settings

    return load_exclusions(get_settings(home=home)) if home else Exclusions()


def _worker_init(feed: Feed, opt_outs: AbstractSet[str], erased: Exclusions, now: dt.datetime) -> None:
    _WORKER.update(feed=feed, opt_outs=opt_outs, erased=erased, now=now)


def _parse_in_worker(task: tuple[Path, str, str, dt.date]) -> ParsedFile:
    path, rel, digest, part_date = task
    return parse_file(_WORKER["feed"], path, rel, digest, part_date, _WORKER["now"], _WORKER["opt_outs"],
                      _WORKER["erased"])


class ParsedDrops:
    """Drops being parsed in worker processes, handed to :func:`ingest_partition` as each is needed.

    A context manager (it owns the worker pool). ``get(path)`` waits for that file and forgets it, so the parent
    holds only the months not yet written, not a whole feed's history of typed rows.
    """

    def __init__(self, pool=None, futures: dict | None = None):
        self._pool, self._futures = pool, futures or {}

    def get(self, path: Path) -> ParsedFile | None:
        future = self._futures.pop(path, None)
        return None if future is None else future.result()

    def __len__(self) -> int:
        return len(self._futures)

    def __enter__(self) -> ParsedDrops:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def parse_partitions(feed: Feed, partitions: list[str], landing: Path, *, home: Path | None = None,
                     opt_outs: AbstractSet[str] | None = None, workers: int | None = None) -> ParsedDrops:
    """Start parsing every drop of ``partitions`` in worker processes, ahead of :func:`ingest_partition`.

    Typing rows is Python, one core per process, and a full refresh loads every month of a feed in one step
    while the identifiable zone takes one writer at a time: parsing the months side by side while the parent
    writes them one after another uses both cores (at county scale the load run was ~4 minutes on one). Parses
    nothing ahead (an empty :class:`ParsedDrops`: parse as you load) for one month, a small load or one worker
    (env ``PLACELINK_INGEST_WORKERS``).
    """
    from orchestration.lib.parallel import spawn_pool, worker_count

    if feed.linkage.mode == "encoded":
        return ParsedDrops()  # encoded drops are not typed row by row here (feeds/encoded.py reads them)
    drops = feed_drops(landing, feed)
    tasks = []
    for partition in sorted(partitions):
        part_date = dt.date.fromisoformat(partition[:7] + "-01")
        for path in drops.get(part_date.isoformat(), []):
            tasks.append((path, part_date))
    workers = worker_count(WORKERS_ENV, len(tasks)) if workers is None else max(1, min(workers, len(tasks)))
    if workers == 1 or len({t[1] for t in tasks}) < 2 or sum(t[0].stat().st_size for t in tasks) < PARALLEL_MIN_BYTES:
        return ParsedDrops()  # decided before hashing: ingest_partition hashes the files it parses itself
    tasks = [(path, _relative(path, home), sha256_of(path), part_date) for path, part_date in tasks]
    check_agreement(feed)  # refuse before any work, as ingest_partition would
    erased = _exclusions(home)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    pool = spawn_pool(workers, _worker_init, (feed, opt_outs or set(), erased, now))
    # submitted month by month: the first months to be written are the first parsed
    return ParsedDrops(pool, {t[0]: pool.submit(_parse_in_worker, t) for t in tasks})


def ingest_clear_partition(con: duckdb.DuckDBPyConnection, feed: Feed, partition: str, landing: Path, *,
                           home: Path | None = None, opt_outs: AbstractSet[str] | None = None,
                           today: dt.date | None = None, parsed: ParsedDrops | None = None) -> PartitionResult:
    """:func:`orchestration.lib.feeds.ingest_partition` for a feed whose partner sends its native export (linkage
    ``clear``); the package's function chooses this or the encoded path (``feeds/encoded.py``)."""
    with withhold_library_errors(f"ingest of {feed.source} {partition[:7]}", where=feed.table):
        return _ingest_partition(con, feed, partition, landing, home=home, opt_outs=opt_outs, today=today,
                                 parsed=parsed)


def _ingest_partition(con: duckdb.DuckDBPyConnection, feed: Feed, partition: str, landing: Path, *,
                      home: Path | None, opt_outs: AbstractSet[str] | None, today: dt.date | None,
                      parsed: ParsedDrops | None) -> PartitionResult:
    check_agreement(feed, today)
    part_date = dt.date.fromisoformat(partition[:7] + "-01")
    partition = part_date.isoformat()
    files = feed_drops(landing, feed).get(partition, [])
    result = PartitionResult(feed.partner, feed.id, partition, columns_dropped=list(feed.dropped_columns))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ensure_ops_tables(con)
    earlier = dict(con.execute(
        "SELECT sha256, min(source_file) FROM ops.load_log WHERE partner=? AND feed=? AND status='loaded' "
        "AND \"partition\" <> ? GROUP BY sha256", [feed.partner, feed.id, part_date]).fetchall())

    loaded_cols = feed.loaded_columns
    parsed = parsed if parsed is not None else ParsedDrops()
    erased: Exclusions | None = None

    # read and check every file first: a schema change anywhere means nothing is written
    reads: list[tuple[str, str, ParsedFile | None]] = []
    refused: list[tuple[str, str, tuple[str, str | None, str | None]]] = []
    seen: dict[str, str] = {}
    for path in files:
        rel = _relative(path, home)
        pf = parsed.get(path)
        digest = pf.digest if pf is not None else sha256_of(path)
        if digest in seen or digest in earlier:
            reads.append((rel, digest, None))
            continue
        seen[digest] = rel
        if pf is None:
            if erased is None:
                # people erased / objecting (`placelink erase`) are never loaded again, even from an old drop
                erased = _exclusions(home)
            pf = parse_file(feed, path, rel, digest, part_date, now, opt_outs or set(), erased)
        if pf.header_error is not None:
            refused.append((rel, digest, pf.header_error))
            continue
        reads.append((rel, digest, pf))
    if refused:
        # the month fails (fail-fast; the nightly retries it), and every file refused whole is on record
        _record_refused(con, feed, part_date, refused, now)
        message, where, fix = refused[0][2]
        raise DataError(message, where=where, fix=fix)

    row_tables: list[pa.Table] = []
    people_tables: list[pa.Table] = []
    quarantine: list[tuple] = []
    preview_rows: list[dict] = []
    reasons: Counter[str] = Counter()
    extra_dropped: set[str] = set()
    for rel, digest, pf in reads:
        if pf is None:
            first = seen.get(digest) if seen.get(digest) != rel else None
            result.files.append(FileResult(rel, digest, "duplicate",
                                           note=f"same content (sha256) as {first or earlier.get(digest)}; skipped"))
            continue
        if pf.empty:
            result.files.append(FileResult(rel, digest, "empty", note="the file is empty: no header, no rows"))
            continue
        row_tables.append(pf.rows)
        people_tables.append(pf.people)
        quarantine.extend(pf.quarantine)
        preview_rows.extend(pf.preview[:5 - len(preview_rows)])
        reasons.update(pf.reasons)
        extra_dropped.update(pf.extra_dropped)
        result.files.append(pf.result)

    result.columns_dropped = sorted(set(feed.dropped_columns) | extra_dropped)
    result.quarantined_by_reason = dict(reasons)
    result.preview_markdown = preview_markdown(feed, preview_rows)

    incoming = pa.concat_tables(row_tables) if row_tables else _rows_table(loaded_cols)
    person_tbl = pa.concat_tables(people_tables) if people_tables else _people_table([])
    log_rows = [(feed.partner, feed.id, part_date, f.source_file, f.sha256, f.rows_received, f.rows_loaded,
                 f.rows_quarantined, now, f.status, f.note) for f in result.files]

    con.execute("BEGIN TRANSACTION")
    try:
        ensure_tables(con, feed)
        con.execute(f"DELETE FROM {feed.table} WHERE _partition = ?", [part_date])
        con.execute('DELETE FROM ops.quarantine WHERE partner=? AND feed=? AND "partition"=?',
                    [feed.partner, feed.id, part_date])
        con.execute('DELETE FROM ops.load_log WHERE partner=? AND feed=? AND "partition"=?',
                    [feed.partner, feed.id, part_date])
        con.execute('DELETE FROM link.person_records WHERE source=? AND "partition"=?', [feed.source, part_date])
        con.register("_incoming", incoming)
        con.execute(f"INSERT INTO {feed.table} BY NAME SELECT * FROM _incoming")
        con.unregister("_incoming")
        if person_tbl.num_rows:
            # record_id is the matching key and must be unique: within a partition the last line wins;
            # across partitions the newest partition wins (a resent record replaces the older copy)
            con.register("_people", person_tbl)
            con.execute('DELETE FROM link.person_records WHERE source=? AND "partition" < ? '
                        "AND record_id IN (SELECT record_id FROM _people)", [feed.source, part_date])
            con.execute(
                "INSERT INTO link.person_records BY NAME SELECT * EXCLUDE (_line) FROM _people p "
                "WHERE NOT EXISTS (SELECT 1 FROM link.person_records o WHERE o.record_id = p.record_id "
                'AND o."partition" > p."partition") '
                "QUALIFY row_number() OVER (PARTITION BY p.record_id ORDER BY p._line DESC) = 1")
            con.unregister("_people")
        if quarantine:
            con.executemany("INSERT INTO ops.quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?)", quarantine)
        if log_rows:
            con.executemany("INSERT INTO ops.load_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", log_rows)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return result
