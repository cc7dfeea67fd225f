"""Count the places a newcomer opens to follow one feed by its name, at any git revision (issue #24).

    uv run --frozen --no-sync python benchmarks/feed_places.py [--feed police/street_crimes] [REV ...]
        [--out benchmarks/results/<date>-feed-places]

Issue #24's "done when" asks that a newcomer can follow one feed (``police/street_crimes``) from its contract to a
published cell *by its name alone* in fewer places than before. What this counts, so two revisions compare:

- **a place** is a file, tracked by git at REV, that a search for the feed's name finds: the feed id in any
  spelling (``street_crimes``, ``street-crimes``, ``streetcrimes``, ``Street crimes``), case-insensitive, which
  covers ``police__street_crimes``, ``police/street_crimes`` and ``police.street_crimes``;
- **in scope**: product code, configuration, SQL, contracts, expectations and docs; **not** ``tests/``,
  ``benchmarks/`` (results included), ``.ci/``, pictures and lock files;
- each place gets a **kind** by its path (contract, landing rule, ingest, GX suite, dbt staging, ... see KINDS);
  kinds on the way from contract to published cell are *on the path*, the rest (synthetic generator, ML,
  governance registers, shared helpers) are places the same search also turns up;
- a place is **example only** when every mention sits in a comment or docstring (a name used to illustrate
  something generic, e.g. ``raw/police__street_crimes`` in a docstring); otherwise it **holds** something of the
  feed's own;
- a place listed in DERIVED is a copy of a fact held elsewhere: ``derived`` (generated from its source) or
  ``checked`` (hand-written, a test fails when it disagrees with its source); the note names both.

The figures: files found, on-path files, on-path files that hold something (not example only), and distinct kinds
on the path. A broader search (files naming both "police" and "crime" but not the feed) is listed beside, not
counted: it finds generic code a newcomer would otherwise wade through.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import re
import subprocess
import sys
import tokenize
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXCLUDE = ("tests/", "benchmarks/", ".ci/", "docs/images/")
EXCLUDE_SUFFIX = (".lock", ".png", ".svg", ".ambr", ".parquet")

#: (kind, on the path from contract to published cell?, path rule); the first rule that matches names the kind.
#: Old and new layouts both (lib/ingest + lib/warehouse_sources.py became lib/feeds; lib/linkage lib/matching).
KINDS: list[tuple[str, bool, str]] = [
    ("contract", True, r"^orchestration/feeds/"),
    ("landing rule", True, r"^orchestration/lib/(landing\.py|ops/drops\.py)$"),
    ("pseudonymise (src.*)", True, r"^orchestration/lib/(feeds/)?(warehouse_sources|pseudonymise)\.py$"),
    ("ingest/quarantine", True, r"^orchestration/lib/(ingest|feeds)/"),
    ("matching", True, r"^orchestration/lib/(linkage|matching)/"),
    ("GX suite", True, r"^expectations/|^orchestration/lib/quality\.py$"),
    ("dbt staging", True, r"^dbt_project/models/staging/"),
    # the events macro writes int_events_joined_to_places (it held the feeds' CTEs before #24): the same step
    ("intermediate (joined events)", True, r"^dbt_project/models/intermediate/|^dbt_project/macros/event_feeds\.sql$"),
    ("dbt macro", True, r"^dbt_project/macros"),
    ("seed (indicator catalogue)", True, r"^dbt_project/seeds/"),
    ("marts", True, r"^dbt_project/models/marts/"),
    ("exposures", True, r"^dbt_project/models/exposures\.yml$"),
    ("publish/suppression", True, r"^dbt_project/models/published/|^orchestration/lib/(disclosure|atlas)\.py$"),
    ("Dagster defs", True, r"^orchestration/(defs/|definitions\.py$)"),
    ("docs", True, r"^docs/|^README\.md$"),
    ("synthetic generator", False, r"^orchestration/lib/synthetic/"),
    ("ML", False, r"^ml/"),
    ("governance registers", False, r"^orchestration/(projects/|lib/governance/)"),
    ("test support in product code", False, r"^orchestration/lib/(warehouse_fixture\.py|linkage/testdata\.py)$"),
    ("shared helpers / CLI", False, r"^orchestration/"),
    ("other", False, r""),
]

#: Files that are copies of a fact held elsewhere: path -> (how, what is copied from where, the check that keeps it
#: true: a file and a string it must contain at that revision for the copy to count as kept; None: nothing checks it).
#: A path in APPLIES is a copy only at the revisions where its text holds that string (the copy was removed later).
DERIVED: dict[str, tuple[str, str, str | None, str | None]] = {
    "docs/data-dictionary.md": (
        "derived", "rendered from orchestration/feeds/*.yml by orchestration/lib/synthetic/dictionary.py",
        "tests/synthetic/test_contracts_cli.py", "render_data_dictionary"),
    "dbt_project/macros/event_feeds.sql": (
        "checked", "its feed list names the partner/feed/agency of every indicator in seeds/indicators.csv",
        "tests/dbt/test_event_feeds.py", "def test_seed_and_event_feeds_agree"),
    "expectations/suites/police__street_crimes.yml": (
        "checked", "header (asset, table, record id, event date, columns) taken from the contract; a header key "
                   "the suite still writes must equal the contract's (its description still paraphrases the "
                   "contract's, unchecked)", "expectations/suite.py", "_with_contract_header"),
    "dbt_project/models/staging/police/_police__sources.yml": (
        "checked", "the dbt source tables are the contracts' feeds (src.<partner>__<feed>); the table description "
                   "paraphrases the contract's, unchecked", "tests/dbt/test_sources_match_contracts.py",
        "def test_dbt_sources_are_the_contracts_feeds"),
    "dbt_project/models/intermediate/int_events_joined_to_places.sql": (
        "checked", "one hand-written CTE per feed repeats the partner/feed/agency/indicator constants the seed "
                "indicators.csv holds", "tests/dbt/test_event_feeds.py", "def test_seed_and_event_feeds_agree"),
    "dbt_project/models/intermediate/int_lsoa_month_indicator_counts.sql": (
        "copy", "crimes_total = the street_crimes feed's events repeats the seed's hierarchy (crimes_* -> "
                "crimes_total)", None, None),
    "orchestration/lib/synthetic/dictionary.py": (
        "checked", "the generator's per-feed defect table is keyed by <partner>/<feed>; the rendered page is compared "
                   "with the committed one", "tests/synthetic/test_contracts_cli.py", "render_data_dictionary"),
    "orchestration/lib/synthetic/feeds.py": (
        "checked", "each feed's FeedSpec (record id, date format) repeats the contract; the generated files are read "
                   "with the contract", "tests/synthetic/test_contracts_cli.py", "test_every_feed_file_matches_its_contract"),
    "ml/features.py": (
        "copy", "EVENT_TYPE_FEEDS maps crimes_* to police.street_crimes, which seeds/indicators.csv also says",
        None, None),
    "docs/architecture.md": (
        "copy", "its 'Partners and feeds' table repeats each contract's format and columns (docs/data-dictionary.md "
                "is the derived page)", None, None),
}


APPLIES = {"docs/architecture.md": "| partner | feed | format | record id | people? | place |",
           "dbt_project/models/intermediate/int_lsoa_month_indicator_counts.sql": "crimes_total",
           "ml/features.py": "EVENT_TYPE_FEEDS"}


@dataclass
class Place:
    path: str
    kind: str
    on_path: bool
    mentions: int
    example_only: bool
    copy: str  # "" | "derived: ..." | "checked: ..." | "copy (unchecked at this revision): ..."


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def name_pattern(feed: str) -> re.Pattern:
    """``street_crimes`` -> street[ _-]?crimes (any case): every spelling of the feed id."""
    parts = re.split(r"[_\-\s]+", feed)
    return re.compile(r"[ _-]?".join(map(re.escape, parts)), re.IGNORECASE)


def kind_of(path: str) -> tuple[str, bool]:
    return next((k, on) for k, on, rule in KINDS if re.search(rule, path))


def _python_comment_lines(text: str) -> set[int]:
    """Lines that are comments or docstrings (module, class, function) in Python source."""
    lines: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                lines.add(tok.start[0])
        tree = ast.parse(text)
    except (SyntaxError, tokenize.TokenError):
        return lines
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
        # an attribute's docstring (a string statement anywhere) reads as a comment too
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def _strip_comments(path: str, text: str) -> str:
    """The text with comments blanked (same line numbers), for SQL/Jinja, YAML and CSV."""
    if path.endswith(".sql"):
        text = re.sub(r"\{#.*?#\}", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
        return re.sub(r"--[^\n]*", "", text)
    if path.endswith((".yml", ".yaml", ".toml", ".cfg")):
        return re.sub(r"(^|\s)#[^\n]*", r"\1", text)
    return text


def mentions(path: str, text: str, pattern: re.Pattern) -> tuple[int, bool]:
    """(number of lines naming the feed, True when every one is a comment or docstring)."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    if path.endswith(".md"):
        return len(hits), False
    if path.endswith(".py"):
        quiet = _python_comment_lines(text)
        return len(hits), all(i in quiet for i in hits)
    stripped = _strip_comments(path, text).splitlines()
    return len(hits), not any(pattern.search(stripped[i - 1]) for i in hits)


