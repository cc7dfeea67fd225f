"""From prediction to action, audited: the named team of an approved project works its flagged cases.

*Data is only part of the solution*: a score becomes help only when a person reviews the case and acts. Here:

1. :func:`flagged` lists the households the project's model scores at or above the project's threshold
   (``action.threshold``), highest first — pseudonymous keys and scores only;
2. :func:`reidentify` lets an account holding the project's team role (``action.role`` in the role file) see
   who one flagged household is — the partners' record references, read inside the identifiable zone — only
   while the project may be used (``projects.project_gate``), only for a flagged household, and at most
   ``action.capacity_per_month`` households a month; every re-identification (and every refusal the account may
   see) is an audit event that names the case, never the household;
3. :func:`record_decision` keeps the practitioner's review decision (agree / disagree / action taken / no
   action) and :func:`record_outcome` the outcome later observed; both are audited;
4. :func:`summary` reports how often practitioners overrode the model and the outcomes of acted-on cases
   against comparable flagged cases not acted on — **observational**, not a causal effect.

Cases live in ``governance/governance.duckdb`` (table ``project_cases``) — keys, scores and decisions only; the
record references a practitioner sees are read from the identifiable zone at the moment of re-identification
and never stored outside it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from orchestration.lib.config import Settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance import identity
from orchestration.lib.governance._store import locked_connect
from orchestration.lib.governance.audit import record_event
from orchestration.lib.governance.projects import ProjectRecord, project_gate, require_project

DECISIONS = ("agree", "disagree", "action_taken", "no_action")
#: decisions that mean the practitioner did not follow the model's flag
OVERRIDES = ("disagree", "no_action")
OUTCOMES = ("occurred", "not_occurred")
ML_MODELS_DIR = Path(__file__).resolve().parents[3] / "ml" / "models"

_SCHEMA = """
create table if not exists project_cases (
    case_id varchar primary key, project_id varchar not null, model varchar not null, model_version varchar,
    score_month date not null, household_key varchar not null, risk_score double, risk_rank integer,
    reidentified_by varchar, reidentified_at timestamp,
    decision varchar, decided_by varchar, decided_at timestamp,
    outcome varchar, outcome_by varchar, outcome_at timestamp)
