"""The governance commands of ``placelink``: audit, query, erase, retention, agreements, approve-export.

Registered onto the main typer app by ``orchestration/cli.py`` (``register(app)``) so the shared CLI file
only needs one line. Each command is a thin wrapper over ``orchestration.lib.governance``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from orchestration.lib.config import get_settings
from orchestration.lib.errors import PlacelinkError

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Home folder (default: $PLACELINK_HOME or ./.placelink).")
]
FeedsDirOption = Annotated[
    Path | None, typer.Option("--feeds-dir", help="Feed contracts folder (default: orchestration/feeds).")
]
FormatOption = Annotated[str, typer.Option("--format", help="table, md or csv (audit: table, json).")]


def _settings(home: Path | None):
    return get_settings(home=home).ensure()


def _table(rows: list[dict], title: str, columns: list[str] | None = None) -> None:
    if not rows:
        typer.echo(f"{title}: nothing to show")
        return
    table = Table(title=title, show_lines=False)
    columns = columns or list(rows[0])
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    Console().print(table)  # made per call so COLUMNS set by the caller (or a test) is honoured


def audit(
    action: Annotated[str | None, typer.Option(help="Only this action (ingest, link, export, read, erase ...).")] = None,
    who: Annotated[str | None, typer.Option(help="Only events by this user.")] = None,
    target: Annotated[str | None, typer.Option(help="Only events whose target contains this text.")] = None,
    agreement: Annotated[str | None, typer.Option(help="Only events under this agreement id.")] = None,
    since: Annotated[str | None, typer.Option(help="Only events at or after this ISO date/time (UTC).")] = None,
    limit: Annotated[int, typer.Option(help="Show the last N matching events (0 = all).")] = 50,
    verify_chain: Annotated[bool, typer.Option("--verify", help="Check the hash chain; exit 1 if tampered.")] = False,
    fmt: FormatOption = "table",
    home: HomeOption = None,
) -> None:
    """Query the append-only audit trail (who, role, what, when, purpose, agreement) or --verify it."""
    from orchestration.lib.governance.audit import read_events, verify

    s = _settings(home)
    if verify_chain:
        result = verify(s)
        typer.echo(str(result))
        for p in result.problems:
            typer.echo(f"  - {p}")
        raise typer.Exit(0 if result.ok else 1)
    rows = read_events(s, action=action, who=who, target_contains=target, agreement_id=agreement, since=since,
                       limit=limit or None)
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=1, default=str))
        return
    for r in rows:
        r["details"] = json.dumps(r["details"], default=str)[:120]
    _table(rows, f"audit trail ({s.audit_db})",
           ["seq", "occurred_at", "who", "role", "action", "target", "purpose", "agreement_id", "details"])


def query(
    sql: Annotated[str | None, typer.Argument(help="SQL to run (read-only).")] = None,
    role: Annotated[str, typer.Option(help="engineer, analyst or public.")] = "analyst",
    project: Annotated[str | None, typer.Option(help="Approved project (orchestration/projects/<id>.yml); "
                                                     "needed for person-level marts.")] = None,
    purpose: Annotated[str | None, typer.Option(help="Why you are looking (recorded in the audit trail).")] = None,
    tables: Annotated[bool, typer.Option("--tables", help="List the tables this role can see.")] = False,
    fmt: FormatOption = "table",
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 50,
    timeout: Annotated[float | None, typer.Option(help="Stop the query after this many seconds (at most "
                                                       "PLACELINK_QUERY_TIMEOUT_S, default 300).")] = None,
    home: HomeOption = None,
) -> None:
    """Query the data as a role you hold (role file; you are your OS account): analysts see only warehouse
    marts, never the identifiable zone. Every query is audited, also failed and interrupted ones."""
    from orchestration.lib.governance.roles import connect

    s = _settings(home)
    with connect(role, s, project=project, purpose=purpose, timeout_s=timeout) as con:
        if tables or not sql:
            for name in con.tables():
                typer.echo(name)
            return
        df = con.query(sql)
    if fmt == "csv":
        from orchestration.lib.spreadsheet import people_csv  # opened in a spreadsheet: no live formulas

        typer.echo(people_csv(df), nl=False)
    else:
        _table(df.head(limit).astype(str).to_dict("records"), f"{len(df):,} rows ({role})")


def whoami(home: HomeOption = None) -> None:
    """Who placelink takes you to be (your OS account, never $PLACELINK_USER) and the roles you hold."""
    from orchestration.lib.governance import identity

    s = _settings(home)
    typer.echo(f"{'user':10} {identity.current_user()}")
    if identity.claimed_user():
        typer.echo(f"{'claimed':10} {identity.claimed_user()} (PLACELINK_USER: recorded as a claim, grants nothing)")
    typer.echo(f"{'roles':10} {', '.join(identity.roles_of(s)) or 'none'}")
    typer.echo(f"{'role file':10} {identity.load_role_file(s).source}")


def erase(
    partner: Annotated[str | None, typer.Option(help="Partner whose record identifies the person.")] = None,
    record_id: Annotated[str | None, typer.Option("--record-id", help="The record id as in the partner's file.")] = None,
    person_key: Annotated[str | None, typer.Option("--person-key", help="Or the person's warehouse person_key.")] = None,
    reason: Annotated[str, typer.Option(help="Recorded with the proof.")] = "erasure request (UK GDPR Art. 17)",
    requested_by: Annotated[str | None, typer.Option(help="Who asked (default: you).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing.")] = False,
    home: HomeOption = None,
) -> None:
    """Erase one person from the identifiable zone, every derived table and published file; keep them out."""
    from orchestration.lib.governance.erasure import erase as do_erase

    proof = do_erase(_settings(home), partner=partner, record_id=record_id, person_key=person_key, reason=reason,
                     requested_by=requested_by, dry_run=dry_run)
    _table(proof.deleted, ("would delete" if dry_run else "deleted") + f" ({proof.total} rows)")
    if proof.landing_files:
        typer.echo("landing drops that held the person (kept as delivered; excluded at ingest): "
                   + ", ".join(proof.landing_files))
    typer.echo(f"erasure {proof.erasure_id}  proof sha256 {proof.proof_hash}"
               + ("  (dry run: nothing deleted)" if dry_run else "  (recorded in the audit trail)"))


def retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what has expired; delete nothing.")] = False,
    today: Annotated[str | None, typer.Option(help="Pretend today is this date (YYYY-MM-DD).")] = None,
    feeds_dir: FeedsDirOption = None,
    home: HomeOption = None,
) -> None:
    """Delete every record older than its feed agreement's retention period, everywhere (audited)."""
    from orchestration.lib.governance.retention import apply_retention

    result = apply_retention(_settings(home), dry_run=dry_run,
                             today=dt.date.fromisoformat(today) if today else None, feeds_dir=feeds_dir)
    rows = [d for d in result.deleted if d["rows"]]
    _table(rows, ("expired (dry run)" if dry_run else "deleted") + f": {result.total} rows/files",
           ["zone", "table", "feed", "cutoff", "by", "rows"])


