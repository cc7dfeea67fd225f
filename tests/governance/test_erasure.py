"""Erase one person: gone from every table of every DuckDB file and every published file, audited, excluded."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance.audit import read_events, verify
from orchestration.lib.governance.erasure import (
    erase,
    excluded_person_keys,
    is_excluded_person,
    is_excluded_record,
)

from .conftest import PEOPLE


def scan_everything(home: Path, needles: list[str]) -> dict[str, int]:
    """Every cell of every table in every DuckDB file and every Parquet/CSV under ``home``, as text."""
    hits: dict[str, int] = {}
    con = duckdb.connect(":memory:")
    for i, db in enumerate(sorted(home.rglob("*.duckdb"))):
        con.execute(f"ATTACH '{db}' AS db{i} (READ_ONLY)")
        for schema, table in con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = ?",
                [f"db{i}"]).fetchall():
            rel = f'db{i}."{schema}"."{table}"'
            for needle in needles:
                n = con.execute(f"SELECT count(*) FROM {rel} t WHERE contains(CAST(t AS VARCHAR), ?)",
                                [needle]).fetchone()[0]
                if n:
                    hits[f"{db.name}:{schema}.{table}:{needle}"] = n
    for f in sorted(p for d in ("published", "review", "identifiable") for p in home.joinpath(d).rglob("*")):
        reader = {".parquet": "read_parquet", ".csv": "read_csv_auto"}.get(f.suffix)
        if reader:
            for needle in needles:
                n = con.execute(f"SELECT count(*) FROM {reader}(?) t WHERE contains(CAST(t AS VARCHAR), ?)",
                                [str(f), needle]).fetchone()[0]
                if n:
                    hits[f"{f.name}:{needle}"] = n
    con.close()
    return hits


def test_erase_one_person_removes_them_from_every_table(zone_home):
    s, keys = zone_home["settings"], zone_home["keys"]
    alice, bob = PEOPLE["P1"], PEOPLE["P2"]
    alice_needles = ["PR-1'", "Alice", alice["nhs"], keys["P1"], keys["police.person_records:PR-1"],
                     keys["nhs.ae_attendances:AE-1"], "police.person_records:PR-1", "nhs.ae_attendances:AE-1"]
    # PLACELINK_ENGINE=spark: Splink's intermediate tables (clear names) left as Parquet in the identifiable zone,
    # keyed by Splink's own ids
    checkpoint = s.spark_identifiable / "checkpoints" / "__splink__df_concat_with_tf_1a2b" / "part-0.parquet"
    checkpoint.parent.mkdir(parents=True)
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT 'police-x1' AS unique_id, 'Alice' AS given_name) TO '{checkpoint}' (FORMAT PARQUET)")
    before = scan_everything(s.home, [n.rstrip("'") for n in alice_needles])
    assert any("identifiable.duckdb:raw.police__person_records" in k for k in before)
    assert "part-0.parquet:Alice" in before
    assert any("warehouse.duckdb:src.nhs__ae_attendances" in k for k in before)
    assert any("person_extract.parquet" in k for k in before)

    proof = erase(s, partner="police", record_id="PR-1", requested_by="dpo@police.example")

    # everything that held Alice, in the identifiable zone, the warehouse and published files, is empty of her
    # (record ids are searched as whole values so PR-1 does not match PR-10)
    after = scan_everything(s.home, [n.rstrip("'") for n in alice_needles if not n.startswith("PR-")])
    leftovers = {k: v for k, v in after.items() if not k.startswith("governance.duckdb:main.erasures")}
    assert leftovers == {}, leftovers
    con = duckdb.connect(str(s.identifiable_db), read_only=True)
    assert con.execute("SELECT count(*) FROM raw.police__person_records WHERE _record_id = 'PR-1'").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM ops.quarantine WHERE raw_text LIKE 'PR-10,%'").fetchone()[0] == 1
    # Bob (same household) is untouched
    assert con.execute("SELECT count(*) FROM link.person_records WHERE given_name = 'Bob'").fetchone()[0] == 3
    assert con.execute("SELECT count(*) FROM link.household_index").fetchone()[0] == 3
    con.close()
    assert scan_everything(s.home, [bob["nhs"], keys["P2"]])

    deleted = {(d["table"], d["column"]): d["rows"] for d in proof.deleted}
    assert deleted[("raw.police__person_records", "_record_id")] == 1
    assert deleted[("raw.nhs__ae_attendances", "_record_id")] == 2       # AE-1 and AE-3: the same person
    assert deleted[("link.person_index", "record_id")] == 3
    assert deleted[("ops.quarantine", "raw_text")] == 1
    assert deleted[("src.nhs__ae_attendances", "person_key")] == 2
    assert deleted[("marts.person_footprint", "person_key")] == 1
    assert deleted[("published/person_extract.parquet", "keys/record ids")] == 1
    assert deleted[("review/person_review_queue.csv", "keys/record ids")] == 1
    assert deleted[("spark/checkpoints (Splink's scratch on Spark)", "files")] == 1
    assert (s.spark_identifiable / "checkpoints").is_dir() and not checkpoint.exists()
    assert "Bob" in (s.home / "review" / "person_review_queue.csv").read_text()
    assert proof.remaining == [] and len(proof.proof_hash) == 64

    event = read_events(s, action="erase")[-1]
    assert event["details"]["proof_hash"] == proof.proof_hash
    assert event["details"]["request"]["requested_by"] == "dpo@police.example"
    assert verify(s).ok
    # the audit log and exclusion list never hold her clear identifiers
    assert scan_everything(s.home, ["Alice", "Smith", alice["nhs"], "PR-1,"]) == {}

    # future ingest / linkage / training honour the exclusion list
    assert is_excluded_record(s, "police", "person_records", "PR-1")
    assert is_excluded_record(s, "nhs", "ae_attendances", "AE-3")
    assert not is_excluded_record(s, "police", "person_records", "PR-2")
    assert is_excluded_person(s, nhs_number="943 476 5919")
    assert is_excluded_person(s, given_name="alice", family_name="SMITH", date_of_birth="1990-02-03")
    assert not is_excluded_person(s, nhs_number=bob["nhs"])
    assert keys["P1"] in excluded_person_keys(s) and keys["P2"] not in excluded_person_keys(s)


def test_erase_by_person_key(zone_home):
    s, keys = zone_home["settings"], zone_home["keys"]
    proof = erase(s, person_key=keys["P2"])
    assert proof.request["records"] == 3
    assert scan_everything(s.home, ["Bob", PEOPLE["P2"]["nhs"]]) == {}


def test_dry_run_deletes_nothing(zone_home):
    s = zone_home["settings"]
    proof = erase(s, partner="police", record_id="PR-1", dry_run=True)
    assert proof.total > 0
    assert scan_everything(s.home, ["Alice"])
    assert not is_excluded_record(s, "police", "person_records", "PR-1")
    assert read_events(s, action="erase_dry_run")


def test_unknown_record_says_where_it_looked(zone_home):
    with pytest.raises(PlacelinkError, match="no record 'PR-404' from partner 'police'") as exc:
        erase(zone_home["settings"], partner="police", record_id="PR-404")
    assert "raw.police__*" in str(exc.value)
    with pytest.raises(PlacelinkError, match="say who to erase"):
        erase(zone_home["settings"], record_id="PR-1")


def test_erasure_reaches_quarantined_lines_review_files_and_analyst_copies(zone_home):
    """Lines quarantined before they had a record id of the person (found by NHS number, or by name and date of
    birth together), the clerical review files inside the zone, and the analysts' role files."""
    from orchestration.lib.governance.roles import refresh_role_files, role_dir
    from orchestration.lib.matching.run import REVIEW_DECISIONS, REVIEW_QUEUE, review_dir

    s, keys = zone_home["settings"], zone_home["keys"]
    con = duckdb.connect(str(s.identifiable_db))
    con.execute("INSERT INTO ops.quarantine VALUES "
                "('nhs', 'ae_attendances', '2025-05-01', 'a.jsonl', 4, 'missing_record_id', "
                "'{\"attendance_id\": null, \"nhs_number\": \"943 476 5919\"}', now()), "
                "('police', 'person_records', '2025-07-01', 'x.csv', 11, 'missing_record_id', "
                "',alice,SMITH,03/02/1990', now()), "
                "('police', 'person_records', '2025-07-01', 'x.csv', 12, 'missing_record_id', "
                "',Alice,Jones,03/02/1990', now()), "          # another Alice, another family: kept
                "('nhs', 'ae_attendances', '2025-05-01', 'a.jsonl', 5, 'missing_record_id', "
                "'{\"nhs_number\": \"94347659190\"}', now())")  # a longer number that contains hers: kept
    con.close()
    folder = review_dir(s)
    folder.mkdir(parents=True)
    (folder / REVIEW_QUEUE).write_text("record_id_l,record_id_r,given_name_l\n"
                                       "police.person_records:PR-1,nhs.ae_attendances:AE-2,Alice\n"
                                       "police.person_records:PR-2,nhs.ae_attendances:AE-2,Bob\n")
    (folder / REVIEW_DECISIONS).write_text("record_id_l,record_id_r,decision,reviewer,note\n"
                                           "nhs.ae_attendances:AE-1,police.person_records:PR-2,non_match,r,\n")
    duck = duckdb.connect(str(s.warehouse_db))
    duck.execute("CREATE TABLE marts.person_monthly_events AS SELECT person_key, 1 AS n FROM marts.person_footprint")
    duck.close()
    refresh_role_files(s)
    assert scan_everything(s.governance_dir, [keys["P1"]])          # the analyst copy holds her before

    proof = erase(s, partner="police", record_id="PR-1")

    deleted = {(d["table"], d["column"]): d["rows"] for d in proof.deleted}
    assert deleted[("ops.quarantine", "raw_text (identifiers)")] == 2
    assert deleted[("identifiable/review/person_review_queue.csv", "keys/record ids")] == 1
    assert deleted[("identifiable/review/person_review_decisions.csv", "keys/record ids")] == 1
    assert deleted[("analyst_person.duckdb:marts.person_monthly_events", "person_key")] == 1
    con = duckdb.connect(str(s.identifiable_db), read_only=True)
    kept = con.execute("SELECT line FROM ops.quarantine WHERE line IN (4, 5, 11, 12) ORDER BY line").fetchall()
    con.close()
    assert kept == [(5,), (12,)]
    assert "PR-1" not in (folder / REVIEW_QUEUE).read_text() and "Bob" in (folder / REVIEW_QUEUE).read_text()
    assert scan_everything(role_dir(s), [keys["P1"]]) == {}
    assert scan_everything(role_dir(s), [keys["P2"]])         # Bob's rows are rebuilt into the copy
    assert {c["where"] for c in proof.checked} == {"dagster", "mlflow", "identifiable.duckdb (bytes)",
                                                   "warehouse.duckdb (bytes)"}
    assert proof.remaining == []


