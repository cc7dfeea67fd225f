"""Person-linkage quality on labelled data we did not generate: placelink vs Splink tutorial settings vs recordlinkage.

For each labelled set (``benchmarks/linkage_sets.py``): pairwise precision / recall / F1, cluster-level precision /
recall (share of predicted clusters that are exactly a true person, share of true persons found exactly), blocking
recall (share of true pairs that the blocking rules put in front of the model at all) and the number of comparisons
the blocking generates -- for

- **placelink**: ``placelink link`` (``run.link_frame``, the CLI's path): trained on the set itself, no labels;
- **splink_tutorial**: Splink 5 with the settings of its own deduplication tutorial (forename/surname, date of
  birth, postcode comparisons; its ten blocking rules; λ, u, two EM sessions; clusters at 0.95), on the same
  records, given the same address text as one Jaro-Winkler comparison;
- **recordlinkage**: ``benchmarks/peers/recordlinkage_peer.py`` (its textbook ECM setup) in ``benchmarks/.venv-peers``.

Tuning discipline (docs/matching.md): the model was changed looking at ``febrl1`` and ``uk_style`` (seed 1) only;
``febrl2``, ``febrl4``, ``uk_style_s2`` (another seed of the generator) and the county at two seeds are reported,
never tuned on.

Usage::

    uv run python benchmarks/linkage_quality.py                     # every set, every method
    uv run python benchmarks/linkage_quality.py --sets febrl1 uk_style --methods placelink

Writes ``benchmarks/results/<date>-linkage-quality.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import linkage_sets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PEER_PYTHON = ROOT / "benchmarks" / ".venv-peers" / "bin" / "python"
TUNED_ON = {"febrl1", "uk_style"}


# --- scoring ----------------------------------------------------------------------------------------------------

def score(predicted: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Pairwise and cluster-level precision/recall of ``predicted`` (record_id, person_id) against ``truth``."""
    from orchestration.lib.matching.metrics import cluster_metrics, pairwise_metrics

    pw = pairwise_metrics(predicted.astype(str), truth.astype(str))
    return {"precision": pw["precision"], "recall": pw["recall"], "f1": pw["f1"],
            **cluster_metrics(predicted, truth), "true_pairs": pw["true_pairs"],
            "predicted_pairs": pw["predicted_pairs"]}


def blocking_stats(con: duckdb.DuckDBPyConnection, table: str, rule_sqls: list[str], truth: pd.DataFrame) -> dict:
    from orchestration.lib.matching.metrics import blocking_stats as stats

    return stats(con, table, rule_sqls, truth)


def _rule_sqls(settings_creator) -> list[str]:
    return [r.get_blocking_rule("duckdb").blocking_rule_sql
            for r in settings_creator.blocking_rules_to_generate_predictions]


# --- methods ----------------------------------------------------------------------------------------------------

