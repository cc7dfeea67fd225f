"""The one-pass needle search the leak scans rely on finds exactly what ``needle in data`` finds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.support.needles import Needles

small = st.binary(min_size=1, max_size=6)


@hsettings(max_examples=200, deadline=None)
@given(st.lists(small, min_size=1, max_size=20), st.binary(max_size=300), st.lists(st.integers(0, 19), max_size=5))
def test_found_is_every_needle_that_is_a_substring(needles, data, planted):
    for i in planted:  # some needles really occur, anywhere, overlapping or not, in any byte values
        data += needles[i % len(needles)] + data[:3]
    expected = [n for n in dict.fromkeys(needles) if n in data]
    assert Needles(needles).found(data) == expected
