"""Typing one value: the fast ISO path for date-times gives exactly what strptime gives, errors included."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestration.lib.contracts import Column
from orchestration.lib.feeds.coerce import CoerceError, coerce

TEXTS = ["2025-03-02T10:00:00", "2024-02-29T23:59:59", "2025-02-29T10:00:00", "2025-13-01T00:00:00",
         "2025-3-2T10:00:00", "2025-03-02T24:00:00", "2025-03-02 10:00:00", "٢٠٢٥-03-02T10:00:00",
         "2025-03-02T10:00:00Z", "2025-03-02T10:00:00.5", "not a date", "2025-03-02", " 2025-03-02T10:00:00 "]


def _strptime_says(text: str, fmt: str, kind: str):
    try:
        parsed = dt.datetime.strptime(text.strip(), fmt)
    except ValueError:
        return "error"
    return parsed if kind == "datetime" else parsed.date()


@pytest.mark.parametrize(("fmt", "kind"), [("%Y-%m-%dT%H:%M:%S", "datetime"), ("%Y-%m-%d %H:%M:%S", "datetime"),
                                           ("%Y-%m-%d", "date"), ("%Y-%m-%d", "datetime")])
def test_iso_formats_type_like_strptime(fmt, kind):
    col = Column(name="When", type=kind, format=fmt)
    for text in TEXTS:
        try:
            got = coerce(col, text)
        except CoerceError as exc:
            got = "error"
            # the reason names the column and the form, never the value (reasons leave the identifiable zone)
            assert exc.reason.startswith(f"invalid_{kind}: column 'When' is not a valid ")
            assert text.strip() not in exc.reason
        assert got == _strptime_says(text, fmt, kind), (fmt, text)
