"""Shared fixtures. One small synthetic county is generated per test run and shared by every test."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_OUTPUT = ROOT / "test-output"


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
def small_county(tmp_path_factory) -> Path:
    """The small synthetic county (seed 42, 24 months from 2024-11), generated ONCE per test run.

    Returns the home folder holding ``landing/``, ``reference/`` and ``truth/``. Treat it as read-only:
    copy it (``shutil.copytree``) before a test writes into the home.
    """
    from orchestration.lib.synthetic import generate_county

    home = tmp_path_factory.mktemp("small_county")
    generate_county(home, scale="small", seed=42)
    return home


@pytest.fixture(scope="session")
def tiny_county(tmp_path_factory) -> Path:
    """A tiny county (~3k residents, seed 42, 24 months) for fast tests; read-only like ``small_county``."""
    from orchestration.lib.synthetic import generate_county

    home = tmp_path_factory.mktemp("tiny_county")
    generate_county(home, scale="tiny", seed=42)
    return home


@pytest.fixture(scope="session")
def refreshed_tiny_county(tiny_county, tmp_path_factory):
    """A copy of ``tiny_county`` after ``refresh(full=True)`` of the real code location (what ``make demo`` runs):
    ``(settings, RefreshResult)``. Shared by the end-to-end tests and the nightly-vs-full comparison, since a full
    refresh is the slowest thing the suite does. Tests may read it and run refreshes that change nothing."""
    import shutil

    from orchestration.lib.config import get_settings
    from orchestration.runner import refresh

    home = tmp_path_factory.mktemp("e2e") / "home"
    shutil.copytree(tiny_county, home)
    settings = get_settings(home=home, env="local").ensure()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PLACELINK_HOME", str(home))
        result = refresh(full=True, settings=settings, log_level="WARNING")
    return settings, result


@pytest.fixture(scope="session")
def ingested_county(small_county, tmp_path_factory) -> Path:
    """A copy of ``small_county`` with every drop ingested into ``identifiable.duckdb`` (plain functions,
    no Dagster), using the real contracts in ``orchestration/feeds/``. Read-only like ``small_county``.
    """
    import shutil

    from orchestration.lib.config import get_settings
    from orchestration.lib.ingest import ingest

    home = tmp_path_factory.mktemp("ingested_county") / "home"
    shutil.copytree(small_county, home)
    report = ingest(get_settings(home=home, env="local"))
    assert report.ok, f"ingest of the small county failed: {report.failures}"
    return home


@pytest.fixture(scope="session")
def dbt_warehouse(tmp_path_factory) -> Path:
    """A home whose ``warehouse.duckdb`` holds the small dbt fixture sources (tests/dbt/warehouse_fixture.py:
    12 LSOAs, 6 months, every feed) and every dbt model built on them by ``dbt build`` (tests included),
    built ONCE per test run. Read-only: copy the home before writing into it.
    """
    from orchestration.lib import dbt_runner
    from orchestration.lib.config import get_settings
    from orchestration.lib.warehouse_fixture import build_fixture_warehouse

    home = tmp_path_factory.mktemp("dbt_warehouse") / "home"
    settings = get_settings(home=home, env="local").ensure()
    build_fixture_warehouse(settings.warehouse_db)
    dbt_runner.build(settings=settings)
    dbt_runner.publish(settings)
    return home
