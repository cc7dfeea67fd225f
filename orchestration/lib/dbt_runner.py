"""Run the dbt project (``dbt_project/``) as plain functions: build, parse, docs, and publish the outputs.

dbt runs in process through ``dbt.cli.main.dbtRunner`` with the environment derived from the caller's
:class:`~orchestration.lib.config.Settings` (:func:`dbt_env`): ``PLACELINK_WAREHOUSE_DB`` (the profile's DuckDB path) and
``PLACELINK_DBT_TARGET`` (``local`` or ``production``). No Dagster import here: the Dagster assets in
``orchestration/defs/dbt`` and the ``placelink build|publish|dbt-docs`` commands both call these functions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.lib.config import Settings, platform_period
from orchestration.lib.errors import PlacelinkError

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
#: Tables written to ``published/`` as Parquet and CSV by :func:`publish`.
PUBLISHED_TABLES = ("place_monthly_indicators",)
#: First and last month of the platform's period (:func:`orchestration.lib.config.platform_period`), read by
#: dbt_project/macros/period.sql
PERIOD_START_ENV, PERIOD_END_ENV = "PLACELINK_PERIOD_START", "PLACELINK_PERIOD_END"


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment variables dbt's ``profiles.yml`` and macros read, from the one settings function."""
    s = settings
    first, last = platform_period()
    return {
        # the months the calendar and every mart may hold (macros/period.sql); env vars, not --vars: a change of
        # var makes dbt re-parse the whole project, this one changes once a month
        PERIOD_START_ENV: first.isoformat(),
        PERIOD_END_ENV: last.isoformat(),
        "PLACELINK_WAREHOUSE_DB": str(s.warehouse_db),
        "PLACELINK_DBT_TARGET": "spark" if s.engine == "spark" else "production" if s.env == "production" else "local",
        # the Spark profile's models are Parquet tables under the home (dbt_project.yml location_root)
        "PLACELINK_SPARK_WAREHOUSE": str(s.spark_warehouse),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        # dbt would otherwise phone home (anonymous usage stats) and check for a new version: no internet here.
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_VERSION_CHECK": "false",
        # Runs write their artefacts (run_results, compiled SQL, docs) under the home, so builds of different
        # homes (tests, engineers) never overwrite each other; only `dbt parse` writes dbt_project/target.
        "DBT_LOG_PATH": str(s.logs_dir / "dbt"),
    }


#: The months whose published tables are protected again (comma-separated YYYY-MM-01), set by the nightly refresh.
#: An env var, not a --vars value: dbt re-parses the whole project whenever the vars change.
PUBLISHED_MONTHS_ENV = "PLACELINK_PUBLISHED_MONTHS"


def dbt_executable(settings: Settings) -> str:
    """The ``dbt`` of this Python environment (``<venv>/bin/dbt``), else the one on PATH. On the Spark profile, the
    same dbt with Python models run in the Spark session, at its path in the home
    (:func:`orchestration.lib.dbt_spark.executable_path`; :func:`engine_inputs` writes it before each build, so
    binding the dbt resource to a home reads and writes nothing)."""
    if settings.engine == "spark":
        from orchestration.lib import dbt_spark

        return str(dbt_spark.executable_path(settings.home))
    own = Path(sys.executable).parent / "dbt"
    return str(own) if own.exists() else (shutil.which("dbt") or "dbt")


def target_dir(settings: Settings) -> Path:
    """Where dbt runs for this home write target/ (compiled SQL, run_results.json, the docs site)."""
    return settings.home / "dbt" / "target"


#: dbt's saved parse (``dbt parse`` writes it to ``dbt_project/target``, every build to the home's target)
PARTIAL_PARSE = "partial_parse.msgpack"
#: beside a home's saved parse: the warehouse path (the one home-specific value in dbt's profile) it was made for
PARSE_MADE_FOR = "partial_parse.made_for"


