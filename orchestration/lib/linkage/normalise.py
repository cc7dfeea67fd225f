"""Normalise standard person records into the columns the Splink model compares.

All of it is DuckDB SQL so it runs at county scale without a Python loop per row. The nickname lookup comes
from the curated ``nicknames`` package (no hand-made list): each given name becomes the set of itself plus
its canonical forms, and two records agree on "nickname" when those sets intersect (Nick ~ Nicholas,
Bill ~ William).
"""

from __future__ import annotations

from functools import lru_cache

import duckdb
import pandas as pd

from orchestration.lib import postcodes
from orchestration.lib.errors import PlacelinkError

#: The standard person record (DESIGN.md): record_id and source are required, the rest may be absent.
REQUIRED_COLUMNS = ("record_id",)
OPTIONAL_COLUMNS = (
    "source", "given_name", "family_name", "date_of_birth", "sex", "postcode", "address", "nhs_number",
    "uprn", "age_band", "event_date",
)

#: UK postcode shape after normalising (upper case, one space before the inward code).
UK_POSTCODE_REGEX = f"^{postcodes.OUTWARD} {postcodes.INWARD}$"


def run(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Execute a statement and consume its result (DuckDB 2 refuses new work while a result is unfinished)."""
    con.execute(sql).fetchall()


def check_columns(columns, where: str) -> None:
    """Raise a clear error naming the missing standard-record columns."""
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise PlacelinkError(
            # the input's other column names are counted, not quoted: a file sent without its header line has a
            # person's details there
            f"missing required column(s) {', '.join(missing)}; found {len(columns)} column(s), of the standard "
            f"record: {', '.join(c for c in columns if c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS) or 'none'}",
            where=where,
            fix="provide the standard person record: record_id (unique) plus any of "
                + ", ".join(OPTIONAL_COLUMNS),
        )


@lru_cache(maxsize=1)
def nickname_table() -> pd.DataFrame:
    """``name -> canonical`` pairs from the ``nicknames`` package (lower case)."""
    from nicknames import NickNamer

    rows = []
    for nick, canonicals in NickNamer().canonical_lookup.items():
        for canonical in canonicals:
            rows.append((nick, canonical))
    return pd.DataFrame(rows, columns=["name", "canonical"]).drop_duplicates()


def postcode_sql(col: str) -> str:
    """SQL normalising a postcode: the one rule (:mod:`orchestration.lib.postcodes`), upper case, ASCII letters and
    digits, one space before the inward code.

    Foreign postcodes keep their normalised text (exact comparison still works on them)."""
    return postcodes.postcode_sql(col, keep_other=True)


def nhs_number_sql(col: str) -> str:
    """SQL returning the 10-digit NHS number when its modulus-11 check digit is valid, else NULL.

    Only numbers that pass the check are trusted as an exact identifier."""
    d = f"regexp_replace(CAST({col} AS VARCHAR), '[^0-9]', '', 'g')"
    weighted = " + ".join(f"CAST(substr({d}, {i + 1}, 1) AS INTEGER) * {10 - i}" for i in range(9))
    check = f"(11 - (({weighted}) % 11)) % 11"
    return (
        f"CASE WHEN {col} IS NULL OR length({d}) <> 10 THEN NULL "
        f"WHEN {check} = 10 THEN NULL "
        f"WHEN {check} = CAST(substr({d}, 10, 1) AS INTEGER) THEN {d} ELSE NULL END"
    )


def _name_sql(col: str) -> str:
    # letters only, lower case: "O'Brien-Smith" and "obrien smith" compare equal
    return f"nullif(regexp_replace(lower(strip_accents(CAST({col} AS VARCHAR))), '[^a-z]', '', 'g'), '')"


def prepare_records(con: duckdb.DuckDBPyConnection, source_table: str, out_table: str) -> None:
    """Create ``out_table`` with the model's comparison columns from a standard-person-record table.

    Absent optional columns are treated as null, so foreign or partial data still links."""
    cols = {r[0] for r in con.execute(f"DESCRIBE {source_table}").fetchall()}
    check_columns(cols, where=source_table)

    def c(name: str) -> str:
        return name if name in cols else "NULL"

    con.register("_nick_lookup_df", nickname_table())
    run(con, "CREATE OR REPLACE TEMP TABLE _nick_lookup AS SELECT * FROM _nick_lookup_df")
    con.unregister("_nick_lookup_df")
    dob = c("date_of_birth")
    sex = c("sex")
    run(con, f"""
        CREATE OR REPLACE TABLE {out_table} AS
        WITH base AS (
            SELECT
                CAST(record_id AS VARCHAR) AS unique_id,
                CAST({c('source')} AS VARCHAR) AS source,
                {_name_sql(c('given_name'))} AS given_name,
                {_name_sql(c('family_name'))} AS family_name,
                CAST(try_cast(CAST({dob} AS VARCHAR) AS DATE) AS VARCHAR) AS dob,
                CASE upper(trim(CAST({sex} AS VARCHAR)))
                    WHEN 'M' THEN 'M' WHEN 'MALE' THEN 'M' WHEN '1' THEN 'M'
                    WHEN 'F' THEN 'F' WHEN 'FEMALE' THEN 'F' WHEN '2' THEN 'F' ELSE NULL END AS sex,
                {postcode_sql(c('postcode'))} AS postcode,
                {nhs_number_sql(c('nhs_number'))} AS nhs_number,
                nullif(trim(CAST({c('uprn')} AS VARCHAR)), '') AS uprn
            FROM {source_table}
        )
        , nick AS (SELECT name, list(canonical ORDER BY canonical) AS canonicals FROM _nick_lookup GROUP BY name)
        SELECT b.*,
               CASE WHEN b.given_name IS NULL THEN NULL
                    ELSE list_distinct(list_concat([b.given_name], coalesce(n.canonicals, []))) END
                   AS given_name_set,
               (b.dob IS NULL AND b.family_name IS NULL) AS weak_identifiers
        FROM base b LEFT JOIN nick n ON n.name = b.given_name
    """)
