"""The runner: a clean feed passes; each kind of defect is caught by the right expectation with its count;
structure breaks are blocking; samples and Data Docs never show identifiers."""

from __future__ import annotations

import pandas as pd
import pytest

from expectations.runner import validate_dataframe

from .conftest import ae_frame

TODAY = pd.Timestamp("2025-06-01")


def _failed(result, expectation, column=None):
    return [o for o in result.outcomes if not o.success and o.expectation == expectation
            and (column is None or o.column == column)]


def test_clean_feed_passes_every_expectation(suites):
    result = validate_dataframe(ae_frame(), suites["nhs__ae_attendances"], params={"today": TODAY})
    failed = [(o.expectation, o.column, o.error, o.observed_value) for o in result.outcomes if not o.success]
    assert failed == []
    assert result.success and result.passed_blocking and result.rows == 40
    assert result.statistics["evaluated_expectations"] == len(suites["nhs__ae_attendances"].all_expectations)


@pytest.mark.parametrize("defect, mutate, expectation, column", [
    ("invalid_nhs_number", lambda d: d.loc[[1, 7], "nhs_number"].replace(regex={r"9$": "8", r"(\d)$": "9"}),
     "expect_column_values_to_be_in_set", "_nhs_number_valid"),
    ("postcode_no_space", lambda d: d.loc[[2, 3, 5], "postcode"].str.replace(" ", ""),
     "expect_column_values_to_match_regex", "postcode"),
    ("postcode_lowercase", lambda d: d.loc[[2, 3, 5], "postcode"].str.lower(),
     "expect_column_values_to_match_regex", "postcode"),
    ("future_date", lambda d: pd.Series(pd.Timestamp("2030-01-01"), index=[4, 9]).astype("datetime64[us]"),
     "expect_column_values_to_be_between", "date_of_birth"),
    ("invalid_code", lambda d: pd.Series(["7"], index=[0]), "expect_column_values_to_be_in_set", "sex"),
    ("invalid_code", lambda d: pd.Series(["I", "Q"], index=[0, 1]),
     "expect_column_values_to_match_regex", "ethnic_category"),
    ("invalid_code", lambda d: pd.Series([0, 9], index=[0, 1], dtype="int64"),
     "expect_column_values_to_be_between", "acuity"),
])
def test_each_defect_is_caught_by_its_expectation_with_its_count(suites, defect, mutate, expectation, column):
    df = ae_frame()
    target = {"_nhs_number_valid": "nhs_number", "future_date": "date_of_birth"}.get(column, column)
    changed = mutate(df)
    df.loc[changed.index, target] = changed
    result = validate_dataframe(df, suites["nhs__ae_attendances"], params={"today": TODAY})
    hits = _failed(result, expectation, column)
    assert len(hits) == 1, [(o.expectation, o.column) for o in result.outcomes if not o.success]
    assert hits[0].unexpected_count == len(changed)
    assert hits[0].severity == "warn" and defect in hits[0].catches
    assert result.passed_blocking and not result.success
    others = {o.expectation for o in result.warnings} - {expectation}
    # a birth date in the future also puts the attendance before the birth: a second, correct warning
    assert others <= ({"expect_column_pair_values_a_to_be_greater_than_b"} if defect == "future_date" else set())


def test_duplicates_counted_as_surplus_copies(suites):
    df = ae_frame()
    df = pd.concat([df, df.iloc[[3, 8, 8]]], ignore_index=True)
    result = validate_dataframe(df, suites["nhs__ae_attendances"], params={"today": TODAY})
    (hit,) = _failed(result, "expect_column_values_to_be_in_set", "_duplicate_of_earlier")
    assert hit.unexpected_count == 3


def test_missing_nhs_numbers_warn_only_beyond_the_expected_share(suites):
    df = ae_frame()
    df.loc[:3, "nhs_number"] = None  # 10%: expected for A&E
    result = validate_dataframe(df, suites["nhs__ae_attendances"], params={"today": TODAY})
    assert not _failed(result, "expect_column_values_to_not_be_null", "nhs_number")
    df.loc[:15, "nhs_number"] = None  # 40%: a broken extract
    result = validate_dataframe(df, suites["nhs__ae_attendances"], params={"today": TODAY})
    (hit,) = _failed(result, "expect_column_values_to_not_be_null", "nhs_number")
    assert hit.unexpected_count == 16 and hit.severity == "warn"


@pytest.mark.parametrize("breakage, expectation", [
    (lambda d: d.drop(columns=["arrival_datetime"]), "expect_column_to_exist"),
    (lambda d: d.assign(acuity=d["acuity"].astype(str)), "expect_column_values_to_be_in_type_list"),
    (lambda d: d.assign(date_of_birth=d["date_of_birth"].dt.strftime("%d/%m/%Y")),
     "expect_column_values_to_be_in_type_list"),
    (lambda d: d.iloc[0:0], "expect_table_row_count_to_be_between"),
    (lambda d: d.assign(_record_id=None), "expect_column_values_to_not_be_null"),
])
def test_structural_breaks_are_blocking(suites, breakage, expectation):
    result = validate_dataframe(breakage(ae_frame()), suites["nhs__ae_attendances"], params={"today": TODAY})
    assert not result.passed_blocking
    assert expectation in {o.expectation for o in result.blocking_failures}


