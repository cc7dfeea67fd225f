"""The peer for person linkage: the `recordlinkage` toolkit, as a pandas user would set it up.

Runs in its own virtual environment (``benchmarks/.venv-peers``) because recordlinkage caps pandas < 3 and
cannot share placelink's lock. Input: a Parquet file of standard person records (record_id, given_name,
family_name, date_of_birth, sex, postcode, address, nhs_number). Output (stdout): JSON with the predicted
matching pairs' count and the time taken; F1 is scored by the caller against the same truth as Splink.

The setup is the textbook one from the recordlinkage docs: block on postcode and on soundex(family name) +
birth year, compare names with Jaro-Winkler, DOB/postcode/NHS number exactly, then classify with the
unsupervised ECM classifier (no labels, like Splink's EM).
"""

from __future__ import annotations

import json
import sys
import time

import pandas as pd
import recordlinkage
from recordlinkage.preprocessing import phonetic


def main(in_path: str, pairs_out: str, candidates_out: str | None = None) -> None:
    df = pd.read_parquet(in_path).set_index("record_id")
    start = time.perf_counter()
    df["family_soundex"] = phonetic(df["family_name"].fillna(""), method="soundex")
    df["birth_year"] = df["date_of_birth"].astype("string").str[:4]
    indexer = recordlinkage.Index()
    indexer.block("postcode")
    indexer.block(["family_soundex", "birth_year"])
    candidates = indexer.index(df)
    compare = recordlinkage.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85, label="given")
    compare.string("family_name", "family_name", method="jarowinkler", threshold=0.85, label="family")
    compare.exact("date_of_birth", "date_of_birth", label="dob")
    compare.exact("postcode", "postcode", label="postcode")
    compare.exact("nhs_number", "nhs_number", label="nhs")
    features = compare.compute(candidates, df)
    classifier = recordlinkage.ECMClassifier(binarize=0.5)
    matches = classifier.fit_predict(features)
    elapsed = time.perf_counter() - start
    pairs = pd.DataFrame(list(matches), columns=["record_id_l", "record_id_r"])
    pairs.to_parquet(pairs_out)
    if candidates_out:  # the blocked pairs, for blocking recall (benchmarks/linkage_quality.py)
        pd.DataFrame(list(candidates), columns=["record_id_l", "record_id_r"]).astype(str).to_parquet(candidates_out)
    json.dump({"seconds": elapsed, "candidates": int(len(candidates)), "pairs": int(len(pairs))}, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:4])
