"""Statistical disclosure control for the published place tables (docs/design.md "Disclosure control").

Primary suppression (counts 1..threshold-1; zeros stay zeros) is a SQL macro in ``dbt_project/macros/disclosure.sql``
pinned by dbt ``unit_tests``. *Secondary* suppression lives here, in Python, because it is a property of a whole
table's margin equations (LSOA cells add up to ward, MSOA and district totals; districts add up to the county) and
is iterative: protecting one cell can expose another. SQL would need a recursive fixpoint over a linear-algebra test;
numpy does it in a few lines. The dbt Python model ``published.place_monthly_indicators`` calls
:func:`protect_place_table`, so the published table and files are exactly what this module emits.

We write this rather than use a library: the established SDC tools (sdcTable, tau-Argus) are R/Java programs, and
no maintained Python package covers cell suppression over hierarchical tables.

Published totals are sums along two axes, and both are margin equations of one table. Geography: an LSOA table's
ward, MSOA, district and county cells. Indicators: the seed ``dbt_project/seeds/indicators.csv`` says in its
``parent`` column which indicators add up to which (every crime type's parent is ``crimes_total``). The indicators
linked by ``parent`` are protected as ONE table per month (:func:`linked_structure`: the geography table stacked
once per indicator, plus parent = sum of its children at every area), so an attacker who subtracts the published
crime types from ``crimes_total`` (one-step differencing), or combines that with the geography margins, meets the
same equations the suppression was checked against. An indicator with no parent and no children is a table of its
own. The seed is the one place the hierarchy is stated: :func:`protect_place_table` and :func:`attacker_bounds`
read it (the dbt model passes ``ref('indicators')``), and a dbt test checks the counts obey it.

The attacker model the tests check (:func:`attacker_bounds`): the published file shows every unsuppressed cell and
total; suppressed cells are known to be >= 1 (zeros are published). For every suppressed cell we require that the
margin equations (geography and indicator alike) do not pin it: not determined by linear algebra, and (checked by
linear programming) its minimum and maximum feasible values differ, by at least 1, so that at least two whole
counts remain possible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from orchestration.lib.errors import PlacelinkError

DEFAULT_THRESHOLD = 5
LEVELS = ("lsoa", "ward", "msoa", "district", "county")
CELL_COLUMNS = ("geography_level", "area_code", "month", "indicator", "event_count", "population")
#: the indicator catalogue; its ``parent`` column is the indicator hierarchy (child -> the total it adds up to)
INDICATOR_SEED = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds" / "indicators.csv"


def load_indicator_seed(path: Path | None = None) -> pd.DataFrame:
    """The indicator seed (``indicator, ..., parent``) as dbt loads it, from the repository."""
    return pd.read_csv(path or INDICATOR_SEED, dtype=str, keep_default_na=False)


def indicator_parents(indicators: pd.DataFrame | Mapping[str, str] | None) -> dict[str, str]:
    """``child -> parent`` from the seed's ``parent`` column (blank: no parent), checked: every parent is an
    indicator of the seed and no indicator is its own ancestor. A mapping is taken as already ``child -> parent``.
    """
    if indicators is None:
        return {}
    if isinstance(indicators, Mapping):
        parents = {str(c): str(p) for c, p in indicators.items() if p}
        known = set(parents) | set(parents.values())
    else:
        if "parent" not in indicators.columns:
            raise PlacelinkError("the indicator seed has no parent column", where="dbt_project/seeds/indicators.csv",
                                 fix="add a parent column (blank, or the indicator this one adds up to)")
        seed = indicators.fillna("")
        known = set(seed["indicator"].astype(str))
        parents = {str(c): str(p).strip() for c, p in zip(seed["indicator"], seed["parent"], strict=True)
                   if str(p).strip()}
    for child, parent in parents.items():
        if parent not in known:
            raise PlacelinkError(f"indicator {child} has parent {parent}, which is not an indicator",
                                 where="dbt_project/seeds/indicators.csv, column parent",
                                 fix="name an indicator of the seed, or leave parent blank")
        seen, up = {child}, parent
        while up in parents:
            if up in seen:
                raise PlacelinkError(f"indicator {child} is its own ancestor through parent",
                                     where="dbt_project/seeds/indicators.csv, column parent",
                                     fix="the parent column must form a tree")
            seen.add(up)
            up = parents[up]
    return parents


def indicator_groups(indicators: Sequence[str], parents: Mapping[str, str]) -> list[tuple[str, ...]]:
    """The indicators linked by ``parent`` (connected through parent/child), each group sorted; an indicator with no
    link among ``indicators`` is a group of one. Every group is protected as one table per month."""
    root = {i: i for i in indicators}

    def find(i: str) -> str:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for child, parent in parents.items():
        if child in root and parent in root:
            root[find(child)] = find(parent)
    groups: dict[str, list[str]] = {}
    for i in indicators:
        groups.setdefault(find(i), []).append(i)
    return sorted(tuple(sorted(g)) for g in groups.values())


@dataclass(frozen=True)
class MarginStructure:
    """The cells of one month's table in a fixed order, and its margin equations: one indicator's geography table
    (:func:`margin_structure`), or a linked group of indicators (:func:`linked_structure`, whose ``cells`` have an
    ``indicator`` column too).

    ``equations[j]`` is ``(total_index, child_indices)``: ``value[total] == sum(value[children])``.
    """

    cells: pd.DataFrame  # geography_level, area_code in variable order
    equations: tuple[tuple[int, np.ndarray], ...]
    #: Redundant equations (district = sum of its wards, = sum of its MSOAs). They add nothing to linear algebra but
    #: let interval propagation see aggregates an attacker would use.
    implied: tuple[tuple[int, np.ndarray], ...] = ()

    @property
    def size(self) -> int:
        return len(self.cells)

    def matrix(self) -> np.ndarray:
        """Equations as rows of A with A @ values == 0."""
        a = np.zeros((len(self.equations), self.size))
        for j, (total, children) in enumerate(self.equations):
            a[j, total] = 1.0
            a[j, children] = -1.0
        return a


def margin_structure(hierarchy: pd.DataFrame) -> MarginStructure:
    """Build the margin equations from the LSOA hierarchy (``lsoa_code, ward_code, msoa_code, district_code``).

    Every ward, MSOA and district total equals the sum of its LSOAs; the county equals the sum of the districts.
    (District = sum of wards and = sum of MSOAs follow from these, so they add nothing.)
    """
    missing = {"lsoa_code", "ward_code", "msoa_code", "district_code"} - set(hierarchy.columns)
    if missing:
        raise PlacelinkError(f"hierarchy lacks columns {sorted(missing)}", where="disclosure.margin_structure",
                             fix="pass marts.dim_lsoa (lsoa_code, ward_code, msoa_code, district_code)")
    h = hierarchy.sort_values("lsoa_code").reset_index(drop=True)
    rows: list[tuple[str, str]] = [("lsoa", c) for c in h["lsoa_code"]]
    for level in ("ward", "msoa", "district"):
        rows += [(level, c) for c in sorted(h[f"{level}_code"].dropna().unique())]
    rows.append(("county", "county"))
    index = {key: i for i, key in enumerate(rows)}
    lsoa_idx = np.arange(len(h))
    equations = []
    for level in ("ward", "msoa", "district"):
        for code, members in h.groupby(f"{level}_code").groups.items():
            equations.append((index[(level, code)], lsoa_idx[np.asarray(members)]))
    districts = np.array([i for (lvl, _), i in index.items() if lvl == "district"])
    equations.append((index[("county", "county")], districts))
    implied = []
    for level in ("ward", "msoa"):
        parents = h[[f"{level}_code", "district_code"]].drop_duplicates()
        for dcode, group in parents.groupby("district_code"):
            implied.append((index[("district", dcode)],
                            np.array([index[(level, c)] for c in sorted(group[f"{level}_code"])])))
    cells = pd.DataFrame(rows, columns=["geography_level", "area_code"])
    return MarginStructure(cells=cells, equations=tuple(equations), implied=tuple(implied))


def linked_structure(geography: MarginStructure, indicators: Sequence[str],
                     parents: Mapping[str, str]) -> MarginStructure:
    """One table for indicators linked by ``parent``: the geography table once per indicator (same equations, each
    copy's cells offset by ``k * geography.size``), plus, at every area of every level, parent = sum of its
    children. With crime types under ``crimes_total`` this is the 3-D table LSOA x type with the total as a margin
    (and the ward ... county margins of each). A parent's equation is written only when all its children are in
    ``indicators``: otherwise the sum is not a published relation.
    """
    n = geography.size
    offset = {ind: k * n for k, ind in enumerate(indicators)}
    equations = [(t + o, ch + o) for o in offset.values() for t, ch in geography.equations]
    implied = [(t + o, ch + o) for o in offset.values() for t, ch in geography.implied]
    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    area = np.arange(n)
    for parent in indicators:
        kids = sorted(children.get(parent, ()))
        if not kids or any(k not in offset for k in kids):
            continue
        parts = np.stack([area + offset[k] for k in kids], axis=1)  # row i: area i of every child
        equations += [(offset[parent] + i, parts[i]) for i in range(n)]
    cells = pd.concat([geography.cells.assign(indicator=ind) for ind in indicators], ignore_index=True)
    return MarginStructure(cells=cells, equations=tuple(equations), implied=tuple(implied))


def _check_adds_up(values: np.ndarray, structure: MarginStructure, where: str) -> None:
    """Refuse a table whose true counts break its own equations: the suppression would be checked against a
    relation the data does not obey (e.g. a crime type missing from ``crimes_total``)."""
    if not structure.equations:
        return
    totals = np.array([t for t, _ in structure.equations])
    parts = np.concatenate([ch for _, ch in structure.equations])
    eq_of = np.repeat(np.arange(totals.size), [len(ch) for _, ch in structure.equations])
    sums = np.bincount(eq_of, values[parts], minlength=totals.size)
    bad = np.flatnonzero(np.abs(values[totals] - sums) > 1e-6)
    if bad.size:
        cell = structure.cells.iloc[totals[bad[0]]].to_dict()
        raise PlacelinkError(f"{bad.size} total(s) differ from the sum of their parts, e.g. {cell}", where=where,
                             fix="the seed's parent column or the place marts are wrong: every parent indicator "
                                 "must count exactly its children's events; rebuild the marts")


#: up to this many unknowns (a district block's hidden cells) the matrices are dense: scipy.sparse's conversions
#: and checks cost more than the work itself at that size (connected components: half of the null-space test's
#: time in a county month; the exact test's LP matrices likewise); a whole county table's thousand: sparse
DENSE_MAX = 400


def _dense_components(incidence: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the unknowns (columns) linked by sharing an equation (row), labelled 0..k-1 in
    order of each component's first column, as scipy's ``connected_components`` labels them."""
    n = incidence.shape[1]
    linked = incidence.T.astype(np.float32) @ incidence.astype(np.float32) > 0
    np.fill_diagonal(linked, True)  # a column in no equation is a component of its own
    labels = np.arange(n)
    while True:  # every column takes the smallest label among its neighbours until nothing changes
        smallest = np.where(linked, labels[None, :], n).min(axis=1)
        if np.array_equal(smallest, labels):
            break
        labels = smallest[smallest]  # pointer jumping: halves the rounds on long chains
    _, first = np.unique(labels, return_inverse=True)
    return int(first.max()) + 1 if n else 0, first


def _determined(a: np.ndarray, unknown: np.ndarray, connected: bool = False,
                svds: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """Indices (into ``unknown``) of suppressed cells the equations determine exactly.

    x_i is determined by A_U x_U = b iff every null-space vector of A_U is zero at i. A_U is block diagonal over
    the connected components of its unknowns (two unknowns are connected when an equation holds both), so the
    null space is found per component: at county scale a component is about one district (~100 cells) instead
    of the whole table (~1,500), which made one table take a minute. ``connected``: the caller knows the
    unknowns form one component (skip the split). ``svds``: filled with each component's SVD, keyed by its
    cells (``unknown`` values), for :func:`_unpin` to reuse: the pinned cell it frees is in one of them.
    """
    if svds is not None:
        svds.clear()
    if unknown.size == 0:
        return np.array([], dtype=int)
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    sub = a[:, unknown]
    sub = sub[np.any(sub != 0, axis=1)]
    if sub.shape[0] == 0:
        return np.array([], dtype=int)
    if connected:
        n_comp, labels = 1, np.zeros(unknown.size, dtype=int)
    elif unknown.size <= DENSE_MAX:
        n_comp, labels = _dense_components(sub != 0)
    else:
        incidence = csr_matrix(sub != 0, dtype=np.int8)
        n_comp, labels = connected_components(incidence.T @ incidence, directed=False)
    out = []
    for comp in range(n_comp):
        cols = np.flatnonzero(labels == comp)
        block = sub[:, cols]
        block = block[np.any(block != 0, axis=1)]
        if block.shape[0] == 0:
            continue  # in no equation: free
        # The thin SVD: blocks are wide (93 % of them at county scale: ~40 equations x ~75 cells), and the full
        # one spent most of its time building an n x n basis of which only the null-space rows were read. A cell
        # is determined iff e_i lies in the row space, i.e. the residual of projecting e_i onto it, column i of
        # I - V_r V_r^T, is zero; that residual is computed directly (not as 1 - |row|^2, which would lose the
        # precision the 1e-9 test needs). Same cells as the null-space test on four county months; 2-3x faster.
        u, s, vt = np.linalg.svd(block, full_matrices=False)
        if svds is not None:
            svds[unknown[cols].tobytes()] = (u, s, vt)
        rank = int(np.sum(s > 1e-9))
        row_space = vt[:rank]
        residual = -(row_space.T @ row_space)
        residual[np.diag_indices_from(residual)] += 1.0
        out.append(cols[np.linalg.norm(residual, axis=0) < 1e-9])
    return np.sort(np.concatenate(out)) if out else np.array([], dtype=int)


def secondary_suppression(values: np.ndarray, primary: np.ndarray, structure: MarginStructure,
                          threshold: int = DEFAULT_THRESHOLD, max_rounds: int = 10_000) -> np.ndarray:
    """Extend the primary suppression pattern until no suppressed cell can be recovered from the margins.

    Rules, applied until nothing changes (each round only adds suppressions, so it terminates):

    1. An equation with exactly one suppressed cell gives it away: suppress one more.
    2. The suppressed cells of an equation add up to a published residual (total minus shown cells); if that
       residual is below ``threshold`` or no larger than the number of suppressed cells, it is itself a small count
       or pins the cells: suppress one more.
    3. A suppressed cell that the whole system determines (null-space test), or whose derived bounds leave it one
       possible value (interval propagation, :func:`_intervals`), gets the cheapest extra suppression that frees it.

    "One more" is the unsuppressed, non-zero cell with the smallest count in that equation (least information lost;
    zeros are never suppressed because zeros are published), preferring area cells to the equation's total.

    Args:
        values: true counts in ``structure`` order.
        primary: boolean mask of primary-suppressed cells.
        structure: from :func:`margin_structure`.
        threshold: counts 1..threshold-1 are primary-suppressed.

    Returns:
        Boolean mask of every suppressed cell (primary and secondary).
    """
    values = np.asarray(values, dtype=float)
    suppressed = np.asarray(primary, dtype=bool).copy()
    if not suppressed.any():
        return suppressed  # nothing hidden: the margins have nothing to give away
    all_eqs = structure.equations + structure.implied

    def add_partner(total: int, children: np.ndarray) -> bool:
        for group in (children, np.array([total])):
            free = group[(~suppressed[group]) & (values[group] > 0)]
            if free.size:
                pick = free[np.lexsort((free, values[free]))[0]]
                suppressed[pick] = True
                return True
        return False

    matrix = None
    svds: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # this round's, from _determined
    var_eqs = _equations_by_cell(all_eqs)
    for _ in range(max_rounds):
        changed = False
        for total, children in all_eqs:
            members = np.concatenate(([total], children))
            hidden = members[suppressed[members]]
            k = hidden.size
            if k == 0 or k == len(members):
                continue  # nothing hidden, or nothing published: the equation reveals nothing
            if k == 1:
                weak = True
            elif suppressed[total]:
                weak = False  # one relation among k >= 2 unknowns; combinations are caught by rule 3
            else:
                residual = values[children][suppressed[children]].sum()
                weak = residual < threshold or residual <= k
            if weak and add_partner(total, children):
                changed = True
        if changed:
            continue
        if matrix is None:
            matrix = structure.matrix()
        # The interval test first: it needs no factorisation, and while it finds pinned cells the round frees
        # them without one (``linear=False``: the candidates are checked against the bounds alone; a cell the
        # equations also determine is caught by the null-space test once the bounds pass). In a linked table
        # most rounds end here, and factorising its big component every round was most of its time.
        pinned, linear = _pinned_by_bounds(values, suppressed, all_eqs), False
        if pinned.size == 0:
            unknown = np.flatnonzero(suppressed)
            pinned, linear = unknown[_determined(matrix, unknown, svds=svds)], None
        if pinned.size == 0:  # the cheap tests pass: confirm with the exact (LP) test before publishing
            pinned = _pinned_exact(values, suppressed, matrix)
        # Free the pinned cells one partner each, all chosen against this round's pattern (so every _unpin reuses
        # this round's SVDs), then look again: the next round's tests find any cell still pinned. One cell per
        # round meant one factorisation per added cell, and a linked table (crime types with crimes_total) has
        # one big component of hidden cells: minutes per table. A cell whose equations already got a partner this
        # round waits for the next round (its partner may free it too); the first cell that no single extra cell
        # frees ends the round (trying every such cell cost minutes per county table).
        base = suppressed.copy()
        for cell in pinned.tolist():
            near = np.concatenate([np.concatenate(([all_eqs[j][0]], all_eqs[j][1])) for j in var_eqs.get(cell, ())]
                                  or [np.array([], dtype=int)])
            if changed and (suppressed[near] & ~base[near]).any():
                continue
            work = base.copy()
            if not _unpin(cell, matrix, work, values, all_eqs, var_eqs=var_eqs, svds=svds, linear=linear):
                break
            suppressed |= work
            changed = True
        if not changed and pinned.size:
            # No single extra cell frees it: hide the cheapest linked cell and look again (each round adds one
            # suppression, so this ends); only with nothing left to hide near it, hide every non-zero cell.
            more = _local_candidates(int(pinned[0]), suppressed, values, all_eqs, var_eqs)
            if more.size == 0:
                suppressed |= values > 0
                return suppressed
            suppressed[more[0]] = True
            changed = True
        if not changed:
            return suppressed
    raise PlacelinkError("secondary suppression did not converge", where="disclosure.secondary_suppression",
                         fix="report this table; raise max_rounds")


class _Compiled(tuple):
    """Equations as flat arrays ``(totals, children, eq_of)``: built once and reused by every :func:`_intervals`
    call on the same equations (building them was most of a call's time in the candidate loop of :func:`_unpin`)."""


def _compile(eqs: tuple[tuple[int, np.ndarray], ...]) -> _Compiled:
    if not eqs:
        empty = np.array([], dtype=int)
        return _Compiled((empty, empty, empty))
    return _Compiled((np.array([t for t, _ in eqs]), np.concatenate([ch for _, ch in eqs]),
                      np.repeat(np.arange(len(eqs)), [len(ch) for _, ch in eqs])))


def _intervals(values: np.ndarray, suppressed: np.ndarray, eqs: tuple[tuple[int, np.ndarray], ...] | _Compiled,
               max_passes: int = 1_000) -> tuple[np.ndarray, np.ndarray]:
    """Bounds an attacker can derive for every cell by propagating the margin equations (interval arithmetic).

    Shown cells are fixed; hidden cells start at [1, inf) because zeros are published. Each pass tightens a total
    to [sum of children's lows, sum of children's highs] and each child to [total low - others' highs,
    total high - others' lows]. Cheaper than a linear program per cell, and it catches the attacks that matter
    here: small residuals whose lower bounds leave a cell only one possible value.

    Every equation is updated at once per pass (sums by ``np.bincount`` over the concatenated children): the
    equations hold a handful of cells each, and looping over them in Python was a third of a county table's
    time. The updates only ever narrow sound bounds, so the fixpoint is the one a one-equation-at-a-time
    sweep reaches.
    """
    lo = np.where(suppressed, 1.0, values)
    hi = np.where(suppressed, np.inf, values)
    totals, children, eq_of = eqs if isinstance(eqs, _Compiled) else _compile(eqs)
    if totals.size == 0:
        return lo, hi
    # only the equations holding a hidden cell can move a bound (the others hold constants)
    active = suppressed[totals] | (np.bincount(eq_of, suppressed[children], minlength=totals.size) > 0)
    if not active.any():
        return lo, hi
    if not active.all():
        keep = active[eq_of]
        totals, children = totals[active], children[keep]
        eq_of = (np.cumsum(active) - 1)[eq_of[keep]]
    n_eq = totals.size
    for _ in range(max_passes):
        clo, chi = lo[children], hi[children]
        finite = np.isfinite(chi)
        sum_lo = np.bincount(eq_of, clo, minlength=n_eq)
        n_inf = np.bincount(eq_of, ~finite, minlength=n_eq)
        sum_hi = np.bincount(eq_of, np.where(finite, chi, 0.0), minlength=n_eq)
        t_lo = np.maximum(lo[totals], sum_lo)
        t_hi = np.minimum(hi[totals], np.where(n_inf > 0, np.inf, sum_hi))
        others_hi = np.where(n_inf[eq_of] - (~finite) > 0, np.inf, sum_hi[eq_of] - np.where(finite, chi, 0.0))
        others_lo = sum_lo[eq_of] - clo
        new_lo, new_hi = lo.copy(), hi.copy()
        # a cell can be the total of several equations and a child in several: keep the tightest bound
        np.maximum.at(new_lo, totals, t_lo)
        np.minimum.at(new_hi, totals, t_hi)
        np.maximum.at(new_lo, children, t_lo[eq_of] - others_hi)
        np.minimum.at(new_hi, children, t_hi[eq_of] - others_lo)
        if not (np.any(new_lo > lo + 1e-9) or np.any(new_hi < hi - 1e-9)):
            break
        lo, hi = new_lo, new_hi
    return lo, hi


def _pinned_exact(values: np.ndarray, suppressed: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Every hidden cell the published table pins to one value, exactly as the linear-programming attacker
    (:func:`attacker_bounds`) would find, but with one LP per table instead of two per hidden cell.

    The hidden cells range over P = {x >= 1, A_U x = b}. A cell is constant on P iff it is constant on P's affine
    hull, which is A_U x = b plus x_j = 1 for the cells that are 1 everywhere on P (implicit equalities); the rest
    is the null-space test of :func:`_determined` on the hull. The implicit equalities come from one LP over the
    cone of P (Freund, Roundy and Todd's construction): with y = s x and s >= 1, maximise sum t_j subject to
    A_U y = b s, y_j - s >= t_j, 0 <= t_j <= 1. A cell that exceeds 1 somewhere on P exceeds it everywhere on a
    point averaged over such cells, and scaling that point by s lifts every such slack to 1; a cell that is 1 on
    all of P has y_j = s, so t_j = 0. The optimum therefore has t_j = 1 exactly for the cells that can leave 1.
    (An earlier loop of LPs over x itself needed ~4 solves per call.)
    Interval propagation (:func:`_intervals`) is a relaxation of this and misses combinations the LP finds.
    """
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, hstack, identity

    hidden = np.flatnonzero(suppressed)
    if hidden.size == 0:
        return hidden
    a_u = matrix[:, hidden]
    keep = np.any(a_u != 0, axis=1)
    a_u = a_u[keep]
    b = -(matrix @ np.where(suppressed, 0.0, values))[keep]
    n, m = hidden.size, a_u.shape[0]
    # The true counts are a point of P when every hidden count is at least 1 (the usual case: zeros are
    # published), so the cells above 1 there are known to leave 1 and need no slack variable.
    true_hidden = values[hidden]
    above = true_hidden > 1 + 1e-9 if true_hidden.min() >= 1 else np.zeros(n, dtype=bool)
    if not above.all():
        cand = ~above
        # variables (y, t, s): minimise -sum t over cand; -y_j + t_j + s <= 0 for every j (t_j = 0 off cand)
        c = np.concatenate([np.zeros(n), -cand.astype(float), [0.0]])
        bounds = np.zeros((2 * n + 1, 2))
        bounds[:n, 1] = np.inf
        bounds[n:2 * n, 1] = cand
        bounds[2 * n] = (1.0, np.inf)
        if n <= DENSE_MAX:
            a_eq = np.hstack([a_u, np.zeros((m, n)), -b[:, None]])
            a_ub = np.hstack([-np.eye(n), np.eye(n), np.ones((n, 1))])
        else:
            eye = identity(n, format="csr")
            a_eq = hstack([csr_matrix(a_u), csr_matrix((m, n)), csr_matrix(-b[:, None])]).tocsr()
            a_ub = hstack([-eye, eye, csr_matrix(np.ones((n, 1)))]).tocsr()
        res = linprog(c, A_ub=a_ub, b_ub=np.zeros(n), A_eq=a_eq, b_eq=np.zeros(m), bounds=bounds, method="highs")
        if res.status != 0:
            raise PlacelinkError("margin equations infeasible", where="disclosure._pinned_exact",
                                 fix="the cell counts do not add up to their totals: rebuild the place marts")
        above |= cand & (res.x[n:2 * n] > 0.5)
    # On the affine hull the cells at 1 everywhere are constants (pinned, to 1); the others are pinned when the
    # equations over them alone determine them. (Same answer as the null space of A_U stacked with a unit row
    # per constant cell, on a smaller matrix.)
    free = np.flatnonzero(above)
    pinned = np.concatenate([np.flatnonzero(~above), free[_determined(a_u, free)]]) if free.size else \
        np.flatnonzero(~above)
    return hidden[np.sort(pinned)]


def _pinned_by_bounds(values, suppressed, eqs) -> np.ndarray:
    lo, hi = _intervals(values, suppressed, eqs)
    return np.flatnonzero(suppressed & (hi - lo < 0.5))


def _reachable_equations(cell: int, suppressed: np.ndarray, eqs: tuple[tuple[int, np.ndarray], ...],
                          var_eqs: dict[int, list[int]]) -> tuple[tuple[int, np.ndarray], ...]:
    """The equations linked to ``cell`` through hidden cells: only they can bound or determine it (shown cells
    are constants), so testing ``cell`` on them alone gives the same answer as on the whole table, faster."""
    seen_vars, seen_eqs, stack = {cell}, set(), [cell]
    while stack:
        v = stack.pop()
        for j in var_eqs.get(v, ()):
            if j in seen_eqs:
                continue
            seen_eqs.add(j)
            t, ch = eqs[j]
            members = np.concatenate(([t], ch))
            for w in members[suppressed[members]].tolist():
                if w not in seen_vars:
                    seen_vars.add(w)
                    stack.append(w)
    return tuple(eqs[j] for j in sorted(seen_eqs))


def _local_candidates(cell: int, suppressed: np.ndarray, values: np.ndarray,
                      eqs: tuple[tuple[int, np.ndarray], ...], var_eqs: dict[int, list[int]],
                      members: np.ndarray | None = None) -> np.ndarray:
    """Shown, non-zero cells of the equations linked to ``cell``, smallest count first: only suppressing one of
    these can change what the margins say about ``cell``. ``members``: the cells of those equations, when the
    caller has them already (:func:`_local_members`)."""
    pool = _local_members(cell, suppressed, eqs, var_eqs) if members is None else members
    if pool.size == 0:
        return pool
    pool = pool[(~suppressed[pool]) & (values[pool] > 0)]
    # the cells sharing an equation with ``cell`` first (most likely to free it), then the rest; smallest first
    near = np.zeros(len(values), dtype=bool)
    for j in var_eqs.get(cell, ()):
        near[eqs[j][0]] = True
        near[eqs[j][1]] = True
    return pool[np.lexsort((pool, values[pool], ~near[pool]))]


def _local_members(cell: int, suppressed: np.ndarray, eqs: tuple[tuple[int, np.ndarray], ...],
                   var_eqs: dict[int, list[int]]) -> np.ndarray:
    """Every cell of the equations linked to ``cell`` through hidden cells (:func:`_reachable_equations`)."""
    local = _reachable_equations(cell, suppressed, eqs, var_eqs)
    if not local:
        return np.array([], dtype=int)
    return np.unique(np.concatenate([np.concatenate(([t], ch)) for t, ch in local]))


def _unpin(cell: int, matrix: np.ndarray, suppressed: np.ndarray, values: np.ndarray,
           eqs: tuple[tuple[int, np.ndarray], ...], max_candidates: int = 25,
           var_eqs: dict[int, list[int]] | None = None,
           svds: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
           linear: bool | None = None) -> bool:
    """Suppress the cheapest extra cell that stops ``cell`` being determined; True if one was found.

    Candidates are the shown, non-zero cells of the equations linked to ``cell`` (:func:`_local_candidates`).
    When the equations determine ``cell`` (some combination y of them isolates it: y @ A_U = e_cell), hiding a
    candidate c frees it exactly when no combination still isolates it after c joins the unknowns: every equation
    holding c already holds a hidden cell, c's column lies in the column space of A_U, and y0 @ a_c != 0 for the
    minimum-norm y0. That is one SVD per pinned cell for all candidates at once (testing each candidate with its
    own SVD took minutes per county table). Candidates that pass are then checked against the attacker's bounds.
    ``svds``: the components' SVDs :func:`_determined` just made (the system here is one of them, same rows and
    columns in the same order), so it is not factorised twice. ``linear=False``: the caller knows only that the
    bounds pin ``cell``; skip the factorisation and the linear filter (the bounds check decides).
    """
    if var_eqs is None:
        var_eqs = _equations_by_cell(eqs)
    members = _local_members(cell, suppressed, eqs, var_eqs)
    candidates = _local_candidates(cell, suppressed, values, eqs, var_eqs, members=members)
    if candidates.size == 0:
        return False
    if linear is False:
        return _first_freeing(cell, candidates[:max_candidates], suppressed, values, eqs, var_eqs)
    unknown = members[suppressed[members]]
    touching = np.any(matrix[:, unknown] != 0, axis=1)
    a_u = matrix[touching][:, unknown]
    known = (svds or {}).get(unknown.tobytes())
    u, s, vt = known if known is not None and known[0].shape[0] == a_u.shape[0] else \
        np.linalg.svd(a_u, full_matrices=False)
    rank = int(np.sum(s > 1e-9))
    basis = u[:, :rank]
    pos = int(np.flatnonzero(unknown == cell)[0])
    y0 = basis @ (vt[:rank, pos] / s[:rank])
    target = np.zeros(unknown.size)
    target[pos] = 1.0
    if np.linalg.norm(a_u.T @ y0 - target) < 1e-6:  # linearly determined: only some candidates can free it
        a_c = matrix[touching][:, candidates]
        outside = np.any(matrix[~touching][:, candidates] != 0, axis=0)
        in_span = np.linalg.norm(a_c - basis @ (basis.T @ a_c), axis=0) < 1e-9
        candidates = candidates[~outside & in_span & (np.abs(y0 @ a_c) > 1e-9)]
    return _first_freeing(cell, candidates[:max_candidates], suppressed, values, eqs, var_eqs)


def _first_freeing(cell: int, candidates: np.ndarray, suppressed: np.ndarray, values: np.ndarray,
                   eqs: tuple[tuple[int, np.ndarray], ...], var_eqs: dict[int, list[int]]) -> bool:
    """Hide the first candidate after which the bounds no longer pin ``cell``; True if one was found."""
    if candidates.size == 0:
        return False
    # The equations reachable from ``cell`` with every candidate hidden hold those reachable with any one of them
    # hidden; the others meet them only in shown cells (constants), so they leave ``cell``'s bounds unchanged.
    # Found and compiled once, not once per candidate (in a linked table that search was most of the time).
    wide = suppressed.copy()
    wide[candidates] = True
    local = _compile(_reachable_equations(cell, wide, eqs, var_eqs))
    # Hiding more only widens bounds, so if hiding every candidate at once leaves ``cell`` pinned, no single one
    # frees it: one interval run instead of one per candidate (the usual case for a failing cell of a linked table)
    if cell in _pinned_by_bounds(values, wide, local):
        return False
    for candidate in candidates:
        suppressed[candidate] = True
        if cell not in _pinned_by_bounds(values, suppressed, local):
            return True
        suppressed[candidate] = False
    return False


def district_blocks(structure: MarginStructure) -> list[tuple[np.ndarray, MarginStructure]]:
    """Split the table into independent blocks, one per district: its LSOAs, wards, MSOAs and its total.

    Only the county equation links districts, and only through their totals. So while a district's total is shown,
    nothing outside the district can tell an attacker anything about a cell inside it, and the district can be
    protected on its own: a few hundred cells instead of the whole county's ~2,000, with every check (rounds of
    rules, SVDs, linear programs) that much smaller. Measured on a 1,000-LSOA county table: the whole-table
    search took 5-22 s for the mid-range tables, the per-district one well under a second.

    In a linked table (:func:`linked_structure`) a block is the district in every indicator of the group: the
    indicator equations hold one area each, so they stay inside a district, except the county's, which (like the
    county equations) join only district and county cells.

    Returns ``(cells, structure)`` per block: the block's cell indices into ``structure`` and its own margin
    equations over local indices.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    levels = structure.cells["geography_level"].to_numpy()
    local_eqs = [(t, ch) for t, ch in structure.equations if levels[t] != "county"]
    # cells joined by an equation other than the county one: the components are the districts (and the county)
    rows = np.concatenate([np.full(len(ch), t) for t, ch in local_eqs])
    cols = np.concatenate([ch for _, ch in local_eqs])
    graph = coo_matrix((np.ones(rows.size), (rows, cols)), shape=(structure.size, structure.size))
    _, roots = connected_components(graph, directed=False)
    blocks = []
    for root in np.unique(roots):
        cells = np.flatnonzero(roots == root)
        if cells.size == 1:
            continue  # a county cell: only in the county equations
        local = np.full(structure.size, -1)
        local[cells] = np.arange(cells.size)
        equations, implied = ([(int(local[t]), local[ch]) for t, ch in eqs if local[t] >= 0]
                              for eqs in (local_eqs, structure.implied))
        blocks.append((cells, MarginStructure(cells=structure.cells.iloc[cells].reset_index(drop=True),
                                              equations=tuple(equations), implied=tuple(implied))))
    return blocks


#: below this many cells a table is protected whole: each block's search has a fixed cost (its final linear
#: programs), which on a small county's tables (~60 cells, 12 districts of 2 LSOAs) made the blocks 3x slower
BLOCKS_MIN_CELLS = 300


def protect_table(values: np.ndarray, primary: np.ndarray, structure: MarginStructure,
                  threshold: int = DEFAULT_THRESHOLD,
                  blocks: list[tuple[np.ndarray, MarginStructure]] | None = None) -> np.ndarray:
    """Secondary suppression of one month x indicator table, district by district, then across districts.

    Each district (:func:`district_blocks`) is protected on its own; the union is then the starting pattern of
    :func:`secondary_suppression` over the districts the county equation couples (:func:`_protect_across_districts`),
    which adds whatever the county equation needs (when a district total had to be hidden) and ends, as always,
    with the exact test, so the result is as safe as protecting the whole table at once.
    """
    values = np.asarray(values, dtype=float)
    suppressed = np.asarray(primary, dtype=bool).copy()
    if structure.size < BLOCKS_MIN_CELLS:
        return secondary_suppression(values, suppressed, structure, threshold)
    blocks = district_blocks(structure) if blocks is None else blocks
    for cells, sub in blocks:
        if suppressed[cells].any():
            suppressed[cells] = secondary_suppression(values[cells], suppressed[cells], sub, threshold)
    return _protect_across_districts(values, suppressed, structure, blocks, threshold)


def _protect_across_districts(values: np.ndarray, suppressed: np.ndarray, structure: MarginStructure,
                              blocks: list[tuple[np.ndarray, MarginStructure]], threshold: int) -> np.ndarray:
    """The whole-table pass after the district blocks, over only the districts the county equation couples.

    A district whose total is shown meets the rest of the table only through the county equation, as a published
    constant: its hidden cells are bound by its own equations alone, which its block pass already checked exactly.
    So the pass needs the districts whose totals are hidden, every district total and the county (the county
    equation), and nothing else; when no district total is hidden it has nothing to do. If the pass hides another
    district's total, that district joins and the pass runs again (each round adds a district, so it ends).
    Running it over the whole table instead was a quarter of a county table's time. Over four county months
    (100 tables) the two differ in one table by two extra hidden cells of 68,200: there the pass chose a shown
    district total as a partner, which the whole table would have seen is bound by its own LSOAs; its district
    then joined and needed two more cells. Both are checked by the exact test.
    """
    levels = structure.cells["geography_level"].to_numpy()
    totals = np.flatnonzero(levels == "district")
    county = np.flatnonzero(levels == "county")
    block_of = {int(t): b for b, (cells, _) in enumerate(blocks) for t in cells[levels[cells] == "district"]}
    chosen: set[int] = set()
    passed = False  # the pass has run over ``chosen`` (a hidden county alone also needs it once)
    while True:
        coupled = {block_of[int(t)] for t in totals[suppressed[totals]]}
        if coupled <= chosen and (passed or not suppressed[county].any()):
            return suppressed
        chosen |= coupled
        passed = True
        cells = np.unique(np.concatenate([totals, county, *(blocks[b][0] for b in sorted(chosen))]))
        sub = _restricted(structure, cells)
        suppressed[cells] = secondary_suppression(values[cells], suppressed[cells], sub, threshold)


def _restricted(structure: MarginStructure, cells: np.ndarray) -> MarginStructure:
    """The equations of ``structure`` whose cells all lie in ``cells`` (sorted), over local indices."""
    local = np.full(structure.size, -1)
    local[cells] = np.arange(cells.size)
    equations, implied = ([(int(local[t]), local[ch]) for t, ch in eqs if local[t] >= 0 and (local[ch] >= 0).all()]
                          for eqs in (structure.equations, structure.implied))
    return MarginStructure(cells=structure.cells.iloc[cells].reset_index(drop=True),
                           equations=tuple(equations), implied=tuple(implied))


def _equations_by_cell(eqs: tuple[tuple[int, np.ndarray], ...]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for j, (t, ch) in enumerate(eqs):
        for v in np.concatenate(([t], ch)):
            out.setdefault(int(v), []).append(j)
    return out


#: fewer tables (or cells in all) than these are protected in this process: starting a worker (importing numpy,
#: pandas and scipy afresh) costs about a second, more than a few small tables take
PARALLEL_MIN_TABLES = 8
PARALLEL_MIN_CELLS = 20_000
WORKERS_ENV = "PLACELINK_DISCLOSURE_WORKERS"


def _protect(values: np.ndarray, structure: MarginStructure, threshold: int, blocks) -> np.ndarray:
    """One month's table (an indicator, or a linked group): its counts 1..threshold-1 are the primary cells."""
    return protect_table(values, (values >= 1) & (values < threshold), structure, threshold, blocks=blocks)


#: a worker's margin structures (by group) with their district blocks, and the threshold, set by :func:`_start_worker`
_WORKER: dict = {}


def _start_worker(structures: dict[tuple[str, ...], MarginStructure], threshold: int) -> None:
    _WORKER.update(threshold=threshold,
                   structures={k: (s, district_blocks(s)) for k, s in structures.items()})


def _protect_one(table: tuple[tuple[str, ...], np.ndarray]) -> np.ndarray:
    key, values = table
    structure, blocks = _WORKER["structures"][key]
    return _protect(values, structure, _WORKER["threshold"], blocks)


def _protect_block(unit: tuple[tuple[str, ...], np.ndarray, int]) -> np.ndarray:
    """One district block of a big table (its cells' flags), as :func:`protect_table`'s loop does it."""
    key, values, b = unit
    structure, blocks = _WORKER["structures"][key]
    cells, sub = blocks[b]
    primary = (values[cells] >= 1) & (values[cells] < _WORKER["threshold"])
    return secondary_suppression(values[cells], primary, sub, _WORKER["threshold"])


def _protect_across(unit: tuple[tuple[str, ...], np.ndarray, np.ndarray]) -> np.ndarray:
    key, values, suppressed = unit
    structure, blocks = _WORKER["structures"][key]
    return _protect_across_districts(values, suppressed.copy(), structure, blocks, _WORKER["threshold"])


def _protect_tables(tables: list[tuple[tuple[str, ...], np.ndarray]],
                    structures: dict[tuple[str, ...], MarginStructure], threshold: int,
                    workers: int | None) -> list[np.ndarray]:
    """Protect every table (``(group, values)``: the group names its structure), spread over worker processes when
    there are enough of them.

    The tables are independent and the work is numpy/scipy under the GIL, so threads would not help
    (:mod:`orchestration.lib.parallel`: spawned workers, one BLAS thread each). Each worker receives the margin
    structures once, then takes the next table whenever it is free: a table's cost (0.1-1 s at county scale) is not
    predictable from its counts, and fixed halves left one worker idle for a second or more at the end.
    """
    from orchestration.lib.parallel import one_blas_thread, spawn_pool, worker_count

    cap = len(tables) // max(1, PARALLEL_MIN_TABLES // 2)  # at least a few tables per worker
    workers = worker_count(WORKERS_ENV, cap) if workers is None else max(1, min(workers, cap))
    n_cells = sum(v.size for _, v in tables)
    if workers == 1 or len(tables) < PARALLEL_MIN_TABLES or n_cells < PARALLEL_MIN_CELLS:
        blocks = {k: district_blocks(s) for k, s in structures.items()}
        with one_blas_thread():  # as each worker below runs
            return [_protect(v, structures[k], threshold, blocks[k]) for k, v in tables]
    with spawn_pool(workers, initializer=_start_worker, initargs=(structures, threshold)) as pool:
        # A big table's district blocks are independent (:func:`protect_table`), so they are separate tasks: a
        # linked table (12 crime indicators in one) is a few times dearer than the others and would otherwise
        # keep one worker busy long after the rest. Then each big table's pass across districts. The same steps
        # as :func:`protect_table`, so the same result as one process.
        blocks = {k: district_blocks(s) for k, s in structures.items()}
        big = [i for i, (k, _) in enumerate(tables) if structures[k].size >= BLOCKS_MIN_CELLS]
        units = [(i, b) for i in big for b, (cells, _) in enumerate(blocks[tables[i][0]])
                 if ((tables[i][1][cells] >= 1) & (tables[i][1][cells] < threshold)).any()]
        small = [i for i, (k, _) in enumerate(tables) if structures[k].size < BLOCKS_MIN_CELLS]
        block_flags = pool.map(_protect_block, [(tables[i][0], tables[i][1], b) for i, b in units], chunksize=1)
        small_flags = pool.map(_protect_one, [tables[i] for i in small], chunksize=1)
        out: list[np.ndarray | None] = [None] * len(tables)
        start = {i: (tables[i][1] >= 1) & (tables[i][1] < threshold) for i in big}
        for (i, b), flags in zip(units, block_flags, strict=True):
            start[i][blocks[tables[i][0]][b][0]] = flags
        across = pool.map(_protect_across, [(tables[i][0], tables[i][1], start[i]) for i in big], chunksize=1)
        for i, flags in zip(big, across, strict=True):
            out[i] = flags
        for i, flags in zip(small, small_flags, strict=True):
            out[i] = flags
        return out


def _structures(geography: MarginStructure, indicators: Sequence[str], parents: Mapping[str, str]
                ) -> tuple[dict[tuple[str, ...], MarginStructure], dict[str, tuple[tuple[str, ...], int]]]:
    """Each group of linked indicators' structure, and per indicator its group and cell offset in that structure."""
    structures, place = {}, {}
    for group in indicator_groups(list(indicators), parents):
        structures[group] = geography if len(group) == 1 else linked_structure(geography, group, parents)
        for k, ind in enumerate(group):
            place[ind] = (group, k * geography.size)
    return structures, place


def _variables(frame: pd.DataFrame, hierarchy: pd.DataFrame, parents: Mapping[str, str], where: str
               ) -> tuple[pd.DataFrame, dict[tuple[str, ...], MarginStructure], MarginStructure]:
    """``frame`` with ``_group`` (the linked indicators its row belongs to) and ``_var`` (its cell's index in that
    group's structure), the structures, and the geography structure."""
    geography = margin_structure(hierarchy)
    order = geography.cells.assign(_geo=np.arange(geography.size))
    frame = frame.merge(order, on=["geography_level", "area_code"], how="left", validate="many_to_one")
    if frame["_geo"].isna().any():
        bad = frame.loc[frame["_geo"].isna(), ["geography_level", "area_code"]].drop_duplicates().head(3)
        raise PlacelinkError(f"cells for areas missing from the hierarchy: {bad.to_dict('records')}",
                             where=where, fix="rebuild marts.dim_lsoa and the place marts")
    indicators = sorted(frame["indicator"].astype(str).unique())
    structures, place = _structures(geography, indicators, parents)
    ind = frame["indicator"].astype(str)
    frame["_group"] = ind.map(lambda i: place[i][0])
    frame["_var"] = frame["_geo"].astype(int) + ind.map(lambda i: place[i][1]).astype(int)
    return frame, structures, geography


def protect_place_table(cells: pd.DataFrame, hierarchy: pd.DataFrame,
                        threshold: int = DEFAULT_THRESHOLD, workers: int | None = None,
                        indicators: pd.DataFrame | Mapping[str, str] | None = None) -> pd.DataFrame:
    """Apply primary and secondary suppression to every month's tables and return the published rows.

    A table is one month of one indicator, or of a group of indicators linked by the seed's ``parent`` column
    (crime types and ``crimes_total``), protected together with every geography margin (:func:`linked_structure`).

    Args:
        cells: ``geography_level, area_code, month, indicator, event_count, population`` for every level in
            :data:`LEVELS` (``marts.place_indicator_cells``).
        hierarchy: ``lsoa_code, ward_code, msoa_code, district_code`` (``marts.dim_lsoa``).
        threshold: counts 1..threshold-1 are suppressed; zeros are kept.
        workers: processes to spread the tables over (default: env ``PLACELINK_DISCLOSURE_WORKERS``, else the CPU
            count up to 4; 1 = this process only).
        indicators: the indicator seed (``indicator, parent``; the dbt model passes ``ref('indicators')``), or a
            ``child -> parent`` mapping; default: the seed in the repository. ``{}`` links nothing.

    Returns:
        One row per input cell: ``geography_level, area_code, month, indicator, event_count`` (null when
        suppressed), ``population``, ``rate_per_1000`` (only where the count is shown), ``is_suppressed``.
    """
    if threshold < 2:
        raise PlacelinkError(f"disclosure threshold {threshold} would suppress nothing",
                             where="var disclosure_threshold", fix="use 5 (the default) or more")
    missing = set(CELL_COLUMNS) - set(cells.columns)
    if missing:
        raise PlacelinkError(f"cells lack columns {sorted(missing)}", where="disclosure.protect_place_table",
                             fix="pass marts.place_indicator_cells")
    parents = indicator_parents(load_indicator_seed() if indicators is None else indicators)
    frame, structures, _ = _variables(cells, hierarchy, parents, where="marts.place_indicator_cells")
    counts = frame["event_count"].fillna(0).to_numpy(dtype=float)
    out_flags = np.zeros(len(frame), dtype=bool)
    groups = list(frame.groupby(["month", "_group"], sort=True).indices.items())
    variables = frame["_var"].to_numpy()
    tables = []
    for (month, group), idx in groups:
        values = np.zeros(structures[group].size)
        values[variables[idx]] = counts[idx]
        if len(group) > 1:
            _check_adds_up(values, structures[group], where=f"marts.place_indicator_cells, month {month}")
        tables.append((group, values))
    for (_, idx), flags in zip(groups, _protect_tables(tables, structures, threshold, workers), strict=True):
        out_flags[idx] = flags[variables[idx]]
    frame["is_suppressed"] = out_flags
    shown = ~frame["is_suppressed"]
    published = pd.DataFrame({
        "geography_level": frame["geography_level"].astype(str),
        "area_code": frame["area_code"].astype(str),
        "month": frame["month"],
        "indicator": frame["indicator"].astype(str),
        "event_count": frame["event_count"].where(shown).astype("Int64"),
        "population": frame["population"].astype("Int64"),
    })
    pop = frame["population"].astype(float)
    rate = (1000.0 * frame["event_count"].astype(float) / pop.where(pop > 0)).round(3)
    published["rate_per_1000"] = rate.where(shown)
    published["is_suppressed"] = frame["is_suppressed"].astype(bool)
    return published.sort_values(["month", "indicator", "geography_level", "area_code"]).reset_index(drop=True)


def attacker_bounds(published: pd.DataFrame, hierarchy: pd.DataFrame, month=None, indicator: str | None = None,
                    indicators: pd.DataFrame | Mapping[str, str] | None = None) -> pd.DataFrame:
    """What an attacker can learn about each suppressed cell of the published table, from every published additive
    relation: the geography margins and the indicator hierarchy (the seed's ``parent``; default: the repository's
    seed) together.

    Per month and group of linked indicators, solves min and max of every suppressed cell subject to the
    equations, the published values and ``cell >= 1`` (zeros are published, so a hidden cell is at least 1), with
    ``scipy.optimize.linprog``. ``month`` / ``indicator`` restrict the cells looked at (an attacker who sees only
    them); a group's equations are used only with all its indicators present.

    Returns:
        ``month, indicator, geography_level, area_code, lower, upper`` per suppressed cell (``upper`` is inf when
        unbounded).
    """
    from scipy.optimize import linprog

    columns = ["month", "indicator", "geography_level", "area_code", "lower", "upper"]
    table = published
    if month is not None:
        table = table[table["month"] == month]
    if indicator is not None:
        table = table[table["indicator"] == indicator]
    parents = indicator_parents(load_indicator_seed() if indicators is None else indicators)
    if table.empty:
        return pd.DataFrame(columns=columns)
    frame, structures, _ = _variables(table.reset_index(drop=True), hierarchy, parents,
                                      where="disclosure.attacker_bounds")
    rows = []
    for (mon, group), t in frame.groupby(["month", "_group"], sort=True):
        structure = structures[group]
        hidden = t.loc[t["is_suppressed"].astype(bool), "_var"].to_numpy(dtype=int)
        if hidden.size == 0:
            continue
        known = t.loc[~t["is_suppressed"].astype(bool), ["_var", "event_count"]]
        values = np.zeros(structure.size)
        values[known["_var"].to_numpy(dtype=int)] = known["event_count"].to_numpy(dtype=float)
        # an equation is the attacker's only if every one of its cells is in the file
        present = np.zeros(structure.size, dtype=bool)
        present[t["_var"].to_numpy(dtype=int)] = True
        a = structure.matrix()
        a = a[~np.any((a != 0) & ~present[None, :], axis=1)]
        a_u = a[:, hidden]
        b = -(a @ values)  # A_U x_U + A_K x_K = 0  ->  A_U x_U = -A_K x_K
        keep = np.any(a_u != 0, axis=1)
        a_u, b = a_u[keep], b[keep]
        for j, var in enumerate(hidden):
            c = np.zeros(hidden.size)
            c[j] = 1.0
            bounds = [(1, None)] * hidden.size
            lo = linprog(c, A_eq=a_u if a_u.size else None, b_eq=b if a_u.size else None, bounds=bounds,
                         method="highs")
            hi = linprog(-c, A_eq=a_u if a_u.size else None, b_eq=b if a_u.size else None, bounds=bounds,
                         method="highs")
            cell = structure.cells.iloc[var]
            if lo.status != 0:
                raise PlacelinkError(f"margin equations infeasible for {cell.to_dict()}",
                                     where="disclosure.attacker_bounds", fix="published totals are inconsistent")
            upper = -hi.fun if hi.status == 0 else float("inf")
            name = cell["indicator"] if "indicator" in cell.index else group[0]
            rows.append((mon, name, cell["geography_level"], cell["area_code"], lo.fun, upper))
    return pd.DataFrame(rows, columns=columns)


def suppressed_fraction(published: pd.DataFrame, levels: Sequence[str] = LEVELS) -> dict[str, float]:
    """Share of suppressed cells per geography level (for reports and the benchmark)."""
    p = published[published["geography_level"].isin(levels)]
    return {str(k): float(v) for k, v in p.groupby("geography_level")["is_suppressed"].mean().items()}
