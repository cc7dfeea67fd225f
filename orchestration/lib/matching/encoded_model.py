"""The person model over encoded records (scheme ``placelink-clk/1``, :mod:`orchestration.lib.matching.encoding`).

Not written beside the clear model but **derived from it**: :func:`model_settings` walks the clear model's
comparison list (:func:`orchestration.lib.matching.person.model_settings`) level by level and maps each level to
one the platform can compute without the secret. The encoded record keeps the clear column names (tokens stand
in for values), so most levels carry over as they are:

==================================  ======================================================================
clear level                         encoded level (rule)
==================================  ======================================================================
null / else                         the same
exact (TF choice kept)              exact on the HMAC token (equal values, equal tokens; TF on the token)
array intersection                  the same on token lists (each member tokenised with the field key)
Jaro-Winkler >= t                   Dice of the balanced Bloom filters ``<col>_bf`` >= :data:`DICE_FOR_JW` [t]
custom SQL on ``=`` and lists       the same SQL (:data:`SAME`), when it uses only token comparisons
anything else                       the decision in :data:`COUNTERPARTS` for that (comparison, level label):
                                    an encoded SQL condition, or :class:`Dropped` with the reason
==================================  ======================================================================

A level added to the clear model that none of these rules covers makes :func:`model_settings` raise, naming it
(tests/partner/test_encoded_model.py checks every clear level has a decision), so the encoded path cannot drift
silently from the clear one. Blocking rules are derived the same way: equality rules carry over, custom rules
need an entry in :data:`BLOCKING_COUNTERPARTS`. Training is the clear model's own
(:func:`~orchestration.lib.matching.person.train_model` with these settings).

Similarity of balanced filters: every filter has exactly half its bits set, so the Dice coefficient is
``bit_count(a & b) / bit_count(a)`` = 1 - (Hamming distance of the unbalanced filters) / ``BLOOM_BITS``; DuckDB
computes it inside Splink's SQL as a Hamming distance on ``BIT`` columns (:func:`dice_at_least`). The thresholds were chosen so each level keeps roughly the share of pairs its
Jaro-Winkler twin keeps (benchmarks/bench_encoded.py prints both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from orchestration.lib.matching import person as pm
from orchestration.lib.matching.encoding import BLOOM_FIELDS, LIST_FIELDS, TOKEN_FIELDS
from orchestration.lib.matching.normalise import run

#: Jaro-Winkler threshold of a clear level -> Dice threshold of the balanced Bloom filters.
DICE_FOR_JW = {0.92: 0.90, 0.8: 0.87}


@dataclass(frozen=True)
class Dropped:
    """A clear level with no encoded counterpart, and why (the pairs it held fall to the next level down)."""
    reason: str


#: The clear SQL runs unchanged on tokens (it compares columns with ``=`` or intersects lists).
SAME = object()

_TYPO = Dropped("one character different cannot be seen on a keyed hash (a Bloom filter of the value would "
                "show it, at the price of a pattern-attack surface on short digit strings): exact tokens only")

#: Every clear level that the generic rules do not map: (comparison, the clear level's chart label) -> decision.
COUNTERPARTS: dict[tuple[str, str], object] = {
    ("nhs_number", "One transposition or typo"): _TYPO,
    ("national_id", "One transposition or typo"): _TYPO,
    ("given_name", "Given/family transposed"): SAME,  # given and family names share one key
    ("given_name", "Initial agrees with the name"): Dropped(
        "would need every record's initial as a token (26 values: a frequency attack reads them at once)"),
    ("family_name", "Given/family transposed"): SAME,
    ("family_name", "Part of a hyphenated/double-barrelled name"):
        "len(list_intersect(family_parts_l, family_parts_r)) >= 1",  # parts as tokens; substring test dropped
    ("dob", "Day and month swapped"): "dob_swapped_l = dob_r",  # the partner encodes the swap with the dob key
    ("dob", "Damerau-Levenshtein distance of dob <= 1"):
        "CAST(dob_year_l = dob_year_r AS INT) + CAST(dob_month_l = dob_month_r AS INT) "
        "+ CAST(dob_day_l = dob_day_r AS INT) = 2",  # one part keyed wrong: two of the three part tokens agree
    ("dob", "Abs difference of 'transformed dob <= 1 year'"): "dob_year_l = dob_year_r",
    ("postcode", "UK sector"): "postcode_sector_l = postcode_sector_r",
    ("postcode", "One character different"): _TYPO,
    ("postcode", "UK district"): "postcode_district_l = postcode_district_r",
    # a postcode typo cannot be told from a move on tokens: any other postcode counts as a move here
    ("address", "Address absent, or a move the postcode/UPRN already counts"):
        "addr_words_l IS NULL OR addr_words_r IS NULL OR (len(list_intersect(addr_words_l, addr_words_r)) = 0 "
        "AND (postcode_l <> postcode_r OR uprn_l <> uprn_r))",
    ("address", "House number and two address words agree"): SAME,
    ("address", "House number and one address word agree"): SAME,
    ("address", "Two address words agree, not the number"): SAME,
}

#: Clear custom blocking rules (their SQL) -> the encoded rule's SQL. Equality rules carry over as they are.
BLOCKING_COUNTERPARTS = {
    # person.SAME_NAME_RULES, one by one: the year and the day and month on their part tokens
    **dict(zip(pm.SAME_NAME_RULES, (
        "l.given_name = r.given_name AND l.family_name = r.family_name AND l.dob_year = r.dob_year",
        "l.given_name = r.given_name AND l.family_name = r.family_name AND l.dob_month = r.dob_month "
        "AND l.dob_day = r.dob_day",
        "l.given_name = r.given_name AND l.family_name = r.family_name AND l.dob IS NULL",
        "l.given_name = r.given_name AND l.family_name = r.family_name AND r.dob IS NULL",
    ), strict=True)),
    # years one apart cannot be seen on year tokens: the encoded rule stays the household equality it was
    pm.FAMILY_POSTCODE_RULE: '(l."family_name" = r."family_name") AND (l."postcode" = r."postcode")',
}

#: Columns of the encoded prepared record a level may compare.
ENCODED_FIELDS = {*TOKEN_FIELDS, *LIST_FIELDS, *BLOOM_FIELDS, "sex"}
#: What a clear SQL condition may use to run unchanged on tokens: columns, =, <>, list_intersect, len, logic.
_TOKEN_SAFE = re.compile(r"^(?:\s|\w+_[lr]\b|=|<>|>=|\(|\)|,|\d+|AND|OR|NOT|IS|NULL|len|list_intersect)*$")


def dice_at_least(col: str, threshold: float) -> str:
    """SQL: the Dice coefficient of two balanced Bloom filters is at least ``threshold``.

    A balanced filter of ``n`` bits has ``n/2`` set, so ``Dice = |a & b| / (n/2)`` and ``|a xor b| = n - 2|a & b|``:
    ``Dice >= t`` exactly when ``bit_count(xor(a, b)) <= (1 - t) * n``. The same pairs as
    ``bit_count(a & b) / bit_count(a) >= t`` (tests/partner/test_partner.py checks it against
    :func:`~orchestration.lib.matching.encoding.dice`), with one bit operation and no division: 1.7x faster on 2 M
    pairs (5.2 s -> 3.0 s), and the Dice levels are what nearly every random pair of u estimation reaches."""
    return f"bit_count(xor({col}_l, {col}_r)) <= {round(1 - threshold, 6)} * bit_length({col}_l)"


def _label(level) -> str:
    """The label people see on the charts: the clear model's own (``.configure(label_for_charts=...)``), else
    Splink's generated one (composed levels, And/Or/Not, generate long SQL-like labels: never keyed on)."""
    return getattr(level, "label_for_charts", None) or level.create_label_for_charts()


