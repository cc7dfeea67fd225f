"""Deterministic small cases the person linkage must get right, scored with a model trained on the county."""

from __future__ import annotations

import zlib

import pandas as pd
import pytest

from orchestration.lib.errors import PlacelinkError
from orchestration.lib.matching.run import link_frame

BASE = {"source": "test.feed", "sex": "M", "nhs_number": None, "address": None, "uprn": None}


@pytest.fixture(scope="module")
def background(linkage_county):
    """Cases are linked among 1,000 ordinary records, as in real data: term frequencies need a population."""
    return linkage_county["records"].sample(1000, random_state=1)


@pytest.fixture
def link_cases(background, linkage_model):
    def _link(rows):
        cases = pd.DataFrame([{**BASE, **r} for r in rows])
        out = link_frame(pd.concat([background, cases], ignore_index=True), model=linkage_model)
        ids = dict(zip(out["record_id"], out["person_id"], strict=True))
        case_ids = {r["record_id"]: ids[r["record_id"]] for r in rows}
        # a case must never be merged into a background person
        assert not set(case_ids.values()) & {ids[r] for r in background["record_id"]}
        return case_ids
    return _link


def _same(ids, a, b):
    return ids[a] == ids[b]


def test_nickname_links(link_cases):
    ids = link_cases([
        {"record_id": "a", "given_name": "William", "family_name": "Hargreaves", "date_of_birth": "1971-04-02",
         "postcode": "AB1 2CD"},
        {"record_id": "b", "given_name": "Bill", "family_name": "HARGREAVES", "date_of_birth": "1971-04-02",
         "postcode": "ab12cd"},
    ])
    assert _same(ids, "a", "b")


def test_swapped_day_and_month_links(link_cases):
    ids = link_cases([
        {"record_id": "a", "given_name": "Olivia", "family_name": "Pemberton", "date_of_birth": "1990-03-07",
         "postcode": "AB1 2CD", "sex": "F"},
        {"record_id": "b", "given_name": "Olivia", "family_name": "Pemberton", "date_of_birth": "1990-07-03",
         "postcode": "AB1 2CD", "sex": "F"},
    ])
    assert _same(ids, "a", "b")


def test_moved_house_links_on_name_and_date_of_birth(link_cases):
    ids = link_cases([
        {"record_id": "a", "given_name": "Jonathan", "family_name": "Okonkwo", "date_of_birth": "1985-11-30",
         "postcode": "AB1 2CD"},
        {"record_id": "b", "given_name": "Jonathan", "family_name": "Okonkwo", "date_of_birth": "1985-11-30",
         "postcode": "ZX9 8YW"},
    ])
    assert _same(ids, "a", "b")


def test_twins_at_the_same_address_do_not_merge(link_cases):
    common = {"family_name": "Fairweather", "date_of_birth": "2012-06-15", "postcode": "AB1 2CD", "uprn": "1001"}
    ids = link_cases([
        {"record_id": "a1", "given_name": "Oscar", **common},
        {"record_id": "a2", "given_name": "Oscar", **common},
        {"record_id": "b1", "given_name": "Archie", **common},
        {"record_id": "b2", "given_name": "Archie", **common},
    ])
    assert _same(ids, "a1", "a2") and _same(ids, "b1", "b2")
    assert not _same(ids, "a1", "b1")


def test_a_replaced_given_name_links_when_a_national_identifier_agrees(link_cases):
    """The twins cannot-link is evidence-based: the same national identifier (exact or one transposition) says one
    person recorded with another given name; without it the same pair stays apart (as the twins above)."""
    common = {"family_name": "Fairweather", "date_of_birth": "2012-06-15", "postcode": "AB1 2CD", "uprn": "1001"}
    ids = link_cases([
        {"record_id": "a", "given_name": "Oscar", "national_id": "QQ 12 34 56 C", **common},
        {"record_id": "b", "given_name": "Archie", "national_id": "QQ123456C", **common},
        {"record_id": "c", "given_name": "Henry", "national_id": "QQ213456C", **common},  # two digits transposed
        {"record_id": "d", "given_name": "Tobias", **common},
    ])
    assert _same(ids, "a", "b") and _same(ids, "a", "c")
    assert not _same(ids, "a", "d")


