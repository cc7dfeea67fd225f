"""``ml/<model>_training`` (train, register challenger, gate, promote or refuse) and the prediction tables
``ml/household_risk_scores`` / ``ml/lsoa_demand_forecasts`` written from each model's champion.

Training is not part of the nightly refresh (asset tag ``placelink/nightly: skip``): it runs weekly
(``ml_weekly_training_schedule``), on ``placelink refresh --full`` and on ``placelink train``; the nightly
refresh re-scores with each model's current champion.

A refusal by the gate is a decision, not a failure: the training asset succeeds and says why in its metadata
(the model card is in MLflow). A feed agreement that forbids the purpose fails the asset: nothing is trained.
"""


import dagster as dg

from orchestration.defs.guard import no_leaks
from orchestration.defs.ops.planning import NIGHTLY_TAG
from orchestration.defs.resources import WAREHOUSE_POOL, PlacelinkSettings
from orchestration.lib.errors import PlacelinkError

GROUP = "ml"
OWNERS = ["team:data-science"]


def _models() -> dict[str, tuple[list[str], str]]:
    """model -> (dbt models it reads as asset keys, predictions asset name), from each ``ml/models/<model>/model.yml``
    (``marts`` and ``predictions_table``): the one place that says which tables a model reads. The dbt exposures
    repeat it for the dbt docs (dbt cannot read these files); tests/ml/test_model_sources.py fails if they drift."""
    from ml.features import list_models, load_spec

    out = {}
    for model in list_models():
        spec = load_spec(model)
        out[model] = ([t.replace(".", "/") for t in spec.marts], spec.predictions_table.split(".", 1)[1])
    return out


#: model -> (dbt models it reads, predictions asset name)
MODELS = _models()


class MLConfig(dg.Config):
    feeds_dir: str | None = None  # feed contracts folder; default orchestration/feeds
    projects_dir: str | None = None  # project register; default orchestration/projects (or PLACELINK_PROJECTS_DIR)


def _training_asset(model: str, deps: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["ml", f"{model}_training"]), group_name=GROUP, owners=OWNERS, kinds={"mlflow", "sklearn"},
        deps=[dg.AssetKey(d.split("/")) for d in deps],
        # not nightly: the nightly refresh scores with the champion; training runs weekly
        # (ml_weekly_training_schedule), on `placelink refresh --full` and on `placelink train`
        tags={NIGHTLY_TAG: "skip"},
        # reads the warehouse; DuckDB's file lock shuts readers in other processes out while a writer is
        # open, so it queues with the writers
        pool=WAREHOUSE_POOL, output_required=False,
        description=f"Train `{model}` on the marts, log it to MLflow, register a new version as `challenger`, "
                    "run the ethics gate (record complete, agreements permit the purpose, fairness thresholds, "
                    "beats the champion on the held-out period) and promote it to `champion` only if it passes. "
                    "Too few months of history: not materialised, with a warning (the scores step is skipped).",
    )
    @no_leaks(f"training of {model}")
    def training(context: dg.AssetExecutionContext, config: MLConfig, placelink_settings: PlacelinkSettings):
        from ml.features import NotEnoughHistoryError, connect_read_only, load_spec, require_history

        settings = placelink_settings.get()
        try:
            # before importing the trainer (scikit-learn, MLflow, matplotlib: seconds): a young county has too
            # little history, and this asset runs every night until it has been materialised once
            with connect_read_only(settings.warehouse_db) as con:
                require_history(con, load_spec(model), settings.warehouse_db)
            from ml.train import train_model

            result = train_model(model, settings=settings, feeds_dir=config.feeds_dir,
                                 projects_dir=config.projects_dir)
        except NotEnoughHistoryError as exc:
            # e.g. a county evaluated on 12 monthly drops: the marts and published tables are still worth
            # having, so the full refresh goes on without this model rather than failing at its last step
            context.log.warning(f"{model} not trained: {exc}")
            return
        except PlacelinkError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        context.log.info(result.decision.summary)
        metadata = {
            "model_version": dg.MetadataValue.text(result.version),
            "promoted": dg.MetadataValue.bool(result.promoted),
            "decision": dg.MetadataValue.text(result.decision.summary),
            "mlflow_run_id": dg.MetadataValue.text(result.run_id),
            "model_card": dg.MetadataValue.md(result.card_markdown),
            **{f"gate/{k}": dg.MetadataValue.bool(v) for k, v in result.decision.checks.items()},
            **{f"metric/{k}": dg.MetadataValue.float(float(v)) for k, v in result.metrics.items()},
            **{f"fairness/{k}": dg.MetadataValue.float(float(v)) for k, v in result.fairness.items()},
        }
        yield dg.MaterializeResult(metadata=metadata)

    return training


def _scores_asset(model: str, deps: list[str], table: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["ml", table]), group_name=GROUP, owners=OWNERS, kinds={"duckdb", "mlflow"},
        # the marts it reads too, not only its training: the nightly refresh scores without retraining, and must
        # score after the marts are rebuilt
        deps=[dg.AssetKey(["ml", f"{model}_training"]), *(dg.AssetKey(d.split("/")) for d in deps)],
        pool=WAREHOUSE_POOL, output_required=False,
        description=f"Predictions of `{model}` from its `champion` alias, written to warehouse table ml.{table} "
                    "with model_name and model_version on every row.",
    )
    @no_leaks(f"scoring with {model}")
    def scores(context: dg.AssetExecutionContext, config: MLConfig, placelink_settings: PlacelinkSettings):
        from ml.score import NoChampionError, score_model

        try:
            result = score_model(model, settings=placelink_settings.get(), feeds_dir=config.feeds_dir,
                                 projects_dir=config.projects_dir)
        except NoChampionError as exc:
            # the ethics gate has not promoted any version: no predictions, and the rest of the nightly run
            # goes on (the training asset's metadata and model card say why it was refused)
            context.log.warning(f"not materialised: {exc}")
            return
        except PlacelinkError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        yield dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(result.rows),
            "model_version": dg.MetadataValue.text(result.version),
            "as_of": dg.MetadataValue.text(str(result.as_of)), "table": dg.MetadataValue.text(result.table)})

    return scores


ML_ASSETS = [a for model, (deps, table) in MODELS.items()
             for a in (_training_asset(model, deps), _scores_asset(model, deps, table))]
