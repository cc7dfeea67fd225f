"""The ``placelink`` command line: every stage of the pipeline, callable without the Dagster UI.

Commands are thin: they parse options and call plain functions in ``orchestration.lib``, or, for the stages that
materialise assets (``ingest``, ``match``, ``pseudonymise``, ``build``, ``refresh``, ``demo``), run the code
location's jobs in process on the home's Dagster instance (:mod:`orchestration.runner`). Heavy imports happen
inside each command so ``placelink --help`` stays fast. A :class:`~orchestration.lib.errors.PlacelinkError` becomes one clear
line plus its fix and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestration.lib.config import ConfigError, get_settings
from orchestration.lib.errors import PlacelinkError

app = typer.Typer(
    name="placelink",
    help="placelink: share, match and store multi-agency data; build linked place-level tables; train models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Home folder (default: $PLACELINK_HOME or ./.placelink).")
]


def _settings(home: Path | None):
    return get_settings(home=home).ensure()


@app.command()
def where(home: HomeOption = None) -> None:
    """Print where everything lives: warehouse, identifiable zone, Dagster home, MLflow, published outputs."""
    s = _settings(home)
    rows = [
        ("environment", s.env),
        ("home", s.home),
        ("landing (partner drops)", s.landing),
        ("identifiable zone (DuckDB)", s.identifiable_db),
        ("warehouse (DuckDB, pseudonymised)", s.warehouse_db),
        ("published outputs", s.published),
        ("data quality docs", s.quality_dir),
        ("Dagster home", s.dagster_home),
        ("MLflow tracking URI", s.mlflow_tracking_uri),
        ("engine (PLACELINK_ENGINE)", s.engine),
    ]
    if s.engine == "spark":
        rows += [("Spark master", s.spark_master), ("Spark identifiable tables", s.spark_identifiable),
                 ("Spark warehouse (pseudonymised)", s.spark_warehouse)]
    for label, value in rows:
        typer.echo(f"{label:36} {value}")



@app.command()
def generate(
    scale: Annotated[str, typer.Option(help="tiny (~3k residents), small (~20k), medium (~200k), county (~1.5M).")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same county.")] = 42,
    months: Annotated[int | None, typer.Option(help="Months of events (default 24; 12 at county scale).")] = None,
    start: Annotated[str, typer.Option(help="First month of events, YYYY-MM.")] = "2024-11",
    out: Annotated[Path | None, typer.Option(help="Home to write into (default: the placelink home).")] = None,
    home: HomeOption = None,
) -> None:
    """Generate the synthetic county: partner drops in landing/, reference/ data and ground truth in truth/."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from orchestration.lib.synthetic import generate_county

    target = out if out is not None else _settings(home).home
    with Progress(TextColumn("[bold]{task.description:12}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, fraction: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=fraction)

        summary = generate_county(target, scale=scale, seed=seed, months=months, start=start, progress=report)
    typer.echo(f"{summary.scale} county (seed {summary.seed}): {summary.residents:,} residents, "
               f"{summary.lsoas} LSOAs, {summary.uprns:,} addresses, {summary.months} months from {summary.start}")
    for key, count in summary.records.items():
        typer.echo(f"  {key:48} {count:>10,}")
    typer.echo(f"  {'total records':48} {summary.total_records:>10,}  ({summary.files} files, "
               f"{summary.defects:,} injected defects) in {summary.seconds}s")
    typer.echo(f"wrote {target}/landing, {target}/reference and {target}/truth (ground truth: never ingested)")


@app.command()
def refresh(
    full: Annotated[bool, typer.Option("--full", help="Reload every month that has drops and rebuild everything.")] = False,
    home: HomeOption = None,
) -> None:
    """Run the nightly refresh now: load new or changed drops month by month, then everything downstream."""
    from orchestration.ops_cli import run_refresh

    run_refresh(full=full, home=home)


@app.command()
def demo(home: HomeOption = None) -> None:
    """Generate the small synthetic county if the home has no drops, run a full refresh, say where to look."""
    from orchestration.ops_cli import run_demo

    run_demo(home=home)


@app.command()
def ui(home: HomeOption = None, port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 3000) -> None:
    """Start the Dagster UI and daemon (dagster dev) for this home on http://127.0.0.1:PORT."""
    from orchestration.ops_cli import run_ui

    raise typer.Exit(run_ui(home=home, port=port))


@app.command()
def link(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV or Parquet in the standard person record.")],
    output_path: Annotated[Path, typer.Argument(metavar="OUTPUT", help="CSV or Parquet to write record_id, person_id.")],
    model: Annotated[Path | None, typer.Option(help="A saved linkage model JSON (default: train on the input).")] = None,
) -> None:
    """Link any file in the standard person record (record_id + any of the person columns) into persons."""
    from orchestration.lib.matching.run import link_file

    out = link_file(input_path, output_path, model_path=model)
    for warning in out["warnings"]:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"{out['records']:,} records -> {out['persons']:,} persons in {out['seconds']}s; wrote {output_path}")


@app.command("link-eval")
def link_eval(
    input_path: Annotated[Path, typer.Argument(metavar="LABELLED", help="CSV or Parquet in the standard person "
                                               "record plus a column naming each record's true person.")],
    label_column: Annotated[str, typer.Option(help="The column holding the true person.")] = "true_person_id",
    model: Annotated[Path | None, typer.Option(help="A saved linkage model JSON (default: train on the input).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures as JSON here.")] = None,
) -> None:
    """Evaluate linkage on your own labelled sample: pairwise and cluster precision/recall/F1, blocking recall."""
    import json

    from orchestration.lib.matching.run import evaluate_file

    out = evaluate_file(input_path, label_column=label_column, model_path=model)
    for warning in out.pop("warnings"):
        typer.echo(f"warning: {warning}", err=True)
    for key, value in out.items():
        typer.echo(f"{key:24} {value}")
    if json_out:
        json_out.write_text(json.dumps(out, indent=2), encoding="utf-8")


@app.command()
def match(
    full: Annotated[bool, typer.Option("--full", help="Re-link everything; report keys merged/split.")] = False,
    retrain: Annotated[bool, typer.Option("--retrain", help="Train a new model version with EM first.")] = False,
    home: HomeOption = None,
) -> None:
    """Address matching and person linkage over the identifiable zone (incremental unless --full).

    A run of the matching assets on this home's Dagster instance (placelink ui shows it), like a refresh's."""
    from orchestration.stage_cli import run_match

    run_match(home, full=full, retrain=retrain, echo=typer.echo)

@app.command()
def ingest(
    partner: Annotated[str | None, typer.Option(help="Only this partner (a contract in orchestration/feeds/).")] = None,
    feed: Annotated[str | None, typer.Option(help="Only this feed of the partner.")] = None,
    month: Annotated[str | None, typer.Option(help="Only this monthly partition, YYYY-MM.")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Drop what the feed(s) loaded before, then reload "
                                          "every month (after an agreed contract change).")] = False,
    feeds_dir: Annotated[Path | None, typer.Option("--feeds-dir", help="Feed contracts folder "
                                                   "(default: orchestration/feeds).")] = None,
    home: HomeOption = None,
) -> None:
    """Load partner drops from landing/ into the identifiable zone: contract checks, quarantine, agreements.

    Runs of all_feeds_ingest_job on this home's Dagster instance (the job landing_drop_sensor starts for a drop),
    so the sensor, the nightly refresh and placelink ui see the months loaded."""
    from orchestration.stage_cli import run_ingest

    run_ingest(home, partner=partner, feed=feed, month=month, rebuild=rebuild, feeds_dir=feeds_dir,
               echo=typer.echo)