def test_same_name_and_dob_elsewhere_decided_by_nhs_number(link_cases):
    person = {"given_name": "David", "family_name": "Jones", "date_of_birth": "1980-01-01"}
    ids = link_cases([
        # two different valid NHS numbers: two people despite identical name and DOB
        {"record_id": "x", **person, "postcode": "AB1 2CD", "nhs_number": "943 476 5919"},
        {"record_id": "y", **person, "postcode": "EF3 4GH", "nhs_number": "401 023 2137"},
        # the same valid NHS number at a third address: the same person as x
        {"record_id": "z", **person, "postcode": "JK5 6LM", "nhs_number": "9434765919"},
    ])
    assert _same(ids, "x", "z")
    assert not _same(ids, "x", "y")


def test_parent_and_child_with_one_name_do_not_merge(link_cases):
    common = {"given_name": "James", "family_name": "Whitaker", "postcode": "AB1 2CD", "uprn": "2002"}
    ids = link_cases([
        {"record_id": "father", **common, "date_of_birth": "1961-02-10"},
        {"record_id": "son", **common, "date_of_birth": "1993-08-21"},
    ])
    assert not _same(ids, "father", "son")


def test_foreign_data_with_only_some_columns_trains_and_links(linkage_county):
    """Data not from our generator: no source/sex/NHS/address columns, non-UK postcodes; the model is
    trained on the input itself and still finds the people."""
    from orchestration.lib.matching.metrics import pairwise_metrics

    recs = linkage_county["records"].sample(1500, random_state=3)
    foreign = pd.DataFrame({
        "record_id": recs["record_id"].to_numpy(),
        "given_name": recs["given_name"].to_numpy(),
        "family_name": recs["family_name"].to_numpy(),
        "date_of_birth": recs["date_of_birth"].to_numpy(),
        # Polish-style postal codes derived from the UK ones, so people still share them
        "postcode": recs["postcode"].fillna("").str.upper().str.replace(" ", "").map(
            lambda pc: f"{zlib.crc32(pc.encode()) % 100:02d}-{zlib.crc32(pc[::-1].encode()) % 1000:03d}" if pc else None).to_numpy(),
    })
    out = link_frame(foreign)
    assert list(out.columns) == ["record_id", "person_id"] and len(out) == len(foreign)
    scores = pairwise_metrics(out, linkage_county["truth"])
    assert scores["f1"] >= 0.9, scores


def test_missing_record_id_column_names_it():
    with pytest.raises(PlacelinkError, match="record_id"):
        link_frame(pd.DataFrame({"given_name": ["a"]}), where="people.csv")


def test_duplicate_record_id_is_refused():
    with pytest.raises(PlacelinkError, match="more than once"):
        link_frame(pd.DataFrame({"record_id": ["1", "1"], "given_name": ["a", "b"]}))


def test_empty_input_gives_empty_output():
    out = link_frame(pd.DataFrame({"record_id": pd.Series(dtype=str), "given_name": pd.Series(dtype=str)}))
    assert list(out.columns) == ["record_id", "person_id"] and len(out) == 0


def test_cluster_agreement_scores_equal_scikit_learns():
    """pairwise_metrics computes ARI, homogeneity, completeness and V-measure in DuckDB from the contingency
    table; they must be the numbers scikit-learn gives for the same labelling."""
    import numpy as np
    from sklearn import metrics as skm

    from orchestration.lib.matching.metrics import pairwise_metrics

    rng = np.random.default_rng(1)
    true = rng.integers(0, 800, 3000)
    pred = np.where(rng.random(3000) < 0.9, true, rng.integers(0, 900, 3000))
    ids = [str(i) for i in range(3000)]
    out = pairwise_metrics(pd.DataFrame({"record_id": ids, "person_id": [f"p{x}" for x in pred]}),
                           pd.DataFrame({"record_id": ids, "person_id": [f"t{x}" for x in true]}))
    h, c, v = skm.homogeneity_completeness_v_measure(true, pred)
    assert out["adjusted_rand_index"] == pytest.approx(skm.adjusted_rand_score(true, pred), abs=1e-5)
    assert (out["homogeneity"], out["completeness"], out["v_measure"]) == pytest.approx((h, c, v), abs=1e-5)
    assert out["predicted_clusters"] == len(set(pred)) and out["true_clusters"] == len(set(true))
