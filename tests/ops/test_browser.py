"""The Dagster UI in a real browser: partner groups on the asset graph, a run launched from the UI succeeds.

Starts ``dagster dev`` (webserver + daemon, so queued runs launch) on 127.0.0.1 against a temporary
DAGSTER_HOME, drives Debian's Chromium through Playwright, and leaves screenshots in ``test-output/``.
"""

from __future__ import annotations

import re

import dagster as dg
import pytest

from orchestration.lib.ops.profiles import ensure_dagster_home
from orchestration.runner import instance_for, refresh
from tests.ops.conftest import write_drop
from tests.ops.webserver import ROOT, DagsterDev

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture
def dagster_dev(settings, fixture_defs, tmp_path):
    write_drop("police", "street_crimes", "2025-01-04", ["c1", "c2"])
    write_drop("nhs", "ae_attendances", "2025-01-06", ["a1"])
    refresh(full=True, defs=fixture_defs, settings=settings)  # history for the UI to show
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_file:\n"
        f"      relative_path: {ROOT / 'tests' / 'ops' / 'fixture_location.py'}\n"
        f"      working_directory: {ROOT}\n      location_name: placelink\n"
    )
    server = DagsterDev(workspace, ensure_dagster_home(settings), {"PLACELINK_HOME": str(settings.home)},
                        tmp_path / "dagster-dev.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _dismiss_community_dialog(page):
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.click(timeout=5000)
    except Exception:  # the dialog is only shown once per browser profile
        pass


def test_asset_graph_shows_partner_groups_and_a_launched_run_succeeds(dagster_dev, settings, test_output):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)

        page.goto(f"{dagster_dev.url}/asset-groups")
        _dismiss_community_dialog(page)
        expect(page.get_by_text("Global asset lineage")).to_be_visible()
        for group in ("police", "nhs", "matching", "marts"):
            expect(page.get_by_text(group, exact=True).first).to_be_visible()
        page.screenshot(path=str(test_output / "ops_asset_graph.png"))

        page.goto(f"{dagster_dev.url}/locations/placelink/jobs/ops_downstream_refresh_job/playground")
        _dismiss_community_dialog(page)
        page.get_by_role("button", name=re.compile("Launch run", re.I)).click()
        page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
        run_id = re.search(r"/runs/([0-9a-f-]{36})", page.url)[1]
        expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=120_000)
        page.screenshot(path=str(test_output / "ops_launched_run.png"))
        browser.close()

    run = instance_for(settings).get_run_by_id(run_id)
    assert run.job_name == "ops_downstream_refresh_job"
    assert run.status == dg.DagsterRunStatus.SUCCESS
