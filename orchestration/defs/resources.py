"""Resources shared by every domain, chosen from the one environment switch in ``lib.config``."""

from __future__ import annotations

from dagster_duckdb import DuckDBResource

from orchestration.lib.config import Settings, get_settings

#: Resource keys used by assets across domains.
IDENTIFIABLE = "identifiable_db"
WAREHOUSE = "warehouse_db"

#: Dagster concurrency pools: DuckDB allows one writer process per file, so every asset that writes a
#: zone's file declares that zone's pool (limit 1, set in infra/dagster*.yaml).
IDENTIFIABLE_POOL = "identifiable_writer"
WAREHOUSE_POOL = "warehouse_writer"


def shared_resources(settings: Settings | None = None) -> dict:
    settings = settings or get_settings()
    return {
        IDENTIFIABLE: DuckDBResource(database=str(settings.identifiable_db)),
        WAREHOUSE: DuckDBResource(database=str(settings.warehouse_db)),
    }
