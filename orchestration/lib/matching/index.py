"""The stable person and household index: keys that do not change from one night to the next.

- **First run / full re-link**: Splink scores every blocked pair, pairs at or above the match threshold (plus
  valid-NHS-number links and clerical "match" decisions, minus clerical "non_match" decisions) are clustered
  with connected components. Each cluster keeps the previous ``person_id`` that covers most of its records
  (greedy, largest overlap first); the rest get new keys. Keys merged and split are reported.
- **Incremental (nightly)**: only records not yet in the index are scored, against the index
  (``predict_between``) and among themselves (``predict_within``). A new record joins the person it links to;
  existing persons are never merged or split here, so existing keys never change -- a record that links two
  existing persons is counted as a merge candidate and its pairs go to the review queue.
- **Weak-identifier records** (no date of birth and no family name, e.g. food bank vouchers: first name, age
  band, postcode) cannot be linked at person level with any certainty: they keep a singleton ``person_id``
  and are linked at household level only (through their UPRN).
- ``household_id`` is ``H<uprn>`` of the record's own address, else of the person's most frequent UPRN.

New keys are ``P`` + 12 hex of SHA-256 of the cluster's first record id: deterministic, no counter to keep.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from orchestration.lib.matching import person as pm
from orchestration.lib.matching.engine import model_for_engine, splink_api, to_duckdb
from orchestration.lib.matching.normalise import run

INDEX_COLUMNS = ["record_id", "person_id"]


@dataclass
class LinkResult:
    """The run's index stays in DuckDB: ``person_table`` (record_id, person_id) and ``household_table``
    (record_id, household_id) are TEMP tables on ``con``, which the caller writes on without leaving DuckDB;
    ``person_index`` / ``household_index`` are the same as DataFrames, made on first use (at county scale each
    1.5 M-row round trip through pandas cost about two seconds a night)."""

    con: duckdb.DuckDBPyConnection
    person_table: str
    household_table: str
    review_queue: pd.DataFrame            # borderline pairs with the comparison detail
    changes: pd.DataFrame                 # record_id, old_person_id, new_person_id, change
    summary: dict = field(default_factory=dict)
    model: dict | None = None

    @functools.cached_property
    def person_index(self) -> pd.DataFrame:
        """record_id, person_id, ordered by record_id."""
        return self.con.execute(f"SELECT record_id, person_id FROM {self.person_table} ORDER BY record_id").df()

    @functools.cached_property
    def household_index(self) -> pd.DataFrame:
        """record_id, household_id, ordered by record_id."""
        return self.con.execute(f"SELECT record_id, household_id FROM {self.household_table} ORDER BY record_id").df()


def _new_key_sql(col: str) -> str:
    return f"'P' || substr(sha256({col}), 1, 12)"


def _drop_pred(con) -> None:
    """Drop the run's ``_pred``, a temp table or a full link's renamed Splink table, so one name never means two."""
    for schema in ("temp.main", "main"):
        run(con, f"DROP TABLE IF EXISTS {schema}._pred")


#: Whether a full DuckDB link scores narrow (:func:`_narrow_predict`); False gives Splink's full rows for every pair
#: kept, as before #25's last fix (the tests compare the two: the same index, the same review queue).
NARROW_SCORING = True
#: The columns whose exact agreement is term-frequency adjusted (lookups of the whole population: update_index).
TF_COLUMNS = ("given_name", "family_name", "addr_key")
#: The comparisons whose levels the cannot-link of :func:`_edges` reads (their ``gamma_`` columns).
GUARD_GAMMAS = ("gamma_given_name", "gamma_dob", "gamma_nhs_number", "gamma_national_id")


def _narrow_predict(con, db_api, narrow, wide, records: str = "_reps") -> None:
    """``_pred`` of a full DuckDB link: every blocked pair scored by ``narrow`` (the model without its compared
    columns: ids, match key, weight, probability), plus the :data:`GUARD_GAMMAS` of the pairs kept, computed by
    the model's own CASE statements on the two records joined back to those pairs only.

    Splink's full rows carry both records' compared columns through the whole join and into the output; on the
    1.5 M-record encoded county that was 18.4 M joined pairs and 3.45 M kept rows of ~50 wide columns (32-hex
    tokens, 1024-bit filters), spilled to disk (docs/matching.md, encoded linkage). The review queue's detail
    comes from ``wide`` for its pairs only (:func:`_review_from_wide`). ``records`` is ``narrow``'s input table."""
    pred = narrow.inference.predict(threshold_match_probability=pm.PREDICT_FLOOR, warning_mode="never")
    comps = [c for c in wide._settings_obj.comparisons if c._gamma_column_name in GUARD_GAMMAS]
    cols = dict.fromkeys(ic.unquote().name for c in comps for ic in c._input_columns_used_by_case_statement)
    sides = ", ".join(f'{s}."{col}" AS "{col}_{s}"' for col in cols for s in ("l", "r"))
    cases = ", ".join(c._case_statement for c in comps)
    run(con, f"""CREATE OR REPLACE TEMP TABLE _pred AS
        SELECT * EXCLUDE ({', '.join(f'"{col}_{s}"' for col in cols for s in ("l", "r"))}){', ' if cases else ''}{cases}
        FROM (SELECT p.*{', ' if sides else ''}{sides} FROM {pred.physical_name} p
              JOIN {records} l ON l.unique_id = p.unique_id_l JOIN {records} r ON r.unique_id = p.unique_id_r)""")
    pred.drop_table_from_database_and_remove_from_cache()


