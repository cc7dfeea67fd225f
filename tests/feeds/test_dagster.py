"""Feeds in Dagster: a real in-process partition run, a failing feed stops its downstream, the sensor."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from orchestration.defs.feeds import build_feed_definitions
from orchestration.defs.feeds.assets import build_feed_assets
from orchestration.defs.resources import settings_resource
from orchestration.lib.config import get_settings
from orchestration.lib.contracts import load_contracts
from tests.feeds.conftest import CONTRACTS, VISITS_HEADER, write_attendances, write_visits
from tests.support import daemon_ticks


@pytest.fixture
def feed_defs(acme_home, monkeypatch):
    monkeypatch.setenv("PLACELINK_HOME", str(acme_home))
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "cd" * 32)
    return dg.Definitions.merge(build_feed_definitions(load_contracts(CONTRACTS)),
                                dg.Definitions(resources=_resources(acme_home)))


def _resources(home):
    return {"identifiable_db": DuckDBResource(database=str(home / "identifiable.duckdb")),
            "warehouse_db": DuckDBResource(database=str(home / "warehouse.duckdb")),
            "placelink_settings": settings_resource(get_settings(home=home))}


def _assets(*keys):
    wanted = [dg.AssetKey.from_user_string(k) for k in keys]
    return [a for a in build_feed_assets(load_contracts(CONTRACTS)) if a.key in wanted]


def test_feed_asset_partition_run_records_metadata(feed_defs, acme_home):
    write_visits(acme_home)
    result = dg.materialize(_assets("raw/acme__visits", "src/acme__visits"),
                            partition_key="2025-03-01", resources=_resources(acme_home))
    assert result.success
    mat = result.asset_materializations_for_node("raw__acme__visits")[0]
    md = mat.metadata
    assert (md["rows_received"].value, md["rows_loaded"].value, md["rows_quarantined"].value) == (7, 3, 4)
    assert md["quarantined_by_reason"].value == {"bad_encoding": 1, "invalid_date": 1,
                                                 "national_data_opt_out": 1, "wrong_column_count": 1}
    assert md["columns_dropped_by_agreement"].value == ["Notes"]
    assert md["source_files"].value[0]["file"] == "landing/acme/visits/2025-03-04.csv"
    assert "Zoë" not in md["preview (identifiers masked)"].value
    with duckdb.connect(str(acme_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM src.acme__visits").fetchone()[0] == 2


def test_asset_carries_contract_facts(feed_defs):
    graph = feed_defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey(["raw", "acme__visits"]))
    assert node.group_name == "acme" and node.owners == ["data.protection@acme.example"]
    assert node.tags["agreement"] == "DSA-ACME-2024-01" and node.pools == {"identifiable_writer"}
    assert "Home visits" in node.description and node.partitions_def is not None
    src = graph.get(dg.AssetKey(["src", "acme__visits"]))
    assert src.group_name == "pseudonymised" and dg.AssetKey(["link", "person_index"]) in src.parent_keys
    assert {j.name for j in feed_defs.resolve_all_job_defs()} >= {"acme_ingest_job", "all_feeds_ingest_job"}


def test_schema_change_fails_the_feed_and_stops_its_downstream(feed_defs, acme_home):
    write_visits(acme_home, header=VISITS_HEADER.replace("Surname", "Family Name"))
    job = feed_defs.resolve_job_def("acme_ingest_job")
    result = job.execute_in_process(partition_key="2025-03-01", raise_on_error=False)
    assert not result.success
    failed = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failed] == ["raw__acme__visits"]
    assert "missing: ['Surname']" in failed[0].event_specific_data.error.to_string()
    materialised = {e.asset_key.to_user_string() for e in result.all_events if e.is_step_materialization}
    assert "src/acme__visits" not in materialised and "raw/acme__visits" not in materialised


def test_sensor_requests_each_drop_once(feed_defs, acme_home):
    sensor = next(s for s in feed_defs.sensors if s.name == "landing_drop_sensor")
    visits = write_visits(acme_home)
    write_attendances(acme_home)
    with dg.instance_for_test() as instance:
        first = daemon_ticks.tick(sensor, feed_defs, instance)
        keys = sorted(r.run_key for r in first.run_requests)
        assert len(keys) == 2 and keys[1].startswith("landing/acme/visits/2025-03-04.csv:")
        assert {r.partition_key for r in first.run_requests} == {"2025-03-01"}
        assert [r.asset_selection for r in first.run_requests if "visits" in r.run_key] == [
            [dg.AssetKey(["raw", "acme__visits"])]]
        again = daemon_ticks.tick(sensor, feed_defs, instance, cursor=first.cursor)
        assert again.run_requests == []                           # nothing new: nothing requested
        visits.touch()                                            # same bytes, new mtime: still nothing
        touched = daemon_ticks.tick(sensor, feed_defs, instance, cursor=again.cursor)
        assert touched.run_requests == []
        write_visits(acme_home, rows=["V9;09/03/2025;A;B;01/01/2001;F;SH1 2AB;;;1"])  # corrected re-send
        changed = daemon_ticks.tick(sensor, feed_defs, instance, cursor=touched.cursor)
        assert len(changed.run_requests) == 1 and changed.run_requests[0].run_key not in keys
        assert json.loads(changed.cursor)["landing/acme/visits/2025-03-04.csv"][2] in changed.run_requests[0].run_key
