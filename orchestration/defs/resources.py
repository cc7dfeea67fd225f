"""Resources shared by every domain, chosen from the one environment switch in ``lib.config``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from dagster_duckdb import DuckDBResource

from orchestration.lib.config import Settings, get_settings
from orchestration.lib.filemodes import harden_identifiable

#: Resource keys used by assets across domains.
IDENTIFIABLE = "identifiable_db"
WAREHOUSE = "warehouse_db"

#: Dagster concurrency pools: DuckDB allows one writer process per file, so every asset that writes a
#: zone's file declares that zone's pool (limit 1, set in infra/dagster*.yaml).
IDENTIFIABLE_POOL = "identifiable_writer"
WAREHOUSE_POOL = "warehouse_writer"


class IdentifiableDuckDBResource(DuckDBResource):
    """The identifiable zone's DuckDB file. After each connection the zone (this file, its ``.wal``, the
    landing drops read, the review folder: ``filemodes.identifiable_paths`` of the home the file sits in) is
    made owner-only, whatever umask the run's process was started with."""

    @contextlib.contextmanager
    def get_connection(self) -> Iterator:
        home = Path(self.database).parent
        try:
            with super().get_connection() as con:
                harden_identifiable(home)
                yield con
        finally:
            harden_identifiable(home)


def shared_resources(settings: Settings | None = None) -> dict:
    settings = settings or get_settings()
    return {
        IDENTIFIABLE: IdentifiableDuckDBResource(database=str(settings.identifiable_db)),
        WAREHOUSE: DuckDBResource(database=str(settings.warehouse_db)),
    }