"""


def _db(settings: Settings) -> Path:
    return settings.governance_dir / "governance.duckdb"


def project_model(project_id: str, models_dir: Path | None = None) -> tuple[str, str]:
    """(model, predictions table) of the risk model whose ethics record names ``project_id``."""
    for path in sorted((models_dir or ML_MODELS_DIR).glob("*/ethics.yml")):
        ethics = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        spec = yaml.safe_load((path.parent / "model.yml").read_text(encoding="utf-8")) or {}
        if ethics.get("project") == project_id and spec.get("kind") == "risk":
            return path.parent.name, spec["predictions_table"]
    raise PlacelinkError(f"no risk model belongs to project {project_id}", where=str(models_dir or ML_MODELS_DIR),
                         fix="name the project in the model's ethics.yml (`project:`); place-level projects "
                             "flag no one")


def _case_id(project_id: str, score_month: dt.date, household_key: str) -> str:
    # stable per project, month and household, without exposing the key
    digest = hashlib.sha256(f"{project_id}|{score_month}|{household_key}".encode()).hexdigest()[:12]
    return f"{project_id}-{score_month:%Y%m}-{digest}"


def flagged(settings: Settings, project_id: str, *, projects_dir=None, models_dir: Path | None = None) -> pd.DataFrame:
    """The latest month's households at or above the project's threshold, highest risk first (keys only)."""
    record = require_project(project_id, projects_dir)
    model, table = project_model(project_id, models_dir)
    if not settings.warehouse_db.exists():
        raise PlacelinkError("no warehouse yet", where=str(settings.warehouse_db), fix="run `placelink refresh`")
    con = duckdb.connect(str(settings.warehouse_db), read_only=True)
    try:
        threshold = record.action.threshold if record.action.threshold is not None else 0.0
        frame = con.execute(f"""
            select household_key, score_month, risk_score, risk_rank, model_version from {table}
            where score_month = (select max(score_month) from {table}) and risk_score >= ?
            order by risk_score desc, risk_rank""", [threshold]).df()
    except duckdb.CatalogException as exc:
        raise PlacelinkError(f"no predictions table {table}", where=str(settings.warehouse_db),
                             fix=f"score the model: `placelink score --model {model}`") from exc
    finally:
        con.close()
    frame["score_month"] = pd.to_datetime(frame["score_month"]).dt.date
    frame.insert(0, "case_id", [_case_id(project_id, m, k) for m, k in zip(frame["score_month"],
                                                                           frame["household_key"], strict=True)])
    frame["model"] = model
    frame.attrs.update(threshold=threshold, capacity=record.action.capacity_per_month, model=model)
    return frame


@dataclass
class Reidentified:
    case_id: str
    household_id: str
    records: pd.DataFrame  # partner, feed, record_id: what the practitioner looks up in the partners' systems
    used_this_month: int
    capacity: int


def _household_id(settings: Settings, household_key: str) -> tuple[str | None, pd.DataFrame]:
    from orchestration.lib.pseudonymise import household_key as token

    con = duckdb.connect(str(settings.identifiable_db), read_only=True)
    try:
        index = con.execute("select record_id, cast(household_id as varchar) as household_id "
                            "from link.household_index").df()
    finally:
        con.close()
    for hid in index["household_id"].dropna().unique():
        if token(settings, hid) == household_key:
            rows = index[index["household_id"] == hid]["record_id"].str.extract(r"^([^.]+)\.([^:]+):(.*)$")
            rows.columns = ["partner", "feed", "record_id"]
            return hid, rows.sort_values(["partner", "feed", "record_id"]).reset_index(drop=True)
    return None, pd.DataFrame(columns=["partner", "feed", "record_id"])


def _refuse(settings: Settings, project_id: str, case_id: str | None, why: str, fix: str, user: str) -> None:
    record_event(settings, action="reidentify", target=project_id, purpose=None,
                 details={"project": project_id, "outcome": "refused", "reason": why,
                          **({"approval_id": case_id} if case_id else {})})
    raise PlacelinkError(f"re-identification refused: {why}", where=f"project {project_id}", fix=fix)


def _this_month(con: duckdb.DuckDBPyConnection, project_id: str, today: dt.date) -> int:
    start = today.replace(day=1)
    return con.execute("select count(*) from project_cases where project_id = ? and reidentified_at >= ?",
                       [project_id, start]).fetchone()[0]


def reidentify(settings: Settings, project_id: str, case_id: str, *, projects_dir=None,
               models_dir: Path | None = None, today: dt.date | None = None) -> Reidentified:
    """Who one flagged household is, for the project's team; refused and audited otherwise (module docs)."""
    today = today or dt.date.today()
    user = identity.current_user()
    gate = project_gate(project_id, stage="reidentify", directory=projects_dir, today=today)
    if not gate.allowed:
        _refuse(settings, project_id, case_id, "; ".join(gate.reasons),
                f"see `placelink project check {project_id}`", user)
    record: ProjectRecord = require_project(project_id, projects_dir)
    role = record.action.role
    if not identity.holds(settings, role, user):
        _refuse(settings, project_id, case_id, f"{user} does not hold the project's team role {role}",
                f"an administrator grants {role} in {settings.roles_file}", user)
    cases = flagged(settings, project_id, projects_dir=projects_dir, models_dir=models_dir)
    match = cases[cases["case_id"] == case_id]
    if match.empty:
        _refuse(settings, project_id, case_id, f"case {case_id} is not a household the project flags this month "
                f"(risk at or above {cases.attrs['threshold']})",
                f"choose a case from `placelink project flagged {project_id}`", user)
    case = match.iloc[0]
    capacity = record.action.capacity_per_month
    with locked_connect(_db(settings)) as con:
        con.execute(_SCHEMA)
        seen = con.execute("select reidentified_at from project_cases where case_id = ?", [case_id]).fetchone()
        opened_before = seen is not None and seen[0] is not None  # opening it again costs no capacity
        used = _this_month(con, project_id, today)
        over = not opened_before and used >= capacity
        if not over and not opened_before:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            con.execute("delete from project_cases where case_id = ?", [case_id])
            con.execute("insert into project_cases (case_id, project_id, model, model_version, score_month, "
                        "household_key, risk_score, risk_rank, reidentified_by, reidentified_at) "
                        "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [case_id, project_id, case["model"], str(case["model_version"]), case["score_month"],
                         case["household_key"], float(case["risk_score"]), int(case["risk_rank"]), user, now])
            used += 1
    if over:
        _refuse(settings, project_id, case_id, f"the team has re-identified {used} household(s) this month, its "
                f"capacity ({capacity} a month)", "work the cases already opened; capacity is set in the project "
                "file (action.capacity_per_month) by its board", user)
    household_id, records = _household_id(settings, case["household_key"])
    if household_id is None:
        _refuse(settings, project_id, case_id, "the household is no longer in the identifiable zone (erased or "
                "re-linked since scoring)", "wait for the next scoring run", user)
    record_event(settings, action="reidentify", target=project_id, purpose=record.purpose,
                 details={"project": project_id, "outcome": "ok", "approval_id": case_id, "model": case["model"],
                          "version": str(case["model_version"]), "records": len(records), "role": role})
    return Reidentified(case_id, str(household_id), records, used, capacity)


