"""What a refresh has to run, worked out from the asset graph, the landing folder and run history.

Generic over whatever the merged code location holds: time-partitioned assets keyed
``raw/<partner>__<feed>`` are the feeds (their drops live in ``landing/<partner>/<feed>/``); their
time-partitioned descendants run in the same per-partition run. Unpartitioned assets are "downstream" and
run once afterwards:

- nightly (incremental): only the unpartitioned descendants of the feeds that loaded something, plus any
  asset never materialised in this instance (a new home, a new model) and its descendants. Assets tagged
  ``placelink/nightly: skip`` (model training: weekly, or ``placelink train``) are left out once they have
  been materialised; their descendants (scoring with the champion) still run.
- ``--full``: every unpartitioned asset.

What is pending is read from the instance, never from what the last run *meant* to do: a partition is pending
while no successful load of it is newer than its drops (:func:`~orchestration.lib.ops.drops.pending_partitions`),
and a loaded partition stays pending for the downstream while any unpartitioned asset that depends on its feed
has not completed since it was loaded (:func:`~orchestration.lib.ops.pending.unfinished_partitions`): a nightly
whose downstream failed or was skipped leaves its months to the next one (``RefreshPlan.unfinished``).

Shared by the nightly schedule, its downstream sensors and ``placelink refresh``.

Why a planner of our own rather than Dagster's declarative automation (``AutomationCondition``): the same plan
must run synchronously in one process with no daemon (``placelink refresh``, ``make demo``, the CLI's stage
commands), where automation conditions are only evaluated by the daemon's sensor; the plan is also made from
things outside the asset graph (files in ``landing/`` and their dates, the erasure and opt-out lists) and batches
months into single runs per feed (one DuckDB writer per zone). Dagster's own pieces are used where they fit:
partitions, single-run backfill policies, concurrency pools, run tags and the instance's materialisation records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from orchestration.lib.landing import LandingFile, contract_extensions, scan_landing
from orchestration.lib.ops.drops import feed_of_asset_key, list_drops, pending_partitions
from orchestration.lib.ops.pending import unfinished_partitions

PARTITIONED = dg.AssetSelection.from_string('partitions:"time" and is:materializable')
UNPARTITIONED = dg.AssetSelection.from_string('partitions:"none" and is:materializable')

#: Dagster's run tags for a single run over a range of time partitions (a "single-run backfill"): the way Dagster's
#: maintainers document for launching one run over several partitions from code (RunRequest and
#: execute_in_process take one partition key only). Dagster keeps these names in a private module, so they are
#: written here once; tests/ops/test_partition_range_tags.py fails if Dagster's own names ever differ.
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"

#: Run tag shared by every run of one refresh, so the downstream run knows when the feeds are done.
REFRESH_TAG = "placelink/refresh"
#: Run tag on the downstream run of a nightly refresh that loaded only new months (RefreshPlan.new_months_only):
#: those partitions, comma separated, so steps that can narrow their work to the months the new rows fall in
#: (the published table's disclosure control) know which.
MONTHS_TAG = "placelink/months"
#: Run tag on the loads of such a refresh, for the downstream sensor.
NEW_MONTHS_TAG = "placelink/new_months_only"
#: Run tag on the loads of a refresh with a late drop (RefreshPlan.late): its downstream run rebuilds the
#: incremental models from scratch.
LATE_TAG = "placelink/late_drop"
#: op -> run config that rebuilds it from scratch (dbt ``--full-refresh``): ``refresh --full`` and late drops.
#: Ops missing from the code location or the run's selection are left out.
FULL_REFRESH_OP_CONFIG = {"placelink_dbt_models": {"full_refresh": True}}
#: ... and what ``refresh --full`` adds: a full person re-link (a late drop only needs dbt rebuilt from scratch;
#: its records are linked incrementally like any new ones).
FULL_RELINK_OP_CONFIG = {"matching": {"full": True}}

#: Asset tag: ``placelink/nightly: skip`` keeps an asset out of the nightly refresh once it has been
#: materialised (it runs on ``--full``, its own schedule or its CLI command).
NIGHTLY_TAG = "placelink/nightly"
NOT_NIGHTLY = dg.AssetSelection.tag(NIGHTLY_TAG, "skip")


@dataclass
class RefreshPlan:
    #: partition key -> asset keys to materialise in that partition's run (sorted partitions)
    partitions: dict[str, list[dg.AssetKey]] = field(default_factory=dict)
    #: unpartitioned assets to materialise once, after the partitions
    downstream: list[dg.AssetKey] = field(default_factory=list)
    #: feed asset -> partitions it loads (for progress messages and tests)
    feeds: dict[str, list[str]] = field(default_factory=dict)
    #: the feed assets ask for one run over a partition range (BackfillPolicy.single_run)
    single_run: bool = False
    #: a month older than the newest one already loaded is reloaded (a late or corrected drop): the incremental
    #: models, which add the partitions from the newest one they hold onwards, must be rebuilt from scratch
    late: bool = False
    #: a partition loaded before is loaded again (a corrected drop): rows may have gone, so the months a
    #: drop touches cannot be read from its new rows alone
    reloaded: bool = False
    #: feed asset -> partitions an earlier refresh loaded whose downstream has not completed since (it failed,
    #: or was skipped because another feed's load failed): this refresh's downstream brings them in
    unfinished: dict[str, list[str]] = field(default_factory=dict)
    #: landing entries the landing rule rejects (not loaded; reported by ``placelink refresh`` until fixed)
    rejected: list[LandingFile] = field(default_factory=list)
    #: the erasure or national data opt-out list changed since matching last applied it: matching and everything
    #: downstream run, rebuilt from scratch (people leave every month, not only new ones)
    exclusions_changed: bool = False

    @property
    def months(self) -> list[str]:
        """Every partition the downstream of this refresh brings in: the ones loaded now and the unfinished."""
        return sorted(set(self.partitions) | {pk for pks in self.unfinished.values() for pk in pks})

    @property
    def new_months_only(self) -> bool:
        """Every partition brought in is new and newer than what the downstream holds: downstream steps may
        narrow their work to the months the new rows fall in (MONTHS_TAG)."""
        return bool(self.months) and not (self.late or self.reloaded or self.exclusions_changed)

    @property
    def empty(self) -> bool:
        return not self.partitions and not self.downstream


def load_history(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, list[float]]:
    """Partition key -> timestamps of every materialisation (successful load) of it, from the event log."""
    history: dict[str, list[float]] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(key, limit=1000, cursor=cursor)
        for record in result.records:
            if record.partition_key is not None:
                history.setdefault(record.partition_key, []).append(record.timestamp)
        if not result.has_more:
            return history
        cursor = result.cursor


def completed_at(instance: dg.DagsterInstance, keys) -> dict[dg.AssetKey, float | None]:
    """When each asset last completed (None: never).

    The start of the last run that planned it when that run succeeded (an asset may succeed without
    materialising: scores when no model version passed the ethics gate), else its latest materialisation
    (a run that failed after building it, e.g. matching done and dbt failed, still counts for matching).
    """
    keys = list(keys)
    entries = {r.asset_entry.asset_key: r.asset_entry for r in instance.get_asset_records(keys)}
    runs = {run_id: instance.get_run_record_by_id(run_id)
            for run_id in {e.last_run_id for e in entries.values() if e.last_run_id}}
    out: dict[dg.AssetKey, float | None] = {}
    for key in keys:
        entry = entries.get(key)
        record = entry.last_materialization_record if entry else None
        materialised = record.timestamp if record else None
        run = runs.get(entry.last_run_id) if entry else None
        if run is not None and run.dagster_run.status == dg.DagsterRunStatus.SUCCESS and run.start_time:
            out[key] = max(run.start_time, materialised or run.start_time)
        else:
            out[key] = materialised
    return out


def loads_in_one_run(asset_graph, keys) -> bool:
    """Whether the feeds ``keys`` (at least one) all ask for one run over a range of months
    (``BackfillPolicy.single_run``): the refresh's planner and ``placelink ingest`` batch their loads by it."""
    keys = list(keys)
    return bool(keys) and all(asset_graph.get(k).backfill_policy is not None
                              and asset_graph.get(k).backfill_policy.max_partitions_per_run is None for k in keys)


