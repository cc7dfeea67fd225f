"""Disclosure control on hand-made tables: secondary suppression closes every way back to a hidden cell.

The attacker is ``attacker_bounds`` (linear programming over the published margins with hidden cells >= 1); the
first test shows it does recover cells from a primary-only pattern, so the later "bounds differ" checks can fail.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.lib.disclosure import (
    attacker_bounds,
    district_blocks,
    margin_structure,
    protect_place_table,
    secondary_suppression,
)
from orchestration.lib.errors import PlacelinkError

# two districts; D1 has wards W1 (L1, L2) and W2 (L3, L4), MSOAs M1 (L1, L3) and M2 (L2, L4); D2 = W3 = M3 = L5, L6
HIERARCHY = pd.DataFrame({
    "lsoa_code": ["L1", "L2", "L3", "L4", "L5", "L6"],
    "ward_code": ["W1", "W1", "W2", "W2", "W3", "W3"],
    "msoa_code": ["M1", "M2", "M1", "M2", "M3", "M3"],
    "district_code": ["D1", "D1", "D1", "D1", "D2", "D2"],
})


def cells(lsoa_counts: dict[str, int], month="2025-03-01", indicator="x") -> pd.DataFrame:
    h = HIERARCHY.assign(event_count=HIERARCHY["lsoa_code"].map(lsoa_counts).fillna(0).astype(int))
    rows = [("lsoa", r.lsoa_code, r.event_count) for r in h.itertuples()]
    for level in ("ward", "msoa", "district"):
        rows += [(level, code, int(v)) for code, v in h.groupby(f"{level}_code")["event_count"].sum().items()]
    rows.append(("county", "county", int(h["event_count"].sum())))
    df = pd.DataFrame(rows, columns=["geography_level", "area_code", "event_count"])
    return df.assign(month=pd.Timestamp(month), indicator=indicator, population=1000)


def primary_only(table: pd.DataFrame, threshold=5) -> pd.DataFrame:
    hidden = table["event_count"].between(1, threshold - 1)
    return table.assign(is_suppressed=hidden, event_count=table["event_count"].where(~hidden).astype("Int64"))


def test_attacker_recovers_a_cell_from_primary_suppression_alone():
    table = cells({"L1": 3, "L2": 20, "L3": 30, "L4": 40, "L5": 50, "L6": 60})
    bounds = attacker_bounds(primary_only(table), HIERARCHY)
    l1 = bounds[bounds["area_code"] == "L1"].iloc[0]
    assert l1["lower"] == l1["upper"] == 3  # ward W1 (23) minus L2 (20): the hidden 3 is recovered


@pytest.mark.parametrize("counts", [
    {"L1": 3, "L2": 20, "L3": 30, "L4": 40, "L5": 50, "L6": 60},      # one small cell
    {"L1": 1, "L2": 1, "L3": 30, "L4": 40, "L5": 50, "L6": 60},       # two small cells that sum to 2
    {"L1": 2, "L2": 0, "L3": 0, "L4": 9, "L5": 1, "L6": 0},           # small districts, zeros around
    {"L1": 4, "L2": 4, "L3": 4, "L4": 4, "L5": 4, "L6": 4},           # everything small
    {"L1": 0, "L2": 3, "L3": 7, "L4": 0, "L5": 12, "L6": 2},
])
def test_no_suppressed_cell_can_be_recovered_from_published_margins(counts):
    published = protect_place_table(cells(counts), HIERARCHY)
    shown = published[~published["is_suppressed"]]
    assert not shown["event_count"].between(1, 4).any(), "a published count is in 1..4"
    bounds = attacker_bounds(published, HIERARCHY)
    assert len(bounds) == published["is_suppressed"].sum() > 0
    pinned = bounds[bounds["upper"] - bounds["lower"] < 1e-6]
    assert pinned.empty, f"recoverable cells:\n{pinned}"


def test_zeros_are_kept_and_rates_only_where_the_count_is_shown():
    table = cells({"L1": 3, "L2": 0, "L3": 30, "L4": 40, "L5": 50, "L6": 60})
    published = protect_place_table(table, HIERARCHY)
    l2 = published[published["area_code"] == "L2"].iloc[0]
    assert l2["event_count"] == 0 and not l2["is_suppressed"]
    assert published.loc[published["is_suppressed"], "rate_per_1000"].isna().all()
    shown = published[~published["is_suppressed"]]
    assert np.allclose(shown["rate_per_1000"], 1000 * shown["event_count"].astype(float) / 1000)


def test_unsuppressed_cells_keep_their_true_values():
    counts = {"L1": 3, "L2": 20, "L3": 30, "L4": 40, "L5": 50, "L6": 60}
    truth = cells(counts).set_index(["geography_level", "area_code"])["event_count"]
    published = protect_place_table(cells(counts), HIERARCHY).set_index(["geography_level", "area_code"])
    shown = published[~published["is_suppressed"]]
    assert (shown["event_count"].astype(int) == truth.loc[shown.index]).all()


def test_threshold_is_configurable():
    table = cells({"L1": 7, "L2": 20, "L3": 30, "L4": 40, "L5": 50, "L6": 60})
    assert not protect_place_table(table, HIERARCHY, threshold=5)["is_suppressed"].any()
    strict = protect_place_table(table, HIERARCHY, threshold=10)
    assert strict.loc[strict["area_code"] == "L1", "is_suppressed"].item()


def test_secondary_suppression_picks_the_smallest_partner():
    s = margin_structure(HIERARCHY)
    order = list(zip(s.cells["geography_level"], s.cells["area_code"], strict=True))
    table = cells({"L1": 3, "L2": 20, "L3": 30, "L4": 40, "L5": 50, "L6": 60}).set_index(
        ["geography_level", "area_code"])["event_count"]
    values = np.array([table[k] for k in order], dtype=float)
    flags = secondary_suppression(values, (values >= 1) & (values < 5), s)
    hidden = {order[i][1] for i in np.flatnonzero(flags)}
    assert {"L1", "L2"} <= hidden  # L2 (20) is the smallest partner in ward W1 and in the MSOA/district


def test_bad_inputs_say_what_to_do():
    with pytest.raises(PlacelinkError, match="threshold"):
        protect_place_table(cells({"L1": 3}), HIERARCHY, threshold=1)
    with pytest.raises(PlacelinkError, match="hierarchy"):
        protect_place_table(cells({"L1": 3}), HIERARCHY.drop(columns=["ward_code"]))


def _county_like_hierarchy(n_districts=3, wards_per_district=6, lsoas_per_ward=4, seed=7) -> pd.DataFrame:
    """Wards and MSOAs that cross each other inside each district, like the real geography (not nested)."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_districts):
        n = wards_per_district * lsoas_per_ward
        msoa = rng.permutation(np.arange(n) % (n // 5))  # ~5 LSOAs per MSOA, scattered across wards
        for i in range(n):
            rows.append((f"L{d}_{i:02d}", f"W{d}_{i // lsoas_per_ward}", f"M{d}_{msoa[i]}", f"D{d}"))
    return pd.DataFrame(rows, columns=["lsoa_code", "ward_code", "msoa_code", "district_code"])


@pytest.mark.parametrize("mean_count", [0.5, 1.5, 3, 8])
def test_realistic_tables_leave_nothing_recoverable_and_keep_most_of_a_busy_table(mean_count):
    """Random Poisson counts over a county-like hierarchy (crossing wards and MSOAs): the linear-programming
    attacker pins no suppressed cell (cheap interval tests alone let some through), and a table of mostly
    publishable counts is not wiped out (the former fallback hid every cell of such tables)."""
    h = _county_like_hierarchy()
    for seed in range(3):
        rng = np.random.default_rng(seed)
        lsoa = h.assign(event_count=rng.poisson(mean_count, len(h)))
        rows = [("lsoa", r.lsoa_code, r.event_count) for r in lsoa.itertuples()]
        for level in ("ward", "msoa", "district"):
            rows += [(level, c, int(v)) for c, v in lsoa.groupby(f"{level}_code")["event_count"].sum().items()]
        rows.append(("county", "county", int(lsoa["event_count"].sum())))
        table = pd.DataFrame(rows, columns=["geography_level", "area_code", "event_count"]).assign(
            month=pd.Timestamp("2025-03-01"), indicator="x", population=1000)
        published = protect_place_table(table, h)
        assert not published.loc[~published["is_suppressed"], "event_count"].between(1, 4).any()
        bounds = attacker_bounds(published, h)
        pinned = bounds[bounds["upper"] - bounds["lower"] < 1e-6]
        assert pinned.empty, f"seed {seed}: recoverable cells:\n{pinned}"
        if mean_count >= 8:
            assert published["is_suppressed"].mean() < 0.5, published["is_suppressed"].mean()


def _table(h: pd.DataFrame, lsoa_counts: np.ndarray, month="2025-03-01", indicator="x") -> pd.DataFrame:
    lsoa = h.assign(event_count=lsoa_counts)
    rows = [("lsoa", r.lsoa_code, r.event_count) for r in lsoa.itertuples()]
    for level in ("ward", "msoa", "district"):
        rows += [(level, c, int(v)) for c, v in lsoa.groupby(f"{level}_code")["event_count"].sum().items()]
    rows.append(("county", "county", int(lsoa["event_count"].sum())))
    return pd.DataFrame(rows, columns=["geography_level", "area_code", "event_count"]).assign(
        month=pd.Timestamp(month), indicator=indicator, population=1000)


def test_district_blocks_split_the_table_by_district_and_leave_only_the_county_out():
    h = _county_like_hierarchy()
    s = margin_structure(h)
    blocks = district_blocks(s)
    assert len(blocks) == h["district_code"].nunique()
    covered = np.concatenate([cells for cells, _ in blocks])
    assert len(covered) == len(set(covered)) == s.size - 1  # disjoint; every cell but the county's
    for cells, sub in blocks:
        districts = s.cells.iloc[cells].query("geography_level == 'district'")["area_code"]
        assert len(districts) == 1  # each block is one district with its wards, MSOAs and LSOAs
        lsoas = s.cells.iloc[cells].query("geography_level == 'lsoa'")["area_code"]
        assert set(h.loc[h["lsoa_code"].isin(lsoas), "district_code"]) == {districts.item()}
        assert sub.size == len(cells)


def test_a_hidden_district_total_is_protected_across_the_county_equation():
    """A district whose total is itself a small count: protecting districts one by one cannot see the county
    equation (county = sum of districts), so the whole-table pass must hide a second district total."""
    h = pd.concat([_county_like_hierarchy(), pd.DataFrame({
        "lsoa_code": ["LX1", "LX2"], "ward_code": ["WX", "WX"], "msoa_code": ["MX", "MX"],
        "district_code": ["DX", "DX"]})], ignore_index=True)
    rng = np.random.default_rng(3)
    counts = np.where(h["district_code"] == "DX", 1, rng.poisson(6, len(h)))
    published = protect_place_table(_table(h, counts), h)
    districts = published[published["geography_level"] == "district"]
    assert districts.set_index("area_code").loc["DX", "is_suppressed"]
    assert districts["is_suppressed"].sum() >= 2, "DX = county - other districts would give DX away"
    bounds = attacker_bounds(published, h)
    assert bounds[bounds["upper"] - bounds["lower"] < 1e-6].empty


def test_worker_processes_publish_exactly_what_one_process_does():
    h = _county_like_hierarchy()
    rng = np.random.default_rng(11)
    table = pd.concat([_table(h, rng.poisson(mean, len(h)), month=f"2025-{m:02d}-01", indicator=f"i{mean}")
                       for m in range(1, 5) for mean in (1.5, 4)], ignore_index=True)
    one = protect_place_table(table, h, workers=1)
    two = protect_place_table(table, h, workers=2)
    assert one["is_suppressed"].sum() > 0
    pd.testing.assert_frame_equal(one, two)


def test_the_one_lp_exact_test_pins_exactly_the_cells_the_attacker_recovers():
    """_pinned_exact (one linear program over the cone of the feasible counts) against the attacker's two LPs per
    hidden cell, on random hiding patterns that are not safe: the same cells come out pinned, and some are."""
    from orchestration.lib.disclosure import _pinned_exact

    h = _county_like_hierarchy(n_districts=2, wards_per_district=3)
    s = margin_structure(h)
    n_lsoa = (s.cells["geography_level"] == "lsoa").sum()
    found_pinned = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        lsoa = rng.poisson(2.5, n_lsoa).astype(float)
        values = np.zeros(s.size)
        values[:n_lsoa] = lsoa
        for total, children in s.equations[:-1]:
            values[total] = values[children].sum()
        values[s.equations[-1][0]] = values[s.equations[-1][1]].sum()
        hidden = (values > 0) & (rng.random(s.size) < 0.35)
        published = s.cells.assign(event_count=pd.array(np.where(hidden, 0, values), dtype="Int64"),
                                   is_suppressed=hidden, month=pd.Timestamp("2025-03-01"), indicator="x")
        bounds = attacker_bounds(published, h)
        attacker = set(bounds.loc[bounds["upper"] - bounds["lower"] < 1e-6, "area_code"])
        ours = set(s.cells.iloc[_pinned_exact(values, hidden, s.matrix())]["area_code"])
        assert ours == attacker, f"seed {seed}"
        found_pinned += len(ours)
    assert found_pinned > 0


def test_a_county_sized_table_protected_by_district_is_safe_when_district_totals_are_hidden():
    """Tables of at least BLOCKS_MIN_CELLS cells are protected district by district, then only the districts the
    county equation couples (hidden totals) are checked together. Two tiny districts force hidden totals."""
    from orchestration.lib.disclosure import BLOCKS_MIN_CELLS

    h = pd.concat([_county_like_hierarchy(n_districts=9), pd.DataFrame({
        "lsoa_code": ["LX1", "LX2", "LY1", "LY2"], "ward_code": ["WX", "WX", "WY", "WY"],
        "msoa_code": ["MX", "MX", "MY", "MY"], "district_code": ["DX", "DX", "DY", "DY"]})], ignore_index=True)
    assert margin_structure(h).size >= BLOCKS_MIN_CELLS
    rng = np.random.default_rng(5)
    counts = np.where(h["district_code"].isin(["DX", "DY"]), rng.integers(0, 2, len(h)), rng.poisson(3, len(h)))
    published = protect_place_table(_table(h, counts), h)
    districts = published[published["geography_level"] == "district"].set_index("area_code")
    assert districts["is_suppressed"].sum() >= 2
    assert not published.loc[~published["is_suppressed"], "event_count"].between(1, 4).any()
    bounds = attacker_bounds(published, h)
    pinned = bounds[bounds["upper"] - bounds["lower"] < 1e-6]
    assert pinned.empty, f"recoverable cells:\n{pinned}"


def test_dense_components_label_like_scipy():
    """The null-space test splits hidden cells into connected groups on a dense matrix for block-sized systems;
    it must find scipy's groups with scipy's labels (isolated cells, chains and dense clusters alike)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    from orchestration.lib.disclosure import _dense_components

    rng = np.random.default_rng(1)
    for _ in range(200):
        m, n = int(rng.integers(1, 40)), int(rng.integers(1, 200))
        incidence = rng.random((m, n)) < rng.choice([0.02, 0.05, 0.2])
        x = csr_matrix(incidence, dtype=np.int8)
        expected = connected_components(x.T @ x, directed=False)
        found = _dense_components(incidence)
        assert found[0] == expected[0]
        np.testing.assert_array_equal(found[1], expected[1])


# --- the indicator hierarchy: crime types add up to crimes_total (seed `indicators`, column `parent`) -------------

TYPES = {"t_a": "total", "t_b": "total", "t_c": "total"}


def linked_cells(type_counts: dict[str, dict[str, int]], hierarchy=HIERARCHY, month="2025-03-01") -> pd.DataFrame:
    """Every geography level of each type's table, and of the total (the sum of the types at every area)."""
    tables = [_table(hierarchy, hierarchy["lsoa_code"].map(counts).fillna(0).astype(int).to_numpy(), month, name)
              for name, counts in type_counts.items()]
    total = tables[0].copy()
    total["event_count"] = sum(t["event_count"].to_numpy() for t in tables)
    return pd.concat([*tables, total.assign(indicator="total")], ignore_index=True)


def test_protecting_each_indicator_alone_leaves_crime_types_recoverable_from_the_total():
    """The bug: each (month, indicator) table protected on its own. Its own margins are safe, but the total minus
    the published types gives hidden cells back; protected as one linked table, nothing is recoverable."""
    counts = {"t_a": {"L1": 3, "L2": 20, "L3": 30, "L4": 40, "L5": 50, "L6": 60},
              "t_b": {"L1": 25, "L2": 20, "L3": 30, "L4": 40, "L5": 50, "L6": 60},
              "t_c": {"L1": 30, "L2": 20, "L3": 30, "L4": 40, "L5": 50, "L6": 60}}
    alone = protect_place_table(linked_cells(counts), HIERARCHY, indicators={})
    per_table = pd.concat([attacker_bounds(t, HIERARCHY, indicators={})
                           for _, t in alone.groupby("indicator")])
    assert (per_table["upper"] - per_table["lower"] >= 1).all()  # each table alone is safe...
    bounds = attacker_bounds(alone, HIERARCHY, indicators=TYPES)
    pinned = bounds[bounds["upper"] - bounds["lower"] < 1e-6]
    assert not pinned.empty  # ...but crimes_total - published types pins a hidden cell
    linked = protect_place_table(linked_cells(counts), HIERARCHY, indicators=TYPES)
    bounds = attacker_bounds(linked, HIERARCHY, indicators=TYPES)
    assert len(bounds) == linked["is_suppressed"].sum() > 0
    assert (bounds["upper"] - bounds["lower"] >= 1).all(), bounds


def test_the_indicator_hierarchy_comes_from_the_seed_and_is_checked():
    from orchestration.lib.disclosure import indicator_groups, indicator_parents, load_indicator_seed

    seed = load_indicator_seed()
    parents = indicator_parents(seed)
    crime_types = {i for i in seed["indicator"] if i.startswith("crimes_") and i != "crimes_total"}
    assert parents == dict.fromkeys(crime_types, "crimes_total")
    groups = indicator_groups(list(seed["indicator"]), parents)
    assert tuple(sorted({*crime_types, "crimes_total"})) in groups
    assert all(len(g) == 1 for g in groups if "crimes_total" not in g)
    with pytest.raises(PlacelinkError, match="not an indicator"):
        indicator_parents(seed.assign(parent=seed["parent"].replace("crimes_total", "crimes_all")))
    with pytest.raises(PlacelinkError, match="own ancestor"):
        indicator_parents({"a": "b", "b": "a"})


def test_a_total_that_is_not_the_sum_of_its_parts_is_refused():
    counts = {"t_a": {"L1": 3, "L2": 20}, "t_b": {"L1": 7}, "t_c": {"L3": 9}}
    table = linked_cells(counts)
    table.loc[(table["indicator"] == "total") & (table["area_code"] == "L1"), "event_count"] += 1
    with pytest.raises(PlacelinkError, match="sum of their parts"):
        protect_place_table(table, HIERARCHY, indicators=TYPES)


@st.composite
def linked_tables(draw):
    """A random small county (1-2 districts of 1-3 wards of 1-3 LSOAs, MSOAs drawn across wards) and 2-3 types
    with small counts (mostly 0..6, so most tables need primary and secondary suppression)."""
    rows, n = [], 0
    for d in range(draw(st.integers(1, 2))):
        for w in range(draw(st.integers(1, 3))):
            for _ in range(draw(st.integers(1, 3))):
                rows.append((f"L{n}", f"W{d}{w}", f"M{d}{draw(st.integers(0, 1))}", f"D{d}"))
                n += 1
    h = pd.DataFrame(rows, columns=["lsoa_code", "ward_code", "msoa_code", "district_code"])
    k = draw(st.integers(2, 3))
    count = st.one_of(st.integers(0, 6), st.integers(0, 30))
    counts = {f"t_{i}": {code: draw(count) for code in h["lsoa_code"]} for i in range(k)}
    return h, counts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linked_tables())
def test_property_no_suppressed_cell_is_pinned_by_any_published_relation(case):
    """For random small linked tables: every suppressed cell's LP interval over all published relations (geography
    margins and type -> total) leaves at least two whole counts possible; zeros are published as zeros; shown
    counts are the true counts and never 1..4."""
    h, counts = case
    parents = {name: "total" for name in counts}
    truth = linked_cells(counts, h)
    published = protect_place_table(truth, h, indicators=parents)
    merged = published.merge(truth[["geography_level", "area_code", "indicator", "event_count"]],
                             on=["geography_level", "area_code", "indicator"], suffixes=("", "_true"))
    assert len(merged) == len(truth)
    shown = merged[~merged["is_suppressed"]]
    assert (shown["event_count"] == shown["event_count_true"]).all()
    assert not shown["event_count"].between(1, 4).any()
    assert not merged.loc[merged["event_count_true"] == 0, "is_suppressed"].any()
    assert merged.loc[merged["event_count_true"].between(1, 4), "is_suppressed"].all()
    bounds = attacker_bounds(published, h, indicators=parents)
    assert len(bounds) == published["is_suppressed"].sum()
    whole_counts = np.floor(bounds["upper"] + 1e-6) - np.ceil(bounds["lower"] - 1e-6) + 1
    assert (whole_counts >= 2).all(), f"pinned:\n{bounds[whole_counts < 2]}"


def test_worker_processes_protect_big_linked_tables_block_by_block_exactly_as_one_process(monkeypatch):
    """Big tables (here crime-like types linked to their total) are spread over the workers district block by
    district block, then passed across districts: the published result is exactly one process's, and safe."""
    import orchestration.lib.disclosure as disclosure

    monkeypatch.setattr(disclosure, "PARALLEL_MIN_CELLS", 0)  # the fixture is small: use the workers anyway
    monkeypatch.setattr(disclosure, "PARALLEL_MIN_TABLES", 2)
    h = _county_like_hierarchy()
    rng = np.random.default_rng(4)
    parents = {"t_0": "total", "t_1": "total", "t_2": "total"}
    table = pd.concat([linked_cells({t: dict(zip(h["lsoa_code"], rng.poisson(mean, len(h)), strict=True))
                                     for t, mean in zip(parents, (0.5, 2, 6), strict=True)}, h, f"2025-{m:02d}-01")
                       for m in (1, 2, 3)], ignore_index=True)
    assert disclosure.margin_structure(h).size * 4 >= disclosure.BLOCKS_MIN_CELLS  # protected block by block
    one = protect_place_table(table, h, workers=1, indicators=parents)
    two = protect_place_table(table, h, workers=2, indicators=parents)
    pd.testing.assert_frame_equal(one, two)
    bounds = attacker_bounds(two[two["month"] == pd.Timestamp("2025-01-01")], h, indicators=parents)
    assert len(bounds) > 0 and (bounds["upper"] - bounds["lower"] >= 1).all()
