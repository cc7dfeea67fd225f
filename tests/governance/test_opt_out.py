"""NHS national data opt-out: an opted-out patient's NHS number (or anything else about them) is never loaded.

Runs the real ingest stage (``orchestration.lib.feeds.ingest``) on a one-feed contract with
``national_data_opt_out: true`` and then scans every table of every DuckDB file in the home.
"""

from __future__ import annotations

import json

import duckdb

from orchestration.lib.config import get_settings
from orchestration.lib.feeds import ingest

CONTRACT = """
partner: {id: nhs, name: Shire NHS Trust, owner: ig@nhs.example}
feeds:
  - id: ae_attendances
    description: A&E attendances.
    format: {type: jsonl, encoding: utf-8}
    record_id: attendance_id
    event_date: {column: arrival_datetime}
    columns:
      - {name: attendance_id, type: string, required: true}
      - {name: nhs_number, type: string, identifier: direct}
      - {name: forename, type: string, identifier: direct}
      - {name: surname, type: string, identifier: direct}
      - {name: arrival_datetime, type: datetime, required: true}
    person: {given_name: forename, family_name: surname, nhs_number: nhs_number}
    agreement:
      id: DSA-NHS-TEST
      purposes: [place_indicators]
      lawful_basis: {article_6: "6(1)(e) public task", special_category: true,
                     dpa_2018_condition: "DPA 2018 Sch.1 Part 1 para 2"}
      allowed_columns: [attendance_id, nhs_number, forename, surname, arrival_datetime]
      retention_months: 24
      national_data_opt_out: {opt_out}
"""
ROWS = [
    {"attendance_id": "A1", "nhs_number": "943 476 5919", "forename": "Zoe", "surname": "Keep",
     "arrival_datetime": "2025-03-02T10:00:00"},
    {"attendance_id": "A2", "nhs_number": "401-023-2137", "forename": "Olive", "surname": "Optout",
     "arrival_datetime": "2025-03-03T11:30:00"},
]


def _home(tmp_path, opt_out: bool):
    s = get_settings(home=tmp_path / "home").ensure()
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "nhs.yml").write_text(CONTRACT.replace("{opt_out}", "true" if opt_out else "false"))
    s.reference.mkdir(parents=True, exist_ok=True)
    (s.reference / "nhs_opt_outs.csv").write_text("nhs_number\n4010232137\n")
    drop = s.landing / "nhs" / "ae_attendances" / "2025-03-04.jsonl"
    drop.parent.mkdir(parents=True)
    drop.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    return s, feeds


def _cells_containing(home, needles) -> dict[str, int]:
    con = duckdb.connect(":memory:")
    hits = {}
    for i, db in enumerate(sorted(home.rglob("*.duckdb"))):
        con.execute(f"ATTACH '{db}' AS d{i} (READ_ONLY)")
        for schema, table in con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                                         "WHERE table_catalog = ?", [f"d{i}"]).fetchall():
            for needle in needles:
                n = con.execute(f'SELECT count(*) FROM d{i}."{schema}"."{table}" t '
                                "WHERE regexp_replace(CAST(t AS VARCHAR), '[ -]', '', 'g') ILIKE ?",
                                [f"%{needle}%"]).fetchone()[0]
                if n:
                    hits[f"{db.name}:{schema}.{table}:{needle}"] = n
    con.close()
    return hits


def test_opted_out_nhs_numbers_are_never_loaded(tmp_path):
    s, feeds = _home(tmp_path, opt_out=True)
    report = ingest(s, feeds_dir=feeds)
    assert report.ok, report.failures
    assert _cells_containing(s.home, ["4010232137", "Olive", "Optout"]) == {}
    # the other patient loads, so the scan would have found the opted-out one had it been loaded
    assert _cells_containing(s.home, ["9434765919", "Zoe"])


def test_control_without_the_agreement_flag_the_number_loads(tmp_path):
    s, feeds = _home(tmp_path, opt_out=False)
    assert ingest(s, feeds_dir=feeds).ok
    assert _cells_containing(s.home, ["4010232137"])


def test_an_erased_record_is_not_loaded_again(tmp_path, monkeypatch):
    """Erase a patient, then rebuild the feed from the same landing drop: the exclusion list keeps them out."""
    from orchestration.lib.governance.erasure import erase

    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "governance-tests-key-0123456789abcdef")
    s, feeds = _home(tmp_path, opt_out=False)
    assert ingest(s, feeds_dir=feeds).ok
    assert _cells_containing(s.home, ["Zoe"])
    erase(s, partner="nhs", record_id="A1")
    assert _cells_containing(s.home, ["Zoe", "9434765919"]) == {}

    report = ingest(s, feeds_dir=feeds, rebuild=True)
    assert report.ok, report.failures
    assert _cells_containing(s.home, ["Zoe", "9434765919"]) == {}
    assert _cells_containing(s.home, ["Olive"])  # the rest of the drop still loads


