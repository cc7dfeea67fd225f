"""The one place that decides the environment and where everything lives.

Every other module asks :func:`get_settings` for paths and the environment; nothing else reads
``PLACELINK_ENV`` or ``PLACELINK_HOME``. A run is one folder: landing drops, the identifiable and
warehouse DuckDB files, Dagster's home, the MLflow store, quality docs and published outputs.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Environment = Literal["local", "production"]
ENVIRONMENTS: tuple[str, ...] = ("local", "production")
#: Which engine does the heavy lifting (``PLACELINK_ENGINE``): DuckDB on one machine, or Apache Spark when one
#: machine is not enough (docs/scaling.md). The orchestration, the model JSON and the dbt models are the same.
Engine = Literal["duckdb", "spark"]
ENGINES: tuple[str, ...] = ("duckdb", "spark")
#: Spark defaults for this machine class: local mode on two cores with a modest driver (docs/scaling.md says
#: what a cluster sets instead).
DEFAULT_SPARK_MASTER = "local[2]"
DEFAULT_SPARK_DRIVER_MEMORY = "2g"

#: First month of the monthly partitions every feed shares.
PARTITION_START = "2024-01-01"
#: Longest a ``placelink query`` / ``roles.connect`` query may run before it is interrupted (seconds).
DEFAULT_QUERY_TIMEOUT_S = 300.0
#: Where production reads who holds which role: a file only root (or the service account) can change.
PRODUCTION_ROLES_FILE = Path("/etc/placelink/roles.yml")


def platform_period(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """First and last month (first days) of the platform's period: ``PARTITION_START`` to the current month, the
    last monthly partition (``end_offset=1``, orchestration/defs/partitions.py). The calendar and every mart lie
    inside it (dbt gets it from :func:`orchestration.lib.dbt_runner.dbt_env`): an event dated outside it is
    excluded and counted, never a reason to stretch the calendar (issue #22: one 1900 row emptied every mart)."""
    today = today or dt.date.today()
    return dt.date.fromisoformat(PARTITION_START), today.replace(day=1)


def quiet_telemetry() -> None:
    """No library phones home from placelink: MLflow's telemetry (3.x asks its servers for a config and
    sends usage events unless told not to), GX's analytics and dbt's anonymous usage statistics (through
    ``DO_NOT_TRACK``, which dbt honours) are off, unless an operator set these variables explicitly.
    Environment variables, so the dbt, MLflow and Dagster child processes inherit them."""
    for name, value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("GX_ANALYTICS_ENABLED", "false"),
                        ("DO_NOT_TRACK", "1")):
        os.environ.setdefault(name, value)


