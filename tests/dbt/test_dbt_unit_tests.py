"""dbt's unit tests run here, in make test, and not in every pipeline build.

A pipeline build (the Dagster dbt asset, ``placelink build``) leaves them out: they pin the SQL's logic on fixed
inputs (suppression of 1..4, footprints counting people once), which does not change with the night's data.
"""

from __future__ import annotations

import shutil

from orchestration.lib import dbt_runner
from orchestration.lib.config import get_settings


def test_pipeline_builds_leave_the_unit_tests_to_make_test():
    args = dbt_runner.build_args("build", ["marts"])
    assert args[args.index("--exclude-resource-type") + 1] == "unit_test"
    assert "--exclude-resource-type" not in dbt_runner.build_args("test")
    # (the Dagster asset's build: tests/test_end_to_end.py reads its run_results.json)


def test_every_unit_test_passes_where_the_build_ran_none(dbt_warehouse, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(dbt_warehouse, home)
    settings = get_settings(home=home, env="local")
    result = dbt_runner.unit_tests(settings)
    units = [r for r in result.results if r["unique_id"].startswith("unit_test.")]
    assert len(units) >= 5 and all(r["status"] == "pass" for r in units), units
    # the dbt_warehouse fixture's own build (dbt_runner.build) ran none of them
    built = [r for r in dbt_runner.run_dbt(dbt_runner.build_args("build", ["place_indicator_cells"]),
                                           settings).results]
    assert built and not [r for r in built if r["unique_id"].startswith("unit_test.")]
