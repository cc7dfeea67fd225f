"""The guard where errors leave placelink's code for Dagster (its event log, compute logs and UI).

Dagster stores a failed step's exception — message, traceback and the chain of causes — in the event log, prints
it to the compute logs and sends it on to the run-failure alert. A :class:`~orchestration.lib.errors.PlacelinkError`
is ours and says what, where and how to fix without quoting a partner's value; any other exception (DuckDB,
pyarrow, GX, Splink ...) can quote the data, so :func:`no_leaks` replaces it with a PlacelinkError that names the
stage and the library's exception type only, raised ``from None`` so the original is not chained on. A
:class:`~orchestration.lib.errors.DataError` becomes a :class:`dagster.Failure` that is never retried.

Put ``@no_leaks("stage")`` directly under ``@dg.asset`` / ``@dg.multi_asset`` / ``@dg.multi_asset_check``.
Dagster's own control flow (``Failure``, ``RetryRequested``, interrupts) passes untouched.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TypeVar

import dagster as dg

from orchestration.defs.ops.policies import as_failure
from orchestration.lib.errors import PlacelinkError, as_placelink_error

T = TypeVar("T")


def safe_failure(exc: BaseException, stage: str) -> BaseException:
    """What to raise instead of ``exc``: a Dagster exception as it is, ours as a Failure, a library's withheld."""
    if isinstance(exc, dg.DagsterError | dg.Failure | dg.RetryRequested):
        return exc
    # a data error cannot be fixed by running again; other failures (a locked file) follow the job's retry policy
    return as_failure(as_placelink_error(exc, stage=stage))


def _raise_safe(exc: BaseException, stage: str):
    safe = safe_failure(exc, stage)
    if safe is exc:
        raise exc
    raise safe from None


def no_leaks(stage: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate an asset/op/check body (plain or generator) so no library message reaches Dagster."""

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen_wrapper(*args, **kwargs):
                try:
                    yield from fn(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - see the module docstring
                    _raise_safe(exc, stage)

            return gen_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - see the module docstring
                _raise_safe(exc, stage)

        return wrapper

    return decorate


__all__ = ["PlacelinkError", "no_leaks", "safe_failure"]
