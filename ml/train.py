"""Train a model on the warehouse marts, track it in MLflow, register it as ``challenger`` and run the gate.

``train_model("household_risk")`` / ``train_model("lsoa_demand")`` is the whole stage as a plain function;
``placelink train`` and the Dagster assets ``ml/<model>_training`` call it.

1. Read the ethics record; refuse to train (raise) if a feed's agreement does not permit its purpose.
2. Build time-split examples from the marts (``ml.features``), only from the record's feeds.
3. Fit: risk — gradient boosting, then probabilities calibrated on the validation period
   (``CalibratedClassifierCV`` over the frozen model); demand — Poisson gradient boosting, refit on
   train + validation. Baselines beside it: prior-count rule (risk); last value and seasonal naive (demand).
4. Log params, metrics, input datasets (dbt model names + digests), plots, fairness table, the model
   (signature + input example) registered as a new version with alias ``challenger``.
5. The gate (``ml.gate``) compares with the champion on the same held-out period; the model card records
   the decision; only a passing version gets the ``champion`` alias.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import sklearn
from mlflow.models import infer_signature
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression, PoissonRegressor
from sklearn.metrics import average_precision_score, brier_score_loss, mean_absolute_error, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from ml import card, gate, plots, registry
from ml.ethics import (
    LoadedRecord,
    check_feed_agreements,
    load_record,
    project_permission,
    record_path,
    require_permitted,
    require_project,
)
from ml.fairness import FairnessReport, demand_fairness, risk_fairness
from ml.features import (
    Frames,
    ModelSpec,
    build_frames,
    connect_read_only,
    feature_name,
    frame_digest,
    load_spec,
    require_history,
)
from orchestration.lib.config import Settings, get_settings
from orchestration.lib.errors import PlacelinkError

SEED = 20241101
TRUSTED_TYPES = [
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.loss.HalfPoissonLoss",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.link.LogLink",
    "sklearn._loss.link.LogitLink",
]


@dataclass
class TrainResult:
    model: str
    run_id: str
    version: str
    metrics: dict[str, float]
    fairness: dict[str, float]
    decision: gate.GateDecision
    card_markdown: str
    splits: dict[str, str] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return self.decision.promote

    def as_metadata(self) -> dict:
        return {"model": self.model, "run_id": self.run_id, "version": self.version, "promoted": self.promoted,
                "decision": self.decision.summary, "checks": self.decision.checks, "metrics": self.metrics,
                "fairness": self.fairness, "splits": self.splits}


# ---- fitting ------------------------------------------------------------------------------------------------


@dataclass
class Fitted:
    estimator: object
    test_prediction: np.ndarray
    metrics: dict[str, float]
    params: dict[str, object]
    baselines: dict[str, np.ndarray]
    primary: float


def _xy(frame: pd.DataFrame, features: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    return frame[features].astype("float64"), frame["label"].to_numpy()


def _fit_risk(frames: Frames, spec: ModelSpec) -> Fitted:
    X_train, y_train = _xy(frames.train, frames.features)
    X_valid, y_valid = _xy(frames.valid, frames.features)
    X_test, y_test = _xy(frames.test, frames.features)
    for name, y in (("training", y_train), ("validation", y_valid), ("test", y_test)):
        if len(np.unique(y)) < 2:
            raise PlacelinkError(
                f"the {name} period has no {'positive' if y.sum() == 0 else 'negative'} examples of "
                f"{spec.outcome!r}", where=f"ml/models/{spec.name}/model.yml: outcome",
                fix="use more months of data or a more common outcome")
    # a linear model on log counts: on a few thousand households it beat gradient boosting here, and its
    # weights can be read out to an ethics panel. Regularisation is chosen on the validation period.
    def make(c: float):
        return make_pipeline(FunctionTransformer(np.log1p, feature_names_out="one-to-one"), StandardScaler(),
                             LogisticRegression(C=c, max_iter=2000))

    with threadpool_limits(1):  # BLAS/OpenMP threads fight other stages for the two cores
        fits = {c: make(c).fit(X_train, y_train) for c in (0.01, 0.03, 0.1, 0.3, 1.0)}
        valid_auc = {c: roc_auc_score(y_valid, m.predict_proba(X_valid)[:, 1]) for c, m in fits.items()}
        best = max(valid_auc, key=valid_auc.get)
        # calibrate on the validation period (later than training, earlier than test): sigmoid, because a
        # few dozen positives are too few for isotonic regression; a monotone map, so the ranking stays
        model = CalibratedClassifierCV(FrozenEstimator(fits[best]), method="sigmoid").fit(X_valid, y_valid)
    params = {"estimator": "logistic regression on log1p(counts), standardised", "C": best}
    prob = model.predict_proba(X_test)[:, 1]
    # baselines a caseworker might use: the prior-count rule (past presentations), and a stronger one
    # that breaks its many ties by all recent contact with the partners
    outcome_col = f"n_{feature_name(spec.outcome)}_{max(spec.lookbacks_months)}m"
    baseline = X_test[outcome_col].to_numpy()
    contact = baseline * 1000 + X_test[f"events_{max(spec.lookbacks_months)}m"].to_numpy()
    top = spec.top_fraction
    metrics = {
        "auc": roc_auc_score(y_test, prob), "average_precision": average_precision_score(y_test, prob),
        "precision_at_top": plots.precision_at_top(y_test, prob, top), "brier": brier_score_loss(y_test, prob),
        "valid_auc": roc_auc_score(y_valid, model.predict_proba(X_valid)[:, 1]),
        "baseline_auc": roc_auc_score(y_test, baseline),
        "baseline_precision_at_top": plots.precision_at_top(y_test, baseline, top),
        "baseline_contact_auc": roc_auc_score(y_test, contact),
        "baseline_contact_precision_at_top": plots.precision_at_top(y_test, contact, top),
        "test_base_rate": float(np.mean(y_test)), "mean_predicted_risk": float(np.mean(prob)),
    }
    metrics["auc_gain_over_baseline"] = metrics["auc"] - metrics["baseline_auc"]
    metrics["lift_at_top"] = metrics["precision_at_top"] / max(metrics["test_base_rate"], 1e-9)
    return Fitted(model, prob, metrics, {**params, "calibration": "sigmoid on validation period",
                                         "top_fraction": top}, {"prior-count rule": baseline, "prior count + contact": contact},
                  metrics["auc"])


def _fit_demand(frames: Frames, spec: ModelSpec) -> Fitted:
    X_train, y_train = _xy(frames.train, frames.features)
    X_valid, y_valid = _xy(frames.valid, frames.features)
    X_test, y_test = _xy(frames.test, frames.features)
    own = ["target_last_month", "target_last_quarter", "target_last_12m", "target_same_quarter_last_year"]
    every = [c for c in frames.features if c not in ("quarter_start_month", "imd_decile")]

    def make(columns: list[str], alpha: float):
        # log link on log counts = a multiplicative blend of last quarter, last year and the same quarter
        # a year ago (and, with `every`, other partners' recent counts)
        return make_pipeline(
            ColumnTransformer([("log", FunctionTransformer(np.log1p, feature_names_out="one-to-one"), columns)]),
            StandardScaler(), PoissonRegressor(alpha=alpha, max_iter=3000))

    # a county has a few dozen to a thousand LSOAs: the feature set and the penalty are chosen on the
    # validation period, so a small county gets the sparse model and a large one can use every partner
    candidates = {(name, alpha): (cols, alpha) for name, cols in (("own lags", own), ("all indicators", every))
                  for alpha in (0.01, 1.0, 10.0)}
    with threadpool_limits(1):
        valid_mae = {key: mean_absolute_error(y_valid, make(*cfg).fit(X_train, y_train).predict(X_valid))
                     for key, cfg in candidates.items()}
        best = min(valid_mae, key=valid_mae.get)
        # validation labels end before the test cutoff, so refitting on train + validation leaks nothing
        model = make(*candidates[best]).fit(pd.concat([X_train, X_valid]), np.concatenate([y_train, y_valid]))
    params = {"estimator": "Poisson GLM (log link) on log1p(lagged counts), standardised",
              "features": best[0], "alpha": best[1]}
    valid_mae = valid_mae[best]
    forecast = model.predict(X_test)
    last_value = X_test["target_last_quarter"].to_numpy()
    seasonal = X_test["target_same_quarter_last_year"].to_numpy()
    rmse = lambda y, p: float(np.sqrt(np.mean((y - p) ** 2)))  # noqa: E731
    metrics = {"mae": mean_absolute_error(y_test, forecast), "rmse": rmse(y_test, forecast),
               "valid_mae": valid_mae,
               "baseline_last_value_mae": mean_absolute_error(y_test, last_value),
               "baseline_last_value_rmse": rmse(y_test, last_value),
               "baseline_seasonal_naive_mae": mean_absolute_error(y_test, seasonal),
               "baseline_seasonal_naive_rmse": rmse(y_test, seasonal),
               "test_mean_actual": float(np.mean(y_test))}
    best_baseline = min(metrics["baseline_last_value_mae"], metrics["baseline_seasonal_naive_mae"])
    metrics["mae_gain_over_best_baseline"] = best_baseline - metrics["mae"]
    return Fitted(model, forecast, metrics, params, {"last value": last_value, "seasonal naive": seasonal},
                  metrics["mae"])


def predict_with(estimator, spec: ModelSpec, X: pd.DataFrame) -> np.ndarray:
    """Predictions of any version of this model on X (columns aligned to what that version was fit on)."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        X = X.reindex(columns=list(names), fill_value=0.0)
    if spec.kind == "risk":
        return estimator.predict_proba(X)[:, 1]
    return np.clip(estimator.predict(X), 0, None)


