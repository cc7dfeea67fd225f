"""Helpers for the ops tests: drop files into a home's landing folder, build the fixture location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestration.lib.config import get_settings


def write_drop(partner: str, feed: str, day: str, lines: list[str], mtime: float | None = None) -> Path:
    """A drop named by the landing rule: its feed contract's extension (``.jsonl`` for NHS A&E)."""
    from orchestration.lib.landing import contract_extensions  # cached: contracts are read once

    path = get_settings().landing / partner / feed / f"{day}.{contract_extensions()[(partner, feed)]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["header", *lines]) + "\n")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def settings():
    return get_settings().ensure()


@pytest.fixture
def fixture_defs(settings):
    from tests.ops.fixture_location import build_fixture_defs

    return build_fixture_defs()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on 127.0.0.1 for the whole test session (stopped at the end)."""
    from tests.ops.postgres_server import start_postgres

    server = start_postgres()
    yield server
    server.stop()