def _update(settings: Settings, project_id: str, case_id: str, column: str, value: str, allowed: tuple[str, ...],
            *, projects_dir=None) -> None:
    if value not in allowed:
        raise PlacelinkError(f"{column} {value!r} is not one of {list(allowed)}", fix=f"use one of {list(allowed)}")
    record = require_project(project_id, projects_dir)
    user = identity.require(settings, record.action.role)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with locked_connect(_db(settings)) as con:
        con.execute(_SCHEMA)
        row = con.execute("select reidentified_at, decision from project_cases where case_id = ? and project_id = ?",
                          [case_id, project_id]).fetchone()
        if row is None or row[0] is None:
            raise PlacelinkError(f"case {case_id} has not been opened (re-identified) for project {project_id}",
                                 fix=f"open it first: `placelink project reidentify {project_id} {case_id}`")
        if column == "outcome" and row[1] is None:
            raise PlacelinkError(f"case {case_id} has no review decision yet",
                                 fix=f"record it first: `placelink project decide {project_id} {case_id} <decision>`")
        who = "decided_by" if column == "decision" else "outcome_by"
        when = "decided_at" if column == "decision" else "outcome_at"
        con.execute(f"update project_cases set {column} = ?, {who} = ?, {when} = ? where case_id = ?",
                    [value, user, now, case_id])
    record_event(settings, action=f"case_{column}", target=project_id, purpose=record.purpose,
                 details={"project": project_id, "approval_id": case_id, "outcome": value})


def record_decision(settings: Settings, project_id: str, case_id: str, decision: str, *, projects_dir=None) -> None:
    """The practitioner's review decision on an opened case (one of :data:`DECISIONS`), audited."""
    _update(settings, project_id, case_id, "decision", decision, DECISIONS, projects_dir=projects_dir)


def record_outcome(settings: Settings, project_id: str, case_id: str, outcome: str, *, projects_dir=None) -> None:
    """The outcome later observed for a decided case (one of :data:`OUTCOMES`), audited."""
    _update(settings, project_id, case_id, "outcome", outcome, OUTCOMES, projects_dir=projects_dir)


def cases(settings: Settings, project_id: str | None = None) -> pd.DataFrame:
    with locked_connect(_db(settings), read_only=True) as con:
        if con is None:
            return pd.DataFrame()
        exists = con.execute("select count(*) from information_schema.tables where table_name = 'project_cases'"
                             ).fetchone()[0]
        if not exists:
            return pd.DataFrame()
        sql = "select * from project_cases" + (" where project_id = ?" if project_id else "") + " order by case_id"
        return con.execute(sql, [project_id] if project_id else []).df()


@dataclass
class ActionSummary:
    project_id: str
    opened: int
    decided: int
    overrides: int
    by_decision: dict[str, int]
    outcomes: pd.DataFrame  # group (acted on / not acted on), cases, outcome known, occurred, rate

    @property
    def override_rate(self) -> float:
        return self.overrides / self.decided if self.decided else float("nan")

    def markdown(self) -> str:
        rate = "n/a (no decisions yet)" if not self.decided else f"{self.override_rate:.0%}"
        lines = [f"Cases opened: {self.opened}; decided: {self.decided}; override rate (disagree or no action): "
                 f"{rate}. Decisions: " + (", ".join(f"{k} {v}" for k, v in self.by_decision.items()) or "none"),
                 "",
                 "Outcomes, acted-on cases against comparable flagged cases not acted on. **Observational**: the "
                 "practitioners chose which cases to act on, so a difference is not the effect of acting.", ""]
        rows = ["| group | cases | outcome known | occurred | rate |", "|---|---|---|---|---|"]
        for r in self.outcomes.itertuples(index=False):
            rate_text = "" if r.known == 0 else f"{r.occurred / r.known:.0%}"
            rows.append(f"| {r.group} | {r.cases} | {r.known} | {r.occurred} | {rate_text} |")
        return "\n".join(lines + rows) + "\n"


def summary(settings: Settings, project_id: str) -> ActionSummary:
    """Override rate and the observational outcome comparison of one project's cases."""
    frame = cases(settings, project_id)
    if frame.empty:
        frame = pd.DataFrame(columns=["decision", "outcome", "reidentified_at"])
    opened = int(frame["reidentified_at"].notna().sum())
    decided = frame[frame["decision"].notna()]
    by = {d: int((decided["decision"] == d).sum()) for d in DECISIONS if (decided["decision"] == d).any()}
    rows = []
    for group, mask in (("acted on (action_taken)", decided["decision"] == "action_taken"),
                        ("not acted on (agree, disagree, no_action)", decided["decision"] != "action_taken")):
        part = decided[mask]
        known = part[part["outcome"].notna()]
        rows.append({"group": group, "cases": len(part), "known": len(known),
                     "occurred": int((known["outcome"] == "occurred").sum())})
    return ActionSummary(project_id, opened, len(decided), int(decided["decision"].isin(OVERRIDES).sum()), by,
                         pd.DataFrame(rows))
