"""Attack: no planted identifier escapes the identifiable zone (issue #22, "identifiers escape through error text").

Hostile drops, generated here, carry unique marker values (names, birth dates, postcodes, an NHS number with a
valid check digit, pupil numbers). They go through the real pipeline — the ``placelink`` command line in a
subprocess (``ingest``, ``quality``) and Dagster in process (the feed's raw asset and its GX checks, on a real
instance stored in the home, compute logs captured) — and then EVERY file under the home is scanned for the
markers, except ``identifiable.duckdb`` (the identifiable zone) and ``landing/`` (the partner's own drops): the
audit log, Dagster's SQLite event log and compute logs, GX results and Data Docs, the warehouse, published files,
alerts. Also scanned: the commands' stdout/stderr and the text of every Dagster failure. DuckDB files are scanned
as raw bytes and by reading every column of every table as text (DuckDB may compress strings on disk).

The hostile drops (school attendance, NHS A&E; real contracts and suites):
* ``headerless``: a drop sent without its header line; the first pupil's details become the "header";
* ``utf16``: the same in UTF-16 with a byte-order mark (the header is garbled bytes around the names);
* ``json_keys``: an A&E JSON line keyed by the patient's NHS number (nested JSON instead of flat fields);
* ``gx``: loaded rows that fail GX expectations — a pupil whose record id (UPN) sits in failing-row samples,
  a malformed UPN, a birth date out of range — plus a row in the wrong encoding (quarantined);
* ``overflow``: a school URN too large for a 64-bit integer beside a pupil's details (the library that could not
  convert it would have failed the whole month).
"""

from __future__ import annotations

import functools
import json
import os
import string
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.defs.resources import settings_resource
from orchestration.lib.config import get_settings

HEADER = ("upn;school_urn;school_name;forename;surname;dob;gender;postcode;term_month;sessions_possible;"
          "sessions_missed_authorised;sessions_missed_unauthorised;suspensions;permanent_exclusion;fsm_eligible;"
          "sen_status")


def _nhs_number(prefix: str) -> str:
    """A 10-digit NHS number with a valid modulus-11 check digit."""
    total = sum(int(d) * (10 - i) for i, d in enumerate(prefix))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    assert check != 10, "pick another prefix"
    return prefix + str(check)


NHS = _nhs_number("401023218")
#: every value planted in a hostile drop; none may appear outside the identifiable zone
MARKERS = {
    "headerless": ["Zqxheaderlessgiven", "Vrkheaderlessfamily", "1933-04-21", "QZ9 7XJ", "K640213578906"],
    "utf16": ["Zqxutfsixteengiven", "Vrkutfsixteenfamily", "1934-05-22", "QZ8 6WH", "K640213578907"],
    "json_keys": [NHS, "Zqxjsonkeygiven", "Vrkjsonkeyfamily", "1935-06-23", "QZ7 5VG"],
    "gx": ["Zqxgxrecordidgiven", "Vrkgxrecordidfamily", "K640213578908",          # fails a range check: its UPN
           "ZQ76543210984", "Zqxgxbadupngiven", "1936-07-24", "QZ6 4UF",           # malformed UPN, DOB too old
           "Zqxlatingiven"],                                                       # a row in Windows-1252
    "overflow": ["Zqxoverflowgiven", "Vrkoverflowfamily", "1937-08-25", "QZ5 3TE", "K640213578909"],
}
ALL_MARKERS = sorted({m for ms in MARKERS.values() for m in ms})


def _pupil(upn: str, given: str, family: str, dob: str, postcode: str, term: str = "2025-03", *,
           urn: str = "100001", possible: int = 30) -> str:
    return f"{upn};{urn};Shire Primary;{given};{family};{dob};F;{postcode};{term};{possible};2;1;0;N;Y;N"


def _plain(term: str, i: int) -> str:
    return _pupil(f"A1000000000{i:02d}", f"Ann{i}", f"Ordinary{i}", "2015-01-0" + str(i % 9 + 1), "SH1 2AB", term)


