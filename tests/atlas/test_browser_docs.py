"""What a person sees: headless Chromium opens `placelink docs` on an already-refreshed tiny county and finds the
atlas's maps and charts, a Data Docs page from a Dagster check's link, and the dbt docs. Screenshots go to
test-output/. One browser session, one server, one `dbt docs generate --static` on a copy of the shared home.
"""

from __future__ import annotations

import shutil
import threading

import pandas as pd
import pytest

from orchestration.lib.config import get_settings
from orchestration.lib.docs_site import docs_base_url
from tests.ops.test_browser import CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _data_docs_links(settings) -> list[str]:
    """The ``data_docs`` URLs the quality checks of the refresh put in Dagster's metadata."""
    import dagster as dg

    from orchestration.runner import instance_for

    instance = instance_for(settings)
    try:
        records = instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION), limit=200)
        links = []
        for record in records:
            meta = record.event_log_entry.dagster_event.event_specific_data.metadata
            if "data_docs" in meta:
                links.append(meta["data_docs"].url)
        return links
    finally:
        instance.dispose()


@pytest.fixture(scope="module")
def served(refreshed_tiny_county, tmp_path_factory):
    from orchestration.lib import dbt_runner
    from orchestration.lib.docs_site import make_server

    shared, _ = refreshed_tiny_county
    links = _data_docs_links(shared)
    # a copy: the dbt docs are generated into the home, and the shared home is read-only for other files' tests
    home = tmp_path_factory.mktemp("docs") / "home"
    shutil.copytree(shared.home, home, ignore=shutil.ignore_patterns("*.lock", "landing", "truth"))
    settings = get_settings(home=home, env="local")
    dbt_runner.docs_generate(settings, catalog=False)  # the page, not the catalog (test_dbt_build checks it)
    server = make_server(settings, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield settings, f"http://127.0.0.1:{server.server_address[1]}", links
    finally:
        server.shutdown()
        server.server_close()


def _rendered(locator, min_height: float = 50) -> None:
    box = locator.bounding_box()
    assert box is not None and box["width"] > 50 and box["height"] >= min_height, box


def test_a_person_finds_the_atlas_the_quality_docs_and_the_dbt_docs(served, test_output):
    from playwright.sync_api import expect, sync_playwright

    settings, base, links = served
    # the checks' links are http URLs of the docs server, not file:// (which a browser will not open from Dagster)
    assert links and all(link.startswith(docs_base_url() + "/quality/") for link in links), links[:3]
    lsoas = pd.read_csv(settings.reference / "lsoas.csv")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        page.goto(base + "/")
        for name in ("Atlas", "Data quality", "dbt docs"):
            expect(page.locator("a.section-link", has_text=name)).to_be_visible()
        page.screenshot(path=str(test_output / "docs_index.png"), full_page=True)

        page.locator("a.section-link", has_text="Atlas").click()
        expect(page.locator(".what-rose").first).to_be_visible()
        page.locator("ul.cols a").first.click()
        for map_id in ("map-latest", "map-12m"):
            _rendered(page.locator(f"svg#{map_id}"))
            assert page.locator(f"svg#{map_id} use[data-area]").count() == len(lsoas)
            _rendered(page.locator(f"svg#{map_id} use[data-area]").first)
        assert page.locator("svg.trend").count() == lsoas["district_code"].nunique()
        _rendered(page.locator("svg.trend polyline").first, min_height=0)  # a line may be flat
        page.screenshot(path=str(test_output / "atlas_indicator.png"), full_page=True)

        page.goto(base + "/atlas/scorecard.html")
        _rendered(page.locator("svg.scorecard").first)
        assert page.locator("svg.scorecard polyline").count() > 10
        page.screenshot(path=str(test_output / "atlas_scorecard.png"), full_page=True)

        page.goto(links[0].replace(docs_base_url(), base))  # the link exactly as Dagster shows it, on this server
        expect(page.locator("body")).not_to_contain_text("not found")
        _rendered(page.locator("table").first)
        assert "Expectation" in page.content()
        page.screenshot(path=str(test_output / "docs_data_docs.png"), full_page=True)

        page.goto(base + "/dbt/#!/model/model.placelink.place_monthly_indicators")
        expect(page.locator("text=place_monthly_indicators >> visible=true").first).to_be_visible()
        assert "disclosure control" in page.inner_text("body")  # the model's description, from the manifest
        page.screenshot(path=str(test_output / "docs_dbt.png"))
        browser.close()
    assert not errors
