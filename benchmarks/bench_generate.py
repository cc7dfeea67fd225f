"""Benchmark the synthetic county generator: wall time, CPU time and peak RSS at a given scale.

    uv run python benchmarks/bench_generate.py --scale county

Runs ``placelink generate`` in a child process (so peak RSS is the generator's alone, via ``os.wait4``) into a
temporary home, then writes ``benchmarks/results/generate_<scale>.json`` with the figures and record counts.
Targets (issue 3): county scale in <= 5 minutes and <= 6 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "county"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--months", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated home (printed at the end)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix=f"placelink-bench-{args.scale}-"))
    argv = [sys.executable, "-m", "orchestration.cli", "generate", "--scale", args.scale, "--seed", str(args.seed),
            "--out", str(home)]
    if args.months:
        argv += ["--months", str(args.months)]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    summary = {}
    if (home / "truth" / "summary.json").exists():
        summary = json.loads((home / "truth" / "summary.json").read_text())
    size_mb = sum(p.stat().st_size for p in home.rglob("*") if p.is_file()) / 1e6
    result = {
        "benchmark": "generate", "scale": args.scale, "seed": args.seed, "returncode": code,
        "wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "output_mb": round(size_mb, 1),
        "cpus": os.cpu_count(),
        # wall time on a shared machine: compare cpu_s with wall_s; the generator is single-threaded
        "load_avg_before": round(load_before, 2), "load_avg_after": round(os.getloadavg()[0], 2), "residents": summary.get("residents"), "months": summary.get("months"),
        "total_records": summary.get("total_records"), "records": summary.get("records"),
        "targets": {"wall_s": 300, "peak_rss_mb": 6144} if args.scale == "county" else None,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = ROOT / "benchmarks" / "results" / f"generate_{args.scale}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "records"}, indent=2))
    if not args.keep:
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    else:
        print(f"kept {home}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
