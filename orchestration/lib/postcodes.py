"""The one rule for writing a UK postcode, in Python and as the SQL generated from it.

``' sh1  2ab'`` -> ``'SH1 2AB'``: keep the ASCII letters and digits, upper-case them, and when what is left has
the UK shape (outward code ``A9``, ``A99``, ``A9A``, ``AA9``, ``AA99`` or ``AA9A``, inward code ``9AA``) put one
space before the inward code. ASCII only, and squashed *before* upper-casing, because Python and DuckDB upper-case
other scripts differently (``'ﬀ'.upper()`` is ``'FF'`` in Python, unchanged in DuckDB): this way both agree on
every input (tests/feeds/test_postcode_rule.py holds them together).

What a value without the UK shape becomes depends on the use, so it is a parameter of the one rule rather than a
second rule: pseudonymised tokens and the postcode-directory join want None (``keep_other=False``); linkage keeps
the squashed text (``keep_other=True``) so two records with the same foreign postcode still compare equal.
"""

from __future__ import annotations

import re

OUTWARD = "[A-Z]{1,2}[0-9][A-Z0-9]?"
INWARD = "[0-9][A-Z]{2}"
_SHAPE = re.compile(f"^({OUTWARD})({INWARD})$")
_NOT_ASCII_ALNUM = "[^A-Za-z0-9]"


def normalise_postcode(value: object, keep_other: bool = False) -> str | None:
    """The postcode in the one written form, or (no UK shape) None / the squashed text with ``keep_other``."""
    if value is None:
        return None
    squashed = re.sub(_NOT_ASCII_ALNUM, "", str(value)).upper()
    m = _SHAPE.match(squashed)
    if m:
        return f"{m.group(1)} {m.group(2)}"
    return squashed if keep_other and squashed else None


def postcode_sql(expr: str, keep_other: bool = False) -> str:
    """DuckDB SQL for :func:`normalise_postcode` of the SQL expression ``expr``."""
    sq = f"upper(regexp_replace(CAST({expr} AS VARCHAR), '{_NOT_ASCII_ALNUM}', '', 'g'))"
    other = f"NULLIF({sq}, '')" if keep_other else "NULL"
    return (f"CASE WHEN regexp_matches({sq}, '^{OUTWARD}{INWARD}$') "
            f"THEN left({sq}, length({sq}) - 3) || ' ' || right({sq}, 3) ELSE {other} END")
