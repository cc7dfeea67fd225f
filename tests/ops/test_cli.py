"""placelink refresh / ui from the command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) of every process, from /proc."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(stat.parent.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return out


def test_sigterm_to_placelink_ui_stops_dagster_dev_and_every_child(tmp_path):
    """A service manager (or ``kill``) stopping ``placelink ui`` must not leave the daemon launching runs."""
    from tests.ops.webserver import ROOT, free_port

    log = (tmp_path / "ui.log").open("w")
    ui = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "ui", "--home", str(tmp_path / "home"),
                           "--port", str(free_port())], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                          start_new_session=True)
    group = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and ui.poll() is None:
            procs = _processes()
            dev = [pid for pid, (ppid, _, _) in procs.items() if ppid == ui.pid]
            if dev:
                group = procs[dev[0]][1]
                members = [pid for pid, (_, pgid, state) in procs.items() if pgid == group and state != "Z"]
                # dagster dev itself and at least one process it started (code server, webserver or daemon)
                if len([p for p in members if p not in (ui.pid, dev[0])]) >= 1:
                    break
            time.sleep(0.5)
        else:
            raise AssertionError(f"dagster dev never started its children: {(tmp_path / 'ui.log').read_text()}")
        ui.send_signal(signal.SIGTERM)
        code = ui.wait(timeout=90)
        left = [pid for pid, (_, pgid, state) in _processes().items() if pgid == group and state != "Z"]
        assert left == [], f"processes of dagster dev's group still running after placelink ui stopped: {left}"
        assert code == 0
    finally:
        for pgid in {group, ui.pid} - {None}:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        ui.wait()
        log.close()
