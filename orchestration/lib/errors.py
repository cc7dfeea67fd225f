"""Errors that carry what went wrong, where, and how to fix it.

The CLI prints these as one line plus the fix and exits non-zero; Dagster shows the same text.
"""

from __future__ import annotations


class PlacelinkError(Exception):
    """Base for user-facing errors. ``fix`` says what to do about it."""

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None):
        self.message = message
        self.where = where
        self.fix = fix
        text = f"{where}: {message}" if where else message
        if fix:
            text = f"{text} (fix: {fix})"
        super().__init__(text)


class DataError(PlacelinkError):
    """A partner's data is wrong: retrying cannot help."""