def _primary_metric(spec: ModelSpec, y_true: np.ndarray, prediction: np.ndarray) -> float:
    if spec.primary_metric == "auc":
        return float(roc_auc_score(y_true, prediction))
    if spec.primary_metric == "mae":
        return float(mean_absolute_error(y_true, prediction))
    raise PlacelinkError(f"unknown primary metric {spec.primary_metric!r}",
                         where=f"ml/models/{spec.name}/model.yml: primary_metric", fix="use auc or mae")


def _champion_metric(client, spec: ModelSpec, frames: Frames) -> tuple[float | None, str | None]:
    """The champion re-scored on this run's held-out period, so both are judged on the same data."""
    champion = registry.version_by_alias(client, spec.registered_model, registry.CHAMPION)
    if champion is None:
        return None, None
    estimator = mlflow.sklearn.load_model(f"models:/{spec.registered_model}/{champion.version}")
    X_test, y_test = _xy(frames.test, frames.features)
    return _primary_metric(spec, y_test, predict_with(estimator, spec, X_test)), champion.version


def _fairness(spec: ModelSpec, record: LoadedRecord, frames: Frames, prediction: np.ndarray) -> FairnessReport:
    cfg = record.raw.get("fairness") or {}
    groups = list(cfg.get("groups") or (["sex", "ethnicity_group", "deprivation_quintile", "age_band"]
                                         if spec.kind == "risk" else ["deprivation_quintile"]))
    thresholds = dict(cfg.get("thresholds") or {})
    if spec.kind == "risk":
        return risk_fairness(frames.test, prediction, "label", groups, top_fraction=spec.top_fraction,
                             min_group_size=int(cfg.get("min_group_size", 30)),
                             min_group_positives=int(cfg.get("min_group_positives", 5)), thresholds=thresholds)
    return demand_fairness(frames.test, prediction, "label", groups,
                           min_group_size=int(cfg.get("min_group_size", 5)), thresholds=thresholds)


