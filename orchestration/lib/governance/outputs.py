"""Output checking ("safe outputs"): a named person approves each published file after independent checks.

``placelink publish`` (``lib/dbt_runner.publish``) writes the disclosure-controlled files; nothing is
released until :func:`approve_export` has re-checked every file and recorded who approved it and the
file's sha256. :func:`release_status` tells a release step (or a partner) whether a file is exactly the one
approved — any later change to the file voids the approval.

The checks here are a second pair of eyes on the files themselves, independent of how they were made:

* no identifying or person-level column (keys, names, NHS number, date of birth, full postcode, address,
  UPRN);
* no count between 1 and ``threshold - 1`` in any count column (primary suppression held);
* rows flagged ``is_suppressed`` show no count and no rate (nothing recoverable from the rate).

Secondary suppression (no suppressed cell recoverable from the geography margins or the indicator hierarchy) is
proved by the dbt stage's tests (``lib/disclosure.attacker_bounds``), which need the hierarchy; it is not repeated
here.

Four eyes that mean something: the approver is whoever is acting (:func:`audit.current_user`, the operating-system
account), never a typed-in name; they must hold ``approver`` in the administrator's role file
(:func:`identity.require`) and must not be the account that exported the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from orchestration.lib.config import Settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance import audit, identity
from orchestration.lib.governance._store import locked_connect
from orchestration.lib.governance.audit import canonical_json, read_events, record_event
from orchestration.lib.governance.erasure import governance_db

FORBIDDEN_COLUMNS = {
    "person_key", "household_key", "record_key", "record_id", "person_id", "household_id", "nhs_number",
    "given_name", "family_name", "forename", "surname", "full_name", "first_name", "last_name", "name",
    "date_of_birth", "dob", "birth_date", "postcode", "address", "uprn", "email", "phone",
}
COUNT_SUFFIXES = ("_count", "_counts")
_APPROVALS_DDL = """
CREATE TABLE IF NOT EXISTS export_approvals (
    approval_id VARCHAR, approved_at TIMESTAMP, approved_by VARCHAR, file VARCHAR, sha256 VARCHAR,
    rows BIGINT, checks VARCHAR, note VARCHAR
)
"""


def _threshold() -> int:
    from orchestration.lib.disclosure import DEFAULT_THRESHOLD

    return DEFAULT_THRESHOLD


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class FileCheck:
    file: str
    rows: int = 0
    sha256: str = ""
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def published_files(settings: Settings) -> list[Path]:
    if not settings.published.exists():
        return []
    return sorted(p for p in settings.published.rglob("*") if p.suffix in (".parquet", ".csv"))


def check_file(path: Path, threshold: int | None = None) -> FileCheck:
    """Run the output checks on one Parquet/CSV file."""
    threshold = threshold or _threshold()
    reader = "read_parquet" if path.suffix == ".parquet" else "read_csv_auto"
    result = FileCheck(file=path.name, sha256=sha256_file(path))
    con = duckdb.connect(":memory:")
    try:
        literal = str(path).replace("'", "''")  # a view cannot take a prepared parameter
        con.execute(f"CREATE VIEW f AS SELECT * FROM {reader}('{literal}')")
        cols = [r[0] for r in con.execute("DESCRIBE f").fetchall()]
        types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE f)").fetchall())
        result.rows = con.execute("SELECT count(*) FROM f").fetchone()[0]
        bad = sorted(c for c in cols if c.lower() in FORBIDDEN_COLUMNS)
        if bad:
            result.failures.append(f"{path.name}: identifying/person-level column(s) {bad} must not be published")
        counts = [c for c in cols if c.lower() in ("count", "n") or c.lower().endswith(COUNT_SUFFIXES)]
        for c in counts:
            if not any(t in types[c].upper() for t in ("INT", "DOUBLE", "FLOAT", "DECIMAL")):
                continue
            n, example = con.execute(
                f'SELECT count(*), min("{c}") FROM f WHERE "{c}" >= 1 AND "{c}" < ?', [threshold]).fetchone()
            if n:
                result.failures.append(f"{path.name}: column {c} has {n} cell(s) between 1 and {threshold - 1} "
                                       f"(e.g. {example}); small counts must be suppressed")
        if "is_suppressed" in cols:
            shown = [c for c in cols if c in counts or c.lower().startswith("rate")]
            for c in shown:
                n = con.execute(f'SELECT count(*) FROM f WHERE is_suppressed AND "{c}" IS NOT NULL').fetchone()[0]
                if n:
                    result.failures.append(f"{path.name}: {n} suppressed row(s) still show {c}")
    finally:
        con.close()
    return result


def check_outputs(settings: Settings, files: list[Path] | None = None) -> list[FileCheck]:
    files = files if files is not None else published_files(settings)
    return [check_file(Path(f)) for f in files]


def approve_export(settings: Settings, *, by: str | None = None, files: list[Path] | None = None,
                   note: str | None = None) -> list[FileCheck]:
    """Check every (or the given) published file and, if all pass, record the acting user's approval of each hash.

    The approver is :func:`audit.current_user` (the OS account), who must hold ``approver`` in the role file
    (:mod:`.identity`) and not be the account that exported the file. ``by`` is not trusted: given, it must
    be that same account (a typed-in name is refused, not recorded).
    """
    approver = audit.current_user()
    if by is not None and by.strip() != approver:
        raise PlacelinkError("the approver is the account running this command, not a typed-in name",
                             where="approve-export --by", fix="leave out --by (or pass your own account name)")
    identity.require(settings, "approver", approver)  # the administrator's role file: ``approver``
    files = files if files is not None else published_files(settings)
    if not files:
        raise PlacelinkError("nothing to approve", where=str(settings.published), fix="run `placelink publish` first")
    exports = read_events(settings, action="export")
    for f in files:
        # who last exported this file: a `placelink publish` (all files), a Dagster `published/<stem>` asset,
        # or an event naming the file itself
        mine = [e for e in exports if e["target"] in ("placelink publish", Path(f).name, str(f),
                                                      f"published.{Path(f).stem}")]
        if mine and mine[-1]["who"] == approver:
            raise PlacelinkError(f"{approver} exported {Path(f).name} and cannot also approve it (four eyes)",
                                 where=str(f), fix="ask a second, authorised output checker to approve")
    checks = check_outputs(settings, files)
    failures = [msg for c in checks for msg in c.failures]
    if failures:
        record_event(settings, action="export_rejected", target=",".join(c.file for c in checks),
                     purpose="output_checking", details={"by": approver, "failures": failures})
        raise PlacelinkError(f"{len(failures)} output check(s) failed: " + "; ".join(failures[:5]),
                             where=str(settings.published),
                             fix="fix the disclosure control (placelink build && placelink publish) and re-check")
    approval_id = str(uuid.uuid4())
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with locked_connect(governance_db(settings)) as con:
        con.execute(_APPROVALS_DDL)
        con.executemany("INSERT INTO export_approvals VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
            [approval_id, now, approver, c.file, c.sha256, c.rows, canonical_json(c.failures), note]
            for c in checks])
    record_event(settings, action="approve_export", target=",".join(c.file for c in checks), purpose="output_checking",
                 details={"approval_id": approval_id, "approved_by": approver, "note": note,
                          "files": {c.file: c.sha256 for c in checks}})
    return checks


def approvals(settings: Settings) -> list[dict[str, Any]]:
    with locked_connect(governance_db(settings), read_only=True) as con:
        if con is None or not con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'export_approvals'").fetchone()[0]:
            return []
        cur = con.execute("SELECT * FROM export_approvals ORDER BY approved_at")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def release_status(settings: Settings) -> list[dict[str, Any]]:
    """Each published file: ``approved`` (this exact content), ``changed since approval`` or ``not approved``."""
    approved = {(a["file"], a["sha256"]): a for a in approvals(settings)}
    known = {a["file"] for a in approvals(settings)}
    out = []
    for path in published_files(settings):
        digest = sha256_file(path)
        hit = approved.get((path.name, digest))
        status = "approved" if hit else ("changed since approval" if path.name in known else "not approved")
        out.append({"file": path.name, "sha256": digest, "status": status,
                    "approved_by": hit["approved_by"] if hit else None,
                    "approved_at": str(hit["approved_at"]) if hit else None})
    return out


def is_approved(settings: Settings, path: Path) -> bool:
    return any(r["file"] == Path(path).name and r["status"] == "approved" for r in release_status(settings))
