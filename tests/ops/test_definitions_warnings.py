"""Loading the code location prints none of the Beta/Preview warnings of the Dagster features placelink uses
knowingly (orchestration/defs/__init__.py lists them): nine of them used to open every CLI command and run
worker's output. A Dagster warning about anything else still shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import warnings
import dagster as dg
import orchestration.definitions  # builds the code location's definitions, as dagster and the CLI do
warnings.warn("a feature nobody chose", dg.BetaWarning)
"""


def test_loading_the_definitions_shows_only_warnings_nobody_chose(tmp_path):
    proc = subprocess.run([sys.executable, "-W", "default", "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PLACELINK_HOME": str(tmp_path / "h")},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "backfill_policy" not in proc.stderr and "map_asset_specs" not in proc.stderr, proc.stderr[-2000:]
    assert "map_resolved_asset_specs" not in proc.stderr
    assert "BetaWarning: a feature nobody chose" in proc.stderr
