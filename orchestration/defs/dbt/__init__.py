"""dbt in Dagster: every dbt model is an asset ``<schema>/<model>`` downstream of the feed assets, every dbt test
an asset check, plus ``published/files`` (the Parquet/CSV export).

Sources map to the feeds engineer's keys: ``src/<partner>__<feed>`` and ``ref/<table>``. The manifest is parsed on
import when missing or stale (``dbt_runner.ensure_manifest``), so a clean clone loads.
"""

from __future__ import annotations

import dagster as dg

from orchestration.defs.dbt.assets import placelink_dbt_models, published_files

dbt_build_job = dg.define_asset_job(
    "dbt_build_job",
    selection=dg.AssetSelection.assets(placelink_dbt_models, published_files),
    description="Build every dbt model and run its tests, then write the published files. Rebuild one month with "
                "run config ops.placelink_dbt_models.config.month: '2025-03'.",
    tags={"placelink/stage": "dbt"},
)

defs = dg.Definitions(
    assets=[placelink_dbt_models, published_files],
    jobs=[dbt_build_job],
    # the `dbt` resource is bound with the other shared resources to the code location's settings
    # (orchestration/defs/resources.py `shared_resources`)
)
