"""The cheap pre-tests in front of expensive comparison levels select exactly the pairs the plain level does."""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.lib.matching import person as pm

ALPHABET = "01239AB -"
text = st.text(alphabet=ALPHABET, min_size=0, max_size=12)


@st.composite
def one_edit_pairs(draw):
    """A value and the value after one substitution, adjacent transposition, insertion or deletion."""
    a = draw(text)
    kind = draw(st.sampled_from(["sub", "swap", "ins", "del", "none"]))
    i = draw(st.integers(min_value=0, max_value=max(len(a), 1)))
    c = draw(st.sampled_from(ALPHABET))
    if kind == "sub" and a:
        i = min(i, len(a) - 1)
        b = a[:i] + c + a[i + 1:]
    elif kind == "swap" and len(a) >= 2:
        i = min(i, len(a) - 2)
        b = a[:i] + a[i + 1] + a[i] + a[i + 2:]
    elif kind == "ins":
        b = a[:i] + c + a[i:]
    elif kind == "del" and a:
        i = min(i, len(a) - 1)
        b = a[:i] + a[i + 1:]
    else:
        b = a
    return a, b


@settings(max_examples=50, deadline=None)
@given(pairs=st.lists(st.one_of(one_edit_pairs(), st.tuples(text, text)), min_size=1, max_size=25),
       k=st.sampled_from([2, 3, 4]))
def test_one_edit_prefilter_keeps_every_pair_within_one_edit(pairs, k):
    con = duckdb.connect()
    con.execute("CREATE TABLE p (v_l VARCHAR, v_r VARCHAR)")
    con.executemany("INSERT INTO p VALUES (?, ?)", pairs)
    rows = con.execute(f"""SELECT v_l, v_r, damerau_levenshtein(v_l, v_r) <= 1 AS near,
                                  coalesce({pm.one_edit_prefilter_sql('v', k)}, FALSE) AS passes FROM p""").fetchall()
    near = [(a, b) for a, b, n, _ in rows if n]
    lost = [(a, b) for a, b, n, passes in rows if n and not passes]
    assert not lost, f"the pre-test rejects pairs within one edit: {lost}"
    assert len(near) == sum(1 for a, b in pairs if _dl_at_most_one(a, b))


def _dl_at_most_one(a: str, b: str) -> bool:
    """Within one substitution, adjacent transposition, insertion or deletion (independent of DuckDB)."""
    if a == b:
        return True
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    if abs(len(a) - len(b)) != 1:
        return False
    long, short = (a, b) if len(a) > len(b) else (b, a)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def test_model_edit_levels_are_the_plain_distance_behind_the_pre_test():
    """Every one-edit level of the model puts the pre-test in front of the distance itself, under the label the
    encoded model and the engine translation key on."""
    sd = pm.model_settings().create_settings_dict("duckdb")
    levels = {(c["output_column_name"], lvl["label_for_charts"]): lvl["sql_condition"]
              for c in sd["comparisons"] for lvl in c["comparison_levels"]}
    for key in [("dob", "Damerau-Levenshtein distance of dob <= 1"), ("postcode", "One character different"),
                ("nhs_number", "One transposition or typo"), ("national_id", "One transposition or typo")]:
        sql = levels[key]
        assert sql.index("abs(length(") < sql.index("damerau_levenshtein("), key


def _one_edit_neighbours(a: str, alphabet: str) -> set[str]:
    out = {a[:i] + c + a[i + 1:] for i in range(len(a)) for c in alphabet}
    out |= {a[:i] + a[i + 1] + a[i] + a[i + 2:] for i in range(len(a) - 1)}
    out |= {a[:i] + c + a[i:] for i in range(len(a) + 1) for c in alphabet}
    out |= {a[:i] + a[i + 1:] for i in range(len(a))}
    return out


def test_one_edit_prefilter_keeps_every_one_edit_pair_of_short_strings():
    """Exhaustive where the pre-test is at its edge (values of about 2k characters): every two-letter string up to
    nine characters and each of its one-edit neighbours passes, for every k the model uses."""
    from itertools import product

    import pandas as pd

    pairs = [(a, b) for n in range(10) for a in map("".join, product("AB", repeat=n))
             for b in _one_edit_neighbours(a, "AB")]
    con = duckdb.connect()
    p = pd.DataFrame(pairs, columns=["v_l", "v_r"])  # noqa: F841 -- read by DuckDB by name
    for k in (2, 3, 4):
        lost = con.execute(f"""SELECT v_l, v_r FROM p WHERE damerau_levenshtein(v_l, v_r) <= 1
                               AND NOT coalesce({pm.one_edit_prefilter_sql('v', k)}, FALSE) LIMIT 3""").fetchall()
        assert not lost, f"k={k}: the pre-test rejects pairs within one edit: {lost}"
