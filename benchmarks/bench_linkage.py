"""Benchmark the matching stage: full linkage throughput, one day's incremental drop, peak RSS.

Two sources of data:
- ``--people N`` (default): the matching stage's own test county (``tests.support.matching_county``),
  ~3 records per person, laid out as a home; fast to build at any size.
- ``--home PATH``: an already ingested home (e.g. ``placelink generate --scale medium`` + ``placelink ingest``).

For the incremental figure, 1/30 of a month's records (one day's drop, sampled at random) is held back, the
rest is linked in full, then the held-back day is linked incrementally against the index.

Usage::

    uv run python benchmarks/bench_linkage.py --people 200000      # ~600k records
    uv run python benchmarks/bench_linkage.py --home /tmp/medium   # a generated + ingested county
    uv run python benchmarks/bench_linkage.py --home /tmp/county --first-only   # only the first link (with EM)

Writes ``benchmarks/results/linkage_<label>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import duckdb


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _stage_seconds(run: dict) -> float:
    """Address matching + person linkage + writing the index (without reading records or scoring truth)."""
    return sum(run[k] for k in ("address_seconds", "link_seconds", "write_seconds"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=200_000)
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--label", default=None, help="name of the results file (default from the data)")
    ap.add_argument("--day-share", type=float, default=None,
                    help="share of records in one day's drop (default: 1/(30*months) for --home, 1/720 otherwise)")
    ap.add_argument("--first-only", action="store_true",
                    help="time only the first link (EM training + prediction + clustering), not the re-link and "
                         "the day's drop; writes linkage_<label>_first.json")
    args = ap.parse_args()

    from orchestration.lib.config import get_settings
    from orchestration.lib.matching.run import run_matching
    from tests.support.matching_county import make_county, write_home

    work = Path(tempfile.mkdtemp(prefix="bench_linkage_"))
    home = work / "home"
    t0 = time.perf_counter()
    if args.home:
        shutil.copytree(args.home, home)
        for stale in ("person_index", "household_index", "address_matches", "person_index_changes",
                      "address_match_inputs", "review_queue", "review_decisions",
                      # the normalised gazetteer too: a first link starts from the reference files
                      "gazetteer_tokens", "gazetteer_tokens_fingerprint"):
            con = duckdb.connect(str(home / "identifiable.duckdb"))
            con.execute(f"DROP TABLE IF EXISTS link.{stale}").fetchall()
            con.close()
        shutil.rmtree(home / "models", ignore_errors=True)
        label = f"home_{args.home.name}"
        cfg = json.loads((home / "truth" / "config.json").read_text()) if (home / "truth" / "config.json").exists() \
            else {}
        day_share = args.day_share or 1 / (30 * int(cfg.get("months", 24)))
    else:
        county = make_county(n_people=args.people, seed=1)
        write_home(home, county)
        label = f"people_{args.people}"
        day_share = args.day_share or 1 / 720
    prep_s = time.perf_counter() - t0

    settings = get_settings(home=home)
    con = duckdb.connect(str(settings.identifiable_db))
    con.execute("CREATE TABLE link._all_person_records AS SELECT * FROM link.person_records").fetchall()
    n_all = con.execute("SELECT count(*) FROM link._all_person_records").fetchall()[0][0]
    con.execute(f"""CREATE OR REPLACE TABLE link.person_records AS SELECT * FROM link._all_person_records
                    WHERE hash(record_id) % 100000 >= {int(day_share * 100000)}""").fetchall()
    n_first = con.execute("SELECT count(*) FROM link.person_records").fetchall()[0][0]
    con.close()

    t = time.perf_counter()
    full = run_matching(settings, log_to_mlflow=False)
    full_s = time.perf_counter() - t
    if args.first_only:
        result = {
            "label": args.label or label, "cpus": os.cpu_count(), "records_first_night": n_first,
            "full_with_training_seconds": round(full_s, 1),
            "full_with_training_records_per_minute": round(n_first / full_s * 60),
            "full_with_training_stage_seconds": round(_stage_seconds(full), 1),
            "full_with_training_stage_records_per_minute": round(n_first / max(_stage_seconds(full), 1e-9) * 60),
            "full_with_training_breakdown": {k: full.get(k) for k in (
                "address_seconds", "link_seconds", "write_seconds", "evaluation_seconds",
                "pairs_scored_above_review_floor", "match_threshold")},
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()], "peak_rss_mb": _peak_rss_mb(),
            "person_f1_full": full.get("person_f1"), "person_strong_f1_full": full.get("person_strong_f1"),
        }
        out = Path(__file__).resolve().parent / "results" / f"linkage_{result['label']}_first.json"
        out.write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        shutil.rmtree(work, ignore_errors=True)
        return
    # the same again with the saved model: the nightly full re-link cost without training
    t = time.perf_counter()
    relink = run_matching(settings, full=True, log_to_mlflow=False)
    relink_s = time.perf_counter() - t

    con = duckdb.connect(str(settings.identifiable_db))
    con.execute("CREATE OR REPLACE TABLE link.person_records AS SELECT * FROM link._all_person_records").fetchall()
    con.close()
    t = time.perf_counter()
    inc = run_matching(settings, log_to_mlflow=False)
    inc_s = time.perf_counter() - t

    result = {
        "label": label, "cpus": os.cpu_count(), "records_total": n_all, "records_first_night": n_first,
        "records_in_day_drop": n_all - n_first, "prepare_seconds": round(prep_s, 1),
        "full_with_training_seconds": round(full_s, 1),
        "full_with_training_records_per_minute": round(n_first / full_s * 60),
        "full_with_training_stage_seconds": round(_stage_seconds(full), 1),
        "full_with_training_stage_records_per_minute": round(n_first / max(_stage_seconds(full), 1e-9) * 60),
        "full_relink_seconds": round(relink_s, 1),
        "full_relink_records_per_minute": round(n_first / relink_s * 60),
        # the stage itself (address matching + person linkage + writing the index), without scoring against
        # truth/ (which production does not have) and without reading the records
        "full_relink_stage_seconds": round(_stage_seconds(relink), 1),
        "full_relink_stage_records_per_minute": round(n_first / max(_stage_seconds(relink), 1e-9) * 60),
        "full_relink_breakdown": {k: relink.get(k) for k in (
            "address_seconds", "addresses_matched", "link_seconds", "write_seconds", "evaluation_seconds",
            "records_scored_by_splink", "pairs_scored_above_review_floor")},
        "full_with_training_breakdown": {k: full.get(k) for k in (
            "address_seconds", "link_seconds", "write_seconds", "evaluation_seconds")},
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "incremental_day_seconds": round(inc_s, 1),
        # as for the full re-link: the stage itself, without reading the records and scoring against truth/
        "incremental_day_stage_seconds": round(_stage_seconds(inc), 1),
        "incremental_address_seconds": inc["address_seconds"], "incremental_link_seconds": inc["link_seconds"],
        "incremental_write_seconds": inc["write_seconds"],
        "incremental_evaluation_seconds": inc.get("evaluation_seconds"),
        "peak_rss_mb": _peak_rss_mb(),
        "person_f1_full": full.get("person_f1"), "person_strong_f1_full": full.get("person_strong_f1"),
        "person_f1_after_incremental": inc.get("person_f1"),
        "person_f1_relink": relink.get("person_f1"), "person_strong_f1_relink": relink.get("person_strong_f1"),
        "address_uprn_accuracy": full.get("address_uprn_accuracy"), "lsoa_accuracy": full.get("lsoa_accuracy"),
        "incremental_records_rekeyed": inc.get("records_rekeyed"),
        "relink_persons_merged": relink.get("persons_merged"), "relink_persons_split": relink.get("persons_split"),
    }
    label = result["label"] = args.label or label
    out = Path(__file__).resolve().parent / "results" / f"linkage_{label}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