def plan_refresh(
    asset_graph, instance: dg.DagsterInstance, landing: Path | None, *, full: bool = False,
    exclusions: str | None = None,
) -> RefreshPlan:
    """Work out the runs of a refresh.

    Args:
        asset_graph: ``defs.resolve_asset_graph()`` or a schedule context's ``repository_def.asset_graph``.
        instance: where run history (what was loaded when, what completed when) lives.
        landing: the landing folder of the home planned for (``settings.landing``); None plans no load, only the
            downstream of what is loaded and unfinished (:func:`plan_catch_up`).
        full: every partition that has a drop, whether loaded or not, and every downstream asset.
        exclusions: today's ``exclusions_fingerprint`` (erasure + opt-out lists); when the assets that apply
            them last applied another, they and their descendants are rebuilt from scratch.
    """
    partitioned = PARTITIONED.resolve(asset_graph)
    unpartitioned = UNPARTITIONED.resolve(asset_graph)
    plan = RefreshPlan()
    by_partition: dict[str, set[dg.AssetKey]] = {}
    single_run: list[dg.AssetKey] = []
    newest_caught_up = ""
    completed: dict[dg.AssetKey, float | None] = {}
    skip: set[dg.AssetKey] = set()
    if not full:
        completed = completed_at(instance, unpartitioned)
        skip = NOT_NIGHTLY.resolve(asset_graph) - never_materialised(asset_graph, instance, unpartitioned)
    extensions = contract_extensions()
    for key in sorted(partitioned, key=lambda k: k.to_user_string()):
        feed = feed_of_asset_key(key.path)
        if feed is None:
            continue
        node = asset_graph.get(key)
        history = {} if full else load_history(instance, key)
        loaded = {pk: max(times) for pk, times in history.items()}
        # by the landing rule ingest and the sensor use; a feed without a contract has no drops
        todo = [] if landing is None else pending_partitions(
            list_drops(landing, *feed, extension=extensions.get(feed, "")), loaded, full=full,
            valid_partitions=node.partitions_def.get_partition_keys())
        if not full:
            # what the nightly rebuilds for this feed; it has caught up with a load once all of it completed after
            deps = (dg.AssetSelection.assets(key).downstream().resolve(asset_graph) & unpartitioned) - skip
            unfinished = unfinished_partitions(history, [completed.get(k) for k in deps])
            newest_caught_up = max(newest_caught_up, unfinished.newest_caught_up)
            left = [pk for pk in unfinished.partitions if pk not in todo]
            if left:
                plan.unfinished[key.to_user_string()] = left
                plan.reloaded = plan.reloaded or unfinished.reloaded
        if not todo:
            continue
        plan.reloaded = plan.reloaded or any(pk in loaded for pk in todo)
        plan.feeds[key.to_user_string()] = todo
        single_run.append(key)
        for pk in todo:
            by_partition.setdefault(pk, set()).add(key)
    for pk in sorted(by_partition):
        feeds = by_partition[pk]
        # the feeds' partitioned descendants (e.g. per-month pseudonymised tables) run with them
        keys = dg.AssetSelection.assets(*feeds).downstream().resolve(asset_graph) & partitioned
        plan.partitions[pk] = sorted(keys, key=lambda k: k.to_user_string())
    plan.single_run = loads_in_one_run(asset_graph, single_run)
    plan.rejected = [f for f in scan_landing(landing, extensions) if f.reason] if landing is not None else []
    # the incremental models add partitions from the newest one they hold onwards: a month older than that is late
    plan.late = bool(plan.months) and min(plan.months) < newest_caught_up
    stale = [] if full or exclusions is None else stale_exclusions(asset_graph, instance, exclusions)
    plan.exclusions_changed = bool(stale)
    if full:
        plan.downstream = sorted(unpartitioned, key=lambda k: k.to_user_string())
    elif plan.months or stale:
        feeds = [dg.AssetKey.from_user_string(k) for k in sorted({*plan.feeds, *plan.unfinished})]
        plan.downstream = downstream_of(asset_graph, instance, [*feeds, *stale])
    return plan


