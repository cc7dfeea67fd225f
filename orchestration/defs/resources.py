"""Resources shared by every domain, chosen from the one environment switch in ``lib.config``."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import time
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource
from dagster_duckdb import DuckDBResource
from packaging import version
from pydantic import field_validator

from orchestration.lib import dbt_runner
from orchestration.lib.config import Settings, get_settings
from orchestration.lib.filemodes import harden, harden_identifiable

#: Resource keys used by assets across domains.
IDENTIFIABLE = "identifiable_db"
WAREHOUSE = "warehouse_db"
SETTINGS = "placelink_settings"
DBT = "dbt"

#: Dagster concurrency pools: DuckDB allows one writer process per file, so every asset that writes a
#: zone's file declares that zone's pool (limit 1, set in infra/dagster*.yaml).
IDENTIFIABLE_POOL = "identifiable_writer"
WAREHOUSE_POOL = "warehouse_writer"


#: The longest a step waits for a zone's DuckDB file that another process holds before it fails into the retry
#: policy (env ``PLACELINK_LOCK_WAIT_SECONDS``, read when the code location loads). The default is what
#: dagster-duckdb's own connect waits (0.1 s doubling, ten tries: ~102 s), which it does not let a user change.
LOCK_WAIT_SECONDS = float(os.environ.get("PLACELINK_LOCK_WAIT_SECONDS", "102"))


def connect_waiting(database: str, config: dict, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` for writing, retried while another process holds the file's lock (DuckDB raises
    ``IOException``), 0.1 s doubling, for at most ``wait_seconds``; then the lock error itself is raised."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.1
    while True:
        try:
            return duckdb.connect(database, read_only=False, config=config)
        except (RuntimeError, duckdb.IOException):
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay *= 2


class ZoneDuckDBResource(DuckDBResource):
    """A zone's DuckDB file, as dagster-duckdb's resource opens it, but waiting at most ``LOCK_WAIT_SECONDS`` for
    another writer's lock (a step that waited longer only delays its retry) and closed on failure too (the base
    class closes only when the step's body succeeded, leaving the file attached in the process)."""

    @contextlib.contextmanager
    def get_connection(self) -> Iterator:
        con = connect_waiting(self.database, {"custom_user_agent": "dagster", **self.connection_config},
                              LOCK_WAIT_SECONDS)
        try:
            yield con
        finally:
            con.close()


class IdentifiableDuckDBResource(ZoneDuckDBResource):
    """The identifiable zone's DuckDB file, kept owner-only whatever umask the run's process started with: the
    file and its ``.wal`` as soon as they are opened; the whole zone (landing drops as delivered, review
    folder, governance: ``filemodes.identifiable_paths`` of the home the file sits in) after the first
    connection of the process, and its top-level folders after every later one (walking every drop after
    each of hundreds of partitions would cost seconds per run)."""

    @contextlib.contextmanager
    def get_connection(self) -> Iterator:
        db = Path(self.database)
        try:
            with super().get_connection() as con:
                harden([db, Path(f"{db}.wal")])
                yield con
        finally:
            harden_identifiable(db.parent, recursive=db.parent not in _ZONES_HARDENED)
            _ZONES_HARDENED.add(db.parent)


#: homes whose whole zone this process has made owner-only once already
_ZONES_HARDENED: set[Path] = set()


class PlacelinkSettings(dg.ConfigurableResource):
    """The home, environment and engine the assets work on, as a resource: assets ask ``placelink_settings.get()``
    for the :class:`~orchestration.lib.config.Settings` and hand them to lib functions explicitly.

    Who binds it says where the values come from: the code location that ``placelink ui`` / ``dagster dev`` load
    reads them from the environment through ``dg.EnvVar`` (the UI shows the variable, not a baked-in path); the
    CLI, the refresh and tests bind a home explicitly (``shared_resources(settings)``), so nothing has to write
    ``os.environ`` to point a run at a home."""

    home: str
    env: str = "local"
    engine: str = "duckdb"

    def get(self) -> Settings:
        return get_settings(home=self.home, env=self.env, engine=self.engine)


def settings_resource(settings: Settings | None = None) -> PlacelinkSettings:
    """Bound to ``settings``; else to the environment's variables (EnvVar) where they are set, the defaults where
    not (``get_settings`` resolves the same defaults)."""
    if settings is not None:
        return PlacelinkSettings(home=str(settings.home), env=settings.env, engine=settings.engine)
    default = get_settings()

    def from_env(name: str, value: str):
        return dg.EnvVar(name) if os.environ.get(name) else value

    return PlacelinkSettings(home=from_env("PLACELINK_HOME", str(default.home)),
                             env=from_env("PLACELINK_ENV", default.env),
                             engine=from_env("PLACELINK_ENGINE", default.engine))


class PlacelinkDbtCli(DbtCliResource):
    """dagster-dbt's resource, told the dbt version instead of asking ``dbt --version`` on every build, and
    without an in-process dbt adapter it would not use.

    Its executable is always this environment's dbt-core (:func:`dbt_runner.dbt_executable`: the venv's ``dbt``, or
    on Spark a wrapper in the home running it), so its version is the installed dbt-core's. ``dbt --version`` also
    asks PyPI for the latest release: 5-10 s of every dbt step.
    """

    @field_validator("dbt_executable")
    def validate_dbt_executable(cls, dbt_executable: str) -> str:  # noqa: N805 - pydantic validator
        """dagster-dbt's check that the executable exists, except for the Spark wrapper: it is written before each
        build (``dbt_runner.engine_inputs``), so binding the resource to a home touches nothing in it."""
        spark_wrapper = Path(dbt_executable).parts[-3:] == ("dbt", "bin", "dbt")
        return dbt_executable if spark_wrapper else DbtCliResource.validate_dbt_executable(dbt_executable)

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):  # noqa: ARG002 - dagster-dbt's signature
        """No in-process dbt adapter: dagster-dbt uses it only for ``fetch_row_counts()`` and
        ``fetch_column_metadata()``, which these assets do not call, and making it loads dbt's profile, project and
        the DuckDB adapter into the Dagster process (3-4 s of every dbt step; county nightly 4 s). Without one,
        dagster-dbt takes its own "no adapter" path (it already does when making one fails)."""
        return None


def dbt_resource(settings: Settings) -> DbtCliResource:
    """The ``dbt`` resource for ``settings``: the dbt installed next to this Python (the project's environment, so
    runs work without an activated venv), or on Spark its wrapper in the home (:func:`dbt_runner.dbt_executable`)."""
    return PlacelinkDbtCli(project_dir=str(dbt_runner.DBT_PROJECT_DIR), profiles_dir=str(dbt_runner.DBT_PROJECT_DIR),
                           dbt_executable=dbt_runner.dbt_executable(settings))


def shared_resources(settings: Settings | None = None) -> dict:
    """Every domain's shared resources, bound to ``settings``; else to the environment's (``dagster dev``): the
    settings resource through EnvVar, the DuckDB files and dbt executable resolved now (the environment's home)."""
    bound = settings or get_settings()
    return {
        IDENTIFIABLE: IdentifiableDuckDBResource(database=str(bound.identifiable_db)),
        WAREHOUSE: ZoneDuckDBResource(database=str(bound.warehouse_db)),
        SETTINGS: settings_resource(settings),
        DBT: dbt_resource(bound),
    }
