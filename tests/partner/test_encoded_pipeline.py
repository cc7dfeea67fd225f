"""The whole tiny county in encoded mode, once, as ``PLACELINK_LINKAGE=encoded make demo`` runs it: the synthetic
partners encode every drop with placelink-partner, the platform lands, loads, links (encoded model), keys and builds
the warehouse, and no clear identifier of any person is anywhere in the platform's home.

``truth/`` (the generator's answer key) and ``reference/`` (gazetteer and postcode directory: every address and
postcode of the county, not persons') are left out of the search; tables copied from the reference data
(``ref.*``, ``link.gazetteer_tokens``) are left out of the postcode search only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from orchestration.lib.contracts import LINKAGE_ENV, LINKAGE_KEY_CHECK_ENV
from orchestration.lib.matching import metrics as lm

ROOT = Path(__file__).resolve().parents[2]
#: the whole county encoded (210 drops) and one full refresh: ~10 min single-process on a loaded 2-core machine
pytestmark = pytest.mark.slow
_REFERENCE_TABLES = ("gazetteer_tokens",)


def _identifiers(home: Path) -> dict[str, set[str]]:
    """Every person's full name, date of birth, NHS number and pupil number, and the postcodes they lived at."""
    people = pd.read_parquet(home / "truth" / "people.parquet")
    names = {f"{g} {f}".lower() for g, f in zip(people["given_name"], people["family_name"], strict=True)}
    dobs = {pd.Timestamp(d).date().isoformat() for d in people["date_of_birth"].dropna()}
    nhs = {str(n) for n in people["nhs_number"].dropna() if len(str(n)) == 10}
    nhs |= {str(u).lower() for u in people["upn"].dropna() if len(str(u)) > 8}  # pupil numbers: same test
    uprns = set(pd.read_parquet(home / "truth" / "records.parquet")["uprn"].dropna().astype("int64").astype(str))
    gaz = pd.read_csv(home / "reference" / "gazetteer.csv", dtype=str)
    pcs = set(gaz.loc[gaz["uprn"].isin(uprns), "postcode"].dropna().str.upper())
    return {"name": names, "dob": dobs, "nhs": nhs, "postcode": pcs}


def _table_hits(db: Path, ids: dict[str, set[str]]) -> list[str]:
    hits = []
    with duckdb.connect(str(db), read_only=True) as con:
        cols = con.execute("""SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns()
                              WHERE database_name = current_database() AND NOT internal""").fetchall()
        for schema, table, col, dtype in cols:
            if dtype not in ("VARCHAR", "DATE", "TIMESTAMP", "BIGINT"):
                continue
            expr = f'lower(trim(CAST("{col}" AS VARCHAR)))'
            vals = {r[0] for r in con.execute(f'SELECT DISTINCT {expr} FROM "{schema}"."{table}" '
                                              f'WHERE "{col}" IS NOT NULL').fetchall()}
            where = f"{db.name}:{schema}.{table}.{col}"
            if dtype in ("DATE", "TIMESTAMP") or "birth" in col or "dob" in col:
                if any(v[:10] in ids["dob"] for v in vals) and ("birth" in col or "dob" in col):
                    hits.append(f"{where}: date of birth")
            if vals & ids["name"]:
                hits.append(f"{where}: full name")
            if any(v.zfill(10) in ids["nhs"] for v in vals if v.isdigit() and len(v) >= 9) or \
                    any(set(re.findall(r"[a-z0-9]{9,}", v)) & ids["nhs"] for v in vals if len(v) > 8):
                hits.append(f"{where}: NHS number")
            if schema != "ref" and table not in _REFERENCE_TABLES and {v.upper() for v in vals} & ids["postcode"]:
                hits.append(f"{where}: postcode")
    return hits


def _file_hits(path: Path, ids: dict[str, set[str]]) -> list[str]:
    text = path.read_bytes().decode("utf-8", errors="ignore")
    low = text.lower()
    hits = [f"{path}: NHS or pupil number" for n in ids["nhs"] if n in low][:1]
    hits += [f"{path}: full name" for n in ids["name"] if n in low][:1]
    return hits


