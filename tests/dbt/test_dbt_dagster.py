"""dbt in Dagster: models sit under the feed assets with their tests as checks; a clean clone gets a manifest;
an in-process run of them (the full refresh's) is tests/test_end_to_end.py."""

from __future__ import annotations

import shutil

import dagster as dg

from orchestration.defs.resources import shared_resources
from orchestration.lib import dbt_runner
from orchestration.lib.config import get_settings


def test_models_are_schema_keyed_assets_under_the_feed_assets(tmp_path):
    from orchestration.defs.dbt import defs

    # the shared resources (definitions.py) complete the domain's: its assets ask for the home's settings and dbt
    graph = dg.Definitions.merge(defs, dg.Definitions(resources=shared_resources(get_settings(home=tmp_path)))
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
