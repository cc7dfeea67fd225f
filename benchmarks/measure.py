"""Measure a command the same way every time: wall time, CPU time and peak RSS of that one child process.

``os.wait4`` returns the resource usage of exactly the child we waited for, so peak RSS is per stage rather
than the maximum over every child this process ever had (which is what ``RUSAGE_CHILDREN`` would give).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import asdict, dataclass


@dataclass
class Measurement:
    name: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def run_measured(name: str, argv: list[str], env: dict | None = None, cwd: str | None = None,
                 log_path: str | None = None) -> Measurement:
    """Run ``argv`` as a child process and return its wall time, user+system CPU time and peak RSS."""
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log_path:
            log.close()
    return Measurement(
        name=name,
        wall_s=round(wall, 3),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        returncode=proc.returncode,
    )


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return float("nan")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
