"""Predictions from the ``champion`` alias, written back to the warehouse with the model version on every row.

``score_model("household_risk")`` -> ``ml.household_risk_scores``; ``score_model("lsoa_demand")`` ->
``ml.lsoa_demand_forecasts``. Features are cut at the first month after the data, i.e. they look forward.
A re-score of the same month replaces that month's rows (idempotent); earlier months stay for comparison
with what happened. The warehouse is read read-only and written through one short-lived connection.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import mlflow.sklearn
import numpy as np
import pandas as pd

from ml import registry
from ml.ethics import load_record, record_path, require_permitted, require_project
from ml.features import build_frames, connect_read_only, load_spec, month_start
from ml.train import predict_with
from orchestration.lib.config import Settings, get_settings
from orchestration.lib.errors import PlacelinkError


@dataclass
class ScoreResult:
    model: str
    version: str
    table: str
    rows: int
    as_of: dt.date


def _predictions(spec, frames, scores: np.ndarray, version: str) -> pd.DataFrame:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    frame = frames.scoring
    cutoff = month_start(frames.splits.score)
    if spec.kind == "risk":
        rank = pd.Series(scores).rank(ascending=False, method="first").astype("int64").to_numpy()
        out = pd.DataFrame({
            "household_key": frame["household_key"].to_numpy(), "lsoa_code": frame["lsoa_code"].to_numpy(),
            "score_month": cutoff, "horizon_months": spec.horizon_months, "outcome": spec.outcome,
            "risk_score": scores.astype(float), "risk_rank": rank,
            "in_top_fraction": rank <= max(1, int(round(len(scores) * spec.top_fraction))),
        })
    else:
        last = frames.splits.score + spec.horizon_months - 1
        out = pd.DataFrame({
            "lsoa_code": frame["lsoa_code"].to_numpy(), "score_month": cutoff,
            "quarter_start": cutoff, "quarter_end": month_start(last), "service": spec.outcome,
            "predicted_events": scores.astype(float),
            "last_quarter_events": frame["target_last_quarter"].to_numpy(),
        })
    out["model_name"] = spec.registered_model
    out["model_version"] = str(version)
    out["scored_at"] = now
    return out


def write_predictions(warehouse, table: str, frame: pd.DataFrame) -> int:
    """Replace this model's rows for the scored month in ``table`` (``schema.name``)."""
    schema = table.split(".", 1)[0]
    con = duckdb.connect(str(warehouse))
    try:
        con.register("predictions", frame)
        con.execute(f"create schema if not exists {schema}")
        con.execute(f"create table if not exists {table} as select * from predictions where false")
        con.execute(f"delete from {table} where model_name = ? and score_month = ?",
                    [frame["model_name"].iloc[0], frame["score_month"].iloc[0]])
        con.execute(f"insert into {table} by name select * from predictions")
    finally:
        con.close()
    return len(frame)


class NoChampionError(PlacelinkError):
    """The model has no version behind the alias yet (never trained, or every version refused by the gate)."""


def require_champion(model: str, settings: Settings, *, client=None, alias: str = registry.CHAMPION):
    """The model's version behind ``alias``; :class:`NoChampionError` when there is none (never trained, or every
    version refused by the ethics gate)."""
    spec = load_spec(model)
    client = client or registry.configure(settings)
    champion = registry.version_by_alias(client, spec.registered_model, alias)
    if champion is None:
        raise NoChampionError(
            f"model {spec.registered_model!r} has no {alias!r} version, so there is nothing to score with",
            where=settings.mlflow_tracking_uri,
            fix=f"run `placelink train --model {model}`; if the gate refused it, its model card says why")
    return champion


def score_model(model: str, *, settings: Settings | None = None, feeds_dir=None, alias: str = registry.CHAMPION,
                projects_dir=None) -> ScoreResult:
    settings = settings or get_settings()
    spec = load_spec(model)
    record = load_record(record_path(model))
    # scoring is processing for the same purpose: an agreement withdrawn since training stops it too, and so does
    # a project that is no longer approved or is past its review date (checked before MLflow is even opened)
    require_permitted(record, feeds_dir)
    require_project(record, stage="scoring", feeds_dir=feeds_dir, projects_dir=projects_dir)
    client = registry.configure(settings)
    champion = require_champion(model, settings, client=client, alias=alias)
    run = client.get_run(champion.run_id)
    feeds = [f for f in (run.data.params.get("feeds") or "").split(",") if f] or record.feeds
    estimator = mlflow.sklearn.load_model(f"models:/{spec.registered_model}/{champion.version}")
    con = connect_read_only(settings.warehouse_db)
    try:
        frames = build_frames(con, spec, [f for f in feeds if f in record.feeds], settings.warehouse_db,
                              scoring_only=True)
    finally:
        con.close()
    scores = predict_with(estimator, spec, frames.scoring[frames.features].astype("float64"))
    predictions = _predictions(spec, frames, scores, champion.version)
    rows = write_predictions(settings.warehouse_db, spec.predictions_table, predictions)
    return ScoreResult(model, str(champion.version), spec.predictions_table, rows, month_start(frames.splits.score))


def score_all(models: list[str] | None = None, **kwargs) -> list[ScoreResult]:
    from ml.features import list_models

    return [score_model(m, **kwargs) for m in (models or list_models())]
