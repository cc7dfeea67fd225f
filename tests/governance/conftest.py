"""A tiny home in the zone layout (identifiable zone, warehouse, published, landing, two feed contracts).

Two people share a household: Alice (police PR-1, NHS AE-1, AE-3) and Bob (police PR-2, NHS AE-2). Events are
spread over years so retention has something to delete. Keys come from the same functions erasure uses.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from orchestration.lib.config import get_settings
from orchestration.lib.governance.erasure import _person_key, _record_key

POLICE = """
partner: {id: police, name: Shire Constabulary, owner: im@police.example}
feeds:
  - id: person_records
    description: People in police occurrences.
    format: {type: csv, encoding: windows-1252, delimiter: ","}
    record_id: record_ref
    event_date: {column: occurrence_date}
    columns:
      - {name: record_ref, type: string, required: true}
      - {name: forename, type: string, identifier: direct}
      - {name: occurrence_date, type: date, format: "%d/%m/%Y"}
    person: {given_name: forename}
    agreement:
      id: DSA-POL-TEST
      purposes: [place_indicators, risk_modelling]
      lawful_basis: {article_6: "6(1)(e) public task", law_enforcement: true,
                     dpa_2018_condition: "DPA 2018 Part 3 s.35"}
      allowed_columns: [record_ref, forename, occurrence_date]
      retention_months: 72
      valid_to: 2030-12-31
"""

NHS = """
partner: {id: nhs, name: Shire NHS Trust, owner: ig@nhs.example}
feeds:
  - id: ae_attendances
    description: A&E attendances.
    format: {type: jsonl}
    record_id: attendance_id
    event_date: {column: arrival_datetime}
    columns:
      - {name: attendance_id, type: string, required: true}
      - {name: nhs_number, type: string, identifier: direct}
      - {name: arrival_datetime, type: datetime}
    person: {nhs_number: nhs_number}
    agreement:
      id: DSA-NHS-TEST
      purposes: [place_indicators]
      lawful_basis: {article_6: "6(1)(e) public task", special_category: true}
      allowed_columns: [attendance_id, nhs_number, arrival_datetime]
      retention_months: 24
      valid_to: 2025-01-31
      national_data_opt_out: true
