"""The nightly (incremental) plan rebuilds only what depends on the feeds it loaded; ``--full`` rebuilds everything.

A small graph shaped like placelink's: two monthly feeds, a reference table, matching, a mart, model training
(``placelink/nightly: skip``) and scoring. Materialisations are reported straight to an ephemeral instance, so
no run is needed to say "this was built before".
"""

from __future__ import annotations

import dagster as dg

from orchestration.defs.ops.planning import NIGHTLY_TAG, downstream_of, plan_refresh
from tests.ops.conftest import write_drop

MONTHLY = dg.MonthlyPartitionsDefinition(start_date="2024-11-01", end_offset=1)
A, B = dg.AssetKey(["raw", "police__street_crimes"]), dg.AssetKey(["raw", "nhs__ae_attendances"])
REF, SRC_A, SRC_B = dg.AssetKey(["ref", "lsoas"]), dg.AssetKey(["src", "police__street_crimes"]), \
    dg.AssetKey(["src", "nhs__ae_attendances"])
DIM, MART = dg.AssetKey(["marts", "dim_lsoa"]), dg.AssetKey(["marts", "lsoa_monthly_indicators"])
TRAIN, SCORES = dg.AssetKey(["ml", "lsoa_demand_training"]), dg.AssetKey(["ml", "lsoa_demand_forecasts"])


def _graph():
    specs = [
        dg.AssetSpec(A, partitions_def=MONTHLY), dg.AssetSpec(B, partitions_def=MONTHLY),
        dg.AssetSpec(REF), dg.AssetSpec(SRC_A, deps=[A, REF]), dg.AssetSpec(SRC_B, deps=[B, REF]),
        dg.AssetSpec(DIM, deps=[REF]), dg.AssetSpec(MART, deps=[SRC_A, SRC_B, DIM]),
        dg.AssetSpec(TRAIN, deps=[MART], tags={NIGHTLY_TAG: "skip"}), dg.AssetSpec(SCORES, deps=[TRAIN]),
    ]

    @dg.multi_asset(specs=specs, can_subset=True)
    def _all(context):  # never executed: planning reads the graph only
        for key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=key)

    return dg.Definitions(assets=[_all]).resolve_asset_graph()


def _materialised(instance, *keys):
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(key))


def test_first_nightly_builds_everything_it_needs_including_training(settings):
    graph = _graph()
    with dg.DagsterInstance.ephemeral() as instance:
        assert set(downstream_of(graph, instance, [A])) == {REF, SRC_A, SRC_B, DIM, MART, TRAIN, SCORES}


def test_nightly_rebuilds_descendants_of_the_loaded_feed_and_scores_without_training(settings):
    graph = _graph()
    with dg.DagsterInstance.ephemeral() as instance:
        _materialised(instance, REF, SRC_A, SRC_B, DIM, MART, TRAIN, SCORES)
        # a police drop: its pseudonymised source, the mart and the scores; not NHS's source, not the reference
        # table or the dimension built from it, not training (weekly)
        assert downstream_of(graph, instance, [A]) == [MART, SCORES, SRC_A]


def test_plan_nightly_vs_full(settings):
    graph = _graph()
    write_drop("police", "street_crimes", "2025-01-04", ["c1"])
    with dg.DagsterInstance.ephemeral() as instance:
        _materialised(instance, REF, SRC_A, SRC_B, DIM, MART, TRAIN, SCORES)
        nightly = plan_refresh(graph, instance, settings.landing)
        assert nightly.partitions == {"2025-01-01": [A]}
        assert nightly.downstream == [MART, SCORES, SRC_A]
        full = plan_refresh(graph, instance, settings.landing, full=True)
        assert set(full.downstream) == {REF, SRC_A, SRC_B, DIM, MART, TRAIN, SCORES}


def test_ml_training_is_weekly_and_not_nightly():
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    training = {k.to_user_string() for k in graph.get_all_asset_keys()
                if graph.get(k).tags.get(NIGHTLY_TAG) == "skip"}
    assert training == {"ml/household_risk_training", "ml/lsoa_demand_training"}
    schedule = defs.resolve_schedule_def("ml_weekly_training_schedule")
    assert schedule.cron_schedule == "0 3 * * 0" and schedule.execution_timezone == "Europe/London"
    assert schedule.job_name == "ml_train_and_score_job"


def test_month_ranges_group_consecutive_months_only():
    from orchestration.defs.ops.planning import month_ranges

    graph = _graph()
    plan = {"2025-01-01": [A], "2025-02-01": [B], "2025-03-01": [A], "2025-06-01": [A]}
    # a late January drop and new February/March: one run; June alone (April and May are not reloaded)
    assert month_ranges(graph, plan) == [(["2025-01-01", "2025-02-01", "2025-03-01"], [B, A]),
                                         (["2025-06-01"], [A])]


def test_a_drop_older_than_the_newest_loaded_month_is_late(settings):
    graph = _graph()
    write_drop("police", "street_crimes", "2025-03-04", ["c1"])
    with dg.DagsterInstance.ephemeral() as instance:
        # February was loaded and then the downstream built (what it holds is what it completed after)
        instance.report_runless_asset_event(dg.AssetMaterialization(B, partition="2025-02-01"))
        _materialised(instance, REF, SRC_A, SRC_B, DIM, MART, TRAIN, SCORES)
        assert not plan_refresh(graph, instance, settings.landing).late  # a new month
        write_drop("nhs", "ae_attendances", "2025-01-20", ["a1"])  # January, after February was loaded
        late = plan_refresh(graph, instance, settings.landing)
        assert late.late and sorted(late.partitions) == ["2025-01-01", "2025-03-01"]


def test_full_refresh_relinks_people_but_a_late_drop_only_rebuilds_dbt():
    """``refresh --full`` passes matching ``full: true`` (a full person re-link) and dbt ``--full-refresh``; a late
    drop needs only the latter, its records join the index incrementally. Checked on the real code location, so a
    renamed op or config field fails here."""
    from orchestration.definitions import defs
    from orchestration.defs.matching.assets import MatchingConfig
    from orchestration.defs.ops.planning import full_refresh_op_config

    graph = defs.resolve_asset_graph()
    keys = list(graph.get_all_asset_keys())
    full = full_refresh_op_config(graph, keys, relink=True)
    late = full_refresh_op_config(graph, keys)
    assert full["matching"] == {"config": {"full": True}} and "matching" not in late
    assert full["placelink_dbt_models"] == late["placelink_dbt_models"] == {"config": {"full_refresh": True}}
    assert MatchingConfig(**full["matching"]["config"]).full
