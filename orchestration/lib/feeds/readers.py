"""Read one partner drop into rows that remember their physical lines and raw text.

Why our own CSV loop rather than ``pandas.read_csv``/DuckDB's ``read_csv``: quarantine needs, for every
malformed row, the 1-based physical line number and the raw text exactly as the partner sent it, and a
row with undecodable bytes must be isolated instead of failing (or silently mangling) the whole file.
Python's ``csv`` module parses (quoting, embedded newlines, any delimiter); we only track lines.
Excel is read with ``python-calamine``; JSON lines with the standard library.

**Every physical line is accounted for.** A physical line is what ``\\n``, ``\\r\\n`` or ``\\r`` ends; a data
line is any physical line after the header that is not blank (whitespace only). Each data line belongs to
exactly one row, loaded or quarantined (``Drop.data_lines`` counts them independently of the parser, and
:func:`~orchestration.lib.feeds.load.parse_file` asserts the identity). The rule for quotes: a record whose quoted
field runs over several physical lines is legitimate only if the quote closes as CSV requires (``csv`` in strict
mode: a closing quote is followed by the delimiter or the end of the line) and the record has the header's field
count. Otherwise the quote "ran away" (a stray ``"`` would swallow every following line into one field): the
record's FIRST line is quarantined on its own (``unbalanced_quote``) and parsing starts again on the next line,
so the stray quote costs its own line and nothing else.

**Encodings** (:func:`decode`): the bytes are looked at before any parsing. A known binary signature (ZIP/xlsx,
PDF, OLE2 .xls ...), a byte-order mark or the NUL-byte pattern of UTF-16/UTF-32 names what the file is; so does
valid UTF-8 with non-ASCII characters arriving in a single-byte (e.g. windows-1252) feed, which would otherwise
load as mojibake (``Ã©``). A file whose bytes are not in the contract's encoding is refused as a whole (a
:class:`~orchestration.lib.errors.PlacelinkError` that names the detected encoding and the contract's, never
the content); ``encoding: auto`` instead decodes what was detected (``charset-normalizer`` when nothing was).
Stray undecodable bytes inside an otherwise right file quarantine only their row (``bad_encoding``).

**Odd values**: control characters (C0 except TAB/CR/LF, DEL, C1, NUL) -> ``control_character``; a field over
:data:`MAX_FIELD_CHARS` -> ``field_too_large`` (raw text kept truncated). Reasons name columns and lines,
never values: they reach logs and metadata, while raw text stays in ``ops.quarantine`` (identifiable zone).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.lib.contracts import Format
from orchestration.lib.errors import DataError, PlacelinkError
from orchestration.lib.landing import open_drop, printable

# the parser's own ceiling (a field beyond it is a csv.Error, handled below); what we accept is MAX_FIELD_CHARS
csv.field_size_limit(10_000_000)

#: a field longer than this is quarantined (``field_too_large``): no partner column holds 64 KiB of text, and a
#: runaway or hostile cell must not reach the tables (a 5 MB "name" would be matched, hashed and exported)
MAX_FIELD_CHARS = 65_536
#: raw text kept in ``ops.quarantine`` for a row with a huge field: enough to find and fix the line
MAX_RAW_CHARS = 4_096


@dataclass
class RawRow:
    line: int                       # 1-based physical line (CSV/JSONL) or sheet row (Excel); header = 1
    raw_text: str                   # as received (undecodable bytes and control characters shown as \\xNN)
    values: dict[str, object] | None = None   # column -> value; None when the row is malformed
    problem: str | None = None      # quarantine reason when malformed
    fields: list[str] | None = None  # the parsed fields (CSV), so quarantine can redact by column
    lines: int = 1                  # data lines (non-blank physical lines) this row covers: >1 for a quoted newline


@dataclass
class Drop:
    path: Path
    header: list[str]
    rows: list[RawRow] = field(default_factory=list)
    encoding: str | None = None
    empty: bool = False
    #: non-blank physical lines after the header, counted from the text alone (not by the parser): every one
    #: must be covered by exactly one row, loaded or quarantined
    data_lines: int = 0


# --- bytes -> text -------------------------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    with open_drop(path) as fh:  # never through a link (the landing rule: see orchestration/lib/landing.py)
        return fh.read()


#: leading bytes of files that are not text, whatever their name says (checked before any decoding)
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx, .docx or .zip file)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Office document (.xls/.doc)"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"PAR1", "a Parquet file"),
    (b"\x7fELF", "an executable program"),
)
#: byte-order marks, longest first (the UTF-32 LE mark begins with the UTF-16 LE one)
_BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32 LE (with a byte-order mark)"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32 BE (with a byte-order mark)"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8 (with a byte-order mark)"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16 LE (with a byte-order mark)"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16 BE (with a byte-order mark)"),
)
_SAMPLE = 65_536
#: bytes that occur in text; what ``bytes.translate`` leaves after deleting them are control bytes
_TEXT_BYTES = bytes(range(0x20, 0x100)) + b"\t\n\r\f\v"


@dataclass(frozen=True)
class Sniffed:
    """What a file's bytes say it is, before decoding: ``codec`` None means not text at all."""

    what: str
    codec: str | None = None
    bom: int = 0