def test_volume_outside_recent_months_warns(suites):
    spec = suites["nhs__ae_attendances"]
    ok = validate_dataframe(ae_frame(), spec, params={"today": TODAY, "volume_min": 20, "volume_max": 80})
    assert not _failed(ok, "expect_table_row_count_to_be_between")
    low = validate_dataframe(ae_frame(), spec, params={"today": TODAY, "volume_min": 100, "volume_max": 400})
    (hit,) = _failed(low, "expect_table_row_count_to_be_between")
    assert hit.severity == "warn" and hit.observed_value == 40 and low.passed_blocking


def test_samples_and_data_docs_are_masked(suites, tmp_path):
    df = ae_frame()
    df.loc[[1, 2, 4], "postcode"] = ["sh1 2ab", "SH12AB", "SH12AB"]
    df.loc[3, "date_of_birth"] = pd.Timestamp("2031-02-03")
    df.loc[5, "nhs_number"] = "943 476 5918"
    result = validate_dataframe(df, suites["nhs__ae_attendances"], params={"today": TODAY},
                                quality_dir=tmp_path / "quality")
    (pc,) = _failed(result, "expect_column_values_to_match_regex", "postcode")
    assert [s["postcode"] for s in pc.sample] == ["sh1 ***", "S*****", "S*****"]
    assert {"_record_id", "_source_file", "_line"} <= set(pc.sample[0])
    assert result.docs_path and result.docs_path.startswith("file://")
    html = pd.io.common.urlopen(result.docs_path).read().decode()
    assert "expect_column_values_to_match_regex" in html or "match" in html
    for f in (tmp_path / "quality").rglob("*"):
        if f.suffix in (".html", ".json"):
            text = f.read_text(errors="ignore")
            for secret in ("sh1 2ab", "SH12AB", "2031-02-03", "943 476 5918", "Smith"):
                assert secret not in text, f"{secret} leaked into {f}"


@pytest.mark.parametrize("bad_birth", ["0199-03-01", "2030-01-01"])
def test_date_checks_agree_whether_or_not_the_column_fits_nanoseconds(suites, bad_birth):
    """Dates reach GX at nanosecond resolution (its vectorised comparison) unless a value cannot be held so
    (year 0199, a typo): then the column keeps DuckDB's microseconds and is still checked, with the same verdict."""
    import duckdb

    df = ae_frame()
    births = duckdb.sql(f"SELECT unnest([DATE '{bad_birth}', DATE '1980-05-06']) AS d").df()["d"]
    assert births.dtype == "datetime64[us]"
    df["date_of_birth"] = df["date_of_birth"].astype("datetime64[us]")
    df.loc[[4, 9], "date_of_birth"] = births.iloc[0]
    result = validate_dataframe(df, suites["nhs__ae_attendances"], params={"today": TODAY})
    (hit,) = _failed(result, "expect_column_values_to_be_between", "date_of_birth")
    assert hit.unexpected_count == 2 and hit.error is None


def test_the_data_docs_index_lists_only_the_latest_results(suites, tmp_path, monkeypatch):
    """The index is rebuilt after every validation; it reads only the latest DOCS_INDEX_LIMIT results (GX reads
    every stored result otherwise), while every result keeps its own page."""
    import re

    from expectations import runner

    monkeypatch.setattr(runner, "DOCS_INDEX_LIMIT", 2)
    for month in ("2025-01-01", "2025-02-01", "2025-03-01"):
        validate_dataframe(ae_frame(), suites["nhs__ae_attendances"], params={"today": TODAY},
                           quality_dir=tmp_path / "quality", partition=month)
    index = (tmp_path / "quality" / "docs" / "index.html").read_text()
    listed = set(re.findall(r"validations/nhs__ae_attendances/(2025-0\d-01)/", index))
    assert listed == {"2025-02-01", "2025-03-01"}
    pages = {p.parent.parent.name for p in (tmp_path / "quality" / "docs" / "validations").rglob("*.html")}
    assert {"2025-01-01", "2025-02-01", "2025-03-01"} <= pages


def test_checks_can_leave_the_index_to_one_rebuild_after_them(suites, tmp_path):
    """The nightly's per-feed checks write their own pages but not the index (which re-reads up to
    DOCS_INDEX_LIMIT stored results each time); one build_docs_index afterwards lists them all."""
    import re

    from expectations.runner import build_docs_index

    quality = tmp_path / "quality"
    assert build_docs_index(quality) is None  # nothing validated yet
    first = validate_dataframe(ae_frame(), suites["nhs__ae_attendances"], params={"today": TODAY},
                               quality_dir=quality, partition="2025-01-01")
    index = quality / "docs" / "index.html"
    before = index.read_text()
    later = [validate_dataframe(ae_frame(), suites["nhs__ae_attendances"], params={"today": TODAY},
                                quality_dir=quality, partition=month, docs_index=False)
             for month in ("2025-02-01", "2025-03-01")]

    assert index.read_text() == before  # the index was left alone
    assert all(pd.io.common.urlopen(r.docs_path).read() for r in later)  # each page was written
    url = build_docs_index(quality)

    assert url and url.endswith("index.html") and first.docs_path
    listed = set(re.findall(r"validations/nhs__ae_attendances/(2025-0\d-01)/", index.read_text()))
    assert listed == {"2025-01-01", "2025-02-01", "2025-03-01"}
