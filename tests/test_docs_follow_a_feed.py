"""docs/follow-a-feed.md stays true: each file of the walk exists, is named once, and a search for the feed's
name finds it exactly when the page says so (its column "by name").

The name search is benchmarks/feed_places.py's (every spelling of the feed id, any case), so the page and the
count of places agree on what "found by name" means. Reads files only: well under a second.
"""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.feed_places import name_pattern

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "follow-a-feed.md"
FEED = "street_crimes"
#: the stages the walk must pass through, in order, from contract to published cell
STEPS = ("contract", "landing", "ingest", "GX check", "matching", "pseudonymise", "dbt staging", "joined events",
         "indicators", "marts", "publication", "published cell")
ROW = re.compile(r"^\|\s*(\d+) ([^|]+?)\s*\|\s*`([^`]+)`\s*\|\s*(yes|no)\s*\|", re.M)


def walk(text: str) -> list[tuple[str, str, bool]]:
    """(step, path, found by name?) for every row of the page's walk."""
    return [(m.group(2), m.group(3), m.group(4) == "yes") for m in ROW.finditer(text)]


def _names_the_feed(path: Path) -> bool:
    pattern = name_pattern(FEED)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return any(pattern.search(p.read_text(encoding="utf-8", errors="replace")) for p in files)


def problems(rows: list[tuple[str, str, bool]], root: Path = ROOT) -> list[str]:
    out = []
    seen: set[str] = set()
    for step, path, by_name in rows:
        if path in seen:
            out.append(f"{path}: named twice (each file once, at the step where it is opened)")
        seen.add(path)
        if not (root / path).exists():
            out.append(f"{path} (step {step}): does not exist; renamed? update docs/follow-a-feed.md")
        elif _names_the_feed(root / path) != by_name:
            out.append(f"{path} (step {step}): the page says a search for {FEED!r} "
                       f"{'finds' if by_name else 'does not find'} it, and it "
                       f"{'no longer names the feed' if by_name else 'now names the feed'}: update the row")
    return out


def test_the_walk_is_true():
    rows = walk(DOC.read_text(encoding="utf-8"))
    assert [s for s in dict.fromkeys(step for step, _, _ in rows)] == list(STEPS)
    assert problems(rows) == []


def test_a_wrong_row_is_caught():
    """The check above can fail: a path that does not exist, a generic file said to name the feed, a file
    named twice."""
    rows = walk(DOC.read_text(encoding="utf-8"))
    renamed = [(s, p.replace("stg_police__street_crimes.sql", "stg_police__crimes.sql"), b) for s, p, b in rows]
    assert any(p.startswith("dbt_project/models/staging/police/stg_police__crimes.sql (step dbt staging): does not exist")
               for p in problems(renamed))
    flipped = [(s, p, True if p == "orchestration/lib/landing.py" else b) for s, p, b in rows]
    assert any(p.startswith("orchestration/lib/landing.py") and "no longer names the feed" in p
               for p in problems(flipped))
    assert any("named twice" in p for p in problems([*rows, rows[0]]))
