"""The audit trail: an append-only, hash-chained log of who did what to which data, when and why.

Every ingest, linkage, export, erasure, retention run and person-level read through placelink's own
entry points calls :func:`record_event`. The log lives in its own DuckDB file (``Settings.audit_db``),
which no role connection ever attaches. The platform exposes only :func:`record_event` (append) and
:func:`read_events` (read); there is no update or delete function.

Tamper evidence: each row stores ``hash = sha256(prev_hash + canonical_row)``, where ``canonical_row`` is
the row's fields as sorted, compact JSON. Editing a row breaks its own hash; deleting or inserting a row
breaks the next row's ``prev_hash``; truncating the end is caught by the head anchor
(``governance/audit_head.json``, rewritten on every append) — :func:`verify` checks all three. Someone with
write access to both files could rebuild a consistent chain, so production deployments should also copy
the head hash somewhere the operators cannot write (``placelink audit --verify`` prints it).

Example:
    >>> record_event(settings, action="ingest", target="raw.police__street_crimes",
    ...              purpose="place_indicators", agreement_id="DSA-POL-2024-01",
    ...              details={"rows_loaded": 1200})
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestration.lib import filemodes
from orchestration.lib.config import Settings
from orchestration.lib.governance._store import locked_connect

GENESIS_HASH = "0" * 64
TABLE = "audit_log"
#: Field order of a row; the hash covers every field except ``hash`` itself.
FIELDS = ("seq", "occurred_at", "who", "role", "action", "target", "purpose", "agreement_id", "details",
          "prev_hash")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq BIGINT PRIMARY KEY,
    occurred_at VARCHAR NOT NULL,   -- ISO 8601 UTC text, so the hashed value round-trips exactly
    who VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    target VARCHAR,
    purpose VARCHAR,
    agreement_id VARCHAR,
    details VARCHAR,                -- canonical JSON
    prev_hash VARCHAR NOT NULL,
    hash VARCHAR NOT NULL
)
"""


def current_user() -> str:
    """Who is acting: the operating-system account of the real uid (:mod:`.identity`); ``PLACELINK_USER``
    is only a display hint, recorded beside it as ``details.claimed_user``."""
    from orchestration.lib.governance.identity import current_user as _os_account

    return _os_account()


def current_role(settings: Settings) -> str:
    """The widest role the acting account holds in the role file (``none`` if it holds none).

    ``PLACELINK_ROLE`` is no longer read: a role is held, not declared.
    """
    from orchestration.lib.governance.identity import current_role as _held

    return _held(settings)