@app.command()
def pseudonymise(
    partner: Annotated[str | None, typer.Option(help="Only this partner's feeds.")] = None,
    feed: Annotated[str | None, typer.Option(help="Only this feed.")] = None,
    feeds_dir: Annotated[Path | None, typer.Option("--feeds-dir", help="Feed contracts folder "
                                                   "(default: orchestration/feeds).")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-key every record, not only those loaded or "
                                          "re-linked since the last build.")] = False,
    home: HomeOption = None,
) -> None:
    """Write the pseudonymised src.* tables and ref.* into the warehouse (no clear identifiers leave).

    Incremental: records loaded or re-linked since a table's last build are re-keyed; a table is rebuilt when
    its contract, the key or the postcode directory changed (see ops.src_builds in the warehouse). A run of the
    ref/* and src/* assets on this home's Dagster instance (placelink ui shows it)."""
    from orchestration.stage_cli import run_pseudonymise

    run_pseudonymise(home, partner=partner, feed=feed, feeds_dir=feeds_dir, rebuild=rebuild, echo=typer.echo)


@app.command()
def quality(
    partner: Annotated[str | None, typer.Option(help="Only this partner's feed suites.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only suites of this kind: feed | mart | published.")] = None,
    scorecard: Annotated[bool, typer.Option("--scorecard", help="Also rebuild quality.feed_scorecard in the "
                                            "warehouse and print its latest month per feed.")] = False,
    home: HomeOption = None,
) -> None:
    """Run the GX suites on every loaded table, print a summary and where the Data Docs are (opens nothing).

    Exits 1 when a blocking (structural) expectation fails. A report, not a stage: it materialises nothing. With
    --scorecard, a run of the quality/feed_scorecard asset on this home's Dagster instance (placelink ui shows it).
    """
    from orchestration.lib.quality import print_quality_report

    code = print_quality_report(_settings(home), partner=partner, kind=kind, console=console)
    if scorecard:
        from orchestration.stage_cli import run_scorecard

        run_scorecard(home, partner=partner, echo=typer.echo)
    raise typer.Exit(code)


FeedsDirOption = Annotated[
    Path | None, typer.Option("--feeds-dir", help="Feed contracts folder (default: orchestration/feeds).")
]


