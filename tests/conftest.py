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