def canonical_json(value: Any) -> str:
    """Sorted, compact JSON; dates and paths become strings so any details dict can be hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


# --- what details may hold ------------------------------------------------------------------------------------
# The audit log is append-only and hash-chained: nothing written to it can be erased, so a clear identifier in it
# would outlive any erasure (issue #22: a header-less drop's names and birth dates reached `ingest_failed`).
# ``details`` is therefore checked key by key as it is written, here, whatever the caller:
#   number  counts, sizes, flags: int/float/bool/None
#   token   ids, hashes, dates, partitions, job/run names: a date, or text of [A-Za-z0-9_.:/@+=()-] (<= 200)
#   ours    structures our code builds from table/column names of the contracts, paths, counts and staff entries
#           (retention/erasure tallies, output-check failures, an approver's note): kept as given
#   error   a PlacelinkError's text (built from contract names and positions, never a value); an exception object
#           is rendered with errors.public_message, which withholds a library's message
#   library_text  a library's message (DuckDB refusing an analyst's query): quoted parts and runs of 4+ digits
#           replaced by ``?`` ("Could not convert string 'Smith' to INT32" names a value of the table read)
#   sql     an analyst's query, its string and number literals and comments replaced by ``?``: the shape of what
#           was read is audited, not the name or NHS number typed into a WHERE clause
# A key not listed keeps a number/bool/None value and any other value is replaced by WITHHELD.
DETAIL_KINDS: dict[str, str] = {
    **dict.fromkeys(("rows", "rows_received", "rows_loaded", "rows_quarantined", "total", "records", "persons",
                     "person_level", "dry_run", "elapsed_seconds", "row_limit", "seconds", "limit_s"), "number"),
    **dict.fromkeys(("partition", "run_id", "job", "status", "via", "erasure_id", "approval_id", "proof_hash",
                     "sha256", "project", "today", "role", "purpose", "model", "version", "outcome",
                     "requested_role"), "token"),
    **dict.fromkeys(("quarantined_by_reason", "deleted", "remaining", "landing_files", "files", "request",
                     "failures", "by", "approved_by", "note", "argv", "os_user", "claimed_user", "identity_from", "reason"), "ours"),
    "error": "error",
    "denied": "library_text",
    "sql": "sql",
}
WITHHELD = "[withheld: not a safe audit detail]"
_QUOTED = re.compile(r"'[^']*'?|\"[^\"]*\"?|\d{4,}")
_TOKEN = re.compile(r"[A-Za-z0-9_.:/@+=()-]{0,200}")


def scrub_sql(sql: str) -> str:
    """``sql`` with string/number literals and comments replaced by ``?`` (DuckDB's own tokenizer finds them)."""
    import duckdb

    try:
        tokens = duckdb.tokenize(sql)
    except Exception:  # noqa: BLE001 - a query DuckDB cannot even tokenize is withheld whole
        return WITHHELD
    kinds = {duckdb.token_type.string_const, duckdb.token_type.numeric_const, duckdb.token_type.comment}
    out, pos = [], 0
    for i, (start, kind) in enumerate(tokens):
        if kind not in kinds:
            continue
        end = tokens[i + 1][0] if i + 1 < len(tokens) else len(sql)
        text = sql[start:end]
        end = start + len(text.rstrip())
        out.append(sql[pos:start] + "?")
        pos = end
    return "".join(out) + sql[pos:]


def _safe_detail(kind: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if kind == "number":
        return WITHHELD
    if kind == "token":
        if isinstance(value, dt.date):
            return value
        return value if isinstance(value, str) and _TOKEN.fullmatch(value) else WITHHELD
    if kind == "ours":
        return value
    if kind == "error":
        if isinstance(value, BaseException):
            from orchestration.lib.errors import public_message

            return public_message(value)
        return value if isinstance(value, str) else WITHHELD
    if kind == "sql":
        return scrub_sql(value) if isinstance(value, str) else WITHHELD
    if kind == "library_text":
        return _QUOTED.sub("?", str(value))
    return WITHHELD


def safe_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """``details`` as it may be written to the audit log (see :data:`DETAIL_KINDS`)."""
    return {str(k): _safe_detail(DETAIL_KINDS.get(str(k), "unknown"), v) for k, v in (details or {}).items()}


def row_hash(row: dict[str, Any]) -> str:
    """sha256(prev_hash + canonical JSON of every other field)."""
    body = {k: row[k] for k in FIELDS if k != "prev_hash"}
    return hashlib.sha256((row["prev_hash"] + canonical_json(body)).encode("utf-8")).hexdigest()


def _head_path(settings: Settings):
    return settings.governance_dir / "audit_head.json"


def _started_path(settings: Settings):
    """Written with the first event and never removed: a home that has it must have a log and an anchor."""
    return settings.governance_dir / "audit_started.json"


#: Files whose presence proves the home has done work, so its audit log must exist (deleting the log, its
#: anchor and the start marker does not make a home look fresh while it still holds data).
_EVIDENCE_OF_WORK = ("identifiable.duckdb", "warehouse.duckdb", "governance/governance.duckdb")


def record_event(
    settings: Settings,
    *,
    action: str,
    target: str | None = None,
    purpose: str | None = None,
    agreement_id: str | None = None,
    details: dict[str, Any] | None = None,
    who: str | None = None,
    role: str | None = None,
) -> dict[str, Any]:
    """Append one event to the audit log and return it (with its ``seq`` and ``hash``).

    Args:
        settings: the home whose audit log it is (callers pass theirs: a Dagster run's comes from the
            ``placelink_settings`` resource, a command's from its ``--home``/the environment, resolved once).
        action: what happened, a short verb: ``ingest``, ``link``, ``pseudonymise``, ``build``,
            ``export``, ``approve_export``, ``read``, ``erase``, ``retention``, ``train`` ...
        target: what it happened to, e.g. ``raw.police__street_crimes`` or a file path.
        purpose: the agreement purpose the processing serves (e.g. ``place_indicators``).
        agreement_id: the data sharing agreement that permits it (e.g. ``DSA-POL-2024-01``).
        details: JSON-able facts (row counts, file hashes, SQL text), checked key by key by
            :func:`safe_details` (:data:`DETAIL_KINDS`): what is not known to be safe is withheld.
        who / role: default :func:`current_user` (the OS account) / :func:`current_role` (the widest role
            it holds). When ``who`` is given and differs from the OS account (a web-tier identity passed on by
            :func:`.identity.run_identity`), the account that wrote the row is kept as ``details.os_user``.
    """
    return record_events(settings, [{
        "action": action, "target": target, "purpose": purpose, "agreement_id": agreement_id,
        "details": details, "who": who, "role": role}])[0]


def record_events(settings: Settings, events: list[dict[str, Any]], *,
                  once_per_run: str | None = None) -> list[dict[str, Any]]:
    """Append several events in one open of the log (each a dict of :func:`record_event`'s keywords).

    Opening the DuckDB file costs ~0.1 s, so a run that materialised hundreds of partitions is audited in
    one go rather than one open per event. ``once_per_run``: a Dagster run id; when the log already holds events
    of that run, nothing is appended (checked while the log's lock is held, so the runner that executed a run and
    the daemon's audit sensor that saw it finish cannot both record it).
    """
    from orchestration.lib.governance.identity import claimed_user

    rows: list[dict[str, Any]] = []
    me, claimed = current_user(), claimed_user()
    role = None if all(e.get("role") for e in events) else current_role(settings)
    with locked_connect(settings.audit_db) as con:
        con.execute(_DDL)
        if once_per_run is not None and con.execute(
                f"SELECT 1 FROM {TABLE} WHERE json_extract_string(details, '$.run_id') = ? LIMIT 1",
                [once_per_run]).fetchone():
            return []
        last = con.execute(f"SELECT seq, hash FROM {TABLE} ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0], last[1]) if last else (0, GENESIS_HASH)
        for event in events:
            seq += 1
            details = safe_details(event.get("details"))
            who = event.get("who") or me
            if who != me:
                details.setdefault("os_user", me)
            if claimed:
                details.setdefault("claimed_user", claimed)
            row: dict[str, Any] = {
                "seq": seq,
                "occurred_at": datetime.now(UTC).strftime(TIME_FORMAT),
                "who": who,
                "role": event.get("role") or role,
                "action": event["action"],
                "target": event.get("target"),
                "purpose": event.get("purpose"),
                "agreement_id": event.get("agreement_id"),
                "details": canonical_json(details),
                "prev_hash": prev,
            }
            row["hash"] = prev = row_hash(row)
            rows.append(row)
        if rows:
            cols = [*FIELDS, "hash"]
            con.executemany(f"INSERT INTO {TABLE} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [[r[c] for c in cols] for r in rows])
            # The head anchor is written while the lock is still held, so it always names the real last row.
            head = _head_path(settings)
            filemodes.private_dir(head.parent)
            started = _started_path(settings)
            if not started.exists():
                # the log's own first row: a home whose log predates the marker gets it on its next append
                first = con.execute(f"SELECT seq, hash, occurred_at FROM {TABLE} ORDER BY seq LIMIT 1").fetchone()
                started.write_text(canonical_json({"first_seq": first[0], "first_hash": first[1],
                                                   "started_at": first[2]}))
                filemodes.make_private(started)
            tmp = head.with_suffix(".tmp")
            tmp.write_text(canonical_json({"seq": rows[-1]["seq"], "hash": rows[-1]["hash"]}))
            filemodes.make_private(tmp)
            tmp.replace(head)
    return rows


def read_events(
    settings: Settings,
    *,
    action: str | None = None,
    who: str | None = None,
    target_contains: str | None = None,
    agreement_id: str | None = None,
    since: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Read events, newest last, filtered by exact action/who/agreement, target substring, ISO ``since``."""
    where, params = [], []
    for col, value in (("action", action), ("who", who), ("agreement_id", agreement_id)):
        if value:
            where.append(f"{col} = ?")
            params.append(value)
    if target_contains:
        where.append("contains(coalesce(target, ''), ?)")
        params.append(target_contains)
    if since:
        where.append("occurred_at >= ?")
        params.append(since)
    sql = f"SELECT * FROM {TABLE}" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY seq"
    with locked_connect(settings.audit_db, read_only=True) as con:
        if con is None or not _has_table(con):
            return []
        cur = con.execute(sql, params)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        r["details"] = json.loads(r["details"]) if r["details"] else {}
    return rows[-limit:] if limit else rows


def _has_table(con) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [TABLE]).fetchone()[0])


@dataclass
class AuditVerification:
    ok: bool
    rows: int
    head_hash: str | None
    problems: list[str] = field(default_factory=list)
    #: True for a home that has never recorded an event (no log, no anchor, no start marker, no data)
    fresh: bool = False

    def __str__(self) -> str:
        if self.ok and self.fresh:
            return "no audit log yet: this home has never recorded an event (nothing to verify)"
        if self.ok:
            return f"audit log intact: {self.rows} events, head {self.head_hash}"
        return f"audit log TAMPERED ({len(self.problems)} problems): " + "; ".join(self.problems[:10])


def verify(settings: Settings) -> AuditVerification:
    """Recompute the hash chain and compare with the head anchor; list every inconsistency found.

    A missing log, a missing anchor, or a log without rows, are each a failure once the home has recorded
    anything (the start marker ``governance/audit_started.json``, or data files, prove it has). Only a home
    that has never done anything verifies as ``fresh`` with no events.
    """
    log_exists = settings.audit_db.exists()
    with locked_connect(settings.audit_db, read_only=True) as con:
        if con is None or not _has_table(con):
            rows = []
        else:
            cur = con.execute(f"SELECT {', '.join(FIELDS)}, hash FROM {TABLE} ORDER BY seq")
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    problems: list[str] = []
    prev_hash, prev_seq = GENESIS_HASH, 0
    for row in rows:
        where = f"{settings.audit_db.name} row seq={row['seq']}"
        if row["seq"] != prev_seq + 1:
            problems.append(f"{where}: expected seq {prev_seq + 1} (rows deleted or inserted)")
        if row["prev_hash"] != prev_hash:
            problems.append(f"{where}: prev_hash does not match the previous row (a row before it was "
                            "deleted, inserted or changed)")
        if row_hash(row) != row["hash"]:
            problems.append(f"{where}: contents do not match its hash (the row was modified)")
        prev_hash, prev_seq = row["hash"], row["seq"]
    head_file, started_file = _head_path(settings), _started_path(settings)
    evidence = [name for name in _EVIDENCE_OF_WORK if (settings.home / name).exists()]
    if head_file.exists():
        head = json.loads(head_file.read_text())
        if head.get("seq") != prev_seq or head.get("hash") != prev_hash:
            problems.append(f"{head_file.name}: the log ends at seq {prev_seq} but the head anchor says seq "
                            f"{head.get('seq')} (rows removed from the end, or the anchor was edited)")
        if not log_exists:
            problems.append(f"{settings.audit_db}: the audit log is missing but its head anchor exists "
                            f"(the log was deleted)")
    elif rows:
        problems.append(f"{head_file}: head anchor missing (it is written on every append)")
    if not rows and not problems:
        if started_file.exists():
            problems.append(f"{settings.audit_db}: no audit events, but {started_file.name} records that this "
                            "home started its log (the log" + (" and its anchor were" if not head_file.exists()
                                                               else " was") + " deleted or emptied)")
        elif evidence:
            problems.append(f"{settings.audit_db}: no audit log, but the home holds {', '.join(evidence)} "
                            "(every ingest and build is audited, so the log was deleted)")
    if rows and started_file.exists():
        started = json.loads(started_file.read_text())
        if started.get("first_hash") != rows[0]["hash"]:
            problems.append(f"{started_file.name}: the log's first event is not the one this home started with "
                            "(the log was replaced)")
    fresh = not rows and not problems and not log_exists and not head_file.exists()
    return AuditVerification(ok=not problems, rows=len(rows), head_hash=prev_hash if rows else None,
                             problems=problems, fresh=fresh)
