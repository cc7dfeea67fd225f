"""Load one month of an encoded feed (``linkage: {mode: encoded}``): drops written by ``placelink-partner``.

An encoded drop is ``<date>[_<suffix>].csv`` (the agreement's content columns, the encodings, the LSOA) with its
``<date>[_<suffix>].manifest.json``. Each drop is first checked by :func:`orchestration.lib.partner_drop.verify_drop`
(manifest present and readable, scheme, the partners' key check value against the contract's, contract
fingerprint, checksum, row count). A refused drop loads nothing: every physical line of it is quarantined with
the refusal as its reason. In a verified drop each row is loaded, or quarantined on its own when it has no
record id or a content value that is not of the contract's type. In one transaction, as for clear feeds, the
partition is replaced in:

* ``raw.<partner>__<feed>``       the contract's loaded columns; identifier columns (never sent) are NULL
* ``link.encoded_person_records`` ``record_id, source`` + the encodings, read by matching's encoded model
* ``ops.quarantine`` / ``ops.load_log``

``link.person_records`` (clear identifiers) gets nothing from an encoded feed.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Set as AbstractSet
from pathlib import Path

import duckdb

from orchestration.lib.contracts import Feed
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.feeds.coerce import SQL_TYPES
from orchestration.lib.landing import MANIFEST_SUFFIX
from orchestration.lib.matching.encoding import ENCODED_COLUMNS

ENCODED_TABLE = "link.encoded_person_records"
ENCODED_DDL = (f"CREATE TABLE IF NOT EXISTS {ENCODED_TABLE} (record_id VARCHAR, source VARCHAR, "
               + ", ".join(f"{c} VARCHAR" for c in ENCODED_COLUMNS)
               + ', "partition" DATE, loaded_at TIMESTAMP)')
REFUSED_REASON = "encoded_drop_refused"


def manifest_of(path: Path) -> Path:
    """``2025-06-01.csv`` -> ``2025-06-01.manifest.json`` (what ``placelink-partner encode`` writes)."""
    return path.with_name(path.name.rsplit(".", 1)[0] + MANIFEST_SUFFIX)


def _physical_lines(path: Path) -> int:
    """Non-blank lines after the header, counted from the bytes (never decoded or kept)."""
    with open(path, "rb") as fh:
        lines = [line for line in fh.read().splitlines() if line.strip()]
    return max(len(lines) - 1, 0)


def ingest_encoded_partition(con: duckdb.DuckDBPyConnection, feed: Feed, partition: str, landing: Path, *,
                             home: Path | None, opt_outs: AbstractSet[str] | None):
    """Replace one monthly partition of an encoded feed; returns its :class:`~.load.PartitionResult`.

    ``opt_outs`` cannot apply here (NHS numbers are tokens under a key the platform does not hold): the
    partner applies the national data opt-out at source (``placelink-partner`` runs ingest's own filter)."""
    from orchestration.lib.feeds.load import (
        FileResult,
        PartitionResult,
        _relative,
        ensure_tables,
        feed_drops,
        sha256_of,
    )
    from orchestration.lib.partner_drop import verify_drop

    del opt_outs
    part_date = dt.date.fromisoformat(partition[:7] + "-01")
    files = feed_drops(landing, feed).get(part_date.isoformat(), [])
    result = PartitionResult(feed.partner, feed.id, part_date.isoformat(), columns_dropped=list(feed.dropped_columns))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    reasons: Counter[str] = Counter()
    quarantine: list[tuple] = []
    loaded: list[tuple[str, object]] = []  # (rel, DataFrame of verified rows)
    seen: set[str] = set()
    for path in files:
        rel = _relative(path, home)
        digest = sha256_of(path)
        if digest in seen:
            result.files.append(FileResult(rel, digest, "duplicate", note="same content (sha256) as another drop"))
            continue
        seen.add(digest)
        lines = _physical_lines(path)
        try:
            df = verify_drop(manifest_of(path), feed, drop_file=path.name)
        except PlacelinkError as exc:
            # the refusal says what and how to fix (scheme, key check values, checksums: no personal data)
            reason = f"{REFUSED_REASON}: {exc.message}"
            quarantine += [(feed.partner, feed.id, part_date, rel, i + 2, reason, None, now) for i in range(lines)]
            reasons[REFUSED_REASON] += lines
            result.files.append(FileResult(rel, digest, "loaded", rows_received=lines, rows_quarantined=lines,
                                           lines_received=lines, lines_quarantined=lines,
                                           note=f"refused: {exc.message}; fix: {exc.fix}"))
            continue
        df = df.assign(_line=range(2, len(df) + 2))
        loaded.append((rel, digest, df, lines))

    # the load itself: typed with TRY_CAST in DuckDB, a row failing any cast quarantined with the column's name
    con.execute("BEGIN TRANSACTION")
    try:
        ensure_tables(con, feed)
        con.execute(ENCODED_DDL)
        # a home made before the encoded record gained a column (e.g. #23's address and national-id tokens)
        for col in ENCODED_COLUMNS:
            con.execute(f"ALTER TABLE {ENCODED_TABLE} ADD COLUMN IF NOT EXISTS {col} VARCHAR")
        con.execute(f"DELETE FROM {feed.table} WHERE _partition = ?", [part_date])
        con.execute(f'DELETE FROM {ENCODED_TABLE} WHERE source = ? AND "partition" = ?', [feed.source, part_date])
        con.execute('DELETE FROM ops.quarantine WHERE partner=? AND feed=? AND "partition"=?',
                    [feed.partner, feed.id, part_date])
        con.execute('DELETE FROM ops.load_log WHERE partner=? AND feed=? AND "partition"=?',
                    [feed.partner, feed.id, part_date])
        for rel, digest, df, lines in loaded:
            _load_verified(con, feed, df, rel, part_date, now, quarantine, reasons)
            bad = sum(1 for q in quarantine if q[3] == rel)
            result.files.append(FileResult(rel, digest, "loaded", rows_received=len(df), rows_loaded=len(df) - bad,
                                           rows_quarantined=bad, lines_received=lines,
                                           lines_loaded=lines - bad, lines_quarantined=bad))
        if quarantine:
            con.executemany("INSERT INTO ops.quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?)", quarantine)
        log_rows = [(feed.partner, feed.id, part_date, f.source_file, f.sha256, f.rows_received, f.rows_loaded,
                     f.rows_quarantined, now, f.status, f.note) for f in result.files]
        if log_rows:
            con.executemany("INSERT INTO ops.load_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", log_rows)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    result.quarantined_by_reason = dict(reasons)
    return result


def _load_verified(con, feed: Feed, df, rel: str, part_date: dt.date, now: dt.datetime, quarantine: list,
                   reasons: Counter) -> None:
    con.register("_drop_df", df)
    con.execute("CREATE OR REPLACE TEMP TABLE _drop AS SELECT * FROM _drop_df")
    con.unregister("_drop_df")
    have = {r[0] for r in con.execute("DESCRIBE _drop").fetchall()}
    from orchestration.lib.partner_drop import identifier_columns

    # the partner's own rule for what is content: a native identifier column may share its name with an
    # encoding (uprn, dob), and the drop's column of that name is then the token, never the raw value
    hidden = identifier_columns(feed)
    content = [c for c in feed.loaded_columns if c.sql_name in have and c.name not in hidden]
    casts = {c.sql_name: f'TRY_CAST("{c.sql_name}" AS {SQL_TYPES[c.type]})' for c in content}
    checks = " ".join(f"WHEN \"{n}\" IS NOT NULL AND {expr} IS NULL THEN 'encoded_bad_value:{n}' "
                      for n, expr in casts.items())
    prefix = f"{feed.source}:"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _drop_checked AS SELECT *,
        CASE WHEN record_id IS NULL OR NOT starts_with(record_id, '{prefix}') OR length(record_id) = {len(prefix)}
             THEN 'encoded_missing_record_id' {checks} END AS _reason FROM _drop""")
    for line, reason in con.execute("SELECT _line, _reason FROM _drop_checked WHERE _reason IS NOT NULL "
                                    "ORDER BY _line").fetchall():
        quarantine.append((feed.partner, feed.id, part_date, rel, int(line), reason, None, now))
        reasons[reason] += 1
    select = ", ".join(f'{casts[c.sql_name]} AS "{c.sql_name}"' for c in content)
    con.execute(f"""INSERT INTO {feed.table} BY NAME
        SELECT {select + ',' if select else ''} substr(record_id, {len(prefix) + 1}) AS _record_id,
               DATE '{part_date}' AS _partition, ? AS _source_file, _line, ? AS _loaded_at
        FROM _drop_checked WHERE _reason IS NULL""", [rel, now])
    enc = [c for c in ENCODED_COLUMNS if c in have]
    # record_id is the matching key: within a partition the last line wins, across partitions the newest
    con.execute(f"""DELETE FROM {ENCODED_TABLE} WHERE source = ? AND "partition" < ?
                    AND record_id IN (SELECT record_id FROM _drop_checked WHERE _reason IS NULL)""",
                [feed.source, part_date])
    con.execute(f"""INSERT INTO {ENCODED_TABLE} BY NAME
        SELECT record_id, ? AS source, {''.join(f'{c}, ' for c in enc)} DATE '{part_date}' AS "partition",
               ? AS loaded_at
        FROM _drop_checked d WHERE _reason IS NULL
          AND NOT EXISTS (SELECT 1 FROM {ENCODED_TABLE} o WHERE o.record_id = d.record_id
                          AND o."partition" > DATE '{part_date}')
          AND record_id NOT IN (SELECT record_id FROM {ENCODED_TABLE} WHERE source = ? AND "partition" = DATE '{part_date}')
        QUALIFY row_number() OVER (PARTITION BY record_id ORDER BY _line DESC) = 1""",
                [feed.source, now, feed.source])
