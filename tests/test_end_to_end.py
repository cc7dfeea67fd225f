"""The whole pipeline, as ``make demo`` runs it: the real code location over a generated county.

``placelink refresh --full`` through Dagster on a copy of the tiny county: every feed, matching, dbt,
quality checks, training and scoring. Then what users rely on: every asset of the graph materialised, every
dbt test passing as an asset check, published files under disclosure control, and no clear identifier
anywhere outside the identifiable zone (every file of the home is searched for real names and NHS numbers
of the county's people). A second nightly refresh with no new drops does nothing.
"""

from __future__ import annotations

import json
import re

import dagster as dg
import duckdb
import pandas as pd
import pytest

from orchestration.runner import instance_for, refresh
from tests.support import daemon_ticks
from tests.support.needles import Needles

pytestmark = pytest.mark.slow

#: where clear identifiers may exist (docs/design.md zones): partner drops (landing/, and the NHS national data
#: opt-out list, which NHS England sends as NHS numbers), the identifiable DuckDB file, the generator's
#: ground truth (never ingested) and the identifiable zone's own folder (the clerical review queue).
IDENTIFIABLE = ("landing/", "reference/nhs_opt_outs.csv", "truth/", "identifiable.duckdb", "identifiable/")


@pytest.fixture(scope="module")
def demo_home(refreshed_tiny_county):
    return refreshed_tiny_county


