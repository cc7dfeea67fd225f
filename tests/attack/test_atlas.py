"""Hostile input to the atlas: malformed boundary files, and requests that try to leave the served folders."""

from __future__ import annotations

import copy
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.lib.boundaries import load_boundaries, parse_boundaries
from orchestration.lib.errors import PlacelinkError

SQUARE = [[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0], [0.0, 0.0]]


def _valid() -> dict:
    return copy.deepcopy({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"LSOA21CD": "E01000001", "LSOA21NM": "A 001A"},
         "geometry": {"type": "Polygon", "coordinates": [SQUARE]}},
        {"type": "Feature", "properties": {"LSOA21CD": "E01000002", "LSOA21NM": "A 001B"},
         "geometry": {"type": "MultiPolygon", "coordinates": [[[[x + 100, y] for x, y in SQUARE]]]}},
    ]})


def _write(tmp_path, data) -> object:
    path = tmp_path / "lsoa.geojson"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_an_ons_style_file_loads_and_keeps_only_the_countys_areas(tmp_path):
    b = load_boundaries(_write(tmp_path, _valid()), "lsoa", codes=["E01000002"])
    assert list(b.areas) == ["E01000002"] and b.names["E01000002"] == "A 001B" and b.projected


@pytest.mark.parametrize(("mutate", "expect"), [
    (lambda d: d["features"][1]["properties"].pop("LSOA21CD"), "feature 1"),
    (lambda d: d["features"][1]["properties"].update(LSOA21CD="E01000001"), "appears twice"),
    (lambda d: d["features"][0]["geometry"]["coordinates"][0].pop(), "not closed"),
    (lambda d: d["features"][0]["geometry"]["coordinates"][0].__setitem__(1, [float("nan"), 1.0]), "non-finite"),
    (lambda d: d["features"][0]["geometry"].update(type="LineString"), "not Polygon"),
    (lambda d: d["features"][0].update(geometry=None), "no geometry"),
    (lambda d: d["features"][0]["geometry"].update(coordinates=[[[0, 0], [1, 1], [0, 0]]]), "at least 4"),
    (lambda d: d["features"][0]["geometry"].update(coordinates=[[[0, 0], [1, 1], [2, 2], [0, 0]]]), "zero area"),
    (lambda d: d.update(type="Feature"), "FeatureCollection"),
    (lambda d: d.update(crs={"type": "name", "properties": {"name": "EPSG:3857"}}), "not supported"),
])
def test_a_broken_boundary_file_says_what_and_where(tmp_path, mutate, expect):
    data = _valid()
    mutate(data)
    with pytest.raises(PlacelinkError) as err:
        load_boundaries(_write(tmp_path, data), "lsoa")
    assert expect in str(err.value) and "lsoa.geojson" in str(err.value) and err.value.fix


def test_an_area_of_the_county_without_a_polygon_is_named(tmp_path):
    with pytest.raises(PlacelinkError, match="1 lsoa area.*E01999999"):
        load_boundaries(_write(tmp_path, _valid()), "lsoa", codes=["E01000001", "E01999999"])


def test_not_json_and_not_utf8(tmp_path):
    with pytest.raises(PlacelinkError, match="not valid UTF-8 JSON"):
        load_boundaries(_write(tmp_path, '{"type": "FeatureCollection", "features": ['), "lsoa")
    path = tmp_path / "latin1.geojson"
    path.write_bytes(b'{"name": "\xe9"}')
    with pytest.raises(PlacelinkError, match="not valid UTF-8 JSON"):
        load_boundaries(path, "lsoa")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
PATHS = [("features",), ("features", 0), ("features", 0, "properties"), ("features", 0, "geometry"),
         ("features", 0, "geometry", "coordinates"), ("features", 0, "geometry", "coordinates", 0),
         ("features", 0, "geometry", "coordinates", 0, 2), ("features", 1, "geometry", "coordinates", 0, 0),
         ("features", 1, "properties", "LSOA21CD"), ("features", 0, "geometry", "type"), ("crs",)]


