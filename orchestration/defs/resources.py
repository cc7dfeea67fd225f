"""Resources shared by every domain, chosen from the one environment switch in ``lib.config``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from dagster_duckdb import DuckDBResource

from orchestration.lib.config import Settings, get_settings
from orchestration.lib.filemodes import harden, harden_identifiable

#: Resource keys used by assets across domains.
IDENTIFIABLE = "identifiable_db"
WAREHOUSE = "warehouse_db"

#: Dagster concurrency pools: DuckDB allows one writer process per file, so every asset that writes a
#: zone's file declares that zone's pool (limit 1, set in infra/dagster*.yaml).
IDENTIFIABLE_POOL = "identifiable_writer"
WAREHOUSE_POOL = "warehouse_writer"


class IdentifiableDuckDBResource(DuckDBResource):
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


def shared_resources(settings: Settings | None = None) -> dict:
    settings = settings or get_settings()
    return {
        IDENTIFIABLE: IdentifiableDuckDBResource(database=str(settings.identifiable_db)),
        WAREHOUSE: DuckDBResource(database=str(settings.warehouse_db)),
    }
