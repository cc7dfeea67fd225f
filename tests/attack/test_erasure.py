"""Attack: erasure and objection must hold for ever (#22).

The attacker here is time and a careless partner: after ``placelink erase`` the partner sends the same person
again under a NEW record id (same NHS number; or no NHS number but the same name and date of birth; or a
malformed line), and an NHS patient opts out the same day (both reach the next nightly). Run through the real pipeline
(``placelink refresh`` on the CLI, which runs the Dagster jobs in process) on a copy of the refreshed tiny
county; afterwards every file under the home except ``landing/`` (what partners delivered) and ``truth/``
(synthetic ground truth the pipeline never reads) is searched for the person: DuckDB and Parquet files as
their decoded rows, every other file (Dagster's storage and compute logs, MLflow's store and artefacts, the
audit log's neighbours, published CSVs, review files) byte for byte.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orchestration.lib.config import get_settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance.erasure import (
    Exclusions,
    _identity_tokens,
    erase,
    load_exclusions,
    record_hash,
)
from orchestration.lib.pseudonymise import load_key, person_key, record_key

KEY = "attack-erasure-key-0123456789abcdef"
NEW_MONTH_DROP = "2026-12-02.jsonl"   # the month after the tiny county's last drop; before "today"


# --- scanning ---------------------------------------------------------------------------------------------

def _decoded_rows(con, relation: str, needles: list[str], pairs: list[tuple[str, str]]) -> list[str]:
    """The needles found in any row of ``relation`` (as its text), in one pass: an RE2 alternation."""
    hits = []
    if needles:
        pattern = "|".join(re.escape(n) for n in sorted(set(needles), key=len, reverse=True))
        hits = sorted(r[0] for r in con.execute(
            f"SELECT DISTINCT unnest(regexp_extract_all(CAST(t AS VARCHAR), ?)) FROM {relation} t",
            [pattern]).fetchall())
    hits += [f"{a}+{b}" for a, b in pairs
             if con.execute(f"SELECT count(*) FROM {relation} t WHERE contains(upper(CAST(t AS VARCHAR)), ?) "
                            "AND contains(CAST(t AS VARCHAR), ?)", [a.upper(), b]).fetchone()[0]]
    return hits


def scan_home(home: Path, needles: list[str], pairs: list[tuple[str, str]] = (),
              exempt: dict[str, set[str]] | None = None) -> dict[str, list[str]]:
    """Where under ``home`` (landing/ and truth/ excepted) any needle occurs: DuckDB/Parquet as decoded rows
    (row text; ``pairs`` = two values in the same row, e.g. family name + date of birth), other files as bytes.
    ``exempt``: {"<file>:<schema>.<table>": needles allowed there}."""
    exempt = exempt or {}
    found: dict[str, list[str]] = {}
    con = duckdb.connect(":memory:")
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        rel = path.relative_to(home).as_posix()
        if rel.split("/")[0] in ("landing", "truth") or path.name.endswith((".lock", ".wal", ".building")):
            continue
        if path.suffix == ".duckdb":
            con.execute(f"ATTACH '{path}' AS scan (READ_ONLY)")
            try:
                for schema, table in con.execute(
                        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'scan'").fetchall():
                    where = f"{rel}:{schema}.{table}"
                    hits = [h for h in _decoded_rows(con, f'scan."{schema}"."{table}"', needles, pairs)
                            if h not in exempt.get(where, set())]
                    if hits:
                        found[where] = hits
            finally:
                con.execute("DETACH scan")
        elif path.suffix == ".parquet":
            hits = _decoded_rows(con, f"read_parquet('{path}')", needles, pairs)
            if hits:
                found[rel] = hits
        else:
            data = path.read_bytes()
            hits = [n for n in needles if n.encode() in data]
            if hits:
                found[rel] = hits
    con.close()
    return found


# --- the home -----------------------------------------------------------------------------------------------

def _cli(*args: str):
    from orchestration.cli import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _pick_person(settings, *, exclude_nhs: set[str]) -> dict:
    """A person linked across the NHS feed (with an NHS number, not opted out) and at least one other feed."""
    opted = set(pd.read_csv(settings.reference / "nhs_opt_outs.csv", dtype=str)["nhs_number"])
    with duckdb.connect(str(settings.identifiable_db), read_only=True) as con:
        rows = con.execute("""
            SELECT pi.person_id, any_value(pr.nhs_number) FILTER (WHERE pr.source = 'nhs.ae_attendances'),
                   any_value(pr.given_name), any_value(pr.family_name), any_value(pr.date_of_birth),
                   list(pr.record_id), count(DISTINCT pr.source)
            FROM link.person_records pr JOIN link.person_index pi USING (record_id)
            WHERE pr.given_name IS NOT NULL AND pr.family_name IS NOT NULL AND pr.date_of_birth IS NOT NULL
            GROUP BY 1
            HAVING count(*) FILTER (WHERE pr.source = 'nhs.ae_attendances' AND pr.nhs_number IS NOT NULL) >= 1
               AND count(DISTINCT pr.source) >= 2 AND count(DISTINCT pr.family_name) = 1
               AND count(DISTINCT pr.nhs_number) = 1
            ORDER BY count(*) DESC, 1""").fetchall()
        for pid, nhs, given, family, dob, record_ids, _ in rows:
            if nhs in opted or nhs in exclude_nhs:
                continue
            # a family name + birth date pair that is theirs alone, so a hit in a scan is really them
            same = con.execute("SELECT count(DISTINCT pi.person_id) FROM link.person_records pr JOIN "
                               "link.person_index pi USING (record_id) WHERE pr.family_name = ? AND "
                               "pr.date_of_birth = ?", [family, dob]).fetchone()[0]
            if same == 1:
                return {"person_id": pid, "nhs": nhs, "given": given, "family": family, "dob": dob,
                        "record_ids": sorted(record_ids)}
    raise AssertionError("no suitable person in the tiny county")


def _needles(settings, person: dict, extra_ids: list[str] = ()) -> tuple[list[str], list[tuple[str, str]]]:
    ids = [*person["record_ids"], *extra_ids]
    nhs = person["nhs"]
    needles = [nhs, f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}", person_key(settings, person["person_id"])]
    needles += [record_key(settings, r) for r in ids]          # their pseudonymised record keys
    needles += ids                                              # standard record ids (<partner>.<feed>:<id>)
    needles += [hashlib.sha256(r.encode()).hexdigest() for r in ids]  # the old, unkeyed exclusion-list hash
    needles += [r.split(":", 1)[1] for r in ids if r.startswith("nhs.")]  # A&E attendance ids (AE + 9 digits)
    pairs = [(person["family"], str(person["dob"])[:10])]
    return needles, pairs


def _new_drop_rows(person: dict) -> list[dict]:
    """The erased person again, under new attendance ids: same NHS number written differently; no NHS number
    but the same name (other case and spacing) and date of birth; a malformed line of theirs; and a stranger."""
    nhs = person["nhs"]
    base = {"sex": "2", "ethnic_category": "A", "postcode": "SH1 2HG", "chief_complaint_snomed": "29857009",
            "attendance_source": "GP referral", "discharge_destination": "306689006", "acuity": 4}
    dob = str(person["dob"])[:10]
    return [
        {**base, "attendance_id": "AE900000001", "nhs_number": f"{nhs[:3]}-{nhs[3:6]}-{nhs[6:]}",
         "forename": "X", "surname": "Y", "date_of_birth": "1950-01-01", "arrival_datetime": "2026-11-20T10:00:00"},
        {**base, "attendance_id": "AE900000002", "nhs_number": None, "forename": f"  {person['given'].lower()} ",
         "surname": person["family"].title(), "date_of_birth": dob, "arrival_datetime": "2026-11-21T10:00:00"},
        {**base, "attendance_id": "AE900000003", "nhs_number": nhs, "forename": person["given"],
         "surname": person["family"], "date_of_birth": dob, "arrival_datetime": "not a date"},
        {**base, "attendance_id": "AE900000004", "nhs_number": "943 476 5919", "forename": "Quentin",
         "surname": "Control", "date_of_birth": "1980-05-05", "arrival_datetime": "2026-11-22T10:00:00"},
    ]


@pytest.fixture(scope="module")
def erasure_home(refreshed_tiny_county, tmp_path_factory):
    """A copy of the refreshed tiny county, an analyst's role files built, then one person erased."""
    from orchestration.lib.governance.roles import refresh_role_files

    src, _ = refreshed_tiny_county
    home = tmp_path_factory.mktemp("erasure") / "home"
    shutil.copytree(src.home, home, ignore=shutil.ignore_patterns("*.lock"))
    settings = get_settings(home=home, env="local")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PLACELINK_HOME", str(home))
        refresh_role_files(settings)   # what an analyst's first query does: governance/roles/analyst*.duckdb
        person = _pick_person(settings, exclude_nhs=set())
        needles, pairs = _needles(settings, person)
        before = scan_home(home, needles, pairs)
        nhs_record = next(r for r in person["record_ids"] if r.startswith("nhs.ae_attendances:"))
        proof = erase(settings, partner="nhs", record_id=nhs_record.split(":", 1)[1], requested_by="dpo")
        yield {"settings": settings, "person": person, "needles": needles, "pairs": pairs, "before": before,
               "proof": proof, "mp": mp}


