"""The person model over encoded records (scheme ``placelink-clk/1``, :mod:`orchestration.lib.linkage.encoding`).

The clear-text model (:mod:`orchestration.lib.linkage.person`) level by level, with each clear comparison replaced
by one the platform can compute without the secret:

==========================  ===============================================================================
clear level                 encoded level
==========================  ===============================================================================
exact (TF adjusted)         exact on the HMAC token (TF adjusted on the token: equal names, equal tokens)
nickname sets intersect     the sets of HMAC tokens intersect (each name tokenised with the same key)
Jaro-Winkler >= 0.92 / 0.8  similarity of the balanced Bloom filters >= ``DICE_HIGH`` / ``DICE_LOW``
given/family transposed     ``given_name_l = family_name_r`` on tokens (both fields share the name key)
dob day/month swapped       ``dob_swapped_l = dob_r`` (the partner encodes the swapped date with the dob key)
dob one-character typo      two of year / month / day tokens agree
dob within a year           the year tokens agree
postcode full/sector/...    tokens of each postcode level
uprn, sex, nhs_number       exact on tokens (sex is clear M/F)
==========================  ===============================================================================

Similarity of balanced filters: every filter has exactly half its bits set, so the Dice coefficient is
``bit_count(a & b) / bit_count(a)`` = 1 - (Hamming distance of the unbalanced filters) / ``BLOOM_BITS``; DuckDB
computes it on ``BIT`` columns inside Splink's SQL. The thresholds were chosen so each level keeps roughly the
share of pairs its Jaro-Winkler twin keeps (benchmarks/bench_encoded.py prints both).

Blocking rules and EM training follow the clear model's (tokens stand in for values); the index, households,
clustering, review queue and everything downstream are the clear pipeline's, unchanged.
"""

from __future__ import annotations

import logging

import duckdb

from orchestration.lib.linkage.encoding import ENCODED_COLUMNS
from orchestration.lib.linkage.normalise import run

DICE_HIGH = 0.90
DICE_LOW = 0.87


def _dice(col: str) -> str:
    return f"(CAST(bit_count({col}_l & {col}_r) AS DOUBLE) / bit_count({col}_l))"


def prepare_encoded(con: duckdb.DuckDBPyConnection, source_table: str, out_table: str) -> None:
    """``out_table`` with the encoded model's columns from landed encoded records (``record_id, source`` +
    :data:`ENCODED_COLUMNS`, Bloom filters as hex text). Column names match ``prepare_records``' so the
    index and household code reads either."""
    cols = {r[0] for r in con.execute(f"DESCRIBE {source_table}").fetchall()}

    def c(name: str) -> str:
        return f"nullif(CAST({name} AS VARCHAR), '')" if name in cols else "NULL::VARCHAR"

    tokens = ",\n".join(f"{c(col)} AS {col}" for col in ENCODED_COLUMNS
                        if col not in ("given_name_set", "given_name_bf", "family_name_bf", "lsoa_code"))
    run(con, f"""
        CREATE OR REPLACE TABLE {out_table} AS
        SELECT CAST(record_id AS VARCHAR) AS unique_id, {c('source')} AS source,
               {tokens},
               CASE WHEN {c('given_name_set')} IS NULL THEN NULL
                    ELSE string_split({c('given_name_set')}, '|') END AS given_name_set,
               CAST(from_hex({c('given_name_bf')}) AS BIT) AS given_name_bf,
               CAST(from_hex({c('family_name_bf')}) AS BIT) AS family_name_bf,
               ({c('dob')} IS NULL AND {c('family_name')} IS NULL) AS weak_identifiers
        FROM {source_table}
    """)


