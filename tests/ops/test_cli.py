"""placelink refresh / ui from the command line."""

from __future__ import annotations

from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.ops_cli import ui_command


def test_refresh_on_an_empty_home_says_there_is_nothing_to_do(tmp_path):
    result = CliRunner().invoke(app, ["refresh", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "nothing to refresh" in result.output
    assert (tmp_path / "dagster" / "dagster.yaml").exists()


def test_ui_runs_dagster_dev_on_loopback_with_the_workspace():
    cmd = ui_command(None, 3123)
    assert cmd[1:4] == ["-m", "dagster", "dev"]
    assert cmd[cmd.index("-h") + 1] == "127.0.0.1" and cmd[cmd.index("-p") + 1] == "3123"
    assert cmd[cmd.index("-w") + 1].endswith("workspace.yaml")