def _share(data: bytes, start: int, step: int) -> float:
    part = data[start::step]
    return part.count(0) / len(part) if part else 0.0


def sniff(data: bytes) -> Sniffed | None:
    """Name the file's kind or encoding from its bytes alone, or None when they show nothing special.

    Cheap and certain, so it runs before any parsing (``charset-normalizer`` guesses an encoding for anything,
    binary included): a binary signature, a byte-order mark, the NUL pattern of UTF-16/32 without a mark (ASCII
    text in UTF-16 LE has a NUL in every odd byte), or many control bytes (binary data without a known
    signature). A few NULs or control characters inside a text file are not sniffed: their rows are quarantined.
    """
    for magic, what in _SIGNATURES:
        if data.startswith(magic):
            return Sniffed(what)
    for bom, codec, what in _BOMS:
        if data.startswith(bom):
            return Sniffed(what, codec, len(bom))
    sample = data[:_SAMPLE]
    if b"\x00" in sample and len(sample) >= 4:
        if min(_share(sample, k, 4) for k in (1, 2, 3)) > 0.9 and _share(sample, 0, 4) < 0.1:
            return Sniffed("UTF-32 LE (no byte-order mark)", "utf-32-le")
        if min(_share(sample, k, 4) for k in (0, 1, 2)) > 0.9 and _share(sample, 3, 4) < 0.1:
            return Sniffed("UTF-32 BE (no byte-order mark)", "utf-32-be")
        if _share(sample, 1, 2) > 0.7 and _share(sample, 0, 2) < 0.1:
            return Sniffed("UTF-16 LE (no byte-order mark)", "utf-16-le")
        if _share(sample, 0, 2) > 0.7 and _share(sample, 1, 2) < 0.1:
            return Sniffed("UTF-16 BE (no byte-order mark)", "utf-16-be")
    controls = len(sample.translate(None, _TEXT_BYTES))
    if controls and (controls > 0.3 * len(sample) or (len(sample) >= 512 and controls > 0.05 * len(sample))):
        return Sniffed("binary data (it is mostly control bytes such as NUL)")
    return None


def _family(codec: str) -> str:
    name = codecs.lookup(codec).name
    return "utf-8" if name == "utf-8-sig" else name.rsplit("-", 1)[0] if name.startswith("utf-") and \
        name.endswith(("-le", "-be")) else name


_SURROGATE = re.compile("[\udc80-\udcff]")
_NON_ASCII = re.compile("[^\x00-\x7f]")


def _looks_utf8(data: bytes) -> bool:
    """True when the non-ASCII bytes are mostly valid UTF-8 sequences: text in windows-1252/latin-1 has accented
    letters as single bytes that are almost never followed by the continuation bytes UTF-8 needs."""
    if data.isascii():
        return False
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="surrogateescape")
    bad = len(_SURROGATE.findall(text))
    return len(_NON_ASCII.findall(text)) - bad > bad


def _refuse(message: str, where: str, want: str) -> PlacelinkError:
    return DataError(
        message, where=where,
        fix=f"ask the partner to re-export the file as {want} text (from Excel: 'Save As' CSV, with that "
            "encoding), or, if a new encoding is agreed, change format.encoding in the feed contract (`auto` "
            "detects it); nothing from this file was loaded")


