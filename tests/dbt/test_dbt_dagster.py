"""dbt in Dagster: models sit under the feed assets with their tests as checks; a clean clone gets a manifest;
an in-process run builds the warehouse and writes the published files."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import pytest

from orchestration.defs.resources import settings_resource
from orchestration.lib import dbt_runner
from orchestration.lib.config import get_settings


def test_models_are_schema_keyed_assets_under_the_feed_assets():
    from orchestration.defs.dbt import defs

    # the shared resources (definitions.py) complete the domain's: its assets ask for the home's settings
    graph = dg.Definitions.merge(defs, dg.Definitions(resources={"placelink_settings": settings_resource()})
                                 ).resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"marts/lsoa_monthly_indicators", "published/place_monthly_indicators", "published/files",
            "intermediate/int_events_joined_to_places", "staging/stg_police__street_crimes"} <= keys
    staging = graph.get(dg.AssetKey(["staging", "stg_nhs__ae_attendances"]))
    assert staging.parent_keys == {dg.AssetKey(["src", "nhs__ae_attendances"])}
    assert graph.get(dg.AssetKey(["staging", "stg_reference__lsoas"])).parent_keys == {dg.AssetKey(["ref", "lsoas"])}
    assert staging.group_name == "staging"
    checks = {k.to_user_string() for k in graph.asset_check_keys}
    assert any(c.startswith("marts/lsoa_monthly_indicators:unique_combination") for c in checks)
    assert any(c.startswith("published/place_monthly_indicators:expression_is_true") for c in checks)
    assert len(checks) > 150


def test_a_clean_clone_gets_its_manifest_once(tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(dbt_runner.DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    assert dbt_runner.manifest_is_stale(project)
    manifest = dbt_runner.ensure_manifest(project_dir=project)
    assert manifest.exists() and not dbt_runner.manifest_is_stale(project)
    mtime = manifest.stat().st_mtime
    dbt_runner.ensure_manifest(project_dir=project)  # current: no second parse
    assert manifest.stat().st_mtime == mtime
    (project / "models" / "marts" / "place" / "lsoa_profile.sql").touch()
    assert dbt_runner.manifest_is_stale(project)


@pytest.mark.slow
def test_in_process_dagster_run_builds_models_checks_and_published_files(dbt_warehouse, tmp_path, monkeypatch):
    from orchestration.defs.dbt.assets import dbt_resource, placelink_dbt_models, published_files

    home = tmp_path / "home"
    shutil.copytree(dbt_warehouse, home)
    shutil.rmtree(home / "published")
    monkeypatch.setenv("PLACELINK_HOME", str(home))
    with duckdb.connect(str(get_settings().warehouse_db)) as con:
        con.execute("drop schema published cascade; drop table marts.lsoa_monthly_indicators")
    result = dg.materialize(
        [placelink_dbt_models, published_files],
        resources={"dbt": dbt_resource(), "placelink_settings": settings_resource(get_settings())},
        selection=dg.AssetSelection.assets(
            dg.AssetKey(["marts", "dim_lsoa"]), dg.AssetKey(["marts", "dim_ward"]),
            dg.AssetKey(["marts", "dim_msoa"]), dg.AssetKey(["marts", "dim_district"]),
            dg.AssetKey(["marts", "dim_calendar"]), dg.AssetKey(["marts", "lsoa_monthly_indicators"]),
            dg.AssetKey(["marts", "ward_monthly_indicators"]), dg.AssetKey(["marts", "msoa_monthly_indicators"]),
            dg.AssetKey(["marts", "district_monthly_indicators"]), dg.AssetKey(["marts", "place_indicator_cells"]),
            dg.AssetKey(["published", "place_monthly_indicators"]), dg.AssetKey(["published", "files"])),
    )
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"marts/lsoa_monthly_indicators", "published/place_monthly_indicators", "published/files"} <= materialized
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    assert (home / "published" / "place_monthly_indicators.parquet").exists()
    # the atlas is drawn from the files just published and linked by an http:// URL of `placelink docs`
    files_meta = next(e for e in result.get_asset_materialization_events()
                      if e.asset_key == dg.AssetKey(["published", "files"])).materialization.metadata
    from orchestration.lib.docs_site import docs_base_url

    assert files_meta["atlas"].value == f"{docs_base_url()}/atlas/index.html"
    assert files_meta["atlas_indicators"].value > 0 and (home / "atlas" / "index.html").exists()
    with duckdb.connect(str(get_settings().warehouse_db), read_only=True) as con:
        assert con.execute("select count(*) from published.place_monthly_indicators "
                           "where event_count between 1 and 4").fetchone()[0] == 0
