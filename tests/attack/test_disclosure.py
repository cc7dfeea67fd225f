"""Attacks on the published file: can a reader get a suppressed count back by arithmetic on published cells?

The published file is the one ``placelink publish`` wrote for the synthetic dbt fixture county (session fixture
``dbt_warehouse``: every model built, then published). The attacker reads only that CSV and the seed that says
which indicators add up to which (a public fact: crimes_total is "All street-level crimes").
"""

from __future__ import annotations

import pandas as pd

from orchestration.lib.config import get_settings
from orchestration.lib.disclosure import indicator_parents, load_indicator_seed


def _published(home) -> pd.DataFrame:
    return pd.read_csv(get_settings(home=home).published / "place_monthly_indicators.csv")


def _one_step_differences(published: pd.DataFrame, parents: dict[str, str]) -> pd.DataFrame:
    """Every cell given away by total minus the published parts: per month and area, a parent (crimes_total)
    whose parts (the crime types) are all published but one, or a hidden parent whose parts are all published."""
    found = []
    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    for parent, parts in children.items():
        rows = published[published["indicator"].isin([parent, *parts])]
        for (month, level, area), cell in rows.groupby(["month", "geography_level", "area_code"]):
            by = cell.set_index("indicator")
            hidden = [i for i in [parent, *parts] if by.loc[i, "is_suppressed"]]
            if len(hidden) != 1:
                continue
            shown_parts = by.loc[[p for p in parts if p not in hidden], "event_count"].sum()
            value = by.loc[parent, "event_count"] - shown_parts if hidden[0] != parent else shown_parts
            found.append((month, level, area, hidden[0], value))
    return pd.DataFrame(found, columns=["month", "geography_level", "area_code", "indicator", "recovered"])


def test_crimes_total_minus_the_published_crime_types_recovers_nothing(dbt_warehouse):
    published = _published(dbt_warehouse)
    parents = indicator_parents(load_indicator_seed())
    assert set(parents.values()) == {"crimes_total"} and len(parents) >= 10  # the seed states the hierarchy
    crimes = published[published["indicator"].str.startswith("crimes_")]
    assert crimes["is_suppressed"].any(), "nothing suppressed: the attack would prove nothing"
    recovered = _one_step_differences(published, parents)
    assert recovered.empty, f"{len(recovered)} suppressed cell(s) recovered by differencing:\n{recovered.head(10)}"
