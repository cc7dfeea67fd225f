"""Assets built from the feed contracts: ``raw/<partner>__<feed>`` (monthly) and ``src/<partner>__<feed>``.

Nothing here knows a partner by name: each contract file in ``orchestration/feeds/`` becomes a group of
assets. The bodies are thin calls into :mod:`orchestration.lib.feeds` and
:mod:`orchestration.lib.feeds.warehouse_sources`.
"""


import re

import dagster as dg
from dagster_duckdb import DuckDBResource

from orchestration.defs.guard import no_leaks
from orchestration.defs.partitions import monthly_partitions
from orchestration.defs.resources import IDENTIFIABLE_POOL, WAREHOUSE_POOL, PlacelinkSettings
from orchestration.lib.contracts import Contract, Contracts, Feed
from orchestration.lib.feeds import ingest_partition, parse_partitions, read_opt_outs
from orchestration.lib.feeds.load import PartitionResult, drop_feed, record_rejected
from orchestration.lib.feeds.warehouse_sources import (
    IDZ,
    attach_identifiable,
    build_warehouse_source,
    source_build,
)
from orchestration.lib.landing import contract_extensions, scan_feed, scan_landing
from orchestration.lib.pseudonymise import pseudonymiser

#: the matching stage's tables each ``src`` asset joins (defined by the matching domain)
LINK_KEYS = [dg.AssetKey(["link", t]) for t in ("person_index", "household_index", "address_matches")]
#: reference tables in the warehouse (``ref.<name>``), copied from ``<home>/reference/*.csv``
REFERENCE_TABLES = ["districts", "wards", "msoas", "lsoas", "lsoa_population", "postcodes", "gazetteer",
                    "schools"]


class RawConfig(dg.Config):
    rebuild: bool = False
    """Drop what the feed loaded before, then load this run's months (``placelink ingest --rebuild``, after an
    agreed contract change; only the feed's first run of the command sets it)."""


class SourceConfig(dg.Config):
    rebuild: bool = False
    """Re-key every record, not only those loaded or re-linked since the table's last build
    (``placelink pseudonymise --rebuild``)."""


def raw_key(feed: Feed) -> dg.AssetKey:
    return dg.AssetKey(["raw", feed.name])


def src_key(feed: Feed) -> dg.AssetKey:
    return dg.AssetKey(["src", feed.name])


