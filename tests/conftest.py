"""Shared fixtures. One small synthetic county is generated per test run and shared by every test.

``make test`` runs the suite in two pytest-xdist workers (``-n 2 --dist loadfile --no-loadscope-reorder``): a file's
tests and module fixtures stay in one worker, files are handed out in collection order, and the slowest files are
collected first so the longest chains of work start at once. The session fixtures below are built ONCE per run even
in two workers (``_built_once``).
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

# A step that meets a transient error (a DuckDB file lock) is retried after 2 s, not the production 30 s: read when
# the code location is imported, so it is set before any test imports it. The policy's count and backoff are the
# production ones (tests/ops/test_policies_and_alerts.py); only the wait is shorter.
os.environ.setdefault("PLACELINK_RETRY_DELAY_SECONDS", "2")
# Likewise a step meeting another process's DuckDB lock gives up after 3 s instead of ~102 s and is retried by the
# policy (defs/resources.py LOCK_WAIT_SECONDS): tests/attack/test_erasure.py holds the lock through a nightly.
os.environ.setdefault("PLACELINK_LOCK_WAIT_SECONDS", "3")

ROOT = Path(__file__).resolve().parents[1]
TEST_OUTPUT = ROOT / "test-output"

#: the files with minutes of full Dagster refreshes in their fixtures, started first (one per worker)
SLOWEST_FIRST = ("tests/ops/test_incremental_refresh.py", "tests/test_end_to_end.py")


def pytest_collection_modifyitems(session, config, items):
    """Slowest first, in a fixed order (every worker must collect the same order)."""
    def rank(item) -> int:
        path = _relative(item)
        if path in SLOWEST_FIRST:
            return SLOWEST_FIRST.index(path)
        return len(SLOWEST_FIRST) + (0 if item.get_closest_marker("slow") else 1)

    items.sort(key=rank)  # stable: the order within each rank is pytest's own


def _relative(item) -> str:
    path = item.path.resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.as_posix()


def _built_once(tmp_path_factory, worker_id: str, name: str, build: Callable[[Path], object]):
    """``build(folder)`` once per test run, shared by every xdist worker; returns what it returned.

    Without xdist (``worker_id == "master"``) this is a plain session fixture. With it, the folder lives in the
    run's shared base temp; a file lock makes the other workers wait and then unpickle the result. pytest-xdist
    documents this pattern; there is no built-in for it.
    """
    if worker_id == "master":
        return build(tmp_path_factory.mktemp(name))
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent / name
    done = root.with_suffix(".pickle")
    with FileLock(str(root.with_suffix(".lock"))):
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)  # what a failed build in another worker left
            root.mkdir(parents=True)
            value = build(root)
            done.write_bytes(pickle.dumps(value))
            return value
    return pickle.loads(done.read_bytes())


@pytest.fixture(scope="session")
def test_output() -> Path:
    """Where tests leave things a person may want to look at (screenshots, reports)."""
    TEST_OUTPUT.mkdir(exist_ok=True)
    return TEST_OUTPUT


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """No test may touch the developer's ./.placelink: default every test to its own empty home."""
    monkeypatch.setenv("PLACELINK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLACELINK_ENV", "local")


@pytest.fixture(scope="session")
def small_county(tmp_path_factory, worker_id) -> Path:
    """The small synthetic county (seed 42, 24 months from 2024-11), generated ONCE per test run.

    Returns the home folder holding ``landing/``, ``reference/`` and ``truth/``. Treat it as read-only:
    copy it (``shutil.copytree``) before a test writes into the home.
    """
    from orchestration.lib.synthetic import generate_county

    def build(home: Path) -> Path:
        generate_county(home, scale="small", seed=42)
        return home

    return _built_once(tmp_path_factory, worker_id, "small_county", build)


@pytest.fixture(scope="session")
def tiny_county(tmp_path_factory, worker_id) -> Path:
    """A tiny county (~3k residents, seed 42, 24 months) for fast tests; read-only like ``small_county``."""
    from orchestration.lib.synthetic import generate_county

    def build(home: Path) -> Path:
        generate_county(home, scale="tiny", seed=42)
        return home

    return _built_once(tmp_path_factory, worker_id, "tiny_county", build)