def _exempt(settings, person) -> dict[str, set[str]]:
    # the exclusion list keeps their person_key (ML drops it) and keyed tokens; nothing else of theirs
    return {"governance/governance.duckdb:main.erasures": {person_key(settings, person["person_id"])}}


def test_erasure_reaches_every_store_and_says_so(erasure_home):
    s, person, proof = erasure_home["settings"], erasure_home["person"], erasure_home["proof"]
    before = erasure_home["before"]
    # the scan would see them: before erasure they are in the zone, the warehouse, the marts and the analyst copy
    assert any(k.startswith("identifiable.duckdb:raw.nhs__ae_attendances") for k in before), before
    assert any(k.startswith("warehouse.duckdb:marts.person_footprint") for k in before), before
    assert any(k.startswith("governance/roles/analyst_person.duckdb") for k in before), before

    after = scan_home(s.home, erasure_home["needles"], erasure_home["pairs"], exempt=_exempt(s, person))
    assert after == {}, after
    where = {d["table"].split(":")[0] for d in proof.deleted}
    assert "analyst_person.duckdb" in where                    # governance extracts rebuilt without them
    assert {c["where"] for c in proof.checked} == {"dagster", "mlflow", "identifiable.duckdb (bytes)",
                                                   "warehouse.duckdb (bytes)"}
    assert all(c["files"] > 0 and c["hits"] == [] for c in proof.checked), proof.checked
    assert proof.remaining == []
    # not even in the DuckDB files' free blocks: erasure rewrote both zones from their live rows
    assert [p.name for p in s.home.glob("*.duckdb") if person["nhs"].encode() in p.read_bytes()] == []
    # MLflow is clean by construction, not by luck: training logs dataset digests, schemas and aggregates, never
    # rows with keys, so no one's person or household key is in its store (tracking DB and artefacts)
    with duckdb.connect(str(s.warehouse_db), read_only=True) as con:
        keys = [r[0] for r in con.execute("SELECT person_key FROM marts.person_footprint LIMIT 300").fetchall()]
        keys += [r[0] for r in con.execute("SELECT DISTINCT household_key FROM src.nhs__ae_attendances "
                                           "WHERE household_key IS NOT NULL LIMIT 300").fetchall()]
    mlflow_files = [p for p in s.mlflow_dir.rglob("*") if p.is_file()]
    assert len(keys) > 300 and any(p.name == "MLmodel" for p in mlflow_files)   # trained models are there
    pattern = re.compile("|".join(keys).encode())
    assert [str(p) for p in mlflow_files if pattern.search(p.read_bytes())] == []
    # the exclusion list is keyed: no unkeyed sha256 of any of their record ids, and a new key gives new hashes
    with duckdb.connect(str(s.governance_dir / "governance.duckdb"), read_only=True) as con:
        stored = {r[0] for r in con.execute("SELECT value_hash FROM erasures").fetchall()}
        schemes = {r[0] for r in con.execute("SELECT DISTINCT scheme FROM erasures").fetchall()}
    assert schemes == {"hmac-sha256"}
    assert not stored & {hashlib.sha256(r.encode()).hexdigest() for r in person["record_ids"]}
    partner, rest = person["record_ids"][0].split(".", 1)
    feed, rid = rest.split(":", 1)
    assert record_hash(s, partner, feed, rid) in stored


