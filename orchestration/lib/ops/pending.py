"""Which loaded months the stages downstream of a feed have not caught up with yet.

A nightly refresh loads months of the feeds (raw partitions), then rebuilds what depends on them (matching,
pseudonymised sources, dbt, checks, scoring, publishing). If that rebuild fails or is skipped (one feed's bad
drop failed the night, a dbt model failed, the machine went down), the months already loaded are not *new* any
more, yet no mart holds them. They stay pending here until every downstream stage that depends on the feed has
completed after the load, so the next nightly picks them up; nothing has to remember them but the run history.

The caller reads both sides from the Dagster instance (:mod:`orchestration.defs.ops.planning`): when each
partition was loaded, and when each downstream asset last completed. This module stays free of Dagster and is
tested on plain numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Unfinished:
    #: partitions loaded after the feed's downstream last completed, sorted
    partitions: list[str] = field(default_factory=list)
    #: one of them had also been loaded before that completion (a corrected drop): the downstream holds an older
    #: version of it, so its rows may have changed or gone
    reloaded: bool = False
    #: the newest partition the downstream has caught up with ("" if none)
    newest_caught_up: str = ""


def unfinished_partitions(loads: Mapping[str, Sequence[float]], completed: Iterable[float | None]) -> Unfinished:
    """The partitions of one feed whose downstream has not completed since they were loaded.

    Args:
        loads: partition key -> the times (POSIX seconds) it was loaded successfully, any order.
        completed: for each downstream asset that depends on the feed, the time it last completed (its last
            run succeeded, or it was last materialised), None if never. The downstream has caught up with a load
            only when *every* one of them completed after it: a run whose matching succeeded and whose dbt
            build failed leaves the month pending. No downstream assets: nothing is pending.
    """
    times = list(completed)
    if not times:
        return Unfinished()
    # a downstream asset never completed has caught up with nothing
    done = min(float("-inf") if t is None else t for t in times)
    pending = sorted(pk for pk, ts in loads.items() if ts and max(ts) > done)
    seen = {pk for pk, ts in loads.items() if any(t <= done for t in ts)}
    return Unfinished(pending, reloaded=any(pk in seen for pk in pending), newest_caught_up=max(seen, default=""))
