"""Which partner drops have landed since their partition was last loaded.

A drop is ``landing/<partner>/<feed>/<YYYY-MM-DD>.<ext>`` and fills the monthly partition of its drop
date (``2025-03-04`` -> ``2025-03-01``, docs/architecture.md). A partition needs loading when it has never
been loaded or one of its drops changed (file modified) after the last successful load. The caller says
when each partition was last loaded (the nightly schedule and ``placelink refresh`` read that from the
Dagster instance), so this module stays free of Dagster and is tested on plain folders.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

_DROP_NAME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[._-].*)?$")


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


def partition_of_drop(path: Path) -> str | None:
    """Monthly partition key (``YYYY-MM-01``) of a drop file, or None if the name is not a drop date."""
    match = _DROP_NAME.match(Path(path).name)
    if not match:
        return None
    try:
        day = dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
    return day.replace(day=1).isoformat()


def list_drops(landing: Path, partner: str, feed: str) -> list[Drop]:
    """Every drop file of one feed, oldest first. Hidden files and non-date names are ignored."""
    folder = Path(landing) / partner / feed
    if not folder.is_dir():
        return []
    drops = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        match = _DROP_NAME.match(path.name)
        if not match or partition_of_drop(path) is None:
            continue
        day = dt.date(int(match[1]), int(match[2]), int(match[3]))
        drops.append(Drop(partner, feed, path, day, path.stat().st_mtime))
    return drops


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
