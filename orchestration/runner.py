"""Run the nightly refresh in this process: ``placelink refresh [--full]`` and ``placelink demo``.

Runs go into the Dagster instance at ``get_settings().dagster_home`` (its ``dagster.yaml`` is copied
from ``infra/dagster.<env>.yaml`` when missing), so every run, materialisation and check result shows
in the Dagster UI afterwards (``placelink ui``). Lives outside ``orchestration/lib`` because it drives
Dagster; the planning itself is in :mod:`orchestration.defs.ops.planning`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from orchestration.defs.ops.jobs import ops_downstream_refresh_job, ops_partitioned_refresh_job
from orchestration.defs.ops.planning import (
    LATE_TAG,
    MONTHS_TAG,
    NEW_MONTHS_TAG,
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    REFRESH_TAG,
    RefreshPlan,
    full_refresh_op_config,
    loads_in_one_run,
    month_ranges,
    plan_catch_up,
    plan_refresh,
)
from orchestration.defs.resources import (
    IDENTIFIABLE,
    IDENTIFIABLE_POOL,
    SETTINGS,
    WAREHOUSE_POOL,
    PlacelinkSettings,
)
from orchestration.lib.config import Settings, get_settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.ops.profiles import ensure_dagster_home

#: progress(message, done, total): called before each run (done = runs finished so far) and at the end.
Progress = Callable[[str, int, int], None]


@dataclass
class RunOutcome:
    label: str
    run_id: str
    success: bool
    seconds: float
    assets: list[str]
    #: step key -> why it failed, one line each (a data error is not retried: it appears once)
    errors: dict[str, str] = field(default_factory=dict)
    #: (asset key, partition or None) -> the metadata values of what the run materialised (the figures a stage
    #: command prints are these, the ones the Dagster UI shows)
    materialised: dict[tuple[str, str | None], dict] = field(default_factory=dict)
    #: the months a load run covered (first and last of a range), empty for an unpartitioned run
    partitions: list[str] = field(default_factory=list)


@dataclass
class RefreshResult:
    refresh_id: str
    plan: RefreshPlan
    runs: list[RunOutcome] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(r.success for r in self.runs)


def instance_for(settings: Settings) -> dg.DagsterInstance:
    """The persistent Dagster instance of this home (the one ``placelink ui`` shows), pools initialised.

    Dagster creates a pool's slots lazily, the first time a step claims one. On SQLite storage two
    processes doing that at the same moment can each count zero slots and each add one, so the
    DuckDB writer pools would briefly allow two writers (seen in CI). Creating every pool's slots here,
    once, in one process, before any run starts closes that race; it is idempotent and keeps a limit an
    operator set in the UI.
    """
    instance = dg.DagsterInstance.from_config(str(ensure_dagster_home(settings)))
    storage = instance.event_log_storage
    if instance.global_op_concurrency_default_limit is not None:
        for pool in (IDENTIFIABLE_POOL, WAREHOUSE_POOL):
            if storage.get_concurrency_info(pool).slot_count == 0:
                storage.initialize_concurrency_limit_to_default(pool)
    return instance


_DEFS_BY_HOME: dict[tuple[str, str, str], dg.Definitions] = {}


def _load_defs(settings: Settings) -> dg.Definitions:
    """The code location with its resources (DuckDB files, ``placelink_settings``) bound to *this* home.
    ``orchestration.definitions.defs`` bound them to the environment's home when it was first imported, which is
    another home when one process (a test run, a script) refreshes several homes."""
    from orchestration.definitions import build_definitions, defs

    key = (str(settings.home.resolve()), settings.env, settings.engine)
    # the settings resource may follow the environment (EnvVar) while the DuckDB paths were fixed at import
    zone = defs.resources.get(IDENTIFIABLE)
    if _bound_to(defs) == key and zone is not None and zone.database == str(settings.identifiable_db):
        return defs
    if key not in _DEFS_BY_HOME:
        _DEFS_BY_HOME[key] = build_definitions(settings)
    return _DEFS_BY_HOME[key]


def _bound_to(defs: dg.Definitions) -> tuple[str, str, str] | None:
    """(home, env, engine) the definitions' settings resource points at (EnvVar fields resolved now)."""
    bound = defs.resources.get(SETTINGS)
    if not isinstance(bound, PlacelinkSettings):
        return None

    def value(v) -> str:
        return v.get_value() if isinstance(v, dg.EnvVar) else v

    resolved = get_settings(home=value(bound.home), env=value(bound.env), engine=value(bound.engine))
    return (str(resolved.home.resolve()), resolved.env, resolved.engine)


