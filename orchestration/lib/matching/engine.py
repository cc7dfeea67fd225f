"""Where Splink runs: the engine seam of person linkage.

The linkage stage (:mod:`orchestration.lib.matching.index`) prepares records, collapses duplicates, clusters and
keeps the stable index in SQL on the run's DuckDB connection. Only Splink's work -- EM training, the blocked pair
generation and scoring, which is what grows with the square of the population -- moves to Spark with
``PLACELINK_ENGINE=spark``. The model JSON, comparisons and blocking rules are the same objects
(:func:`person.model_settings`); Splink writes them in each engine's dialect.

:func:`splink_api` returns an object with the ``DuckDBAPI`` calls the stage uses (``register(table_name)``), so the
stage does not know which engine it has; :func:`to_duckdb` brings a Splink result back to the connection.
Tables cross between DuckDB and Spark as Arrow (no pandas round trip, types kept: the name sets stay arrays).

At 10 M+ persons the clustering and index SQL would move to Spark too (docs/scaling.md); what crosses back
today is the scored pairs above the review floor, a few per record.
"""

from __future__ import annotations

import duckdb

from orchestration.lib.config import Settings
from orchestration.lib.matching.normalise import run


def splink_api(con: duckdb.DuckDBPyConnection, settings: Settings | None):
    """The Splink database API for the engine of ``settings``, registering tables of ``con`` by name.

    ``settings`` None is a stand-alone link with no home (``placelink link``, ``link_frame``): DuckDB on ``con``.
    The engine is never read from the process environment here; the caller's settings choose it."""
    if settings is not None and settings.engine == "spark":
        return _spark_api(con, settings)
    from splink import DuckDBAPI

    return DuckDBAPI(con)


def to_duckdb(con: duckdb.DuckDBPyConnection, db_api, splink_df, table: str) -> None:
    """``CREATE OR REPLACE TEMP TABLE table`` on ``con`` from a Splink result of ``db_api``."""
    if getattr(db_api, "placelink_engine", "duckdb") == "spark":
        arrow = splink_df.as_spark_dataframe().toArrow()
        con.register("_from_spark", arrow)
        run(con, f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM _from_spark")
        con.unregister("_from_spark")
    else:
        run(con, f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {splink_df.physical_name}")


def _spark_api(con: duckdb.DuckDBPyConnection, settings: Settings):
    from splink import SparkAPI

    from orchestration.lib.spark import spark_session

    spark = spark_session(settings)

    class DuckDBTablesOnSpark(SparkAPI):
        """Splink's SparkAPI that takes a DuckDB table name where DuckDBAPI does: the table is sent once, as
        Arrow, and Splink's own lineage breaking (checkpoints in the identifiable zone) applies from there."""

        placelink_engine = "spark"

        def register(self, table, **kwargs):
            if isinstance(table, str):
                kwargs.setdefault("table_name", table)
                table = spark.createDataFrame(con.sql(f"SELECT * FROM {table}").to_arrow_table())
            return super().register(table, **kwargs)

        def _setup_for_execute_sql(self, sql: str, physical_name: str) -> str:
            return spark_sql(sql)

    # "parquet" lineage breaking (Splink's default off Databricks, said here so it cannot drift) writes the
    # intermediate tables under the checkpoint folder, inside the identifiable zone, not into the 2 GB driver
    return DuckDBTablesOnSpark(spark_session=spark, break_lineage_method="parquet")


def spark_sql(sql: str) -> str:
    """Splink's SQL in Spark's dialect, as Splink's own ``customspark`` dialect writes it, without that dialect.

    Splink subclasses sqlglot's Spark generator to write ``CAST(<number> AS DOUBLE)`` as a double literal
    (``0.5D``: Spark reads a long decimal literal as DECIMAL, which tops out at 38 digits). Our lock installs
    sqlglot's compiled build (``sqlglot[rs]``, required by Dagster), and a compiled class cannot be subclassed
    from Python: Splink's Spark backend fails with "interpreted classes cannot inherit from compiled". So the same
    rewrite is done on the parsed tree and the stock Spark generator writes it."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="spark")

    def double_literal(node):
        if (isinstance(node, exp.Cast | exp.TryCast) and node.to.is_type(exp.DataType.Type.DOUBLE)
                and isinstance(node.this, exp.Literal) and not node.this.is_string and node.this.name != "Infinity"):
            return exp.Var(this=f"{node.this.name}D")
        return node

    return tree.transform(double_literal).sql(dialect="spark", pretty=True)


def model_for_engine(db_api, model: dict) -> dict:
    """The saved model in the SQL dialect of ``db_api``'s engine.

    A Splink model JSON carries its comparisons as SQL in the dialect it was trained on (DuckDB's
    ``jaro_winkler_similarity("given_name_l", ...)``, ``list_intersect``; Spark's ``jaro_winkler`` from the similarity
    jar, back-quoted names). Transpiling that SQL would guess at function names; instead the comparisons are written
    again by Splink from the one clear-text model (:func:`person.model_settings`) in the engine's dialect, and the
    trained parameters (lambda, every level's m and u) are copied over level by level. The two must describe the
    same model: a comparison or level that differs (a model saved before the comparisons changed) is refused."""
    from orchestration.lib.errors import PlacelinkError
    from orchestration.lib.matching import person as pm

    dialect = db_api.sql_dialect.sql_dialect_str
    if model.get("sql_dialect", dialect) == dialect:
        return model
    fresh = pm.model_settings().create_settings_dict(dialect)
    saved = {c["output_column_name"]: c for c in model["comparisons"]}
    for comparison in fresh["comparisons"]:
        name = comparison["output_column_name"]
        old_levels = saved.get(name, {}).get("comparison_levels", [])
        labels = [lvl.get("label_for_charts") for lvl in comparison["comparison_levels"]]
        if [lvl.get("label_for_charts") for lvl in old_levels] != labels:
            raise PlacelinkError(
                f"the saved model's comparison {name!r} differs from the code's model",
                where=f"model JSON (sql_dialect {model.get('sql_dialect')}) -> {dialect}",
                fix="retrain: `placelink match --full --retrain` (the comparisons changed since it was saved)")
        for new, old in zip(comparison["comparison_levels"], old_levels, strict=True):
            for key in ("m_probability", "u_probability"):
                if old.get(key) is not None:
                    new[key] = old[key]
    for key in ("probability_two_random_records_match", "em_convergence", "max_iterations"):
        if key in model:
            fresh[key] = model[key]
    fresh["sql_dialect"] = dialect
    return fresh
