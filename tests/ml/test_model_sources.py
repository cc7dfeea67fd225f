"""Which tables each model reads is written once, in ``ml/models/<model>/model.yml`` (``marts``); the Dagster ML
assets derive their dependencies from it and the dbt exposures (which dbt cannot derive) must repeat it exactly."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import yaml

from ml.features import list_models, load_spec
from orchestration.defs.ml.assets import ML_ASSETS, MODELS

ROOT = Path(__file__).resolve().parents[2]


def _exposures() -> dict[str, set[str]]:
    raw = yaml.safe_load((ROOT / "dbt_project" / "models" / "exposures.yml").read_text())
    return {e["name"]: {re.fullmatch(r"ref\('(\w+)'\)", d).group(1) for d in e["depends_on"]}
            for e in raw["exposures"] if e["type"] == "ml"}


def test_each_ml_exposure_depends_on_exactly_the_tables_its_model_yml_names():
    exposures = _exposures()
    expected = {load_spec(m).predictions_table.split(".", 1)[1]: {t.split(".", 1)[1] for t in load_spec(m).marts}
                for m in list_models()}
    assert exposures == expected


def test_the_dagster_ml_assets_read_what_model_yml_names():
    assert set(MODELS) == set(list_models())
    by_key = {k: a for a in ML_ASSETS for k in a.keys}
    for model in list_models():
        spec = load_spec(model)
        marts = {dg.AssetKey(t.split(".")) for t in spec.marts}
        training = by_key[dg.AssetKey(["ml", f"{model}_training"])]
        scores = by_key[dg.AssetKey(spec.predictions_table.split("."))]
        assert set(training.asset_deps[training.key]) == marts
        assert set(scores.asset_deps[scores.key]) == marts | {training.key}


def test_every_warehouse_table_the_feature_code_reads_is_named_in_a_model_yml():
    source = (ROOT / "ml" / "features.py").read_text()
    read = set(re.findall(r"\b(?:from|join)\s+((?:marts|intermediate)\.\w+)", source))
    declared = {t for m in list_models() for t in load_spec(m).marts}
    assert read and read <= declared, f"read but declared in no ml/models/*/model.yml: {read - declared}"