# --- the next two nights: a bad drop fails fast and strands nothing; the next refresh recovers through a held lock,
# and the erased person arrives again the same night as an opt-out ------------------------------------------------
# (one home for both stories: each nightly costs the suite a minute, and a real night brings several things at once)

GOOD = ("police", "street_crimes", "Crime ID", "Month")
BAD = ("fire", "safe_and_well_visits", "VisitID", "VisitDate")
MISSING = "Postcode"  # the column the bad drop leaves out


def _step(feed) -> str:
    return f"raw__{feed[0]}__{feed[1]}"


def _re_sent(home: Path, feed, day: str, *, drop_column: str | None = None) -> Path:
    """The feed's newest drop, re-sent as a new month: new record ids, event dates in the month before the drop,
    optionally without one column (header and rows)."""
    partner, name, id_column, date_column = feed
    newest = max((home / "landing" / partner / name).glob("*.*"))
    delimiter = "\t" if "\t" in newest.read_text().splitlines()[0] else ","
    with newest.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=delimiter))
    header = [c for c in rows[0] if c != drop_column]
    previous = f"{int(day[:4]) - (day[5:7] == '01')}-{(int(day[5:7]) - 2) % 12 + 1:02d}"
    target = newest.with_name(f"{day}{newest.suffix}")
    with target.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, header, delimiter=delimiter, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            row[id_column] = "9" + row[id_column][::-1] if row[id_column].isdigit() else row[id_column][::-1]
            row[date_column] = previous if len(row[date_column]) == 7 else f"{previous}-15"
            writer.writerow(row)
    return target


