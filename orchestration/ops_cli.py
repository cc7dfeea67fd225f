"""What ``placelink refresh``, ``placelink demo`` and ``placelink ui`` do (the CLI itself stays thin)."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestration.lib.config import Settings, get_settings
from orchestration.lib.errors import PlacelinkError

ROOT = Path(__file__).resolve().parents[1]
console = Console(stderr=True)


def _use_home(home: Path | None) -> Settings:
    """This command's home; the runs it starts get it through their ``placelink_settings`` resource
    (``runner._load_defs`` binds it), not through the environment."""
    return get_settings(home=home).ensure()


#: a line of captured output that is a warning: Python's ``warnings`` (``...: BetaWarning: ...``) or a logger's
#: WARNING level (Splink, MLflow, Dagster's console log)
WARNING_LINE = re.compile(r"\b[A-Z]\w*Warning\b|\bWARNING\b")


@contextmanager
def captured_output(log: Path) -> Iterator[Console]:
    """Send everything the libraries print (file descriptors 1 and 2: warnings, logs, dbt's per-model lines, the
    output of subprocesses) to ``log`` and yield a console on the real terminal for our own progress display.

    At the descriptor level because the chatter comes from places no Python setting reaches: loggers that
    install their own stream handler when imported mid-run (MLflow), dagster-dbt writing dbt's log to stdout,
    C extensions."""
    log.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[2]), "w", buffering=1)
    try:
        with log.open("a", encoding="utf-8") as fh:
            for fd in (1, 2):
                os.dup2(fh.fileno(), fd)
            try:
                yield Console(file=terminal)
            finally:
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                for fd, dup in saved.items():
                    os.dup2(dup, fd)
    finally:
        for dup in saved.values():
            os.close(dup)
        terminal.close()


def count_warnings(log: Path) -> int:
    """Warning lines in a captured log (see :data:`WARNING_LINE`)."""
    if not log.exists():
        return 0
    with log.open(encoding="utf-8", errors="replace") as fh:
        return sum(1 for line in fh if WARNING_LINE.search(line))


def run_refresh(full: bool, home: Path | None, log_level: str = "WARNING", capture_to: Path | None = None) -> None:
    """``placelink refresh``; with ``capture_to`` (the demo) the libraries' output goes to that file, not the
    terminal, so the terminal shows one progress display and the figures."""
    settings = _use_home(home)
    from orchestration.runner import refresh

    with (captured_output(capture_to) if capture_to else nullcontext(console)) as shown, \
            Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), console=shown, transient=False) as bar:
        task = bar.add_task("planning the refresh", total=None)

        def progress(message: str, done: int, total: int) -> None:
            bar.update(task, description=message, completed=done, total=total or None)

        # Dagster's per-event console log would bury the progress bar; the UI has every event
        result = refresh(full=full, progress=progress, settings=settings, log_level=log_level)
    if result.plan.rejected:
        # never silent: every run names them until they are fixed (the feed's load also records them)
        console.print(f"[yellow]{len(result.plan.rejected)} file(s) in landing/ rejected, not loaded:[/]")
        for item in result.plan.rejected:
            console.print(f"  landing/{item.rel}: {item.reason} (fix: {item.fix})", highlight=False, soft_wrap=True)
    if not result.runs:
        console.print("nothing to refresh: no new or changed partner drops, erasure or opt-out lists, nothing "
                      "loaded and unfinished "
                      "(use --full to rebuild everything)")
        return
    for run in result.runs:
        # soft_wrap: a run id is looked up whole (a terminal narrower than the line, or a log file, must not
        # break it)
        console.print(f"  {run.label:22} {len(run.assets):3} asset(s)  {run.seconds:6.1f}s  run {run.run_id}",
                      highlight=False, soft_wrap=True)
    console.print(f"[green]refresh {result.refresh_id} done[/]: {len(result.runs)} run(s); "
                  f"see them with `placelink ui`", soft_wrap=True)


def run_demo(home: Path | None) -> None:
    settings = _use_home(home)
    from orchestration.lib.partner_drop import use_demo_linkage

    encoded = use_demo_linkage()  # PLACELINK_LINKAGE=encoded: the partners send encodings, not identifiers
    has_drops = settings.landing.exists() and any(p.is_file() for p in settings.landing.rglob("*"))
    if not has_drops:
        console.print(f"no partner drops under {settings.landing}: generating the small synthetic county")
        proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "generate", "--scale", "small",
                               "--home", str(settings.home)], cwd=ROOT)
        if proc.returncode != 0:
            raise PlacelinkError("generating the synthetic county failed", where="placelink generate --scale small",
                                 fix="run `placelink generate --scale small` to see the error")
    if encoded:
        _encode_demo_landing(settings)
    log = settings.logs_dir / f"demo-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.log"
    try:
        run_refresh(full=True, home=settings.home, capture_to=log)
    except BaseException:
        if log.exists():  # the libraries' own account of the failure is in it
            console.print(f"{count_warnings(log)} warning(s) from the libraries (Dagster, Splink, MLflow, dbt) "
                          f"captured with their other output in {log}", highlight=False, soft_wrap=True)
        raise
    from orchestration.projects_cli import demo_project_step

    demo_project_step(settings)  # the approved project through to a recorded decision (docs/governance.md)
    write_readme_pictures(settings)
    print_summary(settings, log)
    print_where_to_look(settings)


def demo_summary(settings: Settings, log: Path | None = None):
    """The figures of :mod:`orchestration.lib.ops.summary` plus what lives in the Dagster instance: linkage F1
    (metadata of ``link/person_index``, computed by matching against truth/) and each model's gate decision
    (metadata of ``ml/<model>_training``)."""
    import dagster as dg

    from ml.features import list_models
    from orchestration.lib.ops.summary import ModelOutcome, read_summary
    from orchestration.runner import instance_for

    summary = read_summary(settings)
    instance = instance_for(settings)
    try:
        def metadata(*path: str) -> dict:
            event = instance.get_latest_materialization_event(dg.AssetKey(list(path)))
            return {k: v.value for k, v in event.asset_materialization.metadata.items()} if event else {}

        summary.person_f1 = metadata("link", "person_index").get("person_f1")
        summary.household_f1 = metadata("link", "household_index").get("household_f1")
        for model in list_models():
            meta = metadata("ml", f"{model}_training")
            summary.models.append(ModelOutcome(
                model, meta.get("model_version"), bool(meta.get("promoted")),
                str(meta.get("decision") or "no training run recorded: see the asset in the Dagster UI")))
    finally:
        instance.dispose()
    if log is not None and log.exists():
        summary.captured = (count_warnings(log), str(log))
    return summary


def print_summary(settings: Settings, log: Path | None = None) -> None:
    from orchestration.lib.ops.summary import render

    console.print("\n[bold]what the demo did[/]")
    for line in render(demo_summary(settings, log)):
        console.print(f"  {line}", highlight=False, soft_wrap=True)


def write_readme_pictures(settings: Settings) -> None:
    """The README's map and chart are the demo's own (docs/images/atlas-*.svg): drawn again from this run, when
    it is ``make demo``'s run (the repository's own home, ./.placelink): a demo of another home, a test's, an
    encoded run's, leaves the repository's files alone."""
    from orchestration.lib.atlas import build_atlas

    if settings.home.resolve() != (ROOT / ".placelink").resolve():
        return
    if (settings.published / "place_monthly_indicators.parquet").exists():
        build_atlas(settings, readme_images=ROOT / "docs" / "images")


def _encode_demo_landing(settings: Settings) -> None:
    """The synthetic partners run placelink-partner on their drops before landing them (demo secret)."""
    import tempfile

    from orchestration.lib.partner_drop import DEMO_SECRET, encode_landing

    console.print("encoded linkage: the synthetic partners encode their drops with placelink-partner")
    with tempfile.TemporaryDirectory() as reports:  # the partners' quarantine reports stay with them
        counts = encode_landing(settings.home, DEMO_SECRET, Path(reports))
    console.print(f"encoded {counts['drops']} drops: {counts['rows_encoded']:,} rows sent, "
                  f"{counts['rows_quarantined']:,} kept back by the partners' own checks")


def print_where_to_look(settings: Settings) -> None:
    rows = [
        ("Dagster UI (assets, runs, schedules)", "placelink ui   -> http://127.0.0.1:3000"),
        ("warehouse (DuckDB, pseudonymised)", f"duckdb -readonly {settings.warehouse_db}"),
        ("MLflow (models, ethics records)", "placelink mlflow-ui"),
        ("published outputs", str(settings.published)),
        ("data quality docs", str(settings.quality_dir)),
        ("atlas, quality and dbt docs", "placelink docs -> http://127.0.0.1:8090"),
        ("alerts of failed runs", str(settings.logs_dir / "alerts.log")),
    ]
    console.print("\n[bold]where to look[/]")
    for label, value in rows:
        console.print(f"  {label:38} {value}", highlight=False, soft_wrap=True)


def ui_command(home: Path | None, port: int) -> list[str]:
    """The ``dagster dev`` command line (webserver + daemon on loopback) for this home."""
    return [sys.executable, "-m", "dagster", "dev", "-w", str(ROOT / "workspace.yaml"),
            "-h", "127.0.0.1", "-p", str(port)]


class _Stop(Exception):
    """SIGTERM or SIGINT reached ``placelink ui``."""


def stop_process_group(pgid: int, grace: float = 30.0) -> None:
    """SIGTERM every process of the group (``dagster dev`` shuts its webserver, daemon, code server and run workers
    down on it), then SIGKILL whatever is left after ``grace`` seconds. Returns once the group is empty."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.waitpid(-pgid, os.WNOHANG)  # reap our own child so it does not linger as a zombie
            except ChildProcessError:
                pass
            if not _group_alive(pgid):
                return
            time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    """A live (not zombie) process is in the group. ``os.killpg(pgid, 0)`` counts zombies, which never go away
    while their parent (a grandchild of ours) is gone too, so /proc is read where it exists."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def run_ui(home: Path | None, port: int) -> int:
    """Run ``dagster dev`` for this home until it exits or this process gets SIGTERM/SIGINT.

    ``dagster dev`` and everything it starts (webserver, daemon, code server, the runs the daemon launches) run in
    a process group of their own, so stopping ``placelink ui`` (Ctrl-C, ``kill``, a service manager) stops all of
    them, and no daemon is left behind to keep launching runs against the home.
    """
    from orchestration.runner import instance_for

    settings = _use_home(home)
    instance_for(settings).dispose()  # dagster.yaml in place and the writer pools created before the daemon starts
    env = {**os.environ, "DAGSTER_HOME": str(settings.dagster_home), "PLACELINK_HOME": str(settings.home)}
    console.print(f"Dagster UI: http://127.0.0.1:{port}  (DAGSTER_HOME={env['DAGSTER_HOME']}; Ctrl-C to stop)")

    def _raise(signum, frame):
        raise _Stop(signum)

    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGTERM, signal.SIGINT)}
    proc = None
    try:
        # its own session: Ctrl-C in the terminal reaches only this process, which stops the whole group once
        proc = subprocess.Popen(ui_command(home, port), cwd=ROOT, env=env, start_new_session=True)
        return proc.wait()
    except (_Stop, KeyboardInterrupt):
        return 0
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short (it ends in SIGKILL)
        if proc is not None:
            stop_process_group(proc.pid)  # also what dagster dev left behind when it exited by itself
        for sig, handler in previous.items():
            signal.signal(sig, handler)
