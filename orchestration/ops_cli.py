"""What ``placelink refresh``, ``placelink demo`` and ``placelink ui`` do (the CLI itself stays thin)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestration.lib.config import Settings, get_settings
from orchestration.lib.errors import PlacelinkError

ROOT = Path(__file__).resolve().parents[1]
console = Console(stderr=True)


def _use_home(home: Path | None) -> Settings:
    """Pin the home for this process, so the code location's resources point at the same files."""
    settings = get_settings(home=home).ensure()
    os.environ["PLACELINK_HOME"] = str(settings.home)
    return settings


def run_refresh(full: bool, home: Path | None, log_level: str = "WARNING") -> None:
    settings = _use_home(home)
    from orchestration.runner import refresh

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
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
        console.print(f"  {run.label:22} {len(run.assets):3} asset(s)  {run.seconds:6.1f}s  run {run.run_id}")
    console.print(f"[green]refresh {result.refresh_id} done[/]: {len(result.runs)} run(s); "
                  f"see them with `placelink ui`")


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
    run_refresh(full=True, home=settings.home)
    print_where_to_look(settings)


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
        ("alerts of failed runs", str(settings.logs_dir / "alerts.log")),
    ]
    console.print("\n[bold]where to look[/]")
    for label, value in rows:
        console.print(f"  {label:38} {value}", highlight=False, soft_wrap=True)


def ui_command(home: Path | None, port: int) -> list[str]:
    """The ``dagster dev`` command line (webserver + daemon on loopback) for this home."""
    return [sys.executable, "-m", "dagster", "dev", "-w", str(ROOT / "workspace.yaml"),
            "-h", "127.0.0.1", "-p", str(port)]


def run_ui(home: Path | None, port: int) -> int:
    from orchestration.runner import instance_for

    settings = _use_home(home)
    instance_for(settings).dispose()  # dagster.yaml in place and the writer pools created before the daemon starts
    env = {**os.environ, "DAGSTER_HOME": str(settings.dagster_home), "PLACELINK_HOME": str(settings.home)}
    console.print(f"Dagster UI: http://127.0.0.1:{port}  (DAGSTER_HOME={env['DAGSTER_HOME']}; Ctrl-C to stop)")
    try:
        return subprocess.call(ui_command(home, port), cwd=ROOT, env=env)
    except KeyboardInterrupt:
        return 0
