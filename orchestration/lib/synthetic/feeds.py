"""Turn service events into each partner's native feed, inject defects, write monthly drops and the truth.

One ``FeedSpec`` per feed says how its file looks; ``render_<feed>`` builds the native columns; ``write_feed``
does what every feed shares: late records, duplicates, malformed rows, file writing and line numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from orchestration.lib.synthetic import events as E
from orchestration.lib.synthetic.config import DefectRates
from orchestration.lib.synthetic.defects import (
    DefectLog,
    corrupt_dob,
    corrupt_names,
    corrupt_nhs,
    corrupt_postcode,
    render_address,
)
from orchestration.lib.synthetic.geography import Geography, en_to_lonlat
from orchestration.lib.synthetic.names import ETHNICITY_TABLE
from orchestration.lib.synthetic.population import Population

SENTINEL = "\x07"  # marks where bad-encoding bytes go; replaced after the text is encoded


@dataclass(frozen=True)
class FeedSpec:
    partner: str
    feed: str
    type: str                 # csv | excel | jsonl
    encoding: str = "utf-8"   # "utf-8-sig" = UTF-8 with BOM
    delimiter: str = ","
    newline: str = "\n"
    ext: str = "csv"
    record_id: tuple[str, ...] = ()
    bad_date: tuple[str, str] = ("", "")   # (column, strftime format) that gets impossible dates
    bad_text: str = ""                     # column that gets bad-encoding bytes
    sheet: str | None = None
    dob: tuple[str, str] = ("", "")        # (column, strftime format) of the date of birth, if the feed has one


SPECS: dict[str, FeedSpec] = {s.partner + "/" + s.feed: s for s in [
    FeedSpec("police", "street_crimes", "csv", record_id=("Crime ID",), bad_date=("Month", "%Y-%m"),
             bad_text="Location"),
    FeedSpec("police", "person_records", "csv", encoding="cp1252", newline="\r\n", record_id=("record_ref",),
             bad_date=("date_of_birth", "%d/%m/%Y"), bad_text="surname", dob=("date_of_birth", "%d/%m/%Y")),
    FeedSpec("county_council", "social_care_referrals", "excel", ext="xlsx", record_id=("Referral ID",),
             bad_date=("Child DOB", "%d/%m/%Y"), sheet="Referrals", dob=("Child DOB", "%d/%m/%Y")),
    FeedSpec("county_council", "school_attendance", "csv", delimiter=";", record_id=("upn", "term_month"),
             bad_date=("dob", "%Y-%m-%d"), bad_text="surname", dob=("dob", "%Y-%m-%d")),
    FeedSpec("district_councils", "homelessness_presentations", "csv", encoding="utf-8-sig", newline="\r\n",
             record_id=("CaseRef",), bad_date=("MainApplicantDOB", "%d/%m/%Y"), bad_text="MainApplicantSurname",
             dob=("MainApplicantDOB", "%d/%m/%Y")),
    FeedSpec("district_councils", "asb_complaints", "csv", delimiter="|", record_id=("complaint_id",),
             bad_date=("received_date", "%Y-%m-%d"), bad_text="subject_address"),
    FeedSpec("nhs", "ae_attendances", "jsonl", ext="jsonl", record_id=("attendance_id",),
             bad_date=("date_of_birth", "%Y-%m-%d"), bad_text="surname", dob=("date_of_birth", "%Y-%m-%d")),
    FeedSpec("voluntary", "food_bank_referrals", "csv", encoding="cp1252", newline="\r\n",
             record_id=("Voucher No",), bad_date=("Date Issued", "%d/%m/%Y"), bad_text="Client First Name"),
    FeedSpec("fire", "safe_and_well_visits", "csv", delimiter="\t", record_id=("VisitID",),
             bad_date=("OccupantDOB", "%Y-%m-%d"), bad_text="OccupantName", dob=("OccupantDOB", "%Y-%m-%d")),
]}


# ----------------------------------------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------------------------------------
class _Columns:
    """numpy views of a DataFrame's columns, converted once.

    pandas 3 stores text as Arrow strings; converting a 1.5 M-row column to numpy for every feed cost more
    than generating the feed, so each column is converted once per run and indexed from then on.
    """

    def __init__(self, df: pd.DataFrame):
        self._df = df
        self._cache: dict[str, np.ndarray] = {}

    def to_numpy(self, name: str) -> np.ndarray:
        if name not in self._cache:
            col = self._df[name]
            self._cache[name] = col.to_numpy(dtype=object) if col.dtype.kind in "OTU" or str(col.dtype) in (
                "str", "string") else col.to_numpy()
        return self._cache[name]

    def __getitem__(self, name: str) -> _Column:
        return _Column(self, name)


class _Column:
    def __init__(self, owner: _Columns, name: str):
        self.owner, self.name = owner, name

    def to_numpy(self) -> np.ndarray:
        return self.owner.to_numpy(self.name)


_VIEWS: dict[int, _Columns] = {}


def _view(df: pd.DataFrame) -> _Columns:
    key = id(df)
    if key not in _VIEWS or _VIEWS[key]._df is not df:
        _VIEWS[key] = _Columns(df)
    return _VIEWS[key]


def _with_people(ev: pd.DataFrame, pop: Population, geo: Geography, start_rid: int) -> pd.DataFrame:
    people = _view(pop.people)
    pid = ev["person_id"].to_numpy()
    gz = _view(geo.gazetteer)
    u = ev["uprn_idx"].to_numpy()
    df = pd.DataFrame({
        "_rid": np.arange(start_rid, start_rid + len(ev), dtype=np.int64),
        "_person_id": pid, "_household_id": ev["household_id"].to_numpy(),
        "_uprn": gz["uprn"].to_numpy()[u], "_lsoa": gz["lsoa_code"].to_numpy()[u],
        "_event_date": ev["event_date"].to_numpy().astype("datetime64[D]"),
        "_month": ev["month"].to_numpy(),
        "given": people["given_name"].to_numpy()[pid], "family": people["family_name"].to_numpy()[pid],
        "dob": people["date_of_birth"].to_numpy()[pid], "sex": people["sex"].to_numpy()[pid],
        "eth": people["ethnicity"].to_numpy()[pid], "nhs": people["nhs_number"].to_numpy()[pid],
        "upn": people["upn"].to_numpy()[pid],
        "saon": gz["saon"].to_numpy()[u], "paon": gz["paon"].to_numpy()[u], "street": gz["street"].to_numpy()[u],
        "locality": gz["locality"].to_numpy()[u], "town": gz["town"].to_numpy()[u],
        "postcode": gz["postcode"].to_numpy()[u],
    })
    df["nhs"] = np.char.zfill(df["nhs"].to_numpy().astype(np.int64).astype(str), 10).astype(object)
    return df


def _fmt(dates: pd.Series | np.ndarray, fmt: str) -> np.ndarray:
    s = pd.Series(pd.to_datetime(dates))
    return s.dt.strftime(fmt).where(s.notna(), None).to_numpy(dtype=object)


def _age_band(age: np.ndarray) -> np.ndarray:
    bands = np.array(["Under 18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"], dtype=object)
    return bands[np.searchsorted([18, 25, 35, 45, 55, 65], age, side="right")]


def _seq_ids(prefix: str, dates: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    """Sequential ids in event-date order (as a case system would issue them), from a random start."""
    order = np.argsort(dates, kind="stable")
    seq = np.empty(len(dates), dtype=np.int64)
    seq[order] = np.arange(len(dates)) + int(rng.integers(1_000, 9_000))
    return np.char.add(prefix, np.char.zfill(seq.astype(str), width)).astype(object)


def _yn(b: np.ndarray) -> np.ndarray:
    return np.where(b, "Y", "N").astype(object)


# ----------------------------------------------------------------------------------------------------------
# renderers: events -> native columns (+ hidden _columns for truth)
# ----------------------------------------------------------------------------------------------------------
def render_street_crimes(rng, ev, pop, geo, rates, log, rid0):
    lsoas = geo.lsoas
    li = ev["lsoa_idx"].to_numpy()
    n = len(ev)
    gz = geo.gazetteer
    # a random property of the LSOA gives the snapped location (police.uk snaps to anonymous map points)
    starts = np.searchsorted(gz["lsoa_code"].to_numpy(), lsoas["lsoa_code"].to_numpy())
    counts = np.diff(np.r_[starts, len(gz)])
    gi = starts[li] + (rng.random(n) * counts[li]).astype(int)
    lon, lat = en_to_lonlat(gz["easting"].to_numpy()[gi].astype(float), gz["northing"].to_numpy()[gi].astype(float))
    ids = rng.integers(0, 2**63 - 1, size=(n, 4), dtype=np.int64)
    crime_id = np.array([f"{a:016x}{b:016x}{c:016x}{d:016x}" for a, b, c, d in ids], dtype=object)
    dates = ev["event_date"].to_numpy().astype("datetime64[D]")
    ctype = E.pick(rng, E.CRIME_TYPES, n)
    df = pd.DataFrame({
        "_rid": np.arange(rid0, rid0 + n), "_person_id": -1, "_household_id": -1, "_uprn": None,
        "_lsoa": lsoas["lsoa_code"].to_numpy()[li], "_event_date": dates, "_month": ev["month"].to_numpy(),
        "Crime ID": crime_id, "Month": _fmt(dates, "%Y-%m"),
        "Reported by": "Shire Constabulary", "Falls within": "Shire Constabulary",
        "Longitude": lon, "Latitude": lat,
        "Location": np.char.add("On or near ", gz["street"].to_numpy()[gi].astype(str)).astype(object),
        "LSOA code": lsoas["lsoa_code"].to_numpy()[li], "LSOA name": lsoas["lsoa_name"].to_numpy()[li],
        "Crime type": ctype, "Last outcome category": E.pick(rng, E.CRIME_OUTCOMES, n), "Context": None,
    })
    return df


def render_person_records(rng, ev, pop, geo, rates, log, rid0):
    df = _with_people(ev, pop, geo, rid0)
    n = len(df)
    corrupt_names(rng, df, rates, log, "given", "family")
    corrupt_dob(rng, df, rates, log)
    corrupt_postcode(rng, df, rates, log)
    address = render_address(rng, df, rates, log)
    role = ev["role"].to_numpy(dtype=object).copy()
    offender = role == "offender"
    role[offender & (rng.random(n) < 0.4)] = "suspect"
    group = np.where(role == "victim", E.pick(rng, E.OFFENCE_GROUPS_VICTIM, n),
                     E.pick(rng, E.OFFENCE_GROUPS_OFFENDER, n))
    group = np.where(role == "missing_person", "Missing person", group)
    # the force's own nominal id: stable per person, but 5% of records create a duplicate nominal
    pid = df["_person_id"].to_numpy()
    nominal = (pid * 7919 + 12345) % 10_000_000
    dup_nominal = rng.random(n) < 0.05
    nominal = np.where(dup_nominal, 10_000_000 + rng.integers(0, 9_000_000, n), nominal)
    gender = np.where(rng.random(n) < 0.01, "U", df["sex"].to_numpy())
    notes = E.pick(rng, {"": 0.6, "Known to partner agencies": 0.1, "Vulnerable adult - see linked report": 0.08,
                         "Lives with partner and children": 0.08, "Previous DA incidents at address": 0.07,
                         "Mental health concerns noted": 0.07}, n)
    occ = (rng.integers(0, 10**6, n)).astype(str)
    year = pd.DatetimeIndex(df["_event_date"]).year.astype(str).to_numpy()
    out = df[[c for c in df.columns if c.startswith("_")]].copy()
    out["record_ref"] = _seq_ids("PR", df["_event_date"].to_numpy(), 8, rng)
    out["occurrence_ref"] = np.char.add(np.char.add(np.char.add("OCC/", year.astype(str)), "/"),
                                        np.char.zfill(occ, 6)).astype(object)
    out["person_ref"] = np.char.add("N", np.char.zfill(nominal.astype(str), 8)).astype(object)
    out["role"] = role
    out["forename"] = df["given"]
    out["surname"] = df["family"]
    out["date_of_birth"] = _fmt(df["dob"], "%d/%m/%Y")
    out["gender"] = gender
    out["address"] = address
    out["postcode"] = df["postcode"]
    out["occurrence_date"] = _fmt(df["_event_date"], "%d/%m/%Y")
    out["offence_group"] = group
    out["notes"] = np.where(notes == "", None, notes)
    return out


def render_social_care(rng, ev, pop, geo, rates, log, rid0):
    df = _with_people(ev, pop, geo, rid0)
    n = len(df)
    corrupt_names(rng, df, rates, log, "given", "family")
    corrupt_dob(rng, df, rates, log)
    corrupt_postcode(rng, df, rates, log)
    corrupt_nhs(rng, df, rates, log, missing_rate=0.30)
    line1 = render_address(rng, df, rates, log, col="Address Line 1", with_town=False)
    missing_town = rng.random(n) < rates.address_missing_town
    log.add(df["_rid"].to_numpy()[missing_town], "address_missing_town", "Town")
    eth = ETHNICITY_TABLE.set_index("key")["dfe_code"]
    ethnicity = df["eth"].map(eth).to_numpy(dtype=object)
    ethnicity[rng.random(n) < 0.05] = "NOBT"
    out = df[[c for c in df.columns if c.startswith("_")]].copy()
    out["Referral ID"] = _seq_ids("REF-", df["_event_date"].to_numpy(), 7, rng)
    out["Referral Date"] = pd.to_datetime(df["_event_date"]).dt.date.to_numpy()
    out["Child First Name"] = df["given"]
    out["Child Surname"] = df["family"]
    out["Child DOB"] = pd.to_datetime(df["dob"]).dt.date.to_numpy()
    out["Gender"] = df["sex"].map({"M": "Male", "F": "Female"}).to_numpy()
    out["Ethnicity"] = ethnicity
    out["NHS Number"] = df["nhs"]
    out["Address Line 1"] = line1
    out["Address Line 2"] = df["locality"].replace("", None)
    out["Town"] = np.where(missing_town, None, df["town"].to_numpy())
    out["Postcode"] = df["postcode"]
    out["Referral Source"] = E.pick(rng, E.REFERRAL_SOURCES, n)
    out["Primary Need Code"] = E.pick(rng, E.PRIMARY_NEED, n)
    out["Outcome"] = E.pick(rng, E.REFERRAL_OUTCOMES, n)
    return out


def render_school(rng, ev, pop, geo, rates, log, rid0):
    df = _with_people(ev, pop, geo, rid0)
    n = len(df)
    corrupt_names(rng, df, rates, log, "given", "family")
    corrupt_dob(rng, df, rates, log)
    corrupt_postcode(rng, df, rates, log)
    schools = geo.schools
    lsoa_district = geo.lsoas.set_index("lsoa_code")["_d"]
    d = lsoa_district.reindex(df["_lsoa"]).to_numpy()
    phase = np.where(ev["age_sept"].to_numpy() < 11, "primary", "secondary")
    urn = np.zeros(n, dtype=np.int64)
    for (dist, ph), group in schools.groupby(["_d", "phase"]):
        m = (d == dist) & (phase == ph)
        urn[m] = group["school_urn"].to_numpy()[df["_household_id"].to_numpy()[m] % len(group)]
    names = schools.set_index("school_urn")["school_name"]
    need = ev["need"].to_numpy()
    pid = df["_person_id"].to_numpy()
    h = (pid * 2654435761) % 1000 / 1000.0  # stable per pupil
    sen = np.where(h < 0.02 + 0.02 * (need > 1), "E", np.where(h < 0.15 + 0.08 * (need > 1), "K", "N"))
    out = df[[c for c in df.columns if c.startswith("_")]].copy()
    out["upn"] = df["upn"]
    out["school_urn"] = urn
    out["school_name"] = names.reindex(urn).to_numpy()
    out["forename"] = df["given"]
    out["surname"] = df["family"]
    out["dob"] = _fmt(df["dob"], "%Y-%m-%d")
    out["gender"] = df["sex"]
    out["postcode"] = df["postcode"]
    out["term_month"] = _fmt(df["_event_date"], "%Y-%m")
    out["sessions_possible"] = ev["sessions_possible"].to_numpy()
    out["sessions_missed_authorised"] = ev["sessions_missed_authorised"].to_numpy()
    out["sessions_missed_unauthorised"] = ev["sessions_missed_unauthorised"].to_numpy()
    out["suspensions"] = ev["suspensions"].to_numpy()
    out["permanent_exclusion"] = _yn(ev["permanent_exclusion"].to_numpy())
    out["fsm_eligible"] = _yn(need + 0.3 * geo.lsoas.set_index("lsoa_code")["deprivation"].reindex(df["_lsoa"])
                              .to_numpy() > 0.9)
    out["sen_status"] = sen
    return out


def render_homelessness(rng, ev, pop, geo, rates, log, rid0):
    df = _with_people(ev, pop, geo, rid0)
    n = len(df)
    corrupt_names(rng, df, rates, log, "given", "family")
    corrupt_dob(rng, df, rates, log)
    corrupt_postcode(rng, df, rates, log)
    address = render_address(rng, df, rates, log, col="PriorAddress")
    district = geo.lsoas.set_index("lsoa_code")["district_code"].reindex(df["_lsoa"]).to_numpy()
    eth = ETHNICITY_TABLE.set_index("key")["ons_label"]
    ethnicity = df["eth"].map(eth).to_numpy(dtype=object)
    ethnicity[rng.random(n) < 0.08] = "Prefer not to say"
    year = pd.DatetimeIndex(df["_event_date"]).year.astype(str).to_numpy()
    seq = _seq_ids("", df["_event_date"].to_numpy(), 5, rng)
    out = df[[c for c in df.columns if c.startswith("_")]].copy()
    out["CaseRef"] = np.array([f"HL/{d[-3:]}/{y}/{s}" for d, y, s in zip(district, year, seq, strict=True)],
                              dtype=object)
    out["DistrictCode"] = district
    out["DateOfPresentation"] = _fmt(df["_event_date"], "%d/%m/%Y")
    out["MainApplicantForename"] = df["given"]
    out["MainApplicantSurname"] = df["family"]
    out["MainApplicantDOB"] = _fmt(df["dob"], "%d/%m/%Y")
    out["Sex"] = df["sex"].map({"M": "Male", "F": "Female"}).to_numpy()
    out["Ethnicity"] = ethnicity
    out["HouseholdAdults"] = ev["adults"].to_numpy()
    out["HouseholdChildren"] = ev["children"].to_numpy()
    out["PriorAddress"] = address
    out["PriorPostcode"] = df["postcode"]
    out["ReasonForLoss"] = E.pick(rng, E.LOSS_REASONS, n)
    out["DutyOwed"] = E.pick(rng, E.DUTIES, n)
    return out


def render_asb(rng, ev, pop, geo, rates, log, rid0):
    df = _with_people(ev, pop, geo, rid0)
    n = len(df)
    corrupt_names(rng, df, rates, log, "given", "family")
    corrupt_postcode(rng, df, rates, log)
    address = render_address(rng, df, rates, log, col="subject_address")
    style = rng.choice(5, n, p=[0.35, 0.15, 0.1, 0.1, 0.3])
    g, f = df["given"].fillna("").astype(str), df["family"].fillna("").astype(str)
    title = np.where(df["sex"] == "M", "Mr", "Ms")
    name = np.select([style == 0, style == 1, style == 2, style == 3],
                     [g + " " + f, f.str.upper() + ", " + g, title + " " + f,
                      "the " + np.where(df["sex"] == "M", "man", "woman") + " at no. " + df["paon"].astype(str)],
                     None)
    log.add(df["_rid"].to_numpy()[style == 4], "missing_field", "subject_name")
    has_uprn = rng.random(n) < 0.6
    district = geo.lsoas.set_index("lsoa_code")["district_code"].reindex(df["_lsoa"]).to_numpy()
    out = df[[c for c in df.columns if c.startswith("_")]].copy()
    out["complaint_id"] = _seq_ids("ASB", df["_event_date"].to_numpy(), 6, rng)
    out["district_code"] = district
    out["received_date"] = _fmt(df["_event_date"], "%Y-%m-%d")
    out["category"] = E.pick(rng, E.ASB_CATEGORIES, n)
    out["subject_name"] = name
    out["subject_address"] = address
    out["postcode"] = df["postcode"]
    out["uprn"] = pd.Series(df["_uprn"].to_numpy(), index=out.index, dtype="Int64").where(has_uprn)
    out["status"] = E.pick(rng, E.ASB_STATUS, n)
    return out


def render_ae(rng, ev, pop, geo, rates, log, rid0):
    df = _with_people(ev, pop, geo, rid0)
    n = len(df)
    corrupt_names(rng, df, rates, log, "given", "family")
    corrupt_dob(rng, df, rates, log)
    corrupt_postcode(rng, df, rates, log)
    corrupt_nhs(rng, df, rates, log)
    nhs = df["nhs"].to_numpy(dtype=object)
    present = pd.notna(nhs)
    formatted = np.full(n, None, dtype=object)
    formatted[present] = [f"{s[:3]} {s[3:6]} {s[6:]}" for s in nhs[present]]
    need = ev["need"].to_numpy()
    complaint = E.pick(rng, E.AE_COMPLAINTS, n)
    need_case = rng.random(n) < np.clip(0.05 * np.exp(0.8 * need), 0, 0.6)
    complaint[need_case] = np.array(E.AE_NEED_COMPLAINTS, dtype=object)[rng.integers(0, 5, int(need_case.sum()))]
    eth = df["eth"].map(ETHNICITY_TABLE.set_index("key")["nhs_code"]).to_numpy(dtype=object)
    eth[rng.random(n) < 0.06] = "Z"
    minutes = rng.integers(0, 24 * 60, n)
    arrival = pd.to_datetime(df["_event_date"]) + pd.to_timedelta(minutes, unit="min")
    acuity = np.clip(np.round(rng.normal(3.4, 0.9, n) - 0.3 * need_case), 1, 5).astype(int)
    out = df[[c for c in df.columns if c.startswith("_")]].copy()
    out["attendance_id"] = _seq_ids("AE", df["_event_date"].to_numpy(), 9, rng)
    out["nhs_number"] = formatted
    out["forename"] = df["given"]
    out["surname"] = df["family"]
    out["date_of_birth"] = _fmt(df["dob"], "%Y-%m-%d")
    out["sex"] = np.where(rng.random(n) < 0.003, "9", np.where(df["sex"] == "M", "1", "2")).astype(object)
    out["ethnic_category"] = eth
    out["postcode"] = df["postcode"]
    out["arrival_datetime"] = arrival.dt.strftime("%Y-%m-%dT%H:%M:%S").to_numpy(dtype=object)
    out["chief_complaint_snomed"] = complaint
    out["attendance_source"] = E.pick(rng, E.AE_SOURCES, n)
    out["discharge_destination"] = E.pick(rng, E.AE_DISCHARGE, n)
    out["acuity"] = acuity
    return out


def render_food_bank(rng, ev, pop, geo, rates, log, rid0):
    df = _with_people(ev, pop, geo, rid0)
    n = len(df)
    corrupt_names(rng, df, rates, log, "given", None)
    corrupt_postcode(rng, df, rates, log)
    age = (df["_event_date"].to_numpy().astype("datetime64[D]") - df["dob"].to_numpy().astype("datetime64[D]")).astype(np.int64) / 365.25
    out = df[[c for c in df.columns if c.startswith("_")]].copy()
    out["Voucher No"] = _seq_ids("FB", df["_event_date"].to_numpy(), 6, rng)
    out["Date Issued"] = _fmt(df["_event_date"], "%d/%m/%Y")
    out["Client First Name"] = df["given"]
    out["Age Band"] = _age_band(age)
    out["Postcode"] = df["postcode"]
    out["Referral Agency"] = E.pick(rng, E.FOOD_AGENCIES, n)
    out["Crisis Type"] = E.pick(rng, E.FOOD_CRISES, n)
    out["Adults"] = ev["adults"].to_numpy()
    out["Children"] = ev["children"].to_numpy()
    return out


def render_fire(rng, ev, pop, geo, rates, log, rid0):
    df = _with_people(ev, pop, geo, rid0)
    n = len(df)
    corrupt_names(rng, df, rates, log, "given", "family")
    corrupt_dob(rng, df, rates, log)
    corrupt_postcode(rng, df, rates, log)
    address = render_address(rng, df, rates, log, col="AddressText")
    g, f = df["given"].fillna("").astype(str), df["family"].fillna("").astype(str)
    style = rng.choice(3, n, p=[0.75, 0.15, 0.1])
    title = np.where(df["sex"] == "M", "Mr", "Mrs")
    name = np.select([style == 0, style == 1], [(g + " " + f).str.strip(), f.str.upper() + ", " + g],
                     title + " " + g.str[:1] + " " + f)
    has_uprn = rng.random(n) < 0.8
    risk = np.clip(np.round(4 + 1.5 * ev["need"].to_numpy() + 2 * ev["any_older"].to_numpy()
                            + rng.normal(0, 1.5, n)), 1, 10).astype(int)
    out = df[[c for c in df.columns if c.startswith("_")]].copy()
    out["VisitID"] = _seq_ids("", df["_event_date"].to_numpy(), 1, rng)
    out["VisitDate"] = _fmt(df["_event_date"], "%Y-%m-%d")
    out["UPRN"] = pd.Series(df["_uprn"].to_numpy(), index=out.index, dtype="Int64").where(has_uprn)
    out["AddressText"] = address
    out["Postcode"] = df["postcode"]
    out["OccupantName"] = name
    out["OccupantDOB"] = _fmt(df["dob"], "%Y-%m-%d")
    out["Occupants"] = ev["adults"].to_numpy() + ev["children"].to_numpy()
    out["RiskScore"] = risk
    out["SmokeAlarmFitted"] = _yn(rng.random(n) < 0.6)
    out["Referrer"] = E.pick(rng, E.FIRE_REFERRERS, n)
    return out


RENDERERS: dict[str, Callable] = {
    "police/street_crimes": render_street_crimes,
    "police/person_records": render_person_records,
    "county_council/social_care_referrals": render_social_care,
    "county_council/school_attendance": render_school,
    "district_councils/homelessness_presentations": render_homelessness,
    "district_councils/asb_complaints": render_asb,
    "nhs/ae_attendances": render_ae,
    "voluntary/food_bank_referrals": render_food_bank,
    "fire/safe_and_well_visits": render_fire,
}


# ----------------------------------------------------------------------------------------------------------
# writing: late records, duplicates, malformed rows, files, truth
# ----------------------------------------------------------------------------------------------------------
def _impossible(fmt: str, r: float) -> str:
    y = 2025
    if fmt == "%Y-%m":
        return f"{y}-{13 + int(r * 5)}"
    day, month = (31, 2) if r < 0.5 else (12, 13 + int(r * 3))
    if fmt == "%d/%m/%Y":
        return f"{day:02d}/{month:02d}/{y}"
    return f"{y}-{month:02d}-{day:02d}"


def _join_ids(df: pd.DataFrame, cols: tuple[str, ...]) -> pd.Series:
    out = df[cols[0]].astype(str)
    for c in cols[1:]:
        out = out + "|" + df[c].astype(str)
    return out


def write_feed(rng: np.random.Generator, key: str, rows: pd.DataFrame, log: DefectLog, home: Path,
               month_starts: np.ndarray, rates: DefectRates) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write every monthly drop of one feed; return (truth records, truth defects) for it."""
    spec = SPECS[key]
    months = len(month_starts) - 1
    n = len(rows)
    rid = rows["_rid"].to_numpy()
    # late records: 1-3 drops late (never past the last drop)
    late = rng.random(n) < rates.late_record
    delay = np.where(late, rng.integers(1, 4, n), 0)
    drop_idx = np.minimum(rows["_month"].to_numpy() + 1 + delay, months)
    late &= drop_idx > rows["_month"].to_numpy() + 1
    log.add(rid[late], "late_record", "")
    rows = rows.assign(_drop_idx=drop_idx, _dup_of=None)
    # duplicates: the same row twice in one drop
    dup = rng.random(n) < rates.duplicate_row
    copies = rows.loc[dup].copy()
    rid_col = _join_ids(rows, spec.record_id)
    rows["_record_id"] = rid_col.to_numpy()
    copies["_record_id"] = rows.loc[dup, "_record_id"].to_numpy()
    copies["_dup_of"] = copies["_record_id"]
    allrows = pd.concat([rows, copies], ignore_index=True)
    allrows["_is_copy"] = allrows["_dup_of"].notna()
    allrows = allrows.sort_values(["_drop_idx", "_event_date", "_rid", "_is_copy"], kind="stable",
                                  ignore_index=True)
    # malformed rows (at most one kind per row; never on the duplicate copies)
    u = rng.random(len(allrows))
    edges = np.cumsum([rates.wrong_column_count, rates.impossible_date, rates.bad_encoding])
    kind = np.where(allrows["_is_copy"].to_numpy(), 3, np.searchsorted(edges, u, side="right"))
    if spec.type == "excel":
        kind = np.where(kind == 2, 3, kind)  # an .xlsx is XML: there are no encoding bytes to break
    if spec.bad_text:
        col = allrows[spec.bad_text]
        bad_enc = (kind == 2) & col.notna().to_numpy()
        kind = np.where((kind == 2) & ~bad_enc, 3, kind)
        vals = col.to_numpy(dtype=object).copy()
        vals[bad_enc] = [str(v)[:1] + SENTINEL + str(v)[1:] for v in vals[bad_enc]]
        allrows[spec.bad_text] = vals
    else:
        kind = np.where(kind == 2, 3, kind)
    bad_date = kind == 1
    if bad_date.any():
        col, fmt = spec.bad_date
        vals = allrows[col].astype(object).to_numpy(copy=True)
        vals[bad_date] = [_impossible(fmt, x) for x in rng.random(int(bad_date.sum()))]
        allrows[col] = vals
        if col in spec.record_id:  # the record id is what was written
            allrows.loc[bad_date, "_record_id"] = _join_ids(allrows.loc[bad_date], spec.record_id).to_numpy()

    native = [c for c in allrows.columns if not c.startswith("_")]
    drop_days = {d: int(rng.integers(1, 8)) for d in np.unique(allrows["_drop_idx"])}
    folder = home / "landing" / spec.partner / spec.feed
    folder.mkdir(parents=True, exist_ok=True)
    files = np.empty(len(allrows), dtype=object)
    lines = np.zeros(len(allrows), dtype=np.int64)
    drop_dates = np.empty(len(allrows), dtype="datetime64[D]")
    bounds = np.flatnonzero(np.r_[True, np.diff(allrows["_drop_idx"].to_numpy()) != 0, True])
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        d = int(allrows["_drop_idx"].iat[a])
        drop_date = month_starts[d] + (drop_days[d] - 1)
        rel = f"landing/{spec.partner}/{spec.feed}/{drop_date}.{spec.ext}"
        part = allrows.iloc[a:b]
        _write_file(home / rel, part[native], spec, kind[a:b])
        files[a:b] = rel
        lines[a:b] = np.arange(b - a) + (1 if spec.type == "jsonl" else 2)
        drop_dates[a:b] = drop_date

    allrows["_file"] = files
    allrows["_line"] = lines
    truth = pd.DataFrame({
        "partner": spec.partner, "feed": spec.feed, "record_id": allrows["_record_id"].to_numpy(),
        "person_id": pd.array(allrows["_person_id"].to_numpy(), dtype="Int64"),
        "household_id": pd.array(allrows["_household_id"].to_numpy(), dtype="Int64"),
        "uprn": pd.array(pd.to_numeric(allrows["_uprn"]).to_numpy(), dtype="Int64"),
        "lsoa_code": allrows["_lsoa"].to_numpy(), "file": files, "line": lines,
        "duplicate_of": allrows["_dup_of"].to_numpy(),
        "event_date": allrows["_event_date"].to_numpy().astype("datetime64[D]"),
        "drop_date": drop_dates,
    })
    truth.loc[truth["person_id"] < 0, ["person_id", "household_id"]] = pd.NA
    # defects: identification defects apply to the original and its copies; the rest to that row only
    dlog = log.frame()
    by_rid = allrows[["_rid", "_file", "_line", "_record_id", "_is_copy"]]
    ident = dlog.merge(by_rid, on="_rid")
    extra = []
    # a JSON line cannot have a wrong column count: the writer truncates it instead
    first_kind = "invalid_json" if spec.type == "jsonl" else "wrong_column_count"
    for k, name in ((0, first_kind), (1, "impossible_date"), (2, "bad_encoding")):
        m = kind == k
        extra.append(pd.DataFrame({"_file": files[m], "_line": lines[m],
                                   "_record_id": allrows["_record_id"].to_numpy()[m], "defect": name,
                                   "column": spec.bad_date[0] if k == 1 else (spec.bad_text if k == 2 else "")}))
    # a date-of-birth defect (day/month swap, a year out) can put the birth after the event or the drop: the
    # contract's plausibility (orchestration/feeds/*.yml, default ranges) quarantines that row, so the truth says so
    unborn = _born_after_event_or_drop(allrows, spec, drop_dates) & (kind == 3)
    extra.append(pd.DataFrame({"_file": files[unborn], "_line": lines[unborn],
                               "_record_id": allrows["_record_id"].to_numpy()[unborn], "defect": "implausible_date",
                               "column": spec.dob[0]}))
    cp = allrows["_is_copy"].to_numpy()
    extra.append(pd.DataFrame({"_file": files[cp], "_line": lines[cp], "_record_id": allrows["_record_id"].to_numpy()[cp],
                               "defect": "duplicate_row", "column": ""}))
    defects = pd.concat([ident[["_file", "_line", "_record_id", "defect", "column"]], *extra], ignore_index=True)
    defects = defects.rename(columns={"_file": "file", "_line": "line", "_record_id": "record_id"})
    defects.insert(0, "feed", spec.feed)
    defects.insert(0, "partner", spec.partner)
    return truth, defects.sort_values(["file", "line", "defect"], ignore_index=True)