def prepare_partial_parse(settings: Settings) -> Path | None:
    """Give the home's next dbt build a saved parse it can reuse; returns its path (None if there is none yet).

    dbt reuses a saved parse (``partial_parse.msgpack``) only if the profile's connection details hash as they did
    when it was saved, and the DuckDB profile holds the home's warehouse path: a new home (seeded from the project's
    parse), a moved or a copied one made dbt re-parse the whole project, 10-40 s of its first build. The parse holds
    no path (models reach the warehouse by its catalog name, ``warehouse``), so the saved state is stamped with this
    home's profile hash instead, as dbt would have written it (:func:`_profile_hash`). Only the DuckDB profiles: the
    Spark session's parse is left to dbt. Anything unexpected leaves the state alone: dbt then parses in full, as
    before.
    """
    s = settings
    target = target_dir(s)
    state, made_for = target / PARTIAL_PARSE, target / PARSE_MADE_FOR
    if not state.exists():
        seed = DBT_PROJECT_DIR / "target" / PARTIAL_PARSE
        if not seed.exists():
            return None
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(seed, state)
    key = str(s.warehouse_db)
    if s.engine == "spark" or (made_for.exists() and made_for.read_text() == key):
        return state
    try:
        from dbt.contracts.graph.manifest import Manifest
        from dbt.parser.manifest import extended_mashumaro_encoder, extended_mashumuro_decoder

        manifest = Manifest.from_msgpack(state.read_bytes(), decoder=extended_mashumuro_decoder)
        manifest.state_check.profile_hash = _profile_hash(s)
        tmp = state.with_suffix(".tmp")
        tmp.write_bytes(manifest.to_msgpack(extended_mashumaro_encoder))
        tmp.replace(state)  # atomic: a concurrent reader sees the old state or the new, never half a file
        made_for.write_text(key)
    except Exception:  # noqa: BLE001 - only a cache: dbt parses in full, as it would have without this
        made_for.unlink(missing_ok=True)
    return state


def saved_parse_is_this_homes(settings: Settings) -> None:
    """Record that the home's saved parse was written by dbt for this home (after a build in it)."""
    s = settings
    if (target_dir(s) / PARTIAL_PARSE).exists():
        (target_dir(s) / PARSE_MADE_FOR).write_text(str(s.warehouse_db))


def _profile_hash(settings: Settings):
    """The hash dbt keeps of the profile's connection details (``ManifestLoader.build_manifest_state_check``), for
    this home: dbt's own profile loading with this home's environment, so the profile stays the one source."""
    import pprint
    from argparse import Namespace

    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt.contracts.files import FileHash
    from dbt.flags import set_from_args
    from dbt_common.context import set_invocation_context

    with _environ(dbt_env(settings)):
        set_from_args(Namespace(), None)
        set_invocation_context(os.environ)
        profile = Profile.from_raw_profiles(read_profile(str(DBT_PROJECT_DIR)), "placelink", ProfileRenderer({}))
        return FileHash.from_contents(pprint.pformat(sorted(profile.credentials.connection_info())))


#: dbt builds run by Dagster whose artefact folders (``<home>/dbt/target/<op>-<run id>-<n>/``: dbt.log,
#: run_results.json, compiled SQL; ~16 MB each on the demo county) a home keeps; older ones are removed after each
#: build, so a year of nightly builds does not fill the disk. The audit and Dagster's run history keep the record.
KEEP_DBT_RUNS = 30


def prune_runs(settings: Settings, keep: int = KEEP_DBT_RUNS) -> list[Path]:
    """Remove all but the newest ``keep`` dbt run folders under the home's target; returns what was removed."""
    runs = sorted((p for p in target_dir(settings).glob("*-*-*") if p.is_dir() and (p / "dbt.log").exists()),
                  key=lambda p: p.stat().st_mtime)
    old = runs[:-keep] if keep > 0 else runs
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return old


