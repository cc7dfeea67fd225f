"""One sub-package per domain (partner feeds, matching, dbt, quality, ml, operations, governance).

Each sub-package exposes ``defs: dagster.Definitions``; ``orchestration/definitions.py`` merges them.
"""

import warnings

import dagster as dg

# Dagster features placelink uses knowingly, on a pinned Dagster (uv.lock) whose tests cover them. Each use warns
# once per asset at every definitions load: nine lines on every CLI command, the demo, every run worker. Other
# Beta/Preview warnings (a feature not listed here) still show.
#  - a feed's months load in one run (BackfillPolicy.single_run: a backfill is one parse/write pass per feed);
#  - the feed freshness policy is applied over the merged definitions (Definitions.map_asset_specs, which calls
#    map_resolved_asset_specs).
for _message in (r"Parameter `backfill_policy` of function `asset` is currently in beta",
                 r"Function `Definitions\.map_(resolved_)?asset_specs` is currently in preview"):
    warnings.filterwarnings("ignore", message=_message, category=dg.BetaWarning)
    warnings.filterwarnings("ignore", message=_message, category=dg.PreviewWarning)
