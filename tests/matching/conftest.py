"""Fixtures for the matching tests: a small self-contained county and a model trained on it once."""

from __future__ import annotations

import pytest

from tests.support.matching_county import make_county


@pytest.fixture(scope="session")
def linkage_county():
    """~1,500 people, ~4,500 records with typos, nicknames, swapped dates, moves and twins (seconds to make)."""
    return make_county(n_people=1500, seed=11)


@pytest.fixture(scope="session")
def linkage_model(linkage_county):
    """A person model trained with EM on the county (no labels); shared so small cases don't each retrain."""
    import duckdb
    from splink import DuckDBAPI

    from orchestration.lib.matching.normalise import prepare_records, run
    from orchestration.lib.matching.person import train_model

    con = duckdb.connect()
    con.register("_df", linkage_county["records"])
    run(con, "CREATE TABLE recs AS SELECT * FROM _df")
    prepare_records(con, "recs", "prep")
    run(con, "CREATE TABLE strong AS SELECT * FROM prep WHERE NOT weak_identifiers")
    db_api = DuckDBAPI(con)
    return train_model(db_api, db_api.register("strong"))
