"""Person linkage with Splink 5 on DuckDB: model settings, unsupervised training, prediction.

The engine seam is the ``DuckDBAPI`` built from the connection passed in; the settings, comparisons and
blocking rules are engine-neutral Splink objects, so the same model runs on Spark with ``SparkAPI``.

Model:
- ``nhs_number`` (only when the modulus-11 check digit is valid) is an exact comparison *and* a
  deterministic link: two records with the same valid NHS number are the same person.
- ``given_name``: exact (term-frequency adjusted), nickname (``nicknames`` package sets intersect),
  Jaro-Winkler bands, and given/family transposed.
- ``family_name``: exact (term-frequency adjusted), transposed, Jaro-Winkler bands.
- ``dob``: exact, day/month swapped, one-character typo, within a year.
- ``postcode`` (full/sector/district/area), ``uprn`` (from address matching) and ``sex``.
- parameters: u by random sampling, m and lambda by EM on the data itself (no labels).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from orchestration.lib.matching.normalise import run

MODEL_PREFIX = "person_model"

#: The match threshold is not a constant: :func:`choose_threshold` takes it from the scored pairs each run. This is
#: the threshold used when there is nothing to choose from (no scored pair), and the *strong-edge* bar of the
#: chaining guard (:func:`guarded_components`): an edge at or above it links whatever it joins, an edge between
#: the chosen threshold and it may attach a lone record to a group but not merge two groups on its own.
MATCH_THRESHOLD = 0.95
STRONG_EDGE = MATCH_THRESHOLD
#: Pairs between these two probabilities go to the clerical review queue.
REVIEW_BAND = (0.5, 0.95)
#: Pairs are scored from this probability up: the candidates the threshold is chosen among. Below the expected-F1
#: optimum (about half the achievable F1, so near 0.5), so the choice is never clipped by the floor.
PREDICT_FLOOR = 0.3


def _quiet_splink() -> None:
    for name in ("splink", "splink.internals"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _sql(condition: str, label_for_charts: str | None = None):
    """A comparison level in SQL of our own, written in DuckDB's dialect and said to be: Splink translates it
    (sqlglot) for another engine, e.g. ``regexp_extract``'s whole-match group, which is DuckDB's default and not
    Spark's. Array and string-distance tests are Splink's own levels (``ArrayIntersectLevel``,
    ``DamerauLevenshteinLevel``, composed with ``And``/``Or``/``Not``), which Splink writes per engine: sqlglot does
    not know DuckDB's ``list_intersect`` and would pass it to Spark as it is (#26: the model then failed on Spark)."""
    import splink.comparison_level_library as cll

    return cll.CustomLevel(condition, label_for_charts=label_for_charts, base_dialect_str="duckdb")


#: Characters at each end that :func:`one_edit_level`'s cheap pre-test compares.
EDIT_AFFIX = 2


def one_edit_prefilter_sql(col: str, k: int = EDIT_AFFIX) -> str:
    """A cheap test that every pair within one Damerau-Levenshtein edit passes (never the reverse): lengths at most
    one apart, and, when the longer value has more than ``2k`` characters, the first ``k`` or the last ``k``
    characters agree. One substitution, adjacent transposition, insertion or deletion touches at most two
    neighbouring positions, so it cannot reach both ends of a string longer than ``2k`` (tests: a property test
    against ``damerau_levenshtein`` itself)."""
    a, b = f"{col}_l", f"{col}_r"
    return (f"abs(length({a}) - length({b})) <= 1 AND (greatest(length({a}), length({b})) <= {2 * k} "
            f"OR left({a}, {k}) = left({b}, {k}) OR right({a}, {k}) = right({b}, {k}))")


def one_edit_level(col: str, label: str, k: int = EDIT_AFFIX):
    """``damerau_levenshtein(col) <= 1``, the same pairs, computed only where :func:`one_edit_prefilter_sql` lets
    it through. Profiled on the county (3.2 M blocked pairs, 1e6 random pairs for u): the edit distance on
    postcode, date of birth and NHS digits was the most expensive SQL of the model, almost all of it on pairs whose
    two ends both differ (another postcode, another date), which the pre-test rejects without computing it.
    DuckDB evaluates ``AND`` left to right on the rows still selected, so the distance runs on the few left.
    ``k``: the longer the compared ends, the fewer pairs pass -- up to half the usual length (dates ``YYYY-MM-DD``
    and NHS digits: 4, the year or the month and day; postcodes: 3, outward code or inward code)."""
    import splink.comparison_level_library as cll

    return cll.And(_sql(one_edit_prefilter_sql(col, k)), cll.DamerauLevenshteinLevel(col, 1)).configure(
        label_for_charts=label)