def load_batches(graph, partitions: dict[str, list[dg.AssetKey]], single_run: bool
                 ) -> list[tuple[str, dict, list[dg.AssetKey]]]:
    """The runs that load ``partitions`` (month -> feed assets): ``(label, execute_in_process kwargs, keys)``.

    The refresh and ``placelink ingest`` both load through these, so a month is loaded the same way whoever asks."""
    batches: list[tuple[str, dict, list[dg.AssetKey]]] = []
    if partitions and single_run:
        # the feed assets asked for one run over a range (BackfillPolicy.single_run): one run per stretch of
        # consecutive months (usually one run in all), so a late drop for an old month does not reload every
        # month between it and the new one
        for months, keys in month_ranges(graph, partitions):
            first, last = months[0], months[-1]
            if first == last:
                batches.append((f"month {first}", {"partition_key": first}, keys))
            else:
                batches.append((f"months {first}..{last}", {"tags": {PARTITION_RANGE_START_TAG: first,
                                                                    PARTITION_RANGE_END_TAG: last}}, keys))
    else:
        for pk, keys in partitions.items():
            batches.append((f"month {pk}", {"partition_key": pk}, keys))
    return batches


def refresh(
    full: bool = False,
    progress: Progress | None = None,
    *,
    defs: dg.Definitions | None = None,
    settings: Settings | None = None,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "INFO",
) -> RefreshResult:
    """Load new or changed drops (one run for all months when the feeds allow it), then rebuild what depends on
    them once.

    Nightly (``full=False``): only the feeds and months with new or changed drops are loaded, and only their
    unpartitioned descendants are rebuilt (matching, pseudonymised sources, the dbt models built from them with
    their incremental models adding just the new months, the checks of those assets, scoring with each model's
    champion, publishing). Model training is not nightly (weekly schedule, ``--full``, ``placelink train``).

    Args:
        full: reload every month that has drops (loaded or not), rebuild every downstream asset (dbt with
            ``--full-refresh``) and retrain the models.
        progress: optional callback ``(message, done, total)``.
        defs: the code location (default: ``orchestration.definitions.defs``).
        settings / instance: default to this home's settings and its persistent Dagster instance.
        log_level: of Dagster's console log (every event still goes to the instance's event log).

    Raises:
        PlacelinkError: a run failed; the message names the run ids to open in the Dagster UI.
    """
    settings = settings or get_settings().ensure()
    defs = defs or _load_defs(settings)
    instance = instance or instance_for(settings)
    progress = progress or (lambda message, done, total: None)
    from orchestration.lib.governance.erasure import exclusions_fingerprint

    plan = plan_refresh(defs.resolve_asset_graph(), instance, settings.landing, full=full,
                        exclusions=exclusions_fingerprint(settings))
    refresh_id = dt.datetime.now(dt.UTC).strftime("refresh-%Y%m%dT%H%M%SZ") + ("-full" if full else "")
    result = RefreshResult(refresh_id, plan)
    run_config = {"loggers": {"console": {"config": {"log_level": log_level.upper()}}}}

    batches = load_batches(defs.resolve_asset_graph(), plan.partitions, plan.single_run)
    total = len(batches) + (1 if plan.downstream else 0)
    if total == 0:
        progress("nothing to do: no new or changed drops, erasure and opt-out lists as last applied", 0, 0)
        return result

    partitioned_job = defs.resolve_job_def(ops_partitioned_refresh_job.name)
    for label, kwargs, keys in batches:
        progress(f"loading {label}: {len(keys)} asset(s)", len(result.runs), total)
        tags = {REFRESH_TAG: refresh_id, **({LATE_TAG: "true"} if plan.late else {}),
                **({NEW_MONTHS_TAG: "true"} if plan.new_months_only else {}), **kwargs.pop("tags", {})}
        result.runs.append(_execute(partitioned_job, instance, label, keys, settings, tags=tags, run_config=run_config,
                                    **kwargs))

    failed = [r for r in result.runs if not r.success]
    # The downstream runs even when a load failed: a feed whose drop is bad loaded nothing for its month, which
    # stays pending (and is reported below), like a partner that has not delivered yet; the other partners'
    # months go on to the marts tonight. It is planned again now, from what the loads left in the instance, so it
    # also brings in months an earlier refresh loaded but did not finish.
    down = plan if full else plan_catch_up(defs.resolve_asset_graph(), instance,
                                            exclusions=exclusions_fingerprint(settings))
    if down.downstream:
        progress(f"rebuilding downstream: {len(down.downstream)} asset(s)"
                 + (f" (months loaded earlier, not finished: {_months(down.unfinished)})"
                    if not full and not plan.partitions else ""), len(result.runs), total)
        job = defs.resolve_job_def(ops_downstream_refresh_job.name)
        downstream_config = dict(run_config)
        if full or down.late or down.exclusions_changed:
            ops = full_refresh_op_config(defs.resolve_asset_graph(), down.downstream, relink=full)
            if ops:
                downstream_config["ops"] = ops
        tags = {REFRESH_TAG: refresh_id}
        if down.new_months_only and not full:
            tags[MONTHS_TAG] = ",".join(down.months)
        result.runs.append(_execute(job, instance, "downstream", down.downstream, settings, tags=tags,
                                    run_config=downstream_config))
        failed = [r for r in result.runs if not r.success]
    total = len(result.runs)
    progress("done" if not failed else "failed", len(result.runs), total)
    if failed:
        pending = "" if full else _months(plan_refresh(defs.resolve_asset_graph(), instance, settings.landing).feeds)
        raise PlacelinkError(
            f"{len(failed)} refresh run(s) failed: "
            + "; ".join(f"{r.label} (run {r.run_id}"
                        + (": " + "; ".join(f"{step}: {why}" for step, why in r.errors.items()) if r.errors else "")
                        + ")" for r in failed)
            + ("; downstream not rebuilt" if not down.downstream and plan.downstream else "")
            + ("; downstream rebuilt for the feeds that loaded" if down.downstream and
               all(r.label != "downstream" for r in failed) else "")
            + (f"; still pending for the next refresh: {pending}" if pending else ""),
            where=f"Dagster instance {settings.dagster_home}",
            fix="open the failed run in the Dagster UI (placelink ui) to see the step error, fix it (a data error "
                "is not retried: ask the partner for a corrected drop), then run placelink refresh again",
        )
    return result


