"""Matching: address -> UPRN -> LSOA and the stable person/household index (group ``matching``)."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.matching.assets import build_matching_asset
from orchestration.lib.contracts import Contracts, load_contracts


def build_matching_definitions(contracts: Contracts) -> dg.Definitions:
    matching = build_matching_asset(contracts)
    return dg.Definitions(
        assets=[matching],
        jobs=[dg.define_asset_job("matching_link_job", selection=dg.AssetSelection.assets(matching),
                                  description="Address matching and person linkage over the identifiable zone "
                                              "(incremental).", tags={"placelink/stage": "matching"})],
    )


defs = build_matching_definitions(load_contracts())
