"""The Spark profile gives the DuckDB profile's person clusters (issue #26's equivalence test).

The linkage stage (``update_index``: duplicates collapsed, Splink scoring, cannot-link rules, anchored clustering,
stable keys) on the matching tests' synthetic county (1,500 people, ~4,500 records with typos, nicknames, swapped
dates, moves and twins), once with Splink on DuckDB and once on Spark local[2], with the same EM-trained model JSON
(saved in DuckDB's SQL dialect, so the Spark run also proves the model crosses dialects). The clusters agree:
pairwise F1 of one against the other >= 0.995. EM trained on Spark itself gave the tiny county's clusters exactly
(F1 1.0, benchmarks/results/2026-12-03-spark.md: measured, too slow for the suite)."""

from __future__ import annotations

import duckdb
import pytest

from orchestration.lib.config import get_settings
from orchestration.lib.matching import metrics as lm
from orchestration.lib.matching.engine import model_for_engine
from orchestration.lib.matching.index import update_index
from orchestration.lib.matching.normalise import prepare_records, run

pytestmark = pytest.mark.slow


def _link(records, model, settings):
    con = duckdb.connect()
    con.register("_df", records)
    run(con, "CREATE TABLE recs AS SELECT * FROM _df")
    prepare_records(con, "recs", "prep")
    # the engine is the settings' (Spark for spark_home): never read from the environment
    result = update_index(con, "prep", model=model, full=True, settings=settings)
    return result.person_index, result.summary


@pytest.mark.long
def test_person_clusters_on_spark_equal_duckdb(linkage_county, linkage_model, spark, spark_home, tmp_path):
    assert linkage_model["sql_dialect"] == "duckdb"
    duck = get_settings(home=tmp_path / "duckdb", env="local", engine="duckdb")
    on_duckdb, duck_summary = _link(linkage_county["records"], linkage_model, duck)
    on_spark, spark_summary = _link(linkage_county["records"], linkage_model, spark_home)
    # Splink really ran on Spark: its intermediate tables went to the zone's checkpoint folder
    checkpoints = spark_home.spark_identifiable / "checkpoints"
    assert any(p.name.startswith("__splink__") for p in checkpoints.rglob("*")), "Splink did not run on Spark"
    with duckdb.connect() as con:
        con.register("d", on_duckdb)
        con.register("s", on_spark)
        con.register("truth", linkage_county["truth"])
        agreement = lm.pairwise_metrics_sql(con, "s", "d")
        truth_f1 = {e: lm.pairwise_metrics_sql(con, e, "truth")["f1"] for e in ("d", "s")}
    print(f"\nspark vs duckdb pairwise F1 {agreement['f1']}; vs truth: duckdb {truth_f1['d']}, spark {truth_f1['s']}")
    assert agreement["records_scored"] == len(linkage_county["records"])
    assert agreement["f1"] >= 0.995, agreement
    assert truth_f1["s"] == pytest.approx(truth_f1["d"], abs=0.005)
    assert spark_summary["pairs_scored_above_review_floor"] == pytest.approx(
        duck_summary["pairs_scored_above_review_floor"], rel=0.01)