def run_placelink(records: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """``placelink link-eval``'s own evaluation (``run.evaluate_frame``): link, then score against the labels."""
    from orchestration.lib.matching.run import evaluate_frame

    labelled = records.merge(truth.rename(columns={"person_id": "_true_person"}), on="record_id")
    t0 = time.perf_counter()
    out = evaluate_frame(labelled, label_column="_true_person", where="benchmark")
    return out | {"seconds": out["link_seconds"], "wall_seconds": round(time.perf_counter() - t0, 2)}


def splink_tutorial_settings(national_id: bool = False):
    """The settings of Splink's own deduplication tutorial (the 50k synthetic people example), with our columns:
    first_name -> given_name, surname -> family_name, postcode_fake -> postcode; address text stands in for the
    tutorial's birth_place/occupation as one Jaro-Winkler comparison."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "family_name"),
            block_on("family_name", "dob"),
            block_on("given_name", "dob"),
            block_on("postcode", "given_name"),
            block_on("postcode", "family_name"),
            block_on("dob", "address"),
            block_on("substr(postcode,1,3)", "dob"),
            block_on("substr(postcode,1,3)", "given_name"),
            block_on("substr(postcode,1,3)", "family_name"),
            block_on("substr(given_name,1,2)", "substr(family_name,1,2)", "substr(dob,1,4)"),
        ],
        comparisons=[
            cl.ForenameSurnameComparison("given_name", "family_name",
                                         forename_surname_concat_col_name="given_name_family_name"),
            cl.DateOfBirthComparison("dob", input_is_string=True),
            cl.PostcodeComparison("postcode"),
            cl.JaroWinklerAtThresholds("address", [0.9, 0.7]),
            # Splink's FEBRL examples compare soc_sec_id; given to it whenever placelink is given it
            *([cl.DamerauLevenshteinAtThresholds("national_id", [1, 2])] if national_id else []),
        ],
        retain_intermediate_calculation_columns=False,
    )


def run_splink_tutorial(records: pd.DataFrame, truth: pd.DataFrame) -> dict:
    from splink import DuckDBAPI, Linker, block_on

    con = duckdb.connect()
    r = records
    df = pd.DataFrame({
        "unique_id": r["record_id"].astype(str),
        "given_name": r.get("given_name", pd.Series(None, index=r.index)).astype("string").str.lower().str.strip(),
        "family_name": r.get("family_name", pd.Series(None, index=r.index)).astype("string").str.lower().str.strip(),
        "dob": pd.to_datetime(r.get("date_of_birth", pd.Series(None, index=r.index)), errors="coerce")
        .dt.strftime("%Y-%m-%d").astype("string"),
        "postcode": r.get("postcode", pd.Series(None, index=r.index)).astype("string").str.upper().str.strip(),
        "address": r.get("address", pd.Series(None, index=r.index)).astype("string").str.lower().str.strip(),
    })
    national_id = "national_id" in r.columns
    if national_id:
        df["national_id"] = r["national_id"].astype("string").str.strip()
    df["given_name_family_name"] = df["given_name"] + df["family_name"]
    t0 = time.perf_counter()
    db = DuckDBAPI(con)
    settings = splink_tutorial_settings(national_id)
    linker = Linker(db.register(df), settings, log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "family_name", "dob"),
         block_on("substr(given_name,1,2)", "family_name", "substr(postcode,1,2)"),
         block_on("dob", "postcode")], recall=0.6)
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("given_name", "family_name"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
    pred = linker.inference.predict(threshold_match_probability=0.2)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, threshold_match_probability=0.95)
    c = clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]
    seconds = time.perf_counter() - t0
    predicted = c.rename(columns={"unique_id": "record_id", "cluster_id": "person_id"})
    con.register("_tut_df", df)
    con.execute("CREATE TABLE _tut AS SELECT * FROM _tut_df").fetchall()
    return score(predicted, truth) | blocking_stats(con, "_tut", _rule_sqls(settings), truth) | {
        "seconds": round(seconds, 2)}


def run_recordlinkage(records: pd.DataFrame, truth: pd.DataFrame) -> dict:
    if not PEER_PYTHON.exists():
        return {"error": "benchmarks/.venv-peers missing (benchmarks/run.py ensure_peer_venv builds it)"}
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    with tempfile.TemporaryDirectory() as tmp:
        src, pairs_out, cand_out = (Path(tmp) / n for n in ("in.parquet", "pairs.parquet", "cand.parquet"))
        cols = ["record_id", "given_name", "family_name", "date_of_birth", "sex", "postcode", "address", "nhs_number"]
        records.reindex(columns=cols).astype("string").to_parquet(src)
        t0 = time.perf_counter()
        proc = subprocess.run([str(PEER_PYTHON), str(ROOT / "benchmarks" / "peers" / "recordlinkage_peer.py"),
                               str(src), str(pairs_out), str(cand_out)], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            return {"error": proc.stderr[-500:]}
        info = json.loads(proc.stdout)
        pairs = pd.read_parquet(pairs_out).astype(str)
        cand = pd.read_parquet(cand_out).astype(str)
    ids = records["record_id"].astype(str).reset_index(drop=True)
    ix = pd.Series(range(len(ids)), index=ids)
    n = len(ids)
    g = coo_matrix(([1] * len(pairs), (ix[pairs["record_id_l"]].to_numpy(), ix[pairs["record_id_r"]].to_numpy())),
                   shape=(n, n))
    _, labels = connected_components(g, directed=False)
    predicted = pd.DataFrame({"record_id": ids, "person_id": labels.astype(str)})
    con = duckdb.connect()
    t = truth.astype(str)
    con.register("_t", t)
    con.register("_c", cand)
    true_pairs = con.execute("""SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM
                                (SELECT count(*) AS n FROM _t GROUP BY person_id)""").fetchall()[0][0]
    reached = con.execute("""SELECT count(*) FROM (SELECT DISTINCT least(a, b) a, greatest(a, b) b FROM
                             (SELECT record_id_l a, record_id_r b FROM _c)) c
                             JOIN _t l ON l.record_id = c.a JOIN _t r ON r.record_id = c.b
                             WHERE l.person_id = r.person_id""").fetchall()[0][0]
    return score(predicted, truth) | {"comparisons": info["candidates"],
                                      "blocking_recall": round(reached / true_pairs, 4) if true_pairs else 1.0,
                                      "seconds": round(info["seconds"], 2), "wall_seconds": round(wall, 2)}


METHODS = {"placelink": run_placelink, "splink_tutorial": run_splink_tutorial, "recordlinkage": run_recordlinkage}


# --- report -----------------------------------------------------------------------------------------------------

def write_report(results: dict, label: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{label}-linkage-quality"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    lines = [f"# Person-linkage quality on labelled sets ({label})", "",
             f"`uv run python benchmarks/linkage_quality.py` at {results['code_version']}; tuned on: "
             f"{', '.join(sorted(TUNED_ON))}; the other sets are only reported.", "",
             "| set | records | true pairs | method | P | R | **F1** | cluster P | cluster R | blocking recall "
             "| comparisons | s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in results["sets"].items():
        for method, m in entry["methods"].items():
            if "error" in m:
                lines.append(f"| {name} | {entry['records']:,} | | {method} | error: {m['error'][:80]} |"
                             " | | | | | | |")
                continue
            lines.append(f"| {name}{' (tuned on)' if name in TUNED_ON else ''} | {entry['records']:,} | "
                         f"{m['true_pairs']:,} | {method} | {m['precision']:.3f} | {m['recall']:.3f} | "
                         f"**{m['f1']:.3f}** | {m['cluster_precision']:.3f} | {m['cluster_recall']:.3f} | "
                         f"{m['blocking_recall']:.3f} | {m['comparisons']:,} | {m['seconds']} |")
    lines += ["", "Cluster P = share of predicted persons that are exactly a true person; cluster R = share of true "
              "persons reproduced exactly. Blocking recall = share of true pairs that any blocking rule generates "
              "(placelink: over records with a date of birth or a family name; the others are singletons by "
              "design).", ""]
    path = stem.with_suffix(".md")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(linkage_sets.SETS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--label", default=datetime.now(UTC).strftime("%Y-%m-%d"))
    args = ap.parse_args()
    version = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=ROOT).stdout.strip()
    results: dict = {"code_version": version, "sets": {}}
    for name in args.sets:
        records, truth = linkage_sets.SETS[name]()
        entry = {"records": len(records), "persons": int(truth["person_id"].nunique()), "methods": {}}
        for method in args.methods:
            try:
                entry["methods"][method] = METHODS[method](records, truth)
            except Exception as exc:  # one method failing on one set must not lose the rest of the table
                entry["methods"][method] = {"error": f"{type(exc).__name__}: {exc}"}
            print(name, method, json.dumps(entry["methods"][method]), flush=True)
        results["sets"][name] = entry
    print(write_report(results, args.label))


if __name__ == "__main__":
    main()
