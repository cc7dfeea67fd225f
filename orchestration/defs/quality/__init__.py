"""Data quality domain: GX asset checks on every contract feed that has a suite, and the scorecard asset.

A contract feed without a suite gets no checks here (so the code location still loads) but fails
``tests/quality/test_suites.py::test_feed_suites_match_the_contracts_when_present``.
"""

from orchestration.defs.quality.checks import build_quality_definitions
from orchestration.lib.contracts import load_contracts


def _feeds_with_suites() -> list[str]:
    from expectations.suite import load_suites

    suites = {s.name for s in load_suites("feed")}
    return [f.name for f in load_contracts().feeds() if f.name in suites]


defs = build_quality_definitions(_feeds_with_suites())