def _review_from_wide(con, db_api, wide) -> None:
    """``_review`` with Splink's full rows (both records' compared columns, every level's weight), scored again by
    ``wide`` for the review pairs only: Splink's rows for the same pairs and model as a wide link's."""
    run(con, f"""CREATE OR REPLACE TEMP TABLE _review_pairs AS
        SELECT unique_id_l AS join_key_l, unique_id_r AS join_key_r, match_key FROM _pred p
        WHERE {_REVIEW_WHERE}""")
    for col in TF_COLUMNS:  # Splink keeps one lookup per column on the connection: the narrow model's replaced it
        wide.table_management.register_term_frequency_lookup(db_api.register(f"_tf_{col}"), col)
    wide.table_management.register_blocked_pairs_for_predict(db_api.register("_review_pairs"))
    detail = wide.inference.predict(threshold_match_probability=pm.PREDICT_FLOOR, warning_mode="never")
    run(con, f"CREATE OR REPLACE TEMP TABLE _review AS SELECT * FROM {detail.physical_name} "
             "ORDER BY match_probability DESC")
    detail.drop_table_from_database_and_remove_from_cache()


#: The clerical review queue: borderline pairs nobody has decided yet (``p`` a scored pair, ``_decisions`` known).
_REVIEW_WHERE = f"""p.match_probability >= {pm.REVIEW_BAND[0]} AND p.match_probability < {pm.REVIEW_BAND[1]}
          AND (least(p.unique_id_l, p.unique_id_r), greatest(p.unique_id_l, p.unique_id_r))
              NOT IN (SELECT (a, b) FROM _decisions)"""