def model_settings():
    """Splink settings for the encoded person record (see the module docstring for the level mapping)."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on
    from splink.blocking_rule_library import CustomRule

    given = cl.CustomComparison(
        output_column_name="given_name",
        comparison_levels=[
            cll.NullLevel("given_name"),
            cll.ExactMatchLevel("given_name", term_frequency_adjustments=True),
            cll.ArrayIntersectLevel("given_name_set", min_intersection=1).configure(
                label_for_charts="Nickname / canonical name match (tokens)"),
            cll.CustomLevel(f"{_dice('given_name_bf')} >= {DICE_HIGH}", label_for_charts=f"Dice >= {DICE_HIGH}"),
            cll.CustomLevel("given_name_l = family_name_r", label_for_charts="Given/family transposed"),
            cll.CustomLevel(f"{_dice('given_name_bf')} >= {DICE_LOW}", label_for_charts=f"Dice >= {DICE_LOW}"),
            cll.ElseLevel(),
        ],
    )
    family = cl.CustomComparison(
        output_column_name="family_name",
        comparison_levels=[
            cll.NullLevel("family_name"),
            cll.ExactMatchLevel("family_name", term_frequency_adjustments=True),
            cll.CustomLevel("family_name_l = given_name_r", label_for_charts="Given/family transposed"),
            cll.CustomLevel(f"{_dice('family_name_bf')} >= {DICE_HIGH}", label_for_charts=f"Dice >= {DICE_HIGH}"),
            cll.CustomLevel(f"{_dice('family_name_bf')} >= {DICE_LOW}", label_for_charts=f"Dice >= {DICE_LOW}"),
            cll.ElseLevel(),
        ],
    )
    dob = cl.CustomComparison(
        output_column_name="dob",
        comparison_levels=[
            cll.NullLevel("dob"),
            cll.ExactMatchLevel("dob"),
            cll.CustomLevel("dob_swapped_l = dob_r", label_for_charts="Day and month swapped"),
            cll.CustomLevel("CAST(dob_year_l = dob_year_r AS INT) + CAST(dob_month_l = dob_month_r AS INT) "
                            "+ CAST(dob_day_l = dob_day_r AS INT) = 2", label_for_charts="Two of three parts"),
            cll.CustomLevel("dob_year_l = dob_year_r", label_for_charts="Same year"),
            cll.ElseLevel(),
        ],
    )
    postcode = cl.CustomComparison(
        output_column_name="postcode",
        comparison_levels=[
            cll.NullLevel("postcode"),
            cll.ExactMatchLevel("postcode"),
            cll.CustomLevel("postcode_sector_l = postcode_sector_r", label_for_charts="Same sector"),
            cll.CustomLevel("postcode_district_l = postcode_district_r", label_for_charts="Same district"),
            cll.CustomLevel("postcode_area_l = postcode_area_r", label_for_charts="Same area"),
            cll.ElseLevel(),
        ],
    )
    comparisons = [cl.ExactMatch("nhs_number"), given, family, dob, postcode, cl.ExactMatch("uprn"),
                   cl.ExactMatch("sex")]
    blocking = [
        block_on("nhs_number"),
        block_on("family_name", "dob"),
        block_on("given_name", "dob"),
        # the clear model's "same name, dates of birth could be one person's" rule on tokens
        CustomRule(
            "l.given_name = r.given_name AND l.family_name = r.family_name AND (l.dob IS NULL OR r.dob IS NULL "
            "OR l.dob_year = r.dob_year OR (l.dob_month = r.dob_month AND l.dob_day = r.dob_day))"
        ),
        block_on("family_name", "postcode"),
        block_on("dob", "postcode"),
        block_on("uprn", "given_name"),
    ]
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocking,
        retain_intermediate_calculation_columns=True,
        retain_matching_columns=True,
        additional_columns_to_retain=["source"],
    )


def train_model(db_api, records_sdf, seed: int = 42, max_pairs_u: float | None = None,
                max_pairs_em: float | None = None) -> dict:
    """EM training as the clear model's :func:`~orchestration.lib.linkage.person.train_model`, on tokens."""
    from splink import Linker, block_on

    from orchestration.lib.linkage import person as pm

    for name in ("splink", "splink.internals"):
        logging.getLogger(name).setLevel(logging.WARNING)
    linker = Linker(records_sdf, model_settings(), log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("nhs_number"), block_on("given_name", "family_name", "dob", "postcode")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs_u or pm.U_MAX_PAIRS, seed=seed)
    em = max_pairs_em or pm.EM_MAX_PAIRS
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"), max_pairs=em)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("given_name", "family_name"),
                                                                       max_pairs=em)
    return linker.misc.save_model_to_json()


def link_encoded_frame(encoded, model: dict | None = None):
    """Link a frame of encoded person records on its own; returns the :class:`~.index.LinkResult`."""
    from orchestration.lib.linkage.index import update_index

    con = duckdb.connect()
    con.register("_encoded_df", encoded)
    run(con, "CREATE TABLE _encoded AS SELECT * FROM _encoded_df")
    prepare_encoded(con, "_encoded", "_prepared")
    return update_index(con, "_prepared", model=model, trainer=train_model)
