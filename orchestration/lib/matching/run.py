"""The matching stage as the CLI and Dagster call it: read the identifiable zone, match, write, measure, log.

- :func:`run_matching` -- address matching + person linkage over ``link.person_records`` in the
  identifiable zone; writes ``link.address_matches``, ``link.person_index``, ``link.household_index``,
  appends ``link.person_index_changes``, exports the clerical review queue, scores against ``truth/`` when
  present and logs a linkage run to MLflow. Returns the metrics (the Dagster asset puts them in metadata).
- :func:`link_file` -- the generic ``placelink link INPUT OUTPUT`` for any standard-person-record file.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from orchestration.lib.config import Settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.matching import encoded_run
from orchestration.lib.matching import metrics as lm
from orchestration.lib.matching import person as pm
from orchestration.lib.matching.address import match_addresses, prepare_gazetteer
from orchestration.lib.matching.index import update_index
from orchestration.lib.matching.normalise import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    IgnoredColumnWarning,
    MissingFieldWarning,
    check_columns,
    prepare_records,
    run,
)
from orchestration.lib.matching.pictures import REVIEW_QUEUE
from orchestration.lib.spreadsheet import people_csv, undo

#: Warnings ``placelink link`` / ``link-eval`` report to the user.
REPORTED_WARNINGS = (MissingFieldWarning, IgnoredColumnWarning)

REVIEW_DECISIONS = "person_review_decisions.csv"
#: Columns a reviewer sees for each borderline pair.
REVIEW_DETAIL = ["given_name", "family_name", "dob", "sex", "postcode", "uprn", "nhs_number"]

Progress = Callable[[str], None]


def review_dir(settings: Settings) -> Path:
    """Where the review queue is exported and decisions are read: inside the identifiable zone."""
    return settings.identifiable_dir / "review"


#: Before #5 the queue was written to ``<home>/review/``, outside the identifiable zone.
LEGACY_REVIEW_DIR = "review"


def _read_table_file(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise PlacelinkError("input file does not exist", where=str(path), fix="check the path")
    suffix = path.suffix.lower()
    con = duckdb.connect()
    if suffix == ".parquet":
        try:
            return con.execute("SELECT * FROM read_parquet(?)", [str(path)]).df()
        except duckdb.Error:  # DuckDB's message can quote the file's bytes
            raise PlacelinkError("the file is not a readable Parquet file", where=str(path),
                                 fix="write it again as Parquet (or send CSV)") from None
    if suffix in (".csv", ".txt", ".tsv"):
        if path.stat().st_size == 0:
            raise PlacelinkError("the file is empty: no header row", where=str(path),
                                 fix="write a header row with record_id and the person columns, then the records")
        _check_utf8(path)
        _check_header(path)
        # every column as text: record ids, NHS numbers and postcodes must not be re-typed
        return con.execute("SELECT * FROM read_csv(?, all_varchar = true, header = true)", [str(path)]).df()
    raise PlacelinkError(f"unsupported file type {suffix!r}", where=str(path), fix="use .csv or .parquet")


def _check_utf8(path: Path) -> None:
    """Refuse text that is not UTF-8, naming the line (never its content): DuckDB's own message quotes the row."""
    with path.open("rb") as f:
        for line_no, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PlacelinkError(f"the file is not UTF-8 text (byte 0x{line[exc.start]:02X} is not valid UTF-8)",
                                     where=f"{path}: line {line_no}",
                                     fix="save the file as UTF-8 (e.g. iconv -f cp1252 -t utf-8)") from None


