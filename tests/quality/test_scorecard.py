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
