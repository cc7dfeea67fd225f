"""Pure pieces of the gate: ethics record validation, feed agreements, fairness thresholds, time splits."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import yaml

from ml import gate
from ml.ethics import check_feed_agreements, load_record, record_path, require_permitted
from ml.fairness import FairnessReport, check_thresholds, risk_fairness
from ml.features import feature_name, list_models, load_spec, time_splits
from orchestration.lib.errors import PlacelinkError


@pytest.mark.parametrize("model", list_models())
def test_committed_ethics_records_are_complete_and_permitted_by_the_real_contracts(model):
    record = load_record(record_path(model))
    assert record.complete, record.problems
    checks = require_permitted(record)  # orchestration/feeds/*.yml
    assert checks and all(c.permitted for c in checks)
    assert load_spec(model).name == model


def test_incomplete_record_lists_every_missing_answer(tmp_path):
    raw = yaml.safe_load(record_path("household_risk").read_text())
    del raw["lawful_basis"]["article_6"]
    raw["action_following_prediction"] = "tbd"
    del raw["fairness"]["thresholds"]
    path = tmp_path / "ethics.yml"
    path.write_text(yaml.safe_dump(raw))
    record = load_record(path)
    assert not record.complete
    joined = " | ".join(record.problems)
    for field in ("lawful_basis.article_6", "action_following_prediction", "fairness.thresholds"):
        assert field in joined, joined


def test_agreements_refuse_missing_contracts_other_purposes_and_expired_agreements(tmp_path):
    from tests.support.mart_warehouse import write_feed_contracts

    feeds = write_feed_contracts(tmp_path, overrides={"nhs.ae_attendances": ["service_planning"]})
    checks = {c.feed: c for c in check_feed_agreements(
        ["nhs.ae_attendances", "fire.safe_and_well_visits", "ambulance.calls"], "risk_modelling", feeds)}
    assert not checks["nhs.ae_attendances"].permitted and "service_planning" in checks["nhs.ae_attendances"].reason
    assert checks["fire.safe_and_well_visits"].permitted
    assert not checks["ambulance.calls"].permitted and "no contract" in checks["ambulance.calls"].reason
    later = check_feed_agreements(["fire.safe_and_well_visits"], "risk_modelling", feeds, today=dt.date(2031, 1, 1))
    assert not later[0].permitted and "ended" in later[0].reason


def test_record_without_purpose_cannot_train(tmp_path):
    raw = yaml.safe_load(record_path("lsoa_demand").read_text())
    del raw["purpose"]
    path = tmp_path / "ethics.yml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(PlacelinkError, match="agreement_purpose"):
        require_permitted(load_record(path))


def test_gate_needs_every_check_and_says_why():
    record = load_record(record_path("lsoa_demand"))
    agreements = check_feed_agreements(record.feeds, record.purpose)
    ok = FairnessReport(pd.DataFrame(), {})
    assert gate.evaluate(record, agreements, ok, 5.0, None, higher_is_better=False, metric="mae").promote
    worse = gate.evaluate(record, agreements, ok, 5.0, 4.0, higher_is_better=False, metric="mae")
    assert not worse.promote and "does not beat champion" in worse.summary
    unfair = FairnessReport(pd.DataFrame(), {}, ["deprivation_quintile: relative_bias_max = 0.4 > 0.25"])
    refused = gate.evaluate(record, agreements, unfair, 3.0, 4.0, higher_is_better=False, metric="mae")
    assert not refused.promote and refused.checks["beats_champion"] and "relative_bias_max" in refused.summary


def test_thresholds_compare_in_the_right_direction_and_reject_typos():
    summary = {"sex.tpr_difference": 0.2, "sex.selection_rate_ratio": 0.7}
    assert check_thresholds(summary, {"tpr_difference_max": 0.25, "selection_rate_ratio_min": 0.6}, ["sex"]) == []
    assert len(check_thresholds(summary, {"tpr_difference_max": 0.1, "selection_rate_ratio_min": 0.8}, ["sex"])) == 2
    assert "unknown fairness threshold" in check_thresholds(summary, {"tpr_diff_max": 0.1}, ["sex"])[0]


def test_risk_fairness_ignores_groups_too_small_to_compare():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"label": rng.integers(0, 2, 400), "sex": ["F"] * 200 + ["M"] * 195 + ["U"] * 5})
    score = rng.random(400)
    report = risk_fairness(frame, score, "label", ["sex"], top_fraction=0.2, min_group_size=50,
                           min_group_positives=5, thresholds={"fpr_difference_max": 0.5})
    table = report.table.set_index("group")
    assert not table.loc["U", "compared"] and table.loc["F", "compared"]
    assert report.summary["sex.groups_compared"] == 2 and report.passed


def test_time_splits_leave_no_label_overlap():
    s = time_splits(first=0, end=24, horizon=6, min_history=3)
    assert s.test == 18 and s.valid == 12 and s.score == 24
    assert max(s.train) + 6 <= s.valid  # every training label is observed before validation starts
    with pytest.raises(PlacelinkError, match="not enough history"):
        time_splits(first=0, end=12, horizon=6, min_history=3)


@pytest.mark.parametrize("model", list_models())
def test_too_little_history_is_refused_from_one_aggregate_and_never_when_training_could_go_on(tmp_path, model):
    """The training asset asks ``require_history`` before importing the trainer: with one month fewer than the
    splits need it refuses, with exactly enough it lets training go on, and the examples can then be built."""
    import duckdb

    from ml.features import NotEnoughHistoryError, build_frames, require_history
    from tests.support.mart_warehouse import build_mart_warehouse

    spec = load_spec(model)
    need = spec.min_history_months + 3 * spec.horizon_months
    for months in (need - 1, need):
        path = tmp_path / f"warehouse_{months}.duckdb"
        build_mart_warehouse(path, n_households=300, n_lsoas=20, months=months)
        with duckdb.connect(str(path), read_only=True) as con:
            if months < need:
                with pytest.raises(NotEnoughHistoryError, match=f"{months} months in the marts"):
                    require_history(con, spec, path)
            else:
                require_history(con, spec, path)
                frames = build_frames(con, spec, load_record(record_path(model)).feeds, path)
                assert len(frames.train) > 0 and len(frames.test) > 0


@pytest.mark.parametrize("model", list_models())
def test_scoring_builds_the_same_examples_to_score_without_the_training_ones(tmp_path, model):
    """Nightly scoring builds only the examples it scores; they and the feature columns are exactly those a
    whole build (the one training uses) gives, so the champion sees the features it was trained on."""
    import duckdb

    from ml.features import build_frames
    from tests.support.mart_warehouse import build_mart_warehouse

    spec = load_spec(model)
    path = tmp_path / "warehouse.duckdb"
    build_mart_warehouse(path, n_households=300, n_lsoas=20, months=spec.min_history_months + 3 * spec.horizon_months + 2)
    feeds = load_record(record_path(model)).feeds
    with duckdb.connect(str(path), read_only=True) as con:
        whole = build_frames(con, spec, feeds, path)
        scoring = build_frames(con, spec, feeds, path, scoring_only=True)
    assert len(whole.train) > 0 and len(whole.scoring) > 0
    assert scoring.features == whole.features
    pd.testing.assert_frame_equal(scoring.scoring, whole.scoring)
    assert scoring.splits == whole.splits
    for part in (scoring.train, scoring.valid, scoring.test):
        assert part.empty and set(whole.features) <= set(part.columns)


def _reference_household_examples(events: pd.DataFrame, cutoff: int, spec, indicators: list[str]) -> pd.DataFrame:
    """The household features written the slow, obvious way (a groupby per household), to check the vectorised
    build against: counts per indicator and in all over each lookback, then 12-month distinct types, persons and
    months since the last event."""
    history = events[(events["m"] >= cutoff - 12) & (events["m"] < cutoff)]
    rows = []
    for key, h in history.groupby("household_key", sort=False):
        row = {"household_key": key}
        for lookback in spec.lookbacks_months:
            win = h[h["m"] >= cutoff - lookback]
            for ind in indicators:
                row[f"n_{feature_name(ind)}_{lookback}m"] = float(win.loc[win["indicator"] == ind, "event_count"].sum())
            row[f"events_{lookback}m"] = float(win["event_count"].sum())
        row["distinct_event_types_12m"] = float(h["indicator"].nunique())
        row["persons_seen_12m"] = float(h["person_key"].nunique())
        row["months_since_last_event"] = float(cutoff - h["m"].max())
        rows.append(row)
    return pd.DataFrame(rows)


def test_household_examples_count_what_a_plain_groupby_counts(tmp_path):
    """The household risk features (numpy bincounts over integer codes) equal a per-household groupby on the
    fixture's events, at a training cutoff and at the scoring cutoff, in the order households first appear."""
    import duckdb

    from ml.features import (
        _HOUSEHOLD_EVENTS_SQL,
        _risk_examples,
        household_groups,
        month_index,
        permitted_indicators,
    )
    from tests.support.mart_warehouse import build_mart_warehouse

    spec = load_spec("household_risk")
    path = tmp_path / "warehouse.duckdb"
    build_mart_warehouse(path, n_households=200, n_lsoas=12, months=spec.min_history_months + 3 * spec.horizon_months)
    with duckdb.connect(str(path), read_only=True) as con:
        events = con.execute(_HOUSEHOLD_EVENTS_SQL).df()
        indicators, _ = permitted_indicators(con, events["indicator"].unique(), load_record(record_path("household_risk")).feeds)
        groups = household_groups(con)
    events = events[events["indicator"].isin(indicators)].copy()
    events["m"] = month_index(events["month"])
    end = int(events["m"].max()) + 1
    for cutoff in (end - spec.horizon_months, end):
        built = _risk_examples(events, groups, cutoff, spec, indicators, with_label=False)
        expected = _reference_household_examples(events, cutoff, spec, indicators)
        assert len(built) == len(expected) > 50
        assert list(built["household_key"]) == list(expected["household_key"])
        columns = [c for c in expected.columns if c != "household_key"]
        assert list(built.columns) == ["household_key", "cutoff", *columns, "imd_decile"]
        pd.testing.assert_frame_equal(built[columns], expected[columns])
        assert built["events_12m"].sum() > 0 and (built["persons_seen_12m"] >= 1).all()


