"""Errors that carry what went wrong, where, and how to fix it — and never a partner's value.

The CLI prints these as one line plus the fix and exits non-zero; Dagster shows the same text; failed ingests
record it in the audit trail. So the text of a :class:`PlacelinkError` leaves the identifiable zone, and it is
built only from what is ours: file paths, row/line numbers, column names *from the contract*, counts and
positions — never a cell or a header cell of a partner's file (docs/governance.md, "No identifier outside the
identifiable zone").

A library's exception (DuckDB, pyarrow, GX, Splink, calamine ...) is not ours: its text may quote the data
("Could not convert string 'Smith' to INT64"). :func:`public_message` is what may be shown of any exception, and
:func:`withhold_library_errors` turns a library exception into a :class:`PlacelinkError` that names the stage and
the table but not the library's text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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
    """The data (a drop, a contract, an agreement) is wrong: running again cannot fix it, so it is never retried.

    A plain :class:`PlacelinkError` may be transient (a locked file, a library failing); a ``DataError`` is not.
    """


class LibraryError(PlacelinkError):
    """A library raised during a stage; its message is withheld (see :func:`withhold_library_errors`)."""

    def __init__(self, stage: str, exc: BaseException, *, where: str | None = None, data: bool = False):
        self.stage = stage
        self.library_error = f"{type(exc).__module__}.{type(exc).__qualname__}"
        self.data = data
        super().__init__(
            f"{stage} failed: {self.library_error} (its message is withheld: library messages can quote the data)",
            where=where,
            fix="rerun; if it fails again, rerun it in a shell inside the identifiable zone to see the library's "
                "message" if not data else "find the offending rows in the identifiable zone (ops.quarantine, "
                "the landing file) and ask the partner to correct them")


class LibraryDataError(LibraryError, DataError):
    """A library rejected a value (a conversion, a constraint): a data error, never retried."""

    def __init__(self, stage: str, exc: BaseException, *, where: str | None = None):
        super().__init__(stage, exc, where=where, data=True)


#: Exceptions whose text is a path or an OS condition, never a cell (a locked or missing file): shown as they are,
#: because the operator needs the path to act on them.
_SAFE_LIBRARY_TYPES: tuple[type[BaseException], ...] = (FileNotFoundError, PermissionError, IsADirectoryError,
                                                        TimeoutError)


def _is_data_rejection(exc: BaseException) -> bool:
    """DuckDB's conversion / constraint / invalid-input errors are about a value, not about the machine."""
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a core dependency
        return False
    return isinstance(exc, duckdb.ConversionException | duckdb.ConstraintException | duckdb.InvalidInputException
                      | duckdb.OutOfRangeException)


def public_message(exc: BaseException, *, stage: str = "the step") -> str:
    """What may be shown of ``exc`` outside the identifiable zone (CLI, logs, audit, Dagster).

    Ours (:class:`PlacelinkError`, :class:`~orchestration.lib.config.ConfigError`) verbatim; an OS error about a
    file as it is; anything else by its type only.
    """
    from orchestration.lib.config import ConfigError

    if isinstance(exc, (PlacelinkError, ConfigError, *_SAFE_LIBRARY_TYPES)):
        return str(exc)
    return str(LibraryError(stage, exc))


def as_placelink_error(exc: BaseException, *, stage: str, where: str | None = None) -> PlacelinkError:
    """``exc`` itself when it is ours, else a :class:`LibraryError` (a :class:`LibraryDataError` when a library
    rejected a value) that withholds the library's text."""
    from orchestration.lib.config import ConfigError

    if isinstance(exc, PlacelinkError):
        return exc
    if isinstance(exc, (ConfigError, *_SAFE_LIBRARY_TYPES)):
        return PlacelinkError(str(exc), where=where)
    if _is_data_rejection(exc):
        return LibraryDataError(stage, exc, where=where)
    return LibraryError(stage, exc, where=where)


@contextmanager
def withhold_library_errors(stage: str, *, where: str | None = None) -> Iterator[None]:
    """``with withhold_library_errors("ingest police__street_crimes 2025-03", where="raw.police__street_crimes"):``

    Lets a :class:`PlacelinkError` through; re-raises any other exception as :func:`as_placelink_error` does,
    ``from None`` so the library's text is not chained on (Dagster and tracebacks print the chain).
    ``KeyboardInterrupt`` / ``SystemExit`` pass untouched.
    """
    try:
        yield
    except PlacelinkError:
        raise
    except Exception as exc:  # noqa: BLE001 - the point is to catch what the libraries raise
        raise as_placelink_error(exc, stage=stage, where=where) from None