def _events(settings, month: str) -> dict[str, int]:
    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        return dict(con.execute("select feed, count(*) from intermediate.int_events_joined_to_places "
                                "where partition_month = cast(? as date) group by 1", [month]).fetchall())


def _step_events(instance, run_id, step_key) -> list[dg.DagsterEventType]:
    return [e.dagster_event.event_type for e in instance.all_logs(run_id)
            if e.dagster_event and e.dagster_event.step_key == step_key]


def _wait_for_retry(instance, before: set[str], step_key: str, finished: threading.Event,
                    timeout: float = 600) -> bool:
    """Until the refresh's load run has put ``step_key`` up for retry (it met the lock), or the refresh ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not finished.is_set():
        for run in instance.get_runs(limit=5):
            if run.run_id not in before and dg.DagsterEventType.STEP_UP_FOR_RETRY in _step_events(
                    instance, run.run_id, step_key):
                return True
        time.sleep(0.5)
    return False


def _downstream_plan(s, graph, instance):
    """What the refresh plans tonight, with today's erasure and opt-out lists (as the runner asks)."""
    from orchestration.defs.ops.planning import plan_refresh
    from orchestration.lib.governance.erasure import exclusions_fingerprint

    return plan_refresh(graph, instance, s.landing, exclusions=exclusions_fingerprint(s))


