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

import time
from pathlib import Path

import duckdb
import pyarrow as pa

from orchestration.lib.config import Settings
from orchestration.lib.contracts import Feed, load_contracts
from orchestration.lib.errors import PlacelinkError
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
    """SQL that normalises a postcode to ``AB1 2CD`` (same rule as pseudonymise.normalise_postcode)."""
    c = f"upper(regexp_replace(CAST({expr} AS VARCHAR), '[^A-Za-z0-9]', '', 'g'))"
    return f"CASE WHEN length({c}) BETWEEN 5 AND 7 THEN left({c}, length({c}) - 3) || ' ' || right({c}, 3) END"


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
    db = con.execute("SELECT current_database()").fetchall()[0][0]
    if not _has_table(con, db, "ref", "ethnicity_codes"):
        return {}
    out: dict[str, str] = {}
    for code, label, group in con.execute("SELECT code, label, ons_group FROM ref.ethnicity_codes").fetchall():
        for key in (code, label):
            if key is not None and group:
                out.setdefault(str(key).strip().upper(), str(group))
    return out


def build_warehouse_source(con: duckdb.DuckDBPyConnection, feed: Feed, pz: Pseudonymiser) -> int:
    """Create or replace ``src.<partner>__<feed>`` from the attached identifiable zone; return its rows.

    ``con`` is a warehouse connection with the identifiable zone attached as ``idz`` (read-only).
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS src")
    if not _has_table(con, IDZ, "raw", feed.name):
        raise PlacelinkError(f"{feed.table} has not been loaded", where=feed.table,
                             fix=f"run `placelink ingest --partner {feed.partner} --feed {feed.id}` first")
    link = {t: _has_table(con, IDZ, "link", t) for t in
            ("person_index", "household_index", "address_matches", "person_records")}
    has_ref_pc = _has_table(con, con.execute("SELECT current_database()").fetchall()[0][0], "ref", "postcodes")
    rid = f"'{feed.source}:' || r._record_id"
    place = feed.place.columns() if feed.place else {}
    raw_col = {c.name: c.sql_name for c in feed.columns}
    uprn_raw = f"TRY_CAST(r.{_q(raw_col[place['uprn'][0]])} AS BIGINT)" if "uprn" in place else "NULL::BIGINT"
    lsoa_raw = f"CAST(r.{_q(raw_col[place['lsoa'][0]])} AS VARCHAR)" if "lsoa" in place else "NULL"
    pc_raw = _postcode_sql(f"r.{_q(raw_col[place['postcode'][0]])}") if "postcode" in place else "NULL"
    event = f"CAST(r.{_q(raw_col[feed.event_date.column])} AS DATE)" if feed.event_date else "r._partition"
    joins, person_id, household_id = [], "NULL", "NULL"
    uprn, lsoa = [uprn_raw], [lsoa_raw]
    if link["person_index"]:
        joins.append(f"LEFT JOIN {IDZ}.link.person_index pi ON pi.record_id = {rid}")
        person_id = "CAST(pi.person_id AS VARCHAR)"
    if link["household_index"]:
        joins.append(f"LEFT JOIN {IDZ}.link.household_index hi ON hi.record_id = {rid}")
        household_id = "CAST(hi.household_id AS VARCHAR)"
    if link["address_matches"]:
        joins.append(f"LEFT JOIN {IDZ}.link.address_matches am ON am.record_id = {rid}")
        uprn.insert(0, "TRY_CAST(am.uprn AS BIGINT)")
        lsoa.insert(0, "CAST(am.lsoa_code AS VARCHAR)")
    if has_ref_pc:
        joins.append(f"LEFT JOIN ref.postcodes rp ON rp.postcode = {pc_raw}")
        lsoa.append("CAST(rp.lsoa_code AS VARCHAR)")
    people_sql = ""
    eth = _ethnicity_column(feed)
    if feed.person:
        if link["person_records"]:
            joins.append(f"LEFT JOIN {IDZ}.link.person_records pr ON pr.record_id = {rid}")
            dob, sex, band = "pr.date_of_birth", "pr.sex", "pr.age_band"
        else:
            dob, sex, band = "NULL::DATE", "NULL", "NULL"
        people_sql = (f", coalesce({sex}, 'U') AS sex, strftime({dob}, '%Y-%m') AS birth_year_month, "
                      f"date_sub('year', {dob}, {event}) AS age, {band} AS age_band_raw, "
                      f"{'CAST(r.' + _q(eth) + ' AS VARCHAR)' if eth else 'NULL'} AS ethnicity_raw")
    own = feed_output_columns(feed)
    own_sql = "".join(f", r.{_q(c)}" for c in own)
    latest = f"""
        SELECT {rid} AS record_id, {person_id} AS person_id, {household_id} AS household_id,
               coalesce({', '.join(uprn)}) AS uprn, coalesce({', '.join(lsoa)}) AS lsoa_code,
               {event} AS event_date, r._partition AS partition_month {people_sql} {own_sql}
        FROM {IDZ}.{feed.table} r {' '.join(joins)}
        QUALIFY row_number() OVER (PARTITION BY r._record_id ORDER BY r._partition DESC, r._line DESC) = 1
    """
    people_cols, eth_join = "", ""
    if feed.person:
        # the ethnicity groups of the feed's distinct codes/labels (a handful), mapped in Python, joined in SQL
        raw_values = [r[0] for r in con.execute(
            f"SELECT DISTINCT CAST(r.{_q(eth)} AS VARCHAR) FROM {IDZ}.{feed.table} r "
            f"WHERE r.{_q(eth)} IS NOT NULL").fetchall()] if eth else []
        known = _ethnicity_lookup(con)
        con.register("_ethnicity_groups", pa.table({
            "raw": pa.array(raw_values, pa.string()),
            "grp": pa.array([known.get(str(v).strip().upper()) or ethnicity_group(v) for v in raw_values],
                            pa.string())}))
        eth_join = "LEFT JOIN _ethnicity_groups eg ON eg.raw = s.ethnicity_raw"
        people_cols = (f", s.sex, s.birth_year_month, coalesce({_age_band_sql('s.age')}, "
                       "s.age_band_raw) AS age_band, coalesce(eg.grp, 'Unknown') AS ethnicity_group")
    try:
        with pz.sql_key(con):
            con.execute(f"""
                CREATE OR REPLACE TABLE src.{feed.name} AS
                SELECT {pz.token_sql('record', 's.record_id')} AS record_key,
                       {pz.token_sql('person', 's.person_id')} AS person_key,
                       {pz.token_sql('household', 's.household_id')} AS household_key,
                       CAST(s.uprn AS BIGINT) AS uprn, CAST(s.lsoa_code AS VARCHAR) AS lsoa_code,
                       CAST(s.event_date AS DATE) AS event_date,
                       CAST(date_trunc('month', s.event_date) AS DATE) AS event_month,
                       CAST(s.partition_month AS DATE) AS partition_month
                       {people_cols} {''.join(f', s.{_q(c)}' for c in own)}
                FROM ({latest}) s CROSS JOIN {pz.KEY_TABLE} pzk {eth_join}
                ORDER BY partition_month, event_date, record_key
            """)
    finally:
        if feed.person:
            con.unregister("_ethnicity_groups")
    return int(con.execute(f"SELECT count(*) FROM src.{feed.name}").fetchall()[0][0])


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
                            progress=None) -> dict[str, int]:
    """Write ``ref.*`` and every loaded feed's ``src.<partner>__<feed>``; return rows per table.

    Feeds not loaded yet are skipped (reported with -1 rows).
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
            out[f"src.{f.name}"] = build_warehouse_source(con, f, pz)
            if progress:
                progress(f, out[f"src.{f.name}"])
        con.execute(f"DETACH {IDZ}")
    from orchestration.lib.governance.audit import record_events  # the audit trail (docs/governance.md)

    record_events(settings, [{"action": "pseudonymise", "target": f"src.{f.name}", "agreement_id": f.agreement.id,
                              "purpose": ", ".join(f.agreement.purposes),
                              "details": {"rows": out[f"src.{f.name}"], "via": "build_warehouse_sources()"}}
                             for f in feeds if out.get(f"src.{f.name}", -1) >= 0])
    return out
