"""Read one partner drop into rows that remember their physical line and raw text.

Why our own CSV loop rather than ``pandas.read_csv``/DuckDB's ``read_csv``: quarantine needs, for every
malformed row, the 1-based physical line number and the raw text exactly as the partner sent it, and a
row with undecodable bytes must be isolated instead of failing (or silently mangling) the whole file.
Python's ``csv`` module parses (quoting, embedded newlines, any delimiter); we only track lines.
Encodings: the contract's encoding, ``utf-8`` also accepts a BOM, ``auto`` asks ``charset-normalizer``.
Excel is read with ``python-calamine``; JSON lines with the standard library.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.lib.contracts import Format
from orchestration.lib.errors import DataError

csv.field_size_limit(10_000_000)


@dataclass
class RawRow:
    line: int                       # 1-based physical line (CSV/JSONL) or sheet row (Excel); header = 1
    raw_text: str                   # as received (undecodable bytes shown as \\xNN)
    values: dict[str, object] | None = None   # column -> value; None when the row is malformed
    problem: str | None = None      # quarantine reason when malformed
    fields: list[str] | None = None  # the parsed fields (CSV), so quarantine can redact by column


@dataclass
class Drop:
    path: Path
    header: list[str]
    rows: list[RawRow] = field(default_factory=list)
    encoding: str | None = None
    empty: bool = False


def _escape_surrogates(text: str) -> str:
    """Show bytes that did not decode (kept as surrogates) as ``\\xNN`` so raw text is storable."""
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)


_SURROGATE = re.compile("[\udc80-\udcff]")


def _has_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def _decode(data: bytes, encoding: str) -> tuple[str, str]:
    if encoding == "auto":
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        encoding = best.encoding if best else "utf-8"
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    # surrogateescape keeps undecodable bytes in place, so one bad row is quarantined, not the file
    return data.decode(codec, errors="surrogateescape"), encoding


def read_csv(path: Path, fmt: Format) -> Drop:
    data = path.read_bytes()
    text, encoding = _decode(data, fmt.encoding)
    if not text.strip():
        return Drop(path, [], [], encoding, empty=True)
    lines = list(io.StringIO(text, newline=""))  # splits on \n, \r\n, \r; keeps the endings
    reader = csv.reader(iter(lines), delimiter=fmt.delimiter, quotechar=fmt.quotechar)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DataError(f"cannot parse the header line: {exc}", where=f"{path}:1",
                        fix="check the delimiter/encoding in the feed contract") from None
    header = [h.strip() for h in header]
    drop = Drop(path, header, [], encoding)
    start = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raw = "".join(lines[start - 1:reader.line_num])
            drop.rows.append(RawRow(start, _escape_surrogates(raw.rstrip("\r\n")), None, f"unparseable: {exc}"))
            start = reader.line_num + 1
            continue
        end = reader.line_num
        raw = "".join(lines[start - 1:end]).rstrip("\r\n")
        line = start
        start = end + 1
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line: not a record
        if _has_surrogates(raw):
            drop.rows.append(RawRow(line, _escape_surrogates(raw), None,
                                    f"bad_encoding: bytes that are not valid {encoding}",
                                    [_escape_surrogates(f) for f in fields]))
        elif len(fields) != len(header):
            drop.rows.append(RawRow(line, raw, None,
                                    f"wrong_column_count: {len(fields)} fields, header has {len(header)}", fields))
        else:
            drop.rows.append(RawRow(line, raw, dict(zip(header, fields, strict=True)), None, fields))
    return drop


def _cell(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value if (value.hour, value.minute, value.second) != (0, 0, 0) else value.date()
    if value == "":
        return None
    return value


def read_excel(path: Path, fmt: Format) -> Drop:
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types per format
        raise DataError(f"cannot open the workbook: {exc}", where=str(path),
                        fix="check the file is a real .xlsx/.xls") from None
    if fmt.sheet not in book.sheet_names:
        raise DataError(f"sheet {fmt.sheet!r} not found (sheets: {book.sheet_names})", where=str(path),
                        fix="ask the partner for the agreed sheet name or fix format.sheet in the contract")
    rows = book.get_sheet_by_name(fmt.sheet).to_python(skip_empty_area=False)
    rows = [r for r in rows]
    if not rows or not any(str(c).strip() for c in rows[0]):
        return Drop(path, [], [], None, empty=True)
    header = [str(h).strip() for h in rows[0]]
    while header and not header[-1]:
        header.pop()
    drop = Drop(path, header, [], None)
    for i, row in enumerate(rows[1:], start=2):
        cells = [_cell(c) for c in row]
        if not any(c not in (None, "") for c in cells):
            continue
        raw = "\t".join("" if c is None else str(c) for c in cells).rstrip("\t")
        extra = [c for c in cells[len(header):] if c not in (None, "")]
        if extra:
            drop.rows.append(RawRow(i, raw, None,
                                    f"wrong_column_count: values beyond the {len(header)} header columns"))
            continue
        cells = (cells + [None] * len(header))[:len(header)]
        drop.rows.append(RawRow(i, raw, dict(zip(header, cells, strict=True))))
    return drop


def read_jsonl(path: Path, fmt: Format, expected: list[str]) -> Drop:
    text, encoding = _decode(path.read_bytes(), fmt.encoding)
    if not text.strip():
        return Drop(path, [], [], encoding, empty=True)
    keys: dict[str, None] = {}
    parsed: list[RawRow] = []
    for i, line in enumerate(io.StringIO(text, newline=""), start=1):
        raw = line.rstrip("\r\n")
        if not raw.strip():
            continue
        if _has_surrogates(raw):
            parsed.append(RawRow(i, _escape_surrogates(raw), None, f"bad_encoding: bytes that are not valid {encoding}"))
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            parsed.append(RawRow(i, raw, None, f"invalid_json: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(obj, dict):
            parsed.append(RawRow(i, raw, None, "invalid_json: the line is not a JSON object"))
            continue
        keys.update(dict.fromkeys(obj))
        parsed.append(RawRow(i, raw, {k: (None if v == "" else v) for k, v in obj.items()}))
    # a JSON file has no header line: its "header" is every key seen, in contract order first
    header = [c for c in expected if c in keys] + [k for k in keys if k not in expected]
    for row in parsed:
        if row.values is not None:
            row.values = {k: row.values.get(k) for k in header}
    return Drop(path, header, parsed, encoding)


def read_drop(path: Path, fmt: Format, expected_columns: list[str]) -> Drop:
    """Read a landing file per its contract format."""
    if fmt.type == "csv":
        return read_csv(path, fmt)
    if fmt.type == "excel":
        return read_excel(path, fmt)
    return read_jsonl(path, fmt, expected_columns)