#: A household rule: family name and postcode, with dates of birth that could be one person's (model_settings).
FAMILY_POSTCODE_RULE = (
    "l.family_name = r.family_name AND l.postcode = r.postcode AND (l.dob IS NULL OR r.dob IS NULL "
    "OR abs(CAST(substr(l.dob, 1, 4) AS INTEGER) - CAST(substr(r.dob, 1, 4) AS INTEGER)) <= 1 "
    "OR substr(l.dob, 6, 5) = substr(r.dob, 6, 5) "
    "OR (l.nhs_digits IS NOT NULL AND r.nhs_digits IS NOT NULL) "
    "OR (l.national_id IS NOT NULL AND r.national_id IS NOT NULL))"
)


#: Same given and family name, and dates of birth that could be one person's: the same year, the same day and month,
#: or one missing. Four rules, each an equality join (DuckDB hashes on the name *and* the date part), whose union is
#: the pairs of the one rule ``same name AND (l.dob IS NULL OR r.dob IS NULL OR same year OR same day and month)``.
#: That one rule could only hash on the name and filtered after: every John Smith in the county met every other
#: before the date test threw most of them away. Same pairs (1,724,805 at county; tests/matching/test_linkage_cost.py
#: checks the union against the one rule), a cheaper join. A pair two rules both find is scored once (Splink leaves
#: out of each rule the pairs of the rules before it).
_SAME_NAME = "l.given_name = r.given_name AND l.family_name = r.family_name"
SAME_NAME_RULES = [
    f"{_SAME_NAME} AND substr(l.dob, 1, 4) = substr(r.dob, 1, 4)",
    f"{_SAME_NAME} AND substr(l.dob, 6, 5) = substr(r.dob, 6, 5)",
    f"{_SAME_NAME} AND l.dob IS NULL",
    f"{_SAME_NAME} AND r.dob IS NULL",
]