def _leaves(level) -> list:
    """The plain levels a composed one (Splink's And / Or / Not) is made of; the level itself otherwise."""
    if hasattr(level, "comparison_levels"):
        return [leaf for part in level.comparison_levels for leaf in _leaves(part)]
    if hasattr(level, "comparison_level"):
        return _leaves(level.comparison_level)
    return [level]


def encoded_level(comparison: str, level):
    """The encoded counterpart of one clear comparison level; None when it is :class:`Dropped`.

    Raises ``KeyError`` naming a clear level that no rule and no :data:`COUNTERPARTS` entry decides."""
    import splink.comparison_level_library as cll

    kind = type(level).__name__
    label = _label(level)
    if kind in ("NullLevel", "ElseLevel"):
        return level
    if kind == "ExactMatchLevel":
        col = level.col_expression.raw_sql_expression
        if col not in ENCODED_FIELDS:
            raise KeyError(f"{comparison}: exact level on {col}, which the encoded record does not carry")
        return level  # the same column name holds the token; the TF choice is the clear level's
    if kind == "ArrayIntersectLevel":
        return level
    if kind == "JaroWinklerLevel":
        col = level.col_expression.raw_sql_expression
        threshold = DICE_FOR_JW[level.distance_threshold]
        if f"{col}_bf" not in BLOOM_FIELDS:
            raise KeyError(f"{comparison}: Jaro-Winkler on {col}, which has no Bloom filter in the encoding")
        return cll.CustomLevel(dice_at_least(f"{col}_bf", threshold),
                               label_for_charts=f"Dice >= {threshold} (clear: {label})")
    decision = COUNTERPARTS[(comparison, label)] if (comparison, label) in COUNTERPARTS else None
    if decision is None:
        raise KeyError(f"{comparison}: clear level {label!r} ({kind}) has no encoded counterpart decision: "
                       "add it to encoded_model.COUNTERPARTS (an SQL condition on tokens, SAME, or Dropped)")
    if isinstance(decision, Dropped):
        return None
    if decision is SAME and kind in ("And", "Or", "Not"):
        # composed of levels that carry over as they are (list intersections, exact tokens): the same composition
        if not all(type(leaf).__name__ == "ArrayIntersectLevel" for leaf in _leaves(level)):
            raise ValueError(f"{comparison}: {label!r} is marked SAME but composes levels that do not run on tokens")
        return level
    sql = level.sql_condition if decision is SAME else decision
    if decision is SAME and not _TOKEN_SAFE.match(sql):
        raise ValueError(f"{comparison}: {label!r} is marked SAME but its SQL does more than compare tokens")
    out = cll.CustomLevel(sql, label_for_charts=label)
    if getattr(level, "_is_null_level", False):
        out = out.configure(is_null_level=True)
    return out