def _indicator_feed(con) -> dict[str, str]:
    """feature-name form of each indicator -> its '<partner>.<feed>' (for the what-would-happen feed scenarios)."""
    from ml.features import feature_name, indicator_feeds

    try:
        indicators = [r[0] for r in con.execute("select distinct indicator from intermediate."
                                                "int_events_joined_to_places where indicator is not null").fetchall()]
    except Exception:  # noqa: BLE001 - a warehouse without the events table: no feed scenarios
        return {}
    return {feature_name(i): f for i, f in indicator_feeds(con, indicators).items() if f}


def _what_would_happen(spec: ModelSpec, record: LoadedRecord, frames: Frames, fitted: Fitted,
                       indicator_feed: dict[str, str], projects_dir) -> dict[str, pd.DataFrame]:
    """ml/whatif.py for a risk model at its project's capacity and threshold (empty for demand models)."""
    if spec.kind != "risk" or frames.test.empty:
        return {}
    from ml import whatif
    from orchestration.lib.governance.projects import find_project

    project = find_project(record.project, projects_dir).record if record.project else None
    if project is None:
        return {}
    groups = list((record.raw.get("fairness") or {}).get("groups") or [])
    return whatif.what_would_happen(
        frames.test, fitted.test_prediction, capacity=project.action.capacity_per_month,
        threshold=project.action.threshold, groups=groups, features=frames.features, indicator_feed=indicator_feed,
        predict=lambda X: predict_with(fitted.estimator, spec, X.astype("float64")))


