"""Benchmark the dbt stage: full ``dbt build`` time, and the LSOA x month mart against a bare DuckDB GROUP BY.

    uv run python benchmarks/bench_dbt.py --scale small      # 48 LSOAs, 12 months
    uv run python benchmarks/bench_dbt.py --scale county     # 1,008 LSOAs (12 districts), 12 months

The warehouse is the synthetic fixture of tests/support/dbt_warehouse.py (same tables the pipeline writes).
"mart" = ``dbt run --select lsoa_monthly_indicators --full-refresh`` (the model's execution time from dbt's
run_results, and the wall time of the whole dbt invocation); "bare" = one DuckDB GROUP BY of
int_events_joined_to_places into LSOA x month x indicator counts over the same rows. Target: mart/bare within 3x.
Results go to benchmarks/results/bench_dbt_<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb

from orchestration.lib import dbt_runner
from orchestration.lib.config import get_settings
from tests.support.dbt_warehouse import FixtureShape, build_fixture_warehouse

SHAPES = {
    "small": FixtureShape(districts=4, wards_per_district=3, msoas_per_district=3, lsoas_per_msoa=4, months=12,
                          people=5_000, events_per_lsoa_month=20),
    "county": FixtureShape(districts=12, wards_per_district=28, msoas_per_district=14, lsoas_per_msoa=6, months=12,
                           people=150_000, events_per_lsoa_month=40),
}

BARE = """
create or replace table bench_bare as
select lsoa_code, event_month as month, indicator, count(*) as event_count
from intermediate.int_events_joined_to_places
where lsoa_code is not null
group by lsoa_code, event_month, indicator
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SHAPES), default="small")
    parser.add_argument("--home", type=Path, default=None, help="keep the warehouse here (default: a temp dir)")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix=f"bench_dbt_{args.scale}_"))
    settings = get_settings(home=home, env="local").ensure()
    out: dict = {"scale": args.scale, "shape": SHAPES[args.scale].__dict__}

    t = time.perf_counter()
    build_fixture_warehouse(settings.warehouse_db, SHAPES[args.scale])
    out["fixture_seconds"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    build = dbt_runner.build(settings=settings)
    out["dbt_build_seconds"] = round(time.perf_counter() - t, 2)
    out["dbt_build_nodes"] = len(build.results)
    slowest = sorted(build.results, key=lambda r: -r["execution_time"])[:5]
    out["slowest_nodes"] = {r["unique_id"]: round(r["execution_time"], 2) for r in slowest}

    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        out["events"] = con.execute("select count(*) from intermediate.int_events_joined_to_places").fetchone()[0]
        out["mart_rows"] = con.execute("select count(*) from marts.lsoa_monthly_indicators").fetchone()[0]
        out["lsoas"] = con.execute("select count(*) from marts.dim_lsoa").fetchone()[0]

    t = time.perf_counter()
    run = dbt_runner.run_dbt(dbt_runner.build_args("run", select=["lsoa_monthly_indicators"], full_refresh=True),
                             settings)
    mart_wall = time.perf_counter() - t
    mart_model = run.results[0]["execution_time"]

    with duckdb.connect(str(settings.warehouse_db)) as con:
        t = time.perf_counter()
        con.execute(BARE)
        bare = time.perf_counter() - t
        con.execute("drop table bench_bare")
    out.update({
        "mart_model_seconds": round(mart_model, 3),
        "mart_dbt_invocation_seconds": round(mart_wall, 2),
        "bare_group_by_seconds": round(bare, 3),
        "ratio_mart_model_to_bare": round(mart_model / bare, 2),
        "ratio_dbt_invocation_to_bare": round(mart_wall / bare, 2),
    })
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / f"bench_dbt_{args.scale}.json").write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
