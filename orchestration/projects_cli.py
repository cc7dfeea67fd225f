"""``placelink project ...``: the project register, its feasibility check, its generated records and the
path from prediction to action. Registered by ``orchestration/cli.py`` (one line); each command is a thin
wrapper over ``orchestration.lib.governance.projects`` / ``project_check``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestration.lib.config import get_settings

app = typer.Typer(help="Projects: the register, `check` (go / no-go), records and actions on flagged cases.",
                  no_args_is_help=True)

HomeOption = Annotated[Path | None, typer.Option("--home", help="Home folder (default: $PLACELINK_HOME).")]
ProjectsDirOption = Annotated[Path | None, typer.Option(
    "--projects-dir", help="Project register (default: orchestration/projects or $PLACELINK_PROJECTS_DIR).")]
FeedsDirOption = Annotated[Path | None, typer.Option("--feeds-dir", help="Feed contracts (default: orchestration/feeds).")]


@app.command("list")
def list_projects(projects_dir: ProjectsDirOption = None) -> None:
    """Every project in the register: status, purpose, review date, and whether its file is complete."""
    from orchestration.lib.governance.projects import load_register

    for pid, loaded in load_register(projects_dir).items():
        raw = loaded.raw
        state = "complete" if loaded.complete else f"INCOMPLETE ({len(loaded.problems)} problem(s))"
        typer.echo(f"{pid}\t{raw.get('status', '?')}\t{raw.get('purpose', '?')}\treview {raw.get('review_date', '?')}"
                   f"\t{state}\t{loaded.title}")
        for where, what, fix in loaded.problems:
            typer.echo(f"    - {where}: {what} (fix: {fix})")


@app.command("check")
def check(project_id: Annotated[str, typer.Argument(help="Project id, e.g. PRJ-2025-HHRISK")],
          home: HomeOption = None, projects_dir: ProjectsDirOption = None, feeds_dir: FeedsDirOption = None,
          quiet: Annotated[bool, typer.Option("--quiet", help="Print only the verdict and reasons.")] = False) -> None:
    """Feasibility and scoping report (Markdown and HTML under <home>/governance/projects/<id>/); exit 1 if no-go."""
    from orchestration.lib.governance.audit import record_event
    from orchestration.lib.governance.project_check import check_project, project_folder

    settings = get_settings(home=home).ensure()
    report = check_project(project_id, settings, projects_dir=projects_dir, feeds_dir=feeds_dir)
    md, htm = report.write(project_folder(settings, project_id))
    if quiet:
        typer.echo(f"{project_id}: {'GO' if report.go else 'NO-GO'}")
        for f in report.reasons:
            typer.echo(f"  - {f.section}: {f.text}" + (f" (fix: {f.fix})" if f.fix else ""))
    else:
        typer.echo(report.markdown())
    typer.echo(f"report: {md} and {htm}")
    record_event(settings, action="project_check", target=project_id,
                 details={"project": project_id, "outcome": "go" if report.go else "no-go",
                          "total": len(report.reasons)})
    if not report.go:
        raise typer.Exit(1)


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="project")
