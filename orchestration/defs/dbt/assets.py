"""dagster-dbt assets for dbt_project/ and the published-files asset. Thin: the logic is in lib/dbt_runner."""


import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtCliRuntimeError,
    DagsterDbtTranslator,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from orchestration.defs.ops.planning import MONTHS_TAG
from orchestration.defs.resources import WAREHOUSE_POOL, PlacelinkSettings
from orchestration.lib import dbt_runner

OWNER = "data.engineering@placelink.example"

dbt_project = DbtProject(project_dir=dbt_runner.DBT_PROJECT_DIR, profiles_dir=dbt_runner.DBT_PROJECT_DIR)
MANIFEST = dbt_runner.ensure_manifest()


class PlacelinkDbtTranslator(DagsterDbtTranslator):
    """Asset keys mirror the warehouse: models ``<schema>/<model>``; sources the feed assets that write them."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            source, table = dbt_resource_props["source_name"], dbt_resource_props["name"]
            if source == "reference":
                return dg.AssetKey(["ref", table])
            return dg.AssetKey(["src", f"{source}__{table}"])
        schema = dbt_resource_props.get("schema") or dbt_resource_props["config"].get("schema")
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        # group = schema (staging / intermediate / marts / published / seeds), like the asset key prefix
        return dbt_resource_props.get("schema") or dbt_resource_props["config"].get("schema")

    def get_owners(self, dbt_resource_props: Mapping[str, Any]):
        return [OWNER]


class DbtBuildConfig(dg.Config):
    month: str | None = None
    """Rebuild one month (YYYY-MM) of the incremental models; empty = every month."""
    disclosure_threshold: int | None = None
    """Override var disclosure_threshold (counts 1..threshold-1 suppressed); empty = 5."""
    full_refresh: bool = False
    """Rebuild the incremental models from scratch (``dbt build --full-refresh``): ``placelink refresh --full``
    sets it. Off (the nightly): they add only the months of the partitions loaded since their last build."""


def event_months(warehouse_db, partitions: list[str]) -> list[str]:
    """The event months (``YYYY-MM-01``) of the rows of ``partitions`` in the pseudonymised sources ``src.*``."""
    import duckdb

    parts = sorted({p.strip() for p in partitions if p.strip()})
    if not parts:
        return []
    with duckdb.connect(str(warehouse_db)) as con:
        tables = [t for (t,) in con.execute(
            "select table_name from information_schema.columns where table_schema = 'src' "
            "and column_name in ('partition_month', 'event_month') group by table_name having count(*) = 2"
        ).fetchall()]
        months: set[str] = set()
        for table in tables:
            rows = con.execute(
                f"select distinct strftime(cast(event_month as date), '%Y-%m-01') from src.{table} "
                f"where cast(partition_month as date) in (select cast(unnest(?) as date)) and event_month is not null",
                [parts]).fetchall()
            months.update(m for (m,) in rows if m)
    return sorted(months)


def _partial_parse_env(settings) -> dict[str, str]:
    """Run dagster-dbt's invocations under ``<home>/dbt/target`` with this home's own saved parse.

    dagster-dbt copies the parse it finds in ``DBT_TARGET_PATH`` into each invocation's folder; the home's is made
    reusable for this home first (:func:`dbt_runner.prepare_partial_parse`), and each run's is kept for the next
    (:func:`_keep_partial_parse`).
    """
    dbt_runner.prepare_partial_parse(settings)
    return {"DBT_TARGET_PATH": str(dbt_runner.target_dir(settings))}


def _keep_partial_parse(invocation, settings, log) -> None:
    fresh = Path(invocation.target_path) / dbt_runner.PARTIAL_PARSE
    if not fresh.exists():
        return
    target = dbt_runner.target_dir(settings)
    try:
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / f".{dbt_runner.PARTIAL_PARSE}.tmp"
        shutil.copyfile(fresh, tmp)
        tmp.replace(target / dbt_runner.PARTIAL_PARSE)  # atomic: a reader never sees half a file
        dbt_runner.saved_parse_is_this_homes(settings)
    except OSError as exc:  # only a cache: the next build parses in full, the models are built either way
        log.warning(f"could not keep dbt's parse state in {target}: {exc}")


@dbt_assets(
    manifest=MANIFEST,
    project=dbt_project,
    dagster_dbt_translator=PlacelinkDbtTranslator(),
    name="placelink_dbt_models",
    pool=WAREHOUSE_POOL,
    op_tags={"placelink/stage": "dbt"},
)
def placelink_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig,
                         placelink_settings: PlacelinkSettings):
    """dbt build of the selected models; tests become asset checks. Vars carry the month to rebuild."""
    args = ["build", *dbt_runner.PIPELINE_BUILD_EXCLUDE]
    if config.full_refresh:
        args.append("--full-refresh")
    settings = placelink_settings.get()
    variables = dbt_runner.dbt_vars(config.month, config.disclosure_threshold)
    # an empty value set explicitly, so a value left in the environment cannot leak into a full build
    extra = {dbt_runner.PUBLISHED_MONTHS_ENV: ""}
    months_loaded = context.run.tags.get(MONTHS_TAG)
    if months_loaded and not (config.full_refresh or config.month or config.disclosure_threshold):
        # a nightly refresh of new months only: disclosure control (the published table, by far the slowest
        # model) runs again only for the months the new rows fall in; every other month is kept as published
        touched = event_months(settings.warehouse_db, months_loaded.split(","))
        if touched:
            extra[dbt_runner.PUBLISHED_MONTHS_ENV] = ",".join(touched)
            context.log.info(f"published table: disclosure control for months {','.join(touched)}")
    if variables:
        import json

        args += ["--vars", json.dumps(variables)]
    with dbt_runner.dbt_environment(settings, extra={**extra, **_partial_parse_env(settings)}):
        invocation = None
        try:
            invocation = dbt.cli(args, context=context)
            yield from invocation.stream()
            _keep_partial_parse(invocation, settings, context.log)
            dbt_runner.prune_runs(settings)
        except DagsterDbtCliRuntimeError as exc:
            # a failing dbt model or test is a data error: retrying (the jobs' transient retry policy) cannot
            # fix it and only delays the alert, so fail at once. The first line names what failed (the refresh's
            # and placelink build's error show a step's first line); dbt's own account follows.
            failed = dbt_runner.failed_nodes(Path(invocation.target_path) / "run_results.json") if invocation else []
            raise dg.Failure(description=f"dbt build failed: {', '.join(failed) or 'see the dbt log'}\n{exc}",
                             allow_retries=False) from exc


@dg.asset(
    key=["published", "files"],
    group_name="published",
    owners=[OWNER],
    kinds={"parquet", "csv"},
    deps=[dg.AssetKey(["published", "place_monthly_indicators"])],
    description="Disclosure-controlled tables written to <home>/published/*.parquet and *.csv (placelink publish), "
                "and the atlas drawn from them (placelink atlas; served by placelink docs).",
)
def published_files(context: dg.AssetExecutionContext, placelink_settings: PlacelinkSettings) -> dg.MaterializeResult:
    from orchestration.lib.atlas import build_atlas
    from orchestration.lib.docs_site import served_url
    from orchestration.lib.errors import PlacelinkError

    settings = placelink_settings.get()
    paths = dbt_runner.publish(settings)
    meta = {"files": [str(p) for p in paths], "dagster/row_count": _rows(paths)}
    # the atlas is drawn from these files only, so it is rebuilt with them and never shows other figures.
    # A broken boundary file must not stop publication (the files above are written): it is logged as an error
    # and shown in the metadata instead of the link.
    try:
        atlas = build_atlas(settings)
    except PlacelinkError as exc:
        context.log.error(f"atlas not built: {exc}")
        meta["atlas_error"] = str(exc)
    else:
        meta["atlas"] = dg.MetadataValue.url(served_url(settings, atlas.index))
        meta["atlas_indicators"] = dg.MetadataValue.int(atlas.indicators)
    return dg.MaterializeResult(metadata=meta)


def _rows(paths) -> int:
    import duckdb

    parquet = [p for p in paths if str(p).endswith(".parquet")]
    with duckdb.connect() as con:
        return int(sum(con.execute(f"select count(*) from '{p}'").fetchone()[0] for p in parquet))