def write_hostile_drops(home: Path) -> None:
    school = home / "landing" / "county_council" / "school_attendance"
    school.mkdir(parents=True)
    g = MARKERS["gx"]
    gx_rows = [_pupil(g[2], g[0], g[1], "2015-02-02", "SH1 2AB", possible=99),     # sessions_possible > 60
               _pupil(g[3], g[4], "Ordinary", g[5], g[6])]                          # bad UPN, DOB out of range
    gx_rows += [_plain("2025-03", i) for i in range(5)]
    latin = _pupil("A10000000099", g[7] + "é", "Ordinary", "2015-03-03", "SH1 2AB").encode("cp1252")
    (school / "2025-03-05.csv").write_bytes(
        ("\n".join([HEADER, *gx_rows]) + "\n").encode("utf-8") + latin + b"\n")
    h = MARKERS["headerless"]
    (school / "2025-04-05.csv").write_text(
        "\n".join([_pupil(h[4], h[0], h[1], h[2], h[3], "2025-04"), _plain("2025-04", 1)]) + "\n", encoding="utf-8")
    o = MARKERS["overflow"]
    (school / "2025-05-05.csv").write_text(
        "\n".join([HEADER, _pupil(o[4], o[0], o[1], o[2], o[3], "2025-05", urn="98765432109876543210987"),
                   _plain("2025-05", 2)]) + "\n", encoding="utf-8")
    u = MARKERS["utf16"]
    (school / "2025-06-05.csv").write_bytes(
        ("\n".join([_pupil(u[4], u[0], u[1], u[2], u[3], "2025-06"), _plain("2025-06", 3)]) + "\n").encode("utf-16"))
    nhs = home / "landing" / "nhs" / "ae_attendances"
    nhs.mkdir(parents=True)
    j = MARKERS["json_keys"]
    (nhs / "2025-03-07.jsonl").write_text(json.dumps({j[0]: {
        "forename": j[1], "surname": j[2], "date_of_birth": j[3], "postcode": j[4]}}) + "\n", encoding="utf-8")


# --- the scan -------------------------------------------------------------------------------------------------------
def _variants(marker: str) -> list[bytes]:
    """The marker as text is written: lower-cased bytes, and a postcode also without its space."""
    out = {marker.lower().encode()}
    if " " in marker:
        out.add(marker.replace(" ", "").lower().encode())
    return sorted(out)


NEEDLES = {m: _variants(m) for m in ALL_MARKERS}


def hits_in_bytes(data: bytes) -> set[str]:
    """Markers in ``data``, case-insensitive; NUL bytes dropped too (UTF-16 text read as bytes)."""
    low = data.lower()
    texts = [low, low.replace(b"\x00", b"")] if b"\x00" in low else [low]
    return {m for m, needles in NEEDLES.items() for t in texts for n in needles if n in t}


def hits_in_duckdb(path: Path) -> set[str]:
    """Markers in any column of any table of a DuckDB file, every value read as text."""
    found: set[str] = set()
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT database_name, schema_name, table_name FROM duckdb_tables() "
                             "WHERE database_name = current_database()").fetchall()
        for _, schema, table in tables:
            cols = [r[0] for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND "
                "schema_name = ? AND table_name = ?", [schema, table]).fetchall()]
            if not cols:
                continue
            concat = " || ' ' || ".join(f'coalesce(CAST("{c}" AS VARCHAR), \'\')' for c in cols)
            for (row,) in con.execute(f'SELECT {concat} FROM "{schema}"."{table}"').fetchall():
                found |= hits_in_bytes(row.encode())
    return found


def scan_home(home: Path) -> dict[str, set[str]]:
    """``{relative path: markers found}`` over every file of the home outside the identifiable zone."""
    identifiable = get_settings(home=home).identifiable_db.resolve()
    landing = (home / "landing").resolve()
    out: dict[str, set[str]] = {}
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        real = path.resolve()
        if real == identifiable or real.name.startswith(identifiable.name) or landing in real.parents:
            continue  # the identifiable zone (and its WAL) and the partner's drops
        found = hits_in_bytes(path.read_bytes())
        if path.suffix == ".duckdb":
            found |= hits_in_duckdb(path)
        if found:
            out[str(path.relative_to(home))] = found
    return out


def _assert_clean(where: dict[str, set[str]]) -> None:
    leaks = {k: sorted(v) for k, v in where.items() if v}
    assert not leaks, f"planted identifiers outside the identifiable zone: {leaks}"


@pytest.fixture
def hostile_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    settings = get_settings(home=home, env="local").ensure()
    write_hostile_drops(home)
    monkeypatch.setenv("PLACELINK_HOME", str(home))
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "ab" * 32)
    return settings


