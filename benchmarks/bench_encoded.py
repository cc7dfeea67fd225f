"""Encoded linkage (placelink-clk/1) against clear linkage: accuracy, throughput, and a frequency attack.

    uv run --frozen --no-sync python benchmarks/bench_encoded.py [--county HOME] [--people N] [--scale-people N]

- **Independent labelled set**: ``tests.support.matching_county.make_county`` (its own generator, not the
  synthetic county's) with ``--people`` people; both modes see the same address-matched records.
- **Synthetic county** (``--county HOME``: a home made by ``placelink generate``): every person record of every
  landing drop, read with ingest's own ``parse_file``; truth from ``truth/records.parquet``.
- **Throughput**: partner-side encoding (address matching + normalisation + encoding) in records/s; linkage on
  encodings in records/min at ``--scale-people`` people (x ~3 records each), and with ``--scale-clear`` the clear
  model on the same records; the load average before and after each link is recorded (shared machine).
- **Frequency attack** on the encoded county: the attacker holds the true frequency of every given name in the
  population (the strongest public list one could have: here the truth file itself), ranks the encoded given-name
  tokens -- and, separately, the Bloom filters -- by frequency, and assigns the i-th most frequent encoding to the
  i-th most frequent name. Reported: how many of the 100 most common names are re-identified correctly.

Results: ``benchmarks/results/encoded_linkage.json`` (and printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import duckdb
import pandas as pd

from orchestration.lib.matching.encoded_model import link_encoded_frame
from orchestration.lib.matching.encoding import Encoder, encode_person_records, match_addresses_locally
from orchestration.lib.matching.metrics import pairwise_metrics
from orchestration.lib.matching.run import link_frame
from tests.support import matching_county as testdata

SECRET = bytes.fromhex("9f" * 32)


def _f1(index: pd.DataFrame, truth: pd.DataFrame) -> dict:
    m = pairwise_metrics(index, truth)
    return {k: m[k] for k in ("precision", "recall", "f1", "records_scored")}


def compare(records: pd.DataFrame, truth: pd.DataFrame, gazetteer, postcodes) -> dict:
    """Clear and encoded linkage of the same records (both with the partner-side address match)."""
    t = time.perf_counter()
    matched = match_addresses_locally(records, gazetteer, postcodes)
    match_s = time.perf_counter() - t
    t = time.perf_counter()
    clear = link_frame(matched)
    clear_s = time.perf_counter() - t
    t = time.perf_counter()
    encoded = encode_person_records(records, Encoder(SECRET), gazetteer, postcodes)
    encode_s = time.perf_counter() - t
    t = time.perf_counter()
    result = link_encoded_frame(encoded)
    link_s = time.perf_counter() - t
    out = {"records": len(records), "clear": _f1(clear, truth), "encoded": _f1(result.person_index, truth),
           "address_match_seconds": round(match_s, 1), "clear_link_seconds": round(clear_s, 1),
           "encode_seconds": round(encode_s, 1), "encoded_link_seconds": round(link_s, 1),
           "encode_records_per_second": round(len(records) / encode_s),
           "encoded_link_records_per_minute": round(len(records) / link_s * 60)}
    out["f1_gap"] = round(out["clear"]["f1"] - out["encoded"]["f1"], 5)
    return out, encoded


def county_records(home: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The synthetic county's standard person records, read from landing exactly as ingest reads them."""
    from orchestration.lib.contracts import load_contracts
    from orchestration.lib.feeds.load import feed_drops, parse_file
    from orchestration.lib.governance.erasure import Exclusions

    frames = []
    now = dt.datetime.now()
    for feed in load_contracts().feeds():
        if feed.person is None:
            continue
        for partition, paths in feed_drops(home / "landing", feed).items():
            for path in paths:
                parsed = parse_file(feed, path, path.name, "-", dt.date.fromisoformat(partition), now,
                                    frozenset(), Exclusions())
                if parsed.people is not None and parsed.people.num_rows:
                    frames.append(parsed.people.to_pandas())
    records = pd.concat(frames, ignore_index=True).drop(columns=["_line", "partition"])
    records = records.drop_duplicates("record_id")
    truth = pd.read_parquet(home / "truth" / "records.parquet")
    truth = truth[truth["person_id"].notna()]
    truth = pd.DataFrame({"record_id": truth["partner"] + "." + truth["feed"] + ":" + truth["record_id"].astype(str),
                          "person_id": truth["person_id"]}).drop_duplicates("record_id")
    records = records[records["record_id"].isin(truth["record_id"])]
    gaz = pd.read_csv(home / "reference" / "gazetteer.csv", dtype=str)
    pcs = pd.read_csv(home / "reference" / "postcodes.csv", dtype=str)
    return records, truth, gaz, pcs