def encoded_comparisons() -> list:
    """The clear model's comparisons, each with its levels mapped by :func:`encoded_level`."""
    import splink.comparison_library as cl

    out = []
    for comparison in pm.model_settings().comparisons:
        name = comparison.get_comparison("duckdb").output_column_name
        levels = [encoded_level(name, lvl) for lvl in comparison.create_comparison_levels()]
        out.append(cl.CustomComparison(output_column_name=name,
                                       comparison_levels=[lvl for lvl in levels if lvl is not None]))
    return out


_EQUALITY = re.compile(r'^\(?l\."?(\w+)"? = r\."?\1"?\)?$')


def encoded_blocking_rules() -> list:
    """The clear model's blocking rules on tokens: equality rules as they are, custom ones by their counterpart."""
    from splink.blocking_rule_library import CustomRule

    out = []
    for rule in pm.model_settings().blocking_rules_to_generate_predictions:
        sql = rule.get_blocking_rule("duckdb").blocking_rule_sql
        if all(_EQUALITY.match(part.strip()) and _EQUALITY.match(part.strip()).group(1) in ENCODED_FIELDS
               for part in sql.split(" AND ")):
            out.append(rule)
        elif sql in BLOCKING_COUNTERPARTS:
            out.append(CustomRule(BLOCKING_COUNTERPARTS[sql]))
        else:
            raise KeyError(f"clear blocking rule {sql!r} has no encoded counterpart: add it to "
                           "encoded_model.BLOCKING_COUNTERPARTS")
    return out


def prepare_encoded(con: duckdb.DuckDBPyConnection, source_table: str, out_table: str) -> None:
    """``out_table`` with the encoded model's columns from landed encoded records (``record_id, source`` +
    :data:`~orchestration.lib.matching.encoding.ENCODED_COLUMNS`, lists ``|``-joined, Bloom filters as hex text).
    Column names match ``prepare_records``' so the index and household code reads either."""
    cols = {r[0] for r in con.execute(f"DESCRIBE {source_table}").fetchall()}

    def c(name: str) -> str:
        return f"nullif(CAST({name} AS VARCHAR), '')" if name in cols else "NULL::VARCHAR"

    tokens = [f"{c(col)} AS {col}" for col in TOKEN_FIELDS]
    lists = [f"CASE WHEN {c(col)} IS NULL THEN NULL ELSE string_split({c(col)}, '|') END AS {col}"
             for col in LIST_FIELDS]
    blooms = [f"CAST(from_hex({c(col)}) AS BIT) AS {col}" for col in BLOOM_FIELDS]
    run(con, f"""
        CREATE OR REPLACE TABLE {out_table} AS
        SELECT CAST(record_id AS VARCHAR) AS unique_id, {c('source')} AS source, {c('sex')} AS sex,
               {', '.join(tokens + lists + blooms)},
               ({c('dob')} IS NULL AND {c('family_name')} IS NULL) AS weak_identifiers
        FROM {source_table}
    """)