@pytest.mark.long
def test_encoded_tiny_county_runs_through_the_pipeline_and_the_home_holds_no_clear_identifier(tiny_county,
                                                                                                 tmp_path):
    home = tmp_path / "home"
    shutil.copytree(tiny_county, home)
    env = {**os.environ, LINKAGE_ENV: "encoded", "PLACELINK_HOME": str(home)}
    env.pop(LINKAGE_KEY_CHECK_ENV, None)  # the demo's own
    # `PLACELINK_LINKAGE=encoded make demo` on a home that has drops: encode them, then one full refresh
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "demo", "--home", str(home)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "encoded" in proc.stdout + proc.stderr
    _check_home(home)


def _check_home(home: Path) -> None:

    landing = sorted(p.name for p in (home / "landing").rglob("*") if p.is_file())
    assert landing and not [n for n in landing if n.endswith((".xlsx", ".jsonl"))]  # native exports never landed
    idz = home / "identifiable.duckdb"
    assert idz.exists(), sorted(p.name for p in home.iterdir())
    with duckdb.connect(str(idz), read_only=True) as con:
        n_clear = con.execute("SELECT count(*) FROM link.person_records").fetchall()[0][0]
        n_enc, n_keyed = con.execute("""SELECT count(*), count(i.person_id) FROM link.encoded_person_records e
            LEFT JOIN link.person_index i USING (record_id)""").fetchall()[0]
        rejected = con.execute("SELECT count(*) FROM ops.load_log WHERE status = 'rejected'").fetchall()[0][0]
        refused = con.execute("SELECT count(*) FROM ops.quarantine WHERE reason LIKE 'encoded_drop_refused%'"
                              ).fetchall()[0][0]
        lsoa = con.execute("SELECT count(lsoa_code) FROM link.address_matches WHERE match_method = 'partner'"
                           ).fetchall()[0][0]
        lm_con = duckdb.connect()
        lm_con.execute(f"ATTACH '{idz}' AS idz (READ_ONLY)")
        truth = home / "truth" / "records.parquet"
        lm_con.execute(f"""CREATE TEMP TABLE _truth AS SELECT person_id,
            CAST(partner AS VARCHAR) || '.' || CAST(feed AS VARCHAR) || ':' || CAST(record_id AS VARCHAR) AS record_id
            FROM read_parquet('{truth}') WHERE person_id IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY 2) = 1""")
        f1 = lm.pairwise_metrics_sql(lm_con, "idz.link.person_index", "_truth")["f1"]
    assert n_clear == 0 and n_enc > 1000 and n_keyed == n_enc  # every encoded record has a person
    assert rejected == 0 and refused == 0  # every drop and manifest landed and verified
    assert lsoa > 0.8 * n_enc
    assert f1 > 0.9, f1  # linked on encodings, not just keyed one record per person

    wh = home / "warehouse.duckdb"
    with duckdb.connect(str(wh), read_only=True) as con:
        keyed = con.execute("SELECT count(person_key), count(DISTINCT person_key) FROM src.police__person_records"
                            ).fetchall()[0]
    assert keyed[0] > 0 and 0 < keyed[1] < keyed[0]

    ids = _identifiers(home)
    assert len(ids["name"]) > 1000 and len(ids["nhs"]) > 1000 and len(ids["postcode"]) > 100
    hits = []
    for path in sorted(p for p in home.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(home).parts
        if rel[0] in ("truth", "reference"):
            continue
        if path.suffix == ".duckdb":
            hits += _table_hits(path, ids)
        elif path.stat().st_size < 50_000_000 and not path.suffix.endswith(("wal", "lock")):
            hits += _file_hits(path, ids)
    assert not hits, hits[:20]


def test_the_identifier_search_finds_each_kind_of_identifier(tmp_path):
    """The search above can fail: one planted cell of each kind is found (in a table and in a plain file)."""
    ids = {"name": {"susan gough"}, "dob": {"2010-11-13"}, "nhs": {"9434765919"}, "postcode": {"SH1 2SA"}}
    db = tmp_path / "x.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t AS SELECT 'Susan Gough' AS n, DATE '2010-11-13' AS date_of_birth, "
                    "'nhs 9434765919 seen' AS note, 'sh1 2sa' AS pc")
    kinds = {h.rsplit(": ", 1)[1] for h in _table_hits(db, ids)}
    assert kinds == {"full name", "date of birth", "NHS number", "postcode"}
    log = tmp_path / "x.log"
    log.write_text("matched SUSAN GOUGH to 9434765919")
    assert len(_file_hits(log, ids)) == 2
