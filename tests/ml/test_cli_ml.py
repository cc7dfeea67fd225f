"""placelink train / score / mlflow-ui from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from orchestration.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_mlflow_ui_prints_the_loopback_command_for_this_home(tmp_path):
    result = CliRunner().invoke(app, ["mlflow-ui", "--print", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("mlflow ui --backend-store-uri sqlite:///") and str(tmp_path / "mlflow" / "mlflow.db") in line
    assert "--host 127.0.0.1" in line and (tmp_path / "mlflow" / "artifacts").as_uri() in line


def test_score_without_a_champion_is_one_clear_line(fresh_home, ml_source):
    env = {**os.environ, "PLACELINK_HOME": str(fresh_home.home)}
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "score", "--model", "lsoa_demand",
                           "--feeds-dir", str(ml_source / "feeds")], env=env, capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "no 'champion' version" in proc.stderr and "placelink train --model lsoa_demand" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_score_all_without_any_champion_names_the_skipped_models_and_fails(fresh_home, ml_source):
    env = {**os.environ, "PLACELINK_HOME": str(fresh_home.home)}
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "score",
                           "--feeds-dir", str(ml_source / "feeds")], env=env, capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "skipped household_risk" in proc.stderr and "skipped lsoa_demand" in proc.stderr
    assert "no model has a champion to score with" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_train_and_score_from_the_cli_are_runs_of_the_ml_assets(fresh_home, ml_source):
    """``placelink train`` / ``score`` run the same assets as the weekly schedule and the nightly refresh, on this
    home's Dagster instance: the UI's run history and asset status show work started from the CLI."""
    import dagster as dg
    import duckdb

    from orchestration.runner import instance_for

    feeds = ["--feeds-dir", str(ml_source / "feeds"), "--home", str(fresh_home.home)]
    trained = CliRunner().invoke(app, ["train", "--model", "lsoa_demand", *feeds])
    assert trained.exit_code == 0, trained.output
    assert "lsoa_demand v1: mae" in trained.output and "placelink ui shows it" in trained.output
    scored = CliRunner().invoke(app, ["score", "--model", "lsoa_demand", *feeds])
    assert scored.exit_code == 0, scored.output
    with duckdb.connect(str(fresh_home.warehouse_db), read_only=True) as con:
        rows = con.execute("select count(*) from ml.lsoa_demand_forecasts").fetchone()[0]
    assert f"lsoa_demand v1: {rows} rows" in scored.output and rows > 0
    instance = instance_for(fresh_home)
    try:
        for key in (["ml", "lsoa_demand_training"], ["ml", "lsoa_demand_forecasts"]):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            assert event is not None, key
            assert event.run_id in trained.output + scored.output
        assert instance.get_latest_materialization_event(dg.AssetKey(["ml", "household_risk_training"])) is None
    finally:
        instance.dispose()


def test_train_a_named_model_with_too_little_history_fails_saying_how_much_it_needs(tmp_path, ml_source):
    """The training asset skips a young county's model with a warning (a nightly goes on); asked for by name on the
    command line, it is an error before any run (the CLI's exit 2), with the months it needs."""
    import shutil

    from ml.features import NotEnoughHistoryError
    from orchestration.lib.config import get_settings
    from orchestration.lib.errors import PlacelinkError
    from orchestration.runner import instance_for
    from tests.support.mart_warehouse import build_mart_warehouse

    settings = get_settings(home=tmp_path / "home").ensure()
    build_mart_warehouse(settings.warehouse_db, months=12)
    shutil.copy(ml_source / "mlflow.db", settings.mlflow_dir / "mlflow.db")
    args = ["--feeds-dir", str(ml_source / "feeds"), "--home", str(settings.home)]
    named = CliRunner().invoke(app, ["train", "--model", "lsoa_demand", *args])
    assert isinstance(named.exception, NotEnoughHistoryError), named.output
    assert "not enough history" in str(named.exception) and "need" in str(named.exception)
    every = CliRunner().invoke(app, ["train", *args])
    assert isinstance(every.exception, PlacelinkError), every.output
    assert "skipped household_risk" in every.output and "skipped lsoa_demand" in every.output
    assert "no model has enough history" in str(every.exception)
    instance = instance_for(settings)
    try:
        assert instance.get_runs() == []  # refused before any run
    finally:
        instance.dispose()
