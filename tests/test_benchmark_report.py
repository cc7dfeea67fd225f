"""The benchmark report's bookkeeping: verdicts, which runs the scaling table compares, skipped stages.

The benchmark itself is not a timed test (``.ci/run`` runs it once at small scale as a smoke test); these check
the parts that decide what the report claims, on hand-made result files.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import run as bench


def _result(scale: str, measured_at: str, wall: float, *, command: str = "python benchmarks/run.py",
            months: int | None = None, stages: list[str] = ("generate", "ingest")) -> dict:
    return {"scale": scale, "months": months, "measured_at": measured_at, "command": command, "commit": "abc1234",
            "records": 1000, "machine": {"cpu": "test cpu"},
            "stages": [{"name": s, "wall_s": wall, "cpu_s": wall, "peak_rss_mb": 1.0} for s in stages],
            "refresh_full": {"wall_s": wall * 10}}


def test_verdict_says_by_how_much_a_target_is_missed():
    assert bench.verdict(100.0, 120.0) == "met"
    assert bench.verdict(240.0, 120.0) == "MISSED by 2.0x"
    assert bench.verdict(4.0, 20.0, higher_is_better=True) == "MISSED by 5.0x"
    assert bench.verdict(None, 3.0) == "not measured"


def test_scaling_table_compares_the_newest_whole_run_of_each_scale(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    files = {
        "2026-12-01-small.json": _result("small", "2026-12-01T10:00:00+00:00", 1.0),
        "2026-12-02-small.json": _result("small", "2026-12-02T10:00:00+00:00", 2.0),
        "2026-12-02-county.json": _result("county", "2026-12-02T11:00:00+00:00", 30.0),
        # newer, but partial: file names sort after the whole run's, which they must not win by
        "refresh-only-2026-12-03-county.json": _result("county", "2026-12-03T10:00:00+00:00", 99.0,
                                                       command="python benchmarks/run.py --refresh-only",
                                                       stages=["generate"]),
        # newer, but another amount of history: not the same scale's point on the curve
        "2026-12-03-county-24m.json": _result("county", "2026-12-03T11:00:00+00:00", 77.0, months=24),
    }
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    table = bench.scaling_table()
    ingest = next(line for line in table.splitlines() if line.startswith("| ingest |"))
    assert "2.0 s" in ingest and "30.0 s" in ingest
    assert "1.0 s" not in ingest and "99.0 s" not in ingest and "77.0 s" not in ingest
    assert "small measured 2026-12-02 at commit abc1234" in table


def test_training_is_skipped_exactly_when_the_marts_hold_too_little_history(tmp_path):
    """The benchmark asks the training asset's own check: with one month fewer than the models' splits need it
    names the model and the shortfall, with exactly enough it lets the train stage run."""
    from ml.features import list_models, load_spec
    from tests.support.mart_warehouse import build_mart_warehouse

    need = max(load_spec(m).min_history_months + 3 * load_spec(m).horizon_months for m in list_models())
    for months in (need - 1, need):
        home = tmp_path / f"home_{months}"
        home.mkdir()
        build_mart_warehouse(home / "warehouse.duckdb", n_households=200, n_lsoas=10, months=months)
        reason = bench._too_little_history(home)
        if months < need:
            assert reason is not None and "not enough history" in reason and f"{months} months" in reason, reason
        else:
            assert reason is None


@pytest.mark.parametrize("skipped", [{}, {"train": "not enough history: 11 months", "score": "no model"}])
def test_the_report_lists_stages_not_run_and_why(tmp_path, monkeypatch, skipped):
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    res = _result("county", "2026-12-02T11:00:00+00:00", 3.0)
    res.update({"seed": 42, "repeats": 3, "held_back_month": "2025-11", "skipped_stages": skipped,
                "machine": {"cores": 2, "ram_gb": 23.5, "cpu": "test cpu", "python": "3.11",
                            "load_avg_at_start": [0.1, 0.1, 0.1]},
                "refresh_full": {"wall_s": 400.0, "cpu_s": 500.0, "peak_rss_mb": 5000.0},
                "refresh_incremental": {"wall_s": 100.0, "cpu_s": 120.0, "peak_rss_mb": 3000.0}})
    text = bench.write_report(res, "county").read_text()
    assert ("| train | not run: not enough history: 11 months |" in text) == bool(skipped)
    assert ("do not include them" in text) == bool(skipped)
    assert "| incremental <= 2 min | 100.0 s | met |" in text
    assert "at commit abc1234" in text


def test_each_nightly_run_starts_from_the_home_the_full_refresh_left_and_the_median_is_reported(tmp_path, monkeypatch):
    """Repeated nightly runs each start from one copy of the home taken before the first (not from the previous
    nightly's result), each gets the held-back drops, the median run's figures are reported with every run's wall
    time, and the copy is removed. A stand-in command plays the refresh: it records what it found and changes the
    home; its sleep makes the second run the slowest and the first the fastest."""
    home, holding, seen = tmp_path / "refresh", tmp_path / "held", tmp_path / "seen.log"
    (home / "landing" / "nhs" / "ae").mkdir(parents=True)
    (home / "state.txt").write_text("after full refresh")
    (holding / "nhs" / "ae").mkdir(parents=True)
    (holding / "nhs" / "ae" / "2025-11-03.csv").write_text("a,b\n1,2\n")
    fake = (
        "import os, pathlib, time\n"
        "home = pathlib.Path(os.environ['PLACELINK_HOME'])\n"
        f"seen = pathlib.Path({str(seen)!r})\n"
        "n = len(seen.read_text().splitlines()) if seen.exists() else 0\n"
        "drops = sorted(p.name for p in (home / 'landing').rglob('*.csv'))\n"
        "with seen.open('a') as f: f.write((home / 'state.txt').read_text() + '|' + ','.join(drops) + '\\n')\n"
        "(home / 'state.txt').write_text('after a nightly')\n"
        "time.sleep([0.05, 0.6, 0.3][n])\n")
    monkeypatch.setattr(bench, "placelink", lambda *args: [bench.sys.executable, "-c", fake])
    monkeypatch.setattr(bench, "step_seconds", lambda h, since: {"matching": 1.0})
    run = bench.nightly_runs(home, holding, 3, tmp_path / "bench.log", lambda msg: None, "drops of 2025-11")
    assert seen.read_text().splitlines() == ["after full refresh|2025-11-03.csv"] * 3
    assert len(run["runs_wall_s"]) == 3 and run["wall_s"] == sorted(run["runs_wall_s"])[1]
    assert 0.3 <= run["wall_s"] < min(run["runs_wall_s"][1], 5.0) and run["steps_s"] == {"matching": 1.0}
    assert not (tmp_path / "refresh-before-nightly").exists()
    assert (home / "state.txt").read_text() == "after a nightly"
    res = _result("county", "2026-12-02T11:00:00+00:00", 3.0)
    res.update({"seed": 42, "repeats": 3, "held_back_month": "2025-11", "skipped_stages": {},
                "machine": {"cores": 2, "ram_gb": 23.5, "cpu": "test cpu", "python": "3.11",
                            "load_avg_at_start": [0.1, 0.1, 0.1]},
                "refresh_full": {"wall_s": 400.0, "cpu_s": 500.0, "peak_rss_mb": 5000.0}, "refresh_incremental": run})
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    text = bench.write_report(res, "county").read_text()
    assert f"2025-11), median of 3 runs ({', '.join(str(w) for w in sorted(run['runs_wall_s']))} s) |" in text