def stage_defs(settings: Settings, feeds_dir: str | Path | None = None) -> dg.Definitions:
    """The code location a stage command runs in: :func:`_load_defs`, or, for ``--feeds-dir`` (another contracts
    folder: a partner trying a new contract, the tests), the feed and matching domains built by the same builders
    from those contracts, with the same jobs and resources, so their runs land in the same instance the same way."""
    from orchestration.lib.contracts import FEEDS_DIR, load_contracts

    if feeds_dir is None or Path(feeds_dir).resolve() == FEEDS_DIR.resolve():
        return _load_defs(settings)
    from orchestration.defs.feeds import build_feed_definitions
    from orchestration.defs.matching import build_matching_definitions
    from orchestration.defs.resources import shared_resources

    contracts = load_contracts(feeds_dir)
    return dg.Definitions.merge(
        build_feed_definitions(contracts), build_matching_definitions(contracts),
        dg.Definitions(jobs=[ops_partitioned_refresh_job, ops_downstream_refresh_job],
                       resources=shared_resources(settings)))


def run_stage(stage: str, keys: list[dg.AssetKey], settings: Settings, *, run_config: dict | None = None,
              defs: dg.Definitions | None = None, instance: dg.DagsterInstance | None = None,
              log_level: str = "WARNING", feeds_dir: str | Path | None = None) -> RunOutcome:
    """Run one stage's assets (``placelink build``, ``match``, ``pseudonymise``) as a run of the code location's
    downstream job on this home's persistent instance: the same job, run history, asset status and audit as when
    a refresh, a schedule or the UI does the work, rather than a second path beside Dagster. One audit event per
    asset materialised (once: the daemon's audit sensors find the run already in the log and record nothing).
    Monthly feed loads (``placelink ingest``) go through :func:`run_loads`.

    Raises:
        PlacelinkError: the run failed; the message names the run and the failed steps.
    """
    settings = settings.ensure()
    defs = defs or stage_defs(settings, feeds_dir)
    instance = instance or instance_for(settings)
    outcome = _execute(defs.resolve_job_def(ops_downstream_refresh_job.name), instance, stage, keys, settings,
                       tags={REFRESH_TAG: _stage_id(stage)}, run_config=_stage_config(run_config, log_level),
                       feeds_dir=feeds_dir)
    if not outcome.success:
        raise stage_failed(stage, [outcome], settings)
    return outcome


