"""The ethics gate: the blocking step between ``challenger`` and ``champion``.

A version is promoted only if every check passes:

1. ``ethics_record_complete`` — every UK Data Ethics Framework answer is present (the missing ones listed);
2. ``agreements_permit_purpose`` — each feed's sharing agreement still permits the record's purpose
   (re-read at gate time: an agreement can change while a model trains);
3. ``fairness_within_thresholds`` — no fairness threshold in the record is breached;
4. ``project_approved`` — the model's project (``orchestration/projects/<id>.yml``) is approved, complete, in
   date and not past its review date, with the model's purpose, which its feeds' agreements allow;
5. ``beats_champion`` — better than the current champion on the held-out period, both scored on the same
   data (strictly better: a tie keeps the model people already trust).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ml.ethics import AgreementCheck, LoadedRecord
from ml.fairness import FairnessReport
from orchestration.lib.governance.projects import GateResult


@dataclass
class GateDecision:
    promote: bool
    checks: dict[str, bool]
    reasons: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if self.promote:
            return "promoted to champion: " + "; ".join(self.reasons)
        return "promotion refused: " + "; ".join(self.reasons)


def evaluate(record: LoadedRecord, agreements: list[AgreementCheck], fairness: FairnessReport,
             candidate: float, champion: float | None, *, higher_is_better: bool, metric: str,
             project: GateResult | None = None) -> GateDecision:
    checks, refusals, notes = {}, [], []

    checks["ethics_record_complete"] = record.complete
    if not record.complete:
        refusals.append(f"ethics record {record.path} incomplete: " + ", ".join(record.problems))

    refused = [a for a in agreements if not a.permitted]
    checks["agreements_permit_purpose"] = bool(agreements) and not refused
    if refused or not agreements:
        refusals.append("feed agreements do not permit the purpose: "
                        + ("; ".join(f"{a.feed} ({a.reason})" for a in refused) or "no feeds listed"))

    checks["fairness_within_thresholds"] = fairness.passed
    if not fairness.passed:
        refusals.append("fairness thresholds breached: " + "; ".join(fairness.breaches))

    if project is not None:
        checks["project_approved"] = project.allowed
        if not project.allowed:
            refusals.append(f"project {project.project_id or '(none)'} does not allow promotion: "
                            + "; ".join(project.reasons))

    if champion is None or (isinstance(champion, float) and math.isnan(champion)):
        checks["beats_champion"] = True
        notes.append("no champion yet")
    else:
        better = candidate > champion if higher_is_better else candidate < champion
        checks["beats_champion"] = better
        comparison = f"{metric} {candidate:.4f} vs champion {champion:.4f} on the held-out period"
        (notes if better else refusals).append(("beats champion: " if better else "does not beat champion: ")
                                               + comparison)

    promote = all(checks.values())
    return GateDecision(promote=promote, checks=checks, reasons=notes if promote else refusals)