@pytest.fixture(scope="module")
def night_1(erasure_home):
    """The night after the erasure, through the runner in process (what the 02:00 schedule runs): a new month
    lands for police street crimes (good) and fire safe-and-well visits (a header missing a contract column)."""
    from orchestration.defs.ops.planning import plan_refresh
    from orchestration.runner import _load_defs, instance_for, refresh

    s = erasure_home["settings"]
    month = NEW_MONTH_DROP[:7]
    instance = instance_for(s)
    graph = _load_defs(s).resolve_asset_graph()
    pending_before = plan_refresh(graph, instance, s.landing)
    _re_sent(s.home, GOOD, f"{month}-02")
    bad = _re_sent(s.home, BAD, f"{month}-03", drop_column=MISSING)
    before = {r.run_id for r in instance.get_runs()}
    plan_at_night = _downstream_plan(s, graph, instance)
    with pytest.raises(PlacelinkError) as failure:
        refresh(settings=s, log_level="WARNING")
    return {"month": month, "pk": f"{month}-01", "bad": bad, "instance": instance, "graph": graph,
            "pending_before": pending_before, "plan_at_night": plan_at_night, "message": str(failure.value),
            "runs": {r.run_id: r for r in instance.get_runs() if r.run_id not in before},
            "events": _events(s, f"{month}-01"), "pending_after": plan_refresh(graph, instance, s.landing)}


