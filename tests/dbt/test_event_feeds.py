"""The seed ``indicators`` and the events model agree (issue #24: one place for each fact).

``int_events_joined_to_places`` is generated from ``macros/event_feeds.sql`` (which feed gives which events,
indicators and agency); the seed names the same indicators with their partner, feed and agency. These tests fail
when one is edited without the other: first on the two files alone (no dbt, no warehouse), then on the built model.
"""

from __future__ import annotations

import ast
import csv
import re
from pathlib import Path

import duckdb

from orchestration.lib.config import get_settings

DBT = Path(__file__).resolve().parents[2] / "dbt_project"
MACRO = DBT / "macros" / "event_feeds.sql"
MODEL = DBT / "models" / "intermediate" / "int_events_joined_to_places.sql"
COUNTS = DBT / "models" / "intermediate" / "int_lsoa_month_indicator_counts.sql"


def event_feeds(text: str | None = None) -> list[dict]:
    """The macro's `feeds` list, read as Python (it is written with strings, lists and dicts only, for this)."""
    text = text if text is not None else MACRO.read_text(encoding="utf-8")
    block = re.search(r"\{%-?\s*set feeds = (\[.*?\])\s*-?%\}", text, flags=re.S)
    assert block, f"{MACRO}: no `set feeds = [...]` block"
    return ast.literal_eval(block.group(1))


def _csv(name: str) -> list[dict[str, str]]:
    with open(DBT / "seeds" / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def produced_indicators(feeds: list[dict]) -> dict[str, tuple[str, str, str]]:
    """Every indicator the model can write, with the (partner, feed, agency) of its rows."""
    crime_groups = {row["crime_group"] for row in _csv("crime_type_groups.csv")}
    out: dict[str, tuple[str, str, str]] = {}
    for f in feeds:
        rule = f["indicator"]
        if isinstance(rule, str):
            names = [rule]
        elif "values" in rule:
            names = list(rule["values"].values())
        else:  # prefix || coalesce(column, otherwise): the column's values are the joined seed's
            assert f.get("join", {}).get("seed") == "crime_type_groups", f"{f['cte']}: unknown value source"
            names = [rule["prefix"] + g for g in sorted(crime_groups | {rule["otherwise"]})]
        for name in names:
            assert name not in out, f"indicator {name} is written by two feeds"
            out[name] = (f["partner"], f["feed"], f["agency"])
    return out


def disagreements(feeds: list[dict], seed: list[dict[str, str]]) -> list[str]:
    produced = produced_indicators(feeds)
    catalogue = {r["indicator"]: (r["partner"], r["feed"], r["agency"]) for r in seed}
    feed_facts = {(f["partner"], f["feed"], f["agency"]) for f in feeds}
    parents = {r["parent"] for r in seed if r["parent"]}
    summed = set(re.findall(r"'(\w+)' as indicator", COUNTS.read_text(encoding="utf-8")))
    problems = []
    for name, facts in produced.items():
        if name not in catalogue:
            problems.append(f"{name}: written by the model, missing from the seed")
        elif catalogue[name] != facts:
            problems.append(f"{name}: seed says {catalogue[name]}, event_feeds says {facts}")
    for name, facts in catalogue.items():
        if facts not in feed_facts:
            problems.append(f"{name}: seed's (partner, feed, agency) {facts} is no feed of event_feeds")
        if name not in produced and name not in parents and name not in summed:
            problems.append(f"{name}: in the seed but nothing counts it")
    return problems


def test_seed_and_event_feeds_agree():
    assert disagreements(event_feeds(), _csv("indicators.csv")) == []


def test_a_drifted_copy_is_caught():
    """The check above can fail: change one fact in either copy and it names the indicator."""
    seed = _csv("indicators.csv")
    moved = [dict(r, agency="health") if r["indicator"] == "social_care_referrals" else r for r in seed]
    assert any(p.startswith("social_care_referrals:") for p in disagreements(event_feeds(), moved))
    feeds = [dict(f, indicator="asb_reports") if f["cte"] == "asb" else f for f in event_feeds()]
    problems = disagreements(feeds, seed)
    assert "asb_reports: written by the model, missing from the seed" in problems
    assert "asb_complaints: in the seed but nothing counts it" in problems


def test_the_model_writes_no_feed_constants_itself():
    """The model holds no copy: every feed's CTE comes from the macro (no literal indicator or agency in it)."""
    sql = MODEL.read_text(encoding="utf-8")
    assert "event_feed_ctes()" in sql
    assert not re.search(r"'\w+' as (indicator|agency|partner|feed)\b", sql)


def test_built_model_rows_match_the_seed(dbt_warehouse):
    """On the built fixture warehouse: every (indicator, partner, feed, agency) in the events is the seed's."""
    with duckdb.connect(str(get_settings(home=dbt_warehouse).warehouse_db), read_only=True) as con:
        rows = con.execute("""
            select distinct e.indicator, e.partner, e.feed, e.agency
            from intermediate.int_events_joined_to_places as e
            except
            select indicator, partner, feed, agency from seeds.indicators
        """).fetchall()
        feeds_built = {r[0] for r in con.execute(
            "select distinct partner || '__' || feed from intermediate.int_events_joined_to_places").fetchall()}
    assert rows == []
    assert feeds_built == {f"{f['partner']}__{f['feed']}" for f in event_feeds()}
