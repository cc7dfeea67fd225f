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
import sys
import types
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

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


def one_blas_thread():
    """A context (``threadpoolctl.threadpool_limits``) in which numpy/scipy use one BLAS thread: the rule of every
    worker here, for the same work done in this process. OpenBLAS's threads spin while they wait, so on small
    matrices a multi-threaded BLAS only fights the process's other threads and the other processes on the machine
    (disclosure control of the tiny test county: 80 s with OpenBLAS's default threads, 44 s with one, the machine
    loaded)."""
    import numpy  # noqa: F401 - the BLAS must be loaded before it can be limited
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _init(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    _LIMITS.append(one_blas_thread())
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def _parent_main_hidden():
    """While workers start, ``__main__`` is a bare module, so a spawned worker does not run the parent's main
    script again before its first task.

    A spawned child re-imports the parent's ``__main__`` (by path, or by name under ``-m``) so that functions
    defined there can be unpickled. Inside dbt's Python model that script is ``dbt``'s own entry point: each
    disclosure worker imported dbt's whole CLI first, ~1.3 s of CPU per worker per build (seen with py-spy in a
    county nightly). The tasks here are functions of this package's modules, which unpickle by their own module
    name, so the workers never need the parent's ``__main__``. The swap lasts only while ``submit`` starts a
    worker; other threads of these processes (DuckDB's, dbt's) do not read ``__main__``.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is None:
            del sys.modules["__main__"]
        else:
            sys.modules["__main__"] = main


class _SpawnPool(ProcessPoolExecutor):
    """A spawn-context pool whose workers start (lazily, inside ``submit``) without the parent's ``__main__``."""

    def submit(self, fn, /, *args, **kwargs):
        if getattr(fn, "__module__", None) == "__main__":
            raise TypeError(f"{fn!r} is defined in __main__: worker tasks must live in an importable module")
        with _parent_main_hidden():
            return super().submit(fn, *args, **kwargs)


def spawn_pool(workers: int, initializer: Callable[..., None] | None = None,
               initargs: tuple = ()) -> ProcessPoolExecutor:
    """A process pool of spawned workers with one BLAS thread each (use as a context manager). Tasks and the
    initializer must be functions of importable modules (see :func:`_parent_main_hidden`)."""
    return _SpawnPool(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                      initializer=_init, initargs=(initializer, initargs))
