"""One rule makes file names and partner text safe to print and store (landing.printable, used by the landing
scan and the readers): any text, lone surrogates and undecodable bytes included, comes out as storable UTF-8
with no control character; a name on one line, capped; raw text keeping its line structure."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.lib import landing
from orchestration.lib.feeds import readers

ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
CONTROL = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]}


@settings(max_examples=150, deadline=None)
@given(st.text(ANY_CHAR, max_size=300))
def test_any_text_is_made_printable_and_storable(text):
    name = landing.printable(text)
    assert name.isprintable() and len(name) <= 203
    name.encode("utf-8")                                   # no lone surrogate left: DuckDB and logs can store it
    raw = landing.printable(text, raw=True)
    raw.encode("utf-8")
    assert not (set(raw) & CONTROL - {"\t", "\n", "\r"})
    assert raw.count("\n") == text.count("\n") and raw.count("\t") == text.count("\t")
    if len(text) <= 40 and not set(text) & {"\t", "\n", "\r"}:
        assert landing.printable(raw) == name          # the two modes escape the same characters the same way


def test_names_and_raw_text_share_one_helper():
    assert readers.printable is landing.printable
    assert landing.printable("a\udc81\x1b\n\ud800") == "a\\x81\\x1b\\x0a\\ud800"
    assert landing.printable("a\udc81\x1b\n\ud800", raw=True) == "a\\x81\\x1b\n\\ud800"
