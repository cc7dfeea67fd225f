"""Person linkage on DuckDB beside Spark local[2], on the same ingested home (issue #26, docs/scaling.md).

    uv run --frozen --no-sync python benchmarks/spark_scaling.py HOME [--train-on-spark] [--out FILE]

HOME is a home after `placelink generate` + `placelink ingest` (e.g. tiny or small). Each engine matches a copy of
it in full: DuckDB trains the model with EM; Spark either predicts with that same saved model JSON (default: the
engines compared on the same parameters) or trains its own with EM (--train-on-spark: the whole stage on Spark).
Writes seconds per engine, seconds per 1,000 person records, and the pairwise agreement of the two clusterings.
Keep Spark at local[2] / 2 GB on shared machines (PLACELINK_SPARK_MASTER, PLACELINK_SPARK_DRIVER_MEMORY).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestration.lib.config import get_settings  # noqa: E402
from orchestration.lib.matching import metrics as lm  # noqa: E402
from orchestration.lib.matching.run import run_matching  # noqa: E402


def _match(source: Path, home: Path, engine: str, models_from: Path | None) -> dict:
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(source, home, ignore=shutil.ignore_patterns("*.lock", "models", "spark", "spark-warehouse"))
    if models_from is not None:
        shutil.copytree(models_from, home / "models")
    settings = get_settings(home=home, env="local", engine=engine)
    t0 = time.perf_counter()
    out = run_matching(settings, full=True, log_to_mlflow=False)
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("home", type=Path)
    ap.add_argument("--train-on-spark", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    source = args.home.resolve()
    work = source.parent / f"{source.name}-bench"
    duck = _match(source, work / "duckdb", "duckdb", None)
    spark = _match(source, work / "spark", "spark", None if args.train_on_spark else work / "duckdb" / "models")
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{work / 'duckdb' / 'identifiable.duckdb'}' AS d (READ_ONLY)")
        con.execute(f"ATTACH '{work / 'spark' / 'identifiable.duckdb'}' AS s (READ_ONLY)")
        agreement = lm.pairwise_metrics_sql(con, "s.link.person_index", "d.link.person_index")
    n = duck["records"]
    keep = ("records", "persons", "link_seconds", "address_seconds", "wall_seconds", "person_f1", "model")
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "home": source.name,
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 1),
                    "python": platform.python_version()},
        "spark": {"master": os.environ.get("PLACELINK_SPARK_MASTER", "local[2]"),
                  "driver_memory": os.environ.get("PLACELINK_SPARK_DRIVER_MEMORY", "2g"),
                  "training": "EM on Spark" if args.train_on_spark else "the DuckDB-trained model JSON"},
        "duckdb": {k: duck.get(k) for k in keep}, "spark_run": {k: spark.get(k) for k in keep},
        "link_seconds_per_1000_records": {"duckdb": round(duck["link_seconds"] / n * 1000, 2),
                                          "spark": round(spark["link_seconds"] / n * 1000, 2)},
        "spark_vs_duckdb_pairwise_f1": agreement["f1"],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
