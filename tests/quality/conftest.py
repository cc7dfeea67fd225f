"""Small hand-made raw tables for the quality suites: a clean feed and one with known defects."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from expectations.suite import load_suites


def valid_nhs(seed: int) -> str:
    """A 10-digit NHS number with a correct modulus-11 check digit (check digit 10 is skipped)."""
    base = 400000000 + seed * 7919
    while True:
        digits = f"{base:09d}"
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(digits)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            s = digits + str(check)
            return f"{s[:3]} {s[3:6]} {s[6:]}"
        base += 1


def ae_frame(n: int = 40, partition: str = "2025-03-01") -> pd.DataFrame:
    """A clean A&E partition: every value valid, ids unique, events in the month before the drop."""
    ids = [f"AE{i:05d}" for i in range(n)]
    drop = pd.Timestamp(partition) + pd.Timedelta(days=3)
    frame = pd.DataFrame({
        "attendance_id": ids,
        "nhs_number": [valid_nhs(i) for i in range(n)],
        "forename": ["Ann", "Bob", "Cara", "Dev"] * (n // 4),
        "surname": ["Smith", "Jones", "Khan", "Patel"] * (n // 4),
        "date_of_birth": pd.to_datetime(["1980-01-02", "1975-06-30", "2001-12-12", "1990-03-04"] * (n // 4)),
        "sex": ["1", "2", "9", "1"] * (n // 4),
        "ethnic_category": ["A", "C", "Z", "99"] * (n // 4),
        "postcode": ["SH1 2AB", "SH12 3CD", "S1 4EF", "SH3 9GH"] * (n // 4),
        "arrival_datetime": pd.Timestamp(partition) - pd.Timedelta(days=10) + pd.to_timedelta(range(n), unit="h"),
        "chief_complaint_snomed": ["125605004"] * n,
        "attendance_source": ["01"] * n,
        "discharge_destination": ["306689006"] * n,
        "acuity": pd.array([1, 2, 3, 4, 5] * (n // 5), dtype="int64"),
        "_record_id": ids,
        "_partition": pd.Timestamp(partition),
        "_source_file": f"landing/nhs/ae_attendances/{drop.date()}.jsonl",
        "_line": range(1, n + 1),
        "_loaded_at": pd.Timestamp("2025-03-04 02:00"),
    })
    frame["date_of_birth"] = frame["date_of_birth"].astype("datetime64[us]")
    frame["arrival_datetime"] = frame["arrival_datetime"].astype("datetime64[us]")
    return frame


@pytest.fixture(scope="session")
def suites():
    return {s.name: s for s in load_suites()}


@pytest.fixture
def ae_db(tmp_path):
    """An identifiable-zone DuckDB with a clean ``raw.nhs__ae_attendances`` of 4 monthly partitions,
    their load log, and a few link tables."""
    path = tmp_path / "identifiable.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA raw; CREATE SCHEMA ops; CREATE SCHEMA link")
    frames = [ae_frame(40, p) for p in ("2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01")]
    for i, f in enumerate(frames):  # unique ids across months
        f["attendance_id"] = f["_record_id"] = [f"M{i}-{x}" for x in f["attendance_id"]]
    all_rows = pd.concat(frames, ignore_index=True)
    con.register("f", all_rows)
    con.execute("CREATE TABLE raw.nhs__ae_attendances AS SELECT * FROM f")
    con.execute("""CREATE TABLE ops.load_log AS SELECT 'nhs' AS partner, 'ae_attendances' AS feed,
                   "_partition"::DATE AS "partition", any_value(_source_file) AS source_file, 'x' AS sha256,
                   count(*) + 2 AS rows_received, count(*) AS rows_loaded, 2 AS rows_quarantined,
                   now() AS loaded_at, 'loaded' AS status, NULL AS note FROM f GROUP BY 3""")
    con.execute("""CREATE TABLE link.address_matches AS SELECT 'nhs.ae_attendances:' || _record_id AS record_id,
                   CASE WHEN _line % 4 = 0 THEN NULL ELSE 100 END AS uprn, 'E01000001' AS lsoa_code,
                   1.0 AS match_score, CASE WHEN _line % 4 = 0 THEN 'none' ELSE 'exact' END AS match_method
                   FROM f""")
    con.execute("""CREATE TABLE link.person_index AS
                   SELECT 'nhs.ae_attendances:' || _record_id AS record_id, 'p' || _line AS person_id FROM f
                   UNION ALL SELECT 'police.person_records:R' || _line, 'p' || _line FROM f WHERE _line <= 10""")
    con.unregister("f")
    yield con
    con.close()
