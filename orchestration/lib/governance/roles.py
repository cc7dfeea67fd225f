"""Roles ("safe people"), enforced by what a connection can physically reach, not by convention.

=========  ==========================================================================================
role       what :func:`connect` opens
=========  ==========================================================================================
engineer   the identifiable zone and the warehouse, both attached ``READ_ONLY`` (the pipeline writes,
           people read)
analyst    only ``governance/roles/analyst.duckdb``: a copy of the warehouse's place-level ``marts`` and
           ``published`` schemas, attached ``READ_ONLY``; plus ``analyst_person.duckdb`` (the person- and
           household-level marts ``marts.person_*`` / ``marts.household_*``) only for a project whose
           agreement allows person-level work. File access, ``ATTACH`` of other files and extension
           loading are switched off (``enable_external_access=false``) and the configuration is locked
           (``lock_configuration=true``), so an analyst query cannot open the identifiable zone, the
           warehouse's ``src``/``staging`` schemas or the audit log.
public     the files under ``published/`` (Parquet/CSV), loaded into memory; then locked as above.
=========  ==========================================================================================

Why copies for analysts: DuckDB has no GRANTs, and a view in a separate file still needs the warehouse
attached, which would expose every schema in it. Copying the few (aggregate) marts into a role file keeps
"an analyst cannot read it" true by construction. The role files are rebuilt when the warehouse is newer
(:func:`refresh_role_files`, also a Dagster asset after dbt).

Who may open which role is not the caller's say: :func:`connect` asks :func:`.identity.require` whether the
acting operating-system account holds the role in the administrator's role file, and refuses otherwise
(the refusal is audited when the caller can write the log at all).

Every query by an engineer or analyst is appended to the audit trail (``action=read``), flagged
``person_level`` when it touches the identifiable zone or person-level tables, with its ``outcome``:
``ok`` (and the row count), ``failed`` (the error's type, never its text, which can quote a value),
``interrupted`` (stopped at the time limit ``Settings.query_timeout_s``, or cancelled with Ctrl-C). DuckDB
has no statement timeout, so a timer thread calls ``con.interrupt()`` (:func:`_stoppable`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import os
import select
import signal
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb

from orchestration.lib import filemodes
from orchestration.lib.config import Settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance import identity
from orchestration.lib.governance.audit import record_event
from orchestration.lib.governance.projects import LoadedProject, load_register
from orchestration.lib.governance.projects import projects_dir as projects_dir_of

Role = Literal["engineer", "analyst", "public"]
ROLES: tuple[str, ...] = ("engineer", "analyst", "public")

#: Warehouse schemas an analyst may see (person-level marts excluded unless the project allows).
ANALYST_SCHEMAS = ("marts", "published")
PERSON_LEVEL_PATTERNS = ("person_*", "household_*")
#: Warehouse schemas that hold one row per person/record (pseudonymised) — engineer-only.
PERSON_LEVEL_SCHEMAS = ("src", "staging", "intermediate", "ml")



def role_dir(settings: Settings) -> Path:
    return settings.governance_dir / "roles"


def is_person_level(schema: str, table: str) -> bool:
    return schema == "marts" and any(fnmatch.fnmatch(table, p) for p in PERSON_LEVEL_PATTERNS)


# --- projects --------------------------------------------------------------------------------------

def load_projects(projects_dir: Path | None = None) -> dict[str, LoadedProject]:
    """The project register (``orchestration/lib/governance/projects.py``), each file as written: person-level
    access reads ``purpose``, ``person_level``, ``valid_to`` and ``agreements``."""
    return load_register(projects_dir)


def person_level_allowed(project_id: str, *, projects_dir: Path | None = None, feeds_dir: Path | None = None,
                         today: dt.date | None = None) -> tuple[bool, str]:
    """Whether ``project_id`` may see person-level marts, and why (or why not).

    Allowed only when the project asks for person-level access, is in date, and every agreement it names
    exists and permits the project's purpose.
    """
    from orchestration.lib.governance.register import agreements_by_id

    projects = load_projects(projects_dir)
    project = projects.get(project_id)
    if project is None:
        return False, f"no project {project_id!r} in {projects_dir_of(projects_dir)} (known: {sorted(projects)})"
    if not project.person_level:
        return False, f"project {project_id} is approved for place-level work only (person_level: false)"
    today = today or dt.date.today()
    if project.valid_to and today > project.valid_to:
        return False, f"project {project_id} ended on {project.valid_to}"
    agreements = agreements_by_id(feeds_dir)
    for agreement_id in project.agreements:
        agreement = agreements.get(agreement_id)
        if agreement is None:
            return False, f"project {project_id} names agreement {agreement_id}, which no feed contract has"
        if project.purpose not in agreement["purposes"]:
            return False, (f"agreement {agreement_id} does not permit purpose {project.purpose!r} "
                           f"(it permits {agreement['purposes']})")
    if not project.agreements:
        return False, f"project {project_id} names no agreements"
    return True, f"project {project_id} ({project.purpose}) is covered by {', '.join(project.agreements)}"


# --- role files --------------------------------------------------------------------------------------

def _require(path: Path, what: str) -> None:
    if not path.exists():
        raise PlacelinkError(f"{what} does not exist yet", where=str(path),
                             fix="run the pipeline first (placelink refresh, or placelink demo)")


def refresh_role_files(settings: Settings) -> dict[str, list[str]]:
    """(Re)build the analyst role files from the warehouse; returns {file name: [schema.table, ...]}.

    Built into a temporary file and renamed into place, so a reader never sees a half-built file.
    """
    _require(settings.warehouse_db, "the warehouse")
    out_dir = filemodes.private_dir(role_dir(settings))
    try:
        src = duckdb.connect(str(settings.warehouse_db), read_only=True)
    except duckdb.IOException as exc:
        raise PlacelinkError("the warehouse is being written by another process", where=str(settings.warehouse_db),
                             fix="retry when the running job has finished") from exc
    try:
        tables = src.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = "
            "current_database() AND table_schema IN (SELECT unnest(?)) ORDER BY 1, 2",
            [list(ANALYST_SCHEMAS)]).fetchall()
    finally:
        src.close()
    place = [(s, t) for s, t in tables if not is_person_level(s, t)]
    person = [(s, t) for s, t in tables if is_person_level(s, t)]
    built = {}
    for name, chosen in (("analyst.duckdb", place), ("analyst_person.duckdb", person)):
        final = out_dir / name
        tmp = out_dir / f".{name}.building"
        tmp.unlink(missing_ok=True)
        con = duckdb.connect(str(tmp))
        try:
            con.execute(f"ATTACH '{settings.warehouse_db}' AS wh (READ_ONLY)")
            for schema, table in chosen:
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                con.execute(f'CREATE TABLE "{schema}"."{table}" AS SELECT * FROM wh."{schema}"."{table}"')
            con.execute("DETACH wh")
        finally:
            con.close()
        filemodes.harden([tmp, tmp.with_name(tmp.name + ".wal")])
        os.replace(tmp, final)
        built[name] = [f"{s}.{t}" for s, t in chosen]
    return built


#: Key columns of the person-level marts that an approved project sees re-derived with the project's own key.
PROJECT_KEY_COLUMNS = {"person_key": "person", "household_key": "household", "record_key": "record"}


def project_person_file(settings: Settings, project: str) -> Path:
    """``analyst_person__<project>.duckdb``: the person-level marts with every person, household and record key
    re-derived with the project's own key, ``HMAC(pseudonym key, "project" | <id>)``.

    Within a project the keys join as the warehouse's do (the same person has the same key in every table); two
    projects' extracts cannot be joined on their keys, and the warehouse's shared keys never reach an analyst.
    Rebuilt when ``analyst_person.duckdb`` is newer."""
    import hashlib
    import hmac
    import re

    from orchestration.lib.pseudonymise import Pseudonymiser, load_key

    base = role_dir(settings) / "analyst_person.duckdb"
    _require(base, "the person-level role file")
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", project)
    final = role_dir(settings) / f"analyst_person__{safe}.duckdb"
    if final.exists() and final.stat().st_mtime >= base.stat().st_mtime:
        return final
    key = hmac.new(load_key(settings), f"project\x1f{project}".encode(), hashlib.sha256).digest()
    rekey = Pseudonymiser(key)
    tmp = final.with_name(f".{final.name}.building")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        con.execute(f"ATTACH '{base}' AS shared (READ_ONLY)")
        cols = con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                           "WHERE database_name = 'shared' ORDER BY schema_name, table_name, column_index").fetchall()
        tables: dict[tuple[str, str], list[str]] = {}
        for schema, table, column in cols:
            tables.setdefault((schema, table), []).append(column)
        with rekey.sql_key(con):
            for (schema, table), columns in tables.items():
                select = ", ".join(
                    f'{rekey.token_sql(PROJECT_KEY_COLUMNS[c], f"t.{c}")} AS "{c}"' if c in PROJECT_KEY_COLUMNS
                    else f't."{c}"' for c in columns)
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                con.execute(f'CREATE TABLE "{schema}"."{table}" AS SELECT {select} '
                            f'FROM shared."{schema}"."{table}" t CROSS JOIN {rekey.KEY_TABLE} pzk')
        con.execute("DETACH shared")
    finally:
        con.close()
    filemodes.harden([tmp, tmp.with_name(tmp.name + ".wal")])
    os.replace(tmp, final)
    return final


def _role_files_stale(settings: Settings) -> bool:
    f = role_dir(settings) / "analyst.duckdb"
    return not f.exists() or f.stat().st_mtime < settings.warehouse_db.stat().st_mtime


# --- connections ---------------------------------------------------------------------------------------

@dataclass
class RoleConnection:
    """A read-only connection for one role. Use :meth:`query`; every query is audited (except public)."""

    role: str
    settings: Settings
    project: str | None
    purpose: str | None
    _con: duckdb.DuckDBPyConnection
    person_level_access: bool = False
    catalogs: list[str] = field(default_factory=list)
    #: seconds after which a query is interrupted (default ``settings.query_timeout_s``)
    timeout_s: float | None = None

    def query(self, sql: str, params: list[Any] | None = None):
        """Run ``sql`` and return a pandas DataFrame; errors and time-outs become :class:`PlacelinkError`.

        Every outcome is audited (``ok``, ``failed``, ``interrupted``) before this returns or raises.
        """
        tables = _referenced_tables(sql)
        person = self._touches_person_level(tables)
        limit = self.timeout_s or self.settings.query_timeout_s
        started = time.monotonic()
        with _stoppable(self._con, limit) as stop:
            try:
                df = self._con.execute(sql, params or []).df()
            except duckdb.InterruptException as exc:
                seconds = round(time.monotonic() - started, 3)
                reason = stop.reason or "interrupted"
                self._audit(sql, tables, person, outcome="interrupted", reason=reason, seconds=seconds,
                            limit_s=limit)
                if reason == "cancelled":
                    raise KeyboardInterrupt from exc
                raise PlacelinkError(
                    f"{self.role} query stopped after {seconds:g} s (the time limit is {limit:g} s)",
                    where=f"role {self.role}", fix="narrow the query (filter, aggregate, LIMIT), or ask an "
                                                   "administrator to raise PLACELINK_QUERY_TIMEOUT_S") from exc
            except duckdb.Error as exc:
                self._audit(sql, tables, person, outcome="failed", error=type(exc).__name__,
                            seconds=round(time.monotonic() - started, 3))
                raise PlacelinkError(
                    f"{self.role} query refused or failed: {str(exc).splitlines()[0]}",
                    where=f"role {self.role}" + (f", project {self.project}" if self.project else ""),
                    fix=f"the {self.role} role can see: {', '.join(self.catalogs)}; list them with "
                        "`placelink query --role ROLE --tables`") from exc
        seconds = round(time.monotonic() - started, 3)
        if stop.reason == "cancelled":  # Ctrl-C landed while the result was being converted
            self._audit(sql, tables, person, outcome="interrupted", reason="cancelled", seconds=seconds)
            raise KeyboardInterrupt
        self._audit(sql, tables, person, outcome="ok", rows=len(df), seconds=seconds)
        return df

    def tables(self) -> list[str]:
        rows = self._con.execute(
            "SELECT table_catalog || '.' || table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('information_schema', 'pg_catalog') ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> RoleConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _touches_person_level(self, tables: list[str]) -> bool:
        for name in tables:
            parts = name.lower().split(".")
            if "identifiable" in parts[:1] or (len(parts) >= 2 and parts[-2] in PERSON_LEVEL_SCHEMAS):
                return True
            if len(parts) >= 2 and is_person_level(parts[-2], parts[-1]):
                return True
            if len(parts) == 1 and any(fnmatch.fnmatch(parts[0], p) for p in PERSON_LEVEL_PATTERNS):
                return True
        return False

    def _audit(self, sql: str, tables: list[str], person: bool, **extra) -> None:
        if self.role == "public":
            return
        record_event(self.settings, action="read", role=self.role, purpose=self.purpose,
                     target=",".join(tables) or None,
                     details={"sql": sql, "person_level": person, "project": self.project, **extra})


@dataclass
class _Stop:
    reason: str | None = None


@contextlib.contextmanager
def _stoppable(con: duckdb.DuckDBPyConnection, limit: float) -> Iterator[_Stop]:
    """Interrupt ``con``'s running statement at the time limit or on Ctrl-C, and say which it was.

    DuckDB has no statement timeout, and while it executes (GIL released) Python's SIGINT handler cannot run,
    so Ctrl-C alone would not stop a query. A timer thread calls ``con.interrupt()`` at the limit; on the main
    thread, ``signal.set_wakeup_fd`` makes SIGINT write a byte to a socket that a watcher thread reads, and
    it interrupts too. The caller re-raises ``KeyboardInterrupt`` after auditing the cancelled query.
    """
    stop, done = _Stop(), threading.Event()

    def halt(reason: str) -> None:
        if stop.reason is None:
            stop.reason = reason
        con.interrupt()

    timer = threading.Timer(limit, halt, args=("time limit",))
    timer.daemon = True
    main = threading.current_thread() is threading.main_thread()
    if main:
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        previous_handler = signal.signal(signal.SIGINT, lambda *_: halt("cancelled"))
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

        def watch() -> None:
            while not done.is_set():
                if select.select([reader], [], [], 0.1)[0] and signal.SIGINT in reader.recv(64):
                    halt("cancelled")

        watcher = threading.Thread(target=watch, name="placelink-query-ctrl-c", daemon=True)
        watcher.start()
    timer.start()
    try:
        yield stop
    finally:
        done.set()
        timer.cancel()
        if main:
            signal.set_wakeup_fd(previous_fd)
            signal.signal(signal.SIGINT, previous_handler)
            watcher.join()
            reader.close()
            writer.close()


def _referenced_tables(sql: str) -> list[str]:
    try:
        return sorted(duckdb.get_table_names(sql, qualified=True))
    except duckdb.Error:
        return []


def _lock_down(con: duckdb.DuckDBPyConnection) -> None:
    # After these two settings no statement on this connection can read or attach another file, load an
    # extension or switch the settings back (measured on DuckDB 2.0: tests/governance/test_roles.py).
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def connect(role: str, settings: Settings, *, project: str | None = None,
            purpose: str | None = None, projects_dir: Path | None = None,
            feeds_dir: Path | None = None, timeout_s: float | None = None) -> RoleConnection:
    """Open a read-only connection that can reach only what ``role`` may see, if the acting account holds it.

    Args:
        role: ``engineer``, ``analyst`` or ``public``; refused unless the OS account running this holds it
            in the role file (:func:`.identity.require`).
        project: for analysts, the approved project (``orchestration/projects/<id>.yml``) the work is for;
            person-level marts are attached only if :func:`person_level_allowed` says so.
        purpose: recorded on each audited read.
        timeout_s: a shorter time limit per query than ``settings.query_timeout_s`` (never a longer one).
    """
    if role not in ROLES:
        raise PlacelinkError(f"unknown role {role!r}", fix=f"use one of {', '.join(ROLES)}")
    try:
        identity.require(settings, role)
    except PlacelinkError:
        _audit_refusal(settings, role, purpose, project)
        raise
    limit = min(timeout_s, settings.query_timeout_s) if timeout_s else settings.query_timeout_s
    con = duckdb.connect(":memory:")
    person_access = False
    if role == "engineer":
        _require(settings.identifiable_db, "the identifiable zone")
        _require(settings.warehouse_db, "the warehouse")
        con.execute(f"ATTACH '{settings.identifiable_db}' AS identifiable (READ_ONLY)")
        con.execute(f"ATTACH '{settings.warehouse_db}' AS warehouse (READ_ONLY)")
        con.execute("USE warehouse")
        catalogs = ["identifiable", "warehouse"]
        person_access = True
    elif role == "analyst":
        _require(settings.warehouse_db, "the warehouse")
        if _role_files_stale(settings):
            try:
                refresh_role_files(settings)
            except PlacelinkError as exc:
                if not (role_dir(settings) / "analyst.duckdb").exists():
                    raise
                warnings.warn(f"analyst view may be stale: {exc}", stacklevel=2)
        con.execute(f"ATTACH '{role_dir(settings) / 'analyst.duckdb'}' AS warehouse (READ_ONLY)")
        catalogs = ["warehouse (marts, published; place-level)"]
        if project:
            person_access, why = person_level_allowed(project, projects_dir=projects_dir, feeds_dir=feeds_dir)
            if not person_access:
                con.close()
                raise PlacelinkError(f"person-level marts refused: {why}", where=f"project {project}",
                                     fix="work without --project (place-level marts) or get the project "
                                         "approved for person-level work")
            # the project's own keys: two projects' outputs cannot be joined on them
            con.execute(f"ATTACH '{project_person_file(settings, project)}' AS person_marts (READ_ONLY)")
            catalogs.append("person_marts (marts.person_*, marts.household_*)")
        con.execute("USE warehouse")
        _lock_down(con)
    else:
        con.execute("CREATE SCHEMA published")
        loaded = []
        for path in sorted(settings.published.glob("*")) if settings.published.exists() else []:
            reader = {".parquet": "read_parquet", ".csv": "read_csv_auto"}.get(path.suffix)
            if reader:
                con.execute(f'CREATE TABLE published."{path.stem}" AS SELECT * FROM {reader}(?)', [str(path)])
                loaded.append(path.stem)
        con.execute("USE published")
        catalogs = [f"published ({len(loaded)} files)"]
        _lock_down(con)
    return RoleConnection(role=role, settings=settings, project=project, purpose=purpose, _con=con,
                          person_level_access=person_access, catalogs=catalogs, timeout_s=limit)


def _audit_refusal(settings: Settings, role: str, purpose: str | None, project: str | None) -> None:
    """Record a refused role. An account with no role usually cannot write the log either (it is owner-only):
    the refusal then stands unrecorded, because refusing must never depend on being able to record it."""
    try:
        record_event(settings, action="read", role="none", purpose=purpose, target=f"role {role}",
                     details={"outcome": "refused", "requested_role": role, "project": project})
    except (OSError, duckdb.Error, PlacelinkError):
        pass
