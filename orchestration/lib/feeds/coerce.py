"""Type one value per its contract column; a failure names the column and the expected form, never the value.

Quarantine reasons flow into load summaries, logs and run metadata, outside the identifiable zone; the value
itself stays in ``ops.quarantine.raw_text`` (inside it).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from dataclasses import dataclass

from orchestration.lib.contracts import Column, Feed, parse_span

SQL_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "float": "DOUBLE", "date": "DATE",
             "datetime": "TIMESTAMP", "boolean": "BOOLEAN"}


class CoerceError(ValueError):
    """``reason`` is the quarantine reason, e.g. ``invalid_date: column 'Month' is not a valid date ...``."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _fail(kind: str, col: Column, value: object, expected: str) -> CoerceError:  # noqa: ARG001
    """The reason names the column and the expected form; ``value`` is deliberately not shown (a partner's value
    may be personal data, and reasons leave the identifiable zone)."""
    return CoerceError(f"invalid_{kind}: column {col.name!r} is not {expected}")


#: BIGINT's range: a larger whole number cannot be stored and must be quarantined, not crash the load
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


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
    elif isinstance(value, (dict, list)):  # noqa: UP038 (a tuple is faster than a union, once per cell)
        # JSON lines: {"given_name": {"$ne": 1}} is not a name
        kind = "object" if isinstance(value, dict) else "array"
        raise CoerceError(f"not_a_scalar: column {col.name!r} holds a JSON {kind}, not one {col.type} value")
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
            # (int() refuses 4,300+ digits with its own error; a float would lose digits beyond 2**53)
            if len(text) > 40 or not _INTEGER.fullmatch(text):
                raise _fail("integer", col, value, "a whole number")
            number = int(text) if "." not in text else int(text.split(".", 1)[0])
        if _INT64_MIN <= number <= _INT64_MAX:
            return number
        raise _fail("integer", col, value, "a whole number within the 64-bit range")
    if t == "float":
        try:
            number = float(str(value).replace(",", ""))
        except ValueError:
            raise _fail("float", col, value, "a number") from None
        if not math.isfinite(number):  # "nan", "inf", "1e999": not a measurement
            raise _fail("float", col, value, "a finite number")
        return number
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


# --- plausibility -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DateCheck:
    """One date column's plausible range for one drop: ``lo``..``hi`` inclusive (None = open), the column holding
    the date of birth it may not precede (``birth``), and the quarantine reason for each side."""

    column: str
    lo: dt.date | None
    hi: dt.date | None
    birth: str | None
    too_late: str
    too_early: str
    before_birth: str


def date_checks(feed: Feed, drop_date: dt.date) -> list[DateCheck]:
    """The contract's plausible ranges (:meth:`Feed.plausibility`) made concrete for a drop made on ``drop_date``;
    computed once per file, applied to every row by :func:`check_plausible`.

    Reasons name the column and the limit, never the value: a date of birth is an identifier."""
    birth = feed.person.date_of_birth if feed.person else None
    out = []
    for name, rule in feed.plausibility().items():
        lo, hi = rule.bounds(drop_date)
        if lo is None and hi is None and not rule.not_before_birth:
            continue
        after = "" if rule.after_drop is None or parse_span(rule.after_drop) == (0, 0) else \
            f"more than {rule.after_drop} "
        out.append(DateCheck(
            name, lo, hi, birth if rule.not_before_birth else None,
            too_late=f"implausible_date: column {name!r} is {after}after the drop date",
            too_early=f"implausible_date: column {name!r} is more than {rule.before_drop} before the drop date",
            before_birth=f"implausible_date: column {name!r} is before the date of birth (column {birth!r})"))
    return out


def _day(value: object) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else None


def check_plausible(checks: list[DateCheck], typed: dict[str, object]) -> None:
    """Raise :class:`CoerceError` (``implausible_date: ...``) for the first typed date outside its range."""
    for check in checks:
        day = _day(typed.get(check.column))
        if day is None:
            continue
        if check.hi is not None and day > check.hi:
            raise CoerceError(check.too_late)
        if check.lo is not None and day < check.lo:
            raise CoerceError(check.too_early)
        if check.birth is not None:
            born = _day(typed.get(check.birth))
            if born is not None and day < born:
                raise CoerceError(check.before_birth)
