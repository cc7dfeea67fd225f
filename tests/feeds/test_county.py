"""The synthetic county through ingest and pseudonymisation, checked against its ground truth."""

from __future__ import annotations

import re
import shutil

import duckdb
import pandas as pd
import pytest

from orchestration.lib.config import get_settings
from orchestration.lib.contracts import load_contracts
from orchestration.lib.feeds.warehouse_sources import build_warehouse_sources
from orchestration.lib.pseudonymise import normalise_nhs_number

#: what ingest must quarantine: malformed lines, and dates outside the contract's plausible range
MALFORMED = {"impossible_date", "wrong_column_count", "bad_encoding", "invalid_json", "implausible_date"}


def _idz(home):
    return duckdb.connect(str(home / "identifiable.duckdb"), read_only=True)


@pytest.mark.slow
def test_every_row_is_loaded_or_quarantined_exactly_as_the_truth_says(ingested_county):
    home = ingested_county
    records = pd.read_parquet(home / "truth" / "records.parquet")
    defects = pd.read_parquet(home / "truth" / "defects.parquet")
    with _idz(home) as con:
        log = con.execute("SELECT partner, feed, sum(rows_received), sum(rows_loaded), sum(rows_quarantined), "
                          "bool_and(rows_loaded + rows_quarantined = rows_received) FROM ops.load_log "
                          "GROUP BY ALL").df()
        quarantined = con.execute("SELECT partner, feed, source_file AS file, line FROM ops.quarantine "
                                  "WHERE reason <> 'national_data_opt_out'").df()
        opted_out = con.execute("SELECT count(*) FROM ops.quarantine WHERE reason = 'national_data_opt_out'"
                                ).fetchall()[0][0]
        raw_rows = {f.name: con.execute(f"SELECT count(*) FROM {f.table}").fetchall()[0][0]
                    for f in load_contracts().feeds()}
    log.columns = ["partner", "feed", "received", "loaded", "quarantined", "balanced"]
    assert log["balanced"].all()
    expected = records.groupby(["partner", "feed"]).size()
    got = log.set_index(["partner", "feed"])["received"]
    assert got.sort_index().to_dict() == expected.sort_index().to_dict()       # nothing lost, nothing invented
    bad = defects[defects["defect"].isin(MALFORMED)][["partner", "feed", "file", "line"]].drop_duplicates()
    as_set = lambda df: set(map(tuple, df[["partner", "feed", "file", "line"]].astype(str).values))  # noqa: E731
    assert as_set(quarantined) == as_set(bad)                                   # exactly the malformed lines
    assert len(bad) > 0 and opted_out > 0
    for _, row in log.iterrows():
        assert raw_rows[f"{row.partner}__{row.feed}"] == row.loaded


@pytest.mark.slow
def test_opted_out_patients_and_disallowed_columns_never_load(ingested_county):
    home = ingested_county
    opt = {normalise_nhs_number(n, validate=False)
           for n in pd.read_csv(home / "reference" / "nhs_opt_outs.csv", dtype=str)["nhs_number"]}
    with _idz(home) as con:
        nhs = {normalise_nhs_number(n, validate=False) for (n,) in con.execute(
            "SELECT nhs_number FROM raw.nhs__ae_attendances UNION SELECT nhs_number FROM link.person_records "
            "WHERE source = 'nhs.ae_attendances'"
        ).fetchall() if n}
        assert nhs and not nhs & opt        # the opt-out applies where the agreement says so (NHS feeds)
        cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'police__person_records'").fetchall()}
        assert "notes" not in cols and "forename" in cols
        # the notes free text of the landing files appears in no table (quarantine included)
        notes = set()
        for path in (home / "landing" / "police" / "person_records").glob("*.csv"):
            df = pd.read_csv(path, encoding="windows-1252", dtype=str, on_bad_lines="skip",
                             encoding_errors="replace")
            notes |= {n for n in df["notes"].dropna() if len(n) > 12}
        assert notes
        dump = " ".join(str(con.execute(f'SELECT * FROM "{s}"."{t}"').fetchall()) for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables").fetchall())
    assert not [n for n in notes if n in dump]


@pytest.mark.slow
def test_warehouse_holds_no_name_nhs_number_dob_or_postcode_from_the_truth(ingested_county, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(ingested_county, home)
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "5e" * 32)
    counts = build_warehouse_sources(get_settings(home=home))
    assert all(n > 0 for t, n in counts.items() if t.startswith("src."))
    people = pd.read_parquet(home / "truth" / "people.parquet")
    names = {str(n).upper() for col in ("given_name", "family_name") for n in people[col].dropna()}
    full = {f"{g} {f}".upper() for g, f in zip(people["given_name"], people["family_name"], strict=True)}
    nhs = {re.sub(r"\D", "", str(n)) for n in people["nhs_number"].dropna()}
    dobs = {str(d)[:10] for d in people["date_of_birth"].dropna() if str(d)[:4] < "2023"}
    postcode = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$")
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        columns = con.execute("SELECT table_schema, table_name, column_name, data_type "
                              "FROM information_schema.columns").fetchall()
        for schema, table, column, dtype in columns:
            values = {str(v) for (v,) in con.execute(
                f'SELECT DISTINCT "{column}" FROM "{schema}"."{table}" WHERE "{column}" IS NOT NULL').fetchall()}
            where = f"{schema}.{table}.{column}"
            upper = {v.upper() for v in values}
            # a few names coincide with words (ethnicity group "White"), a leaked name column has hundreds
            assert len(upper & names) <= 3, (where, sorted(upper & names)[:5])
            assert not upper & full, where
            assert not {re.sub(r"\D", "", v) for v in values if len(re.sub(r"\D", "", v)) == 10} & nhs, where
            if dtype in ("DATE", "VARCHAR", "TIMESTAMP"):
                assert not {v[:10] for v in values} & dobs, where
            if schema == "src":
                assert not [v for v in values if postcode.match(v.upper())], where