def _edges(con, db_api, linker, mode: str, decisions: pd.DataFrame | None, score: bool = True,
           narrow=None, narrow_records: str = "_reps") -> None:
    """Create ``_edges`` (unique_id_l, unique_id_r, match_probability) and ``_review`` for this run.

    Splink scores the representatives only (``_reps``); every exact duplicate is tied to its representative
    by a deterministic edge, and records sharing a valid NHS number by another, both in SQL. A full link on
    DuckDB scores with ``narrow`` (the model without its compared columns, :func:`_narrow_predict`) and takes
    the review queue's detail from ``linker``."""
    _drop_pred(con)
    if not score:
        # every new record is an exact duplicate of an indexed one: nothing for Splink to score
        run(con, """CREATE OR REPLACE TEMP TABLE _pred AS SELECT NULL::VARCHAR AS unique_id_l,
                    NULL::VARCHAR AS unique_id_r, NULL::DOUBLE AS match_probability, NULL::INTEGER AS gamma_given_name,
                    NULL::INTEGER AS gamma_dob WHERE FALSE""")
        nhs_sql = f"""SELECT * FROM ({pm.deterministic_nhs_edges_sql('_strong')})
                      WHERE unique_id_l IN (SELECT unique_id FROM _strong WHERE unique_id NOT IN
                                            (SELECT record_id FROM _prev))
                         OR unique_id_r IN (SELECT unique_id FROM _strong WHERE unique_id NOT IN
                                            (SELECT record_id FROM _prev))"""
    elif mode == "full" and narrow is not None:
        _narrow_predict(con, db_api, narrow, linker, narrow_records)
        nhs_sql = pm.deterministic_nhs_edges_sql("_strong")
    elif mode == "full":
        pred = linker.inference.predict(threshold_match_probability=pm.PREDICT_FLOOR, warning_mode="never")
        if getattr(db_api, "placelink_engine", "duckdb") == "duckdb":
            # Splink's predictions are already a table on this connection: take it under our name rather than
            # copy it. Each row carries both records' compared columns (the review queue reads them), so the
            # copy was the whole of prediction's output a second time: on the 1.5 M-record encoded county 3.45 M
            # wide rows, 26-36 s of a 280-350 s link, spilled to disk (docs/matching.md, encoded linkage)
            _drop_pred(con)
            run(con, f"ALTER TABLE {pred.physical_name} RENAME TO _pred")
        else:
            to_duckdb(con, db_api, pred, "_pred")
        nhs_sql = pm.deterministic_nhs_edges_sql("_strong")
    else:
        old = db_api.register("_strong_old")
        new = db_api.register("_strong_new")
        between = linker.inference.predict_between(old, new, threshold_match_probability=pm.PREDICT_FLOOR,
                                                   warning_mode="never")
        within = linker.inference.predict_within(new, threshold_match_probability=pm.PREDICT_FLOOR,
                                                 warning_mode="never")
        to_duckdb(con, db_api, between, "_pred_between")
        to_duckdb(con, db_api, within, "_pred_within")
        run(con, "CREATE OR REPLACE TEMP TABLE _pred AS SELECT * FROM _pred_between "
                 "UNION ALL BY NAME SELECT * FROM _pred_within")
        nhs_sql = f"""SELECT * FROM ({pm.deterministic_nhs_edges_sql('_strong')})
                      WHERE unique_id_l NOT IN (SELECT record_id FROM _prev)
                         OR unique_id_r NOT IN (SELECT record_id FROM _prev)"""
    dec = decisions if decisions is not None and len(decisions) else pd.DataFrame(
        {"record_id_l": pd.Series(dtype=str), "record_id_r": pd.Series(dtype=str),
         "decision": pd.Series(dtype=str)})
    con.register("_decisions_df", dec)
    run(con, """CREATE OR REPLACE TEMP TABLE _decisions AS
        SELECT least(CAST(record_id_l AS VARCHAR), CAST(record_id_r AS VARCHAR)) AS a,
               greatest(CAST(record_id_l AS VARCHAR), CAST(record_id_r AS VARCHAR)) AS b,
               lower(trim(decision)) AS decision FROM _decisions_df""")
    # Splink leaves out the gamma column of a comparison it could not parameterise (tiny or sparse input)
    pred_cols = {r[0] for r in con.execute("DESCRIBE _pred").fetchall()}
    cannot_link = " AND ".join([f"{g} <> 0" for g in ("gamma_given_name", "gamma_dob") if g in pred_cols] or ["TRUE"])
    # ...unless a strong identifier agrees (NHS digits or another national identifier, exactly or one
    # transposition apart): then the replaced name or date is a recording error of one person, not a twin
    same_id = " OR ".join(f"{g} >= 1" for g in ("gamma_nhs_number", "gamma_national_id") if g in pred_cols)
    if same_id:
        cannot_link = f"(({cannot_link}) OR {same_id})"
    # ...and two NHS numbers more than one transposition or typo apart say "two people", the mirror of the
    # deterministic same-number link: with a threshold chosen near 0.5 (person.choose_threshold) their mild negative
    # weight alone no longer kept such pairs apart (same name and date of birth, different numbers)
    if "gamma_nhs_number" in pred_cols:
        cannot_link = f"({cannot_link} AND gamma_nhs_number <> 0)"
    run(con, f"""
        CREATE OR REPLACE TEMP TABLE _edges AS
        WITH e AS (
            -- Cannot-link: an entirely different given name (not a nickname, typo or transposition) at the
            -- same address is the signature of twins and siblings, and an entirely different date of birth
            -- (not a swap, typo or within a year) that of a parent and child with one name; they agree on
            -- everything else, so EM cannot tell them from matches. Such pairs link only when evidence says
            -- "one person": an agreeing NHS number or national identifier (exact or one transposition), or a
            -- clerical decision (they still reach the review queue); and two NHS numbers more than one edit
            -- apart never link by score. Measured (docs/matching.md, #23): an
            -- absolute rule left FEBRL's duplicates whose given name or date of birth was replaced unlinked
            -- (FEBRL 1 F1 0.920 even with their social security numbers agreeing); no rule at all took the test
            -- county to 0.717.
            SELECT least(unique_id_l, unique_id_r) AS a, greatest(unique_id_l, unique_id_r) AS b,
                   match_probability FROM _pred WHERE {cannot_link}
            UNION ALL SELECT least(unique_id_l, unique_id_r), greatest(unique_id_l, unique_id_r), match_probability
                FROM ({nhs_sql})
            UNION ALL SELECT least(unique_id, rep_id), greatest(unique_id, rep_id), 1.0
                FROM _rep_map WHERE unique_id <> rep_id
            UNION ALL SELECT a, b, 1.0 FROM _decisions WHERE decision = 'match'
        )
        SELECT a AS unique_id_l, b AS unique_id_r, max(match_probability) AS match_probability
        FROM e WHERE (a, b) NOT IN (SELECT (a, b) FROM _decisions WHERE decision IN ('non_match', 'nonmatch', 'no'))
        GROUP BY 1, 2
    """)
    # the clerical review queue: borderline pairs nobody has decided yet, with every comparison's detail
    if mode == "full" and score and narrow is not None:
        _review_from_wide(con, db_api, linker)
    else:
        run(con, f"CREATE OR REPLACE TEMP TABLE _review AS SELECT p.* FROM _pred p WHERE {_REVIEW_WHERE} "
                 "ORDER BY p.match_probability DESC")