def model_settings():
    """The Splink settings (comparisons, blocking rules) for the standard person record."""
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
                label_for_charts="Nickname / canonical name match"
            ),
            cll.JaroWinklerLevel("given_name", 0.92),
            _sql("given_name_l = family_name_r", label_for_charts="Given/family transposed"),
            _sql(
                "(length(given_name_l) = 1 OR length(given_name_r) = 1) "
                "AND substr(given_name_l, 1, 1) = substr(given_name_r, 1, 1)",
                label_for_charts="Initial agrees with the name",
            ),
            cll.JaroWinklerLevel("given_name", 0.8),
            cll.ElseLevel(),
        ],
    )
    family = cl.CustomComparison(
        output_column_name="family_name",
        comparison_levels=[
            cll.NullLevel("family_name"),
            cll.ExactMatchLevel("family_name", term_frequency_adjustments=True),
            _sql("family_name_l = given_name_r", label_for_charts="Given/family transposed"),
            cll.JaroWinklerLevel("family_name", 0.92),
            # Smith-Jones ~ Smith, ~ Jones: a part of a hyphenated or double-barrelled name agrees
            cll.Or(cll.ArrayIntersectLevel("family_parts", min_intersection=1),
                   _sql("least(length(family_name_l), length(family_name_r)) >= 4 AND (contains(family_name_l, "
                        "family_name_r) OR contains(family_name_r, family_name_l))")
                   ).configure(label_for_charts="Part of a hyphenated/double-barrelled name"),
            cll.JaroWinklerLevel("family_name", 0.8),
            cll.ElseLevel(),
        ],
    )
    dob = cl.CustomComparison(
        output_column_name="dob",
        comparison_levels=[
            cll.NullLevel("dob"),
            cll.ExactMatchLevel("dob"),
            _sql(
                "substr(dob_l, 1, 4) = substr(dob_r, 1, 4) AND substr(dob_l, 6, 2) = substr(dob_r, 9, 2) "
                "AND substr(dob_l, 9, 2) = substr(dob_r, 6, 2)",
                label_for_charts="Day and month swapped",
            ),
            one_edit_level("dob", "Damerau-Levenshtein distance of dob <= 1", k=4),
            cll.AbsoluteDateDifferenceLevel("dob", input_is_string=True, threshold=1, metric="year"),
            cll.ElseLevel(),
        ],
    )
    sector = "regexp_extract({c}, '^[A-Z]{{1,2}}[0-9][A-Z0-9]? [0-9]')"
    district = "regexp_extract({c}, '^[A-Z]{{1,2}}[0-9][A-Z0-9]?')"
    postcode = cl.CustomComparison(
        output_column_name="postcode",
        comparison_levels=[
            cll.NullLevel("postcode"),
            cll.ExactMatchLevel("postcode"),
            # UK shapes: the unit, sector and district; any shape (a foreign postcode too): one character keyed
            # wrong or two swapped
            _sql(f"{sector.format(c='postcode_l')} = {sector.format(c='postcode_r')} "
                 f"AND {sector.format(c='postcode_l')} <> ''", label_for_charts="UK sector"),
            one_edit_level("postcode", "One character different", k=3),
            _sql(f"{district.format(c='postcode_l')} = {district.format(c='postcode_r')} "
                 f"AND {district.format(c='postcode_l')} <> ''", label_for_charts="UK district"),
            cll.ElseLevel(),
        ],
    )
    address = cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            # Neutral when absent -- and when the addresses share no word but the postcode (beyond a typo) or the
            # UPRN already says the two records are at different places: a move then counts once, not two or
            # three times (test county at seed 11: F1 0.983 with the move counted by address text too, 0.994
            # without the address comparison at all)
            cll.Or(
                cll.NullLevel("addr_words"),
                cll.And(cll.Not(cll.ArrayIntersectLevel("addr_words", min_intersection=1)),
                        cll.Or(cll.And(_sql("postcode_l <> postcode_r"), cll.Not(one_edit_level("postcode", "postcode typo", k=3))),
                               _sql("uprn_l <> uprn_r"))),
            ).configure(is_null_level=True,
                        label_for_charts="Address absent, or a move the postcode/UPRN already counts"),
            # house number + first street word, term-frequency adjusted: "1 high" is common, "12a herschell" not
            cll.ExactMatchLevel("addr_key", term_frequency_adjustments=True).configure(
                label_for_charts="House number and street agree"),
            cll.And(cll.ArrayIntersectLevel("addr_numbers", 1), cll.ArrayIntersectLevel("addr_words", 2)).configure(
                label_for_charts="House number and two address words agree"),
            cll.And(cll.ArrayIntersectLevel("addr_numbers", 1), cll.ArrayIntersectLevel("addr_words", 1)).configure(
                label_for_charts="House number and one address word agree"),
            cll.ArrayIntersectLevel("addr_words", 2).configure(label_for_charts="Two address words agree, not the number"),
            cll.ElseLevel(),
        ],
    )
    nhs = cl.CustomComparison(
        output_column_name="nhs_number",
        comparison_levels=[
            cll.NullLevel("nhs_digits"),
            cll.ExactMatchLevel("nhs_digits"),
            # a valid number and one with two digits transposed (or one keyed wrong): the check digit rejects it
            one_edit_level("nhs_digits", "One transposition or typo", k=4),
            cll.ElseLevel(),
        ],
    )
    # another national identifier (National Insurance number, a foreign social security number): probabilistic,
    # not deterministic like a valid NHS number -- nothing checks its digits
    national_id = cl.CustomComparison(
        output_column_name="national_id",
        comparison_levels=[
            cll.NullLevel("national_id"),
            cll.ExactMatchLevel("national_id"),
            one_edit_level("national_id", "One transposition or typo"),
            cll.ElseLevel(),
        ],
    )
    comparisons = [
        nhs,
        national_id,
        given,
        family,
        dob,
        postcode,
        address,
        cl.ExactMatch("uprn"),
        cl.ExactMatch("sex"),
    ]
    blocking = [
        block_on("nhs_number"),
        block_on("national_id"),
        block_on("family_name", "dob"),
        block_on("given_name", "dob"),
        # Same name, and the dates of birth could be one person's: one missing, or the same year, or the same
        # day and month. Plain same-name blocking paired every John Smith in the county with every other
        # (county: 26 M pairs, 22 k of them true, none found by another rule); this keeps 21.3 k of those true
        # pairs in 2.5 M (benchmarks: docs/matching.md).
        *(CustomRule(rule) for rule in SAME_NAME_RULES),
        # Same family name and postcode (a household), and a pair the model's cannot-link lets through
        # (index._edges: a date of birth at the "else" level links only when an NHS number or national id agrees):
        # dates one missing, years at most one apart (exact, swapped, within a year) or the same month and day
        # (one digit of the year keyed wrong), or both records carry an NHS number or a national id. County:
        # 1.24 M -> 0.63 M blocked pairs; the pairs left out were 20 true of 47.8 k scored above the floor, none
        # linkable, and 6.8 k review-band pairs of which 3 were true (FEBRL 1 without the id clause lost a pair).
        CustomRule(FAMILY_POSTCODE_RULE),
        block_on("dob", "postcode"),
        block_on("uprn", "given_name"),
        # Without NHS number or UPRN (data from outside the county, partners without health data) the address
        # text is what is left: the same house and street with the family name, the date of birth, the postcode
        # (a married name) or the given name.
        block_on("addr_key", "family_name"),
        block_on("addr_key", "dob"),
        block_on("addr_key", "postcode"),
        block_on("postcode", "given_name"),
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


def blocking_rule_sqls() -> list[str]:
    """The blocking rules' SQL conditions (``l.`` / ``r.``), for measuring blocking recall."""
    return [r.get_blocking_rule("duckdb").blocking_rule_sql
            for r in model_settings().blocking_rules_to_generate_predictions]


@dataclass
class TrainedModel:
    settings: dict
    path: Path | None


#: Pairs sampled to estimate u (random pairs) and m (EM over blocked pairs). On the county's 1.54 M person records
#: (2 cores) the training calls took 37 s with 2e6 / 2e6 / 2e6 and 14 s with 1e6 / 5e5 / 5e5; the whole full link
#: 91 s -> 80 s, pairwise F1 0.9776 -> 0.9778 (benchmarks/results/linkage_county*.json; the small-county bar in
#: tests/matching still holds). Half a million pairs per EM session is still thousands per comparison level.
U_MAX_PAIRS = 1e6
EM_MAX_PAIRS = 5e5
#: EM iterates on the counts of distinct agreement patterns (gamma vectors) instead of on every sampled pair:
#: Splink's ``estimate_without_term_frequencies``. Each iteration is then a pass over a few thousand patterns, not
#: half a million pairs with their term-frequency columns. The m values EM estimates are per comparison level in
#: either case; term frequencies still adjust the exact name and address-key levels when pairs are *scored* (u from
#: the population's frequencies). What it changes is that EM's own E-step weighs a pair without them, as Splink's
#: docs say ("the estimation of the parameters will change slightly"): county F1 and the labelled sets' F1 were
#: measured unchanged (docs/matching.md, "First link back over the bar").
EM_WITHOUT_TERM_FREQUENCIES = True


#: The prior (lambda): the share of all record pairs that these deterministic rules (columns that must all be
#: equal) link, divided by the recall they are assumed to have -- Splink's
#: ``estimate_probability_two_random_records_match`` with the same rules and recall.
PRIOR_RULES = (("nhs_number",), ("given_name", "family_name", "dob", "postcode"))
PRIOR_RECALL = 0.8


def prior_from_deterministic_rules(db_api, table: str, rules=PRIOR_RULES, recall: float = PRIOR_RECALL) -> float:
    """The probability two random records match, from the pairs :data:`PRIOR_RULES` link: the number Splink's
    ``estimate_probability_two_random_records_match`` gives (tests/matching/test_linkage_cost.py), counted from
    group sizes instead of by building the pairs. Splink joins the records on each rule to count the pairs; the
    pairs of an equality rule are ``n (n - 1) / 2`` over its groups, and pairs two rules both link are counted once
    by inclusion-exclusion over the rules' column unions. County (1.5 M records, 2 M linked pairs, shared machine):
    6.5 s -> 1.7 s, the same prior to the last digit. Plain SQL, so it runs on Splink's Spark engine too."""
    from itertools import combinations

    from splink.internals.pipeline import CTEPipeline

    terms = []
    for k in range(1, len(rules) + 1):
        for subset in combinations(rules, k):
            cols = sorted({c for rule in subset for c in rule})
            where = " AND ".join(f"{c} IS NOT NULL" for c in cols)
            pairs = (f"(SELECT coalesce(sum(CAST(n AS DOUBLE) * (n - 1)) / 2, 0) FROM (SELECT count(*) AS n "
                     f"FROM {table} WHERE {where} GROUP BY {', '.join(cols)}) g)")
            terms.append(("+ " if k % 2 else "- ") + pairs)
    sql = f"SELECT 0 {' '.join(terms)} AS linked, (SELECT count(*) FROM {table}) AS n"
    pipeline = CTEPipeline()
    pipeline.enqueue_sql(sql, "__placelink_prior_pair_counts")
    df = db_api.sql_pipeline_to_splink_dataframe(pipeline)
    row = df.as_record_list()[0]
    df.drop_table_from_database_and_remove_from_cache()
    n = int(row["n"])
    total = n * (n - 1) / 2
    return float(row["linked"]) / recall / total if total else 0.0


def train_model(db_api, records_sdf, seed: int = 42, max_pairs_u: float = U_MAX_PAIRS,
                max_pairs_em: float = EM_MAX_PAIRS, settings=None) -> dict:
    """Train the model on the records themselves (no labels) and return the Splink model dict.

    ``settings``: another model's Splink settings trained the same way (the encoded model, derived from this one)."""
    from splink import Linker, block_on

    _quiet_splink()
    from splink.internals.exceptions import EMTrainingException

    linker = Linker(records_sdf, settings or model_settings(), log_level=logging.ERROR)
    # Each step degrades instead of failing on sparse or tiny input (a field absent, no pair agreeing on a
    # training rule, EM converging to a certain prior): a step that cannot run leaves Splink's defaults for the
    # parameters it would have estimated, and linking goes on with the rest.
    settings_obj = linker._settings_obj  # Splink 5 has no public setter for the prior
    prior = prior_from_deterministic_rules(db_api, records_sdf.physical_name)
    # no pair (or every pair) met the deterministic rules: a prior of 0/1 has no log-odds
    settings_obj._probability_two_random_records_match = prior if 0 < prior < 1 else 1e-4  # Splink's own default
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs_u, seed=seed)
    # Two EM sessions, each blocking on what the other estimates, so every comparison gets m values.
    for rule in (block_on("dob"), block_on("given_name", "family_name")):
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=EM_WITHOUT_TERM_FREQUENCIES, max_pairs=max_pairs_em)
        except (EMTrainingException, ValueError) as exc:
            logging.getLogger(__name__).warning("EM session skipped (%s)", type(exc).__name__)
    return linker.misc.save_model_to_json()


