"""clkhash 0.18.3 (last release 2023) against our encoder (orchestration/lib/matching/encoding.py), on speed.

clkhash is not in our lock, so it runs in a throwaway environment:

    uv venv /tmp/clk && uv pip install --python /tmp/clk clkhash
    uv run --frozen --no-sync python benchmarks/clkhash_comparison.py --names /tmp/names.csv   # ours (writes names)
    /tmp/clk/bin/python benchmarks/clkhash_comparison.py --names /tmp/names.csv --clkhash     # clkhash

Same names (the independent labelled set at 7,000 people: 21,094 records, given + family name), bigrams,
10 bits per bigram. clkhash makes one 1,024-bit filter per record from both fields (its schema v3, BLAKE2 hashing);
ours makes one balanced 1,024-bit filter per field.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import time
from pathlib import Path


def ours(names: Path) -> dict:
    import pandas as pd

    from orchestration.lib.matching.encoding import Encoder
    from tests.support import matching_county as testdata

    if not names.exists():
        r = testdata.make_county(n_people=7000)["records"]
        clean = [(re.sub("[^a-z]", "", str(g).lower()), re.sub("[^a-z]", "", str(f).lower()))
                 for g, f in zip(r.given_name.fillna(""), r.family_name.fillna(""), strict=True)]
        names.write_text("".join(f"{g},{f}\n" for g, f in clean))
    d = pd.read_csv(names, header=None, names=["g", "f"], dtype=str, keep_default_na=False).replace("", None)
    t = time.perf_counter()
    enc = Encoder(b"s" * 32)
    enc.blooms("given_name", d.g), enc.blooms("family_name", d.f)
    distinct = time.perf_counter() - t
    enc = Encoder(b"t" * 32)
    t = time.perf_counter()
    for g, f in zip(d.g, d.f, strict=True):
        enc.bloom("given_name", g), enc.bloom("family_name", f)
    per_record = time.perf_counter() - t
    return {"records": len(d), "ours_distinct_values_records_per_second": round(len(d) / distinct),
            "ours_every_record_records_per_second": round(len(d) / per_record)}


def clkhash_speed(names: Path) -> dict:
    import clkhash
    from clkhash import clk
    from clkhash import schema as S

    field = {"format": {"type": "string", "encoding": "utf-8"},
             "hashing": {"comparison": {"type": "ngram", "n": 2}, "strategy": {"bitsPerToken": 10},
                         "hash": {"type": "blakeHash"}}}
    schema = S.from_json_dict({
        "version": 3,
        "clkConfig": {"l": 1024, "kdf": {"type": "HKDF", "hash": "SHA256", "salt": "", "info": "", "keySize": 64}},
        "features": [{"identifier": "id", "ignored": True}, {"identifier": "given", **field},
                     {"identifier": "family", **field}]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "given", "family"])
    for i, line in enumerate(names.read_text().splitlines()):
        w.writerow([i, *line.split(",")])
    buf.seek(0)
    t = time.perf_counter()
    out = clk.generate_clk_from_csv(buf, "secret-of-the-partners", schema, validate=True, header=True,
                                    progress_bar=False)
    s = time.perf_counter() - t
    return {"clkhash_version": getattr(clkhash, "__version__", "0.18.3"), "records": len(out),
            "clkhash_records_per_second": round(len(out) / s)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--names", type=Path, default=Path("/tmp/names.csv"))
    ap.add_argument("--clkhash", action="store_true")
    a = ap.parse_args()
    print(json.dumps(clkhash_speed(a.names) if a.clkhash else ours(a.names)))
