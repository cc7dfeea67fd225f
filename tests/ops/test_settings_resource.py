"""Settings reach Dagster runs as a resource (``placelink_settings``), not through the environment (issue #24).

A run started for one home works on that home even when the process's environment names another, and nothing
writes ``os.environ`` to get there; the code location ``dagster dev`` loads reads the environment through
``dg.EnvVar`` instead.
"""

from __future__ import annotations

import os
import shutil

import dagster as dg
import duckdb

from orchestration.defs.feeds.assets import reference_tables
from orchestration.defs.resources import SETTINGS, PlacelinkSettings, settings_resource, shared_resources
from orchestration.lib.config import get_settings


def test_a_run_works_on_the_home_it_was_bound_to_not_the_environments(tiny_county, tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "bound", tmp_path / "elsewhere"
    shutil.copytree(tiny_county / "reference", home / "reference")
    monkeypatch.setenv("PLACELINK_HOME", str(elsewhere))
    settings = get_settings(home=home).ensure()

    keys = [dg.AssetKey(["ref", "lsoas"]), dg.AssetKey(["ref", "wards"])]
    result = dg.materialize([reference_tables], selection=keys, resources=shared_resources(settings),
                            instance=dg.DagsterInstance.ephemeral())

    assert result.success
    assert {e.asset_key for e in result.get_asset_materialization_events()} == set(keys)
    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        assert con.execute("select count(*) from ref.lsoas").fetchone()[0] > 0
    assert not elsewhere.exists()  # the environment's home was neither read nor written
    assert os.environ["PLACELINK_HOME"] == str(elsewhere)  # and nobody rewrote the environment


def test_the_code_location_reads_the_environment_through_envvar(tmp_path, monkeypatch):
    monkeypatch.setenv("PLACELINK_HOME", str(tmp_path / "from-env"))
    resource = settings_resource()
    assert isinstance(resource.home, dg.EnvVar) and resource.home.env_var_name == "PLACELINK_HOME"

    seen = {}

    @dg.asset
    def probe(placelink_settings: PlacelinkSettings) -> None:
        seen["home"] = placelink_settings.get().home

    assert dg.materialize([probe], resources={SETTINGS: resource}).success
    assert seen["home"] == (tmp_path / "from-env").resolve()