def test_full_refresh_materialises_every_asset_and_passes_every_dbt_test(demo_home):
    from orchestration.definitions import defs

    settings, result = demo_home
    assert result.success and result.runs, [(r.label, r.run_id) for r in result.runs]
    instance = instance_for(settings)
    graph = defs.resolve_asset_graph()
    keys = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    missing = {k.to_user_string() for k in keys if instance.get_latest_materialization_event(k) is None}
    # scoring only writes once a model has passed the ethics gate; every other asset must have run
    assert {m for m in missing if not m.startswith("ml/")} == set()
    run_ids = [r.run_id for r in result.runs]
    evaluations = []
    for run_id in run_ids:
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        evaluations += [r.event_log_entry.dagster_event.event_specific_data for r in records]
    failed_blocking = [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations
                       if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    assert len(evaluations) > 50 and failed_blocking == []


def test_marts_and_published_outputs_are_built(demo_home):
    settings, _ = demo_home
    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        lsoas, months, indicators = con.execute(
            "select count(distinct lsoa_code), count(distinct month), count(distinct indicator) "
            "from marts.lsoa_monthly_indicators").fetchone()
    assert lsoas >= 5 and months >= 12 and indicators >= 8
    files = sorted(p for p in settings.published.rglob("*") if p.suffix in {".csv", ".parquet"})
    assert files, f"nothing published under {settings.published}"
    for path in (p for p in files if p.suffix == ".parquet"):
        frame = pd.read_parquet(path)
        for col in (c for c in frame.columns if c.endswith("count")):
            shown = pd.to_numeric(frame[col], errors="coerce").dropna()
            assert not shown.between(1, 4).any(), f"{path.name}:{col} publishes a count in 1..4"


def _readable_text(path) -> bytes:
    """What a reader of the file would see: compressed formats (DuckDB, Parquet) are decoded first."""
    if path.suffix == ".duckdb":
        parts = []
        with duckdb.connect(str(path), read_only=True) as con:
            tables = con.execute("select table_catalog, table_schema, table_name from information_schema.tables "
                                 "where table_type = 'BASE TABLE'").fetchall()
            for cat, schema, table in tables:
                parts.append(str(con.execute(f'select * from "{cat}"."{schema}"."{table}"').fetchall()))
        return "\n".join(parts).encode()
    if path.suffix == ".parquet":
        return pd.read_parquet(path).to_csv().encode()
    return path.read_bytes()


def test_no_clear_identifier_leaves_the_identifiable_zone(demo_home):
    settings, _ = demo_home
    people = pd.read_parquet(settings.truth / "people.parquet")
    seen = pd.read_parquet(settings.truth / "records.parquet")["person_id"].dropna().unique()
    people = people[people["person_id"].isin(seen)].sample(n=400, random_state=1)
    needles = [str(n).encode() for n in people["nhs_number"].dropna()]
    needles += [f"{g} {f}".encode() for g, f in zip(people["given_name"], people["family_name"], strict=True)]
    needles += [f"{f}, {g}".encode() for g, f in zip(people["given_name"], people["family_name"], strict=True)]
    assert len(needles) > 800
    search = Needles(needles)
    home = settings.home
    leaks: dict[str, list[str]] = {}
    scanned = 0
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        rel = path.relative_to(home).as_posix()
        if rel.startswith(IDENTIFIABLE):
            continue
        data = _readable_text(path)
        scanned += 1
        hits = [n.decode() for n in search.found(data)]
        if hits:
            leaks[rel] = hits[:3]
    assert scanned > 20  # the warehouse, published files, Dagster's storage, MLflow, quality docs, logs
    assert leaks == {}, f"clear identifiers outside the identifiable zone: {leaks}"
    # and the identifiable file really holds them (the needles are not simply absent from the county)
    assert Needles(needles[:50]).found(_readable_text(settings.identifiable_db))


def test_the_dbt_asset_built_with_its_data_tests_and_published_the_files_and_atlas(demo_home):
    """The dbt asset's own build (Dagster's dbt CLI resource, not placelink build) ran the data tests as checks and
    left dbt's unit tests to make test (tests/dbt/test_dbt_unit_tests.py); published/files drew the atlas."""
    from orchestration.lib import dbt_runner
    from orchestration.lib.docs_site import docs_base_url

    settings, _ = demo_home
    runs = sorted(dbt_runner.target_dir(settings).glob("placelink_dbt_models-*/run_results.json"))
    nodes = [r["unique_id"] for path in runs for r in json.loads(path.read_text())["results"]]
    assert sum(n.startswith("test.") for n in nodes) > 100 and any(n.startswith("model.") for n in nodes)
    assert [n for n in nodes if n.startswith("unit_test.")] == []

    files = instance_for(settings).get_latest_materialization_event(dg.AssetKey(["published", "files"]))
    meta = files.asset_materialization.metadata
    # the atlas is drawn from the files just published and linked by an http:// URL of `placelink docs`
    assert meta["atlas"].value == f"{docs_base_url()}/atlas/index.html"
    assert meta["atlas_indicators"].value > 0 and (settings.home / "atlas" / "index.html").exists()
    assert (settings.published / "place_monthly_indicators.parquet").exists()


def test_a_second_nightly_refresh_with_nothing_new_does_nothing(demo_home):
    settings, _ = demo_home
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PLACELINK_HOME", str(settings.home))
        again = refresh(settings=settings)
    assert again.runs == []


@pytest.mark.browser
def test_the_real_code_location_in_the_dagster_ui_shows_the_run_pipeline(demo_home, tmp_path, test_output):
    """``placelink ui`` on the demo's home: every partner's group, the dbt models with their checks, all green."""
    from playwright.sync_api import expect, sync_playwright

    from tests.ops.test_browser import CHROMIUM_ARGS, _dismiss_community_dialog
    from tests.ops.webserver import ROOT, DagsterDev

    settings, _ = demo_home
    server = DagsterDev(ROOT / "workspace.yaml", settings.dagster_home, {"PLACELINK_HOME": str(settings.home)},
                        tmp_path / "dagster-dev.log")
    try:
        server.wait_ready()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(90_000)
            page.goto(f"{server.url}/asset-groups")
            _dismiss_community_dialog(page)
            for group in ("police", "county_council", "district_councils", "nhs", "fire", "voluntary",
                          "matching", "marts"):
                expect(page.get_by_text(group, exact=True).first).to_be_visible()
            page.screenshot(path=str(test_output / "e2e_asset_graph.png"))
            page.goto(f"{server.url}/assets/marts/lsoa_monthly_indicators?view=checks")
            _dismiss_community_dialog(page)
            expect(page.get_by_text(re.compile(r"not_null|unique|accepted|expression", re.I)).first).to_be_visible()
            expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()  # the refresh's results
            assert page.get_by_text("Failed", exact=True).count() == 0
            page.screenshot(path=str(test_output / "e2e_mart_checks.png"))
            browser.close()
    finally:
        server.stop()
    log = (tmp_path / "dagster-dev.log").read_text()
    assert "Error loading" not in log and "Traceback" not in log, log[-3000:]


def _daemon_tick(settings, instance, sensor_name: str, cursor: str | None = None):
    """One evaluation of a sensor of the real code location, as the daemon of ``placelink ui`` would run it."""
    from orchestration.runner import _load_defs

    defs = _load_defs(settings)
    sensor = defs.resolve_sensor_def(sensor_name) if hasattr(defs, "resolve_sensor_def") else next(
        s for s in defs.sensors if s.name == sensor_name)
    return daemon_ticks.tick(sensor, defs, instance, cursor=cursor)  # the home: defs' placelink_settings


def test_the_daemon_after_the_demo_launches_nothing_already_loaded_and_one_run_for_a_new_drop(demo_home, tmp_path):
    """``make demo`` then ``placelink ui``: the landing sensor's first tick (empty cursor) sees every drop the demo's
    refresh loaded and requests none of them; a drop landing afterwards is requested once."""
    import shutil

    from orchestration.lib.config import get_settings

    source, _ = demo_home
    # what the sensor reads: the landing folder and the Dagster instance (a copy: other tests refresh the live home)
    settings = get_settings(home=tmp_path / "home", env="local").ensure()
    shutil.copytree(source.landing, settings.landing, dirs_exist_ok=True)
    shutil.copytree(source.dagster_home, settings.dagster_home, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.lock"))
    drops = [p for p in settings.landing.rglob("*") if p.is_file()]
    instance = instance_for(settings)
    try:
        first = _daemon_tick(settings, instance, "landing_drop_sensor")
        assert len(drops) > 100 and first.run_requests == []
        newest = max(settings.landing.glob("police/street_crimes/*.*"))
        year, month = int(newest.name[:4]), int(newest.name[5:7])
        new_month = f"{year + month // 12}-{month % 12 + 1:02d}"
        new = newest.with_name(f"{new_month}-02{newest.suffix}")
        shutil.copyfile(newest, new)
        second = _daemon_tick(settings, instance, "landing_drop_sensor", cursor=first.cursor)
        assert [(r.partition_key, r.asset_selection) for r in second.run_requests] == [
            (f"{new_month}-01", [dg.AssetKey(["raw", "police__street_crimes"])])]
        assert second.run_requests[0].run_key.startswith(f"landing/police/street_crimes/{new.name}:")
    finally:
        instance.dispose()


def test_the_demo_summary_states_the_figures_the_home_holds(demo_home):
    """The closing summary of ``placelink demo``, checked against other sources than the ones it reads: the
    generator's truth, the published file on disk, the matching run's metadata."""
    from ml.features import list_models
    from orchestration.lib.ops.summary import render
    from orchestration.ops_cli import demo_summary

    settings, _ = demo_home
    s = demo_summary(settings)
    records = pd.read_parquet(settings.truth / "records.parquet")
    assert s.received == len(records) and s.loaded + s.quarantined == s.received and s.loaded > 0
    true_persons = records["person_id"].nunique()
    assert 0.8 * true_persons < s.persons < 1.2 * true_persons and 0 < s.households < s.persons
    assert 0.8 < s.person_f1 <= 1 and 0 < s.household_f1 <= 1
    published = pd.read_parquet(settings.published / "place_monthly_indicators.parquet")
    assert s.cells == len(published) and s.suppressed == int(published["is_suppressed"].sum()) > 0
    assert s.months == published["month"].nunique()
    assert s.lsoas == published.loc[published["geography_level"] == "lsoa", "area_code"].nunique()
    assert [m.name for m in s.models] == list_models() and all(m.decision for m in s.models)
    text = "\n".join(render(s))
    for figure in (s.received, s.loaded, s.quarantined, s.persons, s.households, s.cells, s.suppressed):
        assert f"{figure:,}" in text
    assert f"{s.person_f1:.3f}" in text and f"{s.lsoas:,} LSOAs x {s.months} months" in text
