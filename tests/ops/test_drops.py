"""Which drops are new: pure functions over a landing folder."""

from __future__ import annotations

import os

from orchestration.lib.ops.drops import feed_of_asset_key, list_drops, partition_of_drop, pending_partitions
from tests.ops.conftest import write_drop


def test_drop_fills_the_month_of_its_drop_date(tmp_path):
    assert partition_of_drop(tmp_path / "2025-03-04.csv") == "2025-03-01"
    assert partition_of_drop(tmp_path / "2025-02-30.csv") is None  # impossible date
    assert partition_of_drop(tmp_path / "notes.txt") is None


def test_feed_of_asset_key():
    assert feed_of_asset_key(["raw", "police__street_crimes"]) == ("police", "street_crimes")
    assert feed_of_asset_key(["link", "person_records"]) is None
    assert feed_of_asset_key(["raw", "nounderscores"]) is None


def test_pending_partitions_new_changed_and_loaded(settings):
    write_drop("police", "street_crimes", "2025-01-04", ["a"], mtime=1000)
    write_drop("police", "street_crimes", "2025-02-04", ["b"], mtime=2000)
    write_drop("police", "street_crimes", "2025-02-20", ["late"], mtime=3000)  # second drop, same month
    (settings.landing / "police" / "street_crimes" / ".partial").write_text("x")
    drops = list_drops(settings.landing, "police", "street_crimes")
    assert [d.path.name for d in drops] == ["2025-01-04.csv", "2025-02-04.csv", "2025-02-20.csv"]

    assert pending_partitions(drops, {}) == ["2025-01-01", "2025-02-01"]
    # January loaded after its drop; February loaded before its late drop arrived -> only February
    assert pending_partitions(drops, {"2025-01-01": 1500, "2025-02-01": 2500}) == ["2025-02-01"]
    assert pending_partitions(drops, {"2025-01-01": 1500, "2025-02-01": 3500}) == []
    assert pending_partitions(drops, {"2025-01-01": 1500, "2025-02-01": 3500}, full=True) == [
        "2025-01-01", "2025-02-01"]
    assert pending_partitions(drops, {}, valid_partitions=["2025-02-01"]) == ["2025-02-01"]


def test_missing_feed_folder_has_no_drops(settings):
    assert list_drops(settings.landing, "fire", "safe_and_well_visits") == []
    os.makedirs(settings.landing / "fire", exist_ok=True)
    assert list_drops(settings.landing, "fire", "safe_and_well_visits") == []
