"""The real training on a small warehouse: runs recorded, versions registered, the gate promotes or refuses."""

from __future__ import annotations

import duckdb
import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from ml import registry
from ml.ethics import record_path
from ml.score import score_model
from ml.train import train_model
from orchestration.lib.errors import PlacelinkError


def _client(settings) -> MlflowClient:
    return registry.configure(settings)


def _record(tmp_path, model: str, edit) -> str:
    raw = yaml.safe_load(record_path(model).read_text())
    edit(raw)
    path = tmp_path / f"{model}_ethics.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def test_risk_model_beats_its_baseline_on_the_test_period(trained):
    _, results = trained
    m = results["household_risk"].metrics
    assert m["auc"] > m["baseline_auc"] + 0.05, m  # the prior-count rule
    assert m["auc"] > m["baseline_contact_auc"], m  # prior count, ties broken by all recent contact
    assert m["precision_at_top"] >= m["baseline_precision_at_top"], m
    assert m["precision_at_top"] > 2 * m["test_base_rate"], "top 5 % should be far richer than the base rate"
    assert 0.5 * m["test_base_rate"] < m["mean_predicted_risk"] < 2 * m["test_base_rate"], "calibrated"


def test_demand_forecast_beats_last_value_and_seasonal_naive(trained):
    _, results = trained
    m = results["lsoa_demand"].metrics
    assert m["mae"] < m["baseline_last_value_mae"] and m["mae"] < m["baseline_seasonal_naive_mae"], m


def test_runs_record_params_metrics_inputs_plots_fairness_and_card(trained):
    settings, results = trained
    client = _client(settings)
    for model, result in results.items():
        run = client.get_run(result.run_id)
        assert run.data.params["purpose"] in {"risk_modelling", "service_planning"}
        assert "test_cutoff" in run.data.params and "feeds" in run.data.params
        assert any(k.startswith("fairness.deprivation_quintile") for k in run.data.metrics)
        inputs = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
        assert any(name.startswith("marts.") for name in inputs), inputs
        assert all(len(digest) >= 8 for digest in inputs.values())
        artifacts = {a.path for a in client.list_artifacts(result.run_id)}
        assert {"plots", "fairness", "model_card", "gate"} <= artifacts, artifacts
        plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
        assert "plots/feature_importance.png" in plots
        if model == "household_risk":
            assert {"plots/calibration.png", "plots/lift_precision_at_k.png"} <= plots
        card = client.download_artifacts(result.run_id, "model_card/model_card.md", str(settings.home / model))
        text = open(card, encoding="utf-8").read()
        assert f"v{result.version}" in text and "Human oversight" in text and "Fairness by group" in text
        # artifacts live under the home, never in ./mlruns
        assert str(settings.mlflow_artifacts) in run.info.artifact_uri


def test_good_case_registers_a_version_and_promotes_it(trained):
    settings, results = trained
    client = _client(settings)
    for result in results.values():
        assert result.promoted, result.decision.summary
        name = result.model
        assert str(client.get_model_version_by_alias(name, "challenger").version) == result.version
        assert str(client.get_model_version_by_alias(name, "champion").version) == result.version
        version = client.get_model_version(name, result.version)
        assert version.tags["gate.promoted"] == "True"
        info = mlflow.models.get_model_info(f"models:/{name}@champion")
        assert info.signature is not None and info.saved_input_example_info is not None