def save_model(model: dict, models_dir: Path) -> Path:
    """Save a trained model as versioned JSON (``person_model_v<N>.json``) and return its path."""
    models_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(models_dir.glob(f"{MODEL_PREFIX}_v*.json"), key=_version_of)
    version = (_version_of(existing[-1]) + 1) if existing else 1
    path = models_dir / f"{MODEL_PREFIX}_v{version:04d}.json"
    model = dict(model)
    model["placelink"] = {"version": version, "trained_at": datetime.now(UTC).isoformat()}
    path.write_text(json.dumps(model, indent=2), encoding="utf-8")
    return path


def latest_model(models_dir: Path) -> Path | None:
    existing = sorted(models_dir.glob(f"{MODEL_PREFIX}_v*.json"), key=_version_of) if models_dir.exists() else []
    return existing[-1] if existing else None


def _version_of(path: Path) -> int:
    return int(path.stem.rsplit("_v", 1)[1])


def load_model(path: Path) -> dict:
    model = json.loads(path.read_text(encoding="utf-8"))
    model.pop("placelink", None)
    return model


def make_linker(db_api, records_sdf, model: dict):
    from splink import Linker

    _quiet_splink()
    return Linker(records_sdf, model, log_level=logging.ERROR)


def deterministic_nhs_edges_sql(table: str) -> str:
    """Edges between records sharing a valid NHS number: trusted exactly, whatever the model says."""
    return f"""
        SELECT l.unique_id AS unique_id_l, r.unique_id AS unique_id_r, 1.0 AS match_probability
        FROM {table} l JOIN {table} r ON l.nhs_number = r.nhs_number AND l.unique_id < r.unique_id
        WHERE l.nhs_number IS NOT NULL
    """


