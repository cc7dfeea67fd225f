"""The dbt sources are the contracts' feeds (issue #24: one place for each fact).

``dbt_project/models/staging/<partner>/_<partner>__sources.yml`` lists the ``src.<partner>__<feed>`` tables dbt
reads; which feeds exist is the contracts' fact (``orchestration/feeds/<partner>.yml``). dbt needs the list written
out (a source must be declared in YAML before a model can ``source()`` it), so it stays a copy; this test fails when
the copy and the contracts disagree, naming the feed and what to add or remove. No dbt, no warehouse: YAML only.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestration.lib.contracts import load_contracts

DBT = Path(__file__).resolve().parents[2] / "dbt_project"
STAGING = DBT / "models" / "staging"


def dbt_src_tables(staging: Path = STAGING) -> dict[tuple[str, str], str]:
    """(source name, table name) -> the ``src`` table it reads, for every dbt source in the ``src`` schema."""
    out = {}
    for path in sorted(staging.glob("*/_*__sources.yml")):
        for source in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("sources") or []:
            if source.get("schema") != "src":
                continue
            for table in source.get("tables") or []:
                out[(source["name"], table["name"])] = table.get("identifier") or table["name"]
    return out


def disagreements(sources: dict[tuple[str, str], str], feeds: list[tuple[str, str]],
                  staging: Path = STAGING) -> list[str]:
    problems = []
    expected = {(partner, feed): f"{partner}__{feed}" for partner, feed in feeds}
    for key, identifier in sorted(sources.items()):
        if key not in expected:
            problems.append(f"dbt source {key[0]}.{key[1]} (src.{identifier}) is no contract's feed: remove it from "
                            f"dbt_project/models/staging/{key[0]}/_{key[0]}__sources.yml or add the feed's contract")
        elif identifier != expected[key]:
            problems.append(f"dbt source {key[0]}.{key[1]} reads src.{identifier}, the pseudonymise stage writes "
                            f"src.{expected[key]}: set identifier: {expected[key]}")
    for (partner, feed), table in sorted(expected.items()):
        if (partner, feed) not in sources:
            problems.append(f"feed {partner}/{feed} has no dbt source: add '- name: {feed}' with 'identifier: "
                            f"{table}' to dbt_project/models/staging/{partner}/_{partner}__sources.yml")
        if not (staging / partner / f"stg_{table}.sql").exists():
            problems.append(f"feed {partner}/{feed} has no staging model "
                            f"dbt_project/models/staging/{partner}/stg_{table}.sql")
    return problems


def _feeds() -> list[tuple[str, str]]:
    return [(f.partner, f.id) for c in load_contracts() for f in c.feeds]


def test_dbt_sources_are_the_contracts_feeds():
    assert disagreements(dbt_src_tables(), _feeds()) == []


def seed_partners(seeds_yml: Path = DBT / "seeds" / "_seeds.yml") -> list[str]:
    """The partners the seed ``indicators`` accepts (its partner column's accepted_values test)."""
    seeds = yaml.safe_load(seeds_yml.read_text(encoding="utf-8"))["seeds"]
    column = next(c for s in seeds if s["name"] == "indicators" for c in s["columns"] if c["name"] == "partner")
    test = next(t for t in column["data_tests"] if isinstance(t, dict) and "accepted_values" in t)
    return list(test["accepted_values"]["arguments"]["values"])


def test_the_indicator_seed_accepts_the_contracts_partners():
    """The seed's accepted partners are a copy of the contracts' partner ids: the same set, or a new partner's
    indicators fail the build (or a removed one's pass unnoticed)."""
    assert sorted(seed_partners()) == sorted({c.partner.id for c in load_contracts()}), (
        "dbt_project/seeds/_seeds.yml: the indicators seed's partner accepted_values must list exactly the partners "
        "of orchestration/feeds/*.yml")


def test_a_drifted_source_list_is_caught():
    """The check above can fail: a feed missing, one too many, one reading the wrong table."""
    sources, feeds = dbt_src_tables(), _feeds()
    dropped = {k: v for k, v in sources.items() if k != ("police", "street_crimes")}
    assert any(p.startswith("feed police/street_crimes has no dbt source") for p in disagreements(dropped, feeds))
    extra = {**sources, ("police", "stop_and_search"): "police__stop_and_search"}
    assert any(p.startswith("dbt source police.stop_and_search") for p in disagreements(extra, feeds))
    renamed = {**sources, ("police", "street_crimes"): "police__crimes"}
    assert any("set identifier: police__street_crimes" in p for p in disagreements(renamed, feeds))
    assert any("no staging model" in p for p in disagreements(sources, [*feeds, ("police", "stop_and_search")]))