# every placelink process reads its settings through this module before it touches those libraries
quiet_telemetry()


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    env: Environment
    home: Path
    #: a query through ``roles.connect`` is interrupted after this many seconds (``PLACELINK_QUERY_TIMEOUT_S``)
    query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S
    #: ``duckdb`` (default) or ``spark`` (``PLACELINK_ENGINE``)
    engine: Engine = "duckdb"
    #: Spark master URL (``PLACELINK_SPARK_MASTER``): ``local[2]``, ``spark://host:7077``, ``k8s://https://...``
    spark_master: str = DEFAULT_SPARK_MASTER
    #: ``spark.driver.memory`` (``PLACELINK_SPARK_DRIVER_MEMORY``)
    spark_driver_memory: str = DEFAULT_SPARK_DRIVER_MEMORY

    # --- zones -----------------------------------------------------------------------------
    @property
    def landing(self) -> Path:
        """Partner drops: ``landing/<partner>/<feed>/<YYYY-MM-DD>[_<suffix>].<ext>`` (orchestration.lib.landing)."""
        return self.home / "landing"

    @property
    def reference(self) -> Path:
        """Reference data: geography, postcode directory, gazetteer (no personal data)."""
        return self.home / "reference"

    @property
    def truth(self) -> Path:
        """Synthetic ground truth. Never read by the pipeline itself, only by scoring and tests."""
        return self.home / "truth"

    @property
    def identifiable_db(self) -> Path:
        """The identifiable zone: the only file that ever holds clear identifiers."""
        return self.home / "identifiable.duckdb"

    @property
    def identifiable_dir(self) -> Path:
        """The identifiable zone's own folder, next to its DuckDB file: the only place files with clear
        identifiers may be written (the clerical review queue export, its review pages and the reviewers'
        decisions). Owner-only permissions; never attached or scanned by an analyst role."""
        return self.home / "identifiable"

    @property
    def warehouse_db(self) -> Path:
        """The pseudonymised warehouse that dbt builds in and analysts query."""
        return self.home / "warehouse.duckdb"

    @property
    def published(self) -> Path:
        """Disclosure-controlled outputs for partners and the public."""
        return self.home / "published"

    # --- the Spark profile's storage (docs/scaling.md) ------------------------------------------
    @property
    def spark_identifiable(self) -> Path:
        """Identifiable zone tables as Parquet (Spark catalog ``idz``): inside the zone's owner-only folder.
        Spark's checkpoints and spill hold identifiers too, so they live here as well."""
        return self.identifiable_dir / "spark"

    @property
    def spark_warehouse(self) -> Path:
        """Pseudonymised zone tables as Parquet (Spark's ``spark.sql.warehouse.dir``; dbt-spark builds here).
        A separate location from :attr:`spark_identifiable`: an analyst's Spark session is given this one only."""
        return self.home / "spark-warehouse"

    # --- services --------------------------------------------------------------------------
    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def mlflow_tracking_uri(self) -> str:
        """SQLite locally (MLflow 3 refuses a plain file store); Postgres in production."""
        # Only our own variable: mlflow.set_tracking_uri() writes MLFLOW_TRACKING_URI into os.environ, so
        # reading that back would let one home's store leak into the next (tests, notebooks, the runner).
        uri = os.environ.get("PLACELINK_MLFLOW_TRACKING_URI")
        if uri:
            return uri
        if self.env == "production":
            raise ConfigError(
                "production needs an MLflow backend: set PLACELINK_MLFLOW_TRACKING_URI "
                "(e.g. postgresql+psycopg2://mlflow@db/mlflow); see README 'Run it in production'"
            )
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow_dir / "artifacts"

    @property
    def quality_dir(self) -> Path:
        return self.home / "quality"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def models_dir(self) -> Path:
        """Versioned linkage models and other non-MLflow model files."""
        return self.home / "models"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def audit_db(self) -> Path:
        """Append-only, hash-chained audit log of every ingest, linkage, export and person-level read."""
        return self.home / "audit.duckdb"

    @property
    def governance_dir(self) -> Path:
        """Governance state: erasure exclusion list, export approvals, per-role query files."""
        return self.home / "governance"

    @property
    def roles_file(self) -> Path:
        """Who holds which role (``governance.identity``): ``<home>/governance/roles.yml`` locally,
        ``/etc/placelink/roles.yml`` in production. Deliberately not an environment variable: whoever can
        set one could name a file of their own."""
        return PRODUCTION_ROLES_FILE if self.env == "production" else self.governance_dir / "roles.yml"

    def ensure(self) -> Settings:
        """Create the home folder tree (idempotent), make the identifiable zone owner-only, return self."""
        from orchestration.lib import filemodes

        for path in (self.home, self.landing, self.reference, self.published, self.dagster_home,
                     self.mlflow_dir, self.quality_dir, self.keys_dir, self.models_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        filemodes.private_dir(self.governance_dir)
        filemodes.harden_identifiable(self.home)
        return self


def get_settings(home: str | os.PathLike | None = None, env: str | None = None,
                 engine: str | None = None) -> Settings:
    """Resolve the environment, home folder and engine.

    Args:
        home: overrides ``PLACELINK_HOME`` (default ``./.placelink``).
        env: overrides ``PLACELINK_ENV`` (``local`` by default, or ``production``).
        engine: overrides ``PLACELINK_ENGINE`` (``duckdb`` by default, or ``spark``).
    """
    engine_value = (engine or os.environ.get("PLACELINK_ENGINE") or "duckdb").strip().lower()
    if engine_value not in ENGINES:
        raise ConfigError(
            f"PLACELINK_ENGINE={engine_value!r} is not a known engine; use one of {', '.join(ENGINES)} "
            "(spark also needs `uv sync --extra spark` and Java 17+, docs/scaling.md)"
        )
    spark_master = (os.environ.get("PLACELINK_SPARK_MASTER") or DEFAULT_SPARK_MASTER).strip()
    spark_memory = (os.environ.get("PLACELINK_SPARK_DRIVER_MEMORY") or DEFAULT_SPARK_DRIVER_MEMORY).strip()
    if not re.fullmatch(r"[0-9]+[kmgt]?", spark_memory.lower()):
        raise ConfigError(f"PLACELINK_SPARK_DRIVER_MEMORY={spark_memory!r} is not a JVM memory size; "
                          "write e.g. 2g or 512m")
    env_value = (env or os.environ.get("PLACELINK_ENV") or "local").strip().lower()
    if env_value not in ENVIRONMENTS:
        raise ConfigError(
            f"PLACELINK_ENV={env_value!r} is not a known environment; use one of {', '.join(ENVIRONMENTS)}"
        )
    home_value = home or os.environ.get("PLACELINK_HOME") or ".placelink"
    timeout = os.environ.get("PLACELINK_QUERY_TIMEOUT_S")
    try:
        timeout_s = float(timeout) if timeout else DEFAULT_QUERY_TIMEOUT_S
    except ValueError:
        timeout_s = -1.0
    if not 0 < timeout_s < float("inf"):
        raise ConfigError(f"PLACELINK_QUERY_TIMEOUT_S={timeout!r} is not a positive number of seconds")
    return Settings(env=env_value, home=Path(home_value).expanduser().resolve(),  # type: ignore[arg-type]
                    query_timeout_s=timeout_s, engine=engine_value,  # type: ignore[arg-type]
                    spark_master=spark_master, spark_driver_memory=spark_memory)
