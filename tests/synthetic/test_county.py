"""The synthetic county: invariants, distributions, defect rates and ground-truth coverage."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from orchestration.lib.synthetic import FEEDS, nhs_check_digit, nhs_number_is_valid
from orchestration.lib.synthetic.feeds import SPECS
from orchestration.lib.synthetic.identifiers import make_nhs_numbers

UK_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][ABD-HJLNP-UW-Z]{2}$")


def _physical_rows(path, spec) -> int:
    """Data rows in a landing file, counted the way a loader sees them (lines, or sheet rows)."""
    if spec.type == "excel":
        from python_calamine import CalamineWorkbook

        return len(CalamineWorkbook.from_path(str(path)).get_sheet_by_name(spec.sheet).to_python()) - 1
    n = path.read_bytes().count(b"\n")
    return n if spec.type == "jsonl" else n - 1


def test_nhs_check_digit_matches_the_published_example():
    # 943 476 5919 is the NHS Data Dictionary's worked example
    assert nhs_check_digit(np.array([943476591]))[0] == 9
    assert nhs_number_is_valid(["943 476 5919", "9434765918", "12345", None]).tolist() == [True, False, False, False]
    numbers = make_nhs_numbers(np.random.default_rng(3), 50_000)
    assert len(np.unique(numbers)) == 50_000
    assert nhs_number_is_valid([str(n) for n in numbers[:2000]]).all()


def test_geography_postcodes_are_valid_and_map_to_one_lsoa(small_county):
    ref = small_county / "reference"
    postcodes = pd.read_csv(ref / "postcodes.csv")
    gazetteer = pd.read_csv(ref / "gazetteer.csv")
    lsoas = pd.read_csv(ref / "lsoas.csv")
    assert postcodes["postcode"].str.match(UK_POSTCODE).all()
    assert postcodes["postcode"].is_unique
    # every gazetteer postcode is in the directory and all its properties share the directory's LSOA
    per_pc = gazetteer.groupby("postcode")["lsoa_code"].nunique()
    assert (per_pc == 1).all()
    joined = gazetteer.merge(postcodes, on="postcode", suffixes=("", "_dir"), how="left")
    assert joined["lsoa_code_dir"].notna().all()
    assert (joined["lsoa_code"] == joined["lsoa_code_dir"]).all()
    assert gazetteer["uprn"].is_unique
    assert lsoas["lsoa_code"].str.match(r"^E01\d{6}$").all()
    assert lsoas["lsoa_name"].str.match(r"^.+ \d{3}[A-H]$").all()
    assert lsoas["imd_decile"].between(1, 10).all() and lsoas["imd_decile"].nunique() >= 4
    assert 17_000 <= lsoas["population"].sum() <= 23_000
    assert set(lsoas["district_code"]) == set(pd.read_csv(ref / "districts.csv")["district_code"])
    assert len(pd.read_csv(ref / "districts.csv")) == 12


def test_population_is_plausible(small_county):
    people = pd.read_parquet(small_county / "truth" / "people.parquet")
    assert 18_000 <= len(people) <= 23_000
    assert people["person_id"].is_unique and people["nhs_number"].is_unique
    assert nhs_number_is_valid(people["nhs_number"].tolist()).all()
    assert 0.45 < (people["sex"] == "F").mean() < 0.55
    groups = people["ethnicity_group"].value_counts(normalize=True)
    assert 0.75 < groups["White"] < 0.95 and {"Asian", "Black", "Mixed", "Other"} <= set(groups.index)
    # names are varied: no single given name is more than 3% of people
    assert people["given_name"].value_counts(normalize=True).iloc[0] < 0.03
    assert (people["born_month"] >= 0).sum() > 100 and (people["died_month"] < 24).sum() > 50
    residence = pd.read_parquet(small_county / "truth" / "residence.parquet")
    movers = residence.groupby("person_id").size()
    assert (movers > 1).mean() > 0.05, "people move house over 24 months"


def test_truth_covers_every_landing_row_and_never_lives_in_landing(small_county):
    records = pd.read_parquet(small_county / "truth" / "records.parquet")
    assert not list((small_county / "landing").rglob("*.parquet"))
    assert set(records["partner"] + "/" + records["feed"]) == set(FEEDS)
    for key in FEEDS:
        spec = SPECS[key]
        files = sorted((small_county / "landing" / spec.partner / spec.feed).glob(f"*.{spec.ext}"))
        assert files, key
        feed_truth = records[(records["partner"] == spec.partner) & (records["feed"] == spec.feed)]
        by_file = feed_truth.groupby("file")["line"].agg(["count", "min", "max"])
        for path in files:
            rel = str(path.relative_to(small_county))
            expected = _physical_rows(path, spec)
            first = 1 if spec.type == "jsonl" else 2
            assert by_file.loc[rel, "count"] == expected, rel
            assert (by_file.loc[rel, "min"], by_file.loc[rel, "max"]) == (first, first + expected - 1), rel
        assert re.match(r"^\d{4}-\d{2}-0[1-7]$", files[0].stem)
    # the drop falls in the month after the event, or later for late records
    drop_month = records["drop_date"].dt.to_period("M")
    event_month = records["event_date"].dt.to_period("M")
    lag = (drop_month - event_month).apply(lambda x: x.n)
    assert (lag >= 1).all() and (lag <= 4).all()
    assert records.loc[records["partner"] != "police", "person_id"].notna().all()


def test_defect_rates_are_within_tolerance_of_the_configured_rates(small_county):
    config = json.loads((small_county / "truth" / "config.json").read_text())["defect_rates"]
    records = pd.read_parquet(small_county / "truth" / "records.parquet")
    defects = pd.read_parquet(small_county / "truth" / "defects.parquet")
    originals = records[records["duplicate_of"].isna()]
    people_feeds = originals[originals["person_id"].notna()]

    def observed(defect: str, base: pd.DataFrame, column: str | None = None) -> float:
        d = defects[(defects["defect"] == defect) & defects["file"].isin(base["file"])]
        if column:
            d = d[d["column"] == column]
        d = d.merge(base[["file", "line"]], on=["file", "line"])
        return len(d.drop_duplicates(["file", "line"])) / len(base)

    def close(obs: float, rate: float, n: int) -> bool:
        return abs(obs - rate) <= 4 * np.sqrt(rate * (1 - rate) / n) + 0.002

    n = len(originals)
    assert close(len(records[records["duplicate_of"].notna()]) / n, config["duplicate_row"], n)
    assert close(observed("late_record", originals), config["late_record"], n)
    pc_feeds = people_feeds[~people_feeds["feed"].isin([])]
    assert close(observed("postcode_no_space", pc_feeds), config["postcode_no_space"], len(pc_feeds))
    with_surname = people_feeds[people_feeds["feed"] != "food_bank_referrals"]
    assert close(observed("typo_family_name", with_surname), config["typo_family_name"], len(with_surname))
    ae = originals[originals["feed"] == "ae_attendances"]
    assert close(observed("missing_field", ae, "nhs"), config["missing_nhs_number"], len(ae))
    malformed = observed("wrong_column_count", originals) + observed("impossible_date", originals)
    assert 0 < malformed < 0.01
    assert set(defects["defect"]) >= {"nickname", "name_swap", "dob_day_month_swap", "postcode_lowercase",
                                      "postcode_one_char_wrong", "surname_hyphenated", "address_missing_town",
                                      "invalid_nhs_number", "bad_encoding", "duplicate_row", "late_record"}


def test_nhs_numbers_in_ae_are_valid_unless_a_defect_was_injected(small_county):
    records = pd.read_parquet(small_county / "truth" / "records.parquet")
    defects = pd.read_parquet(small_county / "truth" / "defects.parquet")
    rows = []
    for path in sorted((small_county / "landing" / "nhs" / "ae_attendances").glob("*.jsonl")):
        for i, raw in enumerate(path.read_bytes().split(b"\n")[:-1], start=1):
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            rows.append((str(path.relative_to(small_county)), i, rec["nhs_number"]))
    ae = pd.DataFrame(rows, columns=["file", "line", "nhs_number"]).dropna()
    ae["valid"] = nhs_number_is_valid(ae["nhs_number"].tolist())
    bad = defects[defects["defect"] == "invalid_nhs_number"][["file", "line"]].assign(flagged=True)
    ae = ae.merge(bad, on=["file", "line"], how="left")
    assert (ae["valid"] == ae["flagged"].isna()).all()
    assert (~ae["valid"]).sum() > 0
    assert len(records) > 0


def test_malformed_rows_are_really_malformed(small_county):
    defects = pd.read_parquet(small_county / "truth" / "defects.parquet")
    checked = 0
    for _, d in defects[defects["defect"].isin(["bad_encoding", "wrong_column_count"])].iterrows():
        spec = SPECS[f"{d['partner']}/{d['feed']}"]
        if spec.type != "csv":
            continue
        raw = (small_county / d["file"]).read_bytes().split(spec.newline.encode())[d["line"] - 1]
        if d["defect"] == "bad_encoding":
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8" if spec.encoding.startswith("utf") else spec.encoding)
        else:
            header = (small_county / d["file"]).read_bytes().split(spec.newline.encode())[0]
            enc = "utf-8-sig" if spec.encoding.startswith("utf") else spec.encoding
            import csv

            fields = next(csv.reader([raw.decode(enc, errors="replace")], delimiter=spec.delimiter))
            n_header = len(next(csv.reader([header.decode(enc)], delimiter=spec.delimiter)))
            assert len(fields) != n_header
        checked += 1
    assert checked > 5


def test_formats_and_encodings_match_the_architecture(small_county):
    landing = small_county / "landing"
    homeless = next((landing / "district_councils" / "homelessness_presentations").glob("*.csv")).read_bytes()
    assert homeless.startswith(b"\xef\xbb\xbf")
    crimes = next((landing / "police" / "street_crimes").glob("*.csv")).read_bytes().split(b"\n")[0].decode()
    assert crimes == ("Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
                      "Crime type,Last outcome category,Context")
    from python_calamine import CalamineWorkbook

    wb = CalamineWorkbook.from_path(str(next((landing / "county_council" / "social_care_referrals").glob("*.xlsx"))))
    assert wb.sheet_names == ["Referrals"]
    assert wb.get_sheet_by_name("Referrals").to_python()[0][:3] == ["Referral ID", "Referral Date", "Child First Name"]
    school = next((landing / "county_council" / "school_attendance").glob("*.csv")).read_bytes().split(b"\n")[0].decode()
    assert school.startswith("upn;school_urn;")
    fire = next((landing / "fire" / "safe_and_well_visits").glob("*.csv")).read_bytes().split(b"\n")[0].decode()
    assert fire.split("\t")[0] == "VisitID"


def test_need_gives_learnable_cross_agency_signal(small_county):
    """Households known to other agencies in year one present as homeless far more often in year two."""
    records = pd.read_parquet(small_county / "truth" / "records.parquet")
    rec = records[records["household_id"].notna() & records["duplicate_of"].isna()]
    first = rec[rec["event_date"] < "2025-11-01"]
    later = rec[rec["event_date"] >= "2025-11-01"]
    other = first[~first["feed"].isin(["homelessness_presentations", "school_attendance", "ae_attendances"])]
    agencies = other.groupby("household_id")["partner"].nunique()
    known = set(agencies[agencies >= 2].index)
    homeless = set(later.loc[later["feed"] == "homelessness_presentations", "household_id"])
    households = set(pd.read_parquet(small_county / "truth" / "household_need.parquet")["household_id"])
    rate_known = len(homeless & known) / max(1, len(known))
    rate_rest = len(homeless - known) / max(1, len(households - known))
    assert rate_known > 4 * rate_rest, (rate_known, rate_rest)
    # and deprived areas have more street crime per resident
    lsoas = pd.read_csv(small_county / "reference" / "lsoas.csv")
    crimes = records[records["feed"] == "street_crimes"].groupby("lsoa_code").size()
    lsoas["rate"] = crimes.reindex(lsoas["lsoa_code"]).fillna(0).to_numpy() / lsoas["population"]
    assert lsoas[["rate", "imd_score"]].corr(method="spearman").iloc[0, 1] > 0.3
