"""Nightly publishing: with var ``published_months`` only those months are protected again, the rest is kept.

Disclosure control (``published.place_monthly_indicators``) is by far the slowest model at scale and protects each
(month, indicator) table on its own, so the nightly refresh re-protects only the months its new rows fall in.
"""

from __future__ import annotations

import json
import shutil

import duckdb

from orchestration.lib import dbt_runner
from orchestration.lib.config import get_settings

TABLE = "published.place_monthly_indicators"


def _rows(s, where="true"):
    with duckdb.connect(str(s.warehouse_db), read_only=True) as c:
        return c.execute(f"select * from {TABLE} where {where} order by all").fetchall()


def _build(s, months: str, via: str = "var"):
    """Build the published table for ``months`` given as dbt var (a manual run) or env var (the refresh)."""
    args = dbt_runner.build_args("build", ["place_monthly_indicators"])
    if via == "env":
        with dbt_runner.dbt_environment(s, extra={dbt_runner.PUBLISHED_MONTHS_ENV: months}):
            dbt_runner.run_dbt(args, settings=s)
    else:
        dbt_runner.run_dbt(args + ["--vars", json.dumps({"published_months": months})], settings=s)


def test_only_the_given_months_are_protected_again(dbt_warehouse, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(dbt_warehouse, home)
    s = get_settings(home=home)
    full = _rows(s)
    with duckdb.connect(str(s.warehouse_db), read_only=True) as c:
        months = [str(m) for (m,) in c.execute(f"select distinct month from {TABLE} order by 1").fetchall()]
    assert len(months) >= 3
    last, kept_month = months[-1], months[0]

    # (the order saves time: a change of --vars makes dbt re-parse the whole project, a change of env var only the
    # files that read it)
    # the same cells, one month re-protected as the refresh asks (env var): the very same table
    _build(s, last, via="env")
    assert _rows(s) == full

    # a marker in a month that is not re-protected survives (kept as published), the re-protected month is rebuilt;
    # asked as a person would (dbt var)
    with duckdb.connect(str(s.warehouse_db)) as c:
        c.execute(f"update {TABLE} set population = -1 where month in ('{kept_month}', '{last}')")
    _build(s, last)
    assert {r[5] for r in _rows(s, f"month = '{kept_month}'")} == {-1}
    assert _rows(s, f"month = '{last}'") == [r for r in full if str(r[2]) == last]

    # with neither (a full build) every month is protected again
    dbt_runner.run_dbt(dbt_runner.build_args("build", ["place_monthly_indicators"]), settings=s)
    assert _rows(s) == full


def test_the_disclosure_threshold_var_reaches_the_published_table(dbt_warehouse, tmp_path):
    """``--vars '{disclosure_threshold: 10}'`` suppresses counts 1..9 in the published table (dbt passes a config
    key to a Python model only when its parser sees the dbt.config.get call, so this once silently stayed 5)."""
    home = tmp_path / "home"
    shutil.copytree(dbt_warehouse, home)
    s = get_settings(home=home)
    shown_5_to_9 = f"select count(*) from {TABLE} where event_count between 5 and 9"
    with duckdb.connect(str(s.warehouse_db), read_only=True) as c:
        assert c.execute(shown_5_to_9).fetchall()[0][0] > 0  # the default threshold 5 shows some
    args = dbt_runner.build_args("build", ["place_monthly_indicators"], threshold=10)
    dbt_runner.run_dbt(args, settings=s)
    with duckdb.connect(str(s.warehouse_db), read_only=True) as c:
        assert c.execute(shown_5_to_9).fetchall()[0][0] == 0
        assert c.execute(f"select count(*) from {TABLE} where event_count >= 10").fetchall()[0][0] > 0