def run_loads(stage: str, partitions: dict[str, list[dg.AssetKey]], settings: Settings, *,
              rebuild: bool = False, defs: dg.Definitions | None = None, instance: dg.DagsterInstance | None = None,
              log_level: str = "WARNING", feeds_dir: str | Path | None = None,
              progress: Progress | None = None) -> list[RunOutcome]:
    """Load months of partner feeds (``partitions``: month -> ``raw/*`` keys) as runs of ``all_feeds_ingest_job``,
    the job ``landing_drop_sensor`` launches for a drop, batched like a refresh's loads (:func:`load_batches`).
    Each month's materialisation is in the instance afterwards, so the sensor and the nightly planner see it
    loaded and start nothing for it.

    Every batch runs even when an earlier one failed (a bad drop of one feed does not hold back the others); the
    caller reports the failures (:func:`stage_failed`). ``rebuild``: each feed's first run drops what the feed
    loaded before (``RawConfig.rebuild``), the later runs add their months.
    """
    settings = settings.ensure()
    defs = defs or stage_defs(settings, feeds_dir)
    instance = instance or instance_for(settings)
    progress = progress or (lambda message, done, total: None)
    graph = defs.resolve_asset_graph()
    # the nightly planner's rule: one run over a range when every feed allows it
    single_run = loads_in_one_run(graph, {k for keys in partitions.values() for k in keys})
    job = defs.resolve_job_def("all_feeds_ingest_job")
    stage_id = _stage_id(stage)
    outcomes: list[RunOutcome] = []
    dropped: set[dg.AssetKey] = set()
    batches = load_batches(graph, partitions, single_run)
    for label, kwargs, keys in batches:
        progress(f"loading {label}: {len(keys)} feed(s)", len(outcomes), len(batches))
        ops = {}
        if rebuild:
            ops = {graph.get(k).assets_def.op.name: {"config": {"rebuild": True}} for k in keys if k not in dropped}
            dropped.update(keys)
        months = ([kwargs["partition_key"]] if "partition_key" in kwargs else
                  [kwargs["tags"][PARTITION_RANGE_START_TAG], kwargs["tags"][PARTITION_RANGE_END_TAG]])
        tags = {REFRESH_TAG: stage_id, **kwargs.pop("tags", {})}
        outcome = _execute(job, instance, label, keys, settings, tags=tags,
                           run_config=_stage_config({"ops": ops} if ops else None, log_level),
                           feeds_dir=feeds_dir, **kwargs)
        outcome.partitions = months
        outcomes.append(outcome)
    progress("done", len(outcomes), len(batches))
    return outcomes


