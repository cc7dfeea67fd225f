"""Hostile and wrong input to placelink-partner and to the platform's check of encoded drops. Every refusal is a
clear error (what, where, fix), writes nothing to send, and never quotes a value from the export."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from placelink_partner.cli import main

from orchestration.lib.contracts import load_contract
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.matching.encoding import SECRET_ENV
from orchestration.lib.partner_drop import verify_drop
from tests.partner.conftest import HEADER, SECRET, export_text, make_partner_dir, write_contract


@pytest.fixture
def partner_dir(tmp_path):
    return make_partner_dir(tmp_path)


def _run(folder, *extra, secret: bytes | None = SECRET):
    args = ["encode", "--contract", str(folder / "police.yml"), "--feed", "person_records", "--export",
            str(folder / "export.csv"), "--out", str(folder / "drop"), "--date", "2025-02-01",
            "--report", str(folder / "report")]
    if secret is not None:
        (folder / "secret.txt").write_text(secret.hex())
        args += ["--secret-file", str(folder / "secret.txt")]
    return main([*args, *extra])


def _refused(folder, capsys, *extra, secret: bytes | None = SECRET) -> str:
    rc = _run(folder, *extra, secret=secret)
    err = capsys.readouterr().err
    assert rc == 2
    assert not (folder / "drop" / "2025-02-01.csv").exists(), "a refused export left a drop to send"
    for clear in ("Gough", "Rhodes", "13/11/2010", "SH1 2SA", "officer note"):
        assert clear.lower() not in err.lower(), "the error quoted the export"
    return err


def test_missing_secret(partner_dir, capsys, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert "no shared linkage secret" in _refused(partner_dir, capsys, secret=None)


def test_short_secret_is_refused_without_showing_it(partner_dir, capsys):
    err = _refused(partner_dir, capsys, secret=b"short")
    assert "5 bytes" in err and b"short".hex() not in err


def test_wrong_secret_is_caught_by_the_key_check_value_not_by_silent_non_linkage(partner_dir, capsys):
    err = _refused(partner_dir, capsys, secret=bytes(32))
    assert "wrong secret" in err and "linkage.key_check" in err


def test_wrong_contract_version(partner_dir, capsys):
    write_contract(partner_dir, scheme="placelink-clk/9")
    assert "contract version mismatch" in _refused(partner_dir, capsys)


@pytest.mark.parametrize("content", [
    b"\x00\x01\x02PK\x03\x04 binary garbage \xff\xfe" * 40,            # not a CSV at all
    export_text().replace("forename", "first_name").encode("cp1252"),  # a renamed column
    b"",                                                               # nothing
], ids=["binary", "renamed_column", "empty"])
def test_corrupt_export(partner_dir, capsys, content):
    (partner_dir / "export.csv").write_bytes(content)
    assert "error:" in _refused(partner_dir, capsys)


def test_bad_rows_stay_with_the_partner_in_the_quarantine_report(partner_dir, capsys):
    bad = '"PR9,OCC/2025/1,N1,victim,Zed,Quarantina,31/02/2001,F,"1 High St",SH1 2SA,02/01/2025,Theft,x'
    short = "PR10,OCC/2025/1,N1,victim,Yan"
    (partner_dir / "export.csv").write_bytes(export_text(extra=[bad, short]).encode("cp1252"))
    assert _run(partner_dir) == 0
    manifest = json.loads((partner_dir / "drop" / "2025-02-01.manifest.json").read_text())
    assert (manifest["rows_received"], manifest["rows_encoded"], manifest["rows_quarantined"]) == (7, 5, 2)
    report = (partner_dir / "report" / "2025-02-01_police__person_records_quarantine.csv").read_text()
    assert report.count("\n") == 3 and "Quarantina" not in report and "Yan" not in report
    assert "Quarantina".lower() not in (partner_dir / "drop" / "2025-02-01.csv").read_text().lower()
    # --strict: nothing to send while any row fails
    shutil.rmtree(partner_dir / "drop")
    _refused(partner_dir, capsys, "--strict")
    assert HEADER  # the export itself is untouched by the tool
    assert "Quarantina" in (partner_dir / "export.csv").read_bytes().decode("cp1252")


def test_platform_refuses_tampered_foreign_or_stale_drops(partner_dir):
    assert _run(partner_dir) == 0
    feed = next(f for f in load_contract(partner_dir / "police.yml").feeds if f.id == "person_records")
    manifest = partner_dir / "drop" / "2025-02-01.manifest.json"
    assert len(verify_drop(manifest, feed)) == 5
    # another secret's drop: refused by key check value
    other = feed.model_copy(update={"linkage": feed.linkage.model_copy(update={"key_check": "0" * 12})})
    with pytest.raises(PlacelinkError, match="another secret"):
        verify_drop(manifest, other)
    # a contract changed since the partner encoded (the agreement lost a column)
    stale = feed.model_copy(update={"agreement": feed.agreement.model_copy(
        update={"allowed_columns": feed.agreement.allowed_columns[:-1]})})
    with pytest.raises(PlacelinkError, match="another version of the feed's contract"):
        verify_drop(manifest, stale)
    # a byte changed in transit
    drop = partner_dir / "drop" / "2025-02-01.csv"
    drop.write_bytes(drop.read_bytes().replace(b"Theft", b"Theft", 1).replace(b"victim", b"victin", 1))
    with pytest.raises(PlacelinkError, match="checksum"):
        verify_drop(manifest, feed)
    manifest.write_text("{not json")
    with pytest.raises(PlacelinkError, match="cannot be read"):
        verify_drop(manifest, feed)


def test_a_record_sent_twice_is_encoded_twice_with_its_own_encodings(partner_dir):
    """A duplicate row (the same record id twice) made the tool join encodings to rows by a non-unique key."""
    lines = export_text().strip("\r\n").split("\r\n")
    (partner_dir / "export.csv").write_bytes(("\r\n".join([*lines, lines[5]]) + "\r\n").encode("cp1252"))
    assert _run(partner_dir) == 0
    drop = pd.read_csv(partner_dir / "drop" / "2025-02-01.csv", dtype=str)
    assert len(drop) == 6
    twice = drop[drop["record_id"] == "police.person_records:PR5"]
    assert len(twice) == 2 and twice["given_name"].nunique() == 1
    assert twice["given_name"].iloc[0] != drop.loc[drop["record_id"] == "police.person_records:PR1", "given_name"].iloc[0]


def test_deployment_linkage_switch_refuses_a_missing_or_malformed_key_check_and_an_unknown_mode(monkeypatch):
    """PLACELINK_LINKAGE=encoded without the partners' key check value (or with another mode) stops contract
    loading with what and how to fix; with it, every feed with people is encoded and lands as CSV."""
    from orchestration.lib.contracts import FEEDS_DIR, ContractError, load_contract

    monkeypatch.setenv("PLACELINK_LINKAGE", "encoded")
    for bad in ("", "XYZ", "0123456789abcdef"):
        monkeypatch.setenv("PLACELINK_LINKAGE_KEY_CHECK", bad)
        with pytest.raises(ContractError) as exc:
            load_contract(FEEDS_DIR / "nhs.yml")
        assert "PLACELINK_LINKAGE_KEY_CHECK" in str(exc.value)
    monkeypatch.setenv("PLACELINK_LINKAGE", "hashed")
    with pytest.raises(ContractError, match="unknown linkage mode"):
        load_contract(FEEDS_DIR / "nhs.yml")
    monkeypatch.setenv("PLACELINK_LINKAGE", "encoded")
    monkeypatch.setenv("PLACELINK_LINKAGE_KEY_CHECK", "0123456789ab")
    police = load_contract(FEEDS_DIR / "police.yml")
    modes = {f.id: (f.linkage.mode, f.drop_extension) for f in police.feeds}
    assert modes["person_records"] == ("encoded", "csv") and modes["street_crimes"][0] == "clear"


def test_landing_accepts_a_manifest_only_beside_its_drop(tmp_path):
    """An encoded drop's manifest is read with its drop; a manifest alone is an odd file, rejected and reported."""
    from orchestration.lib.landing import scan_feed

    folder = tmp_path / "police" / "person_records"
    folder.mkdir(parents=True)
    for name in ("2025-02-01.csv", "2025-02-01.manifest.json", "2025-02-09.manifest.json"):
        (folder / name).write_text("{}")
    found = {f.path.name: (f.drop_date is not None, f.reason_code) for f in scan_feed(tmp_path, "police",
                                                                                       "person_records", "csv")}
    assert found == {"2025-02-01.csv": (True, None), "2025-02-09.manifest.json": (False, "landing_extension")}
