"""Area boundaries: polygons of LSOAs, MSOAs, wards and districts, for the atlas's maps.

Two sources, one format. The synthetic county writes ``reference/boundaries_<level>.geojson`` itself
(:func:`write_synthetic_boundaries`); a real deployment puts the ONS boundary files it downloaded there instead
(docs/atlas.md says which files and which columns). :func:`load_boundaries` reads either, and validates it like
any other reference input: a broken file stops with a :class:`~orchestration.lib.errors.PlacelinkError` that says
which file, which feature and how to fix it. Boundary files hold no personal data, so codes may be quoted.

Why no shapely/geopandas: they are not in the lock, and what we need is small. The synthetic polygons are unions
of Voronoi cells (scipy, already a dependency): the boundary of a union of cells is the set of Voronoi ridges
whose two sides belong to different areas, chained into rings, so no polygon clipping or union is needed.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from orchestration.lib.errors import PlacelinkError

#: boundary levels, finest first, and the reference CSV that lists each level's codes
LEVELS = ("lsoa", "msoa", "ward", "district")
REFERENCE_CSV = {"lsoa": "lsoas.csv", "msoa": "msoas.csv", "ward": "wards.csv", "district": "districts.csv"}
#: ONS's property names for the area code, any vintage (LSOA21CD, MSOA11CD, WD24CD, LAD23CD ...)
ONS_CODE_FIELD = {"lsoa": r"LSOA\d{2}CD", "msoa": r"MSOA\d{2}CD", "ward": r"WD\d{2}CD", "district": r"LAD\d{2}CD"}
BNG = "urn:ogc:def:crs:EPSG::27700"
#: synthetic outline: this far (metres) beyond the outermost address, at least
MARGIN_M = 1500.0


def boundary_file(reference: Path, level: str) -> Path:
    return Path(reference) / f"boundaries_{level}.geojson"


@dataclass
class Boundaries:
    """One level's polygons: ``areas[code]`` is a list of rings (``(n, 2)`` arrays, x/y), exteriors and holes
    alike (draw them with the even-odd rule). ``projected`` is True for British National Grid metres, False for
    WGS84 longitude/latitude."""

    level: str
    path: Path
    projected: bool
    areas: dict[str, list[np.ndarray]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def bounds(self) -> tuple[float, float, float, float]:
        xs = np.concatenate([r[:, 0] for rings in self.areas.values() for r in rings])
        ys = np.concatenate([r[:, 1] for rings in self.areas.values() for r in rings])
        return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


# ------------------------------------------------------------------------------------------------------ synthetic
def _ring_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def _inside(point: np.ndarray, ring: np.ndarray) -> bool:
    """Even-odd ray casting (the ring is closed: first == last)."""
    x, y = point
    a, b = ring[:-1], ring[1:]
    crosses = (a[:, 1] > y) != (b[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return bool(np.count_nonzero(crosses & (x < xi)) % 2)


def _chain(edges: list[tuple[int, int]]) -> list[list[int]]:
    """Directed edges (every vertex has as many in as out) -> closed vertex rings."""
    out: dict[int, list[int]] = defaultdict(list)
    for a, b in edges:
        out[a].append(b)
    rings = []
    for start in list(out):
        while out[start]:
            ring = [start]
            v = out[start].pop()
            while v != start:
                ring.append(v)
                if not out[v]:
                    raise PlacelinkError("an area boundary does not close", where="boundaries",
                                         fix="report this: the Voronoi ridges did not chain into rings")
                v = out[v].pop()
            ring.append(start)
            rings.append(ring)
    return rings


def dissolve_cells(points: np.ndarray, labels: np.ndarray | list[np.ndarray]):
    """Voronoi cells of ``points`` unioned by ``labels`` (ints >= 0) -> rings per label.

    A ring of sentinel points (label -1) around the points bounds every real cell, so the outline lies about
    :data:`MARGIN_M` beyond the outermost point; the sentinels' own cells are dropped. Exteriors come out
    anticlockwise and holes clockwise, as GeoJSON wants. ``labels`` may be a list of labellings (one per level):
    the diagram is built once and dissolved for each, and a list of results comes back.
    """
    from scipy.spatial import Voronoi

    lo, hi = points.min(axis=0), points.max(axis=0)
    margin = max(MARGIN_M, 0.05 * float((hi - lo).max()))
    lo, hi = lo - 2 * margin, hi + 2 * margin
    step = margin / 2
    xs = np.linspace(lo[0], hi[0], max(2, math.ceil((hi[0] - lo[0]) / step)) + 1)
    ys = np.linspace(lo[1], hi[1], max(2, math.ceil((hi[1] - lo[1]) / step)) + 1)[1:-1]
    sentinels = np.concatenate([np.c_[xs, np.full_like(xs, lo[1])], np.c_[xs, np.full_like(xs, hi[1])],
                                np.c_[np.full_like(ys, lo[0]), ys], np.c_[np.full_like(ys, hi[0]), ys]])
    allpts = np.concatenate([points, sentinels])
    vor = Voronoi(allpts)
    if isinstance(labels, list):
        return [_dissolve(vor, allpts, np.concatenate([lab, np.full(len(sentinels), -1)])) for lab in labels]
    return _dissolve(vor, allpts, np.concatenate([labels, np.full(len(sentinels), -1)]))


def _dissolve(vor, allpts: np.ndarray, lab: np.ndarray) -> dict[int, list[np.ndarray]]:
    rp = vor.ridge_points
    rv = np.array(vor.ridge_vertices)
    la, lb = lab[rp[:, 0]], lab[rp[:, 1]]
    edge = la != lb
    rp, rv, la, lb = rp[edge], rv[edge], la[edge], lb[edge]
    real = (la >= 0) | (lb >= 0)
    if (rv[real] < 0).any():
        raise PlacelinkError("an area's Voronoi cell is unbounded", where="boundaries",
                             fix="report this: the sentinel ring did not enclose every point")
    rp, rv, la, lb = rp[real], rv[real], la[real], lb[real]
    verts = vor.vertices
    a, b = verts[rv[:, 0]], verts[rv[:, 1]]
    p = allpts[rp[:, 0]]
    left = ((b[:, 0] - a[:, 0]) * (p[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (p[:, 0] - a[:, 0])) > 0
    # each side's edge runs with that side's point on its left
    start0 = np.where(left, rv[:, 0], rv[:, 1])
    end0 = np.where(left, rv[:, 1], rv[:, 0])
    edges: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for lab_a, lab_b, s, e in zip(la.tolist(), lb.tolist(), start0.tolist(), end0.tolist(), strict=True):
        if lab_a >= 0:
            edges[lab_a].append((s, e))
        if lab_b >= 0:
            edges[lab_b].append((e, s))
    return {label: [verts[r] for r in _chain(es)] for label, es in edges.items()}


def _polygons(rings: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Rings -> GeoJSON MultiPolygon parts: each exterior with the holes inside it."""
    exteriors = [r for r in rings if _ring_area(r) > 0]
    holes = [r for r in rings if _ring_area(r) <= 0]
    parts = [[r] for r in sorted(exteriors, key=_ring_area)]  # smallest first: a hole goes to the tightest
    for hole in holes:
        probe = hole[:-1].mean(axis=0) if len(hole) > 3 else hole[0]
        for part in parts:
            if _inside(probe, part[0]):
                part.append(hole)
                break
    return parts


