"""placelink writes Dagster's single-run backfill tags once (``planning.PARTITION_RANGE_*_TAG``) instead of importing
them from Dagster's private ``dagster._core.storage.tags``. If a Dagster upgrade renamed them, a range refresh would
silently run unpartitioned; this test, the only place that touches the private module, fails first."""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.defs.ops.planning import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG


def test_our_partition_range_tags_are_dagsters():
    assert (PARTITION_RANGE_START_TAG, PARTITION_RANGE_END_TAG) == (ASSET_PARTITION_RANGE_START_TAG,
                                                                    ASSET_PARTITION_RANGE_END_TAG)


def test_dagster_reads_our_tags_as_a_partition_range():
    request = dg.RunRequest(tags={PARTITION_RANGE_START_TAG: "2025-01", PARTITION_RANGE_END_TAG: "2025-03"})
    assert request.partition_key_range == dg.PartitionKeyRange("2025-01", "2025-03")