def agreements(fmt: FormatOption = "table", feeds_dir: FeedsDirOption = None) -> None:
    """The register for the DPO: every feed, purpose, lawful basis, retention, expiry and what uses it."""
    from orchestration.lib.governance.register import agreements_register, render

    rows = agreements_register(feeds_dir)
    if fmt in ("md", "csv"):
        typer.echo(render(rows, fmt), nl=False)
    elif fmt == "table":
        _table(rows, "data sharing agreements register")
    else:
        raise PlacelinkError(f"unknown format {fmt!r}", fix="use --format table, md or csv")


def approve_export(
    by: Annotated[str | None, typer.Option(
        "--by", help="Optional: your own account name. The approver is always the account running this command, "
                     "which must hold approver in the role file and not be the exporter.")] = None,
    files: Annotated[list[Path] | None, typer.Argument(help="Files to approve (default: all of published/).")] = None,
    note: Annotated[str | None, typer.Option(help="Recorded with the approval.")] = None,
    status: Annotated[bool, typer.Option("--status", help="Only show which files are approved.")] = False,
    home: HomeOption = None,
) -> None:
    """Check the published files (no small counts, no person-level columns) and record who approved them."""
    from orchestration.lib.governance.outputs import approve_export as approve
    from orchestration.lib.governance.outputs import release_status

    s = _settings(home)
    if not status:
        from orchestration.lib.governance.audit import current_user

        checks = approve(s, by=by, files=files or None, note=note)
        typer.echo(f"approved {len(checks)} file(s) as {current_user()}")
    _table(release_status(s), "published files", ["file", "status", "approved_by", "approved_at", "sha256"])


def audit_invocation(command: str | None, argv: list[str] | None = None) -> None:
    """Record a data-touching CLI command in the audit trail before it runs (called by the root callback).

    The subcommand's options are not parsed yet when the root callback runs, so the home comes from
    ``--home`` in ``argv`` (the real command line) or ``PLACELINK_HOME``. Outcomes of pipeline runs are
    recorded by the stages and by the Dagster audit sensor.
    """
    import sys

    from orchestration.lib.governance.audit import record_event
    from orchestration.lib.governance.pipeline_audit import CLI_ACTIONS

    if command not in CLI_ACTIONS:
        return
    argv = list(sys.argv[1:] if argv is None else argv)
    if command not in argv:  # called in-process (e.g. CliRunner): the process argv is not this command's
        argv = [command]
    if "--help" in argv or "-h" in argv:
        return
    home = None
    for i, arg in enumerate(argv):
        if arg == "--home" and i + 1 < len(argv):
            home = argv[i + 1]
        elif arg.startswith("--home="):
            home = arg.split("=", 1)[1]
    record_event(get_settings(home=home), action=CLI_ACTIONS[command], target=f"placelink {command}",
                 details={"argv": argv, "via": "cli"})


def register(app: typer.Typer) -> None:
    """Add the governance commands to the main ``placelink`` app."""
    app.command()(audit)
    app.command()(query)
    app.command()(whoami)
    app.command()(erase)
    app.command()(retention)
    app.command()(agreements)
    app.command(name="approve-export")(approve_export)