def test_ingest_records_each_partition_in_the_audit_trail(tmp_path):
    from orchestration.lib.governance.audit import read_events, verify

    s, feeds = _home(tmp_path, opt_out=True)
    assert ingest(s, feeds_dir=feeds).ok
    [event] = read_events(s, action="ingest")
    assert event["target"] == "raw.nhs__ae_attendances" and event["agreement_id"] == "DSA-NHS-TEST"
    assert event["details"]["rows_loaded"] == 1 and event["details"]["rows_quarantined"] == 1
    assert event["details"]["quarantined_by_reason"] == {"national_data_opt_out": 1}
    assert verify(s).ok


def test_pseudonymisation_is_audited(tmp_path, monkeypatch):
    from orchestration.lib.feeds.warehouse_sources import build_warehouse_sources
    from orchestration.lib.governance.audit import read_events

    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "governance-tests-key-0123456789abcdef")
    s, feeds = _home(tmp_path, opt_out=True)
    assert ingest(s, feeds_dir=feeds).ok
    build_warehouse_sources(s, feeds_dir=feeds)
    [event] = read_events(s, action="pseudonymise")
    assert event["target"] == "src.nhs__ae_attendances" and event["details"]["rows"] == 1
    assert event["agreement_id"] == "DSA-NHS-TEST"


def _purge(s, feeds):
    from orchestration.lib.contracts import load_contracts
    from orchestration.lib.governance.erasure import purge_excluded

    con = duckdb.connect(":memory:")
    con.execute(f"ATTACH '{s.identifiable_db}' AS idz")
    try:
        return purge_excluded(con, s, db="idz", feeds=[f for c in load_contracts(feeds) for f in c.feeds])
    finally:
        con.close()


def test_an_opt_out_added_after_loading_is_purged_by_the_second_line(tmp_path, monkeypatch):
    """The list grows after the patient was loaded: matching's purge moves their rows to quarantine (no raw
    text), the load log still adds up, and an unchanged list is not applied twice."""
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "governance-tests-key-0123456789abcdef")
    s, feeds = _home(tmp_path, opt_out=True)
    assert ingest(s, feeds_dir=feeds).ok
    assert _cells_containing(s.home, ["9434765919", "Zoe"])
    (s.reference / "nhs_opt_outs.csv").write_text("nhs_number\n4010232137\n943 476 5919\n")

    out = _purge(s, feeds)

    assert out["purged"] == {"national_data_opt_out": 1} and not out["skipped"]
    assert _cells_containing(s.home, ["9434765919", "Zoe"]) == {}
    con = duckdb.connect(str(s.identifiable_db), read_only=True)
    assert con.execute("SELECT line, reason, raw_text FROM ops.quarantine ORDER BY line").fetchall() == [
        (1, "national_data_opt_out", None), (2, "national_data_opt_out", None)]
    assert con.execute("SELECT rows_received, rows_loaded, rows_quarantined FROM ops.load_log").fetchall() == [
        (2, 0, 2)]
    con.close()
    assert _purge(s, feeds)["skipped"]


def test_an_unlinked_record_of_an_erased_person_is_purged_by_the_second_line(tmp_path, monkeypatch):
    """A record loaded before the erasure that linkage never tied to the person (no person index here) is not
    reached by following the links; erase() runs the second line at once and finds it by the keyed NHS-number
    token; matching's run of it then has nothing left to do."""
    from orchestration.lib.governance.erasure import erase

    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "governance-tests-key-0123456789abcdef")
    s, feeds = _home(tmp_path, opt_out=False)
    assert ingest(s, feeds_dir=feeds).ok
    con = duckdb.connect(str(s.identifiable_db))   # the same patient again under another attendance id
    con.execute("INSERT INTO raw.nhs__ae_attendances SELECT * REPLACE ('A9' AS attendance_id, 'A9' AS _record_id, "
                "99 AS _line) FROM raw.nhs__ae_attendances WHERE attendance_id = 'A1'")
    con.execute("INSERT INTO link.person_records SELECT * REPLACE ('nhs.ae_attendances:A9' AS record_id) "
                "FROM link.person_records WHERE record_id = 'nhs.ae_attendances:A1'")
    con.close()

    proof = erase(s, partner="nhs", record_id="A1")

    assert proof.request["records"] == 1                       # the links knew of A1 only
    assert [d["rows"] for d in proof.deleted if "not linked" in d["table"]] == [1]   # A9, by its NHS number
    assert _cells_containing(s.home, ["9434765919", "Zoe"]) == {}
    assert _cells_containing(s.home, ["Olive"])
    con = duckdb.connect(str(s.identifiable_db), read_only=True)
    assert con.execute("SELECT line, reason, raw_text FROM ops.quarantine").fetchall() == [
        (99, "erased_or_objected", None)]
    con.close()
    assert _purge(s, feeds)["purged"] == {}                  # matching's run finds nothing left