def _feature_collection(level: str, codes: list[str], names: dict[str, str],
                        rings: dict[int, list[np.ndarray]]) -> dict:
    features = []
    for i, code in enumerate(codes):
        parts = _polygons(rings.get(i, []))
        coords = [[np.round(r, 1).tolist() for r in part] for part in parts]
        features.append({"type": "Feature",
                         "properties": {f"{level}_code": code, f"{level}_name": names.get(code, code)},
                         "geometry": {"type": "MultiPolygon", "coordinates": coords}})
    return {"type": "FeatureCollection", "name": f"boundaries_{level}",
            "crs": {"type": "name", "properties": {"name": BNG}}, "features": features}


def write_synthetic_boundaries(reference: Path) -> list[Path]:
    """Polygons for every level, from the county's own address and postcode coordinates.

    Each postcode centroid gets its Voronoi cell; an LSOA is the union of its postcodes' cells, so every
    postcode lies inside its LSOA, and so do nearly all addresses (they sit ~25 m around their postcode's
    centroid; docs/atlas.md). Cells of postcodes, not of the ~700k addresses of the county scale, because the
    Voronoi diagram of every address costs ~35 s CPU there against ~5 s for its ~48k postcodes. MSOAs,
    wards and districts are unions of LSOAs, so the levels nest exactly. Reads only ``reference/*.csv``: the
    generated data itself is not touched.
    """
    reference = Path(reference)
    lsoas = pd.read_csv(reference / "lsoas.csv", dtype=str)
    pts = pd.read_csv(reference / "postcodes.csv", usecols=["easting", "northing", "lsoa_code"])
    pts = pts.drop_duplicates(["easting", "northing"])
    codes = lsoas["lsoa_code"].tolist()
    index = {c: i for i, c in enumerate(codes)}
    lsoa_of = pts["lsoa_code"].map(index).to_numpy()
    xy = pts[["easting", "northing"]].to_numpy(float)
    levels = []
    for level in LEVELS:
        column = f"{level}_code"
        if level == "lsoa":
            level_codes, names, labels = codes, dict(zip(lsoas["lsoa_code"], lsoas["lsoa_name"], strict=True)), lsoa_of
        else:
            table = pd.read_csv(reference / REFERENCE_CSV[level], dtype=str)
            level_codes = table[column].tolist()
            names = dict(zip(table[column], table[f"{level}_name"], strict=True))
            pos = {c: i for i, c in enumerate(level_codes)}
            labels = lsoas[column].map(pos).to_numpy()[lsoa_of]
        levels.append((level, level_codes, names, labels.astype(np.int64)))
    dissolved = dissolve_cells(xy, [labels for *_, labels in levels])  # one Voronoi diagram for every level
    written = []
    for (level, level_codes, names, _), rings in zip(levels, dissolved, strict=True):
        path = boundary_file(reference, level)
        path.write_text(json.dumps(_feature_collection(level, level_codes, names, rings), separators=(",", ":")))
        written.append(path)
    return written