def _tag(value: str) -> str:
    """Dagster tag values allow letters, digits, ``-_.`` and at most 63 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", value)[:63]


def materialisation_metadata(feed: Feed, res: PartitionResult) -> dict:
    meta = res.metadata()
    return {
        "rows_received": dg.MetadataValue.int(res.rows_received),
        "rows_loaded": dg.MetadataValue.int(res.rows_loaded),
        "rows_quarantined": dg.MetadataValue.int(res.rows_quarantined),
        "quarantined_by_reason": dg.MetadataValue.json(meta["quarantined_by_reason"]),
        "columns_dropped_by_agreement": dg.MetadataValue.json(meta["columns_dropped"]),
        "source_files": dg.MetadataValue.json(meta["source_files"]),
        "preview (identifiers masked)": dg.MetadataValue.md(res.preview_markdown),
        "agreement": dg.MetadataValue.text(feed.agreement.id),
        "dagster/row_count": dg.MetadataValue.int(res.rows_loaded),
    }


def range_metadata(feed: Feed, results: list[PartitionResult]) -> dict:
    """Metadata of a backfill run over several months: totals plus one line per month."""
    reasons: dict[str, int] = {}
    for r in results:
        for k, v in r.quarantined_by_reason.items():
            reasons[k] = reasons.get(k, 0) + v
    return {
        "rows_received": dg.MetadataValue.int(sum(r.rows_received for r in results)),
        "rows_loaded": dg.MetadataValue.int(sum(r.rows_loaded for r in results)),
        "rows_quarantined": dg.MetadataValue.int(sum(r.rows_quarantined for r in results)),
        "quarantined_by_reason": dg.MetadataValue.json(dict(sorted(reasons.items()))),
        "columns_dropped_by_agreement": dg.MetadataValue.json(sorted({c for r in results for c in r.columns_dropped})),
        "partitions": dg.MetadataValue.json({r.partition: {"received": r.rows_received, "loaded": r.rows_loaded,
                                                           "quarantined": r.rows_quarantined,
                                                           "quarantined_by_reason": r.quarantined_by_reason,
                                                           "files": [f.source_file for f in r.files]}
                                             for r in results}),
        "preview (identifiers masked)": dg.MetadataValue.md(
            next((r.preview_markdown for r in reversed(results) if r.rows_loaded), "")),
        "agreement": dg.MetadataValue.text(feed.agreement.id),
    }


def build_raw_asset(contract: Contract, feed: Feed,
                    extensions: dict[tuple[str, str], str] | None = None) -> dg.AssetsDefinition:
    """``extensions``: every contract feed's ``(partner, feed) -> extension`` (:func:`contract_extensions`); with it
    a load also records the landing files outside any feed's folder, as ``placelink ingest`` always did, so every
    odd file is accounted for whichever run (CLI, sensor, refresh) loaded last."""
    agreement = feed.agreement

    @dg.asset(
        key=raw_key(feed),
        group_name=feed.partner,
        owners=[contract.partner.owner],
        description=f"{feed.description}\n\nPartner: {contract.partner.name}. Agreement {agreement.id}: "
                    f"purposes {', '.join(agreement.purposes)}; retention {agreement.retention_months} months. "
                    f"Identifiable zone table `{feed.table}`.",
        kinds={"duckdb"},
        tags={"agreement": _tag(agreement.id), "partner": _tag(feed.partner), "zone": "identifiable"},
        metadata={"contract": dg.MetadataValue.path(str(contract.path)),
                  "table": feed.table, "purposes": agreement.purposes,
                  "retention_months": agreement.retention_months,
                  "allowed_columns": agreement.allowed_columns},
        partitions_def=monthly_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=IDENTIFIABLE_POOL,
    )
    @no_leaks(f"ingest of {feed.source}")
    def _raw(context: dg.AssetExecutionContext, config: RawConfig, identifiable_db: DuckDBResource,
             placelink_settings: PlacelinkSettings) -> dg.MaterializeResult:
        settings = placelink_settings.get()
        opt_outs = read_opt_outs(settings.reference)
        results, rejected = [], []
        # a backfill or full refresh brings many months at once: worker processes parse them side by side while
        # this process writes them one after another (the zone has one writer)
        with parse_partitions(feed, list(context.partition_keys), settings.landing, home=settings.home,
                              opt_outs=opt_outs) as parsed, identifiable_db.get_connection() as con:
            # DuckDBResource only closes on success; an open handle would block readers in this process
            try:
                if config.rebuild:
                    drop_feed(con, feed)
                # a backfill arrives as one run over a range of months (BackfillPolicy.single_run)
                for partition in context.partition_keys:
                    res = ingest_partition(con, feed, partition, settings.landing, home=settings.home,
                                           opt_outs=opt_outs, parsed=parsed)
                    context.log.info(f"{feed.source} {res.partition}: received {res.rows_received}, loaded "
                                     f"{res.rows_loaded}, quarantined {res.rows_quarantined} "
                                     f"{res.quarantined_by_reason}")
                    results.append(res)
                # files in the feed's folder the landing rule rejects (and, knowing every feed, those outside
                # any feed's folder): recorded on every load until fixed
                if extensions:
                    scanned = [f for f in scan_landing(settings.landing, extensions) if f.reason]
                    rejected = [f for f in scanned if (f.partner, f.feed) == (feed.partner, feed.id)]
                else:
                    scanned = rejected = [f for f in scan_feed(settings.landing, feed.partner, feed.id,
                                                               feed.drop_extension) if f.reason]
                record_rejected(con, scanned, feeds=[(feed.partner, feed.id)],
                                known=set(extensions) if extensions else None, landing=settings.landing,
                                home=settings.home)
            finally:
                con.close()
        for f in rejected:
            context.log.warning(f"landing/{f.rel} rejected, not loaded: {f.reason} (fix: {f.fix})")
        meta = (materialisation_metadata(feed, results[0]) if len(results) == 1
                else range_metadata(feed, results))
        meta["rejected_files"] = dg.MetadataValue.json(
            [{"file": f"landing/{f.rel}", "reason": f.reason, "fix": f.fix} for f in rejected])
        return dg.MaterializeResult(metadata=meta)

    return _raw


def build_src_asset(contract: Contract, feed: Feed) -> dg.AssetsDefinition:
    @dg.asset(
        key=src_key(feed),
        group_name="pseudonymised",
        owners=[contract.partner.owner],
        description=f"Pseudonymised {feed.source}: record/person/household keys, UPRN, LSOA, coarsened "
                    f"demographics and the feed's non-identifying columns. {feed.description}",
        kinds={"duckdb"},
        tags={"agreement": _tag(feed.agreement.id), "partner": _tag(feed.partner), "zone": "warehouse"},
        deps=[raw_key(feed), *LINK_KEYS, dg.AssetKey(["ref", "postcodes"])],
        pool=WAREHOUSE_POOL,
    )
    @no_leaks(f"pseudonymisation of {feed.source}")
    def _src(context: dg.AssetExecutionContext, config: SourceConfig, warehouse_db: DuckDBResource,
             identifiable_db: DuckDBResource, placelink_settings: PlacelinkSettings) -> dg.MaterializeResult:
        pz = pseudonymiser(placelink_settings.get())
        with warehouse_db.get_connection() as con:
            attach_identifiable(con, identifiable_db.database)
            try:
                rows = build_warehouse_source(con, feed, pz, incremental=not config.rebuild)
                build = source_build(con, feed) or {}
            finally:
                con.execute(f"DETACH {IDZ}")
                con.close()
        why = build.get("reason") or f"{build.get('records_changed')} record(s) changed since the last build"
        context.log.info(f"src.{feed.name}: {build.get('mode')}, {why}")
        return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(rows),
                                              "table": f"src.{feed.name}",
                                              "build": build.get("mode", "rebuild"),
                                              "rebuild_reason": build.get("reason") or "",
                                              "records_rekeyed": rows if build.get("mode", "rebuild") == "rebuild"
                                              else build.get("records_changed", 0)})

    return _src


@dg.multi_asset(
    specs=[dg.AssetSpec(["ref", name], group_name="reference", kinds={"duckdb"},
                        description=f"Reference table ref.{name} copied from <home>/reference/{name}.csv "
                                    "(no personal data).", skippable=True)
           for name in REFERENCE_TABLES],
    pool=WAREHOUSE_POOL,
    can_subset=True,
)
@no_leaks("reference tables")
def reference_tables(context: dg.AssetExecutionContext, warehouse_db: DuckDBResource,
                     placelink_settings: PlacelinkSettings):
    """Copy ``reference/*.csv`` into ``ref.*`` of the warehouse."""
    from orchestration.lib.feeds.warehouse_sources import build_reference_tables

    settings = placelink_settings.get()
    with warehouse_db.get_connection() as con:
        written = set(build_reference_tables(con, settings.reference))
        for key in context.selected_asset_keys:
            table = f"ref.{key.path[-1]}"
            if table in written:
                rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": int(rows)})


def build_feed_assets(contracts: Contracts) -> list[dg.AssetsDefinition]:
    assets: list[dg.AssetsDefinition] = []
    extensions = contract_extensions(contracts.feeds())
    for contract in contracts:
        for feed in contract.feeds:
            assets += [build_raw_asset(contract, feed, extensions), build_src_asset(contract, feed)]
    return assets