# ---- logging ------------------------------------------------------------------------------------------------


def _log_inputs(frames: Frames, warehouse: Path) -> dict[str, str]:
    digests = {}
    warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
    for name, data in frames.inputs.items():
        digest = frame_digest(data)
        digests[name] = digest
        dataset = mlflow.data.from_pandas(data, source=f"{warehouse}::{name}", name=name, digest=digest)
        mlflow.log_input(dataset, context="source", tags={"dbt_model": name, "rows": str(len(data))})
    X_train, _ = _xy(frames.train, frames.features)
    mlflow.log_input(mlflow.data.from_pandas(frames.train[[*frames.features, "label"]], name="training_examples",
                                             targets="label", digest=frame_digest(X_train)), context="training")
    return digests


def _log_plots(spec: ModelSpec, fitted: Fitted, frames: Frames) -> None:
    X_test, y_test = _xy(frames.test, frames.features)
    scoring = "roc_auc" if spec.kind == "risk" else "neg_mean_absolute_error"
    with threadpool_limits(1):
        imp = permutation_importance(fitted.estimator, X_test, y_test, scoring=scoring, n_repeats=3,
                                     random_state=SEED, n_jobs=1)
    importance = pd.Series(imp.importances_mean, index=frames.features)
    mlflow.log_text(importance.sort_values(ascending=False).to_csv(header=["importance"]),
                    "plots/feature_importance.csv")
    figures = {"plots/feature_importance.png": plots.importance_plot(importance, spec.name)}
    if spec.kind == "risk":
        figures["plots/calibration.png"] = plots.calibration_plot(y_test, fitted.test_prediction, spec.name)
        figures["plots/lift_precision_at_k.png"] = plots.lift_plot(
            y_test, {"model": fitted.test_prediction, **fitted.baselines}, spec.name)
    else:
        figures["plots/forecast_vs_actual.png"] = plots.forecast_plot(
            y_test, {"model": fitted.test_prediction, **fitted.baselines}, spec.name)
    for path, fig in figures.items():
        mlflow.log_figure(fig, path)
        plots.close(fig)


def _log_model(spec: ModelSpec, fitted: Fitted, frames: Frames):
    X_test, _ = _xy(frames.test, frames.features)
    example = X_test.head(5)
    output = predict_with(fitted.estimator, spec, example)
    return mlflow.sklearn.log_model(
        fitted.estimator, name="model", registered_model_name=spec.registered_model,
        signature=infer_signature(example, output), input_example=example,
        # explicit requirements: MLflow's inference re-imports the model in a subprocess, which is slow
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"mlflow=={mlflow.__version__}"],
        pyfunc_predict_fn="predict_proba" if spec.kind == "risk" else "predict",
        await_registration_for=0,
        # MLflow stores sklearn models with skops, which only loads types named as trusted: these are the
        # sklearn internals of the calibrated gradient boosting models we train ourselves
        skops_trusted_types=TRUSTED_TYPES,
    )


# ---- the stage ------------------------------------------------------------------------------------------------