"""

PEOPLE = {  # person_id -> identifiers
    "P1": {"given": "Alice", "family": "Smith", "dob": "1990-02-03", "nhs": "9434765919"},
    "P2": {"given": "Bob", "family": "Jones", "dob": "1985-07-08", "nhs": "9434765870"},
}
# (partner, feed, raw record id, person_id, event date)
RECORDS = [
    ("police", "person_records", "PR-1", "P1", dt.date(2025, 6, 1)),
    ("police", "person_records", "PR-2", "P2", dt.date(2025, 6, 2)),
    ("police", "person_records", "PR-9", "P2", dt.date(2018, 1, 5)),   # older than 72 months at TODAY
    ("nhs", "ae_attendances", "AE-1", "P1", dt.date(2025, 5, 1)),
    ("nhs", "ae_attendances", "AE-2", "P2", dt.date(2023, 11, 30)),     # older than 24 months at TODAY
    ("nhs", "ae_attendances", "AE-3", "P1", dt.date(2023, 12, 1)),      # exactly at the cutoff: kept
]
TODAY = dt.date(2025, 12, 1)


def build_zone_home(home: Path) -> dict:
    settings = get_settings(home=home).ensure()
    feeds = home / "feeds"
    feeds.mkdir(exist_ok=True)
    (feeds / "police.yml").write_text(POLICE)
    (feeds / "nhs.yml").write_text(NHS)

    con = duckdb.connect(str(settings.identifiable_db))
    con.execute("CREATE SCHEMA raw; CREATE SCHEMA ops; CREATE SCHEMA link")
    con.execute("CREATE TABLE raw.police__person_records (record_ref VARCHAR, forename VARCHAR, "
                "occurrence_date DATE, _record_id VARCHAR, _partition DATE, _source_file VARCHAR, _line INT)")
    con.execute("CREATE TABLE raw.nhs__ae_attendances (attendance_id VARCHAR, nhs_number VARCHAR, "
                "arrival_datetime TIMESTAMP, _record_id VARCHAR, _partition DATE, _source_file VARCHAR, _line INT)")
    con.execute("CREATE TABLE ops.quarantine (partner VARCHAR, feed VARCHAR, partition DATE, source_file VARCHAR, "
                "line INT, reason VARCHAR, raw_text VARCHAR, quarantined_at TIMESTAMP)")
    con.execute("CREATE TABLE ops.load_log (partner VARCHAR, feed VARCHAR, partition DATE, source_file VARCHAR, "
                "sha256 VARCHAR, rows_received INT, rows_loaded INT, rows_quarantined INT, loaded_at TIMESTAMP)")
    con.execute("CREATE TABLE link.person_records (record_id VARCHAR, source VARCHAR, given_name VARCHAR, "
                "family_name VARCHAR, date_of_birth DATE, sex VARCHAR, postcode VARCHAR, address VARCHAR, "
                "nhs_number VARCHAR, event_date DATE)")
    con.execute("CREATE TABLE link.person_index (record_id VARCHAR, person_id VARCHAR)")
    con.execute("CREATE TABLE link.household_index (record_id VARCHAR, household_id VARCHAR)")
    con.execute("CREATE TABLE link.address_matches (record_id VARCHAR, uprn BIGINT, lsoa_code VARCHAR)")

    wh = duckdb.connect(str(settings.warehouse_db))
    wh.execute("CREATE SCHEMA src; CREATE SCHEMA staging; CREATE SCHEMA intermediate; CREATE SCHEMA marts; "
               "CREATE SCHEMA published")
    for feed in ("police__person_records", "nhs__ae_attendances"):
        wh.execute(f"CREATE TABLE src.{feed} (record_key VARCHAR, person_key VARCHAR, household_key VARCHAR, "
                   "lsoa_code VARCHAR, event_date DATE, event_month DATE)")
        wh.execute(f"CREATE VIEW staging.stg_{feed}s AS SELECT * FROM src.{feed}")
    wh.execute("CREATE TABLE intermediate.int_events_joined_to_places (event_key VARCHAR, partner VARCHAR, "
               "feed VARCHAR, person_key VARCHAR, household_key VARCHAR, lsoa_code VARCHAR, event_date DATE)")
    wh.execute("CREATE TABLE marts.person_footprint (person_key VARCHAR, agencies INT)")
    wh.execute("CREATE TABLE marts.household_footprint (household_key VARCHAR, agencies INT)")
    wh.execute("CREATE TABLE marts.lsoa_monthly_indicators AS SELECT 'E01000001' lsoa_code, DATE '2025-06-01' AS "
               "\"month\", 'ae_attendance' indicator, 12 event_count")
    wh.execute("CREATE TABLE published.lsoa_counts AS SELECT 'E01000001' lsoa_code, 12 event_count")

    keys = {}
    for i, (partner, feed, rid, pid, day) in enumerate(RECORDS):
        person = PEOPLE[pid]
        link_id = f"{partner}.{feed}:{rid}"
        src_file = f"landing/{partner}/{feed}/{day.replace(day=1) + dt.timedelta(days=35):%Y-%m}-04.csv"
        if partner == "police":
            con.execute("INSERT INTO raw.police__person_records VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [rid, person["given"], day, rid, day.replace(day=1), src_file, i + 2])
        else:
            con.execute("INSERT INTO raw.nhs__ae_attendances VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [rid, person["nhs"], dt.datetime.combine(day, dt.time(10)), rid, day.replace(day=1),
                         src_file, i + 2])
        con.execute("INSERT INTO link.person_records VALUES (?, ?, ?, ?, ?, 'F', 'AB1 2CD', '1 High St', ?, ?)",
                    [link_id, f"{partner}.{feed}", person["given"], person["family"], person["dob"],
                     person["nhs"], day])
        con.execute("INSERT INTO link.person_index VALUES (?, ?)", [link_id, pid])
        con.execute("INSERT INTO link.household_index VALUES (?, 'H1')", [link_id])
        con.execute("INSERT INTO link.address_matches VALUES (?, 100012345, 'E01000001')", [link_id])
        pkey, rkey = _person_key(settings, pid), _record_key(settings, link_id)
        keys[link_id] = rkey
        keys[pid] = pkey
        wh.execute(f"INSERT INTO src.{partner}__{feed} VALUES (?, ?, 'hh', 'E01000001', ?, ?)",
                   [rkey, pkey, day, day.replace(day=1)])
        wh.execute("INSERT INTO intermediate.int_events_joined_to_places VALUES (?, ?, ?, ?, 'hh', 'E01000001', ?)",
                   [rkey, partner, feed, pkey, day])
    con.execute("INSERT INTO ops.quarantine VALUES ('police', 'person_records', '2025-07-01', 'x.csv', 9, "
                "'bad date', 'PR-1,Alice,31/02/2025', now()), ('police', 'person_records', '2025-07-01', 'x.csv', "
                "10, 'bad date', 'PR-10,Zed,31/02/2025', now()), ('police', 'person_records', '2018-02-01', "
                "'old.csv', 3, 'bad date', 'PR-0,Old,31/02/2018', now())")
    con.execute("INSERT INTO ops.load_log VALUES ('police', 'person_records', '2018-02-01', 'old.csv', 'abc', 1, 1, 0, "
                "now())")
    for pid in PEOPLE:
        wh.execute("INSERT INTO marts.person_footprint VALUES (?, 2)", [keys[pid]])
    wh.execute("INSERT INTO marts.household_footprint VALUES ('hh', 2)")
    con.close()
    wh.close()
    duckdb.sql(f"COPY (SELECT * FROM (VALUES ('{keys['P1']}', 'E01000001'), ('{keys['P2']}', 'E01000001')) "
               f"t(person_key, lsoa_code)) TO '{settings.published / 'person_extract.parquet'}' (FORMAT PARQUET)")
    duckdb.sql(f"COPY (SELECT 'E01000001' lsoa_code, 12 event_count) TO '{settings.published / 'lsoa_counts.csv'}' "
               "(FORMAT CSV, HEADER)")
    review = home / "review"
    review.mkdir()
    (review / "person_review_queue.csv").write_text(
        "record_id_l,record_id_r,given_name_l,given_name_r\n"
        "police.person_records:PR-1,nhs.ae_attendances:AE-1,Alice,\n"
        "police.person_records:PR-2,nhs.ae_attendances:AE-2,Bob,Bob\n")
    for partner, feed, name in [("police", "person_records", "2017-12-04.csv"),
                                ("police", "person_records", "2025-07-04.csv"),
                                ("nhs", "ae_attendances", "2023-11-04.jsonl"),
                                ("nhs", "ae_attendances", "2023-12-04.jsonl")]:
        folder = settings.landing / partner / feed
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x\n")
    return {"settings": settings, "feeds_dir": feeds, "keys": keys}


@pytest.fixture
def zone_home(tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "governance-tests-key-0123456789abcdef")
    return build_zone_home(tmp_path / "zhome")