#: Columns that must all agree for two strong records to be exact duplicates (everything the model compares).
DUPLICATE_KEY = ("given_name", "family_name", "dob", "sex", "postcode", "nhs_digits", "uprn", "addr_numbers",
                 "addr_words", "national_id")


def _collapse_duplicates(con, mode: str) -> None:
    """``_rep_map`` (unique_id, rep_id) and ``_reps``: one representative per group of exact duplicates.

    Records that agree on every compared column (with given name, family name and date of birth present)
    would get identical scores against everyone and a certain match with each other, so Splink scores one
    of them and the rest join it by a deterministic edge. Incrementally, a new record that duplicates an
    indexed one takes the indexed one as representative, so it is never scored at all."""
    key = ", ".join(DUPLICATE_KEY)
    # the group's smallest id, indexed records first: an ordered window (first_value) sorts inside every group;
    # a whole-group aggregate does not (county full link: 9.6 s -> 7.5 s on a shared machine, the same map)
    incremental = mode == "incremental"
    rep = "arg_min(unique_id, (is_new, unique_id))" if incremental else "min(unique_id)"
    strong = ("(SELECT *, unique_id NOT IN (SELECT record_id FROM _prev) AS is_new FROM _strong)" if incremental
              else "_strong")
    run(con, f"""
        CREATE OR REPLACE TEMP TABLE _rep_map AS
        SELECT unique_id,
               CASE WHEN given_name IS NOT NULL AND family_name IS NOT NULL AND dob IS NOT NULL
                    THEN {rep} OVER (PARTITION BY {key})
                    ELSE unique_id END AS rep_id
        FROM {strong}
    """)
    run(con, """CREATE OR REPLACE TEMP TABLE _reps AS
        SELECT s.* FROM _strong s SEMI JOIN (SELECT unique_id FROM _rep_map WHERE unique_id = rep_id) r
        USING (unique_id)""")


