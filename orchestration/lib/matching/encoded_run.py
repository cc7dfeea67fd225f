"""The matching stage's encoded half: records of feeds linked on encodings (``link.encoded_person_records``,
loaded by :mod:`orchestration.lib.feeds.encoded`) are linked by the encoded model, clear records by the clear
model, into the one stable index that keys, households and marts read.

What a person key means across modes: clear and encoded records cannot be compared (the platform cannot encode a
clear record without the partners' secret, which it does not hold), so **a person key joins records of one
mode only**. In a mixed deployment the same person sent clear by one partner and encoded by another has two
person keys (one per mode), and their records are never linked to each other. A deployment that wants one key per
person across all its partners makes every feed with people encoded (``PLACELINK_LINKAGE=encoded``, or
``linkage`` in each contract). Keys stay stable within each mode exactly as in a clear deployment: each mode's
records are linked incrementally against that mode's part of the stored index.

The encoded model is trained on the encoded records and saved beside the clear one in
``<models>/encoded/person_model_v<N>.json``. An encoded record's LSOA is the partner's match (against its own
copy of the gazetteer): written to ``link.address_matches`` with ``match_method = 'partner'`` and no UPRN (the
UPRN travels as a token), stamped with the time it was loaded, so the warehouse re-keys it only when it changes.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from orchestration.lib.config import Settings
from orchestration.lib.feeds.encoded import ENCODED_TABLE
from orchestration.lib.matching import encoded_model as em
from orchestration.lib.matching import person as pm
from orchestration.lib.matching.index import LinkResult, update_index
from orchestration.lib.matching.normalise import run

_SCHEMA, _TABLE = ENCODED_TABLE.split(".")


def present(tables: set) -> bool:
    """Whether the identifiable zone holds encoded records (``tables``: run_matching's (schema, table) set)."""
    return (_SCHEMA, _TABLE) in tables


def clear_previous(con: duckdb.DuckDBPyConnection, previous: str | None, tables: set) -> str | None:
    """The stored index's clear part (TEMP ``_prev_clear``): what the clear model links against."""
    if previous is None or not present(tables):
        return previous
    run(con, f"""CREATE OR REPLACE TEMP TABLE _prev_clear AS SELECT * FROM {previous}
                 ANTI JOIN idz.{ENCODED_TABLE} USING (record_id)""")
    return "_prev_clear"


def record_partner_lsoa(con: duckdb.DuckDBPyConnection, tables: set) -> None:
    """Encoded records' LSOA (matched at the partner) into ``idz.link.address_matches``, replacing earlier rows."""
    if not present(tables):
        return
    run(con, "ALTER TABLE idz.link.address_matches ADD COLUMN IF NOT EXISTS matched_at TIMESTAMP")
    run(con, f"DELETE FROM idz.link.address_matches WHERE record_id IN (SELECT record_id FROM idz.{ENCODED_TABLE})")
    run(con, f"""INSERT INTO idz.link.address_matches BY NAME
        SELECT record_id, CAST(NULL AS VARCHAR) AS uprn, lsoa_code, 'partner' AS match_method,
               loaded_at AS matched_at
        FROM idz.{ENCODED_TABLE}""")


def link_with_encoded(con: duckdb.DuckDBPyConnection, settings: Settings, clear: LinkResult,
                      previous: str | None, tables: set, *, full: bool, retrain: bool,
                      decisions: pd.DataFrame | None, say=lambda _m: None) -> LinkResult:
    """Link the encoded records and return the clear result and theirs as one (TEMP ``_all_index``/``_all_hh``).

    ``clear`` must be the clear model's result on ``con``; its TEMP tables are copied first, since linking reuses
    their names."""
    if not present(tables) or not con.execute(f"SELECT count(*) FROM idz.{ENCODED_TABLE}").fetchall()[0][0]:
        return clear
    run(con, f"CREATE OR REPLACE TEMP TABLE _clear_index AS SELECT * FROM {clear.person_table}")
    run(con, f"CREATE OR REPLACE TEMP TABLE _clear_hh AS SELECT * FROM {clear.household_table}")
    run(con, f"CREATE OR REPLACE TEMP TABLE _encoded_records AS SELECT * FROM idz.{ENCODED_TABLE}")
    em.prepare_encoded(con, "_encoded_records", "_encoded_prepared")
    if previous is not None:
        run(con, f"""CREATE OR REPLACE TEMP TABLE _prev_encoded AS SELECT * FROM {previous}
                     SEMI JOIN idz.{ENCODED_TABLE} USING (record_id)""")
    models = settings.models_dir / "encoded"
    model_path = None if retrain else pm.latest_model(models)
    if model_path is not None and not em.model_is_current(pm.load_model(model_path)):
        say(f"encoded model {model_path.name} predates the current encoded comparisons: retraining")
        model_path = None
    say(f"encoded person linkage ({'training a new model' if model_path is None else 'model ' + model_path.name})")
    enc = update_index(con, "_encoded_prepared", previous="_prev_encoded" if previous else None,
                       model=pm.load_model(model_path) if model_path else None, full=full, decisions=decisions,
                       trainer=em.train_model, settings=settings, score_as=em.compact_columns)
    if model_path is None and enc.model is not None:
        pm.save_model(enc.model, models)
    run(con, f"""CREATE OR REPLACE TEMP TABLE _all_index AS
        SELECT record_id, person_id FROM _clear_index UNION ALL SELECT record_id, person_id FROM {enc.person_table}""")
    run(con, f"""CREATE OR REPLACE TEMP TABLE _all_hh AS
        SELECT record_id, household_id FROM _clear_hh
        UNION ALL SELECT record_id, household_id FROM {enc.household_table}""")
    summary = dict(clear.summary)
    for key, value in enc.summary.items():
        if isinstance(value, bool | str):
            continue
        summary[f"encoded_{key}"] = value
        if key in ("records", "persons", "households") and isinstance(summary.get(key), int):
            summary[key] += value
    review = pd.concat([q for q in (clear.review_queue, enc.review_queue) if len(q)], ignore_index=True) \
        if len(clear.review_queue) or len(enc.review_queue) else clear.review_queue
    changes = pd.concat([clear.changes, enc.changes], ignore_index=True)
    return LinkResult(con, "_all_index", "_all_hh", review, changes, summary, clear.model)

