"""People in households at UPRNs, simulated month by month: births, deaths, moves, young adults leaving
home, and the latent household *need* that drives events in every service.

The need process (what models must find):

    mu_h      = 0.75*area deprivation + 0.6*lone parent + 0.35*(3+ children) + 0.4*(head under 25)
                + 0.2*single adult + household effect ~ N(0, 0.6)            (fixed per household)
    u_h(t)    = 0.85*u_h(t-1) + sqrt(1-0.85^2)*0.7*eps                          (slow drift)
    z_h(t)    = mu_h + u_h(t)
    crisis    Markov: enter with logit^-1(-4.6 + 1.1*z), stay with 0.75; every service x4 while in crisis

Every service's monthly rate is base x age/sex profile x exp(beta_s * z) x crisis, so events cluster in the
same households across agencies, persist over months, and precede homelessness and social-care referrals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestration.lib.synthetic.config import ServiceRates
from orchestration.lib.synthetic.geography import Geography
from orchestration.lib.synthetic.identifiers import make_nhs_numbers, make_upns
from orchestration.lib.synthetic.names import ETHNICITY_TABLE, name_pools, sample_names

EPOCH = np.datetime64("1970-01-01", "D")

HH_TYPES = ["single_adult", "single_older", "couple", "couple_older", "couple_kids", "lone_parent", "multi_adult"]
HH_BASE_P = np.array([0.16, 0.13, 0.20, 0.10, 0.22, 0.09, 0.10])
HH_DEP_SLOPE = np.array([0.03, -0.01, -0.02, -0.02, -0.03, 0.04, 0.01])


@dataclass
class Population:
    """Everyone who lived in the county during the period, and monthly snapshots of where they lived."""

    people: pd.DataFrame              # one row per person ever present; index = person_id (0..n-1)
    month_starts: np.ndarray          # datetime64[D], first day of each simulated month
    person_hh: np.ndarray             # (months, persons) int32: household index, -1 = not alive/not here
    hh_uprn: np.ndarray               # (months, households) int32: gazetteer row index, -1 = dissolved
    hh_need: np.ndarray               # (months, households) float32: latent need z
    hh_crisis: np.ndarray             # (months, households) bool
    hh_mu: np.ndarray                 # (households,) long-run need


def _months(start: str, months: int) -> np.ndarray:
    first = np.datetime64(start, "M")
    return (first + np.arange(months + 1)).astype("datetime64[D]")


def simulate_population(rng: np.random.Generator, geo: Geography, months: int, start: str, rates: ServiceRates,
                        progress: Callable[[str, float], None] | None = None) -> Population:
    month_starts = _months(start, months)
    lsoas = geo.lsoas
    gaz_lsoa = pd.Categorical(geo.gazetteer["lsoa_code"], categories=lsoas["lsoa_code"]).codes
    n_uprn = len(gaz_lsoa)
    dep = lsoas["deprivation"].to_numpy()

    # ---- initial households: occupy ~90% of each LSOA's properties ------------------------------
    occupied = rng.random(n_uprn) < 0.90
    hh0_uprn = np.flatnonzero(occupied)
    n_hh = len(hh0_uprn)
    hh_lsoa = gaz_lsoa[hh0_uprn]
    p = HH_BASE_P[None, :] + HH_DEP_SLOPE[None, :] * dep[hh_lsoa][:, None]
    p = np.clip(p, 0.01, None)
    p /= p.sum(axis=1, keepdims=True)
    hh_type = (rng.random(n_hh)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    n_adults = np.select([hh_type == 0, hh_type == 1, hh_type == 5, hh_type == 6],
                         [1, 1, 1, rng.integers(2, 5, n_hh)], 2)
    has_kids = (hh_type == 4) | (hh_type == 5)
    n_kids = np.where(has_kids, 1 + np.minimum(rng.geometric(0.55, n_hh) - 1, 4), 0)
    # ethnicity per household from the LSOA's mix: deprived, urban LSOAs are more diverse
    eth_share = ETHNICITY_TABLE["share"].to_numpy()
    eth_p = np.tile(eth_share, (n_hh, 1))
    eth_p[:, 1:] *= np.exp(0.5 * dep[hh_lsoa])[:, None]
    eth_p /= eth_p.sum(axis=1, keepdims=True)
    hh_eth = (rng.random(n_hh)[:, None] > np.cumsum(eth_p, axis=1)).sum(axis=1)
    hh_eth = np.minimum(hh_eth, len(eth_share) - 1)

    # ---- people ---------------------------------------------------------------------------
    size = n_adults + n_kids
    person_hh0 = np.repeat(np.arange(n_hh), size)
    pos = np.arange(len(person_hh0)) - np.repeat(np.cumsum(size) - size, size)
    is_adult = pos < n_adults[person_hh0]
    t = hh_type[person_hh0]
    lo = np.select([t == 1, t == 3, t == 4, t == 5, t == 6], [65, 65, 24, 18, 18], 20)
    hi = np.select([t == 1, t == 3, t == 4, t == 5, t == 6], [96, 92, 56, 52, 70], 65)
    adult_age = np.where(pos == 0, rng.uniform(lo, hi), 0)  # the head's age; others are set relative to it
    hh_head_age = np.zeros(n_hh)
    hh_head_age[person_hh0[pos == 0]] = adult_age[pos == 0]
    partner_age = np.clip(hh_head_age[person_hh0] + rng.normal(0, 4, len(t)), 18, 99)
    kid_max = np.clip(hh_head_age[person_hh0] - 17, 0.1, 18)
    age = np.where(pos == 0, adult_age,
                   np.where(is_adult, np.where(t == 6, rng.uniform(18, 60, len(t)), partner_age),
                            rng.uniform(0, 1, len(t)) * kid_max))
    n_people0 = len(age)
    sex = np.where(rng.random(n_people0) < 0.5, "M", "F").astype(object)
    # couples: second adult the other sex (95%); lone parents mostly mothers
    couple = np.isin(t, [2, 3, 4]) & (pos == 1)
    sex[couple] = np.where(rng.random(couple.sum()) < 0.95,
                           np.where(sex[np.flatnonzero(couple) - 1] == "M", "F", "M"), sex[couple])
    lone = (t == 5) & (pos == 0)
    sex[lone] = np.where(rng.random(lone.sum()) < 0.9, "F", "M")

    # ---- need: fixed household level + AR drift ---------------------------------------------
    hh_mu = (0.75 * dep[hh_lsoa] + 0.6 * (hh_type == 5) + 0.35 * (n_kids >= 3) + 0.4 * (hh_head_age < 25)
             + 0.2 * (hh_type == 0) + rng.normal(0, 0.6, n_hh))
    hh_mu = hh_mu - hh_mu.mean()

    # capacity for households created by young adults leaving home
    births_expected = int(n_people0 * 0.0012 * months * 1.5) + 100
    splits_expected = int(n_people0 * 0.0006 * months * 2) + 100
    cap_hh = n_hh + splits_expected
    cap_p = n_people0 + births_expected

    dob = np.full(cap_p, np.datetime64("NaT"), dtype="datetime64[D]")
    dob[:n_people0] = month_starts[0] - np.round(age * 365.25).astype(int)
    sex_all = np.empty(cap_p, dtype=object)
    sex_all[:n_people0] = sex
    eth_all = np.zeros(cap_p, dtype=np.int16)
    eth_all[:n_people0] = hh_eth[person_hh0]
    first_hh = np.full(cap_p, -1, dtype=np.int32)
    first_hh[:n_people0] = person_hh0
    mother = np.full(cap_p, -1, dtype=np.int64)
    born_m = np.full(cap_p, -1, dtype=np.int32)
    died_m = np.full(cap_p, months, dtype=np.int32)
    # family name: one per household, 15% of second adults keep their own
    hh_family = sample_names(rng, ETHNICITY_TABLE["pool"].map({k: i for i, k in enumerate(_POOLS)}).to_numpy()[hh_eth],
                             _POOLS, "family")
    family = np.empty(cap_p, dtype=object)
    family[:n_people0] = hh_family[person_hh0]
    own = (pos == 1) & is_adult & (rng.random(n_people0) < 0.15)
    pool_idx_people = _pool_index(hh_eth[person_hh0])
    family[:n_people0][own] = sample_names(rng, pool_idx_people[own], _POOLS, "family")

    cur_hh = np.full(cap_p, -1, dtype=np.int32)
    cur_hh[:n_people0] = person_hh0
    hh_uprn_cur = np.full(cap_hh, -1, dtype=np.int32)
    hh_uprn_cur[:n_hh] = hh0_uprn
    mu = np.zeros(cap_hh)
    mu[:n_hh] = hh_mu
    u = np.zeros(cap_hh)
    u[:n_hh] = rng.normal(0, 0.7, n_hh)
    crisis = np.zeros(cap_hh, dtype=bool)
    n_p, n_h = n_people0, n_hh

    hist_p = np.empty((months, cap_p), dtype=np.int32)
    hist_u = np.empty((months, cap_hh), dtype=np.int32)
    hist_z = np.empty((months, cap_hh), dtype=np.float32)
    hist_c = np.empty((months, cap_hh), dtype=bool)
    ar = rates.need_ar
    for m in range(months):
        today = month_starts[m]
        alive = cur_hh[:n_p] >= 0
        age_y = (today - dob[:n_p]).astype(np.int64) / 365.25
        # need and crisis for this month
        u[:n_h] = ar * u[:n_h] + np.sqrt(1 - ar**2) * 0.7 * rng.normal(0, 1, n_h)
        z = mu[:n_h] + u[:n_h]
        enter = rng.random(n_h) < 1 / (1 + np.exp(-(rates.crisis_enter_intercept + rates.crisis_enter_slope * z)))
        stay = rng.random(n_h) < rates.crisis_stay
        crisis[:n_h] = np.where(crisis[:n_h], stay, enter)
        if m > 0:
            # deaths
            q = np.minimum(0.5, np.exp(-10.2 + 0.092 * age_y)) / 12
            die = alive & (rng.random(n_p) < q)
            cur_hh[:n_p][die] = -1
            died_m[:n_p][die] = m
            # births to women 16-45
            mothers = np.flatnonzero(alive & ~die & (sex_all[:n_p] == "F") & (age_y >= 16) & (age_y <= 45))
            mothers = mothers[rng.random(len(mothers)) < 0.0045 * np.exp(0.1 * z[cur_hh[mothers]])]
            k = min(len(mothers), cap_p - n_p)
            mothers = mothers[:k]
            new = np.arange(n_p, n_p + k)
            dob[new] = today + rng.integers(0, 28, k)
            sex_all[new] = np.where(rng.random(k) < 0.51, "M", "F")
            eth_all[new] = eth_all[mothers]
            family[new] = family[mothers]
            cur_hh[new] = cur_hh[mothers]
            first_hh[new] = cur_hh[mothers]
            mother[new] = mothers
            born_m[new] = m
            n_p += k
            # young adults leave home and form a household at an empty property
            alive = cur_hh[:n_p] >= 0
            age_y = (today - dob[:n_p]).astype(np.int64) / 365.25
            hh_size = np.bincount(cur_hh[:n_p][alive], minlength=n_h)
            leavers = np.flatnonzero(alive & (age_y >= 18) & (age_y <= 30))
            leavers = leavers[(hh_size[cur_hh[leavers]] > 1) & (rng.random(len(leavers)) < 0.006)]
            vacant = _vacant(hh_uprn_cur[:n_h], n_uprn)
            k = min(len(leavers), cap_hh - n_h, len(vacant))
            leavers = leavers[:k]
            new_h = np.arange(n_h, n_h + k)
            hh_uprn_cur[new_h] = rng.choice(vacant, k, replace=False)
            mu[new_h] = 0.6 * mu[cur_hh[leavers]] + 0.3 + rng.normal(0, 0.5, k)
            u[new_h] = u[cur_hh[leavers]]
            crisis[new_h] = False
            cur_hh[leavers] = new_h
            n_h += k
            # whole households move (more often in a crisis)
            movers = np.flatnonzero((hh_uprn_cur[:n_h] >= 0)
                                    & (rng.random(n_h) < np.where(crisis[:n_h], 0.05, 0.007)))
            vacant = _vacant(hh_uprn_cur[:n_h], n_uprn)
            movers = movers[: len(vacant)]
            hh_uprn_cur[movers] = rng.choice(vacant, len(movers), replace=False)
            # households with nobody left are dissolved and their home becomes empty
            alive = cur_hh[:n_p] >= 0
            hh_size = np.bincount(cur_hh[:n_p][alive], minlength=n_h)
            hh_uprn_cur[:n_h][hh_size == 0] = -1
        hist_p[m] = cur_hh
        hist_u[m] = hh_uprn_cur
        hist_z[m, :n_h] = mu[:n_h] + u[:n_h]
        hist_c[m] = crisis
        if progress:
            progress("population", (m + 1) / months)

    # ---- names, identifiers -----------------------------------------------------------------
    pool_idx = _pool_index(eth_all[:n_p])
    given = sample_names(rng, pool_idx, _POOLS, sex_all[:n_p])
    nhs = make_nhs_numbers(rng, n_p)
    end = month_starts[-1]
    school_age_any = (end - dob[:n_p]).astype(np.int64) / 365.25 < 21
    upn = np.full(n_p, None, dtype=object)
    upn[school_age_any] = make_upns(rng, int(school_age_any.sum()))
    eth = ETHNICITY_TABLE.iloc[eth_all[:n_p]]
    people = pd.DataFrame({
        "person_id": np.arange(n_p, dtype=np.int64),
        "household_id": first_hh[:n_p].astype(np.int64),
        "given_name": given,
        "family_name": family[:n_p],
        "date_of_birth": dob[:n_p],
        "sex": sex_all[:n_p],
        "ethnicity": eth["key"].to_numpy(),
        "ethnicity_label": eth["ons_label"].to_numpy(),
        "ethnicity_group": eth["group"].to_numpy(),
        "nhs_number": nhs,
        "upn": upn,
        "mother_id": mother[:n_p],
        "born_month": born_m[:n_p],
        "died_month": died_m[:n_p],
    })
    return Population(people, month_starts, hist_p[:, :n_p], hist_u[:, :n_h], hist_z[:, :n_h], hist_c[:, :n_h],
                      mu[:n_h])


_POOLS = list(dict.fromkeys(ETHNICITY_TABLE["pool"]))


def _pool_index(eth_idx: np.ndarray) -> np.ndarray:
    mapping = np.array([_POOLS.index(p) for p in ETHNICITY_TABLE["pool"]])
    return mapping[np.asarray(eth_idx, dtype=int)]


def _vacant(hh_uprn: np.ndarray, n_uprn: int) -> np.ndarray:
    occupied = np.zeros(n_uprn, dtype=bool)
    occupied[hh_uprn[hh_uprn >= 0]] = True
    return np.flatnonzero(~occupied)


__all__ = ["Population", "simulate_population", "name_pools"]
