"""Write the pseudonymised ``src.<partner>__<feed>`` tables and ``ref.*`` into the warehouse.

Reads the identifiable zone READ-ONLY (ATTACH) and writes only pseudonymised columns: HMAC keys for records,
people and households (computed inside DuckDB: ``Pseudonymiser.token_sql``), UPRN, LSOA, event dates, sex, birth
year-month, age band at the event, ethnicity group, and the feed's columns that the contract marks as
non-identifying. Names, NHS numbers, full dates of birth, full postcodes and free-text addresses never leave the
identifiable zone.

``record_key`` is unique per table: an exact re-send of a record (same record id) keeps the newest copy;
the identifiable zone keeps every copy for quality checks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from orchestration.lib.config import Settings
from orchestration.lib.contracts import Feed, load_contracts
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.postcodes import postcode_sql
from orchestration.lib.pseudonymise import Pseudonymiser, ethnicity_group, pseudonymiser

IDZ = "idz"
#: reference files that hold personal data and therefore never reach the warehouse
NOT_REFERENCE = {"nhs_opt_outs"}
STANDARD_COLUMNS = ["record_key", "person_key", "household_key", "uprn", "lsoa_code", "event_date",
                    "event_month", "partition_month"]
PEOPLE_COLUMNS = ["sex", "birth_year_month", "age_band", "ethnicity_group"]

#: (upper bound, band) of the age bands at the event; 75+ above the last
_AGE_BANDS = ((5, "0-4"), (10, "5-9"), (16, "10-15"), (18, "16-17"), (25, "18-24"), (35, "25-34"), (45, "35-44"),
              (55, "45-54"), (65, "55-64"), (75, "65-74"))


def _age_band_sql(age: str) -> str:
    bands = " ".join(f"WHEN {age} < {upper} THEN '{band}'" for upper, band in _AGE_BANDS)
    return f"CASE WHEN {age} IS NULL THEN NULL {bands} ELSE '75+' END"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _postcode_sql(expr: str) -> str:
    """SQL that normalises a postcode to ``AB1 2CD``, NULL without the UK shape (the one rule,
    :mod:`orchestration.lib.postcodes`; ``ref.postcodes`` holds only that shape, so nothing else could join)."""
    return postcode_sql(expr)


def attach_identifiable(con: duckdb.DuckDBPyConnection, path: Path, wait_seconds: float = 120) -> None:
    """ATTACH the identifiable zone read-only, waiting while an ingest process holds its write lock."""
    if not Path(path).exists():
        raise PlacelinkError(f"the identifiable zone {path} does not exist yet", where=str(path),
                             fix="run `placelink ingest` first")
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            con.execute(f"ATTACH '{path}' AS {IDZ} (READ_ONLY)")
            return
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def _has_table(con: duckdb.DuckDBPyConnection, database: str, schema: str, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name=? AND schema_name=? "
                            "AND table_name=?", [database, schema, table]).fetchall()[0][0])


def loaded_feeds(identifiable_db: Path, feeds: list[Feed]) -> list[Feed]:
    """The feeds whose ``raw`` table exists in the identifiable zone (the others have nothing to pseudonymise)."""
    if not Path(identifiable_db).exists():
        return []
    with duckdb.connect(str(identifiable_db), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw'"
                                            ).fetchall()}
    return [f for f in feeds if f.name in tables]


def _in_warehouse(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists in the connection's own database (not the attached zone)."""
    return _has_table(con, con.execute("SELECT current_database()").fetchall()[0][0], schema, table)


def _has_column(con: duckdb.DuckDBPyConnection, database: str, schema: str, table: str, column: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_columns() WHERE database_name=? AND schema_name=? "
                            "AND table_name=? AND column_name=?", [database, schema, table, column]).fetchall()[0][0])


