"""Jobs of the nightly refresh, selected by partitioning so they keep up as stages add assets."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.ops.planning import PARTITIONED, UNPARTITIONED
from orchestration.defs.ops.policies import TRANSIENT_RETRY_POLICY

#: One partition (month) of every monthly feed and its monthly descendants; the schedule and
#: ``placelink refresh`` narrow each run to the feeds that have new drops.
ops_partitioned_refresh_job = dg.define_asset_job(
    "ops_partitioned_refresh_job",
    selection=PARTITIONED,
    description="Load one month of partner drops (only the feeds with new or changed drops) and its monthly descendants.",
    op_retry_policy=TRANSIENT_RETRY_POLICY,
    tags={"placelink/stage": "ingest"},
)

#: Everything built from all months at once: matching, pseudonymisation, dbt, checks, scoring, publish.
ops_downstream_refresh_job = dg.define_asset_job(
    "ops_downstream_refresh_job",
    selection=UNPARTITIONED,
    description="Rebuild everything after the monthly loads: matching, pseudonymise, dbt, checks, score, publish.",
    op_retry_policy=TRANSIENT_RETRY_POLICY,
    tags={"placelink/stage": "downstream"},
)

#: The whole platform. Launch it as a backfill over all partitions from the UI for a full rebuild
#: (asset backfills run each month once and the unpartitioned assets once); ``placelink refresh --full``
#: does the same from the command line.
ops_full_refresh_job = dg.define_asset_job(
    "ops_full_refresh_job",
    selection=dg.AssetSelection.from_string("is:materializable"),
    description="Full rebuild: every month of every feed, then everything downstream (launch as a backfill).",
    op_retry_policy=TRANSIENT_RETRY_POLICY,
    tags={"placelink/stage": "full"},
)