# ------------------------------------------------------------------------------------------------------ loading
def _fail(path: Path, message: str, fix: str, feature: int | None = None) -> PlacelinkError:
    where = f"{path}" + (f", feature {feature}" if feature is not None else "")
    return PlacelinkError(message, where=where, fix=fix)


def _code_field(properties: dict, level: str) -> str | None:
    if f"{level}_code" in properties:
        return f"{level}_code"
    pattern = re.compile(ONS_CODE_FIELD[level], re.IGNORECASE)
    return next((k for k in properties if pattern.fullmatch(k)), None)


def _name_field(code_field: str) -> str:
    if code_field.endswith("_code"):
        return code_field[:-5] + "_name"
    return code_field[:-2] + ("NM" if code_field[-2:].isupper() else "nm")


def _rings_of(geometry: object, path: Path, i: int) -> list[np.ndarray]:
    fix = "export the boundaries again as GeoJSON Polygon/MultiPolygon features (docs/atlas.md)"
    if not isinstance(geometry, dict):
        raise _fail(path, "feature has no geometry", fix, i)
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon":
        polygons = [coords]
    elif kind == "MultiPolygon":
        polygons = coords
    else:
        raise _fail(path, f"geometry type {str(kind)[:30]!r} is not Polygon or MultiPolygon", fix, i)
    if not isinstance(polygons, list) or not polygons:
        raise _fail(path, "geometry has no coordinates", fix, i)
    rings = []
    for polygon in polygons:
        if not isinstance(polygon, list) or not polygon:
            raise _fail(path, "a polygon has no rings", fix, i)
        for ring in polygon:
            try:
                arr = np.asarray(ring, dtype=float)
            except (TypeError, ValueError):
                raise _fail(path, "a ring's coordinates are not numbers", fix, i) from None
            if arr.ndim != 2 or arr.shape[1] < 2:
                raise _fail(path, "a ring is not a list of [x, y] positions", fix, i)
            arr = arr[:, :2]
            if not np.isfinite(arr).all():
                raise _fail(path, "a ring has a non-finite coordinate (NaN or infinity)", fix, i)
            if len(arr) < 4:
                raise _fail(path, f"a ring has {len(arr)} positions (a closed ring needs at least 4)", fix, i)
            if not np.array_equal(arr[0], arr[-1]):
                raise _fail(path, "a ring is not closed (its first and last positions differ)", fix, i)
            if abs(_ring_area(arr)) == 0:
                raise _fail(path, "a ring has zero area", fix, i)
            rings.append(arr)
    return rings


