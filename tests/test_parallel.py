"""Worker pools for the CPU-bound stages (orchestration/lib/parallel.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# a main script with a visible cost of being imported: each import appends a line to the file in argv[1]
MAIN_SCRIPT = """
import sys
with open(sys.argv[1], "a") as f:
    f.write(__name__ + "\\n")
if __name__ == "__main__":
    from orchestration.lib.parallel import spawn_pool
    with spawn_pool(2) as pool:
        print(sorted(pool.map(abs, [-3, -1, -2, -4], chunksize=1)))
"""


def test_spawned_workers_do_not_run_the_parents_main_script_again(tmp_path):
    """Inside dbt's Python model the parent's main script is dbt's CLI: a spawned worker used to import it again
    before its first task. The workers still run their tasks, and the script is imported once, by the parent."""
    script, marks = tmp_path / "main_script.py", tmp_path / "imports.txt"
    script.write_text(MAIN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(script), str(marks)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1, 2, 3, 4]"
    assert marks.read_text().splitlines() == ["__main__"]


def test_a_task_defined_in_main_is_refused_with_a_clear_error():
    from orchestration.lib.parallel import spawn_pool

    def local_task(x):
        return x

    local_task.__module__ = "__main__"
    with spawn_pool(1) as pool, pytest.raises(TypeError, match="defined in __main__"):
        pool.submit(local_task, 1)
