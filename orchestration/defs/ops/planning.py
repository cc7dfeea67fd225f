"""What a refresh has to run, worked out from the asset graph, the landing folder and run history.

Generic over whatever the merged code location holds: time-partitioned assets keyed
``raw/<partner>__<feed>`` are the feeds (their drops live in ``landing/<partner>/<feed>/``); their
time-partitioned descendants run in the same per-partition run; every unpartitioned asset is
"downstream" and runs once afterwards. Shared by the nightly schedule and ``placelink refresh``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from orchestration.lib.ops.drops import feed_of_asset_key, list_drops, pending_partitions

PARTITIONED = dg.AssetSelection.from_string('partitions:"time" and is:materializable')
UNPARTITIONED = dg.AssetSelection.from_string('partitions:"none" and is:materializable')

#: Run tag shared by every run of one refresh, so the downstream run knows when the feeds are done.
REFRESH_TAG = "placelink/refresh"


@dataclass
class RefreshPlan:
    #: partition key -> asset keys to materialise in that partition's run (sorted partitions)
    partitions: dict[str, list[dg.AssetKey]] = field(default_factory=dict)
    #: unpartitioned assets to materialise once, after the partitions
    downstream: list[dg.AssetKey] = field(default_factory=list)
    #: feed asset -> partitions it loads (for progress messages and tests)
    feeds: dict[str, list[str]] = field(default_factory=dict)
    #: the feed assets ask for one run over a partition range (BackfillPolicy.single_run)
    single_run: bool = False

    @property
    def empty(self) -> bool:
        return not self.partitions and not self.downstream


def loaded_at(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, float]:
    """Partition key -> timestamp of its latest materialisation, from the instance's event log."""
    latest: dict[str, float] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(key, limit=1000, cursor=cursor)
        for record in result.records:
            pk = record.partition_key
            if pk is not None and record.timestamp > latest.get(pk, 0.0):
                latest[pk] = record.timestamp
        if not result.has_more:
            return latest
        cursor = result.cursor


def plan_refresh(
    asset_graph, instance: dg.DagsterInstance, landing: Path, *, full: bool = False
) -> RefreshPlan:
    """Work out the runs of a refresh.

    Args:
        asset_graph: ``defs.resolve_asset_graph()`` or a schedule context's ``repository_def.asset_graph``.
        instance: where run history (what was loaded when) lives.
        landing: the landing folder (``get_settings().landing``).
        full: every partition that has a drop, whether loaded or not, and every downstream asset.
    """
    partitioned = PARTITIONED.resolve(asset_graph)
    plan = RefreshPlan()
    by_partition: dict[str, set[dg.AssetKey]] = {}
    single_run = []
    for key in sorted(partitioned, key=lambda k: k.to_user_string()):
        feed = feed_of_asset_key(key.path)
        if feed is None:
            continue
        node = asset_graph.get(key)
        valid = node.partitions_def.get_partition_keys()
        drops = list_drops(landing, *feed)
        todo = pending_partitions(drops, {} if full else loaded_at(instance, key), full=full,
                                  valid_partitions=valid)
        if not todo:
            continue
        plan.feeds[key.to_user_string()] = todo
        single_run.append(node.backfill_policy is not None
                          and node.backfill_policy.max_partitions_per_run is None)
        for pk in todo:
            by_partition.setdefault(pk, set()).add(key)
    for pk in sorted(by_partition):
        feeds = by_partition[pk]
        # the feeds' partitioned descendants (e.g. per-month pseudonymised tables) run with them
        keys = dg.AssetSelection.assets(*feeds).downstream().resolve(asset_graph) & partitioned
        plan.partitions[pk] = sorted(keys, key=lambda k: k.to_user_string())
    plan.single_run = bool(single_run) and all(single_run)
    if plan.partitions or full:
        plan.downstream = sorted(UNPARTITIONED.resolve(asset_graph), key=lambda k: k.to_user_string())
    return plan
