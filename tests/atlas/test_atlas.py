"""The atlas from a published table made here: suppressed cells drawn as suppressed and never filled in, 12-month
rates only from twelve published months, the CLI and a missing or broken boundary file."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.lib.atlas import README_CHART, README_MAP, build_atlas
from orchestration.lib.config import get_settings
from orchestration.lib.errors import PlacelinkError

MONTHS = pd.period_range("2024-11", periods=24, freq="M")


def _published(reference, seed: int) -> pd.DataFrame:
    """Every level x month x 2 indicators; a third of the cells of every other LSOA suppressed, at random."""
    rng = np.random.default_rng(seed)
    lsoas = pd.read_csv(reference / "lsoas.csv", dtype=str)
    noisy = set(lsoas["lsoa_code"][1::2])
    areas = ([("lsoa", c) for c in lsoas["lsoa_code"]] + [("district", c) for c in lsoas["district_code"].unique()]
             + [("county", "county")])
    rows = []
    for indicator in ("crimes_total", "ae_attendances"):
        for level, code in areas:
            for month in MONTHS:
                count = int(rng.integers(5, 60))
                suppressed = code in noisy and rng.random() < 0.3
                population = 1500 if level == "lsoa" else 9000
                rows.append((level, code, month.to_timestamp().date(), indicator, None if suppressed else count,
                             population, None if suppressed else count / population * 1000, suppressed))
    return pd.DataFrame(rows, columns=["geography_level", "area_code", "month", "indicator", "event_count",
                                       "population", "rate_per_1000", "is_suppressed"])


@pytest.fixture
def home(tiny_county, tmp_path):
    settings = get_settings(home=tmp_path / "home", env="local").ensure()
    shutil.copytree(tiny_county / "reference", settings.reference, dirs_exist_ok=True)
    table = _published(settings.reference, seed=7)
    table.to_parquet(settings.published / "place_monthly_indicators.parquet", index=False)
    return settings, table


def _tips(page: str, map_id: str) -> dict[str, tuple[str, str]]:
    svg = page.split(f'id="{map_id}"', 1)[1].split("</svg>", 1)[0]
    return {code: (fill, tip) for fill, code, tip in
            re.findall(r'fill="([^"]+)"[^>]*data-area="([^"]+)"><title>[^<]*: ([^<]*)</title>', svg)}


def test_suppressed_cells_are_drawn_suppressed_and_never_filled_in(home):
    settings, table = home
    build_atlas(settings)
    page = (settings.home / "atlas" / "indicators" / "crimes_total.html").read_text()
    lsoa = table[(table["indicator"] == "crimes_total") & (table["geography_level"] == "lsoa")].copy()
    lsoa["month"] = pd.to_datetime(lsoa["month"]).dt.to_period("M")
    latest = lsoa[lsoa["month"] == MONTHS[-1]].set_index("area_code")
    tips = _tips(page, "map-latest")
    assert set(tips) == set(latest.index)
    for code, row in latest.iterrows():
        fill, tip = tips[code]
        if row["is_suppressed"]:
            assert fill == "url(#suppressed)" and tip == "suppressed (small numbers)"
        else:
            assert fill.startswith("#") and tip.startswith(f"{row['rate_per_1000']:.2f} ")
    year = lsoa[lsoa["month"].isin(MONTHS[-12:])].groupby("area_code")
    tips = _tips(page, "map-12m")
    for code, g in year:
        fill, tip = tips[code]
        if g["is_suppressed"].any():  # one withheld month withholds the year: nothing is estimated
            assert fill == "url(#suppressed)" and not re.search(r"\d", tip)
        else:
            assert tip.startswith(f"{g['event_count'].sum() / g['population'].mean() * 1000:.2f} ")
    # "what rose here" lists only LSOAs with every month of both years published
    rises = page.split("class='rises'", 1)[1].split("</table>", 1)[0]
    listed = set(re.findall(r"<td>(E01\d+)</td>", rises))
    two_years = lsoa[lsoa["month"].isin(MONTHS[-24:])].groupby("area_code")["is_suppressed"].any()
    assert listed and not listed & set(two_years[two_years].index)


def test_placelink_atlas_writes_the_site_and_the_readme_pictures(home, tmp_path):
    settings, _ = home
    result = CliRunner().invoke(app, ["atlas", "--home", str(settings.home), "--readme-images", str(tmp_path / "img")])
    assert result.exit_code == 0, result.output
    assert "2 indicators" in result.output and "http://127.0.0.1:8090/atlas/index.html" in result.output
    index = (settings.home / "atlas" / "index.html").read_text()
    assert "indicators/crimes_total.html" in index and "what-rose" in index
    assert "<svg" in (tmp_path / "img" / README_MAP).read_text()
    assert (tmp_path / "img" / README_CHART).exists() is False  # no scorecard in this home: no chart invented
    assert "No scorecard yet" in (settings.home / "atlas" / "scorecard.html").read_text()


def test_without_boundaries_the_charts_remain_and_the_page_says_why(home):
    settings, _ = home
    for path in settings.reference.glob("boundaries_*.geojson"):
        path.unlink()
    result = build_atlas(settings)
    page = (result.folder / "indicators" / "crimes_total.html").read_text()
    assert not result.maps and "No boundaries in" in page and 'class="map"' not in page and 'class="trend"' in page


def test_a_broken_boundary_file_stops_the_atlas_with_a_clear_error(home):
    settings, _ = home
    path = settings.reference / "boundaries_lsoa.geojson"
    path.write_text(path.read_text().replace('"lsoa_code"', '"LSOA_CODE_TYPO"', 1))
    with pytest.raises(PlacelinkError, match=r"boundaries_lsoa.geojson, feature 0: feature has no lsoa code"):
        build_atlas(settings)
    assert not (settings.home / "atlas").exists()  # nothing half-built left behind


def test_placelink_docs_prints_one_url_that_serves_the_index_and_the_atlas(home):
    import subprocess
    import sys
    import urllib.request

    settings, _ = home
    build_atlas(settings)
    proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "docs", "--home", str(settings.home),
                             "--port", "0", "--serve-only"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url), url
        index = urllib.request.urlopen(url, timeout=30).read().decode()
        assert "href='/atlas/'" in index and "not built yet" in index  # the dbt docs are not generated here
        assert "what-rose" in urllib.request.urlopen(url + "atlas/", timeout=30).read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
