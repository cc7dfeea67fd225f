"""Which partner drops have landed since their partition was last loaded.

A drop is a file that follows the landing rule of :mod:`orchestration.lib.landing` (the one ingest and the
landing sensor use too), ``landing/<partner>/<feed>/<YYYY-MM-DD>[_<suffix>].<ext>``, and fills the monthly
partition of its drop date (``2025-03-04`` -> ``2025-03-01``, docs/architecture.md). A partition needs
loading when it has never been loaded or one of its drops changed (file modified) after the last successful
load. The caller says when each partition was last loaded (the nightly schedule and ``placelink refresh`` read that from the
Dagster instance), so this module stays free of Dagster and is tested on plain folders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestration.lib.landing import contract_extensions, partition_of, scan_feed


@dataclass(frozen=True)
class Drop:
    partner: str
    feed: str
    path: Path
    drop_date: dt.date
    modified: float  # POSIX timestamp of the file's last modification

    @property
    def partition(self) -> str:
        return self.drop_date.replace(day=1).isoformat()


def feed_of_asset_key(path: Iterable[str]) -> tuple[str, str] | None:
    """``["raw", "police__street_crimes"]`` -> ``("police", "street_crimes")``; anything else -> None."""
    parts = list(path)
    if len(parts) != 2 or parts[0] != "raw" or "__" not in parts[1]:
        return None
    partner, feed = parts[1].split("__", 1)
    return partner, feed


def partition_of_drop(path: Path, extension: str | None = None) -> str | None:
    """Monthly partition key (``YYYY-MM-01``) of a drop file, or None if the landing rule rejects its name."""
    return partition_of(Path(path).name, extension)


def list_drops(landing: Path, partner: str, feed: str, extension: str | None = None) -> list[Drop]:
    """Every drop of one feed, oldest first, by the landing rule (:func:`orchestration.lib.landing.scan_feed`,
    as ingest lists them). ``extension`` defaults to the one in the feed's contract; a feed without a contract
    has no drops (nor with ``extension=""``). Rejected files are not drops
    (:func:`orchestration.lib.landing.scan_landing` reports them)."""
    if extension is None:
        extension = contract_extensions().get((partner, feed), "")
    if not extension:
        return []
    return [Drop(partner, feed, f.path, f.drop_date, f.modified)
            for f in scan_feed(Path(landing), partner, feed, extension) if f.drop_date is not None]


def pending_partitions(
    drops: Iterable[Drop],
    loaded_at: Mapping[str, float],
    *,
    full: bool = False,
    valid_partitions: Iterable[str] | None = None,
) -> list[str]:
    """Partitions with a drop that is new or changed since the partition was last loaded, sorted.

    Args:
        drops: one feed's drops (see :func:`list_drops`).
        loaded_at: partition key -> POSIX timestamp of its last successful load.
        full: every partition that has a drop, loaded or not (a full rebuild).
        valid_partitions: if given, partitions outside it (e.g. before ``PARTITION_START``) are left out.
    """
    valid = set(valid_partitions) if valid_partitions is not None else None
    latest: dict[str, float] = {}
    for drop in drops:
        latest[drop.partition] = max(latest.get(drop.partition, 0.0), drop.modified)
    pending = []
    for partition, modified in latest.items():
        if valid is not None and partition not in valid:
            continue
        if full or partition not in loaded_at or modified > loaded_at[partition]:
            pending.append(partition)
    return sorted(pending)
