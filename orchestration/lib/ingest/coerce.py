"""Type one value per its contract column; a failure names the column, the value and the expected form."""

from __future__ import annotations

import datetime as dt
import functools
import re

from orchestration.lib.contracts import Column

SQL_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "float": "DOUBLE", "date": "DATE",
             "datetime": "TIMESTAMP", "boolean": "BOOLEAN"}


class CoerceError(ValueError):
    """``reason`` is the quarantine reason, e.g. ``invalid_date: column 'Month' value '2025-13' ...``."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _fail(kind: str, col: Column, value: object, expected: str) -> CoerceError:
    shown = str(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return CoerceError(f"invalid_{kind}: column {col.name!r} value {shown!r} is not {expected}")


_INTEGER = re.compile(r"[+-]?\d+(\.0+)?")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# Ingest types every cell in Python (each failure needs its own quarantine reason); dates repeat heavily
# (birth dates, event days), so parsing each distinct (text, format) once halves a drop's load time.
@functools.lru_cache(maxsize=1 << 16)
def _strptime_cached(text: str, fmt: str) -> dt.datetime:
    return dt.datetime.strptime(text, fmt)


#: ISO formats whose exact shape (ASCII digits, two-digit fields) ``fromisoformat`` reads to the same value as
#: ``strptime``, several times faster. Time stamps rarely repeat, so the cache above does not help them: a county
#: month's 57 k A&E arrival times took 0.40 s through strptime, 0.07 s this way (small, but every night and
#: twelve times a full refresh). Anything else, errors included, takes ``strptime``.
_ISO_SHAPES = {
    "%Y-%m-%dT%H:%M:%S": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"),
    "%Y-%m-%d %H:%M:%S": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"),
    "%Y-%m-%d": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
}


def _strptime(text: str, fmt: str) -> dt.datetime:
    shape = _ISO_SHAPES.get(fmt)
    if shape is not None and shape.fullmatch(text):
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError:
            pass  # an impossible date (2025-02-30): strptime raises its own error
    return _strptime_cached(text, fmt)


def coerce(col: Column, value: object) -> object:
    """Return the typed value (None for empty); raise :class:`CoerceError` when it cannot be typed."""
    if value is None:
        if col.required:
            raise CoerceError(f"missing_required: column {col.name!r} is empty")
        return None
    if isinstance(value, str):
        value = value.strip()
        if value == "":
            if col.required:
                raise CoerceError(f"missing_required: column {col.name!r} is empty")
            return None
    t = col.type
    if t == "string":
        return str(value)
    if t == "integer":
        if isinstance(value, bool):
            raise _fail("integer", col, value, "a whole number")
        if isinstance(value, int):
            number = value
        else:
            text = str(value).replace(",", "")
            if not _INTEGER.fullmatch(text):
                raise _fail("integer", col, value, "a whole number")
            number = int(float(text)) if "." in text else int(text)
        if not _INT64_MIN <= number <= _INT64_MAX:
            # a BIGINT column cannot hold it: the library would fail the whole drop (pyarrow's OverflowError),
            # so the row is quarantined like any other value that is not what the contract says
            raise _fail("integer", col, value, "a whole number that fits in 64 bits")
        return number
    if t == "float":
        try:
            return float(str(value).replace(",", ""))
        except ValueError:
            raise _fail("float", col, value, "a number") from None
    if t == "date":
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        text = str(value)
        try:
            if col.format:
                return _strptime(text, col.format).date()
            return dt.date.fromisoformat(text[:10]) if len(text) >= 10 else dt.date.fromisoformat(text)
        except ValueError:
            raise _fail("date", col, value, f"a valid date in the form {col.format or '%Y-%m-%d'}") from None
    if t == "datetime":
        if isinstance(value, dt.datetime):
            return value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(dt.UTC).replace(tzinfo=None)
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day)
        text = str(value)
        try:
            parsed = _strptime(text, col.format) if col.format else dt.datetime.fromisoformat(text)
        except ValueError:
            raise _fail("datetime", col, value, f"a valid date-time in the form {col.format or 'ISO 8601'}") from None
        # stored as naive UTC so every feed compares on one clock
        return parsed if parsed.tzinfo is None else parsed.astimezone(dt.UTC).replace(tzinfo=None)
    if t == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {v.lower() for v in col.true_values}:
            return True
        if text in {v.lower() for v in col.false_values}:
            return False
        raise _fail("boolean", col, value, f"one of {col.true_values + col.false_values}")
    raise AssertionError(t)
