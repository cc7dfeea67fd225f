"""Pseudonymisation: normalisers, keys per profile, stable tokens, and a warehouse with no clear identifiers."""

from __future__ import annotations

import datetime as dt
import secrets

import duckdb
import pytest

from orchestration.lib.config import get_settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.feeds import ingest
from orchestration.lib.feeds.warehouse_sources import build_warehouse_sources
from orchestration.lib.pseudonymise import (
    DemoKeyWarning,
    Pseudonymiser,
    ethnicity_group,
    load_key,
    normalise_name,
    normalise_nhs_number,
    normalise_postcode,
)
from tests.feeds.conftest import CONTRACTS, write_attendances, write_referrals, write_visits


def test_normalisers():
    assert normalise_nhs_number("943 476 5919") == normalise_nhs_number("943-476-5919") == "9434765919"
    assert normalise_nhs_number("943 476 5918") is None          # check digit fails
    assert normalise_nhs_number("9434765918", validate=False) == "9434765918"
    assert normalise_postcode(" sh12ab ") == normalise_postcode("SH1  2AB") == "SH1 2AB"
    assert normalise_postcode("not a postcode") is None
    assert normalise_name("  Zoë  O’Brien ") == normalise_name("zoe o'brien") == "ZOE O'BRIEN"
    assert [ethnicity_group(v) for v in ("A", "White British", "ABAN", "Black or Black British", None, "Z")] == [
        "White", "White", "Asian", "Black", "Unknown", "Unknown"]


def test_same_identifier_in_two_feeds_gives_the_same_token_and_another_key_does_not():
    a, b = Pseudonymiser(b"a" * 32), Pseudonymiser(b"b" * 32)
    assert a.nhs_number("943 476 5919") == a.nhs_number("9434765919")  # as written by two different feeds
    assert a.postcode("sh12ab") == a.postcode("SH1 2AB")
    assert a.name("Zoë") == a.name("ZOE")
    assert a.nhs_number("9434765919") != b.nhs_number("9434765919")
    assert a.token("record", "x") != a.token("person", "x")           # kinds never collide
    assert len(a.nhs_number("9434765919")) == 64 and a.nhs_number(None) is None


def test_keys_per_profile(tmp_path, monkeypatch):
    monkeypatch.delenv("PLACELINK_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("PLACELINK_PSEUDONYM_KEY_FILE", raising=False)
    with pytest.raises(PlacelinkError, match="production refuses"):
        load_key(get_settings(home=tmp_path, env="production"))
    local = get_settings(home=tmp_path, env="local")
    with pytest.warns(DemoKeyWarning, match="DEMO PSEUDONYM KEY"):
        first = load_key(local)
    with pytest.warns(DemoKeyWarning):
        assert load_key(local) == first                              # stored: stable across nights
    assert (tmp_path / "keys" / "pseudonym.key").is_file()
    strong = secrets.token_hex(32)
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", strong)
    assert load_key(get_settings(home=tmp_path, env="production")) == bytes.fromhex(strong)
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "ab" * 32)   # fine for a test, refused for real data
    assert load_key(local) == bytes.fromhex("ab" * 32)
    with pytest.raises(PlacelinkError, match="weak pseudonym key"):
        load_key(get_settings(home=tmp_path, env="production"))
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "short")
    with pytest.raises(PlacelinkError, match="too short"):
        load_key(local)


@pytest.mark.filterwarnings("ignore::orchestration.lib.pseudonymise.DemoKeyWarning")
def test_warehouse_sources_hold_no_clear_identifier(acme_home):
    write_visits(acme_home)
    write_attendances(acme_home)
    write_referrals(acme_home)
    (acme_home / "reference" / "postcodes.csv").write_text(
        "postcode,lsoa_code,easting,northing\nSH1 2AB,E01000001,1,2\nSH9 9ZZ,E01000009,3,4\n")
    settings = get_settings(home=acme_home)
    assert ingest(settings, feeds_dir=CONTRACTS).ok
    # the matching stage's outputs: the same person in two feeds
    with duckdb.connect(str(settings.identifiable_db)) as con:
        con.execute("CREATE TABLE link.person_index AS SELECT * FROM (VALUES "
                    "('acme.visits:V1', 7), ('acme.attendances:A1', 7), ('acme.attendances:A2', 8)) "
                    "t(record_id, person_id)")
    counts = build_warehouse_sources(settings, feeds_dir=CONTRACTS)
    assert counts["src.acme__visits"] == 2                  # V1 (sent twice) and V6: record_key is unique
    assert counts["ref.postcodes"] == 2 and "ref.nhs_opt_outs" not in counts
    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        keys = dict(con.execute("SELECT 'v', person_key FROM src.acme__visits WHERE person_key IS NOT NULL "
                                "UNION ALL SELECT 'a', person_key FROM src.acme__attendances "
                                "WHERE lsoa_code = 'E01000001'").fetchall())
        assert keys["v"] == keys["a"]                       # same person -> same key across feeds
        row = con.execute("SELECT sex, birth_year_month, age_band, lsoa_code, event_month, score "
                          "FROM src.acme__visits WHERE person_key IS NOT NULL").fetchone()
        assert row == ("F", "1980-05", "35-44", "E01000001", dt.date(2025, 3, 1), 3)
        cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_schema='src'").fetchall()}
        assert not cols & {"forename", "surname", "dob", "postcode", "nhs_number", "child_name", "notes",
                           "date_of_birth", "visit_ref"}
        dump = ""
        for schema, table in con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall():
            text = str(con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall())
            dump += text
            if schema == "src":   # the postcode directory (ref.postcodes) lists postcodes; no feed may
                assert "SH1 2AB" not in text and "SH9 9ZZ" not in text, table
    for clear in ("Zoë", "ZOE", "O'Brien", "9434765919", "943 476 5919", "1980-05-12", "Carter",
                  "Kim", "4010232137", "V1"):
        assert clear not in dump, clear


@pytest.mark.parametrize("key", [b"k" * 32, bytes(range(16)), bytes(range(200)) * 2], ids=["32", "16", "400"])
def test_tokens_computed_in_sql_equal_the_python_tokens(key):
    """src.* tokens are computed by DuckDB (RFC 2104 spelled out over sha256); they must be the very tokens
    governance (erasure, audit) computes in Python for the same identifier."""
    pz = Pseudonymiser(key)
    values = ["police.street_crimes:1", "Zoë O’Brien 漢字", "", None, "a\\x41b", "it's", "x" * 300, "7"]
    con = duckdb.connect()
    con.execute("CREATE TABLE v (i INTEGER, v VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?, ?)", list(enumerate(values)))
    with pz.sql_key(con):
        for kind in ("record", "person", "household"):
            got = [r[0] for r in con.execute(f"SELECT {pz.token_sql(kind, 'v')} FROM v CROSS JOIN {pz.KEY_TABLE} "
                                             "pzk ORDER BY i").fetchall()]
            assert got == pz.tokens(kind, values)
        assert [t[0] for t in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()] \
            == ["v"]
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0] == 0
    with pytest.raises(ValueError, match="kind"):
        pz.token_sql("record'; DROP TABLE v; --", "v")