def stage_failed(stage: str, failed: list[RunOutcome], settings: Settings) -> PlacelinkError:
    """The error of a stage command whose run(s) failed: its first line names each run and failed step with the
    step's own one-line reason (see :func:`_step_errors`)."""
    failed = [o for o in failed if not o.success]
    return PlacelinkError(
        f"{stage} run{'s' if len(failed) > 1 else ''} "
        + "; ".join(f"{o.run_id} ({o.label})" if len(failed) > 1 else o.run_id for o in failed) + " failed: "
        + ("; ".join(f"{step}: {why}" for o in failed for step, why in o.errors.items()) or "see the run"),
        where=f"Dagster instance {settings.dagster_home}",
        fix="open the run in the Dagster UI (placelink ui) to see the step error, fix it, then run again")


def _stage_id(stage: str) -> str:
    return dt.datetime.now(dt.UTC).strftime(f"{stage}-%Y%m%dT%H%M%SZ")


def _stage_config(run_config: dict | None, log_level: str) -> dict:
    return {"loggers": {"console": {"config": {"log_level": log_level.upper()}}}, **(run_config or {})}


def _months(by_feed: dict[str, list[str]]) -> str:
    """``{"raw/police__street_crimes": ["2026-10-01"]}`` -> ``raw/police__street_crimes 2026-10``."""
    return ", ".join(f"{feed} {', '.join(pk[:7] for pk in pks)}" for feed, pks in sorted(by_feed.items()))


def _execute(job, instance, label, keys, settings: Settings, feeds_dir: str | Path | None = None,
             **kwargs) -> RunOutcome:
    start = time.monotonic()
    # the job's assets read this home from their placelink_settings resource (_load_defs bound it), not from
    # the environment
    res = job.execute_in_process(instance=instance, asset_selection=keys, raise_on_error=False, **kwargs)
    _audit(res, settings, feeds_dir)
    materialised = {}
    for event in res.get_asset_materialization_events():
        meta = event.step_materialization_data.materialization.metadata
        materialised[(event.asset_key.to_user_string(), event.partition)] = {k: v.value for k, v in meta.items()}
    return RunOutcome(label, res.run_id, res.success, time.monotonic() - start,
                      [k.to_user_string() for k in keys], _step_errors(res), materialised)


def _step_errors(res) -> dict[str, str]:
    """How each failed step failed, for the refresh's error: our own message when the step raised a placelink
    error (``dg.Failure`` from ``as_failure``: where, what, fix; built to carry no partner value), else only the
    exception's type: a library's message can quote the data (the Dagster UI, inside the operator's reach, has it)."""
    errors = {}
    for event in res.all_events:
        if event.event_type != dg.DagsterEventType.STEP_FAILURE or not event.step_failure_data:
            continue
        data = event.step_failure_data
        if data.user_failure_data and data.user_failure_data.description:
            errors[event.step_key] = data.user_failure_data.description.strip().splitlines()[0]
        else:
            cause = data.error.cause if data.error and data.error.cause else data.error
            errors[event.step_key] = f"{cause.cls_name if cause else 'error'} (see the run in the Dagster UI)"
    return errors


def _audit(res, settings: Settings, feeds_dir: str | Path | None = None) -> None:
    """Append one audit event per asset the run materialised (once per run: the daemon's audit sensors, which
    also see these runs finish, find them in the log and record nothing)."""
    from orchestration.lib.governance.audit import current_user
    from orchestration.lib.governance.pipeline_audit import record_run

    key_paths = [(list(e.asset_key.path), e.partition) for e in res.get_asset_materialization_events()]
    if key_paths:
        record_run(settings, run_id=res.run_id, job=res.job_def.name, who=current_user(),
                   key_paths=key_paths, status="success" if res.success else "failure",
                   feeds_dir=Path(feeds_dir) if feeds_dir else None)