def test_a_key_left_in_dagster_storage_fails_the_erasure_loudly(zone_home):
    s, keys = zone_home["settings"], zone_home["keys"]
    (s.dagster_home / "storage").mkdir(parents=True, exist_ok=True)
    (s.dagster_home / "storage" / "run.log").write_text(f"metadata: {keys['police.person_records:PR-1']}\n")
    with pytest.raises(PlacelinkError, match="left rows behind") as exc:
        erase(s, partner="police", record_id="PR-1")
    assert "dagster/storage/run.log" in str(exc.value)


def test_erasure_takes_the_review_pages_drawn_from_the_queue(zone_home):
    """The clerical review pages (Splink's waterfall and comparison viewer) show both records' names and dates of
    birth; they are drawn from the queue, so erasing a person in the queue removes them (the next matching run
    draws them again without the person). Erasing someone not in the queue leaves them."""
    from orchestration.lib.matching.pictures import COMPARISON_VIEWER, WATERFALL_PREFIX
    from orchestration.lib.matching.run import REVIEW_QUEUE, review_dir

    s = zone_home["settings"]
    folder = review_dir(s)
    folder.mkdir(parents=True)
    pages = [folder / f"{WATERFALL_PREFIX}0001.html", folder / COMPARISON_VIEWER]
    for page in pages:
        page.write_text("<html>bob jones 1985-07-08</html>")
    (folder / REVIEW_QUEUE).write_text("record_id_l,record_id_r,given_name_l\n"
                                       "police.person_records:PR-2,nhs.ae_attendances:AE-2,Bob\n")
    erase(s, partner="police", record_id="PR-1")  # Alice: not in the queue
    assert all(p.exists() for p in pages)

    proof = erase(s, partner="police", record_id="PR-2")

    assert not any(p.exists() for p in pages)
    assert {d["table"] for d in proof.deleted} >= {str(p.relative_to(s.home)) for p in pages}
    assert proof.remaining == []
