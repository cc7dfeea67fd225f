"""Small, locked access to governance's own DuckDB files (audit log, erasure list, approvals).

DuckDB allows one writer process per file and even a read-only open fails while another process writes,
so every open of these small files happens under a cross-process file lock (``filelock``) and lasts only
for one append or one read. That keeps audit appends from concurrent Dagster runs and CLI calls serialised.
Each file, its ``.wal`` and its lock are owner-only (``filemodes``) whatever the umask of the caller.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
from filelock import FileLock, Timeout

from orchestration.lib import filemodes
from orchestration.lib.errors import PlacelinkError

LOCK_TIMEOUT_S = 120


@contextlib.contextmanager
def locked_connect(path: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """Open ``path`` under its lock; yields ``None`` for a read of a file that does not exist yet."""
    if not path.parent.exists():
        filemodes.private_dir(path.parent)
    lock = FileLock(str(path) + ".lock", mode=filemodes.PRIVATE_FILE)
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_S)
    except Timeout as exc:  # pragma: no cover - needs a hung process to reproduce
        raise PlacelinkError(
            f"could not lock {path.name} within {LOCK_TIMEOUT_S}s",
            where=str(path),
            fix="another placelink process holds it; wait for it to finish or remove a stale .lock file",
        ) from exc
    try:
        if read_only and not path.exists():
            yield None
            return
        con = duckdb.connect(str(path), read_only=read_only)
        try:
            if not read_only:
                filemodes.make_private(path)
            yield con
        finally:
            con.close()
            if not read_only:
                filemodes.harden([path, Path(f"{path}.wal")])
    finally:
        lock.release()
