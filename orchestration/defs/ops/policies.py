"""Retry, failure and freshness policies every domain can use.

Transient failures (a locked file, a network blip) are retried per step with exponential backoff; data
errors (a bad drop, a schema change, an expired agreement: :class:`~orchestration.lib.errors.DataError`) fail
at once, because retrying cannot fix the data. Dagster's ``RetryPolicy`` retries whatever a step raises, so the
distinction is made where the step raises: :func:`data_errors_fail_fast` turns a ``DataError`` into
``dg.Failure(allow_retries=False)``, which the policy does not retry; any other error (DuckDB's "Could not set
lock on file", an ``OSError``, a :class:`~orchestration.lib.errors.PlacelinkError` that is not about the data)
is retried. Freshness: a feed that has not been loaded by its due day shows as late (``FAIL``) in the Dagster UI.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import dagster as dg

from orchestration.lib.errors import DataError, PlacelinkError

T = TypeVar("T")

#: Day of the month by which partners deliver the previous month's drop (contracts may override it
#: with ``partitioning: {cadence: monthly, due_day: N}``).
DEFAULT_DUE_DAY = 5
TIMEZONE = "Europe/London"


def transient_retry_policy(delay: float = 30, max_retries: int = 3) -> dg.RetryPolicy:
    """Retry a failed step up to ``max_retries`` times, waiting ``delay`` s, then 2x, 4x (with jitter)."""
    return dg.RetryPolicy(
        max_retries=max_retries, delay=delay, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )


#: Seconds before the first retry (env ``PLACELINK_RETRY_DELAY_SECONDS``, read when the code location loads).
RETRY_DELAY_SECONDS = float(os.environ.get("PLACELINK_RETRY_DELAY_SECONDS", "30"))

#: What every ops job uses: 30 s, 60 s, 120 s (+/- jitter) before giving up.
TRANSIENT_RETRY_POLICY = transient_retry_policy(delay=RETRY_DELAY_SECONDS)


def as_failure(exc: PlacelinkError) -> dg.Failure:
    """A placelink error as a Dagster failure, keeping where/fix visible in the UI. Never retried when the data
    is wrong (:class:`DataError`); retried by the job's policy otherwise (it may be transient)."""
    metadata = {"error": type(exc).__name__}
    if exc.where:
        metadata["where"] = exc.where
    if exc.fix:
        metadata["fix"] = exc.fix
    return dg.Failure(description=str(exc), metadata=metadata, allow_retries=not isinstance(exc, DataError))


@contextmanager
def data_errors_fail_fast() -> Iterator[None]:
    """``with data_errors_fail_fast(): ...`` inside an asset: DataError -> non-retryable Failure; another
    PlacelinkError -> a Failure the retry policy retries; anything else passes as it is (and is retried)."""
    try:
        yield
    except PlacelinkError as exc:
        raise as_failure(exc) from exc


def fail_fast_on_data_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator form of :func:`data_errors_fail_fast` for asset/op bodies (put it under ``@dg.asset``)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with data_errors_fail_fast():
            return fn(*args, **kwargs)

    return wrapper


def feed_freshness_policy(due_day: int = DEFAULT_DUE_DAY, timezone: str = TIMEZONE) -> dg.FreshnessPolicy:
    """Freshness for a monthly feed: loaded within the 28 days before 09:00 on ``due_day`` each month.

    A partner that has not delivered (so the nightly refresh loaded nothing new) turns ``FAIL`` ("late")
    in the UI at 09:00 on the due day, and back to ``PASS`` once its drop is loaded. 28 days is the
    longest look-back Dagster allows for a monthly deadline (the shortest month).
    """
    if not 1 <= due_day <= 28:
        raise PlacelinkError(
            f"due_day {due_day} is not a day every month has",
            where="feed contract partitioning.due_day",
            fix="use a day between 1 and 28",
        )
    return dg.FreshnessPolicy.cron(
        deadline_cron=f"0 9 {due_day} * *", lower_bound_delta=dt.timedelta(days=28), timezone=timezone
    )


def with_feed_freshness(spec: dg.AssetSpec, due_day: int | None = None) -> dg.AssetSpec:
    """For ``Definitions.map_asset_specs``: give a feed asset the monthly policy unless it has one."""
    return dg.apply_freshness_policy(
        spec, feed_freshness_policy(due_day or DEFAULT_DUE_DAY), overwrite_existing=False
    )


def apply_feed_freshness(defs: dg.Definitions, due_days: dict[str, int] | None = None) -> dg.Definitions:
    """Give every feed asset (``raw/<partner>__<feed>``) the monthly freshness policy it lacks.

    One call where the feed assets are assembled (or over the merged code location) is enough:
    ``defs = apply_feed_freshness(defs, {"raw/nhs__ae_attendances": 10})``. Explicit policies win.
    """
    due_days = due_days or {}

    def _apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key.path[0] != "raw" or spec.partitions_def is None:
            return spec
        return with_feed_freshness(spec, due_days.get(spec.key.to_user_string()))

    # filtering in the function (not with selection=) keeps this from resolving the whole graph
    return defs.map_asset_specs(func=_apply)
