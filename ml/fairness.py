"""Fairness by group with fairlearn's MetricFrame, and the comparison against the ethics record's thresholds.

Risk models: the action goes to the top ``top_fraction`` by score, so "selected" means above that cut.
Per group: size, positives, selection rate, true/false positive rates, mean predicted risk, observed rate
and the calibration gap between them. Demand forecasts: per deprivation quintile, MAE and the relative bias
(sum of forecast minus actual over actual) — under-forecasting deprived places is the harm to catch.

Groups smaller than ``min_group_size`` (or, for TPR, with fewer than ``min_group_positives`` positives) are
reported but not compared: on small counts a difference is noise, and a gate tripping on noise teaches
people to ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_positive_rate,
    mean_prediction,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import mean_absolute_error


@dataclass
class FairnessReport:
    table: pd.DataFrame  # one row per (group_type, group)
    summary: dict[str, float]  # e.g. "sex.tpr_difference" -> 0.12 (compared groups only)
    breaches: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.breaches


def _observed_rate(y_true, y_pred) -> float:
    return float(np.mean(y_true)) if len(y_true) else float("nan")


def _positives(y_true, y_pred) -> float:
    return float(np.sum(y_true))


def _safe(metric):
    # fairlearn calls metrics per group; a group with no negatives makes FPR undefined, not an error
    def wrapped(y_true, y_pred):
        try:
            return float(metric(y_true, y_pred, zero_division=np.nan))
        except TypeError:
            return float(metric(y_true, y_pred))
    wrapped.__name__ = metric.__name__
    return wrapped


def risk_fairness(frame: pd.DataFrame, score: np.ndarray, label: str, groups: list[str], *, top_fraction: float,
                  min_group_size: int, min_group_positives: int, thresholds: dict[str, float]) -> FairnessReport:
    y_true = frame[label].to_numpy()
    score = np.asarray(score, dtype=float)
    cut = np.quantile(score, 1 - top_fraction)
    selected = (score >= cut).astype(int)
    rows, summary = [], {}
    for group in groups:
        sensitive = frame[group].astype("string").fillna("Unknown") if group in frame else pd.Series(
            ["Unknown"] * len(frame))
        labels = MetricFrame(
            metrics={"n": count, "positives": _positives, "selection_rate": selection_rate,
                     "tpr": _safe(true_positive_rate), "fpr": _safe(false_positive_rate)},
            y_true=y_true, y_pred=selected, sensitive_features=sensitive.to_numpy(),
        ).by_group
        scores = MetricFrame(
            metrics={"mean_predicted": mean_prediction, "observed_rate": _observed_rate},
            y_true=y_true, y_pred=score, sensitive_features=sensitive.to_numpy(),
        ).by_group
        table = labels.join(scores)
        table["calibration_gap"] = (table["mean_predicted"] - table["observed_rate"]).abs()
        table["compared"] = table["n"] >= min_group_size
        table["tpr_compared"] = table["compared"] & (table["positives"] >= min_group_positives)
        table = table.reset_index(names="group")
        table.insert(0, "group_type", group)
        rows.append(table)
        cmp_, tpr_cmp = table[table["compared"]], table[table["tpr_compared"]]
        sr = cmp_["selection_rate"]
        summary[f"{group}.selection_rate_ratio"] = float(sr.min() / sr.max()) if len(sr) > 1 and sr.max() > 0 \
            else 1.0
        summary[f"{group}.tpr_difference"] = float(np.ptp(tpr_cmp["tpr"].dropna())) if tpr_cmp["tpr"].notna().sum() > 1 \
            else 0.0
        summary[f"{group}.fpr_difference"] = float(np.ptp(cmp_["fpr"].dropna())) if cmp_["fpr"].notna().sum() > 1 \
            else 0.0
        summary[f"{group}.calibration_gap_max"] = float(cmp_["calibration_gap"].max()) if len(cmp_) else 0.0
        summary[f"{group}.groups_compared"] = float(len(cmp_))
    report = FairnessReport(pd.concat(rows, ignore_index=True), summary)
    report.breaches = check_thresholds(summary, thresholds, groups)
    return report


def demand_fairness(frame: pd.DataFrame, prediction: np.ndarray, label: str, groups: list[str], *,
                    min_group_size: int, thresholds: dict[str, float]) -> FairnessReport:
    y_true = frame[label].to_numpy(dtype=float)
    prediction = np.asarray(prediction, dtype=float)

    def relative_bias(t, p):
        return float((np.sum(p) - np.sum(t)) / np.sum(t)) if np.sum(t) > 0 else float("nan")

    rows, summary = [], {}
    for group in groups:
        sensitive = frame[group].astype("string").fillna("Unknown")
        table = MetricFrame(
            metrics={"n": count, "actual_total": lambda t, p: float(np.sum(t)),
                     "forecast_total": lambda t, p: float(np.sum(p)), "mae": mean_absolute_error,
                     "relative_bias": relative_bias},
            y_true=y_true, y_pred=prediction, sensitive_features=sensitive.to_numpy(),
        ).by_group.reset_index(names="group")
        table["compared"] = table["n"] >= min_group_size
        table.insert(0, "group_type", group)
        rows.append(table)
        cmp_ = table[table["compared"]]
        summary[f"{group}.relative_bias_max"] = float(cmp_["relative_bias"].abs().max()) if len(cmp_) else 0.0
        summary[f"{group}.groups_compared"] = float(len(cmp_))
    report = FairnessReport(pd.concat(rows, ignore_index=True), summary)
    report.breaches = check_thresholds(summary, thresholds, groups)
    return report


#: threshold name -> (summary suffix, True if the summary must be at least the threshold)
THRESHOLDS = {
    "selection_rate_ratio_min": ("selection_rate_ratio", True),
    "tpr_difference_max": ("tpr_difference", False),
    "fpr_difference_max": ("fpr_difference", False),
    "calibration_gap_max": ("calibration_gap_max", False),
    "relative_bias_max": ("relative_bias_max", False),
}


def check_thresholds(summary: dict[str, float], thresholds: dict[str, float], groups: list[str]) -> list[str]:
    """Breaches as readable sentences; an unknown threshold name is itself a breach (a typo must not pass)."""
    breaches = []
    for name, limit in (thresholds or {}).items():
        if limit is None:
            continue
        if name not in THRESHOLDS:
            breaches.append(f"unknown fairness threshold {name!r} (known: {sorted(THRESHOLDS)})")
            continue
        suffix, at_least = THRESHOLDS[name]
        for group in groups:
            value = summary.get(f"{group}.{suffix}")
            if value is None or np.isnan(value):
                continue
            if (at_least and value < limit) or (not at_least and value > limit):
                breaches.append(f"{group}: {suffix} = {value:.3f} {'<' if at_least else '>'} {name} {limit}")
    return breaches
