"""The Spark profile's storage seam without a JVM: Parquet folders as dbt-spark leaves them, read back through
the warehouse file by the DuckDB-side readers (seconds)."""

from __future__ import annotations

import duckdb

from orchestration.lib import dbt_runner
from orchestration.lib.config import get_settings


def _spark_table(folder, sql: str) -> None:
    """A table folder as Spark writes it: part files and a _SUCCESS marker."""
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").touch()
    with duckdb.connect() as con:
        con.execute(f"COPY ({sql}) TO '{folder / 'part-00000-x.snappy.parquet'}' (FORMAT PARQUET)")


def test_tables_built_on_spark_are_read_through_the_warehouse_file(tmp_path):
    """After dbt on Spark, publish (and the atlas, the ML stages, the summary) read the Spark-built tables through
    warehouse.duckdb as on DuckDB: a stale DuckDB-built table of the same name is replaced by the Spark one, and a
    table dbt no longer builds is no longer offered."""
    settings = get_settings(home=tmp_path / "home", env="local", engine="spark").ensure()
    with duckdb.connect(str(settings.warehouse_db)) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.place_month AS SELECT 'stale' AS lsoa_code")
    cells = """SELECT DATE '2025-03-01' AS month, 'referrals' AS indicator, 'lsoa' AS geography_level,
                      'E01000001' AS area_code, CAST(NULL AS BIGINT) AS value, true AS suppressed"""
    _spark_table(settings.spark_warehouse / "published" / "place_monthly_indicators", cells)
    _spark_table(settings.spark_warehouse / "marts" / "place_month", "SELECT 'E01000001' AS lsoa_code")
    _spark_table(settings.spark_warehouse / "marts" / "gone", "SELECT 1 AS x")

    dbt_runner.engine_outputs(settings)
    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        assert con.execute("SELECT lsoa_code FROM marts.place_month").fetchall() == [("E01000001",)]
        assert con.execute("SELECT count(*) FROM marts.gone").fetchall() == [(1,)]

    import shutil

    shutil.rmtree(settings.spark_warehouse / "marts" / "gone")
    dbt_runner.engine_outputs(settings)
    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        left = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'").fetchall()}
    assert left == {"place_month"}

    (csv,) = [p for p in dbt_runner.publish(settings) if p.suffix == ".csv"]
    assert "E01000001" in csv.read_text() and ",true" in csv.read_text()
