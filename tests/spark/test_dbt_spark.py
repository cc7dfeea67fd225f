"""The Spark profile's dbt Python models (orchestration/lib/dbt_spark.py), without a JVM: the session method is
registered beside dbt-spark's own, and the model's table goes to its schema's folder like the SQL models'."""

from __future__ import annotations

import pytest

from orchestration.lib import dbt_spark

COMPILED_TAIL = 'df.write.mode("overwrite").format("parquet").option("overwriteSchema", "true")' \
                '.saveAsTable("published.place_monthly_indicators")'


def test_session_method_is_added_to_dbt_sparks_own():
    from dbt.adapters.spark.impl import SparkAdapter

    dbt_spark.register()
    dbt_spark.register()  # once per process, however often called
    helpers = SparkAdapter.python_submission_helpers.fget(None)
    assert {"session", "job_cluster", "all_purpose_cluster"} <= set(helpers)


def test_python_model_table_is_written_under_its_location_root():
    model = {"name": "place_monthly_indicators", "alias": "place_monthly_indicators",
             "config": {"location_root": "/home/x/spark-warehouse/published"}}
    code = dbt_spark.with_location("df = model(dbt, spark)\n" + COMPILED_TAIL, model)
    assert ".option('path', '/home/x/spark-warehouse/published/place_monthly_indicators').saveAsTable(" in code
    assert dbt_spark.with_location(COMPILED_TAIL, {"name": "m", "config": {}}) == COMPILED_TAIL  # DuckDB-like: no root
    with pytest.raises(RuntimeError, match="must follow it"):
        dbt_spark.with_location(COMPILED_TAIL + "\n" + COMPILED_TAIL, model)


def test_the_spark_profiles_dbt_executable_is_this_python_running_dbt_with_the_session_method(tmp_path):
    import os
    import sys

    exe = dbt_spark.executable(tmp_path)
    assert exe == dbt_spark.executable(tmp_path) and os.access(exe, os.X_OK)
    first, *rest = exe.read_text(encoding="utf-8").splitlines()
    assert first == f"#!{sys.executable}"  # the project's environment, not whichever python is on PATH
    assert "from orchestration.lib.dbt_spark import main" in rest
