"""The Dagster code location loads, validates, and its asset graph only changes deliberately.

When you change the graph on purpose, refresh the snapshot:
``uv run pytest tests/test_definitions.py --snapshot-update`` and review the diff.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]


def _graph_summary(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "owners": sorted(node.owners),
            "partitioned": node.partitions_def is not None,
            "deps": sorted(d.to_user_string() for d in node.parent_keys),
            "kinds": sorted(node.kinds),
        }
    checks = sorted(k.to_user_string() for k in graph.asset_check_keys)
    jobs = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
    schedules = sorted(s.name for s in defs.schedules or [])
    sensors = sorted(s.name for s in defs.sensors or [])
    return {"assets": assets, "checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def test_definitions_load():
    from orchestration.definitions import defs

    defs.resolve_asset_graph()
    assert "identifiable_db" in defs.resources and "warehouse_db" in defs.resources


def test_asset_graph_snapshot(snapshot):
    from orchestration.definitions import defs

    assert _graph_summary(defs) == snapshot


def test_dagster_definitions_validate(tmp_path):
    """The code location ``dagster dev`` loads validates, and loading it (bound to the environment's home, here on
    the Spark engine: its dbt is a wrapper in the home) writes nothing in that home; the manifest dbt parses on
    import when stale is the project's."""
    home = tmp_path / "home"
    env = {**__import__("os").environ, "DAGSTER_HOME": str(tmp_path), "PLACELINK_HOME": str(home),
           "PLACELINK_ENGINE": "spark"}
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, capture_output=True, text=True, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not home.exists()
