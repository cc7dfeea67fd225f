"""Ethics records (``ml/models/<model>/ethics.yml``) and the feed agreements they must agree with.

A record answers the UK Data Ethics Framework for one model: purpose and public benefit, the action that
follows a prediction, lawful basis, data used and its limitations, human oversight, and the fairness
thresholds the gate enforces. :func:`validate_record` lists every missing answer (it never stops at the
first) so the gate can say all of them at once. :func:`check_feed_agreements` reads the feed contracts
(``orchestration/feeds/<partner>.yml``) and refuses any feed whose agreement does not permit the purpose.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestration.lib.errors import PlacelinkError
from orchestration.lib.validation import Answer, collect_problems, is_placeholder

ML_ROOT = Path(__file__).resolve().parent
MODELS_DIR = ML_ROOT / "models"
FEEDS_DIR = ML_ROOT.parent / "orchestration" / "feeds"

class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow")


class Purpose(_Strict):
    agreement_purpose: Answer
    statement: Answer
    public_benefit: Answer


class LawfulBasis(_Strict):
    article_6: Answer
    article_9_or_dpa_condition: Answer


class DataUsed(_Strict):
    feeds: list[str] = Field(min_length=1)
    features: Answer
    limitations: Answer
    excluded_features: list[str] = Field(default_factory=list)

    @field_validator("feeds")
    @classmethod
    def _feed_names(cls, feeds: list[str]) -> list[str]:
        bad = [f for f in feeds if f.count(".") != 1]
        if bad:
            raise ValueError(f"feeds are '<partner>.<feed>' (e.g. nhs.ae_attendances); got {bad}")
        return feeds


class Fairness(_Strict):
    groups: list[str] = Field(min_length=1)
    min_group_size: int = 30
    min_group_positives: int = 5
    thresholds: dict[str, float] = Field(min_length=1)


class EthicsRecord(_Strict):
    model: str
    project: str | None = None  # the approved project it serves (orchestration/projects/<id>.yml); the gate needs it
    title: Answer
    owner: Answer
    purpose: Purpose
    action_following_prediction: Answer
    lawful_basis: LawfulBasis
    data: DataUsed
    human_oversight: Answer
    fairness: Fairness


@dataclass
class LoadedRecord:
    """The record as written, whether it validates, and what is missing or wrong (``path: reason``)."""

    path: Path
    raw: dict[str, Any]
    record: EthicsRecord | None
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.record is not None and not self.problems

    # Training needs these two even when the rest of the record is incomplete.
    @property
    def purpose(self) -> str | None:
        value = (self.raw.get("purpose") or {}).get("agreement_purpose")
        return str(value).strip() if not is_placeholder(value) else None

    @property
    def project(self) -> str | None:
        value = self.raw.get("project")
        return str(value).strip() if value else None

    @property
    def feeds(self) -> list[str]:
        return list((self.raw.get("data") or {}).get("feeds") or [])

    def threshold(self, name: str) -> float | None:
        thresholds = ((self.raw.get("fairness") or {}).get("thresholds")) or {}
        value = thresholds.get(name)
        return None if value is None else float(value)


def record_path(model: str) -> Path:
    return MODELS_DIR / model / "ethics.yml"


def load_record(path: str | Path) -> LoadedRecord:
    """Read and validate an ethics record; problems are collected, not raised."""
    path = Path(path)
    if not path.exists():
        raise PlacelinkError(
            "no ethics record", where=str(path),
            fix="copy ml/models/household_risk/ethics.yml beside the model's code and answer every question",
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PlacelinkError(f"ethics record is not valid YAML: {exc}", where=str(path),
                             fix="fix the YAML syntax at the line shown") from exc
    if not isinstance(raw, dict):
        raise PlacelinkError("ethics record must be a mapping of questions to answers", where=str(path),
                             fix="see ml/models/household_risk/ethics.yml for the layout")
    try:
        return LoadedRecord(path=path, raw=raw, record=EthicsRecord.model_validate(raw))
    except ValidationError as exc:
        # the record's problems are "field: what" (the gate and the model card list them under the file's name)
        problems = [f"{where.removeprefix(': ')}: {what}" for where, what, _ in collect_problems(exc, raw, "", {})]
        return LoadedRecord(path=path, raw=raw, record=None, problems=problems)


# ---- feed agreements --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementCheck:
    feed: str
    permitted: bool
    reason: str
    agreement_id: str | None = None


def _contract_feed(feeds_dir: Path, feed: str) -> tuple[Path, dict | None]:
    partner, feed_id = feed.split(".", 1)
    path = feeds_dir / f"{partner}.yml"
    if not path.exists():
        return path, None
    contract = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for entry in contract.get("feeds") or []:
        if entry.get("id") == feed_id:
            return path, entry
    return path, None


def check_feed_agreements(feeds: list[str], purpose: str, feeds_dir: str | Path | None = None,
                          today: dt.date | None = None) -> list[AgreementCheck]:
    """Does each feed's sharing agreement permit ``purpose`` today? One result per feed, never raises.

    A feed with no contract, no agreement, the purpose absent from ``agreement.purposes`` or an agreement
    outside its ``valid_from``/``valid_to`` dates is not permitted: the absence of permission is refusal.
    """
    feeds_dir = Path(feeds_dir) if feeds_dir else FEEDS_DIR
    today = today or dt.date.today()
    results = []
    for feed in feeds:
        path, entry = _contract_feed(feeds_dir, feed)
        if entry is None:
            results.append(AgreementCheck(feed, False, f"no contract for feed {feed!r} in {path}"))
            continue
        agreement = entry.get("agreement") or {}
        agreement_id = agreement.get("id")
        purposes = [str(p) for p in agreement.get("purposes") or []]
        valid_from, valid_to = agreement.get("valid_from"), agreement.get("valid_to")
        if purpose not in purposes:
            reason = (f"agreement {agreement_id or '(no id)'} in {path} permits {purposes or 'no purposes'}, "
                      f"not {purpose!r}")
            results.append(AgreementCheck(feed, False, reason, agreement_id))
        elif valid_from and dt.date.fromisoformat(str(valid_from)) > today:
            results.append(AgreementCheck(feed, False, f"agreement {agreement_id} starts {valid_from}", agreement_id))
        elif valid_to and dt.date.fromisoformat(str(valid_to)) < today:
            results.append(AgreementCheck(feed, False, f"agreement {agreement_id} ended {valid_to}", agreement_id))
        else:
            results.append(AgreementCheck(feed, True, f"permitted by {agreement_id}", agreement_id))
    return results


def require_permitted(record: LoadedRecord, feeds_dir: str | Path | None = None) -> list[AgreementCheck]:
    """Refuse to train (raise) unless the record names a purpose and feeds, and every agreement permits it."""
    if not record.purpose or not record.feeds:
        raise PlacelinkError(
            "the ethics record must name purpose.agreement_purpose and data.feeds before any training",
            where=str(record.path), fix="add the purpose (e.g. risk_modelling) and the '<partner>.<feed>' list",
        )
    checks = check_feed_agreements(record.feeds, record.purpose, feeds_dir)
    refused = [c for c in checks if not c.permitted]
    if refused:
        first = refused[0]
        raise PlacelinkError(
            f"training refused: {len(refused)} feed(s) may not be used for {record.purpose!r}: "
            + "; ".join(f"{c.feed}: {c.reason}" for c in refused),
            where=str(record.path) + f" (data.feeds: {first.feed})",
            fix="remove the feed from data.feeds, or agree the purpose with the partner and add it to "
                "agreement.purposes in its contract",
        )
    return checks


# ---- the project it serves ------------------------------------------------------------------------------


def project_permission(record: LoadedRecord, *, stage: str, feeds_dir: str | Path | None = None,
                       projects_dir: str | Path | None = None, today: dt.date | None = None):
    """May this model be used for ``stage`` under its project? (``projects.GateResult``, every reason listed.)

    The model must name an approved, complete project (ethics.yml ``project:``), in date and not past its review
    date, whose purpose is the model's and which every feed's agreement allows today.
    """
    from orchestration.lib.governance.projects import find_project, project_gate

    purpose = record.purpose
    if record.project:
        try:
            purpose = find_project(record.project, projects_dir).purpose or purpose
        except PlacelinkError:
            pass  # project_gate says the project is unknown
    checks = check_feed_agreements(record.feeds, purpose or "", feeds_dir, today) if record.feeds else []
    return project_gate(record.project, stage=stage, purpose=record.purpose,
                        feed_permissions=[(c.feed, c.permitted, c.reason) for c in checks],
                        directory=projects_dir, today=today)


def require_project(record: LoadedRecord, *, stage: str, feeds_dir: str | Path | None = None,
                    projects_dir: str | Path | None = None, today: dt.date | None = None):
    """:func:`project_permission`, raising a :class:`PlacelinkError` with every reason when refused."""
    result = project_permission(record, stage=stage, feeds_dir=feeds_dir, projects_dir=projects_dir, today=today)
    result.raise_if_refused(stage, where=f"{record.path} (project: {record.project or 'none'})")
    return result
