"""The synthetic county's boundaries agree with its own addresses and postcodes, and the levels nest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.path import Path as MplPath

from orchestration.lib.boundaries import LEVELS, boundary_file, load_reference_boundaries


def _containing(boundaries, xy: np.ndarray) -> np.ndarray:
    """For each point, the code of the area whose rings hold it (even-odd), or '' (independent of the writer:
    matplotlib's point-in-path, not our own ray casting)."""
    out = np.full(len(xy), "", dtype=object)
    for code, rings in boundaries.areas.items():
        inside = np.zeros(len(xy), dtype=int)
        for ring in rings:
            inside += MplPath(ring).contains_points(xy)
        hit = inside % 2 == 1
        assert not (hit & (out != "")).any(), f"{code} overlaps another area"
        out[hit] = code
    return out


@pytest.fixture(scope="module")
def reference(tiny_county):
    return tiny_county / "reference"


def test_every_level_is_written_and_loads_against_the_reference_codes(reference):
    for level in LEVELS:
        assert boundary_file(reference, level).exists()
        b = load_reference_boundaries(reference, level)
        codes = pd.read_csv(reference / f"{level}s.csv", dtype=str)[f"{level}_code"]
        assert set(b.areas) == set(codes)
        assert b.projected and all(b.names[c] != c for c in codes)


def test_every_postcode_and_nearly_every_address_lies_in_its_own_lsoa(reference):
    lsoas = load_reference_boundaries(reference, "lsoa")
    postcodes = pd.read_csv(reference / "postcodes.csv")
    where = _containing(lsoas, postcodes[["easting", "northing"]].to_numpy(float))
    assert (where == postcodes["lsoa_code"].to_numpy()).all()
    addresses = pd.read_csv(reference / "gazetteer.csv", usecols=["easting", "northing", "lsoa_code"])
    where = _containing(lsoas, addresses[["easting", "northing"]].to_numpy(float))
    assert (where == addresses["lsoa_code"].to_numpy()).mean() > 0.995


def test_levels_nest_and_tile_the_county_without_overlap(reference):
    def area(level):
        b = load_reference_boundaries(reference, level)
        return {c: sum(0.5 * float(np.dot(r[:-1, 0], r[1:, 1]) - np.dot(r[1:, 0], r[:-1, 1])) for r in rings)
                for c, rings in b.areas.items()}

    lsoa = area("lsoa")
    lsoas = pd.read_csv(reference / "lsoas.csv", dtype=str)
    assert all(v > 0 for v in lsoa.values())
    for level in ("msoa", "ward", "district"):
        upper = area(level)
        summed = pd.Series(lsoa).groupby(lsoas.set_index("lsoa_code")[f"{level}_code"]).sum()
        for code, value in upper.items():
            assert value == pytest.approx(summed[code], rel=1e-6), (level, code)
    # a point of a district lies in exactly one LSOA of that district (no gaps, no overlaps inside)
    districts = load_reference_boundaries(reference, "district")
    lsoa_b = load_reference_boundaries(reference, "lsoa")
    x0, y0, x1, y1 = districts.bounds()
    rng = np.random.default_rng(1)
    probe = np.c_[rng.uniform(x0, x1, 2000), rng.uniform(y0, y1, 2000)]
    in_district = _containing(districts, probe)
    in_lsoa = _containing(lsoa_b, probe)
    district_of = dict(zip(lsoas["lsoa_code"], lsoas["district_code"], strict=True))
    assert ((in_district == "") == (in_lsoa == "")).all()
    inside = in_lsoa != ""
    assert inside.mean() > 0.5
    assert all(district_of[c] == d for c, d in zip(in_lsoa[inside], in_district[inside], strict=True))