def choose_threshold(con: duckdb.DuckDBPyConnection, edges_table: str) -> dict:
    """The match threshold from the model's own posterior probabilities: the one that maximises the *expected*
    pairwise F1 of the links made.

    Each scored pair's ``match_probability`` is the model's posterior that it is a match (the EM-estimated prior
    lambda times the Bayes factors of m/u). Linking the k most probable pairs gives an expected
    ``TP = sum(p[:k])`` and an expected number of true pairs ``sum(p)``, so the expected F1 is
    ``2 * sum(p[:k]) / (k + sum(p))``, and it peaks where the next pair's probability falls below half of it: the
    threshold is half the best expected F1 (Lipton et al. 2014, "Thresholding classifiers to maximize F1").
    Pairs below ``PREDICT_FLOOR`` are not scored: their share of the expected true pairs is left out.
    Returns ``match_threshold``, ``expected_f1`` and ``threshold_candidates`` (pairs it chose among)."""
    import numpy as np

    p = con.execute(f"SELECT match_probability FROM {edges_table} WHERE match_probability >= {PREDICT_FLOOR} "
                    "ORDER BY 1 DESC").fetchnumpy()["match_probability"]
    p = np.asarray(p, dtype=float)
    if not len(p):
        return {"match_threshold": MATCH_THRESHOLD, "expected_f1": None, "threshold_candidates": 0}
    ef1 = 2 * np.cumsum(p) / (np.arange(1, len(p) + 1) + p.sum())
    # a pair raises the expected F1 exactly when its probability exceeds half the F1 reached: the threshold is
    # half the best expected F1 (the linked set is the argmax's, stated as the probability a pair must reach)
    best = float(ef1.max())
    return {"match_threshold": round(best / 2, 6), "expected_f1": round(best, 5),
            "threshold_candidates": int(len(p))}