def decode(data: bytes, encoding: str, where: str, kind: str = "CSV") -> tuple[str, str]:
    """The file's text and the encoding it was read with; refuses (PlacelinkError) a file that is not text in
    the contract's encoding. Undecodable stray bytes are kept as surrogates (``surrogateescape``), so only
    their rows are quarantined."""
    want = "auto" if encoding == "auto" else codecs.lookup(encoding).name
    found = sniff(data)
    if found is not None and found.codec is None:
        raise _refuse(f"this file is {found.what}, not {kind} text", where, want if want != "auto" else "UTF-8")
    codec = want
    if found is not None:
        body = data[found.bom:]
        if want == "auto" or _family(want) == _family(found.codec) and (
                want in ("utf-8", "utf-8-sig", "utf-16", "utf-32") or want == found.codec):
            codec = found.codec
        elif found.codec == "utf-8" and body.isascii():
            codec = want  # a UTF-8 mark on ASCII text: the bytes read the same in the contract's encoding
        else:
            raise _refuse(f"this file is {found.what}; the contract says {want}", where, want)
        data = body
    elif want == "auto":
        if _looks_utf8(data) or data.isascii():
            codec = "utf-8"
        else:
            from charset_normalizer import from_bytes

            best = from_bytes(data).best()
            codec = best.encoding if best else "utf-8"
    elif not _family(want).startswith("utf-") and _looks_utf8(data):  # windows-1252, latin-1 ...
        raise _refuse(f"this file is UTF-8 (its non-ASCII characters are valid UTF-8); the contract says {want}, "
                      "so it would load as garbled text", where, want)
    if codec in ("utf-8", "utf-8-sig") and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        # surrogateescape keeps undecodable bytes in place, so one bad row is quarantined, not the file
        return data.decode(codec, errors="surrogateescape"), codec
    except UnicodeDecodeError as exc:  # a multi-byte codec (UTF-16/32 ...) cannot escape a bad unit
        raise _refuse(f"bytes at offset {exc.start} are not valid {codec}", where, want) from None


# --- odd values ------------------------------------------------------------------------------------------

