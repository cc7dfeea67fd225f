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


def test_the_demo_captures_library_chatter_to_its_log_and_counts_the_warnings(tmp_path):
    """What the libraries print during the demo (Python warnings, WARNING log lines, a subprocess's output such as
    dbt's) lands in the log file, not on the terminal; our own console still reaches the terminal."""
    import logging

    from orchestration.ops_cli import captured_output, count_warnings

    log = tmp_path / "logs" / "demo.log"
    terminal = tmp_path / "terminal.txt"
    with terminal.open("w") as fake_tty:
        saved = os.dup(2)
        os.dup2(fake_tty.fileno(), 2)  # the "terminal": descriptor 2 as the demo finds it
        try:
            with captured_output(log) as shown, open(2, "w", closefd=False) as stderr:
                # pytest intercepts warnings and sys.stderr in this process: the CLI's own are the raw descriptors
                subprocess.run([sys.executable, "-W", "always", "-c",
                                "import warnings; warnings.warn('a beta parameter', UserWarning)"], check=True)
                handler = logging.StreamHandler(stderr)  # a library's own handler, installed mid-run
                logging.getLogger("splinkish").addHandler(handler)
                try:
                    logging.getLogger("splinkish").warning("WARNING column not observed in dataset")
                finally:
                    logging.getLogger("splinkish").removeHandler(handler)
                subprocess.run([sys.executable, "-c", "print('1 of 60 OK created sql table model x')"], check=True)
                shown.print("loading months 2024-11..2026-10")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    captured, shown_text = log.read_text(), terminal.read_text()
    assert "UserWarning: a beta parameter" in captured and "not observed" in captured
    assert "1 of 60 OK created" in captured
    assert "loading months" in shown_text
    assert not any(s in shown_text for s in ("UserWarning", "not observed", "OK created"))
    assert count_warnings(log) == 2