def feed_output_columns(feed: Feed) -> list[str]:
    """The feed's own raw columns that may enter the warehouse: non-identifying and not a mapped identifier."""
    used: set[str] = set(feed.record_id_columns)
    if feed.person:
        for cols in feed.person.columns().values():
            used.update(cols)
    if feed.place:
        for key, cols in feed.place.columns().items():
            if key in ("postcode", "address", "uprn", "lsoa"):
                used.update(cols)
    if feed.event_date:
        used.add(feed.event_date.column)
    taken = set(STANDARD_COLUMNS + PEOPLE_COLUMNS)
    return [c.sql_name for c in feed.loaded_columns
            if c.identifier == "none" and c.name not in used and c.sql_name not in taken]


def _ethnicity_column(feed: Feed) -> str | None:
    if feed.person and feed.person.ethnicity:
        return feed.column(feed.person.ethnicity).sql_name
    # contracts written before person.ethnicity existed: the feed's ethnicity column by name
    return next((c.sql_name for c in feed.loaded_columns if "ethnic" in c.sql_name), None)


def _ethnicity_lookup(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Code/label -> ONS group from ``ref.ethnicity_codes`` (scheme, code, label, ons_group) when present."""
    if not _in_warehouse(con, "ref", "ethnicity_codes"):
        return {}
    out: dict[str, str] = {}
    for code, label, group in con.execute("SELECT code, label, ons_group FROM ref.ethnicity_codes").fetchall():
        for key in (code, label):
            if key is not None and group:
                out.setdefault(str(key).strip().upper(), str(group))
    return out


#: Bump when the src build changes in a way its SQL text does not show (the ethnicity grouping, say): every src
#: table is then rebuilt once instead of updated.
SOURCE_BUILD_VERSION = 1
#: Build state of each src table (what it was built from), in the warehouse: no personal data, only
#: fingerprints, watermarks and counts.
BUILDS_TABLE = "ops.src_builds"
#: Link tables a src row reads, with the column matching stamps when a record's row there changed.
LINK_CHANGE_COLUMNS = {"person_index": "changed_at", "household_index": "changed_at",
                       "address_matches": "matched_at"}
#: Above this share of changed records a rebuild is cheaper than deleting and re-inserting.
REBUILD_SHARE = 0.5


def build_warehouse_source(con: duckdb.DuckDBPyConnection, feed: Feed, pz: Pseudonymiser,
                           incremental: bool = True) -> int:
    """Create or update ``src.<partner>__<feed>`` from the attached identifiable zone; return its rows.

    ``con`` is a warehouse connection with the identifiable zone attached as ``idz`` (read-only).

    Incremental by default: only the records that changed since the table was last built are re-keyed, namely
    records loaded since (raw ``_loaded_at``) and records whose person, household or address match changed
    since (the link tables' ``changed_at`` / ``matched_at``, stamped by matching). A nightly drop touches a
    few per cent of a county's records; re-keying all of them (three HMACs and four joins per record) was most
    of this step. The table is rebuilt instead when anything else it depends on may have changed (the query,
    so the contract or this code; the key; ``ref.postcodes``; the ethnicity code list), when most records
    changed, or when the update leaves other than one row per raw record (a re-sent drop that dropped a
    record, say). ``ops.src_builds`` records each build and why it was a rebuild.
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS src")
    if not _has_table(con, IDZ, "raw", feed.name):
        raise PlacelinkError(f"{feed.table} has not been loaded", where=feed.table,
                             fix=f"run `placelink ingest --partner {feed.partner} --feed {feed.id}` first")
    query = _SourceQuery(con, feed, pz)
    state = source_build(con, feed)
    reason = "a rebuild was asked for" if not incremental else query.rebuild_reason(con, state)
    if reason is None:
        rows = query.update(con, state)
        if rows is not None:
            return rows
        reason = "the update left other than one row per raw record"
    return query.rebuild(con, reason)


def source_build(con: duckdb.DuckDBPyConnection, feed: Feed) -> dict | None:
    """The last build of ``src.<feed>`` as ``ops.src_builds`` holds it: mode (rebuild / update), reason, records
    re-keyed, rows, when, and the fingerprint and watermarks the next build compares with."""
    if not _in_warehouse(con, "ops", "src_builds"):
        return None
    cur = con.execute(f"SELECT * FROM {BUILDS_TABLE} WHERE source_table = ?", [f"src.{feed.name}"])
    row = cur.fetchall()
    return dict(zip([d[0] for d in cur.description], row[0], strict=True)) if row else None


class _SourceQuery:
    """The SQL of one src table, for a rebuild (every record) or an update (the records in ``_src_changed``)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, feed: Feed, pz: Pseudonymiser):
        self.feed, self.pz = feed, pz
        self._fingerprint: str | None = None
        self.table = f"src.{feed.name}"
        self.links = {t: _has_table(con, IDZ, "link", t) for t in
                      ("person_index", "household_index", "address_matches", "person_records")}
        self.link_stamps = {t: _has_column(con, IDZ, "link", t, col) for t, col in LINK_CHANGE_COLUMNS.items()
                            if self.links[t]}
        has_ref_pc = self.has_ref_pc = _in_warehouse(con, "ref", "postcodes")
        rid = f"'{feed.source}:' || r._record_id"
        place = feed.place.columns() if feed.place else {}
        raw_col = {c.name: c.sql_name for c in feed.columns}
        uprn_raw = f"TRY_CAST(r.{_q(raw_col[place['uprn'][0]])} AS BIGINT)" if "uprn" in place else "NULL::BIGINT"
        lsoa_raw = f"CAST(r.{_q(raw_col[place['lsoa'][0]])} AS VARCHAR)" if "lsoa" in place else "NULL"
        pc_raw = _postcode_sql(f"r.{_q(raw_col[place['postcode'][0]])}") if "postcode" in place else "NULL"
        event = f"CAST(r.{_q(raw_col[feed.event_date.column])} AS DATE)" if feed.event_date else "r._partition"
        joins, person_id, household_id = [], "NULL", "NULL"
        uprn, lsoa = [uprn_raw], [lsoa_raw]
        if self.links["person_index"]:
            joins.append(f"LEFT JOIN {IDZ}.link.person_index pi ON pi.record_id = {rid}")
            person_id = "CAST(pi.person_id AS VARCHAR)"
        if self.links["household_index"]:
            joins.append(f"LEFT JOIN {IDZ}.link.household_index hi ON hi.record_id = {rid}")
            household_id = "CAST(hi.household_id AS VARCHAR)"
        if self.links["address_matches"]:
            joins.append(f"LEFT JOIN {IDZ}.link.address_matches am ON am.record_id = {rid}")
            uprn.insert(0, "TRY_CAST(am.uprn AS BIGINT)")
            lsoa.insert(0, "CAST(am.lsoa_code AS VARCHAR)")
        if has_ref_pc:
            joins.append(f"LEFT JOIN ref.postcodes rp ON rp.postcode = {pc_raw}")
            lsoa.append("CAST(rp.lsoa_code AS VARCHAR)")
        people_sql = ""
        self.eth = _ethnicity_column(feed)
        if feed.person:
            if self.links["person_records"]:
                joins.append(f"LEFT JOIN {IDZ}.link.person_records pr ON pr.record_id = {rid}")
                dob, sex, band = "pr.date_of_birth", "pr.sex", "pr.age_band"
            else:
                dob, sex, band = "NULL::DATE", "NULL", "NULL"
            people_sql = (f", coalesce({sex}, 'U') AS sex, strftime({dob}, '%Y-%m') AS birth_year_month, "
                          f"date_sub('year', {dob}, {event}) AS age, {band} AS age_band_raw, "
                          f"{'CAST(r.' + _q(self.eth) + ' AS VARCHAR)' if self.eth else 'NULL'} AS ethnicity_raw")
        own = feed_output_columns(feed)
        own_sql = "".join(f", r.{_q(c)}" for c in own)
        # {only} is empty for a rebuild, or keeps the changed records (before the window: it is per record)
        self.latest = f"""
            SELECT {rid} AS record_id, {person_id} AS person_id, {household_id} AS household_id,
                   coalesce({', '.join(uprn)}) AS uprn, coalesce({', '.join(lsoa)}) AS lsoa_code,
                   {event} AS event_date, r._partition AS partition_month {people_sql} {own_sql}
            FROM {IDZ}.{feed.table} r {' '.join(joins)} {{only}}
            QUALIFY row_number() OVER (PARTITION BY r._record_id ORDER BY r._partition DESC, r._line DESC) = 1
        """
        people_cols, self.eth_join = "", ""
        if feed.person:
            self.eth_join = "LEFT JOIN _ethnicity_groups eg ON eg.raw = s.ethnicity_raw"
            people_cols = (f", s.sex, s.birth_year_month, coalesce({_age_band_sql('s.age')}, "
                           "s.age_band_raw) AS age_band, coalesce(eg.grp, 'Unknown') AS ethnicity_group")
        self.select = f"""
            SELECT {pz.token_sql('record', 's.record_id')} AS record_key,
                   {pz.token_sql('person', 's.person_id')} AS person_key,
                   {pz.token_sql('household', 's.household_id')} AS household_key,
                   CAST(s.uprn AS BIGINT) AS uprn, CAST(s.lsoa_code AS VARCHAR) AS lsoa_code,
                   CAST(s.event_date AS DATE) AS event_date,
                   CAST(date_trunc('month', s.event_date) AS DATE) AS event_month,
                   CAST(s.partition_month AS DATE) AS partition_month
                   {people_cols} {''.join(f', s.{_q(c)}' for c in own)}
            FROM ({self.latest}) s CROSS JOIN {pz.KEY_TABLE} pzk {self.eth_join}
        """
        self.known_ethnicity = _ethnicity_lookup(con) if feed.person else {}

    def fingerprint(self, con: duckdb.DuckDBPyConnection) -> str:
        """What the table's rows depend on besides the records and their links: the query text (contract,
        code), the key (as a token of a constant, never the key), the postcode directory, the ethnicity codes.
        Computed once per build (the check before it and the record after it read the same inputs)."""
        if self._fingerprint is None:
            self._fingerprint = self._compute_fingerprint(con)
        return self._fingerprint

    def _compute_fingerprint(self, con: duckdb.DuckDBPyConnection) -> str:
        parts = [str(SOURCE_BUILD_VERSION), self.select, self.pz.token("fingerprint", "placelink") or "",
                 json.dumps(sorted(self.known_ethnicity.items())), json.dumps(sorted(self.link_stamps.items()))]
        if self.has_ref_pc:
            parts.append(str(con.execute("SELECT count(*), bit_xor(hash(postcode, lsoa_code)) FROM ref.postcodes")
                             .fetchall()[0]))
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def _watermarks(self, con: duckdb.DuckDBPyConnection) -> tuple:
        """(latest raw load, latest link change) now: a later build re-keys what is stamped after these."""
        raw = con.execute(f"SELECT max(_loaded_at) FROM {IDZ}.{self.feed.table}").fetchall()[0][0]
        stamps = [con.execute(f"SELECT max({col}) FROM {IDZ}.link.{t}").fetchall()[0][0]
                  for t, col in LINK_CHANGE_COLUMNS.items() if self.link_stamps.get(t)]
        return raw, max((t for t in stamps if t is not None), default=None)

    def rebuild_reason(self, con: duckdb.DuckDBPyConnection, state: dict | None) -> str | None:
        """Why the table must be rebuilt rather than updated, or None."""
        if state is None or not _in_warehouse(con, "src", self.feed.name):
            return "no earlier build"
        linked = [t for t in LINK_CHANGE_COLUMNS if self.links[t]]
        if not all(self.link_stamps.get(t) for t in linked):
            return "the link tables carry no change stamps (matching has not run since the upgrade)"
        if state["fingerprint"] != self.fingerprint(con):
            return "the query, key, postcode directory or ethnicity codes changed"
        return None

    def _ethnicity_groups(self, con: duckdb.DuckDBPyConnection, only: str) -> None:
        """Register ``_ethnicity_groups``: the feed's distinct codes/labels (a handful), mapped in Python."""
        raw_values = [r[0] for r in con.execute(
            f"SELECT DISTINCT CAST(r.{_q(self.eth)} AS VARCHAR) FROM {IDZ}.{self.feed.table} r {only} "
            f"{'AND' if only else 'WHERE'} r.{_q(self.eth)} IS NOT NULL").fetchall()] if self.eth else []
        known = self.known_ethnicity
        con.register("_ethnicity_groups", pa.table({
            "raw": pa.array(raw_values, pa.string()),
            "grp": pa.array([known.get(str(v).strip().upper()) or ethnicity_group(v) for v in raw_values],
                            pa.string())}))

    def _record(self, con, mode: str, reason: str | None, changed: int | None, rows: int, marks: tuple) -> None:
        con.execute("CREATE SCHEMA IF NOT EXISTS ops")
        con.execute(f"""CREATE TABLE IF NOT EXISTS {BUILDS_TABLE} (
            source_table VARCHAR PRIMARY KEY, mode VARCHAR, reason VARCHAR, records_changed BIGINT, rows BIGINT,
            fingerprint VARCHAR, raw_watermark TIMESTAMP, link_watermark TIMESTAMP, built_at TIMESTAMP)""")
        con.execute(f"DELETE FROM {BUILDS_TABLE} WHERE source_table = ?", [self.table])
        con.execute(f"INSERT INTO {BUILDS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, current_timestamp::TIMESTAMP)",
                    [self.table, mode, reason, changed, rows, self.fingerprint(con), *marks])

    @contextlib.contextmanager
    def _writing(self, con: duckdb.DuckDBPyConnection, only: str):
        """One transaction for a write, with the key's pads and the written records' ethnicity groups in place;
        rolled back on any error (``_Mismatch`` included)."""
        con.execute("BEGIN TRANSACTION")
        try:
            if self.feed.person:
                self._ethnicity_groups(con, only)
            with self.pz.sql_key(con):
                yield
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            if self.feed.person:
                con.unregister("_ethnicity_groups")

    def rebuild(self, con: duckdb.DuckDBPyConnection, reason: str) -> int:
        marks = self._watermarks(con)  # before reading: anything stamped later is picked up next time
        with self._writing(con, ""):
            con.execute(f"CREATE OR REPLACE TABLE {self.table} AS {self.select.replace('{only}', '')} "
                        "ORDER BY partition_month, event_date, record_key")
            rows = int(con.execute(f"SELECT count(*) FROM {self.table}").fetchall()[0][0])
            self._record(con, "rebuild", reason, None, rows, marks)
        return rows

    def update(self, con: duckdb.DuckDBPyConnection, state: dict) -> int | None:
        """Re-key the records changed since the last build; None when a rebuild is needed after all."""
        marks = self._watermarks(con)
        prefix = f"{self.feed.source}:"
        since = {"raw": state["raw_watermark"] or dt.datetime.min, "link": state["link_watermark"] or dt.datetime.min}
        limit = REBUILD_SHARE * max(state["rows"] or 0, 1)
        reloaded = con.execute(f"SELECT count(*) FROM {IDZ}.{self.feed.table} WHERE _loaded_at > ?",
                               [since["raw"]]).fetchall()[0][0]
        if reloaded > limit:  # a full reload: no need to look at the links
            return self.rebuild(con, f"{reloaded:,} rows loaded since the last build, most of the table")
        changed = [f"SELECT _record_id FROM {IDZ}.{self.feed.table} WHERE _loaded_at > $raw"]
        changed += [f"SELECT substr(record_id, {len(prefix) + 1}) FROM {IDZ}.link.{t} "
                    f"WHERE {col} > $link AND starts_with(record_id, '{prefix}')"
                    for t, col in LINK_CHANGE_COLUMNS.items() if self.links[t]]
        con.execute("CREATE OR REPLACE TEMP TABLE _src_changed AS SELECT DISTINCT CAST(_record_id AS VARCHAR) "
                    f"AS _record_id FROM ({' UNION ALL '.join(changed)})",
                    since if len(changed) > 1 else {"raw": since["raw"]})
        n_changed = int(con.execute("SELECT count(*) FROM _src_changed").fetchall()[0][0])
        if n_changed > limit:
            con.execute("DROP TABLE IF EXISTS temp._src_changed")
            return self.rebuild(con, f"{n_changed:,} records changed, most of the table")
        only = "WHERE r._record_id IN (SELECT _record_id FROM _src_changed)"
        try:
            with self._writing(con, only):
                # a reloaded month's old rows go too: a record a re-sent drop no longer holds must not stay
                con.execute(f"""DELETE FROM {self.table} WHERE record_key IN (
                                    SELECT {self.pz.token_sql('record', f"'{prefix}' || c._record_id")}
                                    FROM _src_changed c CROSS JOIN {self.pz.KEY_TABLE} pzk)
                                OR partition_month IN (SELECT DISTINCT _partition FROM {IDZ}.{self.feed.table}
                                                       WHERE _loaded_at > $raw)""",
                            {"raw": since["raw"]})
                con.execute(f"INSERT INTO {self.table} BY NAME {self.select.replace('{only}', only)}")
                rows, records = con.execute(
                    f"SELECT (SELECT count(*) FROM {self.table}), "
                    f"(SELECT count(DISTINCT _record_id) FROM {IDZ}.{self.feed.table})").fetchall()[0]
                if rows != records:
                    raise _Mismatch
                self._record(con, "update", None, n_changed, int(rows), marks)
        except _Mismatch:
            return None
        finally:
            con.execute("DROP TABLE IF EXISTS temp._src_changed")
        return int(rows)


class _Mismatch(Exception):
    """An update left other than one row per raw record: roll it back and rebuild."""


def build_reference_tables(con: duckdb.DuckDBPyConnection, reference: Path) -> list[str]:
    """Copy ``reference/*.csv`` (no personal data) into ``ref.<name>``; returns the tables written."""
    con.execute("CREATE SCHEMA IF NOT EXISTS ref")
    written = []
    for path in sorted(Path(reference).glob("*.csv")):
        if path.stem in NOT_REFERENCE:
            continue
        con.execute(f"CREATE OR REPLACE TABLE ref.{_q(path.stem)} AS "
                    f"SELECT * FROM read_csv(?, header = true, auto_detect = true)", [str(path)])
        written.append(f"ref.{path.stem}")
    return written


def build_warehouse_sources(settings: Settings, *, feeds_dir: str | Path | None = None,
                            partner: str | None = None, feed: str | None = None,
                            progress=None, incremental: bool = True) -> dict[str, int]:
    """Write ``ref.*`` and every loaded feed's ``src.<partner>__<feed>``; return rows per table.

    Feeds not loaded yet are skipped (reported with -1 rows). ``incremental``: see :func:`build_warehouse_source`.
    """
    contracts = load_contracts(feeds_dir)
    feeds = contracts.feeds(partner, feed)
    pz = pseudonymiser(settings)
    out: dict[str, int] = {}
    with duckdb.connect(str(settings.warehouse_db)) as con:
        for table in build_reference_tables(con, settings.reference):
            out[table] = int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
        attach_identifiable(con, settings.identifiable_db)
        for f in feeds:
            if not _has_table(con, IDZ, "raw", f.name):
                out[f"src.{f.name}"] = -1
                continue
            out[f"src.{f.name}"] = build_warehouse_source(con, f, pz, incremental=incremental)
            if progress:
                progress(f, out[f"src.{f.name}"])
        con.execute(f"DETACH {IDZ}")
    from orchestration.lib.governance.audit import record_events  # the audit trail (docs/governance.md)

    record_events(settings, [{"action": "pseudonymise", "target": f"src.{f.name}", "agreement_id": f.agreement.id,
                              "purpose": ", ".join(f.agreement.purposes),
                              "details": {"rows": out[f"src.{f.name}"], "via": "build_warehouse_sources()"}}
                             for f in feeds if out.get(f"src.{f.name}", -1) >= 0])
    return out
