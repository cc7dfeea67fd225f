"""The project register (``orchestration/projects/<id>.yml``): *choose the right problem* before any model.

A project says what problem it addresses and why it matters, the decision it informs and the team (a role in the
role file) that takes it, that team's capacity, the outcome measure and its evaluation, the data it needs (feeds,
columns, months of history, population), the purpose (one of the agreements' purposes), the lawful basis, a
self-assessment against the government's Data Ethics Framework (each principle scored 0-5 with its evidence),
the approvals (who, when, which board) and the review date.

Files are validated like the feed contracts (:mod:`orchestration.lib.contracts`): every problem is collected as
``(where, what, fix)`` — never only the first — so an incomplete file is refused with each field named and its fix.
One bad file does not hide the others: :func:`load_register` returns every file with its problems, and a project
is usable only when its own problems are none (:func:`require_project`).

:func:`project_gate` is the one rule for *using* a project (training, promotion, scoring, re-identification):
approved, complete, inside its life and not past its review date, with the purpose the model's feeds allow.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestration.lib.errors import PlacelinkError
from orchestration.lib.validation import Answer, collect_problems

#: The register's folder; ``PLACELINK_PROJECTS_DIR`` points elsewhere (tests, a deployment's own register).
PROJECTS_DIR = Path(__file__).resolve().parents[2] / "projects"

#: The Data Ethics Framework (GOV.UK, 2020): three overarching principles and five specific actions.
PRINCIPLES: dict[str, str] = {
    "transparency": "Transparency: the project and its data use can be explained and scrutinised",
    "accountability": "Accountability: governance and oversight mechanisms are in place",
    "fairness": "Fairness: it avoids unintended discriminatory effects on individuals and groups",
    "public_benefit_and_user_need": "1. Define and understand public benefit and user need",
    "diverse_expertise": "2. Involve diverse expertise",
    "comply_with_the_law": "3. Comply with the law",
    "data_quality_and_limitations": "4. Review the quality and limitations of the data",
    "wider_policy_implications": "5. Evaluate and consider wider policy implications",
}
#: A principle scored below this is not yet addressed well enough to go ahead (``project check`` says no-go).
MIN_PRINCIPLE_SCORE = 3
STATUSES = ("proposed", "approved", "suspended", "closed")

#: libyaml's parser when installed: the pure-Python one takes ~0.25 s a file on a loaded machine
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemStatement(_Strict):
    statement: Answer
    why_it_matters: Answer
    can_data_help: Answer


class Action(_Strict):
    decision: Answer
    team: Answer
    role: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    capacity_per_month: int = Field(gt=0)
    threshold: float | None = Field(default=None, ge=0, le=1)


class Outcome(_Strict):
    measure: Answer
    evaluation: Answer


class FeedNeed(_Strict):
    feed: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    columns: list[str] = Field(min_length=1)


class DataNeeds(_Strict):
    feeds: list[FeedNeed] = Field(min_length=1)
    history_months: int = Field(gt=0)
    population: Answer


class ProjectLawfulBasis(_Strict):
    article_6: Answer
    article_9_or_dpa_condition: Answer


class Score(_Strict):
    score: int = Field(ge=0, le=5)
    evidence: Answer


class Approval(_Strict):
    who: Answer
    when: dt.date
    board: Answer
    minute: str | None = None


class ProjectRecord(_Strict):
    id: str = Field(pattern=r"^PRJ-\d{4}-[A-Z0-9-]+$")
    title: Answer
    lead: Answer
    status: Literal["proposed", "approved", "suspended", "closed"]
    problem: ProblemStatement
    action: Action
    outcome: Outcome
    data: DataNeeds
    purpose: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    person_level: bool = False
    lawful_basis: ProjectLawfulBasis
    agreements: list[str] = Field(default_factory=list)
    start: dt.date
    valid_to: dt.date
    review_date: dt.date
    ethics_assessment: dict[str, Score]
    approvals: list[Approval] = Field(default_factory=list)

    @field_validator("ethics_assessment")
    @classmethod
    def _every_principle(cls, value: dict[str, Score]) -> dict[str, Score]:
        missing = [p for p in PRINCIPLES if p not in value]
        unknown = [p for p in value if p not in PRINCIPLES]
        if missing or unknown:
            raise ValueError(("missing principle(s) " + ", ".join(missing) if missing else "")
                             + ("; " if missing and unknown else "")
                             + ("unknown principle(s) " + ", ".join(unknown) if unknown else ""))
        return value

    @property
    def feeds(self) -> list[str]:
        return [f.feed for f in self.data.feeds]


_FIXES = {
    "missing": "add the key (see orchestration/projects/PRJ-2025-HHRISK.yml and docs/governance.md, 'Projects')",
    "extra_forbidden": "remove the key or correct its spelling (docs/governance.md, 'Projects', lists the fields)",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "ids are PRJ-<year>-<NAME>; feeds are <partner>.<feed>; roles and purposes are "
                               "lower_snake_case",
    "too_short": "give at least one value",
    "greater_than": "give a positive number",
    "greater_than_equal": "give a score from 0 to 5 (thresholds from 0 to 1)",
    "less_than_equal": "give a score from 0 to 5 (thresholds from 0 to 1)",
    "int_parsing": "write a whole number",
    "float_parsing": "write a number",
    "date_from_datetime_parsing": "write the date as YYYY-MM-DD",
    "date_parsing": "write the date as YYYY-MM-DD",
    "date_type": "write the date as YYYY-MM-DD",
    "value_error": "write a real answer",
}


class ProjectError(PlacelinkError):
    """An unusable project; ``problems`` lists each as (where, what, fix)."""

    def __init__(self, problems: list[tuple[str, str, str]], *, headline: str = "project refused"):
        self.problems = problems
        lines = [f"{headline}: {len(problems)} problem(s):"]
        lines += [f"  - {w}: {m} (fix: {f})" for w, m, f in problems]
        super().__init__("\n".join(lines), fix="edit the project file (docs/governance.md, 'Projects')")


@dataclass
class LoadedProject:
    """One file of the register as written, whether it validates, and every problem (where, what, fix)."""

    path: Path
    raw: dict[str, Any]
    record: ProjectRecord | None
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.raw.get("id") or self.path.stem)

    @property
    def complete(self) -> bool:
        return self.record is not None and not self.problems

    # what place-level/person-level access (roles.py) needs, read even from an incomplete file
    @property
    def purpose(self) -> str | None:
        return self.raw.get("purpose")

    @property
    def title(self) -> str:
        return str(self.raw.get("title") or "")

    @property
    def person_level(self) -> bool:
        return bool(self.raw.get("person_level"))

    @property
    def agreements(self) -> tuple[str, ...]:
        return tuple(self.raw.get("agreements") or ())

    @property
    def valid_to(self) -> dt.date | None:
        value = self.raw.get("valid_to")
        return value if isinstance(value, dt.date) else None

    @property
    def lead(self) -> str | None:
        return self.raw.get("lead")


def projects_dir(path: str | Path | None = None) -> Path:
    if path:
        return Path(path)
    return Path(os.environ["PLACELINK_PROJECTS_DIR"]) if os.environ.get("PLACELINK_PROJECTS_DIR") else PROJECTS_DIR


def validate_project_data(data: Any, path: str | Path) -> LoadedProject:
    """Validate one parsed project file (the mapping under ``project:``); collect every problem."""
    path = Path(path)
    where = str(path)
    if not isinstance(data, dict) or not isinstance(data.get("project"), dict):
        return LoadedProject(path, {}, None, [(where, "the file is not a YAML mapping with project:",
                                               "start from a copy of orchestration/projects/PRJ-2025-HHRISK.yml")])
    raw = data["project"]
    problems: list[tuple[str, str, str]] = []
    record = None
    try:
        record = ProjectRecord.model_validate(raw)
    except ValidationError as exc:
        problems += collect_problems(exc, raw, where, _FIXES, prefix="project.", labels=("feed", "who"))
    if raw.get("id") and str(raw["id"]) != path.stem:
        problems.append((f"{where}: project.id", f"project id {raw['id']!r} differs from the file name",
                         f"rename the file to {raw['id']}.yml"))
    if record is not None:
        if record.valid_to < record.start:
            problems.append((f"{where}: project.valid_to", "the project ends before it starts",
                             "set valid_to after start"))
        if record.status == "approved" and not record.approvals:
            problems.append((f"{where}: project.approvals", "status is approved but no approval is recorded",
                             "add who approved it, when and which board, or set status: proposed"))
        for _i, need in enumerate(record.data.feeds):
            dups = [c for c in need.columns if need.columns.count(c) > 1]
            if dups:
                problems.append((f"{where}: project.data.feeds[{need.feed}].columns",
                                 f"column(s) {sorted(set(dups))} listed twice", "list each column once"))
        feeds = record.feeds
        for dup in sorted({f for f in feeds if feeds.count(f) > 1}):
            problems.append((f"{where}: project.data.feeds", f"feed {dup} listed twice", "list each feed once"))
    return LoadedProject(path, raw, record if not problems else None, problems)


def load_project_file(path: str | Path) -> LoadedProject:
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        return LoadedProject(path, {}, None, [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                                               "fix the indentation/quoting at that line")])
    return validate_project_data(data, path)


def load_register(directory: str | Path | None = None) -> dict[str, LoadedProject]:
    """Every ``*.yml`` of the register by project id, each with its own problems (none = complete)."""
    folder = projects_dir(directory)
    out: dict[str, LoadedProject] = {}
    for path in sorted(folder.glob("*.yml")) if folder.is_dir() else []:
        loaded = load_project_file(path)
        if loaded.id in out:
            loaded.problems.append((f"{path}: project.id", f"project id {loaded.id} is also used by "
                                    f"{out[loaded.id].path.name}", "give each project its own id"))
            loaded.record = None
            out[f"{loaded.id} ({path.name})"] = loaded
            continue
        out[loaded.id] = loaded
    return out


def find_project(project_id: str, directory: str | Path | None = None) -> LoadedProject:
    """The project's file, or a refusal naming the known ids (it may still have problems)."""
    register = load_register(directory)
    if project_id not in register:
        raise PlacelinkError(f"no project {project_id!r} in the register", where=str(projects_dir(directory)),
                             fix=f"use one of {sorted(register) or 'none'} or add {project_id}.yml there")
    return register[project_id]


