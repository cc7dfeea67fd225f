"""The ML assets run in process with dg.materialize: training records the gate's decision as metadata and the
scores asset writes the champion's predictions with its version."""

from __future__ import annotations

import logging

import dagster as dg
import duckdb

from orchestration.defs.ml.assets import ML_ASSETS
from orchestration.defs.resources import settings_resource


def test_train_then_score_lsoa_demand_in_process(fresh_home, ml_source):
    selected = [a for a in ML_ASSETS if a.key.path[-1].startswith("lsoa_demand")]
    config = {"feeds_dir": str(ml_source / "feeds")}
    result = dg.materialize(
        selected, resources={"placelink_settings": settings_resource(fresh_home)},
        run_config={"ops": {a.node_def.name: {"config": config} for a in selected}},
    )
    assert result.success
    training = result.asset_materializations_for_node(selected[0].node_def.name)[0].metadata
    assert training["promoted"].value is True and training["gate/beats_champion"].value is True
    assert training["metric/mae"].value < training["metric/baseline_last_value_mae"].value
    scores = result.asset_materializations_for_node(selected[1].node_def.name)[0].metadata
    version = scores["model_version"].value
    con = duckdb.connect(str(fresh_home.warehouse_db), read_only=True)
    try:
        versions = con.execute("select distinct model_version from ml.lsoa_demand_forecasts").fetchall()
    finally:
        con.close()
    assert versions == [(version,)] and version == training["model_version"].value


def test_a_forbidden_feed_fails_the_training_asset(fresh_home, ml_source, tmp_path):
    from tests.support.mart_warehouse import write_feed_contracts

    feeds = write_feed_contracts(tmp_path / "feeds", overrides={"police.street_crimes": ["place_indicators"]})
    training = next(a for a in ML_ASSETS if a.key.path[-1] == "lsoa_demand_training")
    result = dg.materialize(
        [training], resources={"placelink_settings": settings_resource(fresh_home)},
        run_config={"ops": {training.node_def.name: {"config": {"feeds_dir": str(feeds)}}}},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "police.street_crimes" in str(failure.event_specific_data.error)


def test_scores_without_a_champion_are_not_materialised_and_the_run_goes_on(fresh_home, ml_source):
    scores = next(a for a in ML_ASSETS if a.key.path[-1] == "lsoa_demand_forecasts")
    result = dg.materialize(
        [scores], resources={"placelink_settings": settings_resource(fresh_home)},
        run_config={"ops": {scores.node_def.name: {"config": {"feeds_dir": str(ml_source / "feeds")}}}},
    )
    assert result.success
    assert result.asset_materializations_for_node(scores.node_def.name) == []
    logs = [e.message for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert logs == []


def test_too_little_history_skips_training_and_scoring_with_a_warning_not_a_failed_run(tmp_path, ml_source):
    """A county evaluated on 12 monthly drops (county scale's default): the models' time-based splits need more,
    so both ML steps are left out with a warning saying how much is needed, and the refresh still succeeds."""
    import shutil

    from orchestration.lib.config import get_settings
    from tests.support.mart_warehouse import build_mart_warehouse

    settings = get_settings(home=tmp_path / "home").ensure()
    build_mart_warehouse(settings.warehouse_db, months=12)
    shutil.copy(ml_source / "mlflow.db", settings.mlflow_dir / "mlflow.db")
    selected = [a for a in ML_ASSETS if a.key.path[-1].startswith("lsoa_demand")]
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        selected, resources={"placelink_settings": settings_resource(settings)},
        run_config={"ops": {a.node_def.name: {"config": {"feeds_dir": str(ml_source / "feeds")}} for a in selected}},
        instance=instance,
    )
    assert result.success
    assert [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"] == []
    warnings = [e.user_message for e in instance.all_logs(result.run_id)
                if e.level == logging.WARNING and "not trained" in e.user_message]
    assert len(warnings) == 1 and "not enough history" in warnings[0] and "need" in warnings[0], warnings
    skipped = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"}
    assert skipped == {selected[1].node_def.name}
