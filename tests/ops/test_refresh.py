"""placelink refresh: only new or changed months are loaded, then downstream once; runs land in the instance."""

from __future__ import annotations

import time

import dagster as dg
import duckdb
import pytest

from orchestration.lib.errors import PlacelinkError
from orchestration.runner import instance_for, refresh
from tests.ops.conftest import write_drop


def _rows(path, sql):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_incremental_then_noop_then_changed_then_full(settings, fixture_defs):
    old = time.time() - 3600
    write_drop("police", "street_crimes", "2025-01-04", ["c1", "c2"], mtime=old)
    write_drop("police", "street_crimes", "2025-02-04", ["c3"], mtime=old)
    write_drop("nhs", "ae_attendances", "2025-02-06", ["a1"], mtime=old)
    seen = []

    first = refresh(defs=fixture_defs, progress=lambda m, d, t: seen.append((m, d, t)))
    assert [r.label for r in first.runs] == ["month 2025-01-01", "month 2025-02-01", "downstream"]
    assert first.runs[0].assets == ["raw/police__street_crimes"]
    assert first.runs[1].assets == ["raw/nhs__ae_attendances", "raw/police__street_crimes"]
    assert first.runs[2].assets == ["link/person_records", "marts/lsoa_monthly_indicators"]
    assert seen[0] == ("loading month 2025-01-01: 1 asset(s)", 0, 3) and seen[-1] == ("done", 3, 3)
    assert _rows(settings.identifiable_db, "select count(*) from link.person_records") == [(4,)]

    # nothing new: no runs at all
    assert refresh(defs=fixture_defs).runs == []

    # the partner re-sends February: only February of that feed is reloaded, then downstream
    write_drop("police", "street_crimes", "2025-02-04", ["c3", "c4"])
    again = refresh(defs=fixture_defs)
    assert [(r.label, r.assets) for r in again.runs[:1]] == [("month 2025-02-01", ["raw/police__street_crimes"])]
    assert _rows(settings.identifiable_db, "select count(*) from link.person_records") == [(5,)]

    full = refresh(full=True, defs=fixture_defs)
    assert [r.label for r in full.runs] == ["month 2025-01-01", "month 2025-02-01", "downstream"]
    assert _rows(settings.identifiable_db, "select count(*) from link.person_records") == [(5,)]

    # every run is in the persistent instance the UI reads, tagged with its refresh
    instance = instance_for(settings)
    runs = instance.get_runs()
    assert len(runs) == 3 + 2 + 3
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert (settings.dagster_home / "dagster.yaml").read_text().startswith("# Dagster instance, local profile")
    assert instance.get_materialized_partitions(dg.AssetKey(["raw", "nhs__ae_attendances"])) == {"2025-02-01"}

    # every materialisation of every refresh run is in the audit trail, once, with its run and partition
    from orchestration.lib.governance.audit import read_events, verify

    events = read_events(settings)
    materialised = [e for e in events if e.get("action") == "ingest"]
    assert {(e["target"], _details(e).get("partition")) for e in materialised} >= {
        ("raw.police__street_crimes", "2025-01-01"), ("raw.nhs__ae_attendances", "2025-02-01")}
    run_ids = {_details(e)["run_id"] for e in events if "run_id" in _details(e)}
    assert run_ids == {r.run_id for r in runs}
    assert verify(settings).ok


def _details(event):
    import json

    details = event.get("details") or {}
    return json.loads(details) if isinstance(details, str) else details


def test_a_data_error_fails_the_refresh_without_retries_and_skips_downstream(settings, fixture_defs):
    write_drop("police", "street_crimes", "2025-01-04", ["ok", "BROKEN"])
    with pytest.raises(PlacelinkError, match=r"1 refresh run\(s\) failed: month 2025-01-01 .*downstream not rebuilt"):
        refresh(defs=fixture_defs)
    instance = instance_for(settings)
    [run] = instance.get_runs()
    events = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
    assert len(events) == 1  # PlacelinkError -> Failure(allow_retries=False): no second attempt
    failure = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)[0]
    assert "row is not CSV" in failure.dagster_event.step_failure_data.error.message


def test_the_code_location_is_bound_to_the_home_being_refreshed(tmp_path, monkeypatch):
    """One process refreshing a second home (a test run, a script) must not write to the home the code location
    was first imported for: CI once saw the matching asset read another test's home."""
    from orchestration.definitions import defs
    from orchestration.lib.config import get_settings
    from orchestration.runner import _load_defs

    first = get_settings(home=tmp_path / "a")
    other = get_settings(home=tmp_path / "b")
    monkeypatch.setenv("PLACELINK_HOME", str(first.home))
    for s in (first, other):
        bound = _load_defs(s).resources
        assert bound["identifiable_db"].database == str(s.identifiable_db)
        assert bound["warehouse_db"].database == str(s.warehouse_db)
    assert _load_defs(other) is _load_defs(other)  # built once per home
    # and the assets read the refreshed home from their settings resource; the environment is left alone
    assert _load_defs(other).resources["placelink_settings"].get() == other
    assert get_settings().home == first.home
    assert defs.resources["identifiable_db"].database != str(other.identifiable_db)