def compact_columns(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The SELECT list of ``table`` with each token (:data:`TOKEN_FIELDS`, and the members of :data:`LIST_FIELDS`)
    as the ``UHUGEINT`` its 32 hex digits spell, every other column as it is: what a full link scores on
    (``index.update_index(score_as=...)``).

    A token is 128 bits either way, so equal tokens are equal integers and the model's equalities, list
    intersections and term-frequency joins give the same results; but a 32-character string is a pointer to a
    heap copy in DuckDB (strings over 12 bytes are not inlined), an integer a fixed 16 bytes. On the 1.5 M-record
    encoded county the predict query (18.4 M blocked pairs, both records joined to each) went 97 s -> 78 s
    (benchmarks/results, docs/matching.md)."""
    out = []
    for name, typ, *_ in con.execute(f"DESCRIBE {table}").fetchall():
        if name in TOKEN_FIELDS and typ == "VARCHAR":
            out.append(f'CAST(\'0x\' || "{name}" AS UHUGEINT) AS "{name}"')
        elif name in LIST_FIELDS and typ == "VARCHAR[]":
            out.append(f'list_transform("{name}", lambda t: CAST(\'0x\' || t AS UHUGEINT)) AS "{name}"')
        else:
            out.append(f'"{name}"')
    return ", ".join(out)


def model_settings():
    """Splink settings for the encoded person record: the clear model's, mapped (see the module docstring)."""
    from splink import SettingsCreator

    clear = pm.model_settings()
    return SettingsCreator(
        link_type=clear.link_type,
        unique_id_column_name=clear.unique_id_column_name,
        comparisons=encoded_comparisons(),
        blocking_rules_to_generate_predictions=encoded_blocking_rules(),
        retain_intermediate_calculation_columns=clear.retain_intermediate_calculation_columns,
        retain_matching_columns=clear.retain_matching_columns,
        additional_columns_to_retain=clear.additional_columns_to_retain,
    )


def _shape(settings: dict) -> list:
    return [(c["output_column_name"], [lvl["sql_condition"] for lvl in c["comparison_levels"]])
            for c in settings["comparisons"]]


def model_is_current(model: dict) -> bool:
    """Whether a saved encoded model compares what :func:`model_settings` compares now (same comparisons, same
    level SQL). One saved before the model changed (e.g. before #23's fields were derived) names columns the
    encoded record no longer has, and would fail at prediction: it is retrained instead."""
    try:
        return _shape(model) == _shape(model_settings().create_settings_dict(sql_dialect_str="duckdb"))
    except (KeyError, TypeError):
        return False


def train_model(db_api, records_sdf, seed: int = 42, max_pairs_u: float | None = None,
                max_pairs_em: float | None = None) -> dict:
    """The clear model's training (:func:`~orchestration.lib.matching.person.train_model`) with these settings."""
    return pm.train_model(db_api, records_sdf, seed=seed, max_pairs_u=max_pairs_u or pm.U_MAX_PAIRS,
                          max_pairs_em=max_pairs_em or pm.EM_MAX_PAIRS, settings=model_settings())


def link_encoded_frame(encoded, model: dict | None = None):
    """Link a frame of encoded person records on its own; returns the :class:`~.index.LinkResult`."""
    import os

    from orchestration.lib.matching.index import update_index

    con = duckdb.connect()
    # the matching stage's memory limit (run._configure), not DuckDB's default of 80 % of RAM: unlimited, the
    # 1.5 M-record encoded county took 19 GB of a shared 23 GB machine (bench_encoded.py --scale-people 500000)
    run(con, f"SET memory_limit = '{os.environ.get('PLACELINK_DUCKDB_MEMORY', '4GB')}'")
    con.register("_encoded_df", encoded)
    run(con, "CREATE TABLE _encoded AS SELECT * FROM _encoded_df")
    prepare_encoded(con, "_encoded", "_prepared")
    return update_index(con, "_prepared", model=model, trainer=train_model, score_as=compact_columns)
