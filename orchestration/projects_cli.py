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


CaseArg = Annotated[str, typer.Argument(help="Case id from `placelink project flagged <id>`")]
ProjectArg = Annotated[str, typer.Argument(help="Project id, e.g. PRJ-2025-HHRISK")]


@app.command("flagged")
def flagged_cmd(project_id: ProjectArg, home: HomeOption = None, projects_dir: ProjectsDirOption = None) -> None:
    """Households the project's model flags at or above its threshold this month (case ids, scores; no names)."""
    from orchestration.lib.governance.actions import flagged

    settings = get_settings(home=home).ensure()
    frame = flagged(settings, project_id, projects_dir=projects_dir)
    typer.echo(f"{len(frame)} household(s) at or above {frame.attrs['threshold']} ({frame.attrs['model']}); the team "
               f"may open {frame.attrs['capacity']} a month")
    for r in frame.itertuples(index=False):
        typer.echo(f"{r.case_id}\trisk {r.risk_score:.3f}\trank {r.risk_rank}\tscored {r.score_month}")


@app.command("reidentify")
def reidentify_cmd(project_id: ProjectArg, case_id: CaseArg, home: HomeOption = None,
                   projects_dir: ProjectsDirOption = None) -> None:
    """Open one flagged case: the partners' record references of the household (team role only; audited)."""
    from orchestration.lib.governance.actions import reidentify

    settings = get_settings(home=home).ensure()
    found = reidentify(settings, project_id, case_id, projects_dir=projects_dir)
    typer.echo(f"case {found.case_id}: {len(found.records)} record(s) to look up in the partners' systems "
               f"({found.used_this_month} of {found.capacity} cases opened this month)")
    for r in found.records.itertuples(index=False):
        typer.echo(f"  {r.partner}.{r.feed}\t{r.record_id}")


def _case_answer_command(name: str, values: str, doc: str) -> None:
    """``project decide`` and ``project outcome``: one shape, a case's answer recorded (and audited) by
    ``orchestration.lib.governance.actions.record_<name>``."""

    def command(project_id: ProjectArg, case_id: CaseArg, value: str, home: HomeOption = None,
                projects_dir: ProjectsDirOption = None) -> None:
        from orchestration.lib.governance import actions

        record = getattr(actions, f"record_{name}")
        record(get_settings(home=home).ensure(), project_id, case_id, value, projects_dir=projects_dir)
        typer.echo(f"{case_id}: {name} {value} recorded")

    command.__doc__ = doc
    # set here, not in the signature: under ``from __future__ import annotations`` typer evaluates the signature's
    # annotations in the module's globals, where this call's ``name`` and ``values`` are not
    command.__annotations__["value"] = Annotated[str, typer.Argument(metavar=name.upper(), help=values)]
    app.command(name if name != "decision" else "decide")(command)


_case_answer_command("decision", "agree, disagree, action_taken or no_action",
                     "Record the practitioner's review decision on an opened case (audited).")
_case_answer_command("outcome", "occurred or not_occurred (the project's outcome)",
                     "Record the outcome later observed for a decided case (audited).")


@app.command("actions")
def actions_cmd(project_id: ProjectArg, home: HomeOption = None) -> None:
    """Override rate and outcomes of acted-on against not-acted-on cases (observational)."""
    from orchestration.lib.governance.actions import summary

    typer.echo(summary(get_settings(home=home).ensure(), project_id).markdown())


@app.command("records")
def records_cmd(home: HomeOption = None, out: Annotated[Path | None, typer.Option(
                    "--out", help="Folder for the site (default: <home>/transparency_register).")] = None,
                projects_dir: ProjectsDirOption = None, feeds_dir: FeedsDirOption = None) -> None:
    """Generate the transparency register: DPIA drafts, ATRS records, ethics summaries, feeds, models, releases."""
    from ml.records import build_register_site

    index = build_register_site(get_settings(home=home).ensure(), out, projects_dir=projects_dir,
                                feeds_dir=feeds_dir)
    typer.echo(f"transparency register: {index}")


def demo_project_step(settings) -> None:
    """``make demo``'s project step: the approved example through to a recorded decision, the refused one with
    its reasons, and the transparency register. Best effort: a county too young to score says why and goes on."""
    from orchestration.lib.errors import PlacelinkError
    from orchestration.lib.governance.actions import flagged, record_decision, reidentify, summary
    from orchestration.lib.governance.project_check import check_project, project_folder

    typer.echo("\nprojects (docs/governance.md, 'Projects'):")
    try:
        for pid in ("PRJ-2025-HHRISK", "PRJ-2026-FOODRISK"):
            report = check_project(pid, settings)
            report.write(project_folder(settings, pid))
            typer.echo(f"  {pid}: {'GO' if report.go else 'NO-GO'} ({len(report.reasons)} reason(s)) -> "
                       f"{project_folder(settings, pid) / 'check.html'}")
        cases = flagged(settings, "PRJ-2025-HHRISK")
        if len(cases):
            case_id = cases["case_id"].iloc[0]
            opened = reidentify(settings, "PRJ-2025-HHRISK", case_id)  # as the home's owner: holds the team role
            record_decision(settings, "PRJ-2025-HHRISK", case_id, "action_taken")
            typer.echo(f"  PRJ-2025-HHRISK: {len(cases)} household(s) flagged; case {case_id} opened "
                       f"({len(opened.records)} partner record(s)), decision action_taken recorded (audited)")
            typer.echo("  " + summary(settings, "PRJ-2025-HHRISK").markdown().splitlines()[0])
        from ml.records import build_register_site

        typer.echo(f"  transparency register: {build_register_site(settings)}")
    except PlacelinkError as exc:
        typer.echo(f"  project step skipped: {exc}")


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="project")