def in_scope(path: str) -> bool:
    return not path.startswith(EXCLUDE) and not path.endswith(EXCLUDE_SUFFIX)


def copy_note(rev: str, path: str, text: str) -> str:
    if path not in DERIVED or (path in APPLIES and APPLIES[path] not in text):
        return ""
    how, source, check, needle = DERIVED[path]
    try:
        kept = bool(check and needle) and needle in git("show", f"{rev}:{check}")
    except subprocess.CalledProcessError:
        kept = False
    return f"{how}: {source} ({check})" if kept else f"copy (unchecked at this revision): {source}"


def places(rev: str, feed: str) -> list[Place]:
    pattern = name_pattern(feed)
    try:
        found = git("grep", "-l", "-I", "-i", "-E", pattern.pattern, rev, "--").splitlines()
    except subprocess.CalledProcessError:  # git grep exits 1 when nothing matches
        found = []
    out = []
    for line in found:
        path = line.split(":", 1)[1]
        if not in_scope(path):
            continue
        text = git("show", f"{rev}:{path}")
        count, example_only = mentions(path, text, pattern)
        kind, on_path = kind_of(path)
        out.append(Place(path, kind, on_path, count, example_only, copy_note(rev, path, text)))
    return sorted(out, key=lambda p: ([k for k, _, _ in KINDS].index(p.kind), p.path))


