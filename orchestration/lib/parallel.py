"""Worker processes for the CPU-bound Python stages (typing partner rows at ingest, disclosure control).

Both run inside other programs' processes (a Dagster step, dbt's Python model) that hold threads of their own
(DuckDB's, dbt's, Dagster's), so workers are *spawned*, never forked: forking a threaded process can deadlock.
Each worker gets one BLAS thread: the work is many small numpy/scipy calls, and two workers each running a
multi-threaded BLAS on two cores spun against each other (measured on disclosure control: 3x slower than one
process).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

_LIMITS: list[object] = []  # threadpoolctl limits kept alive for the worker's lifetime


def worker_count(env_var: str, tasks: int, default_max: int = 4) -> int:
    """Workers for ``tasks`` independent tasks: env ``env_var`` if set, else the CPU count up to ``default_max``;
    never more than the tasks."""
    raw = os.environ.get(env_var)
    try:
        wanted = int(raw) if raw else min(os.cpu_count() or 1, default_max)
    except ValueError:
        from orchestration.lib.errors import PlacelinkError

        raise PlacelinkError(f"{env_var}={raw!r} is not a whole number", where=f"environment variable {env_var}",
                             fix=f"set {env_var} to the number of worker processes (1 = none), or unset it") from None
    return max(1, min(wanted, tasks))


def _init(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    import numpy  # noqa: F401 - the BLAS must be loaded before it can be limited
    from threadpoolctl import threadpool_limits

    _LIMITS.append(threadpool_limits(limits=1))
    if initializer is not None:
        initializer(*initargs)


def spawn_pool(workers: int, initializer: Callable[..., None] | None = None,
               initargs: tuple = ()) -> ProcessPoolExecutor:
    """A process pool of spawned workers with one BLAS thread each (use as a context manager)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init, initargs=(initializer, initargs))