def test_the_scan_finds_a_planted_value_wherever_it_is(tmp_path):
    """The scanner itself: a marker in a text file, in UTF-16, in a compressed DuckDB string column."""
    home = tmp_path / "home"
    (home / "logs").mkdir(parents=True)
    (home / "logs" / "a.log").write_text("x ZQXHEADERLESSGIVEN y")
    (home / "logs" / "b.txt").write_bytes("qz97xj".encode("utf-16"))
    with duckdb.connect(str(home / "other.duckdb")) as con:
        con.execute(f"CREATE TABLE t AS SELECT '{MARKERS['gx'][2]}' || i::VARCHAR AS v FROM range(5000) r(i)")
    (home / "landing").mkdir()
    (home / "landing" / "c.csv").write_text(MARKERS["gx"][0])  # the partner's own drop: not scanned
    found = scan_home(home)
    assert found == {"logs/a.log": {"Zqxheaderlessgiven"}, "logs/b.txt": {"QZ9 7XJ"},
                     "other.duckdb": {"K640213578908"}}


def test_cli_path_leaks_nothing(hostile_home):
    home = hostile_home.home
    env = {**os.environ, "PLACELINK_HOME": str(home), "PLACELINK_ENV": "local", "NO_COLOR": "1",
           "COLUMNS": "200"}
    outputs = {}
    # a load over several months stops a feed at its first bad month (the later ones stay pending, nothing is
    # marked done): the partner then sends its months one by one, as here for the month with the oversized number
    for argv in (["ingest"], ["ingest", "--month", "2025-05"], ["quality", "--partner", "county_council"]):
        proc = subprocess.run([sys.executable, "-m", "orchestration.cli", *argv, "--home", str(home)],
                              capture_output=True, env=env, timeout=600)
        outputs[" ".join(argv)] = proc
    where = scan_home(home)
    for argv, proc in outputs.items():
        where[f"stdout of placelink {argv}"] = hits_in_bytes(proc.stdout)
        where[f"stderr of placelink {argv}"] = hits_in_bytes(proc.stderr)
    _assert_clean(where)

    ingest = outputs["ingest"]
    text = ingest.stdout.decode() + ingest.stderr.decode()
    # the pipeline really met the hostile drops: the school feed stopped at its April schema change, the A&E feed
    # at its March one, each named with its file; then the month with the oversized number loaded its good row
    assert ingest.returncode == 2 and "2 feed load(s) failed" in text, text
    assert "school_attendance/2025-04-05.csv" in text and "ae_attendances/2025-03-07.jsonl" in text
    assert "missing:" in text
    assert outputs["ingest --month 2025-05"].returncode == 0
    assert outputs["quality --partner county_council"].returncode in (0, 1)
    with duckdb.connect(str(hostile_home.identifiable_db), read_only=True) as con:
        loaded = dict(con.execute("SELECT strftime(_partition, '%Y-%m'), count(*) FROM "
                                  "raw.county_council__school_attendance GROUP BY ALL").fetchall())
        reasons = con.execute("SELECT strftime(\"partition\", '%Y-%m'), split_part(reason, ':', 1) "
                              "FROM ops.quarantine WHERE line IS NOT NULL ORDER BY ALL").fetchall()
        refused = con.execute("SELECT count(*) FROM ops.quarantine WHERE line IS NULL AND \"partition\" IS NOT NULL "
                              "AND reason LIKE 'refused_file: %'").fetchone()[0]
    assert loaded == {"2025-03": 7, "2025-05": 1}
    assert reasons == [("2025-03", "bad_encoding"), ("2025-05", "invalid_integer")]
    assert refused == 2   # the two schema-changed drops met are on record as whole files
    # the failed loads are failed Dagster runs (the run-failure sensor alerts on them), not audit events
    from orchestration.runner import instance_for

    with instance_for(hostile_home) as instance:
        runs = [r for r in instance.get_runs() if r.job_name == "all_feeds_ingest_job"]
        assert sorted(r.status.value for r in runs) == ["FAILURE", "SUCCESS"]


def _audit(home: Path) -> list[tuple]:
    with duckdb.connect(str(get_settings(home=home).audit_db), read_only=True) as con:
        return con.execute("SELECT action, target, details FROM audit_log ORDER BY seq").fetchall()