def train_model(model: str, *, settings: Settings | None = None, ethics_path: str | Path | None = None,
                feeds_dir: str | Path | None = None, projects_dir: str | Path | None = None) -> TrainResult:
    """Train, register as challenger, run the ethics gate and promote or refuse. See the module docstring.

    Raises:
        PlacelinkError: the record names no purpose/feeds, a feed's agreement forbids the purpose (nothing is
            trained or registered), or the warehouse lacks the marts.
    """
    settings = settings or get_settings()
    spec = load_spec(model)
    record = load_record(ethics_path or record_path(model))
    require_permitted(record, feeds_dir)  # refuses before any data is read
    # and only for an approved project whose purpose the feeds allow (orchestration/projects/<id>.yml)
    require_project(record, stage="training", feeds_dir=feeds_dir, projects_dir=projects_dir)

    con = connect_read_only(settings.warehouse_db)
    try:
        require_history(con, spec, settings.warehouse_db)
        frames = build_frames(con, spec, record.feeds, settings.warehouse_db)
        indicator_feed = _indicator_feed(con) if spec.kind == "risk" else {}
    finally:
        con.close()
    fitted = _fit_risk(frames, spec) if spec.kind == "risk" else _fit_demand(frames, spec)
    fairness = _fairness(spec, record, frames, fitted.test_prediction)

    client = registry.configure(settings)
    experiment = registry.experiment_id(client, model, settings)
    champion_metric, champion_version = _champion_metric(client, spec, frames)
    splits = frames.splits.describe()
    with mlflow.start_run(experiment_id=experiment,
                          run_name=f"{model}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}") as run:
        mlflow.set_tags({"placelink.model": model, "placelink.kind": spec.kind,
                         "placelink.purpose": record.purpose or "", "placelink.env": settings.env})
        mlflow.log_params({"outcome": spec.outcome, "unit": spec.unit, "horizon_months": spec.horizon_months,
                           "lookbacks_months": list(spec.lookbacks_months), "n_features": len(frames.features),
                           "n_train": len(frames.train), "n_valid": len(frames.valid), "n_test": len(frames.test),
                           "feeds": ",".join(record.feeds), "purpose": record.purpose, **splits,
                           **{f"model.{k}": v for k, v in fitted.params.items()}})
        if frames.dropped_indicators:
            mlflow.log_dict(frames.dropped_indicators, "inputs/dropped_indicators.json")
        digests = _log_inputs(frames, settings.warehouse_db)
        mlflow.log_metrics({k: float(v) for k, v in fitted.metrics.items()})
        mlflow.log_metrics({f"fairness.{k}": v for k, v in fairness.summary.items() if np.isfinite(v)})
        mlflow.log_table(fairness.table, "fairness/fairness_by_group.json")
        mlflow.log_text(fairness.table.to_csv(index=False), "fairness/fairness_by_group.csv")
        _log_plots(spec, fitted, frames)
        info = _log_model(spec, fitted, frames)
        version = str(info.registered_model_version)
        registry.set_alias(client, spec.registered_model, registry.CHALLENGER, version)

        # the gate re-reads the agreements: one may have changed while the model trained
        agreements = check_feed_agreements(record.feeds, record.purpose or "", feeds_dir)
        project = project_permission(record, stage="promotion", feeds_dir=feeds_dir, projects_dir=projects_dir)
        decision = gate.evaluate(record, agreements, fairness, fitted.primary, champion_metric,
                                 higher_is_better=spec.higher_is_better, metric=spec.primary_metric,
                                 project=project)
        if champion_metric is not None:
            mlflow.log_metric(f"champion_{spec.primary_metric}", champion_metric)
        mlflow.log_metrics({f"gate.{k}": float(v) for k, v in decision.checks.items()})
        mlflow.set_tags({"gate.promoted": str(decision.promote), "gate.reasons": decision.summary[:4000],
                         "gate.compared_with_version": champion_version or ""})
        whatif = _what_would_happen(spec, record, frames, fitted, indicator_feed, projects_dir)
        for name, table in whatif.items():
            mlflow.log_text(table.to_csv(index=False), f"what_would_happen/{name}.csv")
        markdown, html_text = card.render(model=model, version=version, run_id=run.info.run_id, record=record,
                                          metrics=fitted.metrics, fairness=fairness.table, decision=decision,
                                          splits=splits, what_would_happen=whatif)
        with tempfile.TemporaryDirectory() as tmp:
            card.write(Path(tmp), markdown, html_text)
            mlflow.log_artifacts(tmp, "model_card")
        mlflow.log_dict({"decision": decision.summary, "checks": decision.checks, "inputs": digests},
                        "gate/decision.json")
    registry.tag_version(client, spec.registered_model, version, {
        "gate.promoted": decision.promote, "gate.decision": decision.summary[:4000],
        "inputs": json.dumps(digests), **{f"gate.{k}": v for k, v in decision.checks.items()},
        spec.primary_metric: round(fitted.primary, 6)})
    if decision.promote:
        registry.set_alias(client, spec.registered_model, registry.CHAMPION, version)
    return TrainResult(model, run.info.run_id, version, fitted.metrics, fairness.summary, decision, markdown,
                       splits)


def train_all(models: list[str] | None = None, **kwargs) -> list[TrainResult]:
    from ml.features import list_models

    return [train_model(m, **kwargs) for m in (models or list_models())]
