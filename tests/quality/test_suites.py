"""Suites as data: they load, every expectation names a real GX expectation, and the rules GX cannot
express (NHS check digit, duplicate copies) are derived correctly."""

from __future__ import annotations

import pandas as pd
import pytest

from expectations.runner import mask_value
from expectations.suite import (
    SEVERITIES,
    build_gx_suite,
    duplicate_of_earlier,
    load_suite,
    load_suites,
    nhs_number_valid,
)
from orchestration.lib.errors import PlacelinkError

from .conftest import valid_nhs


def test_every_suite_builds_into_a_gx_suite_with_explicit_severities(suites):
    assert {s.name for s in suites.values() if s.kind == "feed"} >= {
        "police__street_crimes", "police__person_records", "county_council__social_care_referrals",
        "county_council__school_attendance", "district_councils__homelessness_presentations",
        "district_councils__asb_complaints", "nhs__ae_attendances", "voluntary__food_bank_referrals",
        "fire__safe_and_well_visits"}
    for spec in suites.values():
        gx_suite = build_gx_suite(spec, {})
        assert len(gx_suite.expectations) == len(spec.all_expectations)
        assert all(e.meta["severity"] in SEVERITIES for e in gx_suite.expectations)
        # structure is always blocking; at least one soft rule exists to warn with
        assert any(e.meta["severity"] == "warn" for e in gx_suite.expectations), spec.name


def test_feed_suites_use_the_ingest_column_rule():
    from orchestration.lib.contracts import snake_case

    for spec in load_suites("feed"):
        for column in spec.columns:
            assert column == snake_case(column) or column.startswith("_"), (spec.name, column)


def test_feed_suites_match_the_contracts_when_present():
    """Every loaded contract column has the same type in the suite, and every contract feed has a suite."""
    from orchestration.lib.contracts import load_contracts

    suites = {s.name: s for s in load_suites("feed")}
    for feed in load_contracts().feeds():
        assert feed.name in suites, f"contract feed {feed.name} has no suite in expectations/suites"
        spec = suites[feed.name]
        loaded = {c.sql_name: c.type for c in feed.loaded_columns}
        declared = {k: v for k, v in spec.columns.items() if not k.startswith("_")}
        assert declared == loaded, feed.name
        direct = {c.sql_name for c in feed.loaded_columns if c.identifier == "direct"}
        assert direct <= set(spec.identifiers), f"{feed.name}: identifiers not masked: {direct - set(spec.identifiers)}"


def test_nhs_check_digit():
    good = [valid_nhs(i) for i in range(20)] + ["9434765919", "943-476-5919"]
    assert nhs_number_valid(pd.Series(good)).tolist() == [True] * len(good)
    # one digit changed always breaks modulus 11
    bad = ["943 476 5918", "943 476 5929", "12345", "94347659190", "ABC 476 5919"]
    assert nhs_number_valid(pd.Series(bad)).tolist() == [False] * len(bad)
    assert nhs_number_valid(pd.Series([None], dtype=object)).tolist() == [None]


def test_duplicate_of_earlier_counts_surplus_copies_only():
    df = pd.DataFrame({"_record_id": ["a", "b", "a", "a", "c"]})
    assert duplicate_of_earlier(df, ["_record_id"]).tolist() == [False, False, True, True, False]


def test_mask_value_keeps_shape_not_content():
    assert mask_value("Smith") == "S****"
    assert mask_value("943 476 5919") == "9** *** ****"
    assert mask_value("SH12 3CD") == "SH12 ***"
    assert mask_value(pd.Timestamp("1980-05-06")) == "1980-**-**"
    assert mask_value(None) is None


def test_bad_suite_files_fail_with_where_and_fix(tmp_path):
    path = tmp_path / "x.yml"
    path.write_text("suite: x\nkind: feed\nasset: raw/x\ndatabase: identifiable\ntable: raw.x\n"
                    "columns: {a: text}\n")
    with pytest.raises(PlacelinkError, match=r"x.yml: columns.a: unknown type 'text'"):
        load_suite(path)
    path.write_text("suite: x\nkind: feed\nasset: raw/x\ndatabase: identifiable\ntable: raw.x\n"
                    "expectations:\n  - {expect: expect_column_values_to_not_be_null, column: a}\n")
    with pytest.raises(PlacelinkError, match="severity None is not one of"):
        load_suite(path)
    path.write_text("suite: x\nkind: feed\nasset: raw/x\ndatabase: identifiable\ntable: raw.x\n"
                    "expectations:\n  - {expect: expect_column_to_be_lovely, column: a, severity: warn}\n")
    with pytest.raises(PlacelinkError, match="GX has no expectation 'expect_column_to_be_lovely'"):
        build_gx_suite(load_suite(path), {})


def test_a_feed_suite_takes_its_header_from_the_contract_and_a_contradicting_copy_is_refused(tmp_path):
    """The contract is the one place that says what a feed's raw table holds; a suite that restates it wrongly
    (a column the agreement drops, another record id) is refused, naming the key and the fix."""
    from orchestration.lib.contracts import load_contracts

    feeds = {(f.partner, f.id): f for f in load_contracts().feeds()}
    for spec in load_suites(kind="feed"):
        feed = feeds[(spec.partner, spec.feed)]
        assert spec.table == feed.table and spec.asset == f"raw/{feed.name}"
        assert {k: v for k, v in spec.columns.items() if not k.startswith("_")} == {
            c.sql_name: c.type for c in feed.loaded_columns}
    police = load_suite(next(p for p in load_suites(kind="feed") if p.name == "police__person_records").path)
    assert "notes" not in police.columns  # dropped at ingest: the agreement does not share it
    header = "suite: x\nkind: feed\npartner: police\nfeed: person_records\n"
    for wrong in ("columns: {record_ref: string, notes: string}", "record_id: person_ref", "table: raw.other"):
        path = tmp_path / "x.yml"
        path.write_text(header + wrong + "\nexpectations: []\n")
        with pytest.raises(PlacelinkError) as refused:
            load_suite(path)
        key = wrong.split(":")[0]
        assert f"suite header '{key}' disagrees with the feed's contract" in str(refused.value)
        assert refused.value.where.endswith(f": {key}") and "remove" in refused.value.fix
    path.write_text(header + "record_id: [record_ref]\nexpectations: []\n")  # a true copy is accepted
    assert load_suite(path).record_id == ("record_ref",)
