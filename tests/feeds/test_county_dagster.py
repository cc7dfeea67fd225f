"""Every feed of the synthetic county loads through the landing sensor and through a backfill in Dagster."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from orchestration.defs.feeds import build_feed_definitions
from orchestration.defs.resources import settings_resource
from orchestration.lib.config import get_settings
from orchestration.lib.contracts import load_contracts
from orchestration.lib.feeds import drop_partition
from tests.support import daemon_ticks


@pytest.fixture
def county_defs(tiny_county, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(tiny_county, home)
    monkeypatch.setenv("PLACELINK_HOME", str(home))
    resources = {"identifiable_db": DuckDBResource(database=str(home / "identifiable.duckdb")),
                 "warehouse_db": DuckDBResource(database=str(home / "warehouse.duckdb")),
                 "placelink_settings": settings_resource(get_settings(home=home))}
    defs = dg.Definitions.merge(build_feed_definitions(load_contracts()), dg.Definitions(resources=resources))
    return home, defs


def _received(home) -> dict:
    with duckdb.connect(str(home / "identifiable.duckdb"), read_only=True) as con:
        return dict(((p, f), n) for p, f, n in con.execute(
            "SELECT partner, feed, sum(rows_received)::BIGINT FROM ops.load_log GROUP BY ALL").fetchall())


def _truth(home) -> dict:
    records = pd.read_parquet(home / "truth" / "records.parquet")
    return {k: int(v) for k, v in records.groupby(["partner", "feed"]).size().items()}


@pytest.mark.slow
def test_sensor_requests_every_drop_once_and_its_runs_load_the_month(county_defs):
    home, defs = county_defs
    sensor = next(s for s in defs.sensors if s.name == "landing_drop_sensor")
    drops = sorted(p for p in (home / "landing").rglob("*") if p.is_file())
    with dg.instance_for_test() as instance:
        tick = daemon_ticks.tick(sensor, defs, instance)
        assert len(tick.run_requests) == len(drops) and len({r.run_key for r in tick.run_requests}) == len(drops)
        for request in tick.run_requests:
            path = home / request.run_key.rsplit(":", 1)[0]
            assert request.partition_key == drop_partition(path)
            assert request.asset_selection == [dg.AssetKey(["raw", f"{path.parts[-3]}__{path.parts[-2]}"])]
        again = daemon_ticks.tick(sensor, defs, instance, cursor=tick.cursor)
        assert again.run_requests == []
        # run what the daemon would launch for one month (every feed drops that month), in process;
        # the backfill test below loads every month
        month = "2025-06-01"
        job = defs.resolve_job_def("all_feeds_ingest_job")
        runs = [r for r in tick.run_requests if r.partition_key == month]
        assert {r.asset_selection[0] for r in runs} == {k for k in job.asset_layer.executable_asset_keys}
        for request in runs:
            result = job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                            asset_selection=request.asset_selection,
                                            tags={**request.tags, "dagster/run_key": request.run_key})
            assert result.success
    records = pd.read_parquet(home / "truth" / "records.parquet")
    in_month = records[records["file"].map(lambda f: drop_partition(home / f)) == month]
    assert _received(home) == {k: int(v) for k, v in in_month.groupby(["partner", "feed"]).size().items()}


@pytest.mark.slow
def test_backfill_of_every_month_loads_every_feed(county_defs):
    home, defs = county_defs
    partitions = sorted({drop_partition(p) for p in (home / "landing").rglob("*") if p.is_file()})
    job = defs.resolve_job_def("all_feeds_ingest_job")
    with dg.instance_for_test() as instance:
        # a backfill of the feed assets is ONE run over the month range (BackfillPolicy.single_run)
        result = job.execute_in_process(instance=instance, tags={
            "dagster/asset_partition_range_start": partitions[0],
            "dagster/asset_partition_range_end": partitions[-1]})
        assert result.success
        materialised = instance.get_materialized_partitions(dg.AssetKey(["raw", "nhs__ae_attendances"]))
    assert set(partitions) <= materialised
    assert _received(home) == _truth(home)