#: undecodable bytes (surrogates from surrogateescape) and control characters: C0 except TAB/LF/CR, DEL and C1
_ODD = re.compile("[\udc80-\udcff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _has_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def _column(header: list[str], i: int) -> str:
    return repr(header[i]) if i < len(header) else f"field {i + 1} (beyond the header)"


def _odd_row(line: int, raw: str, fields: list[str], header: list[str], encoding: str) -> RawRow | None:
    """The quarantine row for a line with undecodable bytes, control characters or a huge field; else None."""
    if _ODD.search(raw) is not None:
        shown = [printable(f, raw=True) for f in fields]
        if _has_surrogates(raw):
            return RawRow(line, printable(raw, raw=True), None, f"bad_encoding: bytes that are not valid {encoding}", shown)
        i = next((i for i, f in enumerate(fields) if _CONTROL.search(f)), 0)
        return RawRow(line, printable(raw, raw=True), None,
                      f"control_character: column {_column(header, i)} holds control characters (NUL, ESC ...)",
                      shown)
    if len(raw) > MAX_FIELD_CHARS:
        big = next((i for i, f in enumerate(fields) if len(f) > MAX_FIELD_CHARS), None)
        if big is not None:
            return RawRow(line, raw[:MAX_RAW_CHARS] + f" [... truncated: {len(raw):,} characters]", None,
                          f"field_too_large: column {_column(header, big)} holds more than {MAX_FIELD_CHARS:,} "
                          "characters",
                          [f if len(f) <= 256 else f[:256] + " [... truncated]" for f in fields])
    return None


# --- CSV ---------------------------------------------------------------------------------------------------

def read_csv(path: Path, fmt: Format, where: str | None = None) -> Drop:
    where = where or str(path)
    text, encoding = decode(_read_bytes(path), fmt.encoding, where, "CSV")
    if not text.strip():
        return Drop(path, [], [], encoding, empty=True)
    lines = list(io.StringIO(text, newline=""))  # splits on \n, \r\n, \r; keeps the endings
    # strict: a closing quote must be followed by the delimiter or the line end (`"ab"cd` is an error, not `abcd`),
    # and a quote still open at the end of the file is an error, not a silently truncated record
    dialect = {"delimiter": fmt.delimiter, "quotechar": fmt.quotechar, "strict": True}
    reader = csv.reader(iter(lines), **dialect)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DataError(f"cannot parse the header line: {exc}", where=f"{where}:1",
                             fix="check the delimiter/encoding in the feed contract") from None
    if reader.line_num != 1:
        raise DataError("the header line opens a quote that does not close on that line", where=f"{where}:1",
                             fix="ask the partner to re-export the file with one header line")
    # a header name is printed and stored (columns dropped, run metadata): undecodable bytes or control
    # characters in it are shown as \xNN (no contract column has any, so matching is unchanged)
    header = [printable(h.strip(), raw=True) for h in header]
    width = len(header)
    drop = Drop(path, header, [], encoding, data_lines=sum(1 for line in lines[1:] if line.strip()))
    rows = drop.rows
    n = len(lines)
    pos = 1  # 0-based index of the line the current reader started on
    while pos < n:
        # a fresh list iterator set to a position (its pickle protocol): after a runaway quote, parsing restarts
        # on the line after the runaway's first line without copying the list (an exhausted iterator cannot be
        # repositioned, hence a new one each time)
        it = iter(lines)
        it.__setstate__(pos)
        reader = csv.reader(it, **dialect)
        while True:
            first = pos + reader.line_num
            try:
                fields = next(reader)
            except StopIteration:
                pos = n
                break
            except csv.Error:
                rows.append(_quote_problem(lines[first], fmt.quotechar))
                rows[-1].line = first + 1
                pos = first + 1
                break
            end = pos + reader.line_num
            if end - first == 1:
                raw = lines[first]
                if len(fields) <= 1 and not raw.strip():
                    continue  # blank line: not a record
                raw = raw.rstrip("\r\n")
                odd = _odd_row(first + 1, raw, fields, header, encoding) if (
                    len(raw) > MAX_FIELD_CHARS or _ODD.search(raw) is not None) else None
                if odd is not None:
                    rows.append(odd)
                elif len(fields) != width:
                    rows.append(RawRow(first + 1, raw, None,
                                       f"wrong_column_count: {len(fields)} fields, header has {width}", fields))
                else:
                    rows.append(RawRow(first + 1, raw, dict(zip(header, fields, strict=True)), None, fields))
                continue
            # a quoted field ran over several lines: legitimate only if it gives the header's field count
            if len(fields) != width or any(len(f) > MAX_FIELD_CHARS for f in fields):
                row = _quote_problem(lines[first], fmt.quotechar)
                row.line = first + 1
                rows.append(row)
                pos = first + 1
                break
            raw = "".join(lines[first:end]).rstrip("\r\n")
            row = _odd_row(first + 1, raw, fields, header, encoding) or RawRow(
                first + 1, raw, dict(zip(header, fields, strict=True)), None, fields)
            row.lines = sum(1 for line in lines[first:end] if line.strip())
            rows.append(row)
    return drop


def _quote_problem(line: str, quotechar: str) -> RawRow:
    """One physical line quarantined on its own: its quote runs away, or the parser cannot read it."""
    raw = line.rstrip("\r\n")
    if len(raw) > MAX_FIELD_CHARS:
        reason = f"field_too_large: the line holds more than {MAX_FIELD_CHARS:,} characters"
        shown = raw[:MAX_RAW_CHARS] + f" [... truncated: {len(raw):,} characters]"
    elif quotechar in raw:
        reason = ("unbalanced_quote: a quoted field opened on this line does not close properly (quote, then "
                  "delimiter or line end, with the header's field count); this line is quarantined on its own")
        shown = raw
    else:
        reason = "unparseable: the line cannot be read as CSV"
        shown = raw
    return RawRow(0, printable(shown, raw=True), None, reason)


# --- Excel -------------------------------------------------------------------------------------------------

def _cell(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value if (value.hour, value.minute, value.second) != (0, 0, 0) else value.date()
    if value == "":
        return None
    return value


def read_excel(path: Path, fmt: Format, where: str | None = None) -> Drop:
    from python_calamine import CalamineWorkbook

    where = where or str(path)
    data = _read_bytes(path)
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception:  # calamine raises its own error types per format; its text can quote cells
        found = sniff(data[:_SAMPLE])
        what = f"this file is {found.what}" if found else "this file is not a workbook calamine can open"
        raise DataError(f"cannot open the workbook: {what}", where=where,
                             fix="check the file is a real .xlsx/.xls") from None
    if fmt.sheet not in book.sheet_names:
        # the sheet names are the partner's text: counted, not quoted
        raise DataError(f"sheet {fmt.sheet!r} not found (the workbook has {len(book.sheet_names)} other "
                             "sheet(s))", where=where,
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
        drop.data_lines += 1
        raw = "\t".join("" if c is None else str(c) for c in cells).rstrip("\t")
        extra = [c for c in cells[len(header):] if c not in (None, "")]
        if extra:
            drop.rows.append(RawRow(i, printable(raw, raw=True), None,
                                    f"wrong_column_count: values beyond the {len(header)} header columns"))
            continue
        cells = (cells + [None] * len(header))[:len(header)]
        if len(raw) > MAX_FIELD_CHARS or _ODD.search(raw) is not None:
            odd = _odd_row(i, raw, ["" if c is None else str(c) for c in cells], header, "the workbook")
            if odd is not None:
                drop.rows.append(odd)
                continue
        drop.rows.append(RawRow(i, raw, dict(zip(header, cells, strict=True))))
    return drop


# --- JSON lines --------------------------------------------------------------------------------------------

def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


# one decoder for every line: json.loads(..., parse_constant=...) would build a new decoder per call
_JSON = json.JSONDecoder(parse_constant=_no_constant)


#: JSON escapes that decode to a control character or a lone surrogate (checked on the decoded values)
_JSON_ODD_ESCAPE = re.compile(r"\\(u00[01][0-9a-fA-F]|u007[fF]|u00[89][0-9a-fA-F]|u[dD][89a-fA-F]|[bf])")
_ANY_SURROGATE = re.compile("[\ud800-\udfff]")


def _odd_json_values(obj: dict, expected: list[str]) -> str | None:
    for k, v in obj.items():
        if isinstance(v, str):
            name = repr(k) if k in expected else "(a key outside the contract)"  # a stray key could be anything
            if _ANY_SURROGATE.search(v):
                return f"bad_encoding: column {name} holds an escaped lone surrogate (not valid Unicode)"
            if _CONTROL.search(v):
                return f"control_character: column {name} holds control characters (NUL, ESC ...)"
            if len(v) > MAX_FIELD_CHARS:
                return f"field_too_large: column {name} holds more than {MAX_FIELD_CHARS:,} characters"
    return None


def read_jsonl(path: Path, fmt: Format, expected: list[str], where: str | None = None) -> Drop:
    where = where or str(path)
    text, encoding = decode(_read_bytes(path), fmt.encoding, where, "JSON lines")
    if not text.strip():
        return Drop(path, [], [], encoding, empty=True)
    keys: dict[str, None] = {}
    parsed: list[RawRow] = []
    data_lines = 0
    for i, line in enumerate(io.StringIO(text, newline=""), start=1):
        raw = line.rstrip("\r\n")
        if not raw.strip():
            continue
        data_lines += 1
        if _ODD.search(raw) is not None:
            reason = (f"bad_encoding: bytes that are not valid {encoding}" if _has_surrogates(raw) else
                      "control_character: the line holds control characters (NUL, ESC ...)")
            parsed.append(RawRow(i, printable(raw[:MAX_RAW_CHARS], raw=True), None, reason))
            continue
        try:
            obj = _JSON.decode(raw)
        except json.JSONDecodeError as exc:
            parsed.append(RawRow(i, raw[:MAX_RAW_CHARS], None, f"invalid_json: {exc.msg} at column {exc.colno}"))
            continue
        except (ValueError, RecursionError):
            # NaN/Infinity, a number of thousands of digits, arrays nested thousands deep
            parsed.append(RawRow(i, raw[:MAX_RAW_CHARS], None,
                                 "invalid_json: NaN/Infinity, an over-long number or nesting too deep"))
            continue
        if not isinstance(obj, dict):
            parsed.append(RawRow(i, raw[:MAX_RAW_CHARS], None, "invalid_json: the line is not a JSON object"))
            continue
        if len(raw) > MAX_FIELD_CHARS or ("\\" in raw and _JSON_ODD_ESCAPE.search(raw) is not None):
            reason = _odd_json_values(obj, expected)
            if reason is not None:
                parsed.append(RawRow(i, printable(raw[:MAX_RAW_CHARS], raw=True), None, reason))
                continue
        keys.update(dict.fromkeys(obj))
        parsed.append(RawRow(i, raw, {k: (None if v == "" else v) for k, v in obj.items()}))
    # a JSON file has no header line: its "header" is every key seen, in contract order first
    header = [c for c in expected if c in keys] + [printable(k, raw=True) for k in keys if k not in expected]
    for row in parsed:
        if row.values is not None:
            row.values = {k: row.values.get(k) for k in header}
    return Drop(path, header, parsed, encoding, data_lines=data_lines)


def read_drop(path: Path, fmt: Format, expected_columns: list[str], where: str | None = None) -> Drop:
    """Read a landing file per its contract format; ``where`` names it in errors (default: the path).

    Raises:
        PlacelinkError: the file is not what the contract says (binary, another encoding, an unreadable workbook
            or header); the whole file is refused and nothing from it is loaded.
    """
    if fmt.type == "csv":
        return read_csv(path, fmt, where)
    if fmt.type == "excel":
        return read_excel(path, fmt, where)
    return read_jsonl(path, fmt, expected_columns, where)
