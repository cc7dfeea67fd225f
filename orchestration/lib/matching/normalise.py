"""Normalise standard person records into the columns the Splink model compares.

All of it is DuckDB SQL so it runs at county scale without a Python loop per row. The nickname lookup comes
from the curated ``nicknames`` package (no hand-made list): each given name becomes the set of itself plus
its canonical forms, and two records agree on "nickname" when those sets intersect (Nick ~ Nicholas,
Bill ~ William).
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import duckdb
import pandas as pd

from orchestration.lib import postcodes
from orchestration.lib.errors import PlacelinkError

#: The standard person record (docs/design.md): record_id and source are required, the rest may be absent.
REQUIRED_COLUMNS = ("record_id",)
OPTIONAL_COLUMNS = (
    "source", "given_name", "family_name", "date_of_birth", "sex", "postcode", "address", "nhs_number",
    "uprn", "age_band", "event_date", "national_id",
)
#: Identifiers few partners hold: absent is normal, so only an unusable one is warned about.
RARE_FIELDS = ("national_id",)

#: UK postcode shape after normalising (upper case, one space before the inward code).
UK_POSTCODE_REGEX = f"^{postcodes.OUTWARD} {postcodes.INWARD}$"


#: The person fields the model compares, and the prepared column each one feeds.
MODEL_FIELDS = {"given_name": "given_name", "family_name": "family_name", "date_of_birth": "dob", "sex": "sex",
                "postcode": "postcode", "address": "addr_words", "nhs_number": "nhs_digits",
                "national_id": "national_id"}


class MissingFieldWarning(UserWarning):
    """A person field is absent from the input, or present with no usable value: linking goes on without it."""


class IgnoredColumnWarning(UserWarning):
    """An input column is not in the standard person record (``dob`` for ``date_of_birth``): it is not used."""


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


#: Address words that carry no identity, and the abbreviations normalised before comparing address words.
ADDRESS_STOPWORDS = ("the", "and", "of", "flat", "apartment", "apt", "unit", "house", "cnr", "near")
ADDRESS_ABBREVIATIONS = {"rd": "road", "st": "street", "ave": "avenue", "av": "avenue", "ln": "lane", "cl": "close",
                         "dr": "drive", "cres": "crescent", "cr": "crescent", "pl": "place", "gdns": "gardens",
                         "ct": "court", "tce": "terrace", "ter": "terrace", "sq": "square", "pde": "parade",
                         "cct": "circuit", "hwy": "highway", "mt": "mount", "nth": "north", "sth": "south"}


def _address_words_sql(col: str) -> str:
    """The address's words (letters only, lower case, abbreviations expanded, stop words out), in order."""
    words = f"regexp_extract_all(lower(strip_accents(CAST({col} AS VARCHAR))), '[a-z]+')"
    mapping = "MAP {" + ", ".join(f"'{k}': '{v}'" for k, v in ADDRESS_ABBREVIATIONS.items()) + "}"
    stop = "[" + ", ".join(f"'{w}'" for w in ADDRESS_STOPWORDS) + "]"
    return (f"list_filter(list_transform({words}, lambda w: coalesce({mapping}[w], w)), "
            f"lambda w: length(w) > 1 AND NOT list_contains({stop}, w))")


def _dob_sql(col: str) -> str:
    """Date of birth as ``YYYY-MM-DD`` text. ISO dates, ``YYYYMMDD`` and ``DD/MM/YYYY`` are read; a date-shaped
    value that is not a calendar date (``1972-95-18``: a slipped digit) is kept as text so the typo and swap
    comparisons still see it, instead of being dropped to null."""
    v = f"trim(CAST({col} AS VARCHAR))"
    iso = (f"CASE WHEN regexp_matches({v}, '^[0-9]{{8}}$') THEN substr({v}, 1, 4) || '-' || substr({v}, 5, 2) || '-' "
           f"|| substr({v}, 7, 2) WHEN regexp_matches({v}, '^[0-9]{{1,2}}/[0-9]{{1,2}}/[0-9]{{4}}$') "
           f"THEN strftime(try_strptime({v}, '%d/%m/%Y'), '%Y-%m-%d') ELSE substr({v}, 1, 10) END")
    return (f"CASE WHEN try_cast({iso} AS DATE) IS NOT NULL THEN CAST(try_cast({iso} AS DATE) AS VARCHAR) "
            f"WHEN regexp_matches({iso}, '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$') THEN {iso} ELSE NULL END")


def _name_sql(col: str) -> str:
    # letters only, lower case: "O'Brien-Smith" and "obrien smith" compare equal
    return f"nullif(regexp_replace(lower(strip_accents(CAST({col} AS VARCHAR))), '[^a-z]', '', 'g'), '')"