def frequency_attack(encoded: pd.DataFrame, records: pd.DataFrame, public: pd.Series, top: int = 100) -> dict:
    """Rank-align encoded given names with the attacker's frequency list; count correct among the top names."""
    con = duckdb.connect()
    clear = records[["record_id", "given_name"]].copy()
    clear["given_name"] = clear["given_name"].str.lower().str.replace("[^a-z]", "", regex=True)
    both = encoded[["record_id", "given_name", "given_name_bf"]].merge(clear, on="record_id",
                                                                        suffixes=("_enc", "_clear"))
    truth_of = both.dropna().groupby("given_name_enc")["given_name_clear"].agg(lambda s: s.mode().iloc[0])
    bf_truth = both.dropna().groupby("given_name_bf")["given_name_clear"].agg(lambda s: s.mode().iloc[0])
    names = public.value_counts().index[:top].tolist()
    out = {}
    for label, col, truth in (("hmac_token", "given_name_enc", truth_of), ("bloom_filter", "given_name_bf", bf_truth)):
        ranked = both[col].dropna().value_counts().index[:top].tolist()
        guesses = dict(zip(ranked, names, strict=False))
        out[f"{label}_reidentified_of_top_{top}"] = sum(truth.get(enc) == name for enc, name in guesses.items())
    con.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=2000)
    ap.add_argument("--county", type=Path)
    ap.add_argument("--scale-people", type=int, default=0)
    ap.add_argument("--scale-clear", action="store_true", help="also link the scale set with the clear model")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/encoded_linkage.json"))
    args = ap.parse_args()
    res: dict = {"at": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.processor() or
                 platform.machine(), "cores": os.cpu_count()}
    c = testdata.make_county(n_people=args.people)
    res["independent"], _ = compare(c["records"], c["truth"], c["gazetteer"], c["postcodes"])
    print("independent", json.dumps(res["independent"]))
    if args.county:
        records, truth, gaz, pcs = county_records(args.county)
        res["county"], encoded = compare(records, truth, gaz, pcs)
        res["county"]["home"] = str(args.county)
        print("county", json.dumps(res["county"]))
        people = pd.read_parquet(args.county / "truth" / "people.parquet")
        public = people["given_name"].str.lower().str.replace("[^a-z]", "", regex=True)
        res["frequency_attack"] = frequency_attack(encoded, records, public)
        print("frequency attack", res["frequency_attack"])
    if args.scale_people:
        c = testdata.make_county(n_people=args.scale_people)
        t = time.perf_counter()
        enc = encode_person_records(c["records"], Encoder(SECRET), c["gazetteer"], c["postcodes"])
        encode_s = time.perf_counter() - t
        # the machine is shared: the load average around each timed link says how far from a quiet machine's
        load = {"load_before_encoded_link": os.getloadavg()[0]}
        t = time.perf_counter()
        result = link_encoded_frame(enc)
        link_s = time.perf_counter() - t
        load["load_after_encoded_link"] = os.getloadavg()[0]
        res["scale"] = {"records": len(enc), "encode_records_per_second": round(len(enc) / encode_s),
                        "encoded_link_seconds": round(link_s, 1),
                        "encoded_link_records_per_minute": round(len(enc) / link_s * 60),
                        **{f"encoded_{k}": v for k, v in _f1(result.person_index, c["truth"]).items()}}
        if args.scale_clear:  # the clear model on the same records, under (about) the same load
            matched = match_addresses_locally(c["records"], c["gazetteer"], c["postcodes"])
            load["load_before_clear_link"] = os.getloadavg()[0]
            t = time.perf_counter()
            clear = link_frame(matched)
            clear_s = time.perf_counter() - t
            load["load_after_clear_link"] = os.getloadavg()[0]
            res["scale"].update({"clear_link_seconds": round(clear_s, 1),
                                 "clear_link_records_per_minute": round(len(enc) / clear_s * 60),
                                 **{f"clear_{k}": v for k, v in _f1(clear, c["truth"]).items()}})
        res["scale"].update({k: round(v, 2) for k, v in load.items()})
        print("scale", res["scale"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
