"""`placelink demo` on the small county with PLACELINK_ENGINE=duckdb and =spark, each stage timed (issue #26).

    uv run --frozen --no-sync python benchmarks/spark_demo.py [--work DIR] [--report-only] [--out PREFIX]

Runs both demos at the same time, each in its own home under --work (default /dev/shm/placelink-spark-demo), so
a shared machine's load falls on both alike (an A/B pair, not two runs an hour apart). --report-only reads homes
a previous run (or two `placelink demo` commands with PLACELINK_HOME=<work>/duckdb and <work>/spark) left.

From each home's Dagster instance: every step's seconds (STEP_START to its success or failure), summed per stage
(ingest, matching, pseudonymisation, dbt, ML, publication); the whole demo's wall time and exit code; then the
agreement of the two: pairwise F1 of the person clusters (the same records in both homes) and whether every
published cell is identical. Writes PREFIX.json and PREFIX.md (default benchmarks/results/<date>-spark-small).
Spark runs local[2] with a 2 GB driver unless PLACELINK_SPARK_MASTER / PLACELINK_SPARK_DRIVER_MEMORY say otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestration.lib.config import get_settings  # noqa: E402
from orchestration.lib.matching import metrics as lm  # noqa: E402

ENGINES = ("duckdb", "spark")

#: step key prefix -> stage; the first match wins (step keys are the assets' op names)
STAGES = (
    ("placelink_dbt_models", "dbt models + disclosure control"),
    ("published", "publication (files, atlas)"),
    ("link", "address matching + person linkage"),
    ("match", "address matching + person linkage"),
    ("src", "pseudonymisation"),
    ("pseudonym", "pseudonymisation"),
    ("ml", "ML (features, training, scoring)"),
    ("raw", "ingest + quality checks"),
    ("ingest", "ingest + quality checks"),
)


def _stage(step_key: str) -> str:
    key = step_key.lower()
    if key.endswith("_quality") and key.startswith(("marts__", "published__")):
        return "quality checks of marts and published cells"
    if key.endswith("_quality") or key.startswith("quality"):
        return "ingest + quality checks"
    if key == "reference_tables":
        return "pseudonymisation"
    for prefix, stage in STAGES:
        if key.startswith(prefix):
            return stage
    return "other"


def _run_demos(work: Path) -> dict[str, dict]:
    procs = {}
    for engine in ENGINES:
        home = work / engine
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        env = {**os.environ, "PLACELINK_ENGINE": engine, "PLACELINK_HOME": str(home)}
        log = (work / f"{engine}.log").open("w")
        procs[engine] = (subprocess.Popen([sys.executable, "-m", "orchestration.cli", "demo"], cwd=ROOT, env=env,
                                          stdout=log, stderr=subprocess.STDOUT), time.perf_counter(), log)
    out = {}
    for engine, (proc, t0, log) in procs.items():
        code = proc.wait()
        log.close()
        out[engine] = {"exit_code": code, "wall_seconds": round(time.perf_counter() - t0, 1)}
    return out


def _steps(home: Path) -> list[dict]:
    """Every step of every run in the home's Dagster instance: key, seconds, status."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(get_settings(home=home).dagster_home))
    try:
        steps: dict[tuple[str, str], dict] = {}
        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id):
                event = entry.dagster_event
                if event is None or not entry.step_key:
                    continue
                step = steps.setdefault((run.run_id, entry.step_key), {"step": entry.step_key, "job": run.job_name})
                kind = event.event_type_value
                if kind == "STEP_START":
                    step["start"] = entry.timestamp
                elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
                    step["end"] = entry.timestamp
                    step["status"] = "success" if kind == "STEP_SUCCESS" else "failure"
        out = []
        for step in steps.values():
            if "start" in step and "end" in step:
                out.append({"step": step["step"], "job": step["job"], "status": step["status"],
                            "seconds": round(step["end"] - step["start"], 1), "stage": _stage(step["step"])})
        return sorted(out, key=lambda s: s["step"])
    finally:
        instance.dispose()


