"""Fixtures for the ML stage: a small marts warehouse with a latent-need signal, feed contracts, and an
already-migrated MLflow SQLite store (creating one runs ~100 Alembic migrations, ~20 s: done once, copied)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestration.lib.config import get_settings
from tests.support.mart_warehouse import build_mart_warehouse, write_feed_contracts


@pytest.fixture(scope="session")
def ml_source(tmp_path_factory) -> Path:
    """A folder holding the fixture warehouse, fixture contracts and an empty, migrated MLflow store."""
    root = tmp_path_factory.mktemp("ml_source")
    build_mart_warehouse(root / "warehouse.duckdb")
    write_feed_contracts(root / "feeds")
    from ml import registry

    settings = get_settings(home=root / "home")
    client = registry.configure(settings)
    client.search_experiments()  # creates and migrates the SQLite store
    shutil.copy(settings.mlflow_dir / "mlflow.db", root / "mlflow.db")
    return root


def make_home(source: Path, home: Path):
    """A fresh placelink home with the fixture warehouse and an empty MLflow store."""
    settings = get_settings(home=home).ensure()
    shutil.copy(source / "warehouse.duckdb", settings.warehouse_db)
    shutil.copy(source / "mlflow.db", settings.mlflow_dir / "mlflow.db")
    return settings


@pytest.fixture
def fresh_home(ml_source, tmp_path):
    """Function-scoped home (matches the autouse PLACELINK_HOME of tests/conftest.py)."""
    return make_home(ml_source, tmp_path / "home")


@pytest.fixture(scope="session")
def trained(ml_source, tmp_path_factory):
    """Both models trained once, in the good case, in a shared home: (settings, {model: TrainResult})."""
    from ml.train import train_model

    settings = make_home(ml_source, tmp_path_factory.mktemp("trained") / "home")
    results = {m: train_model(m, settings=settings, feeds_dir=ml_source / "feeds")
               for m in ("household_risk", "lsoa_demand")}
    return settings, results
