"""The mechanisms that keep the county's first link (training + prediction) cheap do what they say: the same-name
blocking rules give the pairs of the one rule they replace, and EM trains on agreement-pattern counts."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from orchestration.lib.matching import person as pm

#: The one rule SAME_NAME_RULES replaces: same name, and the dates of birth could be one person's.
ONE_RULE = ("l.given_name = r.given_name AND l.family_name = r.family_name AND (l.dob IS NULL OR r.dob IS NULL "
            "OR substr(l.dob, 1, 4) = substr(r.dob, 1, 4) OR substr(l.dob, 6, 5) = substr(r.dob, 6, 5))")


def _pairs(con, condition: str) -> set[tuple[int, int]]:
    return set(con.execute(f"SELECT l.unique_id, r.unique_id FROM recs l JOIN recs r ON ({condition}) "
                           "AND l.unique_id < r.unique_id").fetchall())


def test_same_name_rules_give_the_pairs_of_the_one_rule():
    """Every combination that matters: same/other name, dates equal, same year, same day and month, neither,
    one or both missing."""
    dobs = ["1980-03-04", "1980-04-03", "1980-11-12", "1981-03-04", "1990-07-08", None, None]
    names = [("ann", "lee"), ("ann", "lee"), ("ann", "lee"), ("ann", "lee"), ("ann", "lee"), ("ann", "lee"),
             ("ann", "lee"), ("bob", "lee"), ("ann", "kay"), (None, "lee")]
    rows = [(i, g, f, d) for i, ((g, f), d) in enumerate((n, d) for n in names for d in dobs)]
    con = duckdb.connect()
    con.register("_df", pd.DataFrame(rows, columns=["unique_id", "given_name", "family_name", "dob"]))
    con.execute("CREATE TABLE recs AS SELECT * FROM _df")
    one = _pairs(con, ONE_RULE)
    union = set().union(*(_pairs(con, rule) for rule in pm.SAME_NAME_RULES))
    assert one == union
    assert len(one) > 100  # the case grid reaches the rule's branches, not only the empty set


def test_same_name_rules_are_the_models_and_the_encoded_models():
    sqls = pm.blocking_rule_sqls()
    assert all(rule in sqls for rule in pm.SAME_NAME_RULES)
    assert ONE_RULE not in sqls
    from orchestration.lib.matching.encoded_model import BLOCKING_COUNTERPARTS, encoded_blocking_rules

    assert all(rule in BLOCKING_COUNTERPARTS for rule in pm.SAME_NAME_RULES)
    assert len(encoded_blocking_rules()) == len(sqls)


def test_em_trains_on_agreement_pattern_counts(linkage_county, monkeypatch):
    """train_model passes person.EM_WITHOUT_TERM_FREQUENCIES to every EM session (Splink then iterates over the
    distinct gamma patterns, not every pair)."""
    from splink import DuckDBAPI
    from splink.internals.linker_components.training import LinkerTraining

    from orchestration.lib.matching.normalise import prepare_records, run

    seen = []
    real = LinkerTraining.estimate_parameters_using_expectation_maximisation

    def spy(self, blocking_rule, *args, **kwargs):
        seen.append(kwargs.get("estimate_without_term_frequencies"))
        return real(self, blocking_rule, *args, **kwargs)

    monkeypatch.setattr(LinkerTraining, "estimate_parameters_using_expectation_maximisation", spy)
    con = duckdb.connect()
    con.register("_df", linkage_county["records"].head(400))
    run(con, "CREATE TABLE recs AS SELECT * FROM _df")
    prepare_records(con, "recs", "prep")
    run(con, "CREATE TABLE strong AS SELECT * FROM prep WHERE NOT weak_identifiers")
    db_api = DuckDBAPI(con)
    model = pm.train_model(db_api, db_api.register("strong"), max_pairs_u=2e4, max_pairs_em=2e4)
    assert pm.EM_WITHOUT_TERM_FREQUENCIES is True
    assert seen == [True, True]
    assert model["comparisons"]


def _plan(rule: str) -> str:
    con = duckdb.connect()
    con.execute("CREATE TABLE recs (unique_id INT, given_name VARCHAR, family_name VARCHAR, dob VARCHAR)")
    return "\n".join(r[1] for r in con.execute(
        f"EXPLAIN SELECT * FROM recs l JOIN recs r ON ({rule}) AND l.unique_id < r.unique_id").fetchall())


@pytest.mark.parametrize("rule", pm.SAME_NAME_RULES)
def test_each_same_name_rule_is_an_equality_join(rule):
    """DuckDB plans each rule as a hash join on the name *and* the date part (or on the name, one side filtered
    first), never a join on the name alone followed by an OR over the dates, as it plans the one rule."""
    assert "Hash Join" in _plan(rule)
    assert " OR " not in _plan(rule)
    assert " OR " in _plan(ONE_RULE)


def test_prior_from_group_counts_is_splinks_estimate(linkage_county):
    """The prior counted from group sizes is the number Splink's estimate_probability_two_random_records_match
    gives with the same deterministic rules and recall (it builds the pairs to count them)."""
    import logging

    from splink import DuckDBAPI, Linker, block_on

    from orchestration.lib.matching.normalise import prepare_records, run

    con = duckdb.connect()
    con.register("_df", linkage_county["records"])
    run(con, "CREATE TABLE recs AS SELECT * FROM _df")
    prepare_records(con, "recs", "prep")
    run(con, "CREATE TABLE strong AS SELECT * FROM prep WHERE NOT weak_identifiers")
    db_api = DuckDBAPI(con)
    sdf = db_api.register("strong")
    linker = Linker(sdf, pm.model_settings(), log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*cols) for cols in pm.PRIOR_RULES], recall=pm.PRIOR_RECALL)
    splinks = linker._settings_obj._probability_two_random_records_match
    ours = pm.prior_from_deterministic_rules(db_api, sdf.physical_name)
    assert splinks > 0
    assert ours == pytest.approx(splinks, rel=1e-12)