def load_boundaries(path: Path | str, level: str, codes: list[str] | None = None) -> Boundaries:
    """Read and validate one level's boundary file.

    ``codes``: the areas the county has (from the reference CSVs); each must have a polygon, and polygons of
    other areas (an England-wide ONS file) are dropped. Coordinates are British National Grid metres or WGS84
    longitude/latitude, told apart by the file's ``crs`` member or, without one, by their range.
    """
    path = Path(path)
    if level not in LEVELS:
        raise PlacelinkError(f"unknown boundary level {level!r}", where="boundaries", fix=f"use one of {LEVELS}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(path, "boundary file not found", f"put the {level.upper()} boundaries there (docs/atlas.md)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise _fail(path, "not valid UTF-8 JSON" + (f" (line {line})" if line else ""), FIX_JSON) from None
    return parse_boundaries(data, path, level, codes)


FIX_JSON = "save the file again as GeoJSON (a FeatureCollection), e.g. from the ONS Open Geography Portal"


def parse_boundaries(data: object, path: Path, level: str, codes: list[str] | None = None) -> Boundaries:
    """:func:`load_boundaries` after the JSON is read (``path`` names the file in errors)."""
    fix_json = FIX_JSON
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
        raise _fail(path, "not a GeoJSON FeatureCollection", fix_json)
    crs = ((data.get("crs") or {}).get("properties") or {}).get("name") if isinstance(data.get("crs"), dict) else None
    if crs is not None and not isinstance(crs, str):
        raise _fail(path, "the crs member is not a name", fix_json)
    out = Boundaries(level=level, path=path, projected=True)
    field_name = None
    for i, feature in enumerate(data["features"]):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise _fail(path, "not a GeoJSON Feature", fix_json, i)
        props = feature.get("properties")
        if not isinstance(props, dict):
            raise _fail(path, "feature has no properties", f"each feature needs a {level}_code property", i)
        field_name = field_name or _code_field(props, level)
        code = props.get(field_name) if field_name else None
        if not isinstance(code, str) or not code.strip():
            raise _fail(path, f"feature has no {level} code", f"give each feature a {level}_code (or ONS "
                        f"{ONS_CODE_FIELD[level].replace(chr(92) + 'd{2}', 'yy')}) property", i)
        code = code.strip()
        if codes is not None and code not in codes:
            continue
        if code in out.areas:
            raise _fail(path, f"area {code} appears twice", "keep one feature per area (dissolve the parts)", i)
        out.areas[code] = _rings_of(feature.get("geometry"), path, i)
        name = props.get(_name_field(field_name))
        out.names[code] = name if isinstance(name, str) else code
    if not out.areas:
        raise _fail(path, f"no {level} polygons" + (" of this county's areas" if codes is not None and data["features"]
                                                    else ""),
                    f"use the {level.upper()} boundary file that covers the county (docs/atlas.md)")
    if codes is not None:
        missing = [c for c in codes if c not in out.areas]
        if missing:
            raise _fail(path, f"{len(missing)} {level} area(s) of the county have no polygon, e.g. "
                        f"{', '.join(missing[:3])}",
                        "use the boundary file of the same vintage as reference/lsoas.csv (docs/atlas.md)")
    x0, y0, x1, y1 = out.bounds()
    lonlat = -180 <= x0 and x1 <= 180 and -90 <= y0 and y1 <= 90
    if crs is not None:
        if "27700" in crs:
            out.projected = True
        elif "4326" in crs or "CRS84" in crs.upper():
            out.projected = False
        else:
            raise _fail(path, f"coordinate reference system {crs[:60]!r} is not supported",
                        "export in British National Grid (EPSG:27700) or WGS84 (EPSG:4326)")
    else:
        out.projected = not lonlat
    if out.projected and lonlat:
        raise _fail(path, "coordinates look like longitude/latitude but the file says British National Grid",
                    "export the file again with its real coordinate reference system")
    return out


def load_reference_boundaries(reference: Path, level: str) -> Boundaries:
    """``reference/boundaries_<level>.geojson`` checked against the codes in ``reference/<level>s.csv``."""
    reference = Path(reference)
    table = reference / REFERENCE_CSV[level]
    codes = pd.read_csv(table, dtype=str)[f"{level}_code"].tolist() if table.exists() else None
    return load_boundaries(boundary_file(reference, level), level, codes)