@pytest.fixture(scope="module")
def next_night(erasure_home, night_1):
    """The night after, through the CLI (``placelink refresh``: Dagster runs, in process): the fire partner
    re-sends its drop corrected, the NHS partner re-sends the erased person under new record ids (a new month's
    drop), and an NHS patient's opt-out is added to the list the same day. Another process holds the
    identifiable zone's DuckDB write lock until the fire load has met it and been put up for retry."""
    from orchestration.runner import instance_for

    s = erasure_home["settings"]
    person = erasure_home["person"]
    night_1["bad"].unlink()
    _re_sent(s.home, BAD, f"{night_1['month']}-03")
    patient = _pick_person(s, exclude_nhs={person["nhs"]})
    with duckdb.connect(str(s.identifiable_db), read_only=True) as con:
        # the opt-out is keyed on the NHS number (as the NHS opt-out service is): the A&E records carrying it
        nhs_records = [r[0] for r in con.execute(
            "SELECT record_id FROM link.person_records WHERE source = 'nhs.ae_attendances' AND nhs_number = ? "
            "ORDER BY 1", [patient["nhs"]]).fetchall()]
        lines = sorted(con.execute("SELECT _source_file, _line FROM raw.nhs__ae_attendances WHERE _record_id IN "
                                   "(SELECT unnest(?))", [[r.split(":", 1)[1] for r in nhs_records]]).fetchall())
    # what identifies those records (their NHS number may stay in feeds the opt-out does not cover)
    opt_out_needles = [*nhs_records, *(record_key(s, r) for r in nhs_records),
                       *(r.split(":", 1)[1] for r in nhs_records)]
    opt_out_before = scan_home(s.home, opt_out_needles)

    drop = s.landing / "nhs" / "ae_attendances" / NEW_MONTH_DROP
    drop.write_text("\n".join(json.dumps(r) for r in _new_drop_rows(person)) + "\n")
    with (s.reference / "nhs_opt_outs.csv").open("a") as fh:
        fh.write(f"{patient['nhs']}\n")

    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
                               "sys.stdin.readline(); con.close()", str(s.identifiable_db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    instance = night_1["instance"]
    before = {r.run_id for r in instance.get_runs()}
    finished, retried = threading.Event(), []

    def release_once_retried():
        try:
            retried.append(_wait_for_retry(instance_for(s), before, _step(BAD), finished))
        finally:
            holder.communicate("release\n", timeout=30)

    watcher = threading.Thread(target=release_once_retried, daemon=True)
    watcher.start()
    try:
        # the retry delay is the suite's (tests/conftest.py), the policy's count and backoff its own
        out = _cli("refresh", "--home", str(s.home))
    finally:
        finished.set()
        watcher.join(timeout=60)
    return {"out": out, "patient": patient, "opt_out_needles": opt_out_needles, "opt_out_before": opt_out_before,
            "opt_out_lines": lines, "retried": retried,
            "runs": [r for r in instance.get_runs() if r.run_id not in before]}


def test_a_bad_drop_fails_its_night_fast_and_strands_nothing(night_1):
    n = night_1
    pk, instance, message = n["pk"], n["instance"], n["message"]
    assert n["pending_before"].empty  # the full refresh (and the erasure) left nothing pending
    # the schema change fails its step once, police's month still reaches the marts
    assert message.count("schema change") == 1 and f"missing: ['{MISSING}']" in message
    assert f"still pending for the next refresh: raw/fire__safe_and_well_visits {n['month']}" in message
    load = next(r for r in n["runs"].values() if r.job_name == "ops_partitioned_refresh_job")
    assert load.status == dg.DagsterRunStatus.FAILURE
    fire = _step_events(instance, load.run_id, _step(BAD))
    # a DataError is not retried: one attempt (an in-process retry logs STEP_RESTARTED, not a second STEP_START)
    assert fire.count(dg.DagsterEventType.STEP_START) + fire.count(dg.DagsterEventType.STEP_RESTARTED) == 1
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in fire and dg.DagsterEventType.STEP_FAILURE in fire
    assert dg.DagsterEventType.STEP_SUCCESS in _step_events(instance, load.run_id, _step(GOOD))
    [downstream] = [r for r in n["runs"].values() if r.job_name == "ops_downstream_refresh_job"]
    assert downstream.status == dg.DagsterRunStatus.SUCCESS
    # the first night after an erasure rebuilds downstream from scratch (the exclusion list changed), so it is not
    # narrowed to the new month (tests/ops/test_incremental_refresh.py checks the narrowed nightly)
    assert n["plan_at_night"].exclusions_changed and "placelink/months" not in downstream.tags
    assert n["events"].get("street_crimes", 0) > 0 and "safe_and_well_visits" not in n["events"]
    assert n["pending_after"].feeds == {"raw/fire__safe_and_well_visits": [pk]} and n["pending_after"].unfinished == {}


def test_the_next_refresh_recovers_the_pending_month_through_a_held_lock(erasure_home, night_1, next_night):
    from orchestration.defs.ops.planning import plan_refresh

    s, instance, pk = erasure_home["settings"], night_1["instance"], night_1["pk"]
    assert next_night["retried"] == [True]
    [load] = [r for r in next_night["runs"] if r.job_name == "ops_partitioned_refresh_job"]
    fire = _step_events(instance, load.run_id, _step(BAD))
    assert fire.count(dg.DagsterEventType.STEP_UP_FOR_RETRY) >= 1 and fire[-1] == dg.DagsterEventType.STEP_SUCCESS
    retry = next(e for e in instance.all_logs(load.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
                 if e.dagster_event.step_key == _step(BAD))
    error = retry.dagster_event.event_specific_data.error  # RetryRequestedFromPolicy, caused by DuckDB's lock
    # DuckDB's "Could not set lock on file" (an IOException; where library messages are withheld, only its type)
    assert "IOException" in error.message + (error.cause.message if error.cause else "")
    after = _events(s, pk)
    assert after.get("safe_and_well_visits", 0) > 0
    assert after["street_crimes"] == night_1["events"]["street_crimes"]
    assert plan_refresh(night_1["graph"], instance, s.landing).empty


def test_the_erased_person_under_new_record_ids_is_quarantined_on_arrival_cli_and_dagster(erasure_home, next_night):
    s, person = erasure_home["settings"], erasure_home["person"]
    out = next_night["out"]
    assert "month 2026-12-01" in out and "downstream" in out

    with duckdb.connect(str(s.identifiable_db), read_only=True) as con:
        q = con.execute("SELECT line, reason, raw_text FROM ops.quarantine WHERE source_file LIKE ? ORDER BY line",
                        [f"%{NEW_MONTH_DROP}"]).fetchall()
        loaded = con.execute("SELECT attendance_id FROM raw.nhs__ae_attendances WHERE _source_file LIKE ?",
                             [f"%{NEW_MONTH_DROP}"]).fetchall()
        log = con.execute("SELECT rows_received, rows_loaded, rows_quarantined FROM ops.load_log "
                          "WHERE source_file LIKE ?", [f"%{NEW_MONTH_DROP}"]).fetchall()
    # same NHS number (other spelling); same name + DOB without NHS number; their malformed line: all three
    # quarantined as erased_or_objected, with no raw text; the stranger on line 4 loads
    assert q == [(1, "erased_or_objected", None), (2, "erased_or_objected", None), (3, "erased_or_objected", None)]
    assert loaded == [("AE900000004",)]
    assert log == [(4, 1, 3)]
    needles, pairs = _needles(s, person, extra_ids=[f"nhs.ae_attendances:AE90000000{i}" for i in (1, 2, 3)])
    assert scan_home(s.home, needles, pairs, exempt=_exempt(s, person)) == {}
    # the stranger reached the warehouse, so the scan would have found the others had they been loaded
    assert scan_home(s.home, [record_key(s, "nhs.ae_attendances:AE900000004")], [])


def test_an_opt_out_added_on_the_day_of_a_new_drop_applies_on_that_nightly(erasure_home, next_night):
    # (an opt-out list changed with no new drop at all plans the rebuild by itself: tests/attack/test_review_findings.py
    # test_a_changed_opt_out_list_alone_plans_a_full_downstream_rebuild_with_no_new_drop)
    s = erasure_home["settings"]
    patient, needles, lines = next_night["patient"], next_night["opt_out_needles"], next_night["opt_out_lines"]
    # before the night their A&E records were in the warehouse, so the scan below would see them
    assert any(k.startswith("warehouse.duckdb:src.nhs__ae_attendances") for k in next_night["opt_out_before"])

    # none of their A&E records anywhere after the plain nightly: zone, warehouse, marts, published, Dagster, MLflow
    assert scan_home(s.home, needles) == {}
    with duckdb.connect(str(s.identifiable_db), read_only=True) as con:
        nhs_col = con.execute("SELECT count(*) FROM raw.nhs__ae_attendances WHERE "
                              "replace(replace(nhs_number, ' ', ''), '-', '') = ?", [patient["nhs"]]).fetchone()[0]
        opted = set(con.execute("SELECT source_file, line FROM ops.quarantine WHERE partner = 'nhs' "
                                "AND reason = 'national_data_opt_out' AND raw_text IS NULL").fetchall())
        quarantined = [x for x in lines if x in opted]
        accounted = con.execute("SELECT sum(rows_received) = sum(rows_loaded) + sum(rows_quarantined) "
                                "FROM ops.load_log WHERE partner = 'nhs'").fetchone()[0]
    assert nhs_col == 0
    assert quarantined == lines and lines                  # each physical line is still accounted for
    assert accounted
    # applied once: the next nightly has nothing to do
    assert "nothing to refresh" in _cli("refresh", "--home", str(s.home))


# --- keyed hashes and the identity tokens ---------------------------------------------------------------------

def test_record_hashes_are_keyed(tmp_path, monkeypatch):
    s = get_settings(home=tmp_path / "h")
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", KEY)
    a = record_hash(s, "police", "person_records", "PR-000123")
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", KEY.replace("attack", "other0"))
    b = record_hash(s, "police", "person_records", "PR-000123")
    assert a != b
    assert hashlib.sha256(b"police.person_records:PR-000123").hexdigest() not in (a, b)


_names = st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzéÖ' -"), min_size=1, max_size=12).filter(
    lambda t: any(c.isalpha() for c in t))


@hsettings(max_examples=60, deadline=None)
@given(given_name=_names, family=_names, dob=st.dates(dt.date(1920, 1, 1), dt.date(2025, 1, 1)),
       digits=st.integers(0, 10**10 - 1).map(lambda n: f"{n:010d}"), sep=st.sampled_from(["", " ", "-"]),
       noise=st.sampled_from(["", "  ", "\t"]))
def test_ingest_recognises_the_person_as_erase_recorded_them(given_name, family, dob, digits, sep, noise):
    """Whatever the spelling on arrival (case, accents, spacing, NHS number separators), the per-row check
    gives the same tokens erase() stored from the normalised person record, and a stranger gives none."""
    from orchestration.lib.pseudonymise import normalise_name

    key = KEY.encode()
    stored = _tokens_for_key(key, nhs=digits, given=normalise_name(given_name), family=normalise_name(family),
                             dob=dob)
    ex = Exclusions(key=key, identities=frozenset(stored))
    spaced = sep.join([digits[:3], digits[3:6], digits[6:]])
    assert ex.person(nhs_number=noise + spaced + noise)
    assert ex.person(given_name=noise + given_name.upper() + noise, family_name=family.lower(), date_of_birth=dob)
    assert not ex.person(nhs_number=str(int(digits[0]) ^ 1) + digits[1:])
    assert not ex.person(given_name=given_name, family_name=family, date_of_birth=dob + dt.timedelta(days=1))


def _tokens_for_key(key, *, nhs, given, family, dob):
    from orchestration.lib.governance.erasure import _tokens_for

    return _tokens_for(key, nhs_number=nhs, given_name=given, family_name=family, date_of_birth=dob)


@hsettings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=16, max_size=100), kind=st.sampled_from(["nhs_number", "erasure_record"]),
       text=st.text(max_size=40))
