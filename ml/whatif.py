"""The "what would happen" view of a risk model, on its held-out test period (shown on the model card).

For the project's team capacity (cases a month), the households it would review each month are the top
``capacity`` by predicted risk; a true positive is one whose outcome then happened, a false positive one whose
did not. Three tables:

- ``by_group``: flagged, true and false positives by group (sex, ethnicity group, deprivation, age band);
- ``thresholds``: flagging everyone at or above a risk threshold instead, for thresholds around the project's;
- ``feeds``: the same capacity if one feed stopped arriving — its features set to zero (and removed from the
  event totals) and the same model re-applied. An approximation: the model is not retrained without the feed,
  and features that mix feeds (months since the last event, distinct event types) keep their values.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd


def top_per_month(test: pd.DataFrame, prediction: np.ndarray, capacity: int, month: str = "cutoff") -> np.ndarray:
    """Boolean mask: the ``capacity`` highest predictions of each month (ties by position)."""
    frame = pd.DataFrame({"m": test[month].to_numpy(), "p": np.asarray(prediction, dtype=float),
                          "i": np.arange(len(test))})
    frame = frame.sort_values(["m", "p", "i"], ascending=[True, False, True])
    chosen = frame.groupby("m", sort=False).head(capacity)["i"].to_numpy()
    mask = np.zeros(len(test), dtype=bool)
    mask[chosen] = True
    return mask


def _counts(label: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    tp = int((flagged & (label == 1)).sum())
    fp = int((flagged & (label != 1)).sum())
    positives = int((label == 1).sum())
    return {"flagged": tp + fp, "true_positives": tp, "false_positives": fp,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / positives if positives else float("nan")}


def by_group(test: pd.DataFrame, prediction: np.ndarray, capacity: int, groups: list[str],
             label: str = "label") -> pd.DataFrame:
    flagged = top_per_month(test, prediction, capacity)
    y = test[label].to_numpy()
    rows = [{"group": "all", "value": "all", **_counts(y, flagged)}]
    for g in groups:
        if g not in test:
            continue
        for value, idx in test.groupby(g, dropna=False, observed=True).indices.items():
            rows.append({"group": g, "value": str(value), **_counts(y[idx], flagged[idx])})
    return pd.DataFrame(rows)


def thresholds(test: pd.DataFrame, prediction: np.ndarray, threshold: float, label: str = "label") -> pd.DataFrame:
    y = test[label].to_numpy()
    months = max(1, test["cutoff"].nunique())
    rows = []
    for factor in (0.5, 0.75, 1.0, 1.25, 1.5):
        t = threshold * factor
        counts = _counts(y, np.asarray(prediction) >= t)
        rows.append({"threshold": round(t, 4), "flagged_per_month": counts["flagged"] / months, **counts})
    return pd.DataFrame(rows)


def feed_features(features: list[str], indicator_feed: dict[str, str]) -> dict[str, list[str]]:
    """feed -> its feature columns, from ``n_<indicator>_<k>m`` names and an indicator -> feed map."""
    out: dict[str, list[str]] = {}
    for col in features:
        m = re.fullmatch(r"n_(.+)_(\d+)m", col)
        if m and m.group(1) in indicator_feed:
            out.setdefault(indicator_feed[m.group(1)], []).append(col)
    return out


def without_feed(test: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``test`` as if the feed's events were never received: its counts zero, event totals reduced."""
    out = test.copy()
    for col in columns:
        lookback = re.fullmatch(r"n_.+_(\d+)m", col).group(1)
        total = f"events_{lookback}m"
        if total in out:
            out[total] = out[total] - out[col]
        out[col] = 0
    return out


def feeds(test: pd.DataFrame, prediction: np.ndarray, capacity: int, features: list[str],
          indicator_feed: dict[str, str], predict: Callable[[pd.DataFrame], np.ndarray],
          label: str = "label") -> pd.DataFrame:
    y = test[label].to_numpy()
    base = top_per_month(test, prediction, capacity)
    rows = [{"scenario": "all feeds", **_counts(y, base), "same_households": int(base.sum())}]
    for feed, columns in sorted(feed_features(features, indicator_feed).items()):
        changed = without_feed(test, columns)
        flagged = top_per_month(changed, predict(changed[features]), capacity)
        rows.append({"scenario": f"without {feed}", **_counts(y, flagged), "same_households": int((flagged & base).sum())})
    return pd.DataFrame(rows)


def what_would_happen(test: pd.DataFrame, prediction: np.ndarray, *, capacity: int, threshold: float | None,
                      groups: list[str], features: list[str], indicator_feed: dict[str, str],
                      predict: Callable[[pd.DataFrame], np.ndarray]) -> dict[str, pd.DataFrame]:
    out = {"by_group": by_group(test, prediction, capacity, groups),
           "feeds": feeds(test, prediction, capacity, features, indicator_feed, predict)}
    if threshold is not None:
        out["thresholds"] = thresholds(test, prediction, threshold)
    return out
