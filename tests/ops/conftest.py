"""Helpers for the ops tests: drop files into a home's landing folder, build the fixture location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestration.lib.config import get_settings


def write_drop(partner: str, feed: str, day: str, lines: list[str], mtime: float | None = None) -> Path:
    path = get_settings().landing / partner / feed / f"{day}.csv"
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
