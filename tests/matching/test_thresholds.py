"""The match threshold chosen from the model's posteriors, and the chaining guard on clusters (#23)."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.lib.matching import person as pm


def _edges(con, rows):
    con.register("_e_df", pd.DataFrame(rows, columns=["unique_id_l", "unique_id_r", "match_probability"]))
    con.execute("CREATE OR REPLACE TABLE e AS SELECT * FROM _e_df").fetchall()
    con.unregister("_e_df")


_CON = duckdb.connect()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=pm.PREDICT_FLOOR, max_value=1.0), min_size=1, max_size=60))
def test_threshold_links_the_set_with_the_highest_expected_f1(probabilities):
    con = _CON
    _edges(con, [(f"a{i}", f"b{i}", p) for i, p in enumerate(probabilities)])
    chosen = pm.choose_threshold(con, "e")
    p = np.sort(np.asarray(probabilities))[::-1]
    expected_true = p.sum()
    # the expected F1 of linking every top-k prefix, by brute force
    best = max(2 * p[:k].sum() / (k + expected_true) for k in range(1, len(p) + 1))
    linked = p[p >= chosen["match_threshold"]]
    assert abs(chosen["expected_f1"] - best) < 1e-4
    assert len(linked) and abs(2 * linked.sum() / (len(linked) + expected_true) - best) < 1e-4


def test_no_scored_pair_falls_back_to_the_strong_bar():
    con = duckdb.connect()
    _edges(con, [("a", "b", 0.1)])
    assert pm.choose_threshold(con, "e")["match_threshold"] == pm.MATCH_THRESHOLD


def _clusters(edges, nodes, threshold=0.5):
    con = duckdb.connect()
    _edges(con, edges)
    con.register("_n_df", pd.DataFrame({"unique_id": nodes}))
    con.execute("CREATE TABLE n AS SELECT * FROM _n_df").fetchall()
    out = pm.guarded_components(con, "n", "e", threshold=threshold)
    groups: dict = {}
    for uid, cid in con.execute(f"SELECT unique_id, cluster_id FROM {out}").fetchall():
        groups.setdefault(cid, set()).add(uid)
    return sorted(sorted(g) for g in groups.values())


def test_one_weak_edge_does_not_merge_two_groups():
    strong = [("a1", "a2", 0.999), ("b1", "b2", 0.999)]
    nodes = ["a1", "a2", "b1", "b2"]
    assert _clusters(strong + [("a2", "b1", 0.7)], nodes) == [["a1", "a2"], ["b1", "b2"]]
    # plain connected components at the same threshold chain them
    con = duckdb.connect()
    _edges(con, strong + [("a2", "b1", 0.7)])
    con.execute("CREATE TABLE n AS SELECT unnest(['a1', 'a2', 'b1', 'b2']) AS unique_id").fetchall()
    plain = pm.connected_components(con, "n", "e", threshold=0.5)
    assert con.execute(f"SELECT count(DISTINCT cluster_id) FROM {plain}").fetchall() == [(1,)]
    # two weak edges between the groups corroborate each other
    assert _clusters(strong + [("a2", "b1", 0.7), ("a1", "b2", 0.6)], nodes) == [["a1", "a2", "b1", "b2"]]
    # a strong edge joins whatever it joins
    assert _clusters(strong + [("a2", "b1", 0.96)], nodes) == [["a1", "a2", "b1", "b2"]]


def test_a_lone_record_joins_only_its_best_group():
    edges = [("a1", "a2", 0.999), ("b1", "b2", 0.999), ("x", "a1", 0.8), ("x", "b1", 0.6), ("y", "z", 0.55)]
    nodes = ["a1", "a2", "b1", "b2", "x", "y", "z"]
    assert _clusters(edges, nodes) == [["a1", "a2", "x"], ["b1", "b2"], ["y", "z"]]
    # below the threshold nothing weak counts
    assert _clusters(edges, nodes, threshold=0.9) == [["a1", "a2"], ["b1", "b2"], ["x"], ["y"], ["z"]]


def test_two_weak_edges_do_not_merge_two_large_groups():
    """Two people with several records each (siblings, a parent and child): a couple of near pairs among their
    many cross pairs is not corroboration. At county the bare count of two merged such families (F1 0.974)."""
    a = ["a1", "a2", "a3"]
    b = ["b1", "b2", "b3"]
    strong = [("a1", "a2", 0.999), ("a2", "a3", 0.999), ("b1", "b2", 0.999), ("b2", "b3", 0.999)]
    two_weak = [("a1", "b1", 0.7), ("a2", "b2", 0.6)]
    assert _clusters(strong + two_weak, a + b) == [a, b]
    # most of the nine cross pairs near: corroborated
    most = [(x, y, 0.7) for x in a for y in b][:5]
    assert _clusters(strong + most, a + b) == [a + b]


def test_a_record_without_a_date_of_birth_joins_a_person_by_a_strong_link_only():
    """An undated record (a namesake of everyone with its name) attaches through a strong edge only: at county,
    undated pairs between the chosen threshold and the strong bar were 22 % true."""
    from orchestration.lib.matching import index as ix

    con = duckdb.connect()
    con.execute("""CREATE TABLE prep AS SELECT * FROM (VALUES ('a1', '1980-01-02'), ('a2', '1980-01-02'),
                   ('u', NULL), ('v', NULL)) t(unique_id, dob)""").fetchall()
    con.execute("CREATE TABLE nodes AS SELECT unique_id FROM prep").fetchall()

    def clusters(rows):
        _edges(con, rows)
        ix._anchored_clusters(con, "prep", "nodes", "e", "out", 0.5)
        groups: dict = {}
        for uid, cid in con.execute("SELECT unique_id, cluster_id FROM out").fetchall():
            groups.setdefault(cid, set()).add(uid)
        return sorted(sorted(g) for g in groups.values())

    assert clusters([("a1", "a2", 0.999), ("a1", "u", 0.8)]) == [["a1", "a2"], ["u"], ["v"]]
    assert clusters([("a1", "a2", 0.999), ("a1", "u", 0.97)]) == [["a1", "a2", "u"], ["v"]]
    # two undated records link to each other by a strong edge only, too
    assert clusters([("u", "v", 0.8)]) == [["a1"], ["a2"], ["u"], ["v"]]
    assert clusters([("u", "v", 0.97)]) == [["a1"], ["a2"], ["u", "v"]]