def prepare_records(con: duckdb.DuckDBPyConnection, source_table: str, out_table: str) -> None:
    """Create ``out_table`` with the model's comparison columns from a standard-person-record table.

    Absent optional columns are treated as null, so foreign or partial data still links; each compared field
    that is absent or has no usable value raises a :class:`MissingFieldWarning` naming it."""
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
                {_dob_sql(dob)} AS dob,
                CASE upper(trim(CAST({sex} AS VARCHAR)))
                    WHEN 'M' THEN 'M' WHEN 'MALE' THEN 'M' WHEN '1' THEN 'M'
                    WHEN 'F' THEN 'F' WHEN 'FEMALE' THEN 'F' WHEN '2' THEN 'F' ELSE NULL END AS sex,
                {postcode_sql(c('postcode'))} AS postcode,
                {nhs_number_sql(c('nhs_number'))} AS nhs_number,
                -- any 10 digits, check digit or not: a keyed number with two digits transposed fails the
                -- modulus-11 check, yet is still near-certain evidence when it is one transposition away
                CASE WHEN length(regexp_replace(CAST({c('nhs_number')} AS VARCHAR), '[^0-9]', '', 'g')) = 10
                     THEN regexp_replace(CAST({c('nhs_number')} AS VARCHAR), '[^0-9]', '', 'g') END AS nhs_digits,
                -- family name parts: Smith-Jones shares a part with Smith and with Jones
                nullif(list_filter(regexp_extract_all(lower(strip_accents(CAST({c('family_name')} AS VARCHAR))),
                                   '[a-z]+'), lambda w: length(w) > 1), []) AS family_parts,
                -- address: house/flat numbers (12, 3a) and words (street, locality, town)
                nullif(regexp_extract_all(lower(CAST({c('address')} AS VARCHAR)), '[0-9]+[a-z]?\\b'), [])
                    AS addr_numbers,
                nullif({_address_words_sql(c('address'))}, []) AS addr_words,
                nullif(trim(CAST({c('uprn')} AS VARCHAR)), '') AS uprn,
                -- another national identifier a partner holds (a National Insurance number; a foreign social
                -- security number): letters and digits only, upper case
                nullif(regexp_replace(upper(CAST({c('national_id')} AS VARCHAR)), '[^A-Z0-9]', '', 'g'), '')
                    AS national_id
            FROM {source_table}
        )
        , nick AS (SELECT name, list(canonical ORDER BY canonical) AS canonicals FROM _nick_lookup GROUP BY name)
        SELECT b.*,
               CASE WHEN b.given_name IS NULL THEN NULL
                    ELSE list_distinct(list_concat([b.given_name], coalesce(n.canonicals, []))) END
                   AS given_name_set,
               -- house number + the first street word: exact agreement is term-frequency adjusted
               CASE WHEN b.addr_words IS NOT NULL THEN coalesce(b.addr_numbers[1] || ' ', '') || b.addr_words[1]
                    END AS addr_key,
               (b.dob IS NULL AND b.family_name IS NULL) AS weak_identifiers
        FROM base b LEFT JOIN nick n ON n.name = b.given_name
    """)
    _warn_missing_fields(con, source_table, out_table, cols)


def _warn_missing_fields(con: duckdb.DuckDBPyConnection, source_table: str, out_table: str, cols: set) -> None:
    """Warn, naming the field, when a field the model compares is absent, all empty, or has no usable value
    (e.g. no date of birth that reads as a date). Counts only: never a value."""
    if not con.execute(f"SELECT count(*) FROM {source_table}").fetchall()[0][0]:
        return
    present = [f for f in MODEL_FIELDS if f in cols]
    for field in MODEL_FIELDS:
        if field not in cols and field not in RARE_FIELDS:
            warnings.warn(f"{field}: column absent; linking uses the other fields", MissingFieldWarning, stacklevel=3)
    if not present:
        return
    counts = con.execute("SELECT " + ", ".join(
        f"count(nullif(trim(CAST({f} AS VARCHAR)), ''))" for f in present) + f" FROM {source_table}").fetchall()[0]
    usable = con.execute("SELECT " + ", ".join(f"count({MODEL_FIELDS[f]})" for f in present)
                         + f" FROM {out_table}").fetchall()[0]
    for field, raw, ok in zip(present, counts, usable, strict=True):
        if raw == 0:
            warnings.warn(f"{field}: every value is empty; linking uses the other fields", MissingFieldWarning,
                          stacklevel=3)
        elif ok == 0:
            warnings.warn(f"{field}: {raw:,} values but none usable (check its format); linking uses the other "
                          "fields", MissingFieldWarning, stacklevel=3)