def _born_after_event_or_drop(rows: pd.DataFrame, spec: FeedSpec, drop_dates: np.ndarray) -> np.ndarray:
    """Rows whose written date of birth is after their event date or their drop date (an impossible person)."""
    if not spec.dob[0]:
        return np.zeros(len(rows), dtype=bool)
    col, fmt = spec.dob
    values = rows[col].reset_index(drop=True)
    text = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)  # CSV/JSON text; Excel cells are dates
    dob = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[D]")
    if text.any():
        dob[text] = pd.to_datetime(values[text], format=fmt, errors="coerce").to_numpy().astype("datetime64[D]")
    if (~text).any():
        dob[~text] = pd.to_datetime(values[~text], errors="coerce").to_numpy().astype("datetime64[D]")
    event = rows["_event_date"].to_numpy().astype("datetime64[D]")
    known = ~np.isnat(dob)
    return known & ((dob > event) | (dob > drop_dates.astype("datetime64[D]")))


def _write_file(path: Path, df: pd.DataFrame, spec: FeedSpec, kind: np.ndarray) -> None:
    if spec.type == "excel":
        _write_excel(path, df, spec, kind)
        return
    if spec.type == "jsonl":
        text = df.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
        lines = text.rstrip("\n").split("\n")
        for i in np.flatnonzero(kind == 0):  # a truncated JSON line (the writer died mid-record)
            lines[i] = lines[i][: max(10, len(lines[i]) // 2)]
        data = ("\n".join(lines) + "\n").encode("utf-8").replace(b"\\u0007", b"\xe9")
        path.write_bytes(data)
        return
    buf = io.StringIO()
    df.to_csv(buf, sep=spec.delimiter, index=False, lineterminator=spec.newline, quoting=csv.QUOTE_MINIMAL)
    lines = buf.getvalue()[: -len(spec.newline)].split(spec.newline)
    for j, i in enumerate(np.flatnonzero(kind == 0)):
        line = lines[i + 1]
        lines[i + 1] = line + spec.delimiter + "see notes" if j % 2 == 0 else line.rsplit(spec.delimiter, 1)[0]
    text = spec.newline.join(lines) + spec.newline
    enc = "utf-8" if spec.encoding == "utf-8-sig" else spec.encoding
    data = text.encode(enc, errors="replace")
    # a UTF-8 file gets a stray Latin-1 byte; a Windows-1252 file gets a byte Windows-1252 leaves undefined
    data = data.replace(SENTINEL.encode(), b"\xe9" if enc == "utf-8" else b"\x81")
    if spec.encoding == "utf-8-sig":
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)


def _write_excel(path: Path, df: pd.DataFrame, spec: FeedSpec, kind: np.ndarray) -> None:
    """Excel drop via XlsxWriter: about 20x faster than openpyxl without lxml, and byte-reproducible
    (its zip entry times come from the document's created date, which we fix)."""
    import datetime as dt

    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False,
                                          "strings_to_formulas": False, "strings_to_urls": False})
    wb.set_properties({"created": dt.datetime(2024, 1, 1)})
    ws = wb.add_worksheet(spec.sheet or "Sheet1")
    date_fmt = wb.add_format({"num_format": "dd/mm/yyyy"})
    ws.write_row(0, 0, list(df.columns))
    columns = [df[c].to_numpy(dtype=object) for c in df.columns]
    for i in range(len(df)):
        for j, col in enumerate(columns):
            v = col[i]
            if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
                continue
            if isinstance(v, dt.date):
                ws.write_datetime(i + 1, j, dt.datetime(v.year, v.month, v.day), date_fmt)
            elif isinstance(v, (int, np.integer)):
                ws.write_number(i + 1, j, int(v))
            else:
                ws.write_string(i + 1, j, str(v))
        if kind[i] == 0:  # a value beyond the header: the wrong-column-count defect of a spreadsheet
            ws.write_string(i + 1, len(columns), "see notes")
    wb.close()