def predict_pairs(linker, threshold: float = PREDICT_FLOOR):
    """All scored pairs at or above ``threshold`` (a SplinkDataFrame)."""
    return linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")


def connected_components(con: duckdb.DuckDBPyConnection, nodes_table: str, edges_table: str,
                         threshold: float = MATCH_THRESHOLD) -> str:
    """Cluster ``nodes_table.unique_id`` by edges at or above ``threshold``; returns a table name with
    ``unique_id, cluster_id`` (the cluster's smallest unique_id, as Splink's clustering names them).

    scipy's connected components over integer node numbers rather than Splink's
    ``cluster_pairwise_predictions_at_threshold``: that iterates SQL to a fixed point (5 s on the county's
    1.5 M records); this is well under a second for the same clusters. Edges must join nodes of the table."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as components

    out = f"_cc_of_{nodes_table.strip('_').replace('.', '_')}"
    run(con, f"""CREATE OR REPLACE TEMP TABLE _cc_nodes AS
                 SELECT unique_id, CAST(row_number() OVER () - 1 AS BIGINT) AS ix
                 FROM (SELECT DISTINCT CAST(unique_id AS VARCHAR) AS unique_id FROM {nodes_table})""")
    n = con.execute("SELECT count(*) FROM _cc_nodes").fetchall()[0][0]
    edges = con.execute(f"""
        SELECT l.ix AS a, r.ix AS b FROM {edges_table} e
        JOIN _cc_nodes l ON l.unique_id = CAST(e.unique_id_l AS VARCHAR)
        JOIN _cc_nodes r ON r.unique_id = CAST(e.unique_id_r AS VARCHAR)
        WHERE e.match_probability >= {threshold}""").fetchnumpy()
    a, b = np.asarray(edges["a"], dtype=np.int64), np.asarray(edges["b"], dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = components(graph, directed=False)
    con.register("_cc_labels_df", pd.DataFrame({"ix": np.arange(n, dtype=np.int64), "label": labels}))
    run(con, f"""CREATE OR REPLACE TEMP TABLE {out} AS
                 SELECT n.unique_id, min(n.unique_id) OVER (PARTITION BY l.label) AS cluster_id
                 FROM _cc_nodes n JOIN _cc_labels_df l USING (ix)""")
    con.unregister("_cc_labels_df")
    run(con, "DROP TABLE _cc_nodes")
    return out


def guarded_components(con: duckdb.DuckDBPyConnection, nodes_table: str, edges_table: str, threshold: float,
                       strong: float = STRONG_EDGE) -> str:
    """Connected components with a chaining guard; returns a table ``unique_id, cluster_id``.

    Plain components over every edge at or above a permissive threshold chain: one weak edge can merge two
    people's records. So groups are first formed from *strong* edges (``>= strong``); a *weak* edge
    (``threshold <= p < strong``) between two groups is kept only when it attaches a lone record (that record's
    best weak edge: a lone record with weak edges to two groups joins one) or when the two groups are joined by two
    or more weak edges that are at least half of their cross pairs (corroborated). Weak edges never chain groups of two or more records on their own."""
    first = connected_components(con, nodes_table, edges_table, threshold=max(strong, threshold))
    if threshold >= strong:
        return first
    run(con, f"CREATE OR REPLACE TEMP TABLE _strong_cc AS SELECT * FROM {first}")
    run(con, f"""CREATE OR REPLACE TEMP TABLE _guarded_edges AS
        WITH sizes AS (SELECT cluster_id, count(*) AS n FROM _strong_cc GROUP BY 1),
        weak AS (
            SELECT e.unique_id_l, e.unique_id_r, e.match_probability AS p,
                   least(a.cluster_id, b.cluster_id) AS ca, greatest(a.cluster_id, b.cluster_id) AS cb,
                   sa.n AS na, sb.n AS nb, a.cluster_id AS cl, b.cluster_id AS cr
            FROM {edges_table} e
            JOIN _strong_cc a ON a.unique_id = CAST(e.unique_id_l AS VARCHAR)
            JOIN _strong_cc b ON b.unique_id = CAST(e.unique_id_r AS VARCHAR)
            JOIN sizes sa ON sa.cluster_id = a.cluster_id JOIN sizes sb ON sb.cluster_id = b.cluster_id
            WHERE e.match_probability >= {threshold} AND e.match_probability < {strong}
              AND a.cluster_id <> b.cluster_id
        ),
        -- corroborated: two or more weak edges that are also at least half of the two groups' cross pairs. A
        -- bare count of two merged siblings' and parents' groups at county (each person has several records, so
        -- two groups of one family have many near pairs): pairwise F1 0.9738 with it, 0.9787 with the share
        corroborated AS (SELECT ca, cb FROM weak GROUP BY 1, 2
                         HAVING count(*) >= 2 AND 2 * count(*) >= max(greatest(na, nb)) * max(least(na, nb))),
        lone AS (  -- each lone record's single best weak edge
            SELECT lone_id, arg_max(other, (p, other)) AS other FROM (
                SELECT cl AS lone_id, cr AS other, p FROM weak WHERE na = 1
                UNION ALL SELECT cr, cl, p FROM weak WHERE nb = 1) GROUP BY 1
        )
        SELECT CAST(unique_id_l AS VARCHAR) AS unique_id_l, CAST(unique_id_r AS VARCHAR) AS unique_id_r,
               1.0 AS match_probability FROM {edges_table} WHERE match_probability >= {strong}
        UNION ALL SELECT ca, cb, 1.0 FROM corroborated
        UNION ALL SELECT lone_id, other, 1.0 FROM lone""")
    # the kept weak links join group representatives (cluster ids are member ids), so one more pass finishes
    return connected_components(con, nodes_table, "_guarded_edges", threshold=1.0)
