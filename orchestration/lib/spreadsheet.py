"""CSV files written for people to open in a spreadsheet: no cell is a live formula.

A spreadsheet (Excel, LibreOffice, Google Sheets) evaluates a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, in some versions, tab or carriage return) as a formula, so a partner value such as
``=HYPERLINK("http://...", "click")`` in a review queue would run when a reviewer opens the file (CSV/formula
injection). Following OWASP's guidance, every *text* cell that starts with one of those characters is written
with a leading single quote, which spreadsheets show as text and do not evaluate. Numbers in numeric columns are
left alone (``-0.5`` is a number, not a formula). Ingest keeps such values verbatim (a leading ``+``/``-`` is
ordinary data); the defence belongs here, where a file meant for people is written.

Every CSV placelink writes for people goes through :func:`people_csv`; CSVs for machines (``published/``
aggregates, decision templates) do not, since a quote would change their values.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: the first characters that make a spreadsheet evaluate a cell (OWASP "CSV Injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def defuse(value: object) -> object:
    """``value`` with a leading ``'`` when it is text a spreadsheet would evaluate; anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def undo(value: object) -> object:
    """The value :func:`defuse` was given (a reviewer may copy a quoted cell back into a file we read)."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_START):
        return value[1:]
    return value


def defuse_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every text cell defused; numeric, boolean and date columns untouched."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_object_dtype(out[col]) or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(defuse, na_action="ignore")
    return out


def people_csv(df: pd.DataFrame, path: Path | None = None, **kwargs) -> str | None:
    """Write ``df`` as CSV for people (to ``path``, or return the text), no text cell a live formula. Lines end
    in CRLF (RFC 4180), which also makes the writer quote a cell holding a lone CR (with ``\n`` endings it did
    not, and a spreadsheet split the row there)."""
    return defuse_frame(df).to_csv(path, **{"index": False, "lineterminator": "\r\n", **kwargs})
