"""The synthetic county's injected defects are caught by the right expectations, at their injected rates.

For each loaded feed of ``ingested_county`` (the small county, every drop ingested) we validate the whole
raw table and compare the rows each expectation flags with the rows ``truth/defects.parquet`` says were
corrupted (matched on file and line; rows that ingest quarantined never reach the table).
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from expectations.runner import validate_dataframe
from expectations.suite import load_suites
from orchestration.lib.contracts import load_contracts, snake_case

pytestmark = pytest.mark.slow

TODAY = pd.Timestamp("2027-01-01")  # after the generated period: no false "future date" flags

# (defects, expectation, suite column or the person-mapping field whose column it is)
CASES = [
    ({"postcode_no_space", "postcode_lowercase"}, "expect_column_values_to_match_regex", "postcode"),
    ({"invalid_nhs_number"}, "expect_column_values_to_be_in_set", "_nhs_number_valid"),
    ({"duplicate_row"}, "expect_column_values_to_be_in_set", "_duplicate_of_earlier"),
    ({"missing_field"}, "expect_column_values_to_not_be_null", "date_of_birth"),
    ({"missing_field"}, "expect_column_values_to_not_be_null", "postcode"),
    ({"missing_field"}, "expect_column_values_to_not_be_null", "nhs_number"),
]
#: defects.parquet names the person field, not the raw column
DEFECT_FIELD = {"postcode": "postcode", "date_of_birth": "dob", "nhs_number": "nhs"}


@pytest.fixture(scope="module")
def county_results(ingested_county):
    """Validate every raw feed once; keep the frame so flagged positions map back to (file, line)."""
    out = {}
    with duckdb.connect(str(ingested_county / "identifiable.duckdb"), read_only=True) as con:
        for spec in load_suites("feed"):
            df = con.execute(f"SELECT * FROM {spec.table} ORDER BY _source_file, _line").df()
            out[spec.name] = (df, validate_dataframe(df, spec, params={"today": TODAY}))
    defects = pd.read_parquet(ingested_county / "truth" / "defects.parquet")
    return out, defects


def _column(feed, field: str) -> str | None:
    if field.startswith("_"):
        return field
    native = getattr(feed.person, field, None) if feed.person else None
    return snake_case(native) if native else None


def test_every_feed_loads_with_intact_structure(county_results):
    results, _ = county_results
    assert len(results) == 9
    for name, (_df, result) in results.items():
        assert result.passed_blocking, (name, [(o.expectation, o.column, o.observed_value, o.error)
                                               for o in result.blocking_failures])
        assert result.rows > 0


def test_injected_defects_are_caught_by_the_right_expectation(county_results):
    results, defects = county_results
    checked = 0
    for feed in load_contracts().feeds():
        df, result = results[feed.name]
        loaded = set(zip(df["_source_file"], df["_line"], strict=True))
        for kinds, expectation, field in CASES:
            column = _column(feed, field)
            outcomes = [o for o in result.outcomes if o.expectation == expectation and o.column == column]
            if column is None or not outcomes:
                continue
            (outcome,) = outcomes
            truth = defects[(defects["partner"] == feed.partner) & (defects["feed"] == feed.id)
                            & defects["defect"].isin(kinds)]
            if not field.startswith("_"):
                truth = truth[truth["column"] == DEFECT_FIELD[field]]
            injected = {(f, int(n)) for f, n in zip(truth["file"], truth["line"], strict=True)} & loaded
            flagged = {(df.at[i, "_source_file"], int(df.at[i, "_line"])) for i in outcome.unexpected_index}
            label = f"{feed.name} {sorted(kinds)} -> {expectation}({column})"
            assert outcome.unexpected_count == len(flagged), label
            if not injected:
                assert not flagged, f"{label}: flags {len(flagged)} rows but none were injected"
                continue
            recall = len(injected & flagged) / len(injected)
            precision = len(injected & flagged) / len(flagged)
            assert recall >= 0.97 and precision >= 0.97, f"{label}: recall {recall:.3f} precision {precision:.3f}"
            checked += 1
    assert checked >= 15  # postcodes, DOBs, NHS numbers and duplicates across the person feeds


def test_flagged_rates_match_the_configured_rates(county_results, ingested_county):
    """At about their injected rates (truth/config.json), on the largest person feed (A&E)."""
    import json

    rates = json.loads((ingested_county / "truth" / "config.json").read_text())["defect_rates"]
    results, _ = county_results
    _, result = results["nhs__ae_attendances"]
    flagged = {(o.expectation, o.column): (o.unexpected_count or 0) / result.rows for o in result.outcomes}
    postcode_format = rates["postcode_no_space"] + rates["postcode_lowercase"]
    assert flagged[("expect_column_values_to_match_regex", "postcode")] == pytest.approx(postcode_format, rel=0.25)
    # invalid NHS numbers are drawn among the ~90% present
    nhs_invalid = rates["invalid_nhs_number"] * (1 - rates["missing_nhs_number"])
    assert flagged[("expect_column_values_to_be_in_set", "_nhs_number_valid")] == pytest.approx(nhs_invalid, rel=0.5)
    assert flagged[("expect_column_values_to_not_be_null", "nhs_number")] == pytest.approx(
        rates["missing_nhs_number"], rel=0.25)
    assert flagged[("expect_column_values_to_be_in_set", "_duplicate_of_earlier")] == pytest.approx(
        rates["duplicate_row"], rel=0.5)


def test_impossible_dates_end_in_quarantine_and_the_scorecard_counts_them(ingested_county, tmp_path):
    from orchestration.lib.quality import build_feed_scorecard

    defects = pd.read_parquet(ingested_county / "truth" / "defects.parquet")
    with duckdb.connect(str(ingested_county / "identifiable.duckdb"), read_only=True) as idz, \
            duckdb.connect(str(tmp_path / "warehouse.duckdb")) as wh:
        quarantined = idz.execute("SELECT partner, feed, count(*) FROM ops.quarantine "
                                  "WHERE reason LIKE 'invalid_date%' GROUP BY ALL").fetchall()
        card = build_feed_scorecard(idz, wh, partner="nhs", today=TODAY)
    injected = defects[defects["defect"] == "impossible_date"].groupby(["partner", "feed"]).size()
    for partner, feed, n in quarantined:
        assert n == injected.get((partner, feed), 0), (partner, feed)
    assert set(card["feed"]) == {"ae_attendances"}
    total = card[["rows_received", "rows_quarantined"]].sum()
    assert (card["quarantine_rate"].dropna() <= 1).all()
    assert card["rows_quarantined"].sum() == total["rows_quarantined"] > 0
    # no-space and lower-case postcodes (~8%) are the main invalid values of A&E
    assert card["validity"].mean() == pytest.approx(0.91, abs=0.04)
    assert card["duplicate_rate"].mean() == pytest.approx(0.01, abs=0.006)
    assert card["timeliness"].mean() == pytest.approx(0.97, abs=0.03)