def require_project(project_id: str, directory: str | Path | None = None) -> ProjectRecord:
    """A complete project record, or a :class:`ProjectError` naming every field and its fix."""
    loaded = find_project(project_id, directory)
    if not loaded.complete:
        raise ProjectError(loaded.problems, headline=f"project {project_id} is incomplete")
    assert loaded.record is not None
    return loaded.record


# --- using a project -----------------------------------------------------------------------------------

Stage = Literal["train", "promote", "score", "reidentify"]


@dataclass(frozen=True)
class GateResult:
    allowed: bool
    project_id: str | None
    reasons: list[str]

    def raise_if_refused(self, stage: str, where: str | None = None) -> None:
        if not self.allowed:
            raise PlacelinkError(f"{stage} refused: " + "; ".join(self.reasons), where=where,
                                 fix="see `placelink project check " + (self.project_id or "<id>") + "`; a model "
                                     "belongs to one approved project (ethics.yml `project:`) whose purpose its "
                                     "feeds' agreements allow")


def project_gate(project_id: str | None, *, stage: Stage, purpose: str | None = None,
                 feed_permissions: list[tuple[str, bool, str]] | None = None,
                 directory: str | Path | None = None, today: dt.date | None = None) -> GateResult:
    """May a model (or a team) use ``project_id`` for ``stage`` today? Every reason is listed, never only one.

    ``purpose``: the model's declared purpose, which must be the project's. ``feed_permissions``: for each of the
    model's feeds, whether its agreement allows the *project's* purpose today, ``(feed, permitted, reason)``
    (the ML stage computes these with ``ml.ethics.check_feed_agreements``).
    """
    today = today or dt.date.today()
    if not project_id:
        return GateResult(False, None, ["the model belongs to no project (add `project: <id>` to its ethics record)"])
    try:
        loaded = find_project(project_id, directory)
    except PlacelinkError as exc:
        return GateResult(False, project_id, [exc.message])
    if not loaded.complete:
        return GateResult(False, project_id, [f"project {project_id} is incomplete: "
                                              + "; ".join(f"{w.split(': ', 1)[-1]}: {m}" for w, m, _ in loaded.problems)])
    record = loaded.record
    assert record is not None
    reasons = []
    if record.status != "approved":
        reasons.append(f"project {project_id} is {record.status}, not approved")
    if today < record.start:
        reasons.append(f"project {project_id} starts on {record.start}")
    if today > record.valid_to:
        reasons.append(f"project {project_id} ended on {record.valid_to}")
    # a project past its review date stops being used until the board reviews it again
    if today > record.review_date:
        reasons.append(f"project {project_id} is past its review date {record.review_date}")
    if purpose is not None and purpose != record.purpose:
        reasons.append(f"the model's purpose {purpose!r} is not its project's purpose {record.purpose!r}")
    for feed, permitted, why in feed_permissions or []:
        if not permitted:
            reasons.append(f"feed {feed} may not be used for {record.purpose!r}: {why}")
    return GateResult(not reasons, project_id, reasons)
