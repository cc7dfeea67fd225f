"""Partner feeds: one asset group per partner, built from the contracts in ``orchestration/feeds/``.

Per feed: ``raw/<partner>__<feed>`` (monthly, identifiable zone) and ``src/<partner>__<feed>``
(pseudonymised warehouse). Per partner: ``<partner>_ingest_job``; plus ``all_feeds_ingest_job``, the
``landing_drop_sensor`` and the ``ref/*`` reference tables.
"""

from __future__ import annotations

import dagster as dg

from orchestration.defs.feeds.assets import build_feed_assets, raw_key, reference_tables, src_key
from orchestration.defs.feeds.sensors import build_landing_sensor
from orchestration.lib.contracts import Contracts, load_contracts


def build_feed_definitions(contracts: Contracts) -> dg.Definitions:
    """Everything Dagster needs for a set of contracts (tests pass their own)."""
    assets = build_feed_assets(contracts)
    jobs = []
    for contract in contracts:
        keys = [k for f in contract.feeds for k in (raw_key(f), src_key(f))]
        jobs.append(dg.define_asset_job(
            f"{contract.partner.id}_ingest_job", selection=dg.AssetSelection.assets(*keys),
            description=f"Load {contract.partner.name}'s feeds for one month and refresh their "
                        "pseudonymised warehouse tables (a failing feed stops its own downstream).",
            tags={"placelink/stage": "ingest"}))
    all_raw = [raw_key(f) for c in contracts for f in c.feeds]
    all_feeds = dg.define_asset_job(
        "all_feeds_ingest_job", selection=dg.AssetSelection.assets(*all_raw),
        description="Load one month of every partner feed into the identifiable zone (launch as a backfill "
                    "for many months).", tags={"placelink/stage": "ingest"})
    sensors = [build_landing_sensor([f for c in contracts for f in c.feeds], all_feeds)] if all_raw else []
    return dg.Definitions(assets=[*assets, reference_tables], jobs=[*jobs, all_feeds] if all_raw else jobs,
                          sensors=sensors)


defs = build_feed_definitions(load_contracts())
