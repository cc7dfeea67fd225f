"""The "what would happen" view: capacity, threshold and losing a feed, on generated test periods."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ml import whatif


def _test_period(seed: int, months: int, per_month: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = months * per_month
    frame = pd.DataFrame({
        "cutoff": np.repeat(np.arange(months), per_month),
        "sex": rng.choice(["F", "M"], n), "deprivation_quintile": rng.integers(1, 6, n),
        "n_ae_visits_3m": rng.poisson(1.0, n), "n_police_victims_3m": rng.poisson(0.5, n)})
    frame["events_3m"] = frame["n_ae_visits_3m"] + frame["n_police_victims_3m"]
    frame["label"] = (rng.random(n) < 0.2).astype(int)
    return frame, rng.random(n)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), months=st.integers(1, 5), per_month=st.integers(1, 40),
       capacity=st.integers(1, 50))
def test_capacity_flags_the_top_households_of_each_month_and_groups_add_up(seed, months, per_month, capacity):
    test, prediction = _test_period(seed, months, per_month)
    mask = whatif.top_per_month(test, prediction, capacity)
    for _, idx in test.groupby("cutoff").indices.items():
        chosen = idx[mask[idx]]
        assert len(chosen) == min(capacity, len(idx))
        if len(chosen) < len(idx):  # nobody left out scores above someone chosen
            assert prediction[idx[~mask[idx]]].max() <= prediction[chosen].min()
    table = whatif.by_group(test, prediction, capacity, ["sex", "deprivation_quintile"])
    overall = table[table["group"] == "all"].iloc[0]
    assert overall["flagged"] == overall["true_positives"] + overall["false_positives"] == mask.sum()
    assert overall["true_positives"] == int((mask & (test["label"] == 1)).sum())
    for group in ("sex", "deprivation_quintile"):
        part = table[table["group"] == group]
        assert part["true_positives"].sum() == overall["true_positives"]
        assert part["false_positives"].sum() == overall["false_positives"]


def test_a_higher_threshold_flags_fewer_and_losing_a_feed_changes_who_is_flagged():
    test, _ = _test_period(7, 3, 60)
    features = ["n_ae_visits_3m", "n_police_victims_3m", "events_3m"]

    def predict(X):  # a model that leans on A&E visits
        return (2 * X["n_ae_visits_3m"] + X["n_police_victims_3m"] + 0.01 * X.index.to_numpy() % 7).to_numpy(float)

    prediction = predict(test[features])
    table = whatif.thresholds(test, prediction / prediction.max(), 0.5)
    assert table["flagged"].is_monotonic_decreasing and table["flagged"].iloc[0] > table["flagged"].iloc[-1]
    feeds = whatif.feeds(test, prediction, 10, features,
                         {"ae_visits": "nhs.ae_attendances", "police_victims": "police.person_records"}, predict)
    assert list(feeds["scenario"]) == ["all feeds", "without nhs.ae_attendances", "without police.person_records"]
    assert (feeds["flagged"] == 30).all()
    without_ae = feeds.set_index("scenario").loc["without nhs.ae_attendances"]
    assert without_ae["same_households"] < 30  # losing the feed the model leans on changes who is reviewed
    dropped = whatif.without_feed(test, ["n_ae_visits_3m"])
    assert (dropped["n_ae_visits_3m"] == 0).all()
    assert (dropped["events_3m"] == test["n_police_victims_3m"]).all()


def test_the_risk_model_card_shows_what_would_happen_at_the_projects_capacity(trained):
    """The trained household model's card (shared session fixture): the three tables, at PRJ-2025-HHRISK's
    capacity; the demand model (no flagged cases) has none."""
    _, results = trained
    card = results["household_risk"].card_markdown
    assert "## What would happen (held-out test period)" in card
    for title in ("true and false positives by group", "Moving the threshold", "Losing one feed"):
        assert title in card
    section = card.split("## What would happen", 1)[1]
    assert "| all | all |" in section and "| sex |" in section and "without nhs.ae_attendances" in section
    assert "What would happen" not in results["lsoa_demand"].card_markdown
