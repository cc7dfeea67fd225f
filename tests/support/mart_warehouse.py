"""A small pseudonymised warehouse with the marts the models read, built from a latent-need simulation.

Used by tests/ml until (and beside) the real synthetic county: it writes the dbt model names of
docs/architecture.md — ``intermediate.int_events_joined_to_places``, ``marts.person_monthly_events``,
``marts.lsoa_monthly_indicators``, ``marts.dim_lsoa`` — for a few hundred households whose monthly
events across partners all rise with a slowly drifting latent need, so history carries real signal.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

ETHNICITY = (["White", "Asian", "Black", "Mixed", "Other"], [0.80, 0.08, 0.05, 0.04, 0.03])
ADULT_BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+"]
CHILD_BANDS = ["0-4", "5-9", "10-15", "16-17"]
# person-level event types: (partner, feed, monthly base rate, sensitivity to need)
# common contacts (A&E) say little about housing need; rarer ones (food bank, social care) say a lot,
# so weighting the partners' events well beats counting them all alike
PERSON_EVENTS = {
    "social_care_referral": ("county_council", "social_care_referrals", 0.015, 1.3),
    "school_absence": ("county_council", "school_attendance", 0.030, 1.0),
    "ae_attendance": ("nhs", "ae_attendances", 0.060, 0.2),
    "food_bank_referral": ("voluntary", "food_bank_referrals", 0.015, 1.4),
    "asb_complaint": ("district_councils", "asb_complaints", 0.010, 0.9),
    "police_person:victim": ("police", "person_records", 0.010, 1.0),
    "fire_safe_and_well_visit": ("fire", "safe_and_well_visits", 0.004, 0.3),
}
OUTCOME = ("homelessness_presentation", "district_councils", "homelessness_presentations", 0.005, 1.3)
# event type -> indicator, as dbt's int_events_joined_to_places names them
INDICATORS = {"social_care_referral": "social_care_referrals", "school_absence": "school_unauthorised_absence_sessions",
              "ae_attendance": "ae_attendances", "food_bank_referral": "food_bank_referrals",
              "asb_complaint": "asb_complaints", "police_person:victim": "police_victims",
              "fire_safe_and_well_visit": "fire_safe_and_well_visits",
              "homelessness_presentation": "homelessness_presentations"}
CONTRACT_FEEDS = {
    "police": ["street_crimes", "person_records"],
    "county_council": ["social_care_referrals", "school_attendance"],
    "district_councils": ["homelessness_presentations", "asb_complaints"],
    "nhs": ["ae_attendances"],
    "voluntary": ["food_bank_referrals"],
    "fire": ["safe_and_well_visits"],
}


def build_mart_warehouse(path: Path, *, n_households: int = 1200, n_lsoas: int = 80, months: int = 24,
                         start: str = "2024-11-01", seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    month_starts = pd.date_range(start, periods=months, freq="MS")
    lsoas = pd.DataFrame({
        "lsoa_code": [f"E0100{i:04d}" for i in range(n_lsoas)],
        "lsoa_name": [f"Shire {i:03d}A" for i in range(n_lsoas)],
        "district_code": [f"E0700{i % 4:04d}" for i in range(n_lsoas)],
        "imd_decile": (np.arange(n_lsoas) % 10) + 1,
        "population": rng.integers(1200, 2200, n_lsoas),
    })
    # households: deprived places carry more need; need drifts month to month (AR(1))
    hh_lsoa = rng.integers(0, n_lsoas, n_households)
    deprivation = (10 - lsoas["imd_decile"].to_numpy()[hh_lsoa]) / 9 - 0.5
    need = np.empty((n_households, months))
    need[:, 0] = 0.8 * deprivation + rng.normal(0, 1, n_households)
    for m in range(1, months):
        need[:, m] = 0.95 * need[:, m - 1] + 0.05 * 0.8 * deprivation + rng.normal(0, 0.3, n_households)
    people = []
    for h in range(n_households):
        size = int(rng.integers(1, 5))
        eth = rng.choice(ETHNICITY[0], p=ETHNICITY[1])
        for k in range(size):
            adult = k < 2 or size == 1
            people.append({
                "household": h, "person_key": f"p{h:05d}_{k}", "household_key": f"h{h:05d}",
                "sex": rng.choice(["F", "M"]), "ethnicity_group": eth,
                "age_band": rng.choice(ADULT_BANDS if adult else CHILD_BANDS), "main": k == 0,
            })
    people = pd.DataFrame(people)
    events = []
    hh_idx = people["household"].to_numpy()
    for event_type, (partner, feed, base, beta) in PERSON_EVENTS.items():
        lam = base * np.exp(beta * need[hh_idx])  # persons x months
        counts = rng.poisson(lam)
        p_i, m_i = np.nonzero(counts)
        events.append(pd.DataFrame({"person": p_i, "m": m_i, "n": counts[p_i, m_i], "event_type": event_type,
                                    "partner": partner, "feed": feed}))
    event_type, partner, feed, base, beta = OUTCOME
    mains = np.flatnonzero(people["main"].to_numpy())
    counts = rng.poisson(base * np.exp(beta * need[hh_idx[mains]]))
    p_i, m_i = np.nonzero(counts)
    events.append(pd.DataFrame({"person": mains[p_i], "m": m_i, "n": counts[p_i, m_i], "event_type": event_type,
                                "partner": partner, "feed": feed}))
    ev = pd.concat(events, ignore_index=True)
    ev = ev.loc[ev.index.repeat(ev["n"])].reset_index(drop=True)
    ev = ev.join(people.drop(columns=["household", "main"]), on="person")
    ev["lsoa_code"] = lsoas["lsoa_code"].to_numpy()[hh_lsoa[people["household"].to_numpy()[ev["person"]]]]
    ev["event_month"] = month_starts[ev["m"].to_numpy()]
    ev["event_date"] = ev["event_month"] + pd.to_timedelta(rng.integers(0, 28, len(ev)), unit="D")
    ev["event_key"] = [f"e{i:07d}" for i in range(len(ev))]
    ev["uprn"] = None
    ev["indicator"] = ev["event_type"].map(INDICATORS)
    int_events = ev[["event_key", "partner", "feed", "event_type", "indicator", "person_key", "household_key", "uprn",
                     "lsoa_code", "event_date", "event_month", "sex", "age_band", "ethnicity_group"]]
    person_monthly = (ev.groupby(["person_key", "event_month", "indicator"], as_index=False).size()
                      .rename(columns={"event_month": "month", "size": "event_count"}))

    # place level: the linked people above plus the many residents this small fixture does not simulate,
    # with seasonality and a deprivation gradient, so an LSOA forecast has volume to learn from
    season = 1 + 0.25 * np.sin(2 * np.pi * (month_starts.month.to_numpy() - 3) / 12)
    lsoa_level = lsoas["imd_decile"].to_numpy()
    lsoa_rate = np.exp(0.12 * (10 - lsoa_level))[:, None] * rng.gamma(8, 1 / 8, (n_lsoas, 1))
    trend = np.linspace(0.9, 1.1, months)[None, :]
    rows = []
    background = {"social_care_referrals": 4.0, "school_unauthorised_absence_sessions": 6.0,
                  "ae_attendances": 12.0, "asb_complaints": 3.0, "homelessness_presentations": 1.0,
                  "crimes_burglary": 2.0, "crimes_total": 9.0, "food_bank_referrals": 2.0,
                  "fire_safe_and_well_visits": 0.5, "police_victims": 1.0}
    linked = ev.groupby(["lsoa_code", "m", "indicator"]).size()
    for indicator, scale in background.items():
        counts = rng.poisson(scale * lsoa_rate * season[None, :] * trend)
        for i, code in enumerate(lsoas["lsoa_code"]):
            for m in range(months):
                rows.append((code, month_starts[m], indicator,
                             int(counts[i, m] + linked.get((code, m, indicator), 0))))
    lmi = pd.DataFrame(rows, columns=["lsoa_code", "month", "indicator", "event_count"])
    lmi = lmi.merge(lsoas[["lsoa_code", "population"]], on="lsoa_code")
    lmi["rate_per_1000"] = lmi["event_count"] * 1000.0 / lmi["population"]

    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        for schema in ("intermediate", "marts"):
            con.execute(f"create schema if not exists {schema}")
        for name, frame in {"intermediate.int_events_joined_to_places": int_events,
                            "marts.person_monthly_events": person_monthly,
                            "marts.lsoa_monthly_indicators": lmi, "marts.dim_lsoa": lsoas}.items():
            con.register("frame", frame)
            con.execute(f"create or replace table {name} as select * from frame")
            con.unregister("frame")
        con.execute("alter table marts.person_monthly_events alter month type date")
        con.execute("alter table marts.lsoa_monthly_indicators alter month type date")
        for col, typ in (("uprn", "varchar"), ("event_date", "date"), ("event_month", "date")):
            con.execute(f"alter table intermediate.int_events_joined_to_places alter {col} type {typ}")
    finally:
        con.close()
    return path


def write_feed_contracts(feeds_dir: Path, purposes: tuple[str, ...] = ("place_indicators", "service_planning",
                                                                       "risk_modelling"),
                         overrides: dict[str, list[str]] | None = None) -> Path:
    """Minimal feed contracts (only the agreement part the ML stage reads); ``overrides`` maps
    ``<partner>.<feed>`` to its permitted purposes."""
    feeds_dir.mkdir(parents=True, exist_ok=True)
    overrides = overrides or {}
    for partner, feeds in CONTRACT_FEEDS.items():
        contract = {"partner": {"id": partner, "name": partner, "owner": f"dpo@{partner}.example"}, "feeds": [
            {"id": feed, "agreement": {
                "id": f"DSA-{partner[:3].upper()}-2024-01",
                "purposes": overrides.get(f"{partner}.{feed}", list(purposes)),
                "lawful_basis": {"article_6": "6(1)(e) public task"},
                "valid_from": "2024-01-01", "valid_to": "2030-12-31"}}
            for feed in feeds]}
        (feeds_dir / f"{partner}.yml").write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    return feeds_dir