def test_a_persons_household_and_attributes_do_not_depend_on_row_order(tmp_path):
    """Two events on a person's latest date at different addresses (or with different recorded attributes): the
    household and the audit attributes go to the larger value, whatever order the rows are stored in. A plain
    arg_max broke such ties arbitrarily, so two builds of one warehouse could disagree on a household's rows."""
    import duckdb

    from ml.features import _HOUSEHOLD_EVENTS_SQL, household_groups

    rows = [("p1", "hA", "E01", "F", "25-34", "White"), ("p1", "hB", "E02", "M", "35-44", "Asian")]
    answers = set()
    for order in (rows, rows[::-1]):
        path = tmp_path / f"w{len(answers)}_{order[0][1]}.duckdb"
        with duckdb.connect(str(path)) as con:
            con.execute("create schema intermediate; create schema marts")
            con.execute("create table intermediate.int_events_joined_to_places (person_key varchar, household_key varchar,"
                        " lsoa_code varchar, sex varchar, age_band varchar, ethnicity_group varchar, event_date date)")
            for r in order:
                con.execute("insert into intermediate.int_events_joined_to_places values (?, ?, ?, ?, ?, ?, date '2025-03-04')",
                            list(r))
            con.execute("create table marts.person_monthly_events as select 'p1' as person_key, date '2025-03-01' as month,"
                        " 'ae_attendances' as indicator, 2 as event_count")
            con.execute("create table marts.dim_lsoa as select 'E02' as lsoa_code, 3 as imd_decile")
            homes = con.execute(_HOUSEHOLD_EVENTS_SQL).fetchall()
            groups = household_groups(con)
        answers.add((tuple(sorted(homes)), tuple(sorted(map(tuple, groups[[
            "household_key", "sex", "age_band", "ethnicity_group", "lsoa_code"]].itertuples(index=False))))))
    assert len(answers) == 1
    (homes, groups), = answers
    assert [h[0] for h in homes] == ["hB"]
    # each household's own reference person and its latest place; ties inside one household to the larger value
    assert ("hB", "M", "35-44", "Asian", "E02") in groups


def test_an_indicator_gets_its_feed_from_the_indicator_catalogue(tmp_path, monkeypatch):
    """Indicators built only in the place marts (crimes_total, school_*) take their feed from the dbt seed
    ``indicators`` (the one statement of it), not from a second hand-written map: edit the catalogue and the
    feed the ethics gate sees follows."""
    import duckdb

    from ml import features

    con = duckdb.connect()  # no events table: every answer comes from the catalogue
    got = features.indicator_feeds(con, ["crimes_total", "school_sessions_possible", "police_victims", "no_such"])
    assert got == {"crimes_total": "police.street_crimes", "school_sessions_possible": "county_council.school_attendance",
                   "police_victims": "police.person_records", "no_such": None}
    moved = tmp_path / "indicators.csv"
    moved.write_text(features.INDICATOR_CATALOGUE.read_text().replace(
        "crimes_total,police,street_crimes", "crimes_total,police,person_records"))
    monkeypatch.setattr(features, "INDICATOR_CATALOGUE", moved)
    assert features.indicator_feeds(con, ["crimes_total"]) == {"crimes_total": "police.person_records"}
