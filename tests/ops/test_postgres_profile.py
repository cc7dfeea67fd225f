"""The production profile on a real Postgres: Dagster storage survives a restart; MLflow tracks to Postgres."""

from __future__ import annotations

import shutil
import uuid

import dagster as dg
import pytest

from orchestration.lib.ops.profiles import INFRA, dagster_yaml_template
from orchestration.runner import refresh
from tests.ops.conftest import write_drop

pytestmark = pytest.mark.postgres


@pytest.fixture
def production_instance_home(postgres_server, settings, monkeypatch, tmp_path):
    db = f"dagster_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(db)
    for key, value in {"DAGSTER_PG_HOST": postgres_server.host, "DAGSTER_PG_PORT": str(postgres_server.port),
                       "DAGSTER_PG_DB": db, "DAGSTER_PG_USERNAME": postgres_server.user,
                       "DAGSTER_PG_PASSWORD": ""}.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(dagster_yaml_template("production"), home / "dagster.yaml")
    return home


def test_full_materialisation_on_postgres_and_history_after_restart(production_instance_home, fixture_defs):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    instance = dg.DagsterInstance.from_config(str(production_instance_home))
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)

    write_drop("police", "street_crimes", "2025-01-04", ["c1", "c2"])
    write_drop("nhs", "ae_attendances", "2025-02-06", ["a1"])
    result = refresh(full=True, defs=fixture_defs, instance=instance)
    assert [r.label for r in result.runs] == ["month 2025-01-01", "month 2025-02-01", "downstream"]
    run_ids = {r.run_id for r in result.runs}
    instance.dispose()

    # "restart": a brand-new instance from the same dagster.yaml sees the whole history
    again = dg.DagsterInstance.from_config(str(production_instance_home))
    runs = again.get_runs()
    assert {r.run_id for r in runs} == run_ids
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert again.get_materialized_partitions(dg.AssetKey(["raw", "police__street_crimes"])) == {"2025-01-01"}
    assert again.get_latest_materialization_event(dg.AssetKey(["marts", "lsoa_monthly_indicators"])) is not None
    assert again.event_log_storage.get_concurrency_info("identifiable_writer").slot_count == 1
    again.dispose()


def test_mlflow_backend_on_postgres(postgres_server, tmp_path):
    import mlflow

    postgres_server.run_sql_file(INFRA / "postgres" / "init.sql")
    uri = postgres_server.url("mlflow", user="mlflow")  # the role init.sql creates owns the database
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("ops-test", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "auc", 0.81)
    # a fresh client (a restarted server) reads it back from Postgres
    assert mlflow.MlflowClient(tracking_uri=uri).get_run(run.info.run_id).data.metrics == {"auc": 0.81}
