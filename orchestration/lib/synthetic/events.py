# ruff: noqa: B023  -- the emit/rate closures are called inside the same loop iteration that defines them
"""Service events drawn from the population's latent need, month by month (all vectorised).

Each generator returns a DataFrame with ``person_id`` (or -1), ``household_id``, ``uprn_idx`` (gazetteer row),
``event_date`` and the service's own attributes; ``feeds.py`` turns these into each partner's native shape.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from orchestration.lib.synthetic.config import ServiceRates
from orchestration.lib.synthetic.geography import Geography
from orchestration.lib.synthetic.population import Population

CRIME_TYPES = {
    "Violence and sexual offences": 0.36, "Public order": 0.10, "Criminal damage and arson": 0.09,
    "Shoplifting": 0.08, "Other theft": 0.08, "Vehicle crime": 0.06, "Burglary": 0.05, "Drugs": 0.03,
    "Other crime": 0.03, "Theft from the person": 0.01, "Bicycle theft": 0.01, "Robbery": 0.01,
    "Possession of weapons": 0.01,
}
CRIME_OUTCOMES = {
    "Investigation complete; no suspect identified": 0.40, "Unable to prosecute suspect": 0.25,
    "Under investigation": 0.12, "Status update unavailable": 0.06, "Local resolution": 0.05,
    "Offender given a caution": 0.03, "Awaiting court outcome": 0.05, "Court result unavailable": 0.04,
}
OFFENCE_GROUPS_VICTIM = {"Violence against the person": 0.45, "Theft": 0.2, "Burglary": 0.1, "Criminal damage": 0.1,
                         "Sexual offences": 0.08, "Robbery": 0.03, "Fraud": 0.04}
OFFENCE_GROUPS_OFFENDER = {"Violence against the person": 0.4, "Theft": 0.15, "Drug offences": 0.12,
                           "Public order offences": 0.12, "Criminal damage": 0.08, "Shoplifting": 0.1,
                           "Possession of weapons": 0.03}
REFERRAL_SOURCES = {"Police": 0.29, "Schools": 0.20, "Health services": 0.15, "Individual": 0.08,
                    "LA services": 0.11, "Other": 0.09, "Anonymous": 0.04, "Housing": 0.04}
PRIMARY_NEED = {"N1": 0.57, "N2": 0.03, "N3": 0.04, "N4": 0.17, "N5": 0.08, "N6": 0.02, "N7": 0.01,
                "N8": 0.03, "N9": 0.05}
REFERRAL_OUTCOMES = {"No further action": 0.30, "Early help": 0.20, "Child and family assessment": 0.38,
                     "Strategy discussion": 0.07, "Section 47 enquiry": 0.05}
LOSS_REASONS = {"End of private rented tenancy - assured shorthold": 0.25,
                "Family or friends no longer willing or able to accommodate": 0.30, "Domestic abuse": 0.12,
                "Non-violent relationship breakdown with partner": 0.10, "Eviction from supported housing": 0.04,
                "Mortgage arrears": 0.02, "Rent arrears - social tenancy": 0.05, "Other": 0.12}
DUTIES = {"Prevention duty owed": 0.45, "Relief duty owed": 0.45,
          "Threatened with homelessness - no duty owed": 0.05, "Not homeless": 0.05}
ASB_CATEGORIES = {"Noise": 0.35, "Nuisance neighbours": 0.2, "Rowdy behaviour": 0.15, "Vandalism": 0.08,
                  "Drug-related": 0.08, "Abandoned vehicle": 0.05, "Littering/fly-tipping": 0.09}
ASB_STATUS = {"Open": 0.2, "Closed - warning issued": 0.3, "Closed - no further action": 0.3,
              "Referred to police": 0.1, "Community Protection Notice issued": 0.1}
# ECDS-style chief complaints (SNOMED CT concept ids); the last five rise with need.
AE_COMPLAINTS = {"29857009": ("Chest pain", 0.12), "21522001": ("Abdominal pain", 0.14),
                 "267036007": ("Breathlessness", 0.10), "25064002": ("Headache", 0.07),
                 "386661006": ("Fever", 0.08), "422400008": ("Vomiting", 0.06),
                 "125605004": ("Fracture of bone", 0.08), "262525000": ("Limb injury", 0.12),
                 "248062006": ("Self-injurious behaviour", 0.04), "7200002": ("Alcohol intoxication", 0.04),
                 "225444004": ("At risk of harm", 0.03), "74732009": ("Mental health crisis", 0.05),
                 "371708003": ("Assault injury", 0.03)}
AE_NEED_COMPLAINTS = ["248062006", "7200002", "225444004", "74732009", "371708003"]
AE_SOURCES = {"Walk-in": 0.55, "Ambulance": 0.25, "GP referral": 0.08, "NHS 111": 0.08, "Police": 0.04}
AE_DISCHARGE = {"306689006": ("Discharged home", 0.70), "306706006": ("Admitted to ward", 0.20),
                "19712007": ("Transferred to another hospital", 0.03), "183665006": ("Left before treatment", 0.05),
                "305398007": ("Died in department", 0.002)}
FOOD_AGENCIES = {"Citizens Advice": 0.25, "Jobcentre Plus": 0.15, "GP surgery": 0.1, "Children's centre": 0.1,
                 "Housing association": 0.15, "Social services": 0.15, "School": 0.1}
FOOD_CRISES = {"Low income": 0.35, "Benefit delays": 0.15, "Benefit changes": 0.10, "Debt": 0.12,
               "Homeless": 0.05, "Sickness/ill health": 0.10, "Domestic abuse": 0.03, "Child holiday meals": 0.05,
               "Other": 0.05}
FIRE_REFERRERS = {"Adult social care": 0.3, "Self-referral": 0.25, "Police": 0.05, "Health visitor": 0.1,
                  "Housing provider": 0.15, "Partner agency": 0.15}


def pick(rng: np.random.Generator, options: dict, n: int) -> np.ndarray:
    keys = list(options)
    w = np.array([v[1] if isinstance(v, tuple) else v for v in options.values()], dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), n, p=w / w.sum())]


def _dates_in_month(rng: np.random.Generator, month_start: np.datetime64, n: int) -> np.ndarray:
    days = ((month_start.astype("datetime64[M]") + 1).astype("datetime64[D]") - month_start).astype(int)
    return month_start + rng.integers(0, days, n)


def generate_events(rng: np.random.Generator, geo: Geography, pop: Population, rates: ServiceRates,
                    progress: Callable[[str, float], None] | None = None) -> dict[str, pd.DataFrame]:
    """Return ``{"<partner>/<feed>": events}`` for every feed."""
    months = pop.person_hh.shape[0]
    gaz_lsoa = pd.Categorical(geo.gazetteer["lsoa_code"], categories=geo.lsoas["lsoa_code"]).codes
    dob = pop.people["date_of_birth"].to_numpy().astype("datetime64[D]")
    sex = pop.people["sex"].to_numpy()
    male = sex == "M"
    out: dict[str, list[pd.DataFrame]] = {k: [] for k in FEEDS}
    # normalise exp(beta*z) so base rates mean "at the average need of month 0"
    person_need_mean: dict[float, float] = {}
    # school-year month: no attendance return in August
    for m in range(months):
        ms = pop.month_starts[m]
        ph = pop.person_hh[m]
        alive = np.flatnonzero(ph >= 0)
        hh = ph[alive]
        z = pop.hh_need[m][hh].astype(float)
        cr = pop.hh_crisis[m][hh]
        age = (ms - dob[alive]).astype(np.int64) / 365.25
        uprn = pop.hh_uprn[m][hh]

        def rate(beta: float, crisis_mult: float = rates.crisis_multiplier, _z=z, _cr=cr) -> np.ndarray:
            key = beta
            f = np.exp(beta * _z)
            if key not in person_need_mean:
                person_need_mean[key] = float(f.mean())
            return f / person_need_mean[key] * np.where(_cr, crisis_mult, 1.0)

        def emit(feed: str, lam: np.ndarray, extra: Callable[[np.ndarray], dict] | None = None) -> None:
            n_ev = rng.poisson(np.clip(lam, 0, 5))
            sel = np.repeat(np.arange(len(lam)), n_ev)
            if len(sel) == 0:
                return
            df = pd.DataFrame({"person_id": alive[sel], "household_id": hh[sel], "uprn_idx": uprn[sel],
                               "event_date": _dates_in_month(rng, ms, len(sel)), "month": m,
                               "need": z[sel], "crisis": cr[sel]})
            if extra is not None:
                for k, v in extra(sel).items():
                    df[k] = v
            out[feed].append(df)

        young_male = 1 + 2.0 * (male[alive] & (age >= 15) & (age <= 35))
        emit("police/person_records",
             rates.police_victim * ((age >= 10) * 1.0 + (age >= 16) * 0.5) * rate(0.8), _role("victim"))
        emit("police/person_records",
             rates.police_offender * ((age >= 10) & (age < 70)) * young_male * rate(1.0), _role("offender"))
        emit("police/person_records",
             rates.police_missing * (((age >= 10) & (age < 18)) * 6.0 + (age >= 18) * 0.3) * rate(1.1),
             _role("missing_person"))
        kids = age < 18
        emit("county_council/social_care_referrals",
             rates.social_care_referral * kids * (1 + (age < 1) + (age >= 12)) * rate(1.2))
        asb_age = (age >= 16) & (age < 50)
        emit("district_councils/asb_complaints", rates.asb_complaint * asb_age * rate(0.9))
        ae_age = np.select([age < 5, age < 16, age < 65, age < 80], [2.0, 0.7, 1.0, 1.5], 3.0)
        emit("nhs/ae_attendances", rates.ae_attendance * ae_age * rate(0.45, 2.0))
        # school attendance: pupils 5-15 on 1 September, every month except August
        if str(ms)[5:7] != "08":
            year = int(str(ms)[:4]) - (1 if int(str(ms)[5:7]) < 9 else 0)
            age_sept = (np.datetime64(f"{year}-08-31") - dob[alive]).astype(np.int64) / 365.25
            pupil = (age_sept >= 5) & (age_sept < 16)
            lam = rates.school_absence * pupil * rate(0.6, 2.0)
            absent = rng.random(len(lam)) < np.clip(lam, 0, 0.95)
            sel = np.flatnonzero(absent)
            possible = {"09": 30, "10": 40, "11": 40, "12": 30, "01": 38, "02": 30, "03": 40, "04": 26, "05": 36,
                        "06": 40, "07": 30}[str(ms)[5:7]]
            p_miss = np.clip(0.06 * np.exp(0.5 * z[sel]) * np.where(cr[sel], 2.5, 1.0), 0.01, 0.9)
            missed = 1 + rng.binomial(possible - 1, p_miss)
            unauth_share = np.clip(0.2 + 0.15 * z[sel] + 0.2 * cr[sel], 0.0, 0.9)
            unauth = rng.binomial(missed, unauth_share)
            susp = rng.poisson(np.clip(0.01 * np.exp(1.0 * z[sel]) * np.where(cr[sel], 3, 1), 0, 2))
            perm = rng.random(len(sel)) < 0.0005 * np.exp(z[sel])
            out["county_council/school_attendance"].append(pd.DataFrame({
                "person_id": alive[sel], "household_id": hh[sel], "uprn_idx": uprn[sel],
                "event_date": np.full(len(sel), ms), "month": m, "need": z[sel], "crisis": cr[sel],
                "age_sept": age_sept[sel], "sessions_possible": possible,
                "sessions_missed_authorised": missed - unauth, "sessions_missed_unauthorised": unauth,
                "suspensions": susp, "permanent_exclusion": perm}))

        # household-level services: the head is the oldest member
        order = np.lexsort((dob[alive], hh))
        first = np.r_[True, hh[order][1:] != hh[order][:-1]]
        heads = order[first]  # positions in `alive`: the oldest member (fire visits)
        # the main applicant for housing and food: the oldest adult under 65 if there is one
        order2 = np.lexsort((dob[alive], (age >= 65) | (age < 16), hh))
        first2 = np.r_[True, hh[order2][1:] != hh[order2][:-1]]
        mains = order2[first2]
        h_ids = hh[heads]
        n_adults = np.bincount(hh, weights=age >= 18, minlength=pop.hh_uprn.shape[1])[h_ids].astype(int)
        n_kids = np.bincount(hh, weights=age < 18, minlength=pop.hh_uprn.shape[1])[h_ids].astype(int)
        any_old = np.bincount(hh, weights=age >= 65, minlength=pop.hh_uprn.shape[1])[h_ids] > 0
        hz, hc = z[heads], cr[heads]

        def hh_rate(beta: float, _hz=hz, _hc=hc) -> np.ndarray:
            key = ("hh", beta)
            f = np.exp(beta * _hz)
            if key not in person_need_mean:
                person_need_mean[key] = float(f.mean())  # type: ignore[index]
            return f / person_need_mean[key] * np.where(_hc, rates.crisis_multiplier, 1.0)  # type: ignore[index]

        def emit_hh(feed: str, lam: np.ndarray, who: np.ndarray = heads) -> None:
            n_ev = rng.poisson(np.clip(lam, 0, 3))
            sel = np.repeat(np.arange(len(lam)), n_ev)
            if len(sel) == 0:
                return
            head_pos = who[sel]
            out[feed].append(pd.DataFrame({
                "person_id": alive[head_pos], "household_id": hh[head_pos], "uprn_idx": uprn[head_pos],
                "event_date": _dates_in_month(rng, ms, len(sel)), "month": m, "need": hz[sel], "crisis": hc[sel],
                "adults": n_adults[sel], "children": n_kids[sel], "any_older": any_old[sel]}))

        adult_head = age[mains] >= 16
        emit_hh("district_councils/homelessness_presentations", rates.homelessness * adult_head * hh_rate(1.3),
                mains)
        emit_hh("voluntary/food_bank_referrals", rates.food_bank * adult_head * hh_rate(1.2), mains)
        emit_hh("fire/safe_and_well_visits", rates.fire_visit * (1 + 2.5 * any_old) * hh_rate(0.5))

        # street crimes: per LSOA, more in deprived areas, a little more where need is high
        pop_lsoa = np.bincount(gaz_lsoa[uprn], minlength=len(geo.lsoas))
        dep = geo.lsoas["deprivation"].to_numpy()
        lam = rates.street_crimes_per_1000_month / 1000 * pop_lsoa * np.exp(0.5 * dep) / np.exp(0.5 * dep).mean()
        n_c = rng.poisson(lam)
        lsoa_idx = np.repeat(np.arange(len(lam)), n_c)
        out["police/street_crimes"].append(pd.DataFrame({
            "person_id": -1, "household_id": -1, "lsoa_idx": lsoa_idx,
            "event_date": _dates_in_month(rng, ms, len(lsoa_idx)), "month": m}))
        if progress:
            progress("events", (m + 1) / months)
    return {k: (pd.concat(v, ignore_index=True) if v else pd.DataFrame()) for k, v in out.items()}


def _role(role: str) -> Callable[[np.ndarray], dict]:
    return lambda sel: {"role": role}


FEEDS = [
    "police/street_crimes", "police/person_records", "county_council/social_care_referrals",
    "county_council/school_attendance", "district_councils/homelessness_presentations",
    "district_councils/asb_complaints", "nhs/ae_attendances", "voluntary/food_bank_referrals",
    "fire/safe_and_well_visits",
]