def stale_exclusions(asset_graph, instance: dg.DagsterInstance, fingerprint: str) -> list[dg.AssetKey]:
    """Assets tagged ``placelink/applies_exclusions`` whose latest materialisation applied another erasure /
    opt-out list than ``fingerprint`` (one that never ran is picked up by :func:`downstream_of` anyway)."""
    from orchestration.lib.governance.erasure import EXCLUSIONS_METADATA, EXCLUSIONS_TAG

    stale = []
    for key in dg.AssetSelection.tag(EXCLUSIONS_TAG, "true").resolve(asset_graph):
        event = instance.get_latest_materialization_event(key)
        if event is None or event.asset_materialization is None:
            continue
        applied = event.asset_materialization.metadata.get(EXCLUSIONS_METADATA)
        if getattr(applied, "value", None) != fingerprint:
            stale.append(key)
    return sorted(stale, key=lambda k: k.to_user_string())


def plan_catch_up(asset_graph, instance: dg.DagsterInstance, exclusions: str | None = None) -> RefreshPlan:
    """After the loads of a refresh (whatever their outcome): the downstream of every month loaded that the
    downstream has not caught up with, this refresh's and any earlier one's, and of the assets that applied an
    older erasure / opt-out list than ``exclusions``. A feed whose load failed loaded nothing, so it adds
    nothing; its months stay pending for the next refresh. Nothing to load here."""
    return plan_refresh(asset_graph, instance, None, exclusions=exclusions)


