"""placelink-partner on a native export written at test time: what leaves, what stays, and that the encodings are
the clear model's normalisation, encoded (the real police contract switched to encoded linkage)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import duckdb
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st
from placelink_partner.cli import main

from orchestration.lib.matching.encoded_model import DICE_FOR_JW, dice_at_least
from orchestration.lib.matching.encoding import BLOOM_BITS, Encoder, dice, key_check_value
from tests.partner.conftest import PEOPLE, SECRET

ROOT = Path(__file__).resolve().parents[2]
_CON = duckdb.connect()


def _encode(folder: Path, *extra: str) -> tuple[int, Path]:
    (folder / "secret.txt").write_text(SECRET.hex())
    rc = main(["encode", "--contract", str(folder / "police.yml"), "--feed", "person_records", "--export",
               str(folder / "export.csv"), "--out", str(folder / "drop"), "--date", "2025-02-01",
               "--report", str(folder / "report"), "--secret-file", str(folder / "secret.txt"), *extra])
    return rc, folder / "drop"


def test_drop_holds_encodings_and_content_but_no_clear_identifier(partner_dir, capsys):
    rc, drop_dir = _encode(partner_dir)
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((drop_dir / "2025-02-01.manifest.json").read_text())
    drop = drop_dir / "2025-02-01.csv"
    assert manifest["rows_received"] == manifest["rows_encoded"] == 5 and manifest["rows_quarantined"] == 0
    assert manifest["sha256"] == hashlib.sha256(drop.read_bytes()).hexdigest()
    assert manifest["key_check"] == key_check_value(SECRET)
    text = drop.read_text().lower()
    for _ref, given_, family, dob, _sex, address, postcode in PEOPLE:
        for clear in (given_, family, dob, address, postcode, postcode.replace(" ", ""), "obrien", "rhodes"):
            if clear:
                assert clear.lower() not in text, "a clear identifier left the partner"
    df = pd.read_csv(drop, dtype=str).set_index("record_id")
    assert "notes" not in df.columns and "person_ref" not in df.columns and "forename" not in df.columns
    assert {"role", "offence_group", "occurrence_date"} <= set(df.columns)  # the agreement's content travels
    # the same person written two ways encodes the same (linkage's own normalisation ran first) ...
    one, two = df.loc["police.person_records:PR1"], df.loc["police.person_records:PR2"]
    for col in ("given_name", "family_name", "dob", "postcode", "given_name_bf", "family_name_bf"):
        assert one[col] == two[col], col
    three, four = df.loc["police.person_records:PR3"], df.loc["police.person_records:PR4"]
    assert three["family_name"] == four["family_name"]       # O'Brien-Ellis ~ OBrien Ellis
    assert four["dob_swapped"] == three["dob"]                # day and month swapped, found on tokens
    # ... and each row carries its own record's encodings (not a neighbour's: matcher output is unordered)
    enc = Encoder(SECRET)
    for ref, given_, *_ in PEOPLE:
        row = df.loc[f"police.person_records:{ref}"]
        assert row["given_name"] == enc.token("name", given_.lower())
    assert dice(one["given_name_bf"], df.loc["police.person_records:PR5"]["given_name_bf"]) < 0.9
    report = pd.read_csv(partner_dir / "report" / "2025-02-01_police__person_records_quarantine.csv")
    assert list(report.columns) == ["line", "reason"] and report.empty


@settings(max_examples=40, deadline=None)
@example(a="jon", b="ann").via("Dice 0.891: between the thresholds")
@example(a="john", b="jonny").via("Dice 0.871: just above the lower threshold")
@given(a=st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12),
       b=st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12))
def test_bloom_filters_are_balanced_and_duckdb_dice_is_the_reference(a, b):
    enc = Encoder(SECRET)
    fa, fb = enc.bloom("given_name", a), enc.bloom("given_name", b)
    sql = "SELECT bit_count(CAST(from_hex(?) AS BIT)), CAST(bit_count(CAST(from_hex(?) AS BIT) & " \
          "CAST(from_hex(?) AS BIT)) AS DOUBLE) / bit_count(CAST(from_hex(?) AS BIT))"
    # this module's own connection (not duckdb's default one, whose unfinished results outlive the test), opened
    # once: a connection per example cost seconds on a loaded machine
    ones, sim = _CON.execute(sql, [fa, fa, fb, fa]).fetchall()[0]
    assert ones == BLOOM_BITS                       # balancing: the weight says nothing about the name's length
    assert abs(sim - dice(fa, fb)) < 1e-12          # the model's SQL is the Dice coefficient
    assert (sim == 1.0) == (fa == fb)
    # the model's level SQL (a Hamming bound, no division) keeps exactly the pairs whose Dice reaches each threshold
    for t in DICE_FOR_JW.values():
        kept = _CON.execute(f"SELECT {dice_at_least('f', t)} FROM (SELECT CAST(from_hex(?) AS BIT) AS f_l, "
                            "CAST(from_hex(?) AS BIT) AS f_r)", [fa, fb]).fetchall()[0][0]
        assert kept == (dice(fa, fb) >= t - 1e-12), (a, b, t)
    assert fa == enc.bloom("given_name", a) != Encoder(b"other secret of 32 bytes or more!").bloom("given_name", a)


def test_partner_package_ships_what_it_imports_and_nothing_of_the_platform(tmp_path):
    """The wheel's force-include list is the import closure of the tool, and that closure has no Dagster, dbt,
    MLflow, Splink or Great Expectations (the partner installs a small package)."""
    code = ("import sys, json; sys.path.insert(0, 'partner'); import placelink_partner.cli; "
            "from placelink_partner.cli import main; import orchestration.lib.partner_drop; "
            "print(json.dumps(sorted(m for m in sys.modules)))")
    mods = json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                     check=True).stdout)
    heavy = {m for m in mods if m.split(".")[0] in {"dagster", "dbt", "mlflow", "splink", "great_expectations"}}
    assert not heavy
    shipped = tomllib.loads((ROOT / "partner/pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"][
        "wheel"]["force-include"].values()
    for mod in (m for m in mods if m.startswith("orchestration")):
        rel = mod.replace(".", "/")
        assert any(s in (f"{rel}.py", f"{rel}/__init__.py") or rel.startswith(s) for s in shipped), mod


def test_ingest_loads_a_verified_encoded_drop_and_quarantines_a_refused_one_line_by_line(partner_dir, capsys):
    """An encoded feed's drop lands as placelink-partner wrote it: verified, loaded into the raw table (identifier
    columns NULL) and link.encoded_person_records; a drop whose manifest no longer matches loads nothing and
    every one of its lines is quarantined with the refusal as reason."""
    import shutil

    from orchestration.lib.contracts import load_contract
    from orchestration.lib.feeds import ingest_partition

    rc, drop_dir = _encode(partner_dir)
    assert rc == 0, capsys.readouterr().err
    feed = next(f for f in load_contract(partner_dir / "police.yml").feeds if f.id == "person_records")
    folder = partner_dir / "landing" / "police" / "person_records"
    folder.mkdir(parents=True)
    for name in ("2025-02-01.csv", "2025-02-01.manifest.json"):
        shutil.copy(drop_dir / name, folder / name)
    # a second drop the same month whose file was changed after its manifest was written
    shutil.copy(drop_dir / "2025-02-01.manifest.json", folder / "2025-02-03.manifest.json")
    tampered = (drop_dir / "2025-02-01.csv").read_text().replace("Theft", "theft")
    (folder / "2025-02-03.csv").write_text(tampered)
    with duckdb.connect() as con:
        result = ingest_partition(con, feed, "2025-02-01", partner_dir / "landing", today=dt.date(2025, 3, 1))
        by_file = {Path(f.source_file).name: f for f in result.files}
        assert (by_file["2025-02-01.csv"].rows_loaded, by_file["2025-02-01.csv"].rows_quarantined) == (5, 0)
        assert (by_file["2025-02-03.csv"].rows_loaded, by_file["2025-02-03.csv"].lines_quarantined) == (0, 5)
        raw = con.execute(f"SELECT * FROM {feed.table} ORDER BY _line").df()
        assert len(raw) == 5 and raw["forename"].isna().all() and raw["date_of_birth"].isna().all()
        assert raw["offence_group"].tolist() == ["Theft"] * 5 and raw["_record_id"].tolist()[0] == "PR1"
        enc = con.execute("SELECT * FROM link.encoded_person_records ORDER BY record_id").df()
        assert enc["record_id"].tolist() == [f"police.person_records:PR{i}" for i in range(1, 6)]
        assert enc["given_name"].str.fullmatch("[0-9a-f]{32}").all()
        assert con.execute("SELECT count(*) FROM link.person_records").fetchall()[0][0] == 0
        q = con.execute("SELECT line, reason FROM ops.quarantine ORDER BY line").fetchall()
        assert [line for line, _ in q] == [2, 3, 4, 5, 6]
        assert all(r.startswith("encoded_drop_refused: the manifest describes another file") for _, r in q)


def test_a_home_from_before_the_address_tokens_takes_a_drop_that_carries_them(partner_dir, capsys):
    """link.encoded_person_records made by the earlier encoded record (no address, national-id or family-part
    tokens) gains the new columns when a drop carrying them lands, instead of the load failing."""
    import shutil

    from orchestration.lib.contracts import load_contract
    from orchestration.lib.feeds import ingest_partition

    rc, drop_dir = _encode(partner_dir)
    assert rc == 0, capsys.readouterr().err
    feed = next(f for f in load_contract(partner_dir / "police.yml").feeds if f.id == "person_records")
    folder = partner_dir / "landing" / "police" / "person_records"
    folder.mkdir(parents=True)
    for name in ("2025-02-01.csv", "2025-02-01.manifest.json"):
        shutil.copy(drop_dir / name, folder / name)
    old = ("nhs_number", "given_name", "family_name", "dob", "dob_swapped", "dob_year", "dob_month", "dob_day",
           "postcode", "postcode_sector", "postcode_district", "postcode_area", "uprn", "given_name_set",
           "given_name_bf", "family_name_bf", "sex", "lsoa_code")
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA link")
        con.execute("CREATE TABLE link.encoded_person_records (record_id VARCHAR, source VARCHAR, "
                    + ", ".join(f"{c} VARCHAR" for c in old) + ', "partition" DATE, loaded_at TIMESTAMP)')
        result = ingest_partition(con, feed, "2025-02-01", partner_dir / "landing", today=dt.date(2025, 3, 1))
        assert sum(f.rows_loaded for f in result.files) == 5
        keys = con.execute("SELECT count(addr_key), count(addr_words), count(family_parts) "
                           "FROM link.encoded_person_records").fetchall()[0]
    assert keys == (4, 4, 5)  # PR4 was sent without an address