def test_the_fast_hmac_is_the_pseudonymisers_token(key, kind, text):
    from orchestration.lib.governance.erasure import _hmac_hex
    from orchestration.lib.pseudonymise import Pseudonymiser

    assert _hmac_hex(key, kind, text) == (Pseudonymiser(key).token(kind, text) or _hmac_hex(key, kind, text))
    assert _hmac_hex(key, kind, text) == hmac.new(key, f"{kind}\x1f{text}".encode(), hashlib.sha256).hexdigest()


def test_erase_and_ingest_use_the_same_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", KEY)
    s = get_settings(home=tmp_path / "h")
    stored = _identity_tokens(s, nhs_number="9434765919", given_name="ZOE", family_name="O'BRIEN",
                              date_of_birth=dt.date(1990, 2, 3))
    ex = Exclusions(key=load_key(s), identities=frozenset(stored))
    assert ex.person(nhs_number="943 476 5919")
    assert ex.person(given_name=" zoë ", family_name="o'brien", date_of_birth="1990-02-03")
    assert not Exclusions().person(nhs_number="9434765919")     # an empty list matches no one, hashes nothing
    assert not load_exclusions(s)                               # no governance file: empty


def test_legacy_unkeyed_entries_are_still_honoured(tmp_path, monkeypatch):
    """Entries written before keyed hashes cannot be re-keyed (the record id is not known): ingest still
    honours them, and they are marked as such in the list."""
    from orchestration.lib.feeds import ingest
    from orchestration.lib.governance.erasure import governance_db
    from tests.governance.test_opt_out import _home

    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", KEY)
    s, feeds = _home(tmp_path, opt_out=False)
    gdb = governance_db(s)
    gdb.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(gdb)) as con:  # the pre-#22 table and one of its sha256 record entries
        con.execute("CREATE TABLE erasures (erasure_id VARCHAR, erased_at TIMESTAMP, kind VARCHAR, value_hash "
                    "VARCHAR, reason VARCHAR, requested_by VARCHAR, proof_hash VARCHAR)")
        con.execute("INSERT INTO erasures VALUES ('e1', now(), 'record', ?, 'old', 'dpo', 'p')",
                    [hashlib.sha256(b"nhs.ae_attendances:A1").hexdigest()])
    ex = load_exclusions(s)
    assert ex.legacy_records and not ex.records
    assert ingest(s, feeds_dir=feeds).ok
    with duckdb.connect(str(s.identifiable_db), read_only=True) as con:
        assert con.execute("SELECT attendance_id FROM raw.nhs__ae_attendances").fetchall() == [("A2",)]
        assert con.execute("SELECT reason, raw_text FROM ops.quarantine").fetchall() == [("erased_or_objected", None)]
