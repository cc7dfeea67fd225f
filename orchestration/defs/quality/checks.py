"""Data quality in Dagster: GX suites as asset checks on every feed, and the partner scorecard asset.

Per feed ``raw/<partner>__<feed>`` one multi-check runs the feed's suite on the partition just loaded and
reports two checks: ``quality_structure`` (blocking: a broken structure stops ``src/...`` and everything
downstream in the same run) and ``quality_warnings`` (severity WARN: soft expectations, never blocking).
The logic lives in :mod:`orchestration.lib.quality` and :mod:`expectations`; this module only wraps it.
"""

import json
import warnings

import dagster as dg
from dagster_duckdb import DuckDBResource

from expectations.runner import QualityResult
from expectations.suite import SuiteSpec, load_suites
from orchestration.defs.guard import no_leaks
from orchestration.defs.partitions import monthly_partitions
from orchestration.defs.resources import IDENTIFIABLE_POOL, WAREHOUSE_POOL, PlacelinkSettings
from orchestration.lib.config import Settings
from orchestration.lib.docs_site import served_url
from orchestration.lib.errors import PlacelinkError

STRUCTURE = "quality_structure"
WARNINGS = "quality_warnings"
SCORECARD_KEY = dg.AssetKey(["quality", "feed_scorecard"])


def _outcome_table(outcomes) -> str:
    if not outcomes:
        return "none"
    lines = ["| expectation | column | unexpected | % | observed / error |", "|---|---|---|---|---|"]
    for o in outcomes:
        pct = "" if o.unexpected_percent is None else f"{o.unexpected_percent:.2f}"
        note = o.error or ("" if o.observed_value is None else str(o.observed_value))
        lines.append(f"| {o.expectation} | {o.column or ''} | {o.unexpected_count if o.unexpected_count is not None else ''}"
                     f" | {pct} | {note[:120]} |")
    return "\n".join(lines)


def check_metadata(result: QualityResult, severity: str, settings: Settings) -> dict:
    """Statistics, failed expectations, unexpected counts, masked samples and the Data Docs link."""
    failed = result.blocking_failures if severity == "blocking" else result.warnings
    meta = {
        "suite": result.suite,
        "rows_validated": dg.MetadataValue.int(result.rows),
        "statistics": dg.MetadataValue.json(result.statistics),
        "failed_expectations": dg.MetadataValue.md(_outcome_table(failed)),
        "unexpected_counts": dg.MetadataValue.json(
            {f"{o.expectation}:{o.column or '-'}": o.unexpected_count for o in failed
             if o.unexpected_count is not None}),
        "masked_failing_rows": dg.MetadataValue.json(
            {f"{o.expectation}:{o.column or '-'}": o.sample for o in failed if o.sample}),
    }
    docs = served_url(settings, result.docs_path)  # http://, not file:// (browsers refuse those from a page)
    if docs:
        meta["data_docs"] = dg.MetadataValue.url(docs)
    return meta


def _validate_and_report(context, key: dg.AssetKey, spec: SuiteSpec, db: DuckDBResource, partition: str | None,
                         settings: Settings, docs_index: bool = True):
    from orchestration.lib.quality import validate_suite

    try:
        with db.get_connection() as con:
            result = validate_suite(con, spec, partition=partition, settings=settings, docs_index=docs_index)
    except PlacelinkError as exc:
        yield dg.AssetCheckResult(asset_key=key, check_name=STRUCTURE, passed=False,
                                  severity=dg.AssetCheckSeverity.ERROR, description=str(exc))
        yield dg.AssetCheckResult(asset_key=key, check_name=WARNINGS, passed=False,
                                  severity=dg.AssetCheckSeverity.WARN, description="not run: " + str(exc))
        return
    context.log.info(json.dumps(result.summary(), default=str))
    yield dg.AssetCheckResult(
        asset_key=key, check_name=STRUCTURE, passed=result.passed_blocking,
        severity=dg.AssetCheckSeverity.ERROR, metadata=check_metadata(result, "blocking", settings),
        description=None if result.passed_blocking else
        f"{len(result.blocking_failures)} structural expectation(s) failed: "
        + ", ".join(f"{o.expectation}({o.column or ''})" for o in result.blocking_failures[:5]))
    yield dg.AssetCheckResult(
        asset_key=key, check_name=WARNINGS, passed=not result.warnings,
        severity=dg.AssetCheckSeverity.WARN, metadata=check_metadata(result, "warn", settings))