def _check_header(path: Path) -> None:
    """Refuse a header naming one column twice: the reader would rename the second copy and it would go unused."""
    import csv

    with path.open(encoding="utf-8", newline="") as f:
        header = next(csv.reader(f), [])
    names = [h.strip() for h in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated and "record_id" in names:  # only then is line 1 known to be a header, safe to name
        raise PlacelinkError(f"column(s) {', '.join(repeated)} appear more than once in the header",
                             where=f"{path}: line 1", fix="give each column one name, once")
    if repeated:
        raise PlacelinkError("the first line repeats a value; it does not read as a header with record_id",
                             where=f"{path}: line 1", fix="write a header row with record_id and the person columns")


def _write_table_file(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)


def _validate_ids(df: pd.DataFrame, where: str) -> None:
    check_columns(df.columns, where=where)
    # with record_id present the first line is a header, so its other names are column names, not a person's data
    ignored = [c for c in df.columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if ignored:
        warnings.warn(f"column(s) {', '.join(map(str, ignored))} are not in the standard person record and are not "
                      f"used (its columns: {', '.join(OPTIONAL_COLUMNS)})", IgnoredColumnWarning, stacklevel=3)
    if df["record_id"].isna().any():
        row = int(df.index.get_loc(df.index[df["record_id"].isna()][0])) + 2
        raise PlacelinkError("record_id is empty", where=f"{where}: row {row}, column record_id",
                             fix="give every record a unique record_id")
    dupes = df["record_id"][df["record_id"].duplicated()]
    if len(dupes):
        # by row number, not by value: a record id can be a pupil number or an NHS number
        row = int(df.index.get_loc(dupes.index[0])) + 2
        raise PlacelinkError(f"{len(dupes)} record_id value(s) appear more than once (first repeat on row {row})",
                             where=f"{where}: column record_id", fix="record_id must be unique")


def _link_result(df: pd.DataFrame, model: dict | None, where: str):
    """Validate and link a standard-person-record frame; the :class:`LinkResult` (None for an empty frame)."""
    _validate_ids(df, where)
    if len(df) == 0:
        return None
    con = duckdb.connect()
    con.register("_input_df", df)
    run(con, "CREATE TABLE _input AS SELECT * FROM _input_df")
    prepare_records(con, "_input", "_prepared")
    return update_index(con, "_prepared", model=model)


def link_frame(df: pd.DataFrame, model: dict | None = None, where: str = "input") -> pd.DataFrame:
    """Link a standard-person-record frame on its own; returns ``record_id, person_id``."""
    result = _link_result(df, model, where)
    if result is None:
        return pd.DataFrame({"record_id": pd.Series(dtype=str), "person_id": pd.Series(dtype=str)})
    return result.person_index


#: The column of a labelled sample holding the true person (any value; records of one person share it).
LABEL_COLUMN = "true_person_id"


def evaluate_frame(df: pd.DataFrame, label_column: str = LABEL_COLUMN, model: dict | None = None,
                   where: str = "input") -> dict:
    """Link a labelled sample as ``placelink link`` would (the label column is never shown to the model) and score
    the result against the labels: pairwise and cluster precision / recall / F1, blocking recall, comparisons, the
    match threshold chosen. Records with an empty label are linked but not scored. Aggregates only: no value."""
    if label_column not in df.columns:
        raise PlacelinkError(f"the label column {label_column} is missing",
                             where=f"{where}: header", fix=f"add a column {label_column} holding the true person "
                             "(records of one person share a value), or name yours with --label-column")
    labels = df[label_column].astype("string").str.strip().replace("", pd.NA)
    if labels.notna().sum() < 2:
        raise PlacelinkError(f"fewer than two records carry a label in column {label_column}",
                             where=f"{where}: column {label_column}",
                             fix="label at least a few hundred records, both matches and non-matches")
    records = df.drop(columns=[label_column])
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _link_result(records, model, where)
    link_seconds = time.perf_counter() - t0
    truth = pd.DataFrame({"record_id": records["record_id"].astype(str), "person_id": labels}).dropna()
    predicted = result.person_index
    pw = lm.pairwise_metrics(predicted.astype(str), truth.astype(str))
    out = {"records": len(df), "labelled_records": len(truth), "true_persons": int(truth["person_id"].nunique()),
           "precision": pw["precision"], "recall": pw["recall"], "f1": pw["f1"],
           **lm.cluster_metrics(predicted, truth), "true_pairs": pw["true_pairs"],
           "predicted_pairs": pw["predicted_pairs"],
           # blocking over the records the model scores (with a date of birth or a family name)
           **lm.blocking_stats(result.con, "_strong", pm.blocking_rule_sqls(), truth),
           **{k: result.summary.get(k) for k in ("match_threshold", "expected_f1", "threshold_candidates")},
           "link_seconds": round(link_seconds, 2),
           "warnings": [str(w.message) for w in caught if issubclass(w.category, REPORTED_WARNINGS)]}
    return out


def evaluate_file(input_path: Path, label_column: str = LABEL_COLUMN, model_path: Path | None = None) -> dict:
    """``placelink link-eval LABELLED``: :func:`evaluate_frame` over a CSV/Parquet file."""
    df = _read_table_file(Path(input_path))
    model = pm.load_model(model_path) if model_path else None
    return evaluate_frame(df, label_column=label_column, model=model, where=str(input_path))


def link_file(input_path: Path, output_path: Path, model_path: Path | None = None) -> dict:
    """``placelink link INPUT OUTPUT``: any CSV/Parquet in the standard person record -> ``record_id, person_id``.

    ``warnings`` in the result name each person field that is absent or empty (the model links on the rest)."""
    df = _read_table_file(Path(input_path))
    model = pm.load_model(model_path) if model_path else None
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = link_frame(df, model=model, where=str(input_path))
    _write_table_file(out, Path(output_path))
    return {"records": len(df), "persons": int(out["person_id"].nunique()) if len(out) else 0,
            "seconds": round(time.perf_counter() - t0, 2),
            "warnings": [str(w.message) for w in caught if issubclass(w.category, REPORTED_WARNINGS)]}


def _load_truth(con: duckdb.DuckDBPyConnection, settings: Settings) -> set[str] | None:
    """The generator's truth/records.parquet as TEMP table ``_truth`` keyed like person records; returns the
    columns it holds (None when there is no truth).

    Records without a true person are left out; a record listed twice keeps its first row."""
    path = settings.truth / "records.parquet"
    if not path.exists():
        return None
    rel = f"read_parquet('{path}', file_row_number = true)"
    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}
    where = "WHERE person_id IS NOT NULL" if "person_id" in cols else ""
    kept = [c for c in ("person_id", "household_id", "uprn", "lsoa_code") if c in cols]
    keep = "".join(f"{c}, " for c in kept)
    run(con, f"""CREATE OR REPLACE TEMP TABLE _truth AS
        SELECT * EXCLUDE (file_row_number) FROM (
          SELECT {keep}file_row_number,
                 CAST(partner AS VARCHAR) || '.' || CAST(feed AS VARCHAR) || ':' || CAST(record_id AS VARCHAR)
                   AS record_id
          FROM {rel} {where})
        QUALIFY row_number() OVER (PARTITION BY record_id ORDER BY file_row_number) = 1""")
    return {"record_id", *kept}


#: Bump when address.py's scoring changes: every stored address match is then redone.
ADDRESS_MATCHER_VERSION = "2"


def _reference_fingerprint(*paths: Path) -> str:
    h = hashlib.sha256(ADDRESS_MATCHER_VERSION.encode())
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _configure(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """DuckDB threads = the machine's cores (2 here) and a memory limit (spilling to the home's tmp/), so a
    county-scale run stays inside its RSS budget. ``PLACELINK_DUCKDB_MEMORY`` overrides the limit.

    4 GB, not 6: DuckDB fills whatever it is allowed, and matching runs inside the refresh process after the feed
    steps, so a 6 GB limit took a 24-month county full refresh to 7.6 GB of its 8 GB budget. Measured on that
    county's first match (EM training, every address): 6 GB 70.8 s / 6.4 GB peak RSS, 4 GB 73.7 s / 4.6 GB; a full
    re-link 56.1 s / 6.7 GB against 57.0 s / 4.7 GB."""
    threads = int(os.environ.get("PLACELINK_DUCKDB_THREADS", os.cpu_count() or 2))
    memory = os.environ.get("PLACELINK_DUCKDB_MEMORY", "4GB")
    tmp = settings.identifiable_dir / "tmp"  # spilled pages hold identifiers: inside the zone
    tmp.mkdir(parents=True, exist_ok=True)
    run(con, f"SET threads = {threads}")
    run(con, f"SET memory_limit = '{memory}'")
    run(con, f"SET temp_directory = '{tmp}'")
    run(con, "SET preserve_insertion_order = false")


def run_matching(settings: Settings, full: bool = False, progress: Progress | None = None,
                 log_to_mlflow: bool = True, retrain: bool = False) -> dict:
    """Match everything in the identifiable zone. Incremental unless ``full`` (or no index exists yet).

    The latest saved model is reused; a new model version is trained with EM when none exists or ``retrain``."""
    settings = settings.ensure()
    if not settings.identifiable_db.exists():
        raise PlacelinkError("the identifiable zone does not exist yet", where=str(settings.identifiable_db),
                             fix="run `placelink ingest` first")
    con = duckdb.connect()
    try:
        return _match(con, settings, full, progress, log_to_mlflow, retrain)
    finally:
        # also when the run fails: a failure kept by its caller (Dagster's retry, the CLI's report) keeps the
        # run's frame alive, and with it the attached zone; the retry in this process could not attach it again
        con.close()


def _match(con: duckdb.DuckDBPyConnection, settings: Settings, full: bool, progress: Progress | None,
           log_to_mlflow: bool, retrain: bool) -> dict:
    say = progress or (lambda _msg: None)
    t_start = time.perf_counter()
    run_at = datetime.now(UTC).replace(tzinfo=None)
    _configure(con, settings)
    run(con, f"ATTACH '{settings.identifiable_db}' AS idz")
    tables = {(r[0], r[1]) for r in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'idz'").fetchall()}
    if ("link", "person_records") not in tables:
        raise PlacelinkError("table link.person_records is missing", where=str(settings.identifiable_db),
                             fix="run `placelink ingest` first: it writes the standard person records")
    run(con, "CREATE SCHEMA IF NOT EXISTS idz.link")
    # the second line after ingest: records loaded before a person was erased or opted out leave the zone
    # (quarantined without their text) before anything links them
    from orchestration.lib.governance.erasure import purge_excluded

    excluded = purge_excluded(con, settings, db="idz")
    if excluded["purged"]:
        say(f"excluded before matching: {excluded['purged']} (erasure / opt-out lists changed)")
    run(con, "CREATE TEMP TABLE _records AS SELECT * FROM idz.link.person_records")
    n = con.execute("SELECT count(*) FROM _records").fetchall()[0][0]
    say(f"{n:,} person records")

    # --- addresses -------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    gaz, pcs = settings.reference / "gazetteer.csv", settings.reference / "postcodes.csv"
    for p in (gaz, pcs):
        if not p.exists():
            raise PlacelinkError("reference file is missing", where=str(p),
                                 fix="run `placelink generate` (or place the gazetteer/postcode directory there)")
    run(con, f"CREATE TEMP TABLE _postcodes AS SELECT * FROM read_csv('{pcs}', all_varchar = true, header = true)")
    # Only records never matched, or whose address, postcode or UPRN changed, or every record when the
    # gazetteer, postcode directory or matcher changed (the fingerprint is part of each record's input hash):
    # a full person re-link does not re-match 1.5 M unchanged addresses against an unchanged gazetteer.
    fingerprint = _reference_fingerprint(gaz, pcs)
    run(con, f"""CREATE TEMP TABLE _address_inputs AS
        SELECT record_id, md5(concat_ws('|', coalesce(CAST(address AS VARCHAR), ''),
                                        coalesce(CAST(postcode AS VARCHAR), ''),
                                        coalesce(CAST(uprn AS VARCHAR), ''), '{fingerprint}')) AS input_hash
        FROM _records""")
    reusable = {("link", "address_matches"), ("link", "address_match_inputs")} <= tables
    # the normalised gazetteer is kept in the zone (reference data, no person) while its fingerprint holds
    cached = ("link", "gazetteer_tokens") in tables and con.execute(
        "SELECT count(*) = 1 AND bool_and(fingerprint = ?) FROM idz.link.gazetteer_tokens_fingerprint",
        [fingerprint]).fetchall()[0][0] if ("link", "gazetteer_tokens_fingerprint") in tables else False
    if not cached:
        run(con, f"CREATE TEMP TABLE _gazetteer AS SELECT * FROM read_csv('{gaz}', all_varchar = true, header = true)")
        prepare_gazetteer(con, "_gazetteer", "idz.link.gazetteer_tokens")
        run(con, f"""CREATE OR REPLACE TABLE idz.link.gazetteer_tokens_fingerprint AS
                     SELECT '{fingerprint}' AS fingerprint""")
    if reusable:
        run(con, """CREATE TEMP TABLE _new_records AS SELECT r.* FROM _records r
                    ANTI JOIN (SELECT i.record_id FROM idz.link.address_match_inputs i
                               JOIN _address_inputs USING (record_id, input_hash)
                               SEMI JOIN idz.link.address_matches m USING (record_id)) k USING (record_id)""")
        match_addresses(con, "_new_records", "_gazetteer", "_postcodes", out_table="_new_matches",
                        prepared_gazetteer="idz.link.gazetteer_tokens")
        _stamp(con, "_new_matches", "matched_at", run_at)
        run(con, "ALTER TABLE idz.link.address_matches ADD COLUMN IF NOT EXISTS matched_at TIMESTAMP")
        # only the rows that changed are written (a nightly drop is a few hundred of 1.7 M)
        run(con, """DELETE FROM idz.link.address_matches WHERE record_id IN (SELECT record_id FROM _new_matches)
                    OR record_id NOT IN (SELECT record_id FROM _records)""")
        run(con, "INSERT INTO idz.link.address_matches BY NAME SELECT * FROM _new_matches")
        run(con, """DELETE FROM idz.link.address_match_inputs WHERE record_id IN (SELECT record_id FROM _new_records)
                    OR record_id NOT IN (SELECT record_id FROM _records)""")
        run(con, """INSERT INTO idz.link.address_match_inputs BY NAME
                    SELECT * FROM _address_inputs SEMI JOIN _new_records USING (record_id)""")
    else:
        run(con, "CREATE TEMP TABLE _new_records AS SELECT * FROM _records")
        match_addresses(con, "_records", "_gazetteer", "_postcodes", out_table="_new_matches",
                        prepared_gazetteer="idz.link.gazetteer_tokens")
        _stamp(con, "_new_matches", "matched_at", run_at)
        run(con, "CREATE OR REPLACE TABLE idz.link.address_matches AS SELECT * FROM _new_matches")
        run(con, "CREATE OR REPLACE TABLE idz.link.address_match_inputs AS SELECT * FROM _address_inputs")
    encoded_run.record_partner_lsoa(con, tables)  # encoded feeds: the LSOA their partner matched
    run(con, "CREATE TEMP TABLE _address_matches AS SELECT * FROM idz.link.address_matches")
    addresses_matched = con.execute("SELECT count(*) FROM _new_records").fetchall()[0][0]
    address_seconds = time.perf_counter() - t0
    say(f"address matching: {address_seconds:.1f}s ({addresses_matched:,} records matched, the rest unchanged)")

    # --- people ----------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    run(con, """CREATE TEMP TABLE _linkable AS
        SELECT r.* EXCLUDE (uprn), coalesce(a.uprn, CAST(r.uprn AS VARCHAR)) AS uprn
        FROM _records r LEFT JOIN _address_matches a USING (record_id)""")
    prepare_records(con, "_linkable", "_prepared")
    previous = "idz.link.person_index" if ("link", "person_index") in tables else None
    model_path = None if retrain else pm.latest_model(settings.models_dir)
    model = pm.load_model(model_path) if model_path else None
    decisions = _load_decisions(con, settings)
    has_index = previous is not None and con.execute(f"SELECT count(*) FROM {previous}").fetchall()[0][0] > 0
    mode = "full" if (full or not has_index) else "incremental"
    say(f"person linkage ({mode}{', training a new model' if model is None else ', model ' + model_path.name})")
    result = update_index(con, "_prepared", previous=encoded_run.clear_previous(con, previous, tables), model=model,
                          full=full, decisions=decisions, settings=settings)
    # records of encoded feeds: their own model, the same index (a person key joins records of one mode)
    result = encoded_run.link_with_encoded(con, settings, result, previous, tables, full=full, retrain=retrain,
                                           decisions=decisions, say=say)
    if model is None and result.model is not None:
        model_path = pm.save_model(result.model, settings.models_dir)
    link_seconds = time.perf_counter() - t0
    say(f"person linkage: {link_seconds:.1f}s, {result.summary.get('persons', 0):,} persons")

    _write_index(con, "person_index", "person_id", result.person_table, run_at, tables)
    _write_index(con, "household_index", "household_id", result.household_table, run_at, tables)
    changes = result.changes.assign(run_at=run_at, mode=mode)
    run(con, """CREATE TABLE IF NOT EXISTS idz.link.person_index_changes (
        run_at TIMESTAMP, mode VARCHAR, record_id VARCHAR, old_person_id VARCHAR, new_person_id VARCHAR,
        change VARCHAR)""")
    if len(changes):
        con.register("_changes", changes)
        run(con, "INSERT INTO idz.link.person_index_changes BY NAME SELECT * FROM _changes")
    queue_path = _export_review_queue(con, settings, result.review_queue, model=result.model)

    write_seconds = time.perf_counter() - t0 - link_seconds
    # --- measure ---------------------------------------------------------------------------------------------
    t_eval = time.perf_counter()
    out: dict = {"mode": mode, "records": int(n), "address_seconds": round(address_seconds, 2),
                 "addresses_matched": int(addresses_matched),
                 "link_seconds": round(link_seconds, 2), "write_seconds": round(write_seconds, 2),
                 "records_per_minute": round(n / max(link_seconds + address_seconds, 1e-9) * 60),
                 "model": model_path.name if model_path else None, "review_queue": str(queue_path),
                 "exclusions_fingerprint": excluded["fingerprint"],
                 **{f"excluded_{reason}": n for reason, n in excluded["purged"].items()},
                 **{k: v for k, v in result.summary.items() if not isinstance(v, bool)}}
    out.update({f"address_method_{k}": int(v) for k, v in con.execute(
        "SELECT match_method, count(*) FROM _address_matches GROUP BY 1 ORDER BY 1").fetchall()})
    truth_columns = _load_truth(con, settings)
    if truth_columns is not None:
        truth = "_truth"
        # scored inside DuckDB on the run's own tables: no 1.5 M-row pandas round trips (county: 12 s -> ~7 s)
        pi, hi = "idz.link.person_index", "idz.link.household_index"
        out.update({f"person_{k}": v for k, v in lm.pairwise_metrics_sql(con, pi, truth).items()})
        run(con, f"""CREATE TEMP VIEW _strong_pi AS SELECT * FROM {pi}
                    SEMI JOIN (SELECT record_id FROM _records
                               WHERE NOT (date_of_birth IS NULL AND family_name IS NULL)) USING (record_id)""")
        out.update({f"person_strong_{k}": v for k, v in lm.pairwise_metrics_sql(con, "_strong_pi", truth).items()
                    if k in ("precision", "recall", "f1")})
        if "household_id" in truth_columns:
            out.update({f"household_{k}": v for k, v in
                        lm.pairwise_metrics_sql(con, hi, truth, "household_id", "household_id").items()
                        if k in ("precision", "recall", "f1")})
        if {"uprn", "lsoa_code"} <= truth_columns:
            out.update(lm.address_metrics_sql(con, "_address_matches", truth, "_records"))
    out["evaluation_seconds"] = round(time.perf_counter() - t_eval, 2)  # scoring against truth/ (tests only)
    out["total_seconds"] = round(time.perf_counter() - t_start, 2)
    if log_to_mlflow:
        _log_mlflow(settings, out, model_path, con, result)
    return out


def _stamp(con: duckdb.DuckDBPyConnection, table: str, column: str, at: datetime) -> None:
    run(con, f"ALTER TABLE {table} ADD COLUMN {column} TIMESTAMP")
    con.execute(f"UPDATE {table} SET {column} = ?", [at]).fetchall()


def _write_index(con: duckdb.DuckDBPyConnection, name: str, id_col: str, new_table: str, run_at: datetime,
                 tables: set) -> None:
    """Replace ``link.<name>`` (record_id, <id_col>, changed_at). ``changed_at`` is when the record's id last
    changed: kept from the stored index when the id is the same, else this run. The src tables re-key only the
    records changed since they were built, so a nightly does not re-key 1.7 M records to find 50 k changed."""
    target = f"idz.link.{name}"
    stamped = ("link", name) in tables and con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = 'idz' AND schema_name = 'link' "
        "AND table_name = ? AND column_name = 'changed_at'", [name]).fetchall()[0][0]
    changed_at = (f"CASE WHEN o.record_id IS NOT NULL AND o.{id_col} IS NOT DISTINCT FROM n.{id_col} "
                  "THEN o.changed_at ELSE $run_at END") if stamped else "$run_at"
    previous = f"LEFT JOIN {target} o ON o.record_id = n.record_id" if stamped else ""
    # DuckDB reads the stored index before it replaces it, in one statement
    con.execute(f"""CREATE OR REPLACE TABLE {target} AS
        SELECT n.record_id, n.{id_col}, CAST({changed_at} AS TIMESTAMP) AS changed_at
        FROM (SELECT CAST(record_id AS VARCHAR) AS record_id, CAST({id_col} AS VARCHAR) AS {id_col}
              FROM {new_table}) n {previous}
        ORDER BY n.record_id""", {"run_at": run_at}).fetchall()


def _read_decisions_csv(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str)
    for c in ("record_id_l", "record_id_r"):  # ids copied from the queue may keep its quote (spreadsheet.defuse)
        if c in df.columns:
            df[c] = df[c].map(undo, na_action="ignore")
    missing = [c for c in ("record_id_l", "record_id_r", "decision") if c not in df.columns]
    if missing:
        raise PlacelinkError(f"review decisions lack column(s) {', '.join(missing)}", where=str(path),
                             fix="keep the columns record_id_l, record_id_r, decision (match | non_match)")
    bad = df[~df["decision"].str.strip().str.lower().isin(["match", "non_match"]) & df["decision"].notna()]
    if len(bad):
        raise PlacelinkError(f"decision {bad['decision'].iloc[0]!r} is not match or non_match",
                             where=f"{path}: row {int(bad.index[0]) + 2}, column decision",
                             fix="write match or non_match (or leave the row out)")
    df = df[df["decision"].notna()]
    for c in ("reviewer", "note"):
        if c not in df.columns:
            df[c] = None
    return df[["record_id_l", "record_id_r", "decision", "reviewer", "note"]]


def _load_decisions(con, settings: Settings) -> pd.DataFrame:
    """Import the reviewers' decisions file into ``link.review_decisions`` (identifiable zone) and return
    every decision on record, latest per pair. The table is the record of decisions: they keep feeding every
    later run even after the file is edited or emptied. A decisions file left in the pre-#5 ``<home>/review/``
    folder (outside the zone) is imported too, then that folder's files are removed."""
    run(con, """CREATE TABLE IF NOT EXISTS idz.link.review_decisions (
        record_id_l VARCHAR, record_id_r VARCHAR, decision VARCHAR, reviewer VARCHAR, note VARCHAR,
        imported_at TIMESTAMP)""")
    legacy = settings.home / LEGACY_REVIEW_DIR
    sources = [review_dir(settings) / REVIEW_DECISIONS, legacy / REVIEW_DECISIONS]
    now = datetime.now(UTC).replace(tzinfo=None)
    for path in sources:
        if not path.exists():
            continue
        df = _read_decisions_csv(path)
        if len(df):
            con.register("_decisions_in", df.astype(object))
            # a pair's decision is added only when it differs from the latest one on record for that pair
            run(con, f"""INSERT INTO idz.link.review_decisions
                SELECT i.record_id_l, i.record_id_r, lower(trim(i.decision)), i.reviewer, i.note,
                       TIMESTAMP '{now}'
                FROM _decisions_in i
                LEFT JOIN (SELECT least(record_id_l, record_id_r) a, greatest(record_id_l, record_id_r) b,
                                  arg_max(decision, imported_at) AS decision
                           FROM idz.link.review_decisions GROUP BY 1, 2) d
                  ON d.a = least(i.record_id_l, i.record_id_r) AND d.b = greatest(i.record_id_l, i.record_id_r)
                WHERE d.decision IS DISTINCT FROM lower(trim(i.decision))""")
            con.unregister("_decisions_in")
    if legacy.is_dir():
        for name in (REVIEW_QUEUE, REVIEW_DECISIONS):
            (legacy / name).unlink(missing_ok=True)
        if not any(legacy.iterdir()):
            legacy.rmdir()
    return con.execute("""
        SELECT least(record_id_l, record_id_r) AS record_id_l, greatest(record_id_l, record_id_r) AS record_id_r,
               arg_max(decision, imported_at) AS decision
        FROM idz.link.review_decisions GROUP BY 1, 2""").df()


def _export_review_queue(con, settings: Settings, review: pd.DataFrame, model: dict | None = None,
                         records_table: str = "_prepared") -> Path:
    """Keep the borderline pairs a person should decide in ``link.review_queue`` (identifiable zone) and
    export them, with every comparison's detail, to ``<home>/identifiable/review/`` with an empty decisions
    file next to it (``decision`` = match | non_match) that the next run imports. Next to them, Splink's
    waterfall chart of every pair and its comparison viewer (``pictures.write_review_explanations``); each
    queue row names its waterfall file and position (``explanation_file``, ``explanation_pair``). Clear
    identifiers: all of it stays inside the identifiable zone (docs/design.md), readable by the owner (the matching
    service account) only."""
    from orchestration.lib.matching.pictures import waterfall_file, write_review_explanations

    out_dir = review_dir(settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in (settings.identifiable_dir, out_dir):
        p.chmod(0o700)
    path = out_dir / REVIEW_QUEUE
    cols = ["unique_id_l", "unique_id_r", "match_probability", "match_weight"]
    cols += [f"{c}_{s}" for c in REVIEW_DETAIL for s in ("l", "r")]
    cols += [c for c in review.columns if c.startswith("gamma_") or c.startswith("bf_")]
    if len(review):
        q = review[[c for c in cols if c in review.columns]].rename(
            columns={"unique_id_l": "record_id_l", "unique_id_r": "record_id_r"}).reset_index(drop=True)
        where = [waterfall_file(i) for i in range(len(q))]
        q["explanation_file"] = [f for f, _ in where]
        q["explanation_pair"] = pd.array([n for _, n in where], dtype="Int64")  # empty beyond the explained pairs
    else:
        q = pd.DataFrame({"record_id_l": pd.Series(dtype=str), "record_id_r": pd.Series(dtype=str),
                          "match_probability": pd.Series(dtype=float)})
    con.register("_queue_df", q)
    run(con, "CREATE OR REPLACE TABLE idz.link.review_queue AS SELECT * FROM _queue_df")
    con.unregister("_queue_df")
    # for a reviewer's spreadsheet: a partner value like =HYPERLINK(...) is written as text, not a live formula
    people_csv(q, path)
    decisions = out_dir / REVIEW_DECISIONS
    if not decisions.exists():
        pd.DataFrame(columns=["record_id_l", "record_id_r", "decision", "reviewer", "note"]).to_csv(
            decisions, index=False)
    for p in (path, decisions):
        p.chmod(0o600)
    write_review_explanations(con, records_table, model, review.reset_index(drop=True), out_dir)
    return path


def _log_mlflow(settings: Settings, out: dict, model_path: Path | None, con, result) -> None:
    """One MLflow run per matching run in experiment ``linkage``: metrics, m/u parameters, charts, model."""
    import mlflow

    settings.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    if mlflow.get_experiment_by_name("linkage") is None:
        mlflow.create_experiment("linkage", artifact_location=settings.mlflow_artifacts.as_uri())
    mlflow.set_experiment("linkage")
    with mlflow.start_run(run_name=f"linkage-{out['mode']}"):
        mlflow.log_params({"mode": out["mode"], "model": out.get("model"), "strong_edge": pm.STRONG_EDGE,
                           "review_band": str(pm.REVIEW_BAND)})
        mlflow.log_metrics({k: float(v) for k, v in out.items()
                            if isinstance(v, int | float) and not isinstance(v, bool)})
        if model_path and model_path.exists():
            mlflow.log_artifact(str(model_path), artifact_path="model")
            model = pm.load_model(model_path)
            mu = {}
            for comp in model.get("comparisons", []):
                for i, lvl in enumerate(comp.get("comparison_levels", [])):
                    for k in ("m_probability", "u_probability"):
                        if lvl.get(k) is not None:
                            mu[f"{comp['output_column_name']}.{i}.{k[0]}"] = float(lvl[k])
            mlflow.log_metrics(mu)
            for name, html in _diagnostic_charts(con, model, result).items():
                mlflow.log_text(html, name)


def _diagnostic_charts(con, model: dict, result) -> dict[str, str]:
    """Splink's diagnostic charts of this run (aggregates only: ``pictures.run_diagnostics``), offline HTML."""
    from orchestration.lib.matching.pictures import run_diagnostics

    # ``_pred`` is the run's scored pairs, left on the connection by ``index.update_index``
    pred = "_pred" if con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = '_pred'").fetchall()[0][0] else None
    try:
        return run_diagnostics(con, "_prepared", model, pred, result.person_table)
    except Exception as exc:  # the charts are a convenience; never fail a run over them
        # the exception's type only: a message could quote SQL or values
        return {"diagnostics_unavailable.txt": f"linkage charts unavailable: {type(exc).__name__}"}
