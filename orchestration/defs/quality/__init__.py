"""Data quality domain: GX asset checks on every contract feed and on the marts/published models that have a
suite, and the scorecard asset.

A contract feed without a suite gets no checks here (so the code location still loads) but fails
``tests/quality/test_suites.py::test_feed_suites_match_the_contracts_when_present``. A mart suite gets its
checks when the dbt project has the model (asset key ``<schema>/<model>``, as the dbt domain names them).
"""

from pathlib import Path

from expectations.suite import load_suites
from orchestration.defs.quality.checks import build_quality_definitions
from orchestration.lib.contracts import load_contracts

DBT_MODELS = Path(__file__).resolve().parents[3] / "dbt_project" / "models"


def _feeds_with_suites() -> list[str]:
    suites = {s.name for s in load_suites("feed")}
    return [f.name for f in load_contracts().feeds() if f.name in suites]


def _dbt_models_with_suites() -> list[str]:
    keys = []
    for spec in load_suites():
        if spec.kind == "feed":
            continue
        schema, model = spec.asset.split("/", 1)
        folder = DBT_MODELS / schema
        if folder.exists() and (any(folder.rglob(f"{model}.sql")) or any(folder.rglob(f"{model}.py"))):
            keys.append(spec.asset)
    return keys


defs = build_quality_definitions(_feeds_with_suites(), _dbt_models_with_suites())