@settings(max_examples=80, deadline=None)
@given(where=st.sampled_from(PATHS), value=json_values)
def test_any_malformed_part_is_a_placelink_error_or_a_valid_load(where, value):
    """Replace one part of a valid file with arbitrary JSON: the loader returns polygons or says what is wrong,
    never a TypeError/KeyError/IndexError from deep inside."""
    data = copy.deepcopy(_valid())
    node = data
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    data = json.loads(json.dumps(data, allow_nan=True))  # what json.load gives: NaN as float, keys as str
    try:
        b = parse_boundaries(data, Path("lsoa.geojson"), "lsoa")
    except PlacelinkError as exc:
        assert "lsoa.geojson" in str(exc)
    else:
        assert b.areas and all(r.shape[1] == 2 and len(r) >= 4 for rings in b.areas.values() for r in rings)


# --------------------------------------------------------------------------------------------- the docs server
@pytest.fixture
def docs_server(tmp_path):
    from orchestration.lib.config import get_settings
    from orchestration.lib.docs_site import make_server

    settings = get_settings(home=tmp_path / "home").ensure()
    (settings.home / "atlas").mkdir()
    (settings.home / "atlas" / "index.html").write_text("<p>atlas</p>")
    settings.identifiable_dir.mkdir(exist_ok=True)
    (settings.identifiable_dir / "review.csv").write_text("secret")
    (settings.home / "secret.txt").write_text("secret")
    settings.mlflow_artifacts.mkdir(parents=True)
    (settings.mlflow_artifacts / "model.pkl").write_text("secret")
    (settings.mlflow_artifacts / "chart.svg").write_text("<svg/>")
    target = settings.home / "dbt" / "target"
    target.mkdir(parents=True)
    (target / "static_index.html").write_text("<p>dbt</p>")
    (target / "dbt.log").write_text("secret")
    server = make_server(settings, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("path", ["/atlas/../secret.txt", "/atlas/%2e%2e/secret.txt", "/atlas/..%2fsecret.txt",
                                  "/quality/../../secret.txt", "/linkage/model.pkl", "/identifiable/review.csv",
                                  "/atlas/../identifiable/review.csv", "//etc/passwd", "/atlas/%00",
                                  "/dbt/dbt.log"])
def test_the_docs_server_serves_nothing_outside_its_folders(docs_server, path):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(docs_server + path, timeout=10)
    assert err.value.code == 404


def test_the_docs_server_serves_its_folders_and_refuses_writes(docs_server):
    assert b"atlas" in urllib.request.urlopen(docs_server + "/atlas/", timeout=10).read()
    assert b"<svg/>" in urllib.request.urlopen(docs_server + "/linkage/chart.svg", timeout=10).read()
    assert b"dbt" in urllib.request.urlopen(docs_server + "/dbt/", timeout=10).read()
    index = urllib.request.urlopen(docs_server + "/", timeout=10).read().decode()
    assert "/atlas/" in index and "chart.svg" in index and "model.pkl" not in index
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(docs_server + "/atlas/index.html", data=b"x", method="PUT"),
                               timeout=10)
    assert err.value.code in (405, 501)


def test_a_data_docs_link_with_escaped_characters_opens(docs_server, tmp_path):
    """GX names partition pages ``...@2025-03-01.html`` and gives file:// URLs percent-encoded: the http:// link
    Dagster shows must open that very file."""
    from orchestration.lib.config import get_settings
    from orchestration.lib.docs_site import docs_base_url, served_url

    settings = get_settings(home=tmp_path / "home")
    page = settings.quality_dir / "docs" / "validations" / "nhs__ae" / "placelink-nhs__ae@2025-03-01 x.html"
    page.parent.mkdir(parents=True)
    page.write_text("<table>validation</table>")
    url = served_url(settings, page.as_uri())
    assert url.startswith(docs_base_url() + "/quality/validations/") and "@" not in url and " " not in url
    assert b"validation" in urllib.request.urlopen(url.replace(docs_base_url(), docs_server), timeout=10).read()
    assert served_url(settings, settings.identifiable_dir / "review.csv") is None  # never a link into the zone


def test_the_docs_container_holds_no_secret_and_cannot_write_the_data():
    import yaml

    compose = Path(__file__).resolve().parents[2] / "infra" / "docker-compose.yml"
    docs = yaml.safe_load(compose.read_text())["services"]["docs"]
    assert set(docs["environment"]) == {"PLACELINK_ENV", "PLACELINK_HOME"}
    assert docs["volumes"] == ["placelink-data:/data/placelink:ro"]
    assert "--serve-only" in docs["command"] and docs["ports"] == ["127.0.0.1:8090:8090"]