def test_dagster_path_leaks_nothing(hostile_home):
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from orchestration.defs.feeds.assets import build_feed_assets
    from orchestration.defs.quality.checks import build_quality_definitions
    from orchestration.lib.contracts import load_contracts
    from orchestration.runner import instance_for

    settings = hostile_home
    contracts = load_contracts()
    wanted = {dg.AssetKey(["raw", "county_council__school_attendance"]), dg.AssetKey(["raw", "nhs__ae_attendances"])}
    assets = [a for a in build_feed_assets(contracts) if a.key in wanted]
    checks = build_quality_definitions(["county_council__school_attendance", "nhs__ae_attendances"]).asset_checks
    resources = {"identifiable_db": DuckDBResource(database=str(settings.identifiable_db)),
                 "warehouse_db": DuckDBResource(database=str(settings.warehouse_db)),
                 "placelink_settings": settings_resource(settings)}
    texts: dict[str, bytes] = {}
    with instance_for(settings) as instance:
        results = {}
        for key, months in ((dg.AssetKey(["raw", "county_council__school_attendance"]),
                             ["2025-03-01", "2025-04-01", "2025-05-01", "2025-06-01"]),
                            (dg.AssetKey(["raw", "nhs__ae_attendances"]), ["2025-03-01"])):
            for month in months:
                result = dg.materialize(assets + list(checks), selection=[key], partition_key=month,
                                        resources=resources, instance=instance, raise_on_error=False)
                results[(key.path[-1], month)] = result
                for event in result.all_events:
                    texts[f"{key.path[-1]} {month} {event.event_type_value}"] = repr(event).encode()
                    data = getattr(event.event_specific_data, "error", None)
                    if data is not None:
                        texts[f"{key.path[-1]} {month} error"] = data.to_string().encode()
        compute_logs = [p for p in settings.dagster_home.rglob("*") if p.is_file() and p.suffix in (".err", ".out")]
    where = scan_home(settings.home)
    where |= {f"Dagster event: {k}": hits_in_bytes(v) for k, v in texts.items()}
    _assert_clean(where)

    ok = {k: r.success for k, r in results.items()}
    assert ok == {("county_council__school_attendance", "2025-03-01"): True,
                  ("county_council__school_attendance", "2025-04-01"): False,
                  ("county_council__school_attendance", "2025-05-01"): True,
                  ("county_council__school_attendance", "2025-06-01"): False,
                  ("nhs__ae_attendances", "2025-03-01"): False}, ok
    # the GX checks ran on the loaded month and found the planted failures (and kept their samples masked)
    evaluations = {e.check_name: e for e in
                   results[("county_council__school_attendance", "2025-03-01")].get_asset_check_evaluations()}
    samples = evaluations["quality_warnings"].metadata["masked_failing_rows"].value
    assert {"expect_column_values_to_be_between:sessions_possible", "expect_column_values_to_match_regex:upn"} \
        <= set(samples), samples
    assert all("_record_id" not in row and "_line" in row for rows in samples.values() for row in rows)
    assert compute_logs, "no compute log captured: the scan would prove nothing about them"



# --- each guard on its own ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _school_feed():
    from orchestration.lib.contracts import load_contracts

    return load_contracts().feed("county_council", "school_attendance")


CELL = st.text(alphabet=string.ascii_letters + string.digits + " -'/", min_size=2, max_size=24)


@given(data=st.data())
@settings(max_examples=100, deadline=None)
def test_a_schema_error_names_contract_columns_and_positions_never_a_header_cell(data):
    """Whatever the file's header holds instead of the contract's columns (a first data row, a renamed or
    misspelt column, garbled bytes), the error quotes none of it."""
    from orchestration.lib.errors import DataError
    from orchestration.lib.feeds.load import check_header
    from orchestration.lib.feeds.readers import Drop

    feed = _school_feed()
    names = [c.name for c in feed.columns]
    replaced = data.draw(st.sets(st.integers(0, len(names) - 1), min_size=1), label="replaced")
    # planted cells start with "Zq" so no text of the message (contract names, fixed words) can contain one
    header = [("Zq" + data.draw(CELL, label=f"cell {i}")) if i in replaced else n for i, n in enumerate(names)]
    header += ["Zq" + c for c in data.draw(st.lists(CELL, max_size=3), label="extra cells")]
    with pytest.raises(DataError) as err:
        check_header(feed, Drop(Path("x.csv"), header), "landing/county_council/school_attendance/x.csv")
    text = str(err.value).lower()
    assert not [c for c in header if c.startswith("Zq") and c.lower() in text], text
    assert "missing: [" in text and "column" in text


def test_the_audit_log_keeps_counts_and_ids_and_withholds_the_rest(tmp_path):
    import duckdb as ddb

    from orchestration.lib.governance.audit import WITHHELD, read_events, record_event

    settings = get_settings(home=tmp_path / "home", env="local").ensure()
    try:
        ddb.sql("SELECT 'Zqxauditconv'::INTEGER").fetchall()
    except ddb.ConversionException as exc:
        library_error = exc
    assert "Zqxauditconv" in str(library_error)  # DuckDB does quote the value
    record_event(settings, action="ingest_failed", target="raw.x", details={
        "partition": "2025-03-01", "rows_loaded": 3, "error": library_error,
        "sql": "SELECT * FROM raw.x WHERE surname = 'Zqxauditsql' AND nhs = 4010232188 -- Zqxcomment",
        "denied": "Conversion Error: Could not convert string 'Zqxauditdenied' to INT32",
        "person_name": "Zqxunknownkey", "rows": "Zqxnotacount", "run_id": "Zqx Smith (not an id)"})
    [event] = read_events(settings)
    details = event["details"]
    assert details["partition"] == "2025-03-01" and details["rows_loaded"] == 3
    assert details["sql"] == "SELECT * FROM raw.x WHERE surname = ? AND nhs = ? ?"
    assert details["person_name"] == details["rows"] == details["run_id"] == WITHHELD
    assert "ConversionException" in details["error"]
    assert not hits_in_bytes(settings.audit_db.read_bytes()) and "zqx" not in json.dumps(details).lower()


