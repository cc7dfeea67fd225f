"""dbt Python models on the Spark profile: run them in placelink's own Spark session.

dbt-spark submits a Python model to a Databricks cluster (its ``job_cluster`` and ``all_purpose_cluster`` methods);
with the ``session`` connection method, which placelink uses (dbt runs inside this process's Spark session,
:mod:`orchestration.lib.spark`), it has no way to run one. The model's compiled code is plain PySpark -- it reads
``spark.table(<ref>)`` and ends with ``df.write...saveAsTable(<this>)`` -- so the ``session`` method here runs it in
the session dbt already uses. The published model (disclosure control) then reads the Spark marts and writes a
Spark table, from the same model file as on DuckDB (``dbt_project.yml`` sets ``submission_method: session`` on the
Spark target only).

dbt-spark offers no registration hook for a submission method, so :func:`register` adds one to its adapter class
(idempotent); :func:`orchestration.lib.dbt_runner.run_dbt` calls it before an in-process dbt run on Spark.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def _session_helper():
    from dbt.adapters.base import PythonJobHelper

    class SessionPythonJobHelper(PythonJobHelper):
        """Runs a Python model's compiled code with ``spark`` = the process's active session."""

        def __init__(self, parsed_model: dict, credentials: Any) -> None:
            self.parsed_model = parsed_model

        def submit(self, compiled_code: str) -> Any:
            from pyspark.sql import SparkSession

            spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
            where = self.parsed_model.get("original_file_path", "<dbt python model>")
            code = with_location(compiled_code, self.parsed_model)
            exec(compile(code, where, "exec"), {"spark": spark, "__name__": "__dbt_python_model__"})  # noqa: S102 - dbt's own compiled model code

    return SessionPythonJobHelper


def with_location(compiled_code: str, parsed_model: dict) -> str:
    """The compiled model writing its table to ``<location_root>/<alias>``, as dbt-spark's SQL tables do: its
    Python write (``py_write_table``) ignores ``location_root`` (a Databricks table is managed), so the table would
    land in the session's default folder, which differs from process to process. One ``saveAsTable`` is expected."""
    root = (parsed_model.get("config") or {}).get("location_root")
    if not root:
        return compiled_code
    if compiled_code.count(".saveAsTable(") != 1:
        raise RuntimeError("dbt-spark's compiled Python model no longer ends in one saveAsTable(): "
                           "orchestration/lib/dbt_spark.py must follow it")
    folder = f"{root.rstrip('/')}/{parsed_model.get('alias') or parsed_model['name']}"
    return compiled_code.replace(".saveAsTable(", f".option('path', {folder!r}).saveAsTable(")


def register() -> None:
    """Give dbt-spark's adapter a ``session`` submission method for Python models (once per process)."""
    from dbt.adapters.spark.impl import SparkAdapter

    if getattr(SparkAdapter, "_placelink_session_python", False):
        return
    helpers = SparkAdapter.python_submission_helpers.fget
    helper = _session_helper()
    SparkAdapter.python_submission_helpers = property(lambda self: {**helpers(self), "session": helper})
    SparkAdapter._placelink_session_python = True


def main() -> None:
    """dbt's own command line with the ``session`` method registered: the dbt a subprocess runs on the Spark profile
    (Dagster's dbt assets start ``dbt`` as a subprocess; :func:`executable`)."""
    register()
    from dbt.cli.main import cli

    cli()


def executable_path(home: Path) -> Path:
    """Where :func:`executable` writes the Spark profile's ``dbt`` for a home (nothing is read or written here)."""
    return home / "dbt" / "bin" / "dbt"


def executable(home: Path) -> Path:
    """A ``dbt`` executable for the Spark profile, under ``<home>/dbt/bin``: this Python running :func:`main`.
    Written before each dbt build on Spark (:func:`orchestration.lib.dbt_runner.engine_inputs`), not when the
    code location binds its resources."""
    path = executable_path(home)
    script = f"#!{sys.executable}\nfrom orchestration.lib.dbt_spark import main\n\nmain()\n"
    if not path.exists() or path.read_text(encoding="utf-8") != script:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script, encoding="utf-8")
        path.chmod(0o755)
    return path