def update_index(con: duckdb.DuckDBPyConnection, prepared: str, previous: pd.DataFrame | str | None = None,
                 model: dict | None = None, full: bool = False,
                 decisions: pd.DataFrame | None = None, trainer=None, settings=None, score_as=None) -> LinkResult:
    """Link the prepared records (see :func:`normalise.prepare_records`) into the stable index.

    Args:
        con: DuckDB connection holding ``prepared`` (the engine seam: Splink runs on this connection).
        prepared: table of prepared records (``unique_id`` = record_id).
        previous: the existing ``record_id, person_id`` index, a frame or a table name on ``con``
            (None or empty on the first run).
        model: a trained Splink model dict; trained on ``prepared`` when None.
        full: re-link everything (otherwise only records not in ``previous`` are linked).
        decisions: clerical decisions ``record_id_l, record_id_r, decision (match|non_match)``.
        trainer: ``train_model(db_api, sdf)`` of the model to train when ``model`` is None: the clear model's
            (default) or :func:`orchestration.lib.matching.encoded_model.train_model` for encoded records.
        settings: the run's settings (engine, and for Spark the home whose identifiable zone holds its
            checkpoints); None links on DuckDB on ``con`` (a stand-alone link with no home: ``placelink link``).
        score_as: ``score_as(con, table)`` -> the SELECT list of a compact copy of ``table`` that a full DuckDB
            link scores on (the same equalities, cheaper to join and compare): the encoded model's
            :func:`~orchestration.lib.matching.encoded_model.compact_columns`; None scores the records as they are.
    """
    if isinstance(previous, str):
        run(con, f"""CREATE OR REPLACE TEMP TABLE _prev AS SELECT CAST(record_id AS VARCHAR) AS record_id,
                     CAST(person_id AS VARCHAR) AS person_id FROM {previous}""")
    else:
        prev = previous if previous is not None else pd.DataFrame(columns=INDEX_COLUMNS)
        prev = prev[INDEX_COLUMNS].astype(str)
        con.register("_prev_df", prev)
        run(con, "CREATE OR REPLACE TEMP TABLE _prev AS SELECT record_id, person_id FROM _prev_df")
        con.unregister("_prev_df")
    n_prev = con.execute("SELECT count(*) FROM _prev").fetchall()[0][0]
    n_total = con.execute(f"SELECT count(*) FROM {prepared}").fetchall()[0][0]
    mode = "full" if (full or n_prev == 0) else "incremental"
    run(con, f"CREATE OR REPLACE TEMP TABLE _strong AS SELECT * FROM {prepared} WHERE NOT weak_identifiers")
    n_strong = con.execute("SELECT count(*) FROM _strong").fetchall()[0][0]
    db_api = splink_api(con, settings)  # Spark when settings.engine says so, else DuckDB on con: engine.py
    summary: dict = {"mode": mode, "records": n_total, "weak_identifier_records": n_total - n_strong}
    review = pd.DataFrame()
    n_new_strong = n_strong if mode == "full" else con.execute(
        "SELECT count(*) FROM _strong WHERE unique_id NOT IN (SELECT record_id FROM _prev)").fetchall()[0][0]
    _collapse_duplicates(con, mode)
    summary["records_scored_by_splink"] = con.execute("SELECT count(*) FROM _reps").fetchall()[0][0]
    n_new_reps = summary["records_scored_by_splink"] if mode == "full" else con.execute(
        "SELECT count(*) FROM _reps WHERE unique_id NOT IN (SELECT record_id FROM _prev)").fetchall()[0][0]
    if n_strong >= 2 and n_new_strong > 0:
        if model is None:
            # training sees every strong record (EM needs the duplicates' agreement); prediction only the reps
            model = (trainer or pm.train_model)(db_api, db_api.register("_strong"))
            summary["model_trained"] = True
        sdf = db_api.register("_reps", table_name="_reps_for_predict")
        engine_model = model_for_engine(db_api, model)
        for col in TF_COLUMNS:
            # term frequencies of the whole population, not of the representatives: the scores are then
            # exactly those every duplicate would have had
            run(con, f"""CREATE OR REPLACE TEMP TABLE _tf_{col} AS
                SELECT {col}, CAST(count(*) AS DOUBLE) / (SELECT count({col}) FROM _strong) AS tf_{col}
                FROM _strong WHERE {col} IS NOT NULL GROUP BY 1""")

        def linker_for(m: dict, records=sdf, suffix: str = ""):
            out = pm.make_linker(db_api, records, m)
            for col in TF_COLUMNS:
                out.table_management.register_term_frequency_lookup(db_api.register(f"_tf_{col}{suffix}"), col)
            return out

        linker = linker_for(engine_model)
        narrow, narrow_records = None, "_reps"
        if NARROW_SCORING and mode == "full" and getattr(db_api, "placelink_engine", "duckdb") == "duckdb":
            # a full link on DuckDB scores narrow: the same model without its compared columns in the output;
            # on ``score_as``'s compact copy of the records when the caller gives one (encoded tokens as integers)
            narrow_sdf = sdf
            if score_as is not None:
                narrow_records = "_reps_scored"
                for table, out in [("_reps", narrow_records)] + [(f"_tf_{c}", f"_tf_{c}_scored")
                                                                 for c in TF_COLUMNS]:
                    run(con, f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT {score_as(con, table)} FROM {table}")
                narrow_sdf = db_api.register(narrow_records, table_name="_reps_scored_for_predict")
            narrow = linker_for({**engine_model, "retain_matching_columns": False,
                                 "retain_intermediate_calculation_columns": False}, narrow_sdf,
                                "_scored" if score_as is not None else "")
        if mode == "incremental":
            run(con, "CREATE OR REPLACE TEMP TABLE _strong_old AS "
                        "SELECT * FROM _reps WHERE unique_id IN (SELECT record_id FROM _prev)")
            run(con, "CREATE OR REPLACE TEMP TABLE _strong_new AS "
                        "SELECT * FROM _reps WHERE unique_id NOT IN (SELECT record_id FROM _prev)")
        _edges(con, db_api, linker, mode, decisions, score=n_new_reps > 0, narrow=narrow,
               narrow_records=narrow_records)
        review = con.execute("SELECT * FROM _review").df()
    else:
        _drop_pred(con)
        for t in ("_edges", "_pred"):
            run(con, f"CREATE OR REPLACE TEMP TABLE {t} (unique_id_l VARCHAR, unique_id_r VARCHAR, "
                        "match_probability DOUBLE)")
    summary["pairs_scored_above_review_floor"] = con.execute("SELECT count(*) FROM _pred").fetchall()[0][0]
    summary["review_queue_pairs"] = len(review)

    # the match threshold from this run's scored pairs (the model's posteriors), not a constant
    summary.update(pm.choose_threshold(con, "_edges"))
    if mode == "full":
        _full_assign(con, prepared, summary["match_threshold"])
    else:
        _incremental_assign(con, prepared, summary["match_threshold"])
    # every record's old and new key, joined once: the changes and the summary's four counts read it (four
    # joins of 1.5 M rows each were ~3 s of a county nightly's matching)
    run(con, """CREATE OR REPLACE TEMP TABLE _index_pairs AS
        SELECT n.record_id, p.record_id IS NOT NULL AS in_prev, p.person_id AS old_person_id,
               n.person_id AS new_person_id
        FROM _new_index n LEFT JOIN _prev p USING (record_id)""")
    changes = con.execute("""
        SELECT record_id, old_person_id, new_person_id, 'changed' AS change FROM _index_pairs
        WHERE old_person_id IS DISTINCT FROM new_person_id AND old_person_id IS NOT NULL
    """).df()
    summary.update(_change_summary(con))
    _households(con, prepared)
    summary["persons"], summary["households"] = (int(v) for v in con.execute(
        "SELECT (SELECT count(DISTINCT person_id) FROM _new_index), (SELECT count(DISTINCT household_id) FROM _hh)"
    ).fetchall()[0])
    return LinkResult(con, "_new_index", "_hh", review, changes, summary, model)


def _households(con, prepared: str) -> None:
    """``_hh`` (record_id, household_id): ``H<uprn>`` of the record's own address, else of its person's most
    frequent one. Ties go to the larger UPRN: DuckDB's ``mode()`` breaks them arbitrarily, and on the county
    ~4,000 records changed household between two runs over the same records."""
    run(con, f"""
        CREATE OR REPLACE TEMP TABLE _hh AS
        WITH u AS (SELECT n.record_id, n.person_id, p.uprn FROM _new_index n JOIN {prepared} p
                   ON p.unique_id = n.record_id),
        usual AS (
            SELECT person_id, arg_max(uprn, (n, uprn)) AS uprn
            FROM (SELECT person_id, uprn, count(*) AS n FROM u WHERE uprn IS NOT NULL GROUP BY 1, 2)
            GROUP BY 1
        )
        SELECT u.record_id, CASE WHEN coalesce(u.uprn, m.uprn) IS NOT NULL THEN 'H' || coalesce(u.uprn, m.uprn) END
                   AS household_id
        FROM u LEFT JOIN usual m USING (person_id)
    """)


def _anchored_clusters(con, prepared: str, nodes: str, edges: str, out: str, threshold: float) -> None:
    """Connected components that a record without a date of birth cannot bridge.

    Plain connected components chain: one "Molly O'Brien, no DOB" record links to the mother (1976) and to
    the daughter (2014) and merges them. So clusters are formed from edges between records that have a
    date of birth (anchors); a record without one then joins the cluster of its single best strong link
    (``>= person.STRONG_EDGE``), and only records with no such link cluster among themselves, by strong links too. Writes ``out`` (unique_id, cluster_id)."""
    run(con, f"""CREATE OR REPLACE TEMP TABLE _anchor_nodes AS
        SELECT n.unique_id, p.dob IS NOT NULL AS anchor FROM {nodes} n JOIN {prepared} p USING (unique_id)""")
    run(con, f"""CREATE OR REPLACE TEMP TABLE _anchor_edges AS
        SELECT e.* FROM {edges} e
        JOIN _anchor_nodes l ON l.unique_id = e.unique_id_l JOIN _anchor_nodes r ON r.unique_id = e.unique_id_r
        WHERE l.anchor AND r.anchor AND e.match_probability >= {threshold}""")
    run(con, "CREATE OR REPLACE TEMP TABLE _anchor_only AS SELECT unique_id FROM _anchor_nodes WHERE anchor")
    cc = pm.guarded_components(con, "_anchor_only", "_anchor_edges", threshold=threshold)
    run(con, f"CREATE OR REPLACE TEMP TABLE _anchor_cc AS SELECT unique_id, cluster_id FROM {cc}")
    # each undated record's best link to an anchor: a strong one (an undated record has lost the identifier that
    # tells a namesake apart; at county, undated pairs between the chosen threshold and the strong bar were 22 %
    # true, dated ones 73 %: docs/matching.md)
    loose = max(threshold, pm.STRONG_EDGE)
    run(con, f"""CREATE OR REPLACE TEMP TABLE _loose_best AS
        WITH e AS (
            SELECT unique_id_l AS loose, unique_id_r AS other, match_probability FROM {edges}
            UNION ALL SELECT unique_id_r, unique_id_l, match_probability FROM {edges}
        )
        SELECT e.loose AS unique_id, arg_max(c.cluster_id, (e.match_probability, c.cluster_id)) AS cluster_id
        FROM e JOIN _anchor_nodes n ON n.unique_id = e.loose AND NOT n.anchor
        JOIN _anchor_cc c ON c.unique_id = e.other
        WHERE e.match_probability >= {loose}
        GROUP BY 1""")
    run(con, """CREATE OR REPLACE TEMP TABLE _loose_nodes AS
        SELECT unique_id FROM _anchor_nodes WHERE NOT anchor AND unique_id NOT IN (SELECT unique_id FROM _loose_best)""")
    run(con, """CREATE OR REPLACE TEMP TABLE _loose_edges AS
        SELECT e.* FROM _anchor_edges e WHERE FALSE""")
    run(con, f"""INSERT INTO _loose_edges SELECT e.* FROM {edges} e
        WHERE e.unique_id_l IN (SELECT unique_id FROM _loose_nodes)
          AND e.unique_id_r IN (SELECT unique_id FROM _loose_nodes)
          AND e.match_probability >= {loose}""")
    cc2 = pm.guarded_components(con, "_loose_nodes", "_loose_edges", threshold=loose)
    run(con, f"""CREATE OR REPLACE TEMP TABLE {out} AS
        SELECT unique_id, CAST(cluster_id AS VARCHAR) AS cluster_id FROM _anchor_cc
        UNION ALL SELECT unique_id, CAST(cluster_id AS VARCHAR) FROM _loose_best
        UNION ALL SELECT unique_id, 'loose:' || CAST(cluster_id AS VARCHAR) FROM {cc2}""")


def _full_assign(con, prepared: str, threshold: float) -> None:
    run(con, f"CREATE OR REPLACE TEMP TABLE _nodes AS SELECT unique_id FROM {prepared}")
    _anchored_clusters(con, prepared, "_nodes", "_edges", "_clusters", threshold)
    run(con, "CREATE OR REPLACE TEMP TABLE _cc AS SELECT unique_id AS record_id, cluster_id FROM _clusters")
    # overlap of each new cluster with each previous person, assigned greedily largest-first
    overlaps = con.execute("""
        SELECT c.cluster_id, p.person_id, count(*) AS n
        FROM _cc c JOIN _prev p USING (record_id) GROUP BY 1, 2 ORDER BY n DESC, p.person_id, c.cluster_id
    """).fetchall()
    taken_c, taken_p, keep = set(), set(), []
    # Plain Python greedy matching: the overlap list is at most one row per (cluster, previous person).
    for cluster_id, person_id, _n in overlaps:
        if cluster_id not in taken_c and person_id not in taken_p:
            taken_c.add(cluster_id)
            taken_p.add(person_id)
            keep.append((cluster_id, person_id))
    con.register("_keep_df", pd.DataFrame(keep, columns=["cluster_id", "person_id"]).astype(str))
    run(con, f"""
        CREATE OR REPLACE TEMP TABLE _new_index AS
        WITH firsts AS (SELECT cluster_id, min(record_id) AS first_record FROM _cc GROUP BY 1),
        keys AS (
            SELECT f.cluster_id, coalesce(k.person_id, {_new_key_sql('f.first_record')}) AS person_id
            FROM firsts f LEFT JOIN _keep_df k ON k.cluster_id = CAST(f.cluster_id AS VARCHAR)
        )
        SELECT c.record_id, k.person_id FROM _cc c JOIN keys k USING (cluster_id)
    """)
    con.unregister("_keep_df")


def _incremental_assign(con, prepared: str, threshold: float) -> None:
    # Graph over new records plus one node per existing person; existing persons are never joined to
    # each other, so a new record with links to several persons takes the one it links to most strongly.
    run(con, f"""
        CREATE OR REPLACE TEMP TABLE _new AS
        SELECT unique_id AS record_id FROM {prepared} WHERE unique_id NOT IN (SELECT record_id FROM _prev)
    """)
    run(con, f"""
        CREATE OR REPLACE TEMP TABLE _to_old AS
        WITH e AS (  -- both orientations, so the joins below are equi-joins (an IN-list join is a nested loop)
            SELECT unique_id_l AS a, unique_id_r AS b, match_probability FROM _edges
            WHERE match_probability >= {threshold}
            UNION ALL SELECT unique_id_r, unique_id_l, match_probability FROM _edges
            WHERE match_probability >= {threshold}
        )
        SELECT n.record_id, p.person_id, max(e.match_probability) AS p
        FROM e JOIN _new n ON n.record_id = e.a JOIN _prev p ON p.record_id = e.b
        GROUP BY 1, 2
    """)
    run(con, """
        CREATE OR REPLACE TEMP TABLE _direct AS
        SELECT record_id, arg_max(person_id, (p, person_id)) AS person_id, count(*) AS n_persons
        FROM _to_old GROUP BY 1
    """)
    # new records without a direct link: cluster them among themselves; a cluster containing a directly
    # linked record takes that record's person
    run(con, f"""
        CREATE OR REPLACE TEMP TABLE _new_edges AS
        SELECT e.* FROM _edges e
        WHERE e.unique_id_l IN (SELECT record_id FROM _new) AND e.unique_id_r IN (SELECT record_id FROM _new)
          AND e.match_probability >= {threshold}
    """)
    run(con, "CREATE OR REPLACE TEMP TABLE _nodes AS SELECT record_id AS unique_id FROM _new")
    _anchored_clusters(con, prepared, "_nodes", "_new_edges", "_clusters", threshold)
    run(con, f"""
        CREATE OR REPLACE TEMP TABLE _new_index AS
        WITH c AS (SELECT unique_id AS record_id, cluster_id FROM _clusters),
        cluster_person AS (  -- the person most of the cluster's linked records take (ties: the larger id)
            SELECT cluster_id, arg_max(person_id, (n, person_id)) AS person_id
            FROM (SELECT c.cluster_id, d.person_id, count(*) AS n FROM c JOIN _direct d USING (record_id)
                  WHERE d.person_id IS NOT NULL GROUP BY 1, 2)
            GROUP BY 1
        ),
        firsts AS (SELECT cluster_id, min(record_id) AS first_record FROM c GROUP BY 1)
        SELECT c.record_id, coalesce(d.person_id, cp.person_id, {_new_key_sql('f.first_record')}) AS person_id
        FROM c LEFT JOIN _direct d USING (record_id) LEFT JOIN cluster_person cp USING (cluster_id)
        JOIN firsts f USING (cluster_id)
        UNION ALL SELECT record_id, person_id FROM _prev
    """)


def _change_summary(con) -> dict:
    """Persons merged and split, records re-keyed and new, from ``_index_pairs``."""
    merged, split, changed, new_records = con.execute("""
        SELECT (SELECT count(*) FROM (SELECT new_person_id FROM _index_pairs WHERE in_prev
                                      GROUP BY 1 HAVING count(DISTINCT old_person_id) > 1)),
               (SELECT count(*) FROM (SELECT old_person_id FROM _index_pairs WHERE in_prev
                                      GROUP BY 1 HAVING count(DISTINCT new_person_id) > 1)),
               count(*) FILTER (WHERE in_prev AND new_person_id <> old_person_id),
               count(*) FILTER (WHERE NOT in_prev)
        FROM _index_pairs""").fetchall()[0]
    out = {"persons_merged": int(merged), "persons_split": int(split), "records_rekeyed": int(changed),
           "new_records": int(new_records)}
    if con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = '_direct'").fetchall()[0][0]:
        out["merge_candidates"] = int(con.execute("SELECT count(*) FROM _direct WHERE n_persons > 1").fetchall()[0][0])
    return out