def _library_failures(tmp_path, body):
    """Run ``body`` as a guarded asset in a job that retries twice; return (step events, the instance's files)."""
    import dagster as dg

    from orchestration.defs.guard import no_leaks

    @dg.asset
    @no_leaks("hostile step")
    def hostile() -> None:
        body()

    job = dg.define_asset_job("hostile_job", selection=[hostile],
                              op_retry_policy=dg.RetryPolicy(max_retries=2, delay=0))
    defs = dg.Definitions(assets=[hostile], jobs=[job])
    (tmp_path / "dagster").mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = defs.resolve_job_def("hostile_job").execute_in_process(instance=instance, raise_on_error=False)
        events = [e for e in instance.all_logs(result.run_id) if e.dagster_event]
        texts = b"\n".join(repr(e).encode() for e in events)
    return [e.dagster_event.event_type_value for e in events], texts


def test_a_library_error_quoting_a_value_is_withheld_by_dagster_and_never_retried(tmp_path):
    import duckdb as ddb

    kinds, texts = _library_failures(tmp_path, lambda: ddb.sql("SELECT 'Zqxgivenconv'::INTEGER").fetchall())
    assert kinds.count("STEP_FAILURE") == 1 and "STEP_UP_FOR_RETRY" not in kinds  # a data error: fail fast
    assert b"ConversionException" in texts and b"zqxgivenconv" not in texts.lower()
    assert not hits_in_bytes(b"".join(p.read_bytes() for p in (tmp_path / "dagster").rglob("*") if p.is_file()))


def test_any_other_library_error_is_withheld_and_left_to_the_retry_policy(tmp_path):
    def body():
        raise KeyError("Zqxkeyerror")  # e.g. a lookup by a partner's value

    kinds, texts = _library_failures(tmp_path, body)
    assert kinds.count("STEP_UP_FOR_RETRY") == 2 and "STEP_FAILURE" in kinds
    assert b"KeyError" in texts and b"zqxkeyerror" not in texts.lower()
    files = b"".join(p.read_bytes() for p in (tmp_path / "dagster").rglob("*") if p.is_file())
    assert b"zqxkeyerror" not in files.lower()


def test_the_cli_prints_a_library_error_by_type_and_frames_only(tmp_path):
    """``placelink`` itself (console-script entry point) meeting an exception that is not ours."""
    code = ("import duckdb, sys; from orchestration import cli\n"
            "@cli.app.command('hostile')\n"
            "def hostile():\n"
            "    duckdb.sql(\"SELECT 'Zqxcligiven'::INTEGER\").fetchall()\n"
            "sys.argv = ['placelink', 'hostile']\n"
            "cli.main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120,
                          env={**os.environ, "PLACELINK_HOME": str(tmp_path / "home")})
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "ConversionException" in err and "withheld" in err and "hostile" in err
    assert "zqxcligiven" not in (err + proc.stdout.decode()).lower()


def test_link_input_errors_quote_no_value(tmp_path):
    """``placelink link`` over a file without its header line, and over one with a repeated record id."""
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("K640213578906,Zqxlinkgiven,Vrklinkfamily,1933-04-21\n"
                          "K640213578907,Ann,Smith,2015-01-01\n")
    repeated = tmp_path / "repeated.csv"
    repeated.write_text("record_id,given_name\nK640213578906,Ann\nK640213578906,Bob\nA1,Cy\n")
    for path in (headerless, repeated):
        proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "link", str(path),
                               str(tmp_path / "out.csv")], capture_output=True, timeout=300,
                              env={**os.environ, "PLACELINK_HOME": str(tmp_path / "home")})
        assert proc.returncode == 2, proc.stderr.decode()
        assert not hits_in_bytes(proc.stdout + proc.stderr), proc.stderr.decode()
        assert b"zqxlinkgiven" not in (proc.stdout + proc.stderr).lower()
