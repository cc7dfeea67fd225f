"""The county's geography: districts, wards, MSOAs, LSOAs, postcodes, a property gazetteer and schools.

All codes are ONS-*style* but deliberately outside the ranges ONS has issued (E01090001..., E07000901...)
so synthetic data can never be mistaken for a real area. Postcodes are in valid UK format with the
fictional postcode area ``SH`` ("Shire"; ``SX`` when the county needs more than 99 outward codes), and
every postcode unit is built inside one LSOA, so each postcode maps to exactly one LSOA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestration.lib.synthetic.config import RESIDENTS_PER_LSOA
from orchestration.lib.synthetic.names import name_pools

DISTRICT_NAMES = [
    "Northmoor", "Kingsbridge", "Eastwold", "Hartley Vale", "Brackendale", "Westholme", "Ashcombe",
    "Fenmarsh", "Stourton", "Oakhurst", "Millbrook", "Ravensby", "Thornleigh", "Culverdown",
]
LOCALITY_SUFFIXES = ["Green", "End", "Heath", "Cross", "on the Hill", "Marsh", "Parva", "Magna", "Common"]
STREET_SUFFIXES = np.array(["Road", "Street", "Lane", "Close", "Avenue", "Drive", "Way", "Crescent", "Gardens",
                            "Court", "Place", "Grove", "Terrace", "Mews", "Walk", "Rise", "View", "Row"])
STREET_SUFFIX_P = np.array([18, 14, 12, 10, 8, 7, 6, 5, 4, 3, 3, 3, 2, 1, 1, 1, 1, 1], dtype=float)
STREET_STEMS_EXTRA = ["Church", "Mill", "Station", "Park", "Victoria", "Queens", "Kings", "Manor", "School",
                      "Chapel", "Meadow", "Orchard", "Beech", "Oak", "Elm", "Ash", "Willow", "Cedar", "Hawthorn",
                      "Bridge", "Market", "High", "Castle", "Abbey", "Priory", "Windmill", "Brook", "Spring"]
HOUSE_NAMES = ["Rose Cottage", "The Old Rectory", "Ivy House", "Orchard House", "The Barn", "Meadow View",
               "Holly Lodge", "The Laurels", "Woodside", "Fairview", "Hillcrest", "The Cottage"]
INWARD_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))  # letters valid in the inward code (no C I K M O V)

# IMD 2019 national decile thresholds on the score (approximate): score >= 45 is decile 1 (most deprived).
IMD_THRESHOLDS = np.array([45.0, 34.2, 27.6, 22.7, 18.7, 15.2, 12.2, 9.6, 7.1])


@dataclass
class Geography:
    districts: pd.DataFrame
    wards: pd.DataFrame
    msoas: pd.DataFrame
    lsoas: pd.DataFrame
    postcodes: pd.DataFrame
    gazetteer: pd.DataFrame
    schools: pd.DataFrame


def en_to_lonlat(easting: np.ndarray, northing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Approximate British National Grid -> WGS84 (good to ~100 m in the Midlands).

    Only used to fill police.uk's Longitude/Latitude columns; pyproj is not a dependency and the data is
    synthetic, so a local linear approximation around the grid's true origin is enough.
    """
    lat = 49.0 + (northing + 100_000.0) / 111_200.0
    lon = -2.0 + (easting - 400_000.0) / (111_320.0 * np.cos(np.radians(lat)))
    return np.round(lon, 6), np.round(lat, 6)


def imd_decile(score: np.ndarray) -> np.ndarray:
    return 1 + np.searchsorted(-IMD_THRESHOLDS, -np.asarray(score), side="right")