def last_run(settings: Settings) -> Path | None:
    """The artefact folder of the home's newest dbt build run by Dagster (None before the first)."""
    runs = sorted((p.parent for p in target_dir(settings).glob("*-*-*/run_results.json")),
                  key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    # dbt reads env_var() from os.environ of this process; set them for the call and restore afterwards.
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def normalise_month(month: str | None) -> str | None:
    """``2025-03`` or ``2025-03-01`` -> ``2025-03-01``; None stays None. Anything else is a user error."""
    if month is None or str(month).strip() == "":
        return None
    text = str(month).strip()
    m = re.fullmatch(r"(\d{4})-(\d{2})(?:-01)?", text)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise PlacelinkError(f"month {text!r} is not a month", where="--month",
                             fix="use YYYY-MM (e.g. 2025-03) or the first of the month (2025-03-01)")
    return f"{m.group(1)}-{m.group(2)}-01"


def dbt_vars(month: str | None = None, threshold: int | None = None) -> dict[str, object]:
    """The ``--vars`` for one run: the month to rebuild (if any) and the disclosure threshold override."""
    out: dict[str, object] = {}
    m = normalise_month(month)
    if m:
        out["month"] = m
    if threshold is not None:
        out["disclosure_threshold"] = int(threshold)
    return out


#: What a pipeline build leaves out: dbt's unit tests (models/**/_*.yml ``unit_tests:``) check the SQL's logic on
#: fixed inputs, so they do not change from night to night with the data; dbt recommends running them in
#: development and CI, not on every production build. ``make test`` runs them (:func:`unit_tests`,
#: tests/dbt/test_dbt_unit_tests.py). The data tests (what the night's rows must satisfy) stay in every build.
PIPELINE_BUILD_EXCLUDE = ("--exclude-resource-type", "unit_test")


def build_args(command: str = "build", select: Sequence[str] | None = None, month: str | None = None,
               threshold: int | None = None, full_refresh: bool = False, extra: Sequence[str] = ()) -> list[str]:
    """dbt CLI arguments (without the leading ``dbt``) for a command; pure, so tests call it directly."""
    args = [*command.split(), "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    if command == "build":
        args += PIPELINE_BUILD_EXCLUDE
    if select:
        args += ["--select", *select]
    v = dbt_vars(month, threshold)
    if v and command not in ("parse", "deps", "clean"):
        args += ["--vars", json.dumps(v)]
    if full_refresh and command in ("build", "run", "seed"):
        args.append("--full-refresh")
    return args + list(extra)


@dataclass
class DbtRunResult:
    success: bool
    args: list[str]
    results: list[dict] = field(default_factory=list)

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.results if r["status"] in ("error", "fail", "runtime error")]


def release_warehouse() -> None:
    """Close the DuckDB connection dbt-duckdb keeps open in this process after a run.

    DuckDB allows one writer per file and refuses a second connection with another configuration in the same
    process, so without this the publish step (or the next stage in a Dagster run) could not open the warehouse.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another adapter (production target): nothing held open here
        return
    env = DuckDBConnectionManager._ENV
    if env is not None and hasattr(env, "close"):
        env.close()
    DuckDBConnectionManager.close_all_connections()


def run_dbt(args: Sequence[str], settings: Settings, raise_on_failure: bool = True) -> DbtRunResult:
    """Run dbt in this process with the placelink environment and return what happened to each node."""
    from dbt.cli.main import dbtRunner

    s = settings
    if args and args[0] in ("build", "run", "seed", "test", "docs", "show") and not s.warehouse_db.exists():
        raise PlacelinkError(f"no warehouse at {s.warehouse_db}", where="dbt",
                             fix="run `placelink pseudonymise` (or `placelink demo`) first")
    args = list(args)
    if args and args[0] != "parse" and "--target-path" not in args:
        args += ["--target-path", str(target_dir(s))]
    if args and args[0] in ("build", "run", "seed", "test", "show"):
        engine_inputs(s)
    if args and args[0] != "parse" and args[args.index("--target-path") + 1] == str(target_dir(s)):
        prepare_partial_parse(s)
    if s.engine == "spark":
        from orchestration.lib import dbt_spark

        dbt_spark.register()  # Python models (disclosure control) run in this process's Spark session
    with _environ(dbt_env(s)):
        try:
            res = dbtRunner().invoke(args)
        finally:
            release_warehouse()
    if args and args[0] in ("build", "run", "seed"):
        engine_outputs(s)
    results = []
    for r in getattr(res.result, "results", None) or []:
        node = getattr(r, "node", None)
        results.append({"unique_id": getattr(node, "unique_id", "?"), "status": str(r.status),
                        "message": r.message, "execution_time": r.execution_time})
    if args and args[0] != "parse" and args[args.index("--target-path") + 1] == str(target_dir(s)):
        saved_parse_is_this_homes(s)
    out = DbtRunResult(success=bool(res.success), args=list(args), results=results)
    if raise_on_failure and not out.success:
        detail = "; ".join(f"{r['unique_id']}: {r['message']}" for r in out.failures[:5]) or str(res.exception)
        raise PlacelinkError(f"dbt {args[0]} failed: {detail}", where=str(DBT_PROJECT_DIR),
                             fix=f"read {s.logs_dir / 'dbt' / 'dbt.log'}; rerun with `placelink build --select <model>`")
    return out


def build(select: Sequence[str] | None = None, month: str | None = None, threshold: int | None = None,
          full_refresh: bool = False, *, settings: Settings) -> DbtRunResult:
    """``dbt build``: seeds, models and their tests (a failing test stops its children)."""
    return run_dbt(build_args("build", select, month, threshold, full_refresh), settings)


def failed_nodes(run_results: Path) -> list[str]:
    """The dbt nodes a build left failed (``error``/``fail``/``runtime error``), by name (``test.placelink.x`` ->
    ``test x``), from its ``run_results.json``: what an operator needs to know first, never a row or a value."""
    try:
        results = json.loads(Path(run_results).read_text())["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    out = []
    for r in results:
        if str(r.get("status")) in ("error", "fail", "runtime error"):
            kind, _, name = str(r.get("unique_id", "?")).partition(".")
            out.append(f"{kind} {name.split('.', 1)[-1]}")
    return out


def unit_tests(settings: Settings, raise_on_failure: bool = True) -> DbtRunResult:
    """dbt's unit tests (fixed inputs, expected outputs), which pipeline builds leave out (PIPELINE_BUILD_EXCLUDE)."""
    return run_dbt(build_args("test", ["test_type:unit"]), settings, raise_on_failure=raise_on_failure)


def parse(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """``dbt parse``: write ``<project>/target/manifest.json`` (no database needed). Returns its path.

    The manifest (and the saved parse beside it, which a new home's first build starts from:
    :func:`prepare_partial_parse`) describes the project, not a home: it is parsed on the DuckDB ``local`` profile
    whatever the environment names, with a stand-in warehouse path and dbt's log in the project's target, so the
    code location's import reads and writes nothing in any home."""
    target = project_dir / "target"
    stand_in = Settings(env="local", home=target / "parse-home", engine="duckdb")  # type: ignore[arg-type]
    with _environ({**dbt_env(stand_in), "DBT_LOG_PATH": str(target)}):
        from dbt.cli.main import dbtRunner

        args = ["parse", "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)]
        res = dbtRunner().invoke(args)
    manifest = target / "manifest.json"
    if not res.success or not manifest.exists():
        raise PlacelinkError(f"dbt parse failed: {res.exception}", where=str(DBT_PROJECT_DIR),
                             fix="run `uv run dbt parse --project-dir dbt_project --profiles-dir dbt_project`")
    return manifest


def manifest_is_stale(project_dir: Path = DBT_PROJECT_DIR) -> bool:
    """True when the manifest is missing or older than any file of the dbt project it describes."""
    manifest = project_dir / "target" / "manifest.json"
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    for sub in ("models", "macros", "macros_crossdb", "seeds", "tests", "analyses"):
        for path in (project_dir / sub).rglob("*"):
            if path.is_file() and path.stat().st_mtime > built:
                return True
    return any((project_dir / f).stat().st_mtime > built for f in ("dbt_project.yml", "profiles.yml"))


def ensure_manifest(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """Return a current manifest, running ``dbt parse`` (a few seconds) only when it is missing or outdated.

    Called when the Dagster definitions import, so a clean clone (no ``dbt_project/target``) loads. A file lock
    keeps parallel importers (pytest-xdist workers, the webserver and the daemon) from parsing at once and reading
    a half-written manifest.

    Why not dagster-dbt's ``DbtProject.prepare_if_dev()``: it parses only under ``dagster dev`` (a clean clone's
    ``placelink`` command, test or run worker would find no manifest), re-parses on every import there (no
    staleness check), takes no lock against parallel importers, and parses with the environment's profile and
    home, where :func:`parse` uses a stand-in home so importing the code location touches no home.
    """
    import fcntl

    manifest = project_dir / "target" / "manifest.json"
    if not manifest_is_stale(project_dir):
        return manifest
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest.parent / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if manifest_is_stale(project_dir):
                parse(project_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return manifest


def engine_inputs(settings: Settings) -> None:
    """The engine's I/O seam before a dbt build. DuckDB: nothing, dbt reads the warehouse file. Spark
    (``PLACELINK_ENGINE=spark``): the pseudonymised zone's tables are written as month-partitioned Parquet under
    the home's spark-warehouse/, which dbt's on-run-start makes the sources (docs/scaling.md)."""
    if settings.engine == "spark":
        from orchestration.lib import dbt_spark
        from orchestration.lib.spark_storage import export_zone

        dbt_spark.executable(settings.home)  # the dbt a Dagster build starts (dbt_executable)
        export_zone(settings, "pseudonymised")


def engine_outputs(settings: Settings) -> None:
    """The engine's I/O seam after a dbt build. DuckDB: nothing, dbt wrote the warehouse file. Spark: the tables
    dbt-spark wrote as Parquet become views in the warehouse file (:func:`spark_storage.expose_built_tables`), so
    publish, the atlas, the ML stages and the summary read them as they read the DuckDB profile's. Also after a
    partly failed build: the tables that were built are the ones the next stage would read."""
    if settings.engine == "spark":
        from orchestration.lib.spark_storage import expose_built_tables

        expose_built_tables(settings)


@contextlib.contextmanager
def dbt_environment(settings: Settings, extra: dict[str, str] | None = None) -> Iterator[None]:
    """Set the variables ``profiles.yml`` reads (and ``extra``) for the duration of a block (e.g. a dagster-dbt
    subprocess), after the engine's inputs are in place (:func:`engine_inputs`); its outputs are exposed after the
    block (:func:`engine_outputs`), also when it fails."""
    engine_inputs(settings)
    try:
        with _environ({**dbt_env(settings), **(extra or {})}):
            yield
    finally:
        engine_outputs(settings)


def docs_generate(settings: Settings, catalog: bool = True) -> Path:
    """``dbt docs generate --static`` against the warehouse; returns the folder holding ``index.html`` and
    ``static_index.html`` (the manifest and catalog inlined: one file any static server, or ``placelink docs``,
    can serve). ``catalog=False``: models, columns and lineage from the manifest only, without querying the
    warehouse for column types and row counts (``--empty-catalog``; the browser test uses it and leaves the
    shared warehouse alone). ``--no-compile`` would need a manifest already in the target folder."""
    run_dbt(build_args("docs generate", extra=["--static", *([] if catalog else ["--empty-catalog"])]),
            settings)
    return target_dir(settings)


def publish(settings: Settings) -> list[Path]:
    """Write every ``published.*`` table to ``<home>/published/<table>.parquet`` and ``.csv``.

    Only the disclosure-controlled tables leave the warehouse; nothing else is exported.
    """
    import duckdb

    s = settings
    if not s.warehouse_db.exists():
        raise PlacelinkError(f"no warehouse at {s.warehouse_db}", where="publish",
                             fix="run `placelink build` first")
    s.published.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    # on Spark too: the published tables are views over dbt-spark's Parquet in the warehouse file (engine_outputs)
    con = duckdb.connect(str(s.warehouse_db), read_only=True)
    try:
        present = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'published'").fetchall()}
        for table in PUBLISHED_TABLES:
            if table not in present:
                raise PlacelinkError(f"published.{table} does not exist", where=str(s.warehouse_db),
                                     fix="run `placelink build` (dbt builds the published schema) first")
            query = f"select * from published.{table} order by month, indicator, geography_level, area_code"
            for ext, opts in (("parquet", "(format parquet)"), ("csv", "(format csv, header)")):
                path = s.published / f"{table}.{ext}"
                con.execute(f"copy ({query}) to '{path}' {opts}")
                written.append(path)
    finally:
        con.close()
    from orchestration.lib.governance.audit import record_events  # exports are audited (docs/governance.md)
    from orchestration.lib.governance.outputs import sha256_file

    record_events(s, [{"action": "export", "target": path.name, "purpose": "publication",
                       "details": {"sha256": sha256_file(path), "via": "dbt_runner.publish()"}} for path in written])
    return written