def test_predictions_carry_the_champion_version(trained, ml_source):
    settings, results = trained
    for model, table in (("household_risk", "ml.household_risk_scores"), ("lsoa_demand", "ml.lsoa_demand_forecasts")):
        out = score_model(model, settings=settings, feeds_dir=ml_source / "feeds")
        assert out.version == results[model].version and out.rows > 0
        con = duckdb.connect(str(settings.warehouse_db), read_only=True)
        try:
            rows = con.execute(f"select model_name, model_version, count(*) from {table} group by all").fetchall()
        finally:
            con.close()
        assert rows == [(model, results[model].version, out.rows)]
    # scoring the same month again replaces its rows instead of duplicating them
    again = score_model("lsoa_demand", settings=settings, feeds_dir=ml_source / "feeds")
    con = duckdb.connect(str(settings.warehouse_db), read_only=True)
    try:
        assert con.execute("select count(*) from ml.lsoa_demand_forecasts").fetchall()[0][0] == again.rows
    finally:
        con.close()


def test_a_version_no_better_than_the_champion_is_not_promoted(trained, ml_source):
    settings, results = trained
    before = results["lsoa_demand"].version
    retrained = train_model("lsoa_demand", settings=settings, feeds_dir=ml_source / "feeds")
    assert int(retrained.version) == int(before) + 1
    assert not retrained.promoted and retrained.decision.checks["beats_champion"] is False
    assert "does not beat champion" in retrained.decision.summary
    client = _client(settings)
    assert str(client.get_model_version_by_alias("lsoa_demand", "champion").version) == before
    assert str(client.get_model_version_by_alias("lsoa_demand", "challenger").version) == retrained.version


def test_promotion_refused_when_the_ethics_record_is_incomplete(fresh_home, ml_source, tmp_path):
    def strip(raw):
        del raw["human_oversight"]
        raw["purpose"]["public_benefit"] = "TODO"

    result = train_model("household_risk", settings=fresh_home, feeds_dir=ml_source / "feeds",
                         ethics_path=_record(tmp_path, "household_risk", strip))
    assert not result.promoted
    assert result.decision.checks["ethics_record_complete"] is False
    assert "human_oversight: missing" in result.decision.summary
    assert "purpose.public_benefit" in result.decision.summary
    client = _client(fresh_home)
    assert str(client.get_model_version_by_alias("household_risk", "challenger").version) == result.version
    assert registry.version_by_alias(client, "household_risk", "champion") is None
    assert "**MISSING**" in result.card_markdown and "NOT promoted" in result.card_markdown
    with pytest.raises(PlacelinkError, match="no 'champion' version"):
        score_model("household_risk", settings=fresh_home, feeds_dir=ml_source / "feeds")


def test_promotion_refused_when_a_fairness_threshold_is_breached(fresh_home, ml_source, tmp_path):
    def impossible(raw):
        # min/max selection rate across groups is at most 1: no model can meet a ratio above 1
        raw["fairness"]["thresholds"]["selection_rate_ratio_min"] = 1.01

    result = train_model("household_risk", settings=fresh_home, feeds_dir=ml_source / "feeds",
                         ethics_path=_record(tmp_path, "household_risk", impossible))
    assert not result.promoted
    assert result.decision.checks == {"ethics_record_complete": True, "agreements_permit_purpose": True,
                                      "fairness_within_thresholds": False, "project_approved": True,
                                      "beats_champion": True}
    assert "selection_rate_ratio" in result.decision.summary
    assert registry.version_by_alias(_client(fresh_home), "household_risk", "champion") is None


def test_training_refused_when_a_feed_agreement_forbids_the_purpose(fresh_home, ml_source, tmp_path):
    from tests.support.mart_warehouse import write_feed_contracts

    feeds = write_feed_contracts(tmp_path / "feeds", overrides={"nhs.ae_attendances": ["service_planning"]})
    with pytest.raises(PlacelinkError) as err:
        train_model("household_risk", settings=fresh_home, feeds_dir=feeds)
    text = str(err.value)
    assert "nhs.ae_attendances" in text and "risk_modelling" in text and "fix:" in text
    client = _client(fresh_home)
    assert client.search_registered_models() == [], "nothing may be trained or registered"
    # the place model's purpose is still permitted by the same contracts
    assert train_model("lsoa_demand", settings=fresh_home, feeds_dir=feeds).promoted