def never_materialised(asset_graph, instance: dg.DagsterInstance, keys) -> set[dg.AssetKey]:
    """The keys of ``keys`` this instance has no materialisation of (a new home, or an asset added since).
    One query for all of them: one per key was ~100 SQLite round trips, each through a new connection, in
    every refresh's planning (twice: the plan, then the catch-up after the loads)."""
    keys = list(keys)
    latest = instance.get_latest_materialization_events(keys)
    return {k for k in keys if latest.get(k) is None}


def downstream_of(asset_graph, instance: dg.DagsterInstance, feeds: list[dg.AssetKey]) -> list[dg.AssetKey]:
    """The unpartitioned assets a nightly refresh rebuilds after loading ``feeds``: their descendants, plus
    whatever was never materialised and its descendants, minus ``placelink/nightly: skip`` assets that have
    been materialised before (model training: scoring with the current champion still runs)."""
    unpartitioned = UNPARTITIONED.resolve(asset_graph)
    new = never_materialised(asset_graph, instance, unpartitioned)
    selected = dg.AssetSelection.assets(*feeds, *new).downstream().resolve(asset_graph) & unpartitioned
    skip = NOT_NIGHTLY.resolve(asset_graph) - new
    return sorted(selected - skip, key=lambda k: k.to_user_string())


def month_ranges(asset_graph, partitions: dict[str, list[dg.AssetKey]]) -> list[tuple[list[str], list[dg.AssetKey]]]:
    """The plan's months as runs over stretches of consecutive partitions (with the union of their assets), for
    feeds that load a range in one run (``BackfillPolicy.single_run``): usually one run in all, and a late drop
    for an old month does not reload every month between it and the new one."""
    if not partitions:
        return []
    any_key = next(iter(next(iter(partitions.values()))))
    order = {pk: i for i, pk in enumerate(asset_graph.get(any_key).partitions_def.get_partition_keys())}
    groups: list[tuple[list[str], set[dg.AssetKey]]] = []
    for pk in sorted(partitions, key=lambda p: order.get(p, -1)):
        if groups and pk in order and order.get(groups[-1][0][-1]) == order[pk] - 1:
            groups[-1][0].append(pk)
            groups[-1][1].update(partitions[pk])
        else:
            groups.append(([pk], set(partitions[pk])))
    return [(months, sorted(keys, key=lambda k: k.to_user_string())) for months, keys in groups]


def full_refresh_op_config(asset_graph, keys, relink: bool = False) -> dict:
    """``run_config["ops"]`` that makes the ops of ``keys`` that can rebuild from scratch do so (with ``relink``,
    matching re-links every record too)."""
    ops = {asset_graph.get(k).assets_def.op.name for k in keys if asset_graph.has(k)}
    configs = {**FULL_REFRESH_OP_CONFIG, **(FULL_RELINK_OP_CONFIG if relink else {})}
    return {op: {"config": cfg} for op, cfg in configs.items() if op in ops}
