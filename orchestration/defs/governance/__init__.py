"""Governance in Dagster: the weekly retention job and the daily audit-trail check (thin wrappers).

The logic lives in ``orchestration.lib.governance``; these ops only call it. Retention deletes from each
zone in its own op, declaring that zone's writer pool, so it never runs while a load or build writes the
same DuckDB file.
"""

# no `from __future__ import annotations`: Dagster resolves the op config class from the live annotation
import dagster as dg

from orchestration.defs.resources import IDENTIFIABLE_POOL, WAREHOUSE_POOL, PlacelinkSettings


class RetentionConfig(dg.Config):
    dry_run: bool = False
    today: str | None = None       # YYYY-MM-DD; default: the run's date
    feeds_dir: str | None = None   # default: orchestration/feeds


def _retention(context: dg.OpExecutionContext, config: RetentionConfig, settings: PlacelinkSettings,
               zone: str) -> dg.Output[int]:
    import datetime as dt
    from pathlib import Path

    from orchestration.lib.governance.retention import apply_retention

    result = apply_retention(settings.get(), zones=(zone,), dry_run=config.dry_run,
                             today=dt.date.fromisoformat(config.today) if config.today else None,
                             feeds_dir=Path(config.feeds_dir) if config.feeds_dir else None)
    for d in result.deleted:
        if d["rows"]:
            context.log.info(f"{zone}: {d['table']} -{d['rows']} (before {d['cutoff']}, by {d['by']})")
    return dg.Output(result.total, metadata={"rows_deleted": result.total, "dry_run": config.dry_run,
                                             "tables": dg.MetadataValue.json(result.deleted)})


@dg.op(pool=IDENTIFIABLE_POOL, description="Delete expired records from the identifiable zone.")
def governance_retention_identifiable(context: dg.OpExecutionContext, config: RetentionConfig,
                                      placelink_settings: PlacelinkSettings) -> dg.Output[int]:
    return _retention(context, config, placelink_settings, "identifiable")


@dg.op(pool=WAREHOUSE_POOL, description="Delete expired records from the warehouse.")
def governance_retention_warehouse(context: dg.OpExecutionContext, config: RetentionConfig,
                                   placelink_settings: PlacelinkSettings) -> dg.Output[int]:
    return _retention(context, config, placelink_settings, "warehouse")


@dg.op(description="Delete landing drops older than their feed's retention period.")
def governance_retention_landing(context: dg.OpExecutionContext, config: RetentionConfig,
                                 placelink_settings: PlacelinkSettings) -> dg.Output[int]:
    return _retention(context, config, placelink_settings, "landing")


@dg.job(description="Enforce every feed agreement's retention period in every zone; each deletion is audited.",
        tags={"placelink/domain": "governance"})
def governance_retention_job():
    governance_retention_identifiable()
    governance_retention_warehouse()
    governance_retention_landing()


@dg.op(description="Recompute the audit trail's hash chain; fail if any row was changed, removed or inserted.")
def governance_verify_audit(context: dg.OpExecutionContext, placelink_settings: PlacelinkSettings) -> None:
    from orchestration.lib.governance.audit import verify

    result = verify(placelink_settings.get())
    context.log.info(str(result))
    if not result.ok:
        raise dg.Failure(description=str(result), metadata={"problems": dg.MetadataValue.json(result.problems)})


@dg.job(description="Daily tamper check of the audit trail.", tags={"placelink/domain": "governance"})
def governance_audit_check_job():
    governance_verify_audit()


governance_retention_schedule = dg.ScheduleDefinition(
    name="governance_retention_schedule", job=governance_retention_job, cron_schedule="0 4 * * 0",
    execution_timezone="Europe/London", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sundays 04:00 Europe/London, after the nightly refresh: delete records past retention.")

governance_audit_check_schedule = dg.ScheduleDefinition(
    name="governance_audit_check_schedule", job=governance_audit_check_job, cron_schedule="30 6 * * *",
    execution_timezone="Europe/London", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="06:30 Europe/London daily: verify the audit trail's hash chain.")

def _audit_finished_run(context: dg.RunStatusSensorContext, settings: PlacelinkSettings,
                        status: str) -> dg.SkipReason:
    """Record what a finished run materialised, once per run: a run the in-process runner executed (``placelink
    refresh``, stage commands) is already in the log and is not recorded again (``record_run`` checks the log
    itself, not a tag that whoever launches a run could set)."""
    from orchestration.lib.governance.identity import run_identity
    from orchestration.lib.governance.pipeline_audit import record_run

    run = context.dagster_run
    records = context.instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000).records
    key_paths = []
    for r in records:
        event = r.event_log_entry.dagster_event
        if event and event.asset_key:
            key_paths.append((list(event.asset_key.path), event.partition))
    settings = settings.get()  # the home the code location is bound to (placelink_settings), not os.environ
    # the run's OS account, or the person the web tier names where the administrator's role file trusts it
    who, identity_details = run_identity(settings, run.tags)
    n = record_run(settings, run_id=run.run_id, job=run.job_name, who=who, key_paths=key_paths, status=status,
                   identity_details=identity_details)
    return dg.SkipReason(f"audited {n} materialisation(s) of run {run.run_id} ({status})")


@dg.run_status_sensor(
    name="governance_audit_sensor", run_status=dg.DagsterRunStatus.SUCCESS, monitor_all_code_locations=False,
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
    description="Append an audit event (who, action, asset, partition, agreement) for every asset a successful "
                "run materialised: ingest, linkage, pseudonymisation, dbt builds, exports, ML.")
def governance_audit_sensor(context: dg.RunStatusSensorContext, placelink_settings: PlacelinkSettings):
    return _audit_finished_run(context, placelink_settings, "success")


@dg.run_status_sensor(
    name="governance_audit_failed_run_sensor", run_status=dg.DagsterRunStatus.FAILURE,
    monitor_all_code_locations=False, default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
    description="Append an audit event for every asset a FAILED run materialised before it failed (a nightly load "
                "whose one bad drop failed the run still ingested the other feeds).")
def governance_audit_failed_run_sensor(context: dg.RunStatusSensorContext, placelink_settings: PlacelinkSettings):
    return _audit_finished_run(context, placelink_settings, "failure")


defs = dg.Definitions(
    jobs=[governance_retention_job, governance_audit_check_job],
    schedules=[governance_retention_schedule, governance_audit_check_schedule],
    sensors=[governance_audit_sensor, governance_audit_failed_run_sensor],
)
