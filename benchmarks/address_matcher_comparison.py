"""Compare ``uk-address-matcher`` (pretrained Splink model for UK addresses) with our DuckDB address matcher.

``uk-address-matcher`` pins ``duckdb<2`` and ``splink<5``, so it cannot live in our lock (DuckDB 2, Splink 5).
This script measures it in a throwaway venv, ``benchmarks/.venv-uam`` (``uv venv`` + ``uv pip install
uk-address-matcher 'duckdb<2' 'splink<5'``; its model, ``data/splink_model.json``, and token frequency tables
ship inside the wheel, so nothing downloads at run time), on exactly the same messy addresses and gazetteer
as our matcher, and scores both against the ground truth.

Usage::

    uv run python benchmarks/address_matcher_comparison.py --home /tmp/sc    # an ingested synthetic county
    uv run python benchmarks/address_matcher_comparison.py                  # the matching test county

Writes ``benchmarks/results/address_matcher_comparison.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-uam"

UAM_SCRIPT = r"""
import sys, time, json
import duckdb
from uk_address_matcher import AddressMatcher
work = sys.argv[1]
con = duckdb.connect()
messy = con.read_parquet(f"{work}/messy.parquet")
canonical = con.read_parquet(f"{work}/canonical.parquet")
t = time.perf_counter()
matcher = AddressMatcher(canonical_addresses=canonical, addresses_to_match=messy, con=con)
result = matcher.match()
m = result.matches()
m.to_parquet(f"{work}/uam_matches.parquet")
print(json.dumps({"seconds": time.perf_counter() - t, "duckdb": duckdb.__version__}))
"""


def build_venv() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run(["uv", "venv", str(VENV), "--python", sys.executable], check=True)
    subprocess.run(["uv", "pip", "install", "--python", str(py), "uk-address-matcher", "duckdb<2", "splink<5"],
                   check=True)
    return py


def load_inputs(home: Path | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """records (record_id, address, postcode), gazetteer, postcodes, truth (record_id, uprn, lsoa_code)."""
    if home is None:
        from tests.support.matching_county import make_county

        c = make_county(n_people=10_000, seed=2)
        recs = c["records"][["record_id", "address", "postcode"]]
        return recs, c["gazetteer"], c["postcodes"], c["truth"]
    con = duckdb.connect(str(home / "identifiable.duckdb"), read_only=True)
    recs = con.execute("SELECT record_id, address, postcode FROM link.person_records "
                       "WHERE nullif(trim(address), '') IS NOT NULL").df()
    con.close()
    gaz = pd.read_csv(home / "reference" / "gazetteer.csv", dtype=str)
    pcs = pd.read_csv(home / "reference" / "postcodes.csv", dtype=str)
    t = pd.read_parquet(home / "truth" / "records.parquet")
    t["record_id"] = t["partner"] + "." + t["feed"] + ":" + t["record_id"].astype(str)
    return recs, gaz, pcs, t.drop_duplicates("record_id")[["record_id", "uprn", "lsoa_code"]]


def score(pred: pd.DataFrame, truth: pd.DataFrame) -> dict:
    j = pred.merge(truth, on="record_id", suffixes=("", "_true"))
    j = j[j["uprn_true"].notna()]
    matched = j["uprn"].notna()
    correct = j["uprn"].astype(str) == j["uprn_true"].astype(str)
    return {"records": int(len(j)), "match_rate": round(float(matched.mean()), 5),
            "uprn_accuracy": round(float(correct.mean()), 5),
            "precision": round(float(correct[matched].mean()), 5) if matched.any() else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=None)
    args = ap.parse_args()
    recs, gaz, pcs, truth = load_inputs(args.home)
    work = Path(tempfile.mkdtemp(prefix="uam_"))
    results: dict = {"records_with_address": len(recs), "gazetteer_addresses": len(gaz)}

    # ours
    from orchestration.lib.matching.address import match_addresses

    con = duckdb.connect()
    for name, df in (("records", recs), ("gazetteer", gaz), ("postcodes", pcs)):
        con.register(f"{name}_df", df)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df").fetchall()
    t = time.perf_counter()
    match_addresses(con, "records", "gazetteer", "postcodes", "ours")
    ours_s = time.perf_counter() - t
    ours = con.execute("SELECT record_id, uprn FROM ours").df()
    results["placelink"] = {**score(ours, truth), "seconds": round(ours_s, 2),
                            "records_per_second": round(len(recs) / ours_s)}

    # uk-address-matcher, same inputs
    canonical = pd.DataFrame({
        "unique_id": gaz["uprn"].astype(str),
        "address_concat": gaz[["saon", "paon", "street", "locality", "town"]].fillna("").astype(str)
            .agg(" ".join, axis=1).str.split().str.join(" "),
        "postcode": gaz["postcode"]})
    messy = pd.DataFrame({"unique_id": recs["record_id"].astype(str), "address_concat": recs["address"].fillna(""),
                          "postcode": recs["postcode"]})
    canonical.to_parquet(work / "canonical.parquet", index=False)
    messy.to_parquet(work / "messy.parquet", index=False)
    try:
        py = build_venv()
        (work / "run_uam.py").write_text(UAM_SCRIPT)
        proc = subprocess.run([str(py), str(work / "run_uam.py"), str(work)], capture_output=True, text=True,
                              timeout=1200)
        if proc.returncode != 0:
            results["uk_address_matcher"] = {"error": proc.stderr[-2000:]}
        else:
            info = json.loads(proc.stdout.strip().splitlines()[-1])
            m = pd.read_parquet(work / "uam_matches.parquet")
            pred = pd.DataFrame({"record_id": m["unique_id"].astype(str),
                                 "uprn": m["resolved_canonical_id"].astype("string")})
            results["uk_address_matcher"] = {**score(pred, truth), "seconds": round(info["seconds"], 2),
                                             "records_per_second": round(len(recs) / info["seconds"]),
                                             "duckdb": info["duckdb"]}
    except Exception as exc:  # report why it could not run rather than failing the comparison
        results["uk_address_matcher"] = {"error": f"{type(exc).__name__}: {exc}"}
    out = HERE / "results" / "address_matcher_comparison.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
