"""The per-partner scorecard: each measure moves with the defect it measures; only aggregates reach the
warehouse."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from orchestration.lib.quality import build_feed_scorecard, feed_suite, validate_suite, volume_bounds

TODAY = pd.Timestamp("2025-06-01")


def test_scorecard_measures_each_defect_per_month(ae_db, tmp_path):
    # March: 4 rows late (event 3 months before the drop), 2 invalid postcodes, 1 surplus duplicate,
    # and 4 missing NHS numbers (completeness).
    ae_db.execute("""UPDATE raw.nhs__ae_attendances SET arrival_datetime = TIMESTAMP '2024-12-10 10:00'
                     WHERE "_partition" = DATE '2025-03-01' AND _line IN (1, 2, 3, 4)""")
    ae_db.execute("""UPDATE raw.nhs__ae_attendances SET postcode = replace(postcode, ' ', '')
                     WHERE "_partition" = DATE '2025-03-01' AND _line IN (5, 6)""")
    ae_db.execute("""UPDATE raw.nhs__ae_attendances SET nhs_number = NULL
                     WHERE "_partition" = DATE '2025-03-01' AND _line IN (7, 8, 9, 10)""")
    ae_db.execute("""INSERT INTO raw.nhs__ae_attendances SELECT * REPLACE (41 AS _line)
                     FROM raw.nhs__ae_attendances WHERE "_partition" = DATE '2025-03-01' AND _line = 20""")
    wh = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    card = build_feed_scorecard(ae_db, wh, today=TODAY).set_index("month")
    march, feb = card.loc[pd.Timestamp("2025-03-01").date()], card.loc[pd.Timestamp("2025-02-01").date()]

    assert feb["rows_loaded"] == 40 and march["rows_loaded"] == 41
    assert feb["timeliness"] == 1.0 and march["timeliness"] == pytest.approx(37 / 41)
    assert feb["validity"] == 1.0 and march["validity"] == pytest.approx(39 / 41)
    assert feb["duplicate_rate"] == 0 and march["duplicate_rate"] == pytest.approx(1 / 41)
    assert feb["completeness"] == 1.0 and march["completeness"] == pytest.approx(1 - 4 / (41 * 13))
    assert feb["quarantine_rate"] == pytest.approx(2 / 42)
    assert feb["address_match_rate"] == pytest.approx(30 / 40)   # every 4th line unmatched
    assert feb["person_linked_rate"] == pytest.approx(10 / 40)   # lines 1-10 also known to the police
    assert feb["median_lag_days"] > 0

    stored = wh.execute("SELECT * FROM quality.feed_scorecard").df()
    assert len(stored) == 4 and set(stored["partner"]) == {"nhs"}
    # aggregates only: nothing that looks like a record, a name or an identifier
    assert not {"record_id", "_record_id", "nhs_number", "postcode", "forename"} & set(stored.columns)
    wh.close()


def test_volume_bounds_follow_recent_months(ae_db):
    assert volume_bounds(ae_db, "nhs", "ae_attendances", "2025-02-01") == (1, None)  # too little history
    assert volume_bounds(ae_db, "nhs", "ae_attendances", "2025-04-01") == (20, 80)   # median 40 -> x0.5..x2


def test_validate_suite_reads_one_partition_and_builds_docs(ae_db, tmp_path):
    from orchestration.lib.config import get_settings

    settings = get_settings(home=tmp_path / "home")
    ae_db.execute("""DELETE FROM raw.nhs__ae_attendances WHERE "_partition" = DATE '2025-04-01' AND _line > 10""")
    result = validate_suite(ae_db, feed_suite("nhs", "ae_attendances"), partition="2025-04-01",
                            settings=settings, today=TODAY)
    assert result.rows == 10 and result.passed_blocking
    # 10 rows against a median of 40 earlier rows: an implausible month
    assert [o.expectation for o in result.warnings] == ["expect_table_row_count_to_be_between"]
    assert result.docs_path.startswith(f"file://{settings.quality_dir}")
    assert (settings.quality_dir / "docs" / "index.html").exists()


def _measures(card: pd.DataFrame) -> pd.DataFrame:
    return card.drop(columns=["scored_at"]).sort_values("month").reset_index(drop=True)


def test_a_new_drop_is_the_only_month_validated_again_and_scores_as_a_full_rescore_would(ae_db, tmp_path):
    wh = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    first = build_feed_scorecard(ae_db, wh, today=TODAY)
    assert first.attrs["months_rescored"] == 4
    scored_at = first.set_index("month")["scored_at"]

    # a fifth drop: 40 rows, 3 of them copies of records first loaded in February (surplus duplicates)
    ae_db.execute("""INSERT INTO raw.nhs__ae_attendances SELECT * REPLACE (DATE '2025-05-01' AS "_partition",
                     'M4-' || _record_id AS _record_id, now()::TIMESTAMP AS _loaded_at)
                     FROM raw.nhs__ae_attendances WHERE "_partition" = DATE '2025-04-01'""")
    ae_db.execute("""UPDATE raw.nhs__ae_attendances SET _record_id = 'M1-' || split_part(_record_id, '-', 3)
                     WHERE "_partition" = DATE '2025-05-01' AND _line IN (1, 2, 3)""")
    nightly = build_feed_scorecard(ae_db, wh, today=TODAY)
    assert nightly.attrs["months_rescored"] == 1
    may = nightly.set_index("month").loc[pd.Timestamp("2025-05-01").date()]
    assert may["rows_loaded"] == 40 and may["duplicate_rate"] == pytest.approx(3 / 40)
    # the earlier months were kept as scored, not validated again
    kept = nightly.set_index("month")["scored_at"]
    assert all(kept[m] == scored_at[m] for m in scored_at.index)
    # and the result is what scoring every month from scratch gives
    full = build_feed_scorecard(ae_db, wh, today=TODAY, rescore_all=True)
    assert full.attrs["months_rescored"] == 5
    pd.testing.assert_frame_equal(_measures(nightly), _measures(full))
    wh.close()


def test_a_corrected_drop_or_changed_rules_rescore_that_month_and_every_later_one(ae_db, tmp_path):
    wh = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    build_feed_scorecard(ae_db, wh, today=TODAY)
    assert build_feed_scorecard(ae_db, wh, today=TODAY).attrs["months_rescored"] == 0

    # February re-delivered with two bad postcodes: February, March and April are validated again
    ae_db.execute("""UPDATE raw.nhs__ae_attendances SET postcode = lower(postcode), _loaded_at = now()::TIMESTAMP
                     WHERE "_partition" = DATE '2025-02-01' AND _line IN (1, 2)""")
    card = build_feed_scorecard(ae_db, wh, today=TODAY)
    assert card.attrs["months_rescored"] == 3
    assert card.set_index("month").loc[pd.Timestamp("2025-02-01").date(), "validity"] == pytest.approx(38 / 40)

    # months scored under another version of the suite are scored again
    wh.execute("UPDATE quality.feed_scorecard SET suite_version = 'older' WHERE month = DATE '2025-04-01'")
    assert build_feed_scorecard(ae_db, wh, today=TODAY).attrs["months_rescored"] == 1
    wh.close()


def test_scoring_one_partner_keeps_the_other_partners_rows(ae_db, tmp_path):
    wh = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    build_feed_scorecard(ae_db, wh, today=TODAY)
    stored = wh.execute("SELECT * FROM quality.feed_scorecard").df()
    wh.execute("CREATE TABLE other AS SELECT * REPLACE ('police' AS partner, 'street_crimes' AS feed) "
               "FROM quality.feed_scorecard")
    wh.execute("INSERT INTO quality.feed_scorecard SELECT * FROM other")
    build_feed_scorecard(ae_db, wh, partner="nhs", today=TODAY)
    after = wh.execute("SELECT partner, count(*) FROM quality.feed_scorecard GROUP BY 1 ORDER BY 1").fetchall()
    assert after == [("nhs", len(stored)), ("police", len(stored))]
    wh.close()


def test_the_scorecard_takes_a_new_months_row_verdicts_from_its_feed_check(ae_db, tmp_path):
    """The feed check of a new month stores which rows it found invalid (file and line only); the scorecard then
    scores that month without validating it again, to the same figures, and validates when the month changed."""
    import json

    from orchestration.lib.config import get_settings
    from orchestration.lib.quality import VERDICTS_DIR

    settings = get_settings(home=tmp_path / "home")
    verdicts = settings.quality_dir / VERDICTS_DIR
    wh = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    build_feed_scorecard(ae_db, wh, today=TODAY, verdicts_dir=verdicts)
    ae_db.execute("""INSERT INTO raw.nhs__ae_attendances SELECT * REPLACE (DATE '2025-05-01' AS "_partition",
                     'M4-' || _record_id AS _record_id, now()::TIMESTAMP AS _loaded_at)
                     FROM raw.nhs__ae_attendances WHERE "_partition" = DATE '2025-04-01'""")
    ae_db.execute("""UPDATE raw.nhs__ae_attendances SET postcode = replace(postcode, ' ', '')
                     WHERE "_partition" = DATE '2025-05-01' AND _line IN (5, 6, 7)""")
    validate_suite(ae_db, feed_suite("nhs", "ae_attendances"), partition="2025-05-01", settings=settings,
                   today=TODAY)
    stored = json.loads((verdicts / "nhs__ae_attendances" / "2025-05-01.json").read_text())
    assert sorted(line for _, line in stored["invalid"]) == [5, 6, 7]
    assert "postcode" not in json.dumps(stored) and "M4-" not in json.dumps(stored)  # positions, no values

    nightly = build_feed_scorecard(ae_db, wh, today=TODAY, verdicts_dir=verdicts)
    assert nightly.attrs["months_rescored"] == 1 and nightly.attrs["months_from_checks"] == 1
    may = nightly.set_index("month").loc[pd.Timestamp("2025-05-01").date()]
    assert may["validity"] == pytest.approx(37 / 40)
    full = build_feed_scorecard(ae_db, wh, today=TODAY, rescore_all=True)
    assert full.attrs["months_from_checks"] == 0
    pd.testing.assert_frame_equal(_measures(nightly), _measures(full))

    # a later load into the month: the check's verdicts no longer describe it, so the month is validated
    ae_db.execute("""INSERT INTO raw.nhs__ae_attendances SELECT * REPLACE (41 AS _line, now()::TIMESTAMP AS _loaded_at)
                     FROM raw.nhs__ae_attendances WHERE "_partition" = DATE '2025-05-01' AND _line = 5""")
    again = build_feed_scorecard(ae_db, wh, today=TODAY, verdicts_dir=verdicts)
    assert again.attrs["months_rescored"] == 1 and again.attrs["months_from_checks"] == 0
    assert again.set_index("month").loc[pd.Timestamp("2025-05-01").date(), "validity"] == pytest.approx(37 / 41)
    # and on another day (rules about dates in the future) the verdicts are not reused either
    validate_suite(ae_db, feed_suite("nhs", "ae_attendances"), partition="2025-05-01", settings=settings,
                   today=TODAY)
    wh.execute("DELETE FROM quality.feed_scorecard WHERE month = DATE '2025-05-01'")
    later = build_feed_scorecard(ae_db, wh, today=TODAY + pd.Timedelta(days=1), verdicts_dir=verdicts)
    assert later.attrs["months_rescored"] == 1 and later.attrs["months_from_checks"] == 0
    wh.close()


def test_the_scorecard_takes_a_whole_tables_row_verdicts_from_its_feed_check(ae_db, tmp_path):
    """A run over many months (the full refresh) checks each feed's whole table: the scorecard's first scoring of
    every month then takes those verdicts instead of validating the table a second time, to the same figures;
    once the table changes they no longer apply."""
    from orchestration.lib.config import get_settings
    from orchestration.lib.quality import VERDICTS_DIR

    settings = get_settings(home=tmp_path / "home")
    verdicts = settings.quality_dir / VERDICTS_DIR
    spec = feed_suite("nhs", "ae_attendances")
    ae_db.execute("""UPDATE raw.nhs__ae_attendances SET postcode = replace(postcode, ' ', '') WHERE _line IN (5, 6)""")
    validate_suite(ae_db, spec, partition=None, settings=settings, today=TODAY)
    assert (verdicts / spec.name / "all.json").exists()

    wh = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    first = build_feed_scorecard(ae_db, wh, today=TODAY, verdicts_dir=verdicts)
    months = ae_db.execute('SELECT count(DISTINCT "_partition") FROM raw.nhs__ae_attendances').fetchone()[0]
    assert months > 1 and first.attrs["months_rescored"] == months
    assert first.attrs["months_from_checks"] == months
    assert (first["validity"] < 1).any()                       # the verdicts carried the invalid rows
    full = build_feed_scorecard(ae_db, wh, today=TODAY, rescore_all=True)
    assert full.attrs["months_from_checks"] == 0
    pd.testing.assert_frame_equal(_measures(first), _measures(full))

    # one more row loaded: the whole-table verdicts no longer describe the table, so it is validated again
    ae_db.execute("""INSERT INTO raw.nhs__ae_attendances SELECT * REPLACE (999 AS _line, now()::TIMESTAMP AS _loaded_at)
                     FROM raw.nhs__ae_attendances WHERE _line = 5 LIMIT 1""")
    wh.execute("DROP TABLE quality.feed_scorecard")
    again = build_feed_scorecard(ae_db, wh, today=TODAY, verdicts_dir=verdicts)
    assert again.attrs["months_from_checks"] == 0
    wh.close()