@app.command()
def train(
    model: Annotated[list[str] | None, typer.Option("--model", help="Model to train (repeatable; default: all).")] = None,
    feeds_dir: FeedsDirOption = None,
    home: HomeOption = None,
) -> None:
    """Train models on the marts, log them to MLflow, register a challenger and run the ethics gate.

    A run of the ml/<model>_training assets on this home's Dagster instance (placelink ui shows it), the assets
    the weekly training schedule and a full refresh run."""
    from orchestration.stage_cli import run_train

    run_train(home, models=model, feeds_dir=feeds_dir, echo=typer.echo)


@app.command()
def score(
    model: Annotated[list[str] | None, typer.Option("--model", help="Model to score (repeatable; default: all).")] = None,
    feeds_dir: FeedsDirOption = None,
    home: HomeOption = None,
) -> None:
    """Write predictions from each model's champion to the warehouse (ml.*), with the model version on every row.

    A run of the prediction assets on this home's Dagster instance (placelink ui shows it), as the nightly
    refresh runs them."""
    from orchestration.stage_cli import run_score

    run_score(home, models=model, feeds_dir=feeds_dir, echo=typer.echo)


@app.command("mlflow-ui")
def mlflow_ui(
    home: HomeOption = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    print_only: Annotated[bool, typer.Option("--print", help="Print the command instead of starting it.")] = False,
) -> None:
    """Start the MLflow UI on 127.0.0.1 over this home's tracking store (or print the command)."""
    import os
    import shlex
    import subprocess

    s = _settings(home)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", s.mlflow_tracking_uri,
           "--default-artifact-root", s.mlflow_artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port)]
    typer.echo(shlex.join(["mlflow", *cmd[3:]]))
    if not print_only:
        raise typer.Exit(subprocess.call(cmd, env=os.environ.copy()))


@app.command()
def bench(
    scale: Annotated[str, typer.Option(help="tiny | small | medium | county")] = "small",
    repeats: Annotated[int, typer.Option(help="Runs per side-by-side comparison (medians are reported).")] = 3,
    skip_peers: Annotated[bool, typer.Option("--skip-peers", help="Stages and refreshes only.")] = False,
    months: Annotated[int | None, typer.Option(help="Months of events (default: the scale's; 12 at county, "
                                               "less than model training needs: 24 measures training too).")] = None,
) -> None:
    """Run the benchmarks (benchmarks/run.py) and write benchmarks/results/<date>-<scale>[-<N>m].md and .json."""
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
    if not script.exists():
        raise PlacelinkError("benchmarks/run.py not found", where=str(script),
                             fix="run placelink bench from a source checkout of placelink")
    argv = [sys.executable, str(script), "--scale", scale, "--repeats", str(repeats)]
    argv += ["--skip-peers"] if skip_peers else []
    argv += ["--months", str(months)] if months else []
    raise typer.Exit(subprocess.call(argv))


@app.callback()
def _root(ctx: typer.Context) -> None:
    """placelink: share, match and store multi-agency data; build linked place-level tables; train models."""
    from orchestration.governance_cli import audit_invocation

    audit_invocation(ctx.invoked_subcommand)  # data-touching commands go in the audit trail


# governance commands (audit, query, erase, retention, agreements, approve-export): orchestration/governance_cli.py
from orchestration.governance_cli import register as _register_governance  # noqa: E402

_register_governance(app)

# dbt commands (build, publish, dbt-docs): orchestration/dbt_cli.py
from orchestration.dbt_cli import register as _register_dbt  # noqa: E402

_register_dbt(app)

# project commands (project list/check/records/flagged/reidentify/decide/outcome): orchestration/projects_cli.py
from orchestration.projects_cli import register as _register_projects  # noqa: E402

_register_projects(app)

# pictures (atlas, docs): orchestration/docs_cli.py
from orchestration.docs_cli import register as _register_docs  # noqa: E402

_register_docs(app)


def main() -> None:
    """Console-script entry point: run the app, turning known errors into one line plus the fix.

    This is where errors leave placelink for a terminal (and whatever captures it): ours are printed as they are
    (their text never quotes a partner's value); any other exception by its type and where it was raised, never
    its message, which can quote the data (DuckDB: "Could not convert string 'Smith' ..."). See
    :func:`orchestration.lib.errors.public_message`.
    """
    from orchestration.lib.filemodes import restrict_umask

    restrict_umask()  # every file this process creates is owner-only (identifiers, audit log, keys)
    try:
        app()  # standalone: click reports usage errors itself and exits 2
    except (PlacelinkError, ConfigError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - the last guard before a traceback prints the library's message
        import traceback

        from rich.markup import escape

        from orchestration.lib.errors import public_message

        frames = escape("".join(traceback.format_tb(exc.__traceback__)[-5:]))
        console.print(f"[bold red]error:[/] {escape(public_message(exc, stage=f'placelink {_command()}'))}\n"
                      f"[dim]raised at (innermost last):\n{frames}[/]", highlight=False, soft_wrap=True,
                      markup=True)
        sys.exit(1)


def _command() -> str:
    return next((a for a in sys.argv[1:] if not a.startswith("-")), "")


if __name__ == "__main__":
    main()
