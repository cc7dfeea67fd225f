"""The nightly refresh of the real code location does only what one new drop month needs, with the same result.

On a copy of the tiny county with its newest month held back: ``refresh --full``, then the held-back month lands
and ``placelink refresh`` (what the 02:00 schedule does) runs. It must load only that month, rebuild only what
depends on the feeds (no reference tables, no dimensions, no model training) with dbt's incremental models
adding months instead of being rebuilt, run checks only on what it materialised, and leave the marts exactly
as a full refresh of the same drops does (the shared end-to-end home, refreshed in full from scratch).
"""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import pytest

from orchestration.lib.config import get_settings
from orchestration.runner import instance_for, refresh

pytestmark = pytest.mark.slow

#: place-level aggregates by month over every month (person keys are left out: an incremental linkage may merge
#: a person's keys later, which the nightly does not rewrite into months it does not rebuild)
AGGREGATES = {
    "lsoa": "select month, indicator, count(*), sum(event_count), sum(population), round(sum(rate_per_1000), 6) "
            "from marts.lsoa_monthly_indicators group by 1, 2 order by 1, 2",
    "events": "select event_month, feed, count(*), count(distinct lsoa_code), count(distinct uprn) "
              "from intermediate.int_events_joined_to_places group by 1, 2 order by 1, 2",
    "district": "select month, district_code, indicator, sum(event_count) from marts.district_monthly_indicators "
                "group by 1, 2, 3 order by 1, 2, 3",
    "published": "select month, geography_level, count(*), sum(coalesce(event_count, 0)), count(event_count) "
                 "from published.place_monthly_indicators group by 1, 2 order by 1, 2",
}


def _aggregates(warehouse) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        out = {name: con.execute(sql).fetchall() for name, sql in AGGREGATES.items()}
        out["months_of_new_partition"] = con.execute(
            "select distinct event_month from intermediate.int_events_joined_to_places "
            "where partition_month = (select max(partition_month) from intermediate.int_events_joined_to_places) "
            "order by 1").fetchall()
    return out


def _materialised(instance, run_id) -> list[tuple[str, str | None]]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return [(r.event_log_entry.dagster_event.asset_key.to_user_string(), r.event_log_entry.dagster_event.partition)
            for r in records]


def _checked(instance, run_id) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    return {r.event_log_entry.dagster_event.event_specific_data.asset_key.to_user_string() for r in records}


@pytest.fixture(scope="module")
def refreshed(tiny_county, request, tmp_path_factory):
    root = tmp_path_factory.mktemp("incremental")
    home, held = root / "home", root / "held"
    shutil.copytree(tiny_county, home)
    drops = sorted((home / "landing").glob("*/*/*.*"))
    month = max(p.name[:7] for p in drops)
    for path in (p for p in drops if p.name.startswith(month)):
        target = held / path.relative_to(home / "landing")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    settings = get_settings(home=home, env="local").ensure()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PLACELINK_HOME", str(home))
        full = refresh(full=True, settings=settings, log_level="WARNING")
        for path in sorted(held.glob("*/*/*.*")):
            target = home / "landing" / path.relative_to(held)
            shutil.copy2(path, target)
        nightly = refresh(settings=settings, log_level="WARNING")
        after_nightly = _aggregates(settings.warehouse_db)
    # the same drops refreshed in full from scratch (the shared end-to-end home, built meanwhile by the other
    # xdist worker: asked for only now)
    after_full = _aggregates(request.getfixturevalue("full_refresh_warehouse"))
    return settings, f"{month}-01", full, nightly, after_nightly, after_full


def test_nightly_loads_only_the_new_month_and_rebuilds_only_its_descendants(refreshed):
    settings, month, full, nightly, *_ = refreshed
    assert full.success and nightly.success
    assert [r.label for r in nightly.runs] == [f"month {month}", "downstream"]
    instance = instance_for(settings)
    load, downstream = (_materialised(instance, r.run_id) for r in nightly.runs)
    assert load and all(key.startswith("raw/") and partition == month for key, partition in load)

    built = {key for key, _ in downstream}
    assert {"link/person_index", "intermediate/int_events_joined_to_places", "marts/lsoa_monthly_indicators",
            "published/place_monthly_indicators", "published/files", "quality/feed_scorecard"} <= built
    assert any(k.startswith("src/") for k in built)
    # not nightly: reference tables and what only they feed, and model training (weekly / --full / placelink train)
    # (marts/dim_calendar is built from the events' months, so it does run)
    assert not {k for k in built if k.startswith(("ref/", "staging/stg_reference__", "seeds/"))}
    assert not built & {"marts/dim_lsoa", "marts/dim_msoa", "marts/dim_ward", "marts/dim_district"}
    assert not {k for k in built if k.endswith("_training")}
    # the full refresh did build them
    full_built = {key for r in full.runs for key, _ in _materialised(instance, r.run_id)}
    assert {"ref/lsoas", "marts/dim_lsoa", "ml/household_risk_training", "ml/lsoa_demand_training"} <= full_built
    assert len(built) < len(full_built)

    # checks ran on what this refresh materialised, and only on that
    for run, materialised in zip(nightly.runs, (load, downstream), strict=True):
        checked = _checked(instance, run.run_id)
        assert checked and checked <= {key for key, _ in materialised}


def test_nightly_dbt_is_incremental_and_full_is_a_full_refresh(refreshed):
    settings, _, full, nightly, *_ = refreshed
    instance = instance_for(settings)

    def op_config(result, op):
        run = instance.get_run_by_id(result.runs[-1].run_id)
        return (run.run_config.get("ops") or {}).get(op, {}).get("config", {})

    # --full: dbt --full-refresh and a full person re-link; nightly: incremental dbt and incremental linkage
    assert op_config(full, "placelink_dbt_models") == {"full_refresh": True}
    assert op_config(full, "matching") == {"full": True}
    assert op_config(nightly, "placelink_dbt_models") == {} and op_config(nightly, "matching") == {}
    # only new months were loaded: disclosure control re-protects just the months of the new rows
    run_id = nightly.runs[-1].run_id
    assert instance.get_run_by_id(run_id).tags.get("placelink/months")
    messages = [e.user_message for e in instance.all_logs(run_id)]
    assert any("published table: disclosure control for months" in m for m in messages)

    # dbt ran under the home (not in dbt_project/target) and reused the parse its previous build left there: the
    # months go in an env var, not --vars, and the state is the home's own (a profile holding another home's
    # warehouse path, or a new --vars value, makes dbt re-parse the whole project every night)
    from orchestration.lib import dbt_runner

    target = dbt_runner.target_dir(settings)
    assert (target / "partial_parse.msgpack").exists()
    logs = list(target.glob(f"placelink_dbt_models-{run_id[:7]}-*/dbt.log"))
    assert len(logs) == 1
    log = logs[0].read_text()
    command = [m for m in messages if m.startswith("Running dbt command")]
    assert command and "--vars" not in command[0]
    assert "Unable to do partial parsing" not in log and "Partial parse save file not found" not in log
    assert "place_monthly_indicators" in log


def test_nightly_marts_equal_a_full_refresh_of_the_same_drops(refreshed):
    *_, after_nightly, after_full = refreshed
    # the new partition's rows reached the marts: their months have events in the LSOA mart
    new_months = {m for (m,) in after_nightly["months_of_new_partition"]}
    assert new_months
    assert sum(row[3] for row in after_nightly["lsoa"] if row[0] in new_months) > 0
    for name in AGGREGATES:
        assert after_nightly[name] == after_full[name], name
    assert after_nightly == after_full