def build_geography(rng: np.random.Generator, residents: int, n_districts: int) -> Geography:
    n_lsoa = max(round(residents / RESIDENTS_PER_LSOA), 2 * n_districts)
    # --- districts: unequal sizes, a "town" each
    d_idx = np.arange(n_districts)
    d_codes = np.array([f"E07000{901 + i}" for i in d_idx])
    d_names = np.array(DISTRICT_NAMES[:n_districts])
    d_weight = rng.gamma(6.0, 1.0, n_districts)
    lsoa_district = np.sort(rng.choice(n_districts, size=n_lsoa, p=d_weight / d_weight.sum()))
    lsoa_district[:n_districts] = d_idx  # every district has at least one LSOA
    lsoa_district = np.sort(lsoa_district)
    d_dep = rng.normal(0, 0.5, n_districts)  # district-level deprivation effect
    # district centres on a grid roughly 15 km apart around E 430 000, N 300 000
    side = math.ceil(math.sqrt(n_districts))
    d_e = 430_000 + (d_idx % side) * 15_000 + rng.normal(0, 2_000, n_districts)
    d_n = 300_000 + (d_idx // side) * 15_000 + rng.normal(0, 2_000, n_districts)

    # --- MSOAs (~5 LSOAs) and wards (~3 LSOAs), nested in districts
    rows_lsoa = []
    msoa_rows, ward_rows = [], []
    msoa_counter, ward_counter = 0, 0
    lsoa_counter = 0
    for d in d_idx:
        idx = np.flatnonzero(lsoa_district == d)
        n = len(idx)
        n_msoa = max(1, round(n / 5))
        msoa_of = np.sort(rng.integers(0, n_msoa, n)) if n_msoa > 1 else np.zeros(n, int)
        msoa_of[:n_msoa] = np.arange(min(n_msoa, n))
        msoa_of = np.sort(msoa_of)
        n_ward = max(1, round(n / 3))
        ward_of = np.sort(np.concatenate([np.arange(min(n_ward, n)), rng.integers(0, n_ward, max(0, n - n_ward))]))
        msoa_codes = {}
        for local_m in np.unique(msoa_of):
            msoa_counter += 1
            code = f"E0209{msoa_counter:04d}"
            msoa_codes[local_m] = code
            msoa_rows.append((code, f"{d_names[d]} {local_m + 1:03d}", d_codes[d]))
        ward_codes = {}
        for local_w in np.unique(ward_of):
            ward_counter += 1
            code = f"E0509{ward_counter:04d}"
            ward_codes[local_w] = code
            stem = name_pools()["british"]["family"][0][(ward_counter * 7) % 200]
            ward_rows.append((code, f"{stem} {['Ward', 'Park', 'Central', 'North', 'South'][ward_counter % 5]}"
                              if ward_counter % 3 else f"{d_names[d]} {['Central', 'North', 'East', 'West', 'South'][ward_counter % 5]}",
                              d_codes[d]))
        letters = {}
        for k in range(len(idx)):
            m = msoa_of[k]
            letter = "ABCDEFGH"[letters.get(m, 0) % 8]
            letters[m] = letters.get(m, 0) + 1
            lsoa_counter += 1
            rows_lsoa.append((f"E0109{lsoa_counter:04d}", f"{d_names[d]} {m + 1:03d}{letter}", msoa_codes[m],
                              ward_codes[ward_of[k]], d_codes[d], d, m))
    lsoas = pd.DataFrame(rows_lsoa, columns=["lsoa_code", "lsoa_name", "msoa_code", "ward_code", "district_code",
                                             "_d", "_m"])
    # --- deprivation: district effect + LSOA noise; IMD-like score (right-skewed, median ~17)
    latent = d_dep[lsoas["_d"].to_numpy()] + rng.normal(0, 0.8, n_lsoa)
    lsoas["deprivation"] = (latent - latent.mean()) / (latent.std() + 1e-9)
    lsoas["imd_score"] = np.round(np.exp(2.85 + 0.55 * lsoas["deprivation"].to_numpy()), 3)
    lsoas["imd_decile"] = imd_decile(lsoas["imd_score"].to_numpy())
    lsoas["population"] = np.maximum(600, np.round(residents / n_lsoa * rng.lognormal(0, 0.15, n_lsoa))).astype(int)
    # scale populations to the requested total
    lsoas["population"] = np.round(lsoas["population"] * residents / lsoas["population"].sum()).astype(int)
    lsoas["_e"] = d_e[lsoas["_d"]] + rng.normal(0, 3_000, n_lsoa)
    lsoas["_n"] = d_n[lsoas["_d"]] + rng.normal(0, 3_000, n_lsoa)
    # rural LSOAs (low density) carry a locality name and named houses
    lsoas["_rural"] = rng.random(n_lsoa) < 0.25

    districts = pd.DataFrame({"district_code": d_codes, "district_name": d_names})
    wards = pd.DataFrame(ward_rows, columns=["ward_code", "ward_name", "district_code"])
    msoas = pd.DataFrame(msoa_rows, columns=["msoa_code", "msoa_name", "district_code"])
    gazetteer, postcodes = _build_addresses(rng, lsoas, d_names, residents)
    schools = _build_schools(rng, lsoas, gazetteer)
    return Geography(districts, wards, msoas, lsoas, postcodes, gazetteer, schools)


def _build_addresses(rng: np.random.Generator, lsoas: pd.DataFrame, d_names: np.ndarray, residents: int
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Vectorised gazetteer: streets per LSOA, numbered properties, some flats, postcode units of ~15."""
    n_lsoa = len(lsoas)
    # households ~ population / 2.35; 7% vacancy + 5% spare so moves can find empty homes
    n_props = np.ceil(lsoas["population"].to_numpy() / 2.35 * 1.12).astype(int)
    lsoa_of_prop = np.repeat(np.arange(n_lsoa), n_props)
    n_total = len(lsoa_of_prop)
    # streets: ~60 properties each
    n_streets = np.maximum(2, n_props // 60)
    street_lsoa = np.repeat(np.arange(n_lsoa), n_streets)
    n_st = len(street_lsoa)
    fam, fam_w = name_pools()["british"]["family"]
    stems = np.concatenate([fam[:300], np.array(STREET_STEMS_EXTRA, dtype=object)])
    stem_w = np.concatenate([np.full(300, 1.0), np.full(len(STREET_STEMS_EXTRA), 6.0)])
    street_names = (stems[rng.choice(len(stems), n_st, p=stem_w / stem_w.sum())].astype(str)
                    + " " + rng.choice(STREET_SUFFIXES, n_st, p=STREET_SUFFIX_P / STREET_SUFFIX_P.sum()))
    # properties to streets within their LSOA (uniform among that LSOA's streets)
    street_start = np.concatenate([[0], np.cumsum(n_streets)[:-1]])
    prop_street = street_start[lsoa_of_prop] + (rng.random(n_total) * n_streets[lsoa_of_prop]).astype(int)
    order = np.argsort(prop_street, kind="stable")
    prop_street = prop_street[order]
    lsoa_of_prop = lsoa_of_prop[order]
    # number along each street: flats share a building number (SAON "Flat k")
    is_flat = rng.random(n_total) < np.where(lsoas["_rural"].to_numpy()[lsoa_of_prop], 0.02, 0.15)
    new_building = ~is_flat | (rng.random(n_total) < 0.2)  # a flat starts a new block 1 time in 5
    first_on_street = np.r_[True, prop_street[1:] != prop_street[:-1]]
    new_building |= first_on_street
    building_seq = np.cumsum(new_building)
    street_first_building = building_seq[first_on_street]
    street_rank = np.cumsum(first_on_street) - 1
    house_no = building_seq - street_first_building[street_rank] + 1
    # within a block, flat numbers 1..k
    block_start = np.flatnonzero(new_building)
    block_id = np.cumsum(new_building) - 1
    flat_no = np.arange(n_total) - block_start[block_id] + 1
    block_has_flats = np.bincount(block_id, weights=is_flat, minlength=len(block_start)) > 0
    in_flats = block_has_flats[block_id]
    saon = np.where(in_flats, np.char.add("Flat ", flat_no.astype(str)), "")
    paon = house_no.astype(str).astype(object)
    rural = lsoas["_rural"].to_numpy()[lsoa_of_prop]
    named = rural & ~in_flats & (rng.random(n_total) < 0.2)
    paon[named] = np.array(HOUSE_NAMES, dtype=object)[rng.integers(0, len(HOUSE_NAMES), int(named.sum()))]
    # town and locality
    d_of = lsoas["_d"].to_numpy()[lsoa_of_prop]
    town = d_names[d_of]
    loc_stem = stems[(lsoas.index.to_numpy() * 37) % 300].astype(str)
    lsoa_locality = np.where(lsoas["_rural"].to_numpy(), np.char.add(np.char.add(loc_stem, " "),
                                                np.array(LOCALITY_SUFFIXES)[lsoas.index.to_numpy() % 9]), "")
    locality = lsoa_locality[lsoa_of_prop]
    # postcode units: ~15 consecutive properties on a street (never across an LSOA, since streets are in one)
    new_unit = first_on_street | (np.arange(n_total) % 15 == 0)
    unit_id = np.cumsum(new_unit) - 1
    n_units = int(unit_id[-1]) + 1
    unit_lsoa = lsoa_of_prop[new_unit]
    # each MSOA is one postcode sector (outward code + digit); outward codes numbered across the county
    msoa_codes = lsoas["msoa_code"].to_numpy()
    _, msoa_num = np.unique(msoa_codes, return_inverse=True)
    sector_global = msoa_num[unit_lsoa]
    outward_num = sector_global // 10 + 1
    sector_digit = sector_global % 10
    area = np.where(outward_num > 99, "SX", "SH")
    outward_num = np.where(outward_num > 99, outward_num - 99, outward_num)
    # unit letters: unique within a sector (20 x 20 = 400 per sector; wrap to a new sector digit if needed)
    rank_in_sector = _rank_within(sector_global)
    if rank_in_sector.max() >= 400:
        # very large MSOA: spill into an extra sector digit range on a second outward code
        extra = rank_in_sector // 400
        outward_num = outward_num + extra * 50
        rank_in_sector = rank_in_sector % 400
    perm = np.random.default_rng(7).permutation(400)
    code = perm[rank_in_sector]
    unit = np.char.add(INWARD_LETTERS[code // 20], INWARD_LETTERS[code % 20])
    postcode_unit = np.char.add(np.char.add(np.char.add(area, outward_num.astype(str)), " "),
                                np.char.add(sector_digit.astype(str), unit))
    assert len(np.unique(postcode_unit)) == n_units, "postcode units must be unique"
    postcode = postcode_unit[unit_id]
    # coordinates: LSOA centre + scatter; a unit's properties sit together
    unit_e = lsoas["_e"].to_numpy()[unit_lsoa] + rng.normal(0, 350, n_units)
    unit_n = lsoas["_n"].to_numpy()[unit_lsoa] + rng.normal(0, 350, n_units)
    easting = np.round(unit_e[unit_id] + rng.normal(0, 25, n_total)).astype(int)
    northing = np.round(unit_n[unit_id] + rng.normal(0, 25, n_total)).astype(int)
    lsoa_codes = lsoas["lsoa_code"].to_numpy()
    gazetteer = pd.DataFrame({
        "uprn": (100_090_000_000 + np.arange(n_total)).astype(np.int64),
        "saon": saon.astype(object),
        "paon": paon,
        "street": street_names[prop_street].astype(object),
        "locality": locality.astype(object),
        "town": town.astype(object),
        "postcode": postcode.astype(object),
        "easting": easting,
        "northing": northing,
        "lsoa_code": lsoa_codes[lsoa_of_prop],
    })
    postcodes = pd.DataFrame({
        "postcode": postcode_unit.astype(object), "lsoa_code": lsoa_codes[unit_lsoa],
        "easting": np.round(unit_e).astype(int), "northing": np.round(unit_n).astype(int),
    })
    return gazetteer, postcodes


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0-based rank of each element within its group, in array order (vectorised)."""
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    start = np.r_[True, g[1:] != g[:-1]]
    idx = np.arange(len(g))
    first = np.maximum.accumulate(np.where(start, idx, 0))
    rank = np.empty(len(g), dtype=np.int64)
    rank[order] = idx - first
    return rank


def _build_schools(rng: np.random.Generator, lsoas: pd.DataFrame, gazetteer: pd.DataFrame) -> pd.DataFrame:
    """A primary per ~2 LSOAs and a secondary per ~8, placed in LSOAs of their district."""
    rows = []
    urn = 190_000
    first = gazetteer.groupby("lsoa_code", sort=False)[["street", "town"]].first()
    for d, group in lsoas.groupby("_d", sort=True):
        codes = group["lsoa_code"].to_numpy()
        n_primary = max(1, round(len(codes) / 2))
        n_secondary = max(1, round(len(codes) / 8))
        for phase, n in (("primary", n_primary), ("secondary", n_secondary)):
            for k in range(n):
                urn += 1
                lsoa = codes[(k * 2 if phase == "primary" else k * 8) % len(codes)]
                street, town = first.at[lsoa, "street"], first.at[lsoa, "town"]
                stem = street.rsplit(" ", 1)[0]
                name = (f"{stem} {'Primary School' if k % 3 else 'Church of England Primary School'}"
                        if phase == "primary" else f"{town} {'Academy' if k % 2 == 0 else 'High School'}")
                rows.append((urn, name, lsoa, phase, d))
    schools = pd.DataFrame(rows, columns=["school_urn", "school_name", "lsoa_code", "phase", "_d"])
    schools["school_name"] = schools["school_name"].where(~schools["school_name"].duplicated(),
                                                          schools["school_name"] + " " + schools["school_urn"].astype(str))
    return schools