@pytest.fixture(scope="session")
def refreshed_tiny_county(tiny_county, tmp_path_factory, worker_id):
    """A copy of ``tiny_county`` after ``refresh(full=True)`` of the real code location (what ``make demo`` runs):
    ``(settings, RefreshResult)``. Shared by the end-to-end tests and the nightly-vs-full comparison, since a full
    refresh is the slowest thing the suite does. Tests may read it and run refreshes that change nothing; a test in
    another file (maybe another worker) reads the snapshot ``full_refresh_warehouse`` instead of the live file."""

    from orchestration.lib.config import get_settings
    from orchestration.runner import refresh

    def build(root: Path):
        home = root / "home"
        shutil.copytree(tiny_county, home)
        settings = get_settings(home=home, env="local").ensure()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PLACELINK_HOME", str(home))
            result = refresh(full=True, settings=settings, log_level="WARNING")
        import duckdb

        with duckdb.connect(str(settings.warehouse_db)) as con:
            con.execute("CHECKPOINT")  # everything in the one file before it is copied
        shutil.copyfile(settings.warehouse_db, root / FULL_REFRESH_SNAPSHOT)
        return settings, result

    return _built_once(tmp_path_factory, worker_id, "e2e", build)


FULL_REFRESH_SNAPSHOT = "warehouse-after-full-refresh.duckdb"


@pytest.fixture(scope="session")
def full_refresh_warehouse(refreshed_tiny_county) -> Path:
    """A copy of ``refreshed_tiny_county``'s warehouse taken right after its full refresh: read it from another
    file's tests, since test_end_to_end.py may be running a refresh on the live one in the other xdist worker."""
    settings, _ = refreshed_tiny_county
    return settings.home.parent / FULL_REFRESH_SNAPSHOT


@pytest.fixture(scope="session")
def ingested_county(small_county, tmp_path_factory, worker_id) -> Path:
    """A copy of ``small_county`` with every drop ingested into ``identifiable.duckdb`` (plain functions,
    no Dagster), using the real contracts in ``orchestration/feeds/``. Read-only like ``small_county``.
    """

    from orchestration.lib.config import get_settings
    from orchestration.lib.feeds import ingest

    def build(root: Path) -> Path:
        home = root / "home"
        shutil.copytree(small_county, home)
        report = ingest(get_settings(home=home, env="local"))
        assert report.ok, f"ingest of the small county failed: {report.failures}"
        return home

    return _built_once(tmp_path_factory, worker_id, "ingested_county", build)


@pytest.fixture(scope="session")
def dbt_warehouse(tmp_path_factory, worker_id) -> Path:
    """A home whose ``warehouse.duckdb`` holds the small dbt fixture sources (tests/support/dbt_warehouse.py:
    12 LSOAs, 6 months, every feed) and every dbt model built on them by ``dbt build`` (tests included),
    built ONCE per test run. Read-only: copy the home before writing into it.
    """
    from orchestration.lib import dbt_runner
    from orchestration.lib.config import get_settings
    from tests.support.dbt_warehouse import build_fixture_warehouse

    def build(root: Path) -> Path:
        home = root / "home"
        settings = get_settings(home=home, env="local").ensure()
        build_fixture_warehouse(settings.warehouse_db)
        dbt_runner.build(settings=settings)
        dbt_runner.publish(settings)
        return home

    return _built_once(tmp_path_factory, worker_id, "dbt_warehouse", build)


@pytest.fixture
def project_register(tmp_path) -> Callable[..., Path]:
    """Make a copy of the committed project register with PRJ-2025-HHRISK edited, and return its folder:
    ``project_register(**edits)`` in ``tmp_path/projects``, ``project_register(base, **edits)`` in ``base/projects``
    (``edits``: dotted path under ``project:`` -> value). Used by tests/attack and tests/governance."""
    import copy

    import yaml

    from orchestration.lib.governance.projects import PROJECTS_DIR

    def make(base: Path | None = None, **edits) -> Path:
        folder = (base or tmp_path) / "projects"
        shutil.copytree(PROJECTS_DIR, folder, dirs_exist_ok=True)
        raw = yaml.safe_load((PROJECTS_DIR / "PRJ-2025-HHRISK.yml").read_text())
        for dotted, value in edits.items():
            node = raw["project"]
            *parents, leaf = dotted.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
        (folder / "PRJ-2025-HHRISK.yml").write_text(yaml.safe_dump(copy.deepcopy(raw), sort_keys=False))
        return folder

    return make