def build_feed_check(spec: SuiteSpec) -> dg.AssetChecksDefinition:
    """The two quality checks of one raw feed, from one GX validation of the partition."""
    key = dg.AssetKey(spec.asset.split("/"))
    # Partitioned checks are a Dagster preview; we need them so each check validates the month just
    # loaded (not the whole table) and blocks only that partition's downstream.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        check_specs = [
            dg.AssetCheckSpec(STRUCTURE, asset=key, blocking=True, partitions_def=monthly_partitions,
                              description=f"GX suite {spec.name}, blocking part: columns, types, record ids, "
                                          "not empty. Failure stops downstream assets."),
            dg.AssetCheckSpec(WARNINGS, asset=key, blocking=False, partitions_def=monthly_partitions,
                              description=f"GX suite {spec.name}, soft part: codes, formats, NHS check digit, "
                                          "dates, volume, duplicates. Warns only."),
        ]

    @dg.multi_asset_check(
        name=f"{spec.name}_quality",
        specs=check_specs,
        pool=IDENTIFIABLE_POOL,
        compute_kind="great_expectations",
    )
    @no_leaks(f"quality check {spec.name}")
    def _check(context: dg.AssetCheckExecutionContext, identifiable_db: DuckDBResource,
               placelink_settings: PlacelinkSettings):
        partition = context.partition_key if context.has_partition_key else None
        # each check writes its own Data Docs page; the index is rebuilt once after them, by the feed scorecard
        yield from _validate_and_report(context, key, spec, identifiable_db, partition=partition,
                                        settings=placelink_settings.get(), docs_index=False)

    return _check


def build_table_check(spec: SuiteSpec) -> dg.AssetChecksDefinition:
    """The two quality checks of a warehouse mart or published table (not partitioned)."""
    key = dg.AssetKey(spec.asset.split("/"))

    @dg.multi_asset_check(
        name=f"{spec.name}_quality",
        specs=[
            dg.AssetCheckSpec(STRUCTURE, asset=key, blocking=True,
                              description=f"GX suite {spec.name}, blocking part: allowed columns only (no "
                                          "identifiers), keys unique and not null"
                                          + (", suppression holds" if spec.kind == "published" else "") + "."),
            dg.AssetCheckSpec(WARNINGS, asset=key, blocking=False,
                              description=f"GX suite {spec.name}, soft part: totals and plausible ranges."),
        ],
        pool=WAREHOUSE_POOL,
        compute_kind="great_expectations",
    )
    @no_leaks(f"quality check {spec.name}")
    def _check(context: dg.AssetCheckExecutionContext, warehouse_db: DuckDBResource,
               placelink_settings: PlacelinkSettings):
        yield from _validate_and_report(context, key, spec, warehouse_db, partition=None,
                                        settings=placelink_settings.get())

    return _check


def build_scorecard_asset(raw_keys: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        key=SCORECARD_KEY,
        group_name="quality",
        description="Per partner, feed and month: completeness, validity (GX), timeliness, duplicate rate, "
                    "quarantine rate and match rates. Aggregates only (warehouse quality.feed_scorecard).",
        kinds={"duckdb", "great_expectations"},
        deps=raw_keys,
        pool=WAREHOUSE_POOL,
        tags={"zone": "warehouse"},
    )
    @no_leaks("feed scorecard")
    def feed_scorecard(context: dg.AssetExecutionContext, identifiable_db: DuckDBResource,
                       warehouse_db: DuckDBResource, placelink_settings: PlacelinkSettings) -> dg.MaterializeResult:
        from expectations.runner import build_docs_index
        from orchestration.lib.quality import VERDICTS_DIR, build_feed_scorecard, connect_read_only

        settings = placelink_settings.get()
        quality_dir = settings.quality_dir
        with connect_read_only(identifiable_db.database) as idz, warehouse_db.get_connection() as wh:
            card = build_feed_scorecard(idz, wh, verdicts_dir=quality_dir / VERDICTS_DIR)
        # the feed checks before it left the Data Docs index to one rebuild here
        docs = served_url(settings, build_docs_index(quality_dir))
        latest = card.sort_values("month").groupby(["partner", "feed"]).tail(1)
        context.log.info(f"feed scorecard: {card.attrs['months_rescored']} feed-months scored again (new or changed "
                         f"since last scored; {card.attrs['months_from_checks']} of them with the row verdicts "
                         "their feed check stored); the others kept, their match rates recomputed")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(len(card)),
            "feed_months_validated": dg.MetadataValue.int(int(card.attrs["months_rescored"])),
            "feed_months_from_checks": dg.MetadataValue.int(int(card.attrs["months_from_checks"])),
            "table": "quality.feed_scorecard",
            **({"data_docs": dg.MetadataValue.url(docs)} if docs else {}),
            "latest_month": dg.MetadataValue.json(json.loads(
                latest.drop(columns=["scored_at", "suite_version"]).round(3).to_json(orient="records", date_format="iso"))),
        })

    return feed_scorecard


def build_quality_definitions(feed_names: list[str], table_assets: list[str] | None = None) -> dg.Definitions:
    """Checks for the given feeds (``<partner>__<feed>``), the scorecard asset, and checks for the mart and
    published suites whose asset key (``marts/<model>``) is in ``table_assets``."""
    specs = {s.name: s for s in load_suites("feed")}
    missing = [n for n in feed_names if n not in specs]
    if missing:
        raise PlacelinkError(f"feeds without a quality suite: {missing}", where="expectations/suites",
                             fix="add expectations/suites/<partner>__<feed>.yml for each")
    checks = [build_feed_check(specs[n]) for n in feed_names]
    raw_keys = [dg.AssetKey(specs[n].asset.split("/")) for n in feed_names]
    assets = [build_scorecard_asset(raw_keys)] if raw_keys else []
    wanted = set(table_assets or [])
    checks += [build_table_check(s) for s in load_suites() if s.kind != "feed" and s.asset in wanted]
    return dg.Definitions(asset_checks=checks, assets=assets)

