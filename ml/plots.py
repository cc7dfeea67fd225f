"""Diagnostic plots logged with every run: calibration, feature importance, lift / precision at top k,
forecast against actual. Matplotlib's Agg backend: no display, safe in Dagster workers and CI."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402


def precision_at_top(y_true, score, fraction: float) -> float:
    """Share of positives among the top ``fraction`` of units by score (ties broken by order, stable)."""
    y_true = np.asarray(y_true)
    k = max(1, int(round(len(y_true) * fraction)))
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")[:k]
    return float(y_true[order].mean())


def calibration_plot(y_true, prob, title: str):
    fig, ax = plt.subplots(figsize=(5, 5))
    observed, predicted = calibration_curve(y_true, prob, n_bins=8, strategy="quantile")
    ax.plot([0, max(predicted.max(), observed.max())] * 1, [0, max(predicted.max(), observed.max())], "k:",
            label="perfectly calibrated")
    ax.plot(predicted, observed, "o-", label="model (test period)")
    ax.set(xlabel="mean predicted risk", ylabel="observed rate", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def importance_plot(importance: pd.Series, title: str):
    top = importance.sort_values().tail(15)
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1.5))
    ax.barh(top.index, top.to_numpy())
    ax.set(xlabel="permutation importance (test period)", title=title)
    fig.tight_layout()
    return fig


def lift_plot(y_true, scores: dict[str, np.ndarray], title: str):
    fractions = np.linspace(0.01, 0.5, 50)
    base = float(np.mean(y_true)) or 1.0
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, score in scores.items():
        precision = [precision_at_top(y_true, score, f) for f in fractions]
        left.plot(fractions * 100, precision, label=name)
        right.plot(fractions * 100, np.array(precision) / base, label=name)
    left.axvline(5, color="grey", ls=":")
    left.set(xlabel="top k % by score", ylabel="precision", title=f"{title}: precision at top k %")
    right.set(xlabel="top k % by score", ylabel="lift over base rate", title="lift")
    left.legend()
    fig.tight_layout()
    return fig


def forecast_plot(actual, forecasts: dict[str, np.ndarray], title: str):
    fig, ax = plt.subplots(figsize=(5, 5))
    top = float(max(np.max(actual), *(np.max(f) for f in forecasts.values()))) or 1.0
    ax.plot([0, top], [0, top], "k:")
    for name, forecast in forecasts.items():
        ax.scatter(actual, forecast, s=10, alpha=0.6, label=name)
    ax.set(xlabel="actual next-quarter count", ylabel="forecast", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def close(fig) -> None:
    plt.close(fig)
