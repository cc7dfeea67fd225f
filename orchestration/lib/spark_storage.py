"""The Spark profile's storage: each zone's tables as Parquet, partitioned by month, in its own location.

Ingest and pseudonymisation keep writing their DuckDB files (their checks, quarantine and audit are the same code
on both engines); :func:`export_zone` then writes every table of a zone as Parquet that Spark reads, and
:func:`register_zone` makes them Spark tables in that zone's own databases:

| zone | Parquet under | Spark databases |
|---|---|---|
| identifiable | ``<home>/identifiable/spark/`` (owner-only, with Spark's spill and checkpoints) | ``idz_raw``, ``idz_link``, ``idz_ops`` |
| pseudonymised | ``<home>/spark-warehouse/`` (dbt-spark builds its models here too) | ``src``, ``ref`` |

Parquet, not Delta or Iceberg: plain files that DuckDB, Spark, Trino and pandas all read without a jar matched to the
Spark version; every write here replaces a whole month's folder, so no table format's transactions are needed. A
production cluster keeps the two zones in two catalogs (Unity/Glue/Hive), each granted to its own service account
(docs/scaling.md).

Tables with a month column are partitioned by it (``_partition`` for raw loads, ``partition_month`` for ``src``):
a nightly rewrites only the months it loaded.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from orchestration.lib.config import Settings

#: The column each zone partitions by, first found wins.
PARTITION_COLUMNS = ("_partition", "partition_month")


@dataclass(frozen=True)
class Zone:
    name: str
    db: Path
    root: Path
    #: DuckDB schema -> Spark database
    schemas: dict[str, str]


def zones(settings: Settings) -> dict[str, Zone]:
    return {
        "identifiable": Zone("identifiable", settings.identifiable_db, settings.spark_identifiable,
                             {"raw": "idz_raw", "link": "idz_link", "ops": "idz_ops"}),
        "pseudonymised": Zone("pseudonymised", settings.warehouse_db, settings.spark_warehouse,
                              {"src": "src", "ref": "ref"}),
    }


def export_zone(settings: Settings, zone_name: str) -> dict[str, Path]:
    """Write every table of the zone's DuckDB schemas as Parquet under the zone's root; returns
    ``{"<spark_db>.<table>": folder}``. Month-partitioned where the table has a month column."""
    zone = zones(settings)[zone_name]
    out: dict[str, Path] = {}
    if not zone.db.exists():
        return out
    with duckdb.connect(str(zone.db), read_only=True) as con:
        tables = con.execute("""SELECT schema_name, table_name FROM duckdb_tables()
                                WHERE database_name = current_database() ORDER BY 1, 2""").fetchall()
        for schema, table in tables:
            if schema not in zone.schemas:
                continue
            cols = [r[0] for r in con.execute(f'DESCRIBE "{schema}"."{table}"').fetchall()]
            part = next((c for c in PARTITION_COLUMNS if c in cols), None)
            folder = zone.root / schema / table
            if folder.exists():
                shutil.rmtree(folder)
            folder.parent.mkdir(parents=True, exist_ok=True)
            if part:
                con.execute(f"""COPY (SELECT * FROM "{schema}"."{table}") TO '{folder}'
                                (FORMAT PARQUET, PARTITION_BY ({part}))""").fetchall()
            else:
                folder.mkdir()
                con.execute(f"""COPY (SELECT * FROM "{schema}"."{table}") TO '{folder / 'part-0.parquet'}'
                                (FORMAT PARQUET)""").fetchall()
            out[f"{zone.schemas[schema]}.{table}"] = folder
    if zone_name == "identifiable":
        settings.identifiable_dir.chmod(0o700)
    return out


def register_zone(spark, settings: Settings, zone_name: str) -> list[str]:
    """Make the zone's Parquet folders Spark views (``<db>.<table>``), replacing earlier registrations."""
    zone = zones(settings)[zone_name]
    names = []
    for schema, database in zone.schemas.items():
        base = zone.root / schema
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
        if not base.exists():
            continue
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            name = f"{database}.{folder.name}"
            # a view over the path (as dbt's on-run-start does for the sources): Spark discovers the month
            # folders (partition_month=2025-03-01/) itself, no catalog partitions to keep in step
            spark.sql(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM parquet.`{folder}`")
            names.append(name)
    return names


#: The dbt schemas whose tables dbt-spark writes as Parquet under the pseudonymised zone (dbt_project.yml's
#: ``location_root``); staging models are views, which live in the Spark catalog only.
BUILT_SCHEMAS = ("seeds", "intermediate", "marts", "published")


def expose_built_tables(settings: Settings) -> list[str]:
    """Make the tables dbt built on Spark readable where the DuckDB profile's are: a view ``<schema>.<table>`` in
    ``warehouse.duckdb`` over each table's Parquet folder (``<spark-warehouse>/<schema>/<table>/``).

    Everything downstream of dbt (publish, the atlas, the ML stages, the run summary, the role views) reads the
    warehouse file; with this it reads the Spark-built tables through it, unchanged, on either engine. A table of
    the same name left by a DuckDB-profile build is replaced; a view whose folder has gone is dropped. Returns the
    names exposed."""
    exposed: list[str] = []
    if not settings.warehouse_db.exists():
        return exposed
    with duckdb.connect(str(settings.warehouse_db)) as con:
        existing = {(s, t): kind for s, t, kind in con.execute(
            """SELECT table_schema, table_name, table_type FROM information_schema.tables
               WHERE table_catalog = current_database()""").fetchall()}
        for schema in BUILT_SCHEMAS:
            base = settings.spark_warehouse / schema
            folders = {p.name: p for p in sorted(base.iterdir()) if p.is_dir()} if base.exists() else {}
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            for (s, table), kind in existing.items():
                if s == schema and kind == "VIEW" and table not in folders:
                    con.execute(f'DROP VIEW "{schema}"."{table}"')
            for table, folder in folders.items():
                if not any(folder.rglob("*.parquet")):
                    continue
                if existing.get((schema, table)) == "BASE TABLE":
                    con.execute(f'DROP TABLE "{schema}"."{table}"')
                path = str(folder).replace("'", "''")
                con.execute(f"""CREATE OR REPLACE VIEW "{schema}"."{table}" AS
                                SELECT * FROM read_parquet('{path}/**/*.parquet', hive_partitioning = true)""")
                exposed.append(f"{schema}.{table}")
    return exposed