def test_the_model_on_spark_calls_only_functions_spark_has():
    """Every comparison level, written for Spark, calls only Spark's built-ins (as sqlglot's Spark dialect knows
    them) and the similarity UDFs Splink registers from its jar. #23's model wrote DuckDB's ``list_intersect`` in its
    own SQL; Splink passed it to Spark unchanged and the whole Spark run failed (UNRESOLVED_ROUTINE)."""
    import sqlglot
    from splink.internals.spark.jar_location import get_scala_udfs
    from sqlglot import exp

    from orchestration.lib.matching import person as pm

    # Spark built-ins that Splink's own levels write and sqlglot does not model (it parses them as unknown)
    unmodelled_builtins = {"try_to_timestamp"}
    known = {name.lower() for name, *_ in get_scala_udfs()} | unmodelled_builtins
    on_spark = pm.model_settings().create_settings_dict("spark")
    unknown = set()
    for comparison in on_spark["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level["sql_condition"] == "ELSE":
                continue
            tree = sqlglot.parse_one(level["sql_condition"], read="spark")
            unknown |= {f.name.lower() for f in tree.find_all(exp.Anonymous)} - known
    assert not unknown, f"functions Spark does not have: {sorted(unknown)}"


def test_a_model_crosses_dialects_and_back_unchanged(linkage_model):
    """DuckDB JSON -> Spark SQL -> DuckDB gives the saved comparisons and parameters back; a model whose levels no
    longer match the code's comparisons is refused rather than mis-applied."""
    from orchestration.lib.errors import PlacelinkError

    class Api:  # only the dialect is read
        def __init__(self, dialect):
            self.sql_dialect = type("D", (), {"sql_dialect_str": dialect})()

    on_spark = model_for_engine(Api("spark"), linkage_model)
    assert on_spark["sql_dialect"] == "spark"
    assert any("jaro_winkler(" in lvl["sql_condition"] for c in on_spark["comparisons"]
               for lvl in c["comparison_levels"])
    back = model_for_engine(Api("duckdb"), on_spark)
    for c_back, c_saved in zip(back["comparisons"], linkage_model["comparisons"], strict=True):
        for a, b in zip(c_back["comparison_levels"], c_saved["comparison_levels"], strict=True):
            assert (a["sql_condition"], a.get("m_probability"), a.get("u_probability")) == \
                   (b["sql_condition"], b.get("m_probability"), b.get("u_probability"))
    assert back["probability_two_random_records_match"] == linkage_model["probability_two_random_records_match"]
    stale = {**linkage_model, "comparisons": [dict(c) for c in linkage_model["comparisons"]]}
    stale["comparisons"][1] = {**stale["comparisons"][1],
                               "comparison_levels": stale["comparisons"][1]["comparison_levels"][:-2]}
    with pytest.raises(PlacelinkError, match="differs from the code's model"):
        model_for_engine(Api("spark"), stale)


#: the dbt schemas whose every table must be the same on both engines (published: the disclosure-controlled cells,
#: suppression flags included)
COMPARED_SCHEMAS = ("marts", "published")


def _rows_differing(con, duck_table: str, spark_arrow) -> tuple[int, int, int]:
    """(rows only on DuckDB, rows only on Spark, rows) comparing by column name; fractional numbers to 1e-9 (the
    engines sum doubles in different orders), every other value exactly."""
    con.register("_spark", spark_arrow)
    cols = con.execute(f"DESCRIBE {duck_table}").fetchall()
    spark_cols = {c.lower() for c in spark_arrow.column_names}
    missing = [name for name, *_ in cols if name.lower() not in spark_cols]
    assert not missing, f"{duck_table}: columns missing on Spark: {missing}"

    def select(table):
        return ", ".join(f'round(CAST("{n}" AS DOUBLE), 9)' if t.startswith(("DOUBLE", "FLOAT", "DECIMAL"))
                         else f'"{n}"' for n, t, *_ in cols) + f" FROM {table}"
    only_duck, only_spark, n = con.execute(f"""
        SELECT (SELECT count(*) FROM (SELECT {select(duck_table)} EXCEPT ALL SELECT {select('_spark')})),
               (SELECT count(*) FROM (SELECT {select('_spark')} EXCEPT ALL SELECT {select(duck_table)})),
               (SELECT count(*) FROM {duck_table})""").fetchall()[0]
    con.unregister("_spark")
    return only_duck, only_spark, n


@pytest.mark.long
def test_marts_published_cells_and_suppression_on_spark_equal_duckdb(full_refresh_warehouse, spark, spark_home):
    """The tiny county's dbt project built on Spark (dbt-spark, session method, in the suite's one Spark session)
    from the pseudonymised zone the DuckDB profile's full refresh wrote, against that refresh's own tables: every
    mart and the published cells (disclosure control and its suppression flags) identical. Ingest and
    pseudonymisation are the same DuckDB code in both profiles and person linkage is compared above, so with this
    every stage of the tiny county's run is compared."""
    import shutil

    from orchestration.lib import dbt_runner

    shutil.copyfile(full_refresh_warehouse, spark_home.warehouse_db)
    # models and seeds; the data tests run on DuckDB (make test) and are what this equality carries over
    dbt_runner.run_dbt(dbt_runner.build_args("build", extra=["--exclude-resource-type", "test", "unit_test"]), spark_home)
    published = dbt_runner.publish(spark_home)
    assert published, "nothing published from Spark"
    with duckdb.connect(str(full_refresh_warehouse), read_only=True) as con:
        tables = con.execute(f"""SELECT table_schema, table_name FROM information_schema.tables
                                 WHERE table_schema IN {COMPARED_SCHEMAS} ORDER BY 1, 2""").fetchall()
        assert {s for s, _ in tables} == set(COMPARED_SCHEMAS)
        differing = {}
        for schema, table in tables:
            result = _rows_differing(con, f"{schema}.{table}", spark.table(f"{schema}.{table}").toArrow())
            if result[:2] != (0, 0) or result[2] == 0:
                differing[f"{schema}.{table}"] = result
    assert not differing, f"(only on DuckDB, only on Spark, rows) per table: {differing}"
