"""Foundation: one place decides the environment, the CLI behaves, lib/ never imports dagster."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.lib.config import ConfigError, get_settings

ROOT = Path(__file__).resolve().parents[1]


def test_settings_default_home_is_dot_placelink(monkeypatch, tmp_path):
    monkeypatch.delenv("PLACELINK_HOME", raising=False)
    monkeypatch.delenv("PLACELINK_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    s = get_settings()
    assert s.env == "local"
    assert s.home == tmp_path / ".placelink"
    # every zone lives under the one home
    for p in (s.landing, s.identifiable_db, s.warehouse_db, s.published, s.dagster_home, s.quality_dir):
        assert s.home in p.parents
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path / '.placelink' / 'mlflow' / 'mlflow.db'}"


def test_settings_reject_unknown_environment(monkeypatch):
    monkeypatch.setenv("PLACELINK_ENV", "staging")
    with pytest.raises(ConfigError, match="not a known environment"):
        get_settings()


def test_settings_query_time_limit_and_role_file(monkeypatch, tmp_path):
    monkeypatch.delenv("PLACELINK_QUERY_TIMEOUT_S", raising=False)
    assert get_settings(home=tmp_path).query_timeout_s == 300
    monkeypatch.setenv("PLACELINK_QUERY_TIMEOUT_S", "2.5")
    assert get_settings(home=tmp_path).query_timeout_s == 2.5
    for bad in ("0", "-1", "soon", "inf"):
        monkeypatch.setenv("PLACELINK_QUERY_TIMEOUT_S", bad)
        with pytest.raises(ConfigError, match="PLACELINK_QUERY_TIMEOUT_S"):
            get_settings(home=tmp_path)
    monkeypatch.delenv("PLACELINK_QUERY_TIMEOUT_S")
    # the role file is never chosen by an environment variable: the home's locally, /etc in production
    assert get_settings(home=tmp_path).roles_file == tmp_path / "governance" / "roles.yml"
    assert str(get_settings(home=tmp_path, env="production").roles_file) == "/etc/placelink/roles.yml"


def test_ensure_makes_the_zone_owner_only_and_never_follows_a_link(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours to change")
    outside.chmod(0o644)
    home = tmp_path / "home"
    (home / "landing" / "p" / "f").mkdir(parents=True, mode=0o755)
    drop = home / "landing" / "p" / "f" / "2025-01-04.csv"
    drop.write_text("a\n")
    drop.chmod(0o644)
    (home / "landing" / "p" / "f" / "2025-02-04.csv").symlink_to(outside)
    s = get_settings(home=home).ensure()
    assert oct(drop.stat().st_mode & 0o777) == "0o600"
    assert oct((home / "landing" / "p").stat().st_mode & 0o777) == "0o700"
    assert oct(s.governance_dir.stat().st_mode & 0o777) == "0o700"
    assert oct(outside.stat().st_mode & 0o777) == "0o644"     # the link's target outside the home is untouched


def test_production_requires_an_mlflow_backend(monkeypatch, tmp_path):
    monkeypatch.delenv("PLACELINK_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = get_settings(home=tmp_path, env="production")
    with pytest.raises(ConfigError, match="PLACELINK_MLFLOW_TRACKING_URI"):
        _ = s.mlflow_tracking_uri


def test_cli_where_prints_every_zone(tmp_path):
    result = CliRunner().invoke(app, ["where", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "warehouse.duckdb") in result.output
    assert str(tmp_path / "published") in result.output


def test_every_cli_command_has_help():
    import typer.main

    group = typer.main.get_command(app)
    assert group.commands, "the CLI has no commands"
    for name in group.commands:
        result = CliRunner().invoke(app, [name, "--help"])
        assert result.exit_code == 0, f"placelink {name} --help failed: {result.output}"
        assert "Usage" in result.output


def test_cli_error_is_one_line_with_exit_code_2(tmp_path):
    env = {**os.environ, "PLACELINK_ENV": "nonsense", "PLACELINK_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "where"], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "PLACELINK_ENV='nonsense'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_lib_never_imports_dagster():
    offenders = []
    for path in (ROOT / "orchestration" / "lib").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "dagster" or n.startswith(("dagster.", "dagster_")) for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"orchestration/lib must not import dagster: {offenders}"


def test_no_library_phones_home(tmp_path):
    """MLflow 3 sends usage telemetry unless told not to (it stays quiet under pytest and CI, so the check runs
    in a clean child process); dbt sends anonymous usage statistics unless DO_NOT_TRACK or its flag says no.
    Importing placelink's settings turns them off; a value an operator set is kept."""
    import yaml

    probe = ("import os, sys\n"
             "if sys.argv[1] == 'placelink': import orchestration.lib.config\n"
             "from mlflow.telemetry.utils import is_telemetry_disabled\n"
             "print(is_telemetry_disabled(), os.environ.get('DO_NOT_TRACK'), os.environ.get('GX_ANALYTICS_ENABLED'))")
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}

    def run(which: str, **extra: str) -> list[str]:
        out = subprocess.run([sys.executable, "-c", probe, which], env={**clean, **extra}, cwd=ROOT,
                             capture_output=True, text=True, check=True)
        return out.stdout.split()

    assert run("mlflow alone") == ["False", "None", "None"]  # what a placelink process would do untold
    assert run("placelink") == ["True", "1", "false"]
    assert run("placelink", DO_NOT_TRACK="0")[1] == "0"
    flags = yaml.safe_load((ROOT / "dbt_project" / "dbt_project.yml").read_text())["flags"]
    assert flags["send_anonymous_usage_stats"] is False