def _agreement(work: Path) -> dict:
    d, s = (get_settings(home=work / e, env="local", engine=e) for e in ENGINES)
    out: dict = {}
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{d.identifiable_db}' AS d (READ_ONLY)")
        con.execute(f"ATTACH '{s.identifiable_db}' AS s (READ_ONLY)")
        out["person_clusters"] = lm.pairwise_metrics_sql(con, "s.link.person_index", "d.link.person_index")
        for name in sorted(p.name for p in d.published.glob("*.parquet")):
            a, b = d.published / name, s.published / name
            if not b.exists():
                out[f"published/{name}"] = "missing on Spark"
                continue
            only_d, only_s, rows = con.execute(f"""SELECT
                (SELECT count(*) FROM (FROM read_parquet('{a}') EXCEPT ALL FROM read_parquet('{b}'))),
                (SELECT count(*) FROM (FROM read_parquet('{b}') EXCEPT ALL FROM read_parquet('{a}'))),
                (SELECT count(*) FROM read_parquet('{a}'))""").fetchall()[0]
            out[f"published/{name}"] = {"rows": rows, "only_duckdb": only_d, "only_spark": only_s,
                                        "identical": only_d == only_s == 0}
    return out


def _markdown(result: dict) -> str:
    stages = sorted({s["stage"] for e in ENGINES for s in result[e]["steps"]})
    lines = [f"# `placelink demo`, small county: DuckDB beside Spark local[2] ({result['date']})", "",
             f"Command: `{result['command']}` at commit {result['commit']}. Both demos ran at the same time on "
             f"the {os.cpu_count()}-core shared build machine; load average {result['load_before']} "
             f"({'during the runs' if '--report-only' in result['command'] else 'before'}), "
             f"{result['load_after']} when this report was written. {result['note']}", "",
             "| stage (sum of its Dagster steps) | DuckDB s | Spark local[2] s | Spark / DuckDB |", "|---|---|---|---|"]
    for stage in stages:
        secs = [sum(s["seconds"] for s in result[e]["steps"] if s["stage"] == stage) for e in ENGINES]
        ratio = f"{secs[1] / secs[0]:.1f}x" if secs[0] else "-"
        lines.append(f"| {stage} | {secs[0]:,.1f} | {secs[1]:,.1f} | {ratio} |")
    wall = [result[e]["wall_seconds"] for e in ENGINES]
    lines.append(f"| **whole demo (wall, exit code {result['duckdb']['exit_code']} / {result['spark']['exit_code']})**"
                 f" | {wall[0]:,.1f} | {wall[1]:,.1f} | {wall[1] / wall[0]:.1f}x |")
    agreement = result["agreement"]
    pc = agreement.get("person_clusters", {})
    lines += ["", "Agreement of the two homes (the same generated county):", "",
              f"- person clusters: pairwise F1 of Spark's against DuckDB's {pc.get('f1')} "
              f"(precision {pc.get('precision')}, recall {pc.get('recall')}, {pc.get('records_scored')} records)"]
    for key, value in agreement.items():
        if key.startswith("published/"):
            lines.append(f"- {key}: {value}")
    lines += ["", "Every step (seconds):", "", "| step | stage | DuckDB | Spark |", "|---|---|---|---|"]
    by = {e: {s["step"]: s["seconds"] for s in result[e]["steps"]} for e in ENGINES}
    for step in sorted(set(by["duckdb"]) | set(by["spark"])):
        lines.append(f"| {step} | {_stage(step)} | {by['duckdb'].get(step, '-')} | {by['spark'].get(step, '-')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/dev/shm/placelink-spark-demo"))
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    out = args.out or ROOT / "benchmarks" / "results" / f"{date}-spark-small"
    load_before = os.getloadavg()[0]
    runs = {e: {"exit_code": None, "wall_seconds": None} for e in ENGINES}
    if not args.report_only:
        runs = _run_demos(args.work)
    elif (args.work / "runs.json").exists():  # the demos' exit codes, wall times and load, noted when they ran
        runs = json.loads((args.work / "runs.json").read_text())
        load_before = runs.get("load_during", load_before)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    result = {"date": date, "commit": commit.strip(), "command": " ".join(["python benchmarks/spark_demo.py", *sys.argv[1:]]),
              "load_before": load_before if isinstance(load_before, str) else round(load_before, 1), "load_after": round(os.getloadavg()[0], 1),
              "note": runs.get("note", ""),
              **{e: {**runs[e], "steps": _steps(args.work / e)} for e in ENGINES},
              "agreement": _agreement(args.work)}
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(_markdown(result))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
