"""MLflow tracking and the model registry: where runs go, and the ``challenger`` / ``champion`` aliases.

Tracking is SQLite under ``PLACELINK_HOME`` locally (``Settings.mlflow_tracking_uri``; Postgres in
production) and every experiment's artifact location is set explicitly under ``Settings.mlflow_artifacts``
so nothing lands in ``./mlruns``.
"""

from __future__ import annotations

import contextlib
import logging
import os

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from orchestration.lib.config import Settings, get_settings

CHALLENGER = "challenger"
CHAMPION = "champion"
EXPERIMENT_PREFIX = "placelink"


def configure(settings: Settings | None = None) -> MlflowClient:
    """Point MLflow (tracking and registry) at this home and return a client."""
    settings = settings or get_settings()
    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    settings.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    uri = settings.mlflow_tracking_uri
    # mlflow.set_*_uri also export MLFLOW_*_URI to the environment, which Settings would then read back
    # as an override: a second home in the same process (tests, Dagster) would write to the first one's
    # store. Keep the environment as it was.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    # MLflow copies uv.lock and runs `uv export` beside every model it logs (seconds per model); the
    # repository's uv.lock already pins the environment the models run in
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    # MLflow draws a tqdm bar for every artifact it reads (a fairness table of a few KB from a local folder): noise
    # in the CLI, the demo's output and Dagster's compute logs. MLflow reads this switch only from the environment.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # the SQLite store logs every Alembic migration at INFO on first use; keep the CLI readable
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client: MlflowClient, model: str, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    name = f"{EXPERIMENT_PREFIX}/{model}"
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (settings.mlflow_artifacts / model).as_uri()
    return client.create_experiment(name, artifact_location=location,
                                    tags={"placelink.model": model, "placelink.env": settings.env})


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    with contextlib.suppress(MlflowException):
        return client.get_model_version_by_alias(name, alias)
    return None


def set_alias(client: MlflowClient, name: str, alias: str, version: str | int) -> None:
    client.set_registered_model_alias(name, alias, str(version))


def tag_version(client: MlflowClient, name: str, version: str | int, tags: dict[str, object]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def model_uri(name: str, alias: str = CHAMPION) -> str:
    return f"models:/{name}@{alias}"
