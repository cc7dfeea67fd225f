"""A small synthetic pseudonymised warehouse (``ref.*`` + ``src.<partner>__<feed>``) for the dbt stage.

Tests (session fixture ``dbt_warehouse``) and ``benchmarks/bench_dbt.py`` build dbt on it without running
generate -> ingest -> match -> pseudonymise first; the real pipeline writes the same tables.

The columns follow docs/architecture.md ("Warehouse"): the common pseudonymised columns, then each feed's
non-identifying native columns in snake_case. Rows are random but seeded, so tests are repeatable; a few LSOAs
are deliberately sparse so disclosure control has small counts to suppress. The benchmark reuses it at larger
``scale`` when no synthetic county is available.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

AGE_BANDS = ["0-4", "5-9", "10-15", "16-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+"]
ETHNICITY = ["Asian", "Black", "Mixed", "White", "Other", "Unknown"]
CRIME_TYPES = ["Anti-social behaviour", "Violence and sexual offences", "Burglary", "Shoplifting",
               "Criminal damage and arson", "Vehicle crime", "Drugs", "Public order", "Other theft",
               "Robbery", "Bicycle theft", "Theft from the person", "Possession of weapons", "Other crime"]


@dataclass(frozen=True)
class FixtureShape:
    districts: int = 2
    wards_per_district: int = 2
    msoas_per_district: int = 2
    lsoas_per_msoa: int = 3
    months: int = 6
    start: str = "2024-11-01"
    people: int = 400
    events_per_lsoa_month: float = 6.0


def _months(shape: FixtureShape) -> list[pd.Timestamp]:
    return list(pd.date_range(shape.start, periods=shape.months, freq="MS"))


def build_reference(shape: FixtureShape) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(7)
    districts, wards, msoas, lsoas = [], [], [], []
    names = ["Northfield", "Southmoor", "Eastbury", "Westhaven", "Kingsford", "Ashby", "Brampton", "Colwick",
             "Denholme", "Elmstead", "Fairleigh", "Grantham"]
    lsoa_n = 0
    for d in range(shape.districts):
        dcode, dname = f"E07{d + 1:06d}", names[d % len(names)] + ("" if d < len(names) else f" {d}")
        districts.append((dcode, dname))
        dwards = [f"E05{d + 1:03d}{w + 1:03d}" for w in range(shape.wards_per_district)]
        wards += [(w, f"{dname} Ward {i + 1}", dcode) for i, w in enumerate(dwards)]
        for m in range(shape.msoas_per_district):
            mcode = f"E02{d + 1:03d}{m + 1:03d}"
            msoas.append((mcode, f"{dname} {m + 1:03d}", dcode))
            for k in range(shape.lsoas_per_msoa):
                lsoa_n += 1
                code = f"E01{lsoa_n:06d}"
                ward = dwards[(m * shape.lsoas_per_msoa + k) % len(dwards)]
                pop = int(rng.integers(1200, 2200))
                score = float(np.round(rng.uniform(3, 60), 2))
                lsoas.append((code, f"{dname} {m + 1:03d}{chr(65 + k)}", mcode, ward, dcode, pop, score))
    lsoa_df = pd.DataFrame(lsoas, columns=["lsoa_code", "lsoa_name", "msoa_code", "ward_code", "district_code",
                                           "population", "imd_score"])
    lsoa_df["imd_decile"] = (pd.qcut(-lsoa_df["imd_score"], 10, labels=False, duplicates="drop") + 1).astype(int)
    pop_rows = [(r.lsoa_code, m.date(), int(r.population + rng.integers(-20, 20)))
                for r in lsoa_df.itertuples() for m in _months(shape)]
    return {
        "districts": pd.DataFrame(districts, columns=["district_code", "district_name"]),
        "wards": pd.DataFrame(wards, columns=["ward_code", "ward_name", "district_code"]),
        "msoas": pd.DataFrame(msoas, columns=["msoa_code", "msoa_name", "district_code"]),
        "lsoas": lsoa_df,
        "lsoa_population": pd.DataFrame(pop_rows, columns=["lsoa_code", "month", "population"]),
    }


def _common(rng, n, lsoa_codes, weights, months, people: pd.DataFrame | None, prefix: str) -> pd.DataFrame:
    lsoa = rng.choice(lsoa_codes, size=n, p=weights)
    month = rng.choice(np.array(months, dtype="datetime64[ns]"), size=n)
    day = rng.integers(0, 28, size=n).astype("timedelta64[D]")
    event_date = (month + day).astype("datetime64[D]")
    late = rng.random(n) < 0.05  # late records land in a later drop
    partition = (month.astype("datetime64[M]") + np.where(late, 2, 1)).astype("datetime64[D]")
    df = pd.DataFrame({
        "record_key": [f"{prefix}{i:08x}" for i in range(n)],
        "uprn": rng.integers(10_000_000, 10_999_999, size=n),
        "lsoa_code": lsoa,
        "event_date": pd.to_datetime(event_date).date,
        "event_month": pd.to_datetime(month.astype("datetime64[M]")).date,
        "partition_month": pd.to_datetime(partition).date,
    })
    if people is not None:
        who = people.sample(n=n, replace=True, random_state=int(rng.integers(0, 2**31))).reset_index(drop=True)
        df["person_key"] = who["person_key"].to_numpy()
        df["household_key"] = who["household_key"].to_numpy()
        df["sex"] = who["sex"].to_numpy()
        df["birth_year_month"] = who["birth_year_month"].to_numpy()
        df["age_band"] = who["age_band"].to_numpy()
        df["ethnicity_group"] = who["ethnicity_group"].to_numpy()
        # a few unmatched records (no address match) have no LSOA: staging must keep them, marts drop them
        df.loc[rng.random(n) < 0.02, "lsoa_code"] = None
    return df


def build_sources(shape: FixtureShape, seed: int = 11) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = build_reference(shape)
    lsoa_codes = ref["lsoas"]["lsoa_code"].to_numpy()
    # skewed activity: the last two LSOAs are almost quiet, so small counts (1..4) appear
    w = rng.gamma(2.0, 1.0, size=len(lsoa_codes))
    w[-2:] = 0.02
    w = w / w.sum()
    months = _months(shape)
    hh = rng.integers(0, max(2, shape.people // 2), size=shape.people)
    people = pd.DataFrame({
        "person_key": [f"p{i:06x}" for i in range(shape.people)],
        "household_key": [f"h{h:06x}" for h in hh],
        "sex": rng.choice(["M", "F", "U"], size=shape.people, p=[0.49, 0.49, 0.02]),
        "birth_year_month": [f"{y}-{m:02d}" for y, m in zip(rng.integers(1940, 2020, shape.people),
                                                            rng.integers(1, 13, shape.people), strict=True)],
        "age_band": rng.choice(AGE_BANDS, size=shape.people),
        "ethnicity_group": rng.choice(ETHNICITY, size=shape.people),
    })
    base = int(shape.events_per_lsoa_month * len(lsoa_codes) * shape.months)

    def n(f: float) -> int:
        return max(10, int(base * f))

    out: dict[str, pd.DataFrame] = {}
    k = n(2.0)
    df = _common(rng, k, lsoa_codes, w, months, None, "sc")
    df["month"] = pd.to_datetime(df["event_month"]).dt.strftime("%Y-%m")
    df["reported_by"] = "Shire Constabulary"
    df["falls_within"] = "Shire Constabulary"
    df["longitude"] = rng.uniform(-1.5, -1.0, k)
    df["latitude"] = rng.uniform(52.5, 53.0, k)
    df["location"] = "On or near Example Street"
    df["lsoa_name"] = None
    df["crime_type"] = rng.choice(CRIME_TYPES, size=k)
    df["last_outcome_category"] = rng.choice(["Under investigation", "Unable to prosecute suspect", None], size=k)
    df["context"] = None
    out["police__street_crimes"] = df

    k = n(0.8)
    df = _common(rng, k, lsoa_codes, w, months, people, "pr")
    df["occurrence_ref"] = [f"OCC{i:07d}" for i in rng.integers(0, k, k)]
    df["role"] = rng.choice(["victim", "offender", "suspect", "missing_person"], size=k, p=[.5, .25, .2, .05])
    df["offence_group"] = rng.choice(["violence", "theft", "criminal_damage", "public_order"], size=k)
    out["police__person_records"] = df

    k = n(0.3)
    df = _common(rng, k, lsoa_codes, w, months, people, "cs")
    df["referral_source"] = rng.choice(["Police", "School", "Health", "Self"], size=k)
    df["primary_need_code"] = rng.choice(["N1", "N2", "N3", "N4"], size=k)
    df["outcome"] = rng.choice(["No further action", "Assessment", "Early help"], size=k)
    out["county_council__social_care_referrals"] = df

    k = n(1.0)
    df = _common(rng, k, lsoa_codes, w, months, people, "sa")
    df["school_urn"] = rng.integers(100000, 100020, size=k)
    df["school_name"] = "Example School"
    df["term_month"] = pd.to_datetime(df["event_month"]).dt.strftime("%Y-%m")
    df["sessions_possible"] = rng.integers(30, 44, size=k)
    df["sessions_missed_authorised"] = rng.integers(0, 4, size=k)
    df["sessions_missed_unauthorised"] = np.where(rng.random(k) < 0.3, rng.integers(1, 6, size=k), 0)
    df["suspensions"] = np.where(rng.random(k) < 0.05, 1, 0)
    df["permanent_exclusion"] = rng.random(k) < 0.005
    df["fsm_eligible"] = rng.random(k) < 0.2
    df["sen_status"] = rng.choice(["N", "K", "E"], size=k)
    out["county_council__school_attendance"] = df

    k = n(0.2)
    df = _common(rng, k, lsoa_codes, w, months, people, "hp")
    df["district_code"] = "E07000001"
    df["household_adults"] = rng.integers(1, 3, size=k)
    df["household_children"] = rng.integers(0, 4, size=k)
    df["reason_for_loss"] = rng.choice(["End of AST", "Family or friends no longer willing"], size=k)
    df["duty_owed"] = rng.choice(["Prevention", "Relief"], size=k)
    out["district_councils__homelessness_presentations"] = df

    k = n(0.5)
    df = _common(rng, k, lsoa_codes, w, months, people, "asb")
    df["district_code"] = "E07000001"
    df["category"] = rng.choice(["Noise", "Nuisance neighbours", "Vandalism"], size=k)
    df["status"] = rng.choice(["Open", "Closed"], size=k)
    out["district_councils__asb_complaints"] = df

    k = n(1.5)
    df = _common(rng, k, lsoa_codes, w, months, people, "ae")
    df["ethnic_category"] = rng.choice(["A", "J", "Z"], size=k)
    df["arrival_datetime"] = pd.to_datetime(df["event_date"]) + pd.to_timedelta(rng.integers(0, 86400, k), "s")
    df["chief_complaint_snomed"] = rng.choice(["22253000", "21522001", "267036007"], size=k)
    df["attendance_source"] = rng.choice(["Ambulance", "Self"], size=k)
    df["discharge_destination"] = rng.choice(["Home", "Admitted"], size=k)
    df["acuity"] = rng.integers(1, 6, size=k)
    out["nhs__ae_attendances"] = df

    k = n(0.3)
    df = _common(rng, k, lsoa_codes, w, months, people, "fb")
    df["referral_agency"] = rng.choice(["Citizens Advice", "GP", "School"], size=k)
    df["crisis_type"] = rng.choice(["Low income", "Benefit delay", "Debt"], size=k)
    df["adults"] = rng.integers(1, 3, size=k)
    df["children"] = rng.integers(0, 4, size=k)
    out["voluntary__food_bank_referrals"] = df

    k = n(0.1)
    df = _common(rng, k, lsoa_codes, w, months, people, "sw")
    df["occupants"] = rng.integers(1, 5, size=k)
    df["risk_score"] = rng.integers(1, 11, size=k)
    df["smoke_alarm_fitted"] = rng.random(k) < 0.6
    df["referrer"] = rng.choice(["Self", "Adult social care", "Police"], size=k)
    out["fire__safe_and_well_visits"] = df
    return out


def build_fixture_warehouse(path: str | Path, shape: FixtureShape | None = None) -> Path:
    """Write ``ref.*`` and ``src.*`` tables into the DuckDB file at ``path`` (replacing them) and return it."""
    shape = shape or FixtureShape()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("create schema if not exists ref; create schema if not exists src")
        for schema, tables in (("ref", build_reference(shape)), ("src", build_sources(shape))):
            for name, df in tables.items():
                con.register("_df", df)
                con.execute(f"create or replace table {schema}.{name} as select * from _df")
                con.unregister("_df")
    finally:
        con.close()
    return path