def broad(rev: str, feed_places: list[Place], partner: str, word: str = "crime") -> list[str]:
    """Files naming the partner and 'crime' but not the feed: what a looser search adds."""
    named = {p.path for p in feed_places}
    try:
        a = set(git("grep", "-l", "-I", "-i", "-w", partner, rev, "--").splitlines())
        b = set(git("grep", "-l", "-I", "-i", word, rev, "--").splitlines())
    except subprocess.CalledProcessError:
        return []
    paths = {x.split(":", 1)[1] for x in a & b}
    return sorted(p for p in paths if in_scope(p) and p not in named)


def summary(rev: str, feed: str) -> dict:
    partner, feed_id = feed.split("/")
    found = places(rev, feed_id)
    on_path = [p for p in found if p.on_path]
    holding = [p for p in on_path if not p.example_only]
    return {
        "rev": rev, "commit": git("rev-parse", "--short", rev).strip(),
        "subject": git("log", "-1", "--format=%ad %s", "--date=short", rev).strip()[:120],
        "feed": feed, "pattern": name_pattern(feed_id).pattern,
        "files": len(found), "on_path_files": len(on_path), "on_path_holding": len(holding),
        "on_path_kinds": sorted({p.kind for p in on_path}, key=[k for k, _, _ in KINDS].index),
        "copies_kept": sum(p.copy.startswith(("derived", "checked")) for p in found),
        "copies_unchecked": sum(p.copy.startswith("copy") for p in found),
        "places": [asdict(p) for p in found],
        "broad_partner_and_crime_not_named": broad(rev, found, partner),
    }


def markdown(results: list[dict], command: str) -> str:
    lines = [f"# Following `{results[0]['feed']}` by its name: places at each revision (issue #24)", "",
             f"`{command}` (benchmarks/feed_places.py says what counts). Pattern `{results[0]['pattern']}`, "
             "case-insensitive, over every tracked file except tests/, benchmarks/, .ci/, pictures and lock files.", "",
             "| revision | files naming the feed | on the path | on the path, holding something | kinds on the path "
             "| copies derived or checked | copies nothing checks |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| `{r['commit']}` {r['subject'][:60]} | {r['files']} | {r['on_path_files']} | "
                     f"{r['on_path_holding']} | {len(r['on_path_kinds'])} | {r['copies_kept']} | {r['copies_unchecked']} |")
    for r in results:
        lines += ["", f"## `{r['commit']}` ({r['rev']}): {r['files']} files, kinds on the path: "
                  + ", ".join(r["on_path_kinds"]), "", "| file | kind | on path | lines | example only | copy of |",
                  "|---|---|---|---|---|---|"]
        for p in r["places"]:
            lines.append(f"| `{p['path']}` | {p['kind']} | {'yes' if p['on_path'] else 'no'} | {p['mentions']} | "
                         f"{'yes' if p['example_only'] else ''} | {p['copy']} |")
        lines += ["", f"Broader search (names `police` and `crime`, not the feed): "
                  f"{len(r['broad_partner_and_crime_not_named'])} more files: "
                  + ", ".join(f"`{x}`" for x in r["broad_partner_and_crime_not_named"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("revs", nargs="*", default=["HEAD"], help="git revisions to compare (default HEAD)")
    ap.add_argument("--feed", default="police/street_crimes", help="<partner>/<feed>")
    ap.add_argument("--out", help="write PREFIX.json and PREFIX.md (e.g. benchmarks/results/<date>-feed-places)")
    args = ap.parse_args(argv)
    results = [summary(rev, args.feed) for rev in args.revs]
    command = "python benchmarks/feed_places.py " + " ".join(args.revs)
    report = markdown(results, command)
    if args.out:
        Path(f"{args.out}.json").write_text(json.dumps({"measured_on": str(date.today()), "command": command,
                                                        "results": results}, indent=2) + "\n")
        Path(f"{args.out}.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
