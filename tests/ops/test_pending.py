"""A month whose downstream did not complete stays pending until it has: the planner reads what is *pending*.

The rule on plain numbers (:func:`orchestration.lib.ops.pending.unfinished_partitions`), then the nightly plan on
the small graph of test_incremental_plan.py with materialisations reported straight to an ephemeral instance.
"""

from __future__ import annotations

import dagster as dg
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from orchestration.defs.ops.planning import completed_at, plan_catch_up, plan_refresh
from orchestration.lib.ops.pending import unfinished_partitions
from tests.ops.test_incremental_plan import (
    DIM,
    MART,
    REF,
    SCORES,
    SRC_A,
    SRC_B,
    TRAIN,
    A,
    B,
    _graph,
    _materialised,
)

JAN, FEB, MAR = "2025-01-01", "2025-02-01", "2025-03-01"


def test_a_month_loaded_after_the_downstream_last_completed_is_unfinished():
    # January loaded at 10, downstream done at 20 and 25; February loaded at 30
    u = unfinished_partitions({JAN: [10], FEB: [30]}, [20, 25])
    assert u.partitions == [FEB] and not u.reloaded and u.newest_caught_up == JAN
    # one downstream asset (say dbt) has not completed since January: everything after its last build is pending
    u = unfinished_partitions({JAN: [10], FEB: [30]}, [5, 40])
    assert u.partitions == [JAN, FEB] and u.newest_caught_up == ""
    # a downstream asset never built has caught up with nothing; a feed with no downstream has nothing pending
    assert unfinished_partitions({JAN: [10]}, [40, None]).partitions == [JAN]
    assert unfinished_partitions({JAN: [10]}, []).partitions == []
    # January re-sent and reloaded at 30 after the downstream saw its first load: a reload, not a new month
    u = unfinished_partitions({JAN: [10, 30], FEB: [12]}, [20])
    assert u.partitions == [JAN] and u.reloaded and u.newest_caught_up == FEB


loads = st.dictionaries(st.sampled_from([JAN, FEB, MAR, "2025-04-01"]),
                        st.lists(st.integers(0, 100), min_size=1, max_size=3), max_size=4)
done = st.lists(st.one_of(st.none(), st.integers(0, 100)), min_size=1, max_size=4)


@hsettings(max_examples=150, deadline=None)
@given(loads, done, st.integers(0, 100))
def test_completing_later_never_adds_pending_months_and_every_month_is_pending_or_caught_up(history, built, later):
    u = unfinished_partitions(history, built)
    # each loaded month is pending (its latest load is after the downstream's oldest completion) or caught up
    assert set(u.partitions) <= set(history)
    for pk, times in history.items():
        assert (pk in u.partitions) == (max(times) > min(-1 if t is None else t for t in built))
    # the downstream completing again (every asset at `later` at least) can only shrink what is pending
    again = unfinished_partitions(history, [max(later, t if t is not None else later) for t in built])
    assert set(again.partitions) <= set(u.partitions)
    # and completing after every load leaves nothing
    assert unfinished_partitions(history, [101] * len(built)).partitions == []


def test_a_nightly_whose_downstream_did_not_run_leaves_its_month_to_the_next(settings):
    graph = _graph()
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(A, partition=JAN))
        instance.report_runless_asset_event(dg.AssetMaterialization(B, partition=JAN))
        _materialised(instance, REF, SRC_A, SRC_B, DIM, MART, TRAIN, SCORES)
        assert plan_refresh(graph, instance, settings.landing).empty
        # police's February loads; the night fails before its downstream (NHS's drop was bad)
        instance.report_runless_asset_event(dg.AssetMaterialization(A, partition=FEB))
        plan = plan_refresh(graph, instance, settings.landing)
        assert plan.partitions == {} and plan.unfinished == {"raw/police__street_crimes": [FEB]}
        assert plan.downstream == [MART, SCORES, SRC_A] and plan.months == [FEB]
        assert plan.new_months_only and not plan.late
        assert plan_catch_up(graph, instance).downstream == plan.downstream
        # the next night's downstream builds matching's and the mart's part, then fails before scoring: still pending
        _materialised(instance, SRC_A, MART)
        assert plan_refresh(graph, instance, settings.landing).unfinished == {"raw/police__street_crimes": [FEB]}
        _materialised(instance, SCORES)
        assert plan_refresh(graph, instance, settings.landing).empty


def test_an_unfinished_late_or_corrected_month_rebuilds_incremental_models_from_scratch(settings):
    graph = _graph()
    with dg.DagsterInstance.ephemeral() as instance:
        for pk in (JAN, FEB, MAR):
            instance.report_runless_asset_event(dg.AssetMaterialization(A, partition=pk))
        _materialised(instance, REF, SRC_A, SRC_B, DIM, MART, TRAIN, SCORES)
        # a corrected January loads after March was built; its downstream fails
        instance.report_runless_asset_event(dg.AssetMaterialization(A, partition=JAN))
        plan = plan_refresh(graph, instance, settings.landing)
        assert plan.unfinished == {"raw/police__street_crimes": [JAN]}
        assert plan.late and plan.reloaded and not plan.new_months_only


def test_a_downstream_run_that_succeeds_without_materialising_an_optional_asset_completes_it():
    """Scoring materialises nothing when no model passed the ethics gate; its successful run still counts, a
    failed one does not."""
    broken = {"now": False}

    @dg.asset
    def mart():
        return 1

    @dg.asset(deps=[mart], output_required=False)
    def scores():
        if broken["now"]:
            raise OSError("disk full")
        if False:
            yield dg.Output(1)

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([mart, scores], instance=instance)
        assert result.success and instance.get_latest_materialization_event(scores.key) is None
        start = instance.get_run_record_by_id(result.run_id).start_time
        assert completed_at(instance, [scores.key]) == {scores.key: start}
        broken["now"] = True
        assert not dg.materialize([mart, scores], instance=instance, raise_on_error=False).success
        assert completed_at(instance, [scores.key]) == {scores.key: None}
