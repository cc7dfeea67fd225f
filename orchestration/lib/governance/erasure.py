"""Erasure and objection: remove one person from everything placelink holds, prove it, keep them out.

``erase(settings, partner="police", record_id="PR-000123")`` (or ``person_key=TOKEN``):

1. resolves the person: the partner's raw row(s) with that record id -> their standard ``record_id``
   (``<partner>.<feed>:<id>``) -> ``person_id`` in ``link.person_index`` -> every record linked to that
   person, from every feed (an objection is to the linked processing, not to one partner's row);
2. deletes, scanning **every base table** of the identifiable zone and the warehouse: rows whose
   ``_record_id``/``record_id``/``person_id`` (identifiable) or ``person_key``/``record_key`` (warehouse)
   belong to the person; ``ops.quarantine`` rows of the partner whose raw text contains the record id, and of
   any feed whose raw text holds their NHS number or name + date of birth; rows of Parquet/CSV files under the
   home (published files, the clerical review files in ``identifiable/review/``) that carry those keys; the
   analysts' copies (``governance/roles/analyst*.duckdb``, rebuilt from the cleaned warehouse). Published
   place counts are aggregates: the next refresh recomputes them without the person;
3. adds the person to the exclusion list (``governance/governance.duckdb``, table ``erasures``: HMACs with the
   pseudonym key of the record ids, of their NHS number and of name+date of birth, and their ``person_key``),
   runs the second line (:func:`purge_excluded`) for records of theirs linkage never tied to them, and
   rewrites both DuckDB files from their live rows (a DELETE leaves the bytes in freed blocks);
4. re-scans, searches the DuckDB files and Dagster's and MLflow's stores byte for byte, and fails loudly if
   anything is left;
5. writes a proof-of-erasure (what was deleted where, counts, stores checked, a hash of that proof) to the
   audit log.

Ingest honours the list on arrival (:class:`Exclusions`, loaded once per load: a new record id, another
spelling or a missing NHS number change nothing), matching runs :func:`purge_excluded` first whenever the
exclusion or national data opt-out list changed, and the nightly planner compares
:func:`exclusions_fingerprint` with the one matching last applied, so a plain refresh rebuilds what depends
on them.

The landing drops that held the person are listed in the proof; they stay as delivered by the partner
(the exclusion list keeps them from loading again) until retention deletes them.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from orchestration.lib.config import Settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance._store import locked_connect
from orchestration.lib.governance._tables import base_tables, open_zone, qualified
from orchestration.lib.governance.audit import canonical_json, current_user, record_event
from orchestration.lib.pseudonymise import normalise_name, normalise_nhs_number
from orchestration.lib.spreadsheet import defuse

#: quarantine reasons of the records the exclusion lists keep out (ingest writes them, erasure purges by them)
OPT_OUT_REASON = "national_data_opt_out"
ERASED_REASON = "erased_or_objected"  # placelink erase: on the governance exclusion list


def read_opt_outs(reference: Path) -> frozenset[str]:
    """NHS numbers that opted out of secondary use (``reference/nhs_opt_outs.csv``, column ``nhs_number``).

    Read once per version of the file in a process: a refresh loads nine feeds in one process, and each read of
    a county's list (74 k numbers, normalised in Python) took 0.26 s."""
    path = reference / "nhs_opt_outs.csv"
    if not path.is_file():
        return frozenset()
    stat = path.stat()
    return _read_opt_outs(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _read_opt_outs(path_text: str, mtime_ns: int, size: int) -> frozenset[str]:  # noqa: ARG001 - cache key
    import csv

    path = Path(path_text)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if "nhs_number" not in (reader.fieldnames or []):
            raise PlacelinkError("the opt-out list has no nhs_number column", where=str(path),
                                 fix="write a CSV with a header line 'nhs_number'")
        return frozenset(n for n in (normalise_nhs_number(r["nhs_number"], validate=False) for r in reader) if n)


_ERASURES_DDL = """
CREATE TABLE IF NOT EXISTS erasures (
    erasure_id VARCHAR, erased_at TIMESTAMP, kind VARCHAR,   -- kind: record | person_key | identity
    value_hash VARCHAR,                                      -- HMAC token (pseudonym key), never a clear value
    reason VARCHAR, requested_by VARCHAR, proof_hash VARCHAR
)
"""
#: How ``value_hash`` was made. Rows written before #22 have no scheme: their ``record`` hashes are unkeyed
#: SHA-256 (reversible by hashing guessable record ids), their ``identity`` / ``person_key`` tokens were
#: already HMACs. A SHA-256 cannot be turned into an HMAC without the record id it hides, so those entries
#: stay, marked ``sha256``, and are still honoured (see :class:`Exclusions`); new entries are all HMACs.
SCHEME_HMAC = "hmac-sha256"
SCHEME_LEGACY = "sha256"


def governance_db(settings: Settings):
    return settings.governance_dir / "governance.duckdb"


def _migrate(con) -> None:
    """Give the exclusion list its ``scheme`` column (idempotent; cheap on a list of a few hundred rows)."""
    con.execute(_ERASURES_DDL)
    con.execute("ALTER TABLE erasures ADD COLUMN IF NOT EXISTS scheme VARCHAR")
    con.execute(f"UPDATE erasures SET scheme = CASE WHEN kind = 'record' THEN '{SCHEME_LEGACY}' "
                f"ELSE '{SCHEME_HMAC}' END WHERE scheme IS NULL")


_PADS: dict[bytes, tuple[Any, Any]] = {}


def _hmac_hex(key: bytes, kind: str, text: str) -> str:
    """``Pseudonymiser(key).token(kind, text)`` (HMAC-SHA256, RFC 2104), from SHA-256 states of the padded key
    computed once per key and copied per call. Ingest runs this on every row of a person feed: OpenSSL 3 looks
    the algorithm up again on each ``hmac.digest``/``hmac.new`` call, which measured 2-4x the cost of two
    copied states (tests/attack/test_erasure.py checks the result equals ``hmac.new``)."""
    pads = _PADS.get(key)
    if pads is None:
        k = hashlib.sha256(key).digest() if len(key) > 64 else key
        k = k.ljust(64, b"\x00")
        pads = _PADS[key] = (hashlib.sha256(bytes(b ^ 0x36 for b in k)), hashlib.sha256(bytes(b ^ 0x5C for b in k)))
    inner, outer = pads[0].copy(), pads[1].copy()
    inner.update(f"{kind}\x1f{text}".encode())
    outer.update(inner.digest())
    return outer.hexdigest()


def _record_text(partner: str, feed: str, record_id: str) -> str:
    return f"{partner}.{feed}:{record_id}"   # the standard record id, as in link.* (``<feed.source>:<id>``)


def record_hash(settings: Settings, partner: str, feed: str, record_id: str) -> str:
    """The exclusion-list form of a record id: an HMAC (pseudonym key) of ``<partner>.<feed>:<record_id>``.

    Keyed because record ids are guessable (``PR-000123``): an unkeyed hash of one is reversed by hashing the
    few million candidates."""
    from orchestration.lib.pseudonymise import load_key

    return _hmac_hex(load_key(settings), "erasure_record", _record_text(partner, feed, str(record_id)))


def legacy_record_hash(partner: str, feed: str, record_id: str) -> str:
    """The pre-#22 unkeyed form (sha256), only to recognise entries written before keyed hashes."""
    return hashlib.sha256(_record_text(partner, feed, str(record_id)).encode()).hexdigest()


def _tokens_for(key: bytes, *, nhs_number=None, given_name=None, family_name=None, date_of_birth=None) -> list[str]:
    """HMAC tokens that recognise a person in future drops: the normalised NHS number (check digit not
    required: a mistyped number is still theirs), and normalised given + family name with date of birth.
    Name + date of birth alone may also catch a namesake born the same day: that record is quarantined with a
    reason a person can review, which is the lesser harm than loading someone who objected."""
    out = []
    nhs = normalise_nhs_number(nhs_number, validate=False) if nhs_number is not None else None
    if nhs:
        out.append(_hmac_hex(key, "nhs_number", nhs))
    g, f = normalise_name(given_name), normalise_name(family_name)
    if g and f and date_of_birth:
        out.append(_hmac_hex(key, "erasure_name_dob", f"{g}|{f}|{str(date_of_birth)[:10]}"))
    return out


def _identity_tokens(settings: Settings, *, nhs_number=None, given_name=None, family_name=None,
                     date_of_birth=None) -> list[str]:
    """HMAC tokens (pseudonymisation key) that recognise the person in future drops."""
    from orchestration.lib.pseudonymise import load_key

    return _tokens_for(load_key(settings), nhs_number=nhs_number, given_name=given_name, family_name=family_name,
                       date_of_birth=date_of_birth)


# --- the exclusion list, for other stages -------------------------------------------------------------

def _entries(settings: Settings) -> list[tuple[str, str, str]]:
    """(kind, value_hash, scheme) of every exclusion-list entry."""
    with locked_connect(governance_db(settings), read_only=True) as con:
        if con is None:
            return []
        if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name='erasures'").fetchone()[0]:
            return []
        has_scheme = con.execute("SELECT count(*) FROM information_schema.columns WHERE table_name='erasures' "
                                 "AND column_name='scheme'").fetchone()[0]
        scheme = ("coalesce(scheme, CASE WHEN kind = 'record' THEN 'sha256' ELSE 'hmac-sha256' END)" if has_scheme
                  else "CASE WHEN kind = 'record' THEN 'sha256' ELSE 'hmac-sha256' END")
        return con.execute(f"SELECT kind, value_hash, {scheme} FROM erasures").fetchall()


@dataclass(frozen=True)
class Exclusions:
    """The exclusion list, read once per load and tested per row without touching the database.

    Plain data, so ingest hands it to its parsing worker processes. The key is in it only when the list is not
    empty (a home with no erasures never needs the pseudonym key to load a drop); it is only ever pickled to
    this machine's own worker processes."""

    key: bytes = field(default=b"", repr=False)
    records: frozenset[str] = frozenset()
    legacy_records: frozenset[str] = frozenset()
    identities: frozenset[str] = frozenset()
    person_keys: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.records or self.legacy_records or self.identities)

    def record(self, partner: str, feed: str, record_id: str) -> bool:
        """Whether this partner record id was erased (one HMAC; a SHA-256 too only while legacy entries exist)."""
        if not (self.records or self.legacy_records):
            return False
        text = _record_text(partner, feed, str(record_id))
        if self.records and _hmac_hex(self.key, "erasure_record", text) in self.records:
            return True
        return bool(self.legacy_records) and hashlib.sha256(text.encode()).hexdigest() in self.legacy_records

    def person(self, *, nhs_number=None, given_name=None, family_name=None, date_of_birth=None) -> bool:
        """Whether these identifiers are those of an erased or objecting person (two HMACs at most)."""
        if not self.identities:
            return False
        return any(t in self.identities for t in _tokens_for(
            self.key, nhs_number=nhs_number, given_name=given_name, family_name=family_name,
            date_of_birth=date_of_birth))


def load_exclusions(settings: Settings) -> Exclusions:
    """The exclusion list of this home (empty when nothing was ever erased)."""
    entries = _entries(settings)
    if not entries:
        return Exclusions()
    from orchestration.lib.pseudonymise import load_key

    by: dict[tuple[str, str], set[str]] = {}
    for kind, value, scheme in entries:
        by.setdefault((kind, scheme), set()).add(value)
    return Exclusions(key=load_key(settings), records=frozenset(by.get(("record", SCHEME_HMAC), ())),
                      legacy_records=frozenset(by.get(("record", SCHEME_LEGACY), ())),
                      identities=frozenset(by.get(("identity", SCHEME_HMAC), ())),
                      person_keys=frozenset(by.get(("person_key", SCHEME_HMAC), ())))


def excluded_record_hashes(settings: Settings) -> set[str]:
    """Keyed hashes of erased record ids (:func:`record_hash`); ingest uses :func:`load_exclusions` instead."""
    return set(load_exclusions(settings).records)


def is_excluded_record(settings: Settings, partner: str, feed: str, record_id: str) -> bool:
    return load_exclusions(settings).record(partner, feed, str(record_id))


def excluded_person_keys(settings: Settings) -> set[str]:
    """``person_key`` values ML training and scoring must drop."""
    return set(load_exclusions(settings).person_keys)


def excluded_identity_tokens(settings: Settings) -> set[str]:
    return set(load_exclusions(settings).identities)


def is_excluded_person(settings: Settings, *, nhs_number=None, given_name=None, family_name=None,
                       date_of_birth=None) -> bool:
    """True if these identifiers belong to an erased/objecting person (for ingest or linkage)."""
    return load_exclusions(settings).person(nhs_number=nhs_number, given_name=given_name, family_name=family_name,
                                            date_of_birth=date_of_birth)


def exclusions_fingerprint(settings: Settings) -> str:
    """What the exclusion list and the national data opt-out list hold, as one hash: the nightly planner rebuilds
    what applies them (matching, then everything downstream) when it differs from the one they last applied."""
    h = hashlib.sha256()
    for kind, value, scheme in sorted(_entries(settings)):
        h.update(f"{kind}|{value}|{scheme}\n".encode())
    opt_outs = settings.reference / "nhs_opt_outs.csv"
    if opt_outs.is_file():
        h.update(hashlib.sha256(opt_outs.read_bytes()).digest())
    return h.hexdigest()[:32]


# --- erase ----------------------------------------------------------------------------------------------

@dataclass
class ErasureProof:
    erasure_id: str
    request: dict[str, Any]
    deleted: list[dict[str, Any]] = field(default_factory=list)   # where, table, column, rows
    remaining: list[dict[str, Any]] = field(default_factory=list)  # must stay empty
    landing_files: list[str] = field(default_factory=list)
    #: stores searched that hold no person rows of their own (Dagster's storage, MLflow's): where, files, hits
    checked: list[dict[str, Any]] = field(default_factory=list)
    proof_hash: str = ""

    @property
    def total(self) -> int:
        return sum(d["rows"] for d in self.deleted)


def _person_key(settings: Settings, person_id: str) -> str | None:
    """The warehouse ``person_key`` of a ``person_id`` (the pseudonymise stage's own function)."""
    from orchestration.lib.pseudonymise import person_key

    return person_key(settings, person_id)


def _record_key(settings: Settings, record_id: str) -> str | None:
    """The warehouse ``record_key`` of a standard ``record_id`` (``<partner>.<feed>:<id>``)."""
    from orchestration.lib.pseudonymise import record_key

    return record_key(settings, record_id)


def _resolve(settings: Settings, partner: str | None, record_id: str | None, person_key: str | None):
    """-> (link record ids, person ids, raw (partner, feed, _record_id) triples, identity rows)."""
    link_ids: set[str] = set()
    person_ids: set[str] = set()
    with open_zone(settings.identifiable_db, read_only=True) as con:
        if con is None:
            if person_key is not None:  # a warehouse-only home (e.g. a partner's copy): erase by key alone
                return link_ids, person_ids, [], []
            raise PlacelinkError("there is no identifiable zone to erase from", where=str(settings.identifiable_db),
                                 fix="check --home, or erase by --person-key")
        tables = base_tables(con)
        if record_id is not None:
            for (schema, table), cols in tables.items():
                if schema == "raw" and table.startswith(f"{partner}__") and "_record_id" in cols:
                    n = con.execute(f"SELECT count(*) FROM {qualified(schema, table)} WHERE "
                                    "CAST(_record_id AS VARCHAR) = ?", [record_id]).fetchone()[0]
                    if n:
                        link_ids.add(f"{partner}.{table.split('__', 1)[1]}:{record_id}")
            if not link_ids:
                feeds = sorted(t for s, t in tables if s == "raw" and t.startswith(f"{partner}__"))
                raise PlacelinkError(f"no record {record_id!r} from partner {partner!r}",
                                     where=f"{settings.identifiable_db.name}: raw.{partner}__* ({len(feeds)} tables)",
                                     fix="use the record id exactly as the partner's file has it, or --person-key")
        has_index = ("link", "person_index") in tables
        if has_index and link_ids:
            person_ids |= {r[0] for r in con.execute(
                "SELECT DISTINCT CAST(person_id AS VARCHAR) FROM link.person_index WHERE record_id IN "
                "(SELECT unnest(?))", [sorted(link_ids)]).fetchall() if r[0] is not None}
        if has_index and person_key is not None:
            for (pid,) in con.execute("SELECT DISTINCT CAST(person_id AS VARCHAR) FROM link.person_index").fetchall():
                if pid is not None and _person_key(settings, pid) == person_key:
                    person_ids.add(pid)
        if has_index and person_ids:
            link_ids |= {r[0] for r in con.execute(
                "SELECT record_id FROM link.person_index WHERE CAST(person_id AS VARCHAR) IN (SELECT unnest(?))",
                [sorted(person_ids)]).fetchall()}
        identities = []
        if ("link", "person_records") in tables and link_ids:
            cur = con.execute("SELECT given_name, family_name, date_of_birth, nhs_number FROM link.person_records "
                              "WHERE record_id IN (SELECT unnest(?))", [sorted(link_ids)])
            identities = cur.fetchall()
    raw_ids = []
    for lid in sorted(link_ids):
        source, rid = lid.split(":", 1)
        p, f = source.split(".", 1)
        raw_ids.append((p, f, rid))
    return link_ids, person_ids, raw_ids, identities


def _scan_identifiable(con, tables, link_ids, person_ids, raw_ids, *, delete: bool,
                       identities=()) -> list[dict[str, Any]]:
    found = []

    def hit(schema, table, column, where, params):
        n = con.execute(f"SELECT count(*) FROM {qualified(schema, table)} WHERE {where}", params).fetchone()[0]
        if n:
            if delete:
                con.execute(f"DELETE FROM {qualified(schema, table)} WHERE {where}", params)
            found.append({"where": "identifiable", "table": f"{schema}.{table}", "column": column, "rows": n})

    by_feed: dict[tuple[str, str], list[str]] = {}
    for p, f, rid in raw_ids:
        by_feed.setdefault((p, f), []).append(rid)
    for (schema, table), cols in sorted(tables.items()):
        if schema == "raw" and "_record_id" in cols and "__" in table:
            p, f = table.split("__", 1)
            if by_feed.get((p, f)):
                hit(schema, table, "_record_id", "CAST(_record_id AS VARCHAR) IN (SELECT unnest(?))",
                    [by_feed[(p, f)]])
        elif "record_id" in cols and link_ids:
            hit(schema, table, "record_id", "CAST(record_id AS VARCHAR) IN (SELECT unnest(?))", [sorted(link_ids)])
        # pair tables (link.review_queue, link.review_decisions): either side may be the person
        pair_cols = [c for c in ("record_id_l", "record_id_r") if c in cols]
        if pair_cols and link_ids:
            hit(schema, table, "/".join(pair_cols),
                " OR ".join(f"CAST({c} AS VARCHAR) IN (SELECT unnest(?))" for c in pair_cols),
                [sorted(link_ids)] * len(pair_cols))
        if "person_id" in cols and person_ids:
            hit(schema, table, "person_id", "CAST(person_id AS VARCHAR) IN (SELECT unnest(?))", [sorted(person_ids)])
        if {"partner", "feed", "raw_text"} <= cols:
            for (p, f), rids in sorted(by_feed.items()):
                # the record id as a whole token of the raw line, so "12" does not match "123"
                pattern = "(^|[^A-Za-z0-9])(" + "|".join(re.escape(r) for r in rids) + ")([^A-Za-z0-9]|$)"
                hit(schema, table, "raw_text", "partner = ? AND feed = ? AND regexp_matches(raw_text, ?)",
                    [p, f, pattern])
            # rows of any feed quarantined before they got a record id of this person (a malformed line, a row
            # with no record id): found by the person's identifiers in the raw text, as whole tokens
            patterns = _identity_patterns(identities)
            if patterns:
                hit(schema, table, "raw_text (identifiers)",
                    "raw_text IS NOT NULL AND (" + " OR ".join(f"({w})" for w, _ in patterns) + ")",
                    [p for _, params in patterns for p in params])
    return found


_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y%m%d")


def _identity_patterns(identities) -> list[tuple[str, list]]:
    """SQL conditions on ``raw_text`` that hold when a quarantined line carries one of the person's identities:
    their NHS number (spaces and dashes ignored), or given name, family name and date of birth (any usual date
    format) together. Clear values are SQL parameters only, never written anywhere."""
    out = []
    for given, family, dob, nhs in sorted(set(identities), key=str):
        if nhs:
            out.append(("regexp_matches(regexp_replace(raw_text, '[ -]', '', 'g'), ?)",
                        [f"(^|[^0-9]){re.escape(str(nhs))}([^0-9]|$)"]))
        if given and family and dob:
            day = dob if isinstance(dob, dt.date) else dt.date.fromisoformat(str(dob)[:10])
            dates = "|".join(re.escape(day.strftime(f)) for f in _DATE_FORMATS)
            words = [f"(^|[^A-Z]){re.escape(str(n).upper())}([^A-Z]|$)" for n in (given, family)]
            text = "upper(strip_accents(raw_text))"
            out.append((f"regexp_matches({text}, ?) AND regexp_matches({text}, ?) AND regexp_matches(raw_text, ?)",
                        [*words, f"(^|[^0-9])({dates})([^0-9]|$)"]))
    return out


def _scan_warehouse(con, tables, person_keys, record_keys, *, delete: bool) -> list[dict[str, Any]]:
    found = []
    for (schema, table), cols in sorted(tables.items()):
        for column, values in (("person_key", person_keys), ("record_key", record_keys)):
            if column in cols and values:
                where = f"CAST({column} AS VARCHAR) IN (SELECT unnest(?))"
                n = con.execute(f"SELECT count(*) FROM {qualified(schema, table)} WHERE {where}",
                                [sorted(values)]).fetchone()[0]
                if n:
                    if delete:
                        con.execute(f"DELETE FROM {qualified(schema, table)} WHERE {where}", [sorted(values)])
                    found.append({"where": "warehouse", "table": f"{schema}.{table}", "column": column, "rows": n})
    return found


#: Home folders whose files are never scanned: partner drops (kept as delivered, see module doc), reference
#: data, synthetic truth, and service stores with no person rows.
_NOT_SCANNED = {"landing", "reference", "truth", "dagster", "mlflow", "keys", "governance", "models"}


def _scan_files(settings: Settings, person_keys, record_keys, link_ids, person_ids, *,
                delete: bool) -> list[dict[str, Any]]:
    """Parquet/CSV files under the home (``published/``, linkage ``review/`` queues ...) holding the person."""
    found = []
    con = duckdb.connect(":memory:")
    try:
        for path in sorted(settings.home.rglob("*")):
            rel = path.relative_to(settings.home)
            reader = {".parquet": "read_parquet", ".csv": "read_csv_auto"}.get(path.suffix)
            if not reader or rel.parts[0] in _NOT_SCANNED:
                continue
            cols = list(con.execute(f"SELECT * FROM {reader}(?) LIMIT 0", [str(path)]).df().columns)
            conds, params = [], []
            for col in cols:
                low = col.lower()
                values = (person_keys if low.startswith("person_key") else record_keys if low.startswith("record_key")
                          else link_ids if low.startswith("record_id") else person_ids if low.startswith("person_id")
                          else None)
                if values:
                    conds.append(f'CAST("{col}" AS VARCHAR) IN (SELECT unnest(?))')
                    # files for people hold text cells quoted against formulas (spreadsheet.people_csv)
                    params.append(sorted({str(v) for v in values} | {defuse(str(v)) for v in values}))
            if not conds:
                continue
            where = " OR ".join(conds)
            n = con.execute(f"SELECT count(*) FROM {reader}(?) WHERE {where}", [str(path), *params]).fetchone()[0]
            if n:
                if delete:
                    fmt = "PARQUET" if path.suffix == ".parquet" else "CSV, HEADER"
                    tmp = path.with_name(path.name + ".tmp")
                    con.execute(f"COPY (SELECT * FROM {reader}(?) WHERE NOT ({where})) TO '{tmp}' (FORMAT {fmt})",
                                [str(path), *params])
                    tmp.replace(path)
                found.append({"where": rel.parts[0], "table": str(rel), "column": "keys/record ids", "rows": n})
                found += _review_pages(settings, path, delete=delete)
    finally:
        con.close()
    return found


def _spark_scratch(settings: Settings, *, delete: bool) -> list[dict[str, Any]]:
    """Splink's checkpoints on Spark (``PLACELINK_ENGINE=spark``, docs/scaling.md): a linkage run writes its
    intermediate tables (prepared records with clear names and dates of birth, candidate pairs) as Parquet under
    the identifiable zone's ``spark/checkpoints/``, and no later run reads them. They are keyed by Splink's ids,
    not the zone's record ids, so one person's rows cannot be picked out: erasure deletes them all (the next
    linkage run writes its own)."""
    import shutil

    root = settings.spark_identifiable / "checkpoints"
    files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    if not files:
        return []
    if delete:
        for child in root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    return [{"where": "identifiable", "table": "spark/checkpoints (Splink's scratch on Spark)", "column": "files",
             "rows": len(files)}]


def _review_pages(settings: Settings, queue: Path, *, delete: bool) -> list[dict[str, Any]]:
    """The clerical review pages (Splink's waterfall and comparison viewer, with both records' names and dates
    of birth) are drawn from the review queue's rows: when the person is taken out of the queue they go too, and
    the next matching run draws them again from the cleaned queue."""
    from orchestration.lib.matching.pictures import REVIEW_QUEUE, explanation_files

    if queue.name != REVIEW_QUEUE:
        return []
    pages = explanation_files(queue.parent)
    for page in pages if delete else []:
        page.unlink()
    return [{"where": page.relative_to(settings.home).parts[0], "table": str(page.relative_to(settings.home)),
             "column": "review page (drawn from the queue)", "rows": 1} for page in pages]


def _scan_role_files(settings: Settings, person_keys, record_keys, *, delete: bool) -> list[dict[str, Any]]:
    """The analysts' copies (``governance/roles/analyst*.duckdb``, built by ``roles.refresh_role_files``):
    rows with the person's keys. They are derived from the warehouse, so "delete" rebuilds them from it (the
    person is already gone there); with no warehouse left, the copies are removed."""
    from orchestration.lib.governance.roles import refresh_role_files, role_dir

    found = []
    files = sorted(role_dir(settings).glob("analyst*.duckdb")) if role_dir(settings).is_dir() else []
    for path in files:
        with open_zone(path, read_only=True) as con:
            if con is None:
                continue
            found += [dict(d, where="governance", table=f"{path.name}:{d['table']}")
                      for d in _scan_warehouse(con, base_tables(con), person_keys, record_keys, delete=False)]
    if found and delete:
        if settings.warehouse_db.exists():
            refresh_role_files(settings)
        else:
            for path in files:
                path.unlink()
    return found


def _rewrite_database(path) -> None:
    """Rewrite a DuckDB file from its live rows and swap it in (same permissions). A DELETE only marks blocks
    free, so an erased person's bytes stayed readable in the file until reused (measured on the tiny county:
    their NHS number and name were still in ``identifiable.duckdb`` after erasure). Costs one copy of the
    zone per erasure, which is a rare, deliberate act."""
    import os
    import shutil

    if not path.exists():
        return
    tmp = path.with_name(path.name + ".erasing")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{path}' AS old (READ_ONLY)")
        con.execute(f"ATTACH '{tmp}' AS new")
        con.execute("COPY FROM DATABASE old TO new")
        con.execute("DETACH new")
    finally:
        con.close()
    shutil.copymode(path, tmp)
    os.replace(tmp, path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)


def _scan_bytes(settings: Settings, paths, needles: set[str]) -> list[dict[str, Any]]:
    """Each file searched byte for byte for any needle (one alternation, one pass; a needle of digits only
    as a whole number, so an NHS number is not found inside a longer one)."""
    parts = [(rb"(?<![0-9])" + re.escape(n.encode()) + rb"(?![0-9])") if n.isdigit() else re.escape(n.encode())
             for n in sorted(needles) if n]
    pattern = re.compile(b"|".join(parts)) if parts else None
    return [{"where": f"{p.name} (bytes)", "files": 1 if p.exists() else 0,
             "hits": [p.name] if p.exists() and pattern is not None and pattern.search(p.read_bytes()) else []}
            for p in paths]


def _scan_stores(settings: Settings, needles: set[str]) -> list[dict[str, Any]]:
    """Dagster's storage (run/event logs, compute logs) and MLflow's (tracking DB, artefacts) hold no person
    rows by design: ingest metadata is counts and a masked preview, training logs dataset digests, schemas and
    aggregate tables, never rows with keys. Searched byte for byte for the person's keys and record ids, so the
    proof says so; a hit is reported as a remainder (erasure cannot rewrite another program's store)."""
    out = []
    # one pass per file for every needle (an alternation), not one pass per needle
    pattern = re.compile(b"|".join(re.escape(n.encode()) for n in sorted(needles) if n)) if needles else None
    for where, root in (("dagster", settings.dagster_home), ("mlflow", settings.mlflow_dir)):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        hits = [str(p.relative_to(settings.home)) for p in files
                if pattern is not None and p.stat().st_size and pattern.search(p.read_bytes())]
        out.append({"where": where, "files": len(files), "hits": hits})
    return out


def erase(settings: Settings, *, partner: str | None = None, record_id: str | None = None,
          person_key: str | None = None, reason: str = "erasure request (UK GDPR Art. 17)",
          requested_by: str | None = None, dry_run: bool = False) -> ErasureProof:
    """Erase one person everywhere; returns the proof (also written to the audit log). See module doc."""
    if (record_id is None) == (person_key is None) or (record_id is not None and not partner):
        raise PlacelinkError("say who to erase: --partner P --record-id ID, or --person-key TOKEN",
                             fix="placelink erase --partner police --record-id PR-000123")
    link_ids, person_ids, raw_ids, identities = _resolve(settings, partner, record_id, person_key)
    person_keys = {k for k in (_person_key(settings, pid) for pid in person_ids) if k}
    if person_key:
        person_keys.add(person_key)
    record_keys = {k for k in (_record_key(settings, lid) for lid in link_ids) if k}
    proof = ErasureProof(erasure_id=str(uuid.uuid4()), request={
        "partner": partner, "record_id_hash": record_hash(settings, partner, "*", record_id) if record_id else None,
        "person_key": person_key, "reason": reason, "requested_by": requested_by or current_user(),
        "records": len(link_ids), "persons": len(person_ids), "dry_run": dry_run})

    with open_zone(settings.identifiable_db, read_only=dry_run) as con:
        tables = base_tables(con) if con is not None else {}
        if ("raw" in {s for s, _ in tables}) and raw_ids:
            for p, f, rid in raw_ids:
                if ("raw", f"{p}__{f}") in tables and "_source_file" in tables[("raw", f"{p}__{f}")]:
                    proof.landing_files += [r[0] for r in con.execute(
                        f"SELECT DISTINCT _source_file FROM raw.\"{p}__{f}\" WHERE CAST(_record_id AS VARCHAR) = ?",
                        [rid]).fetchall()]
        if con is not None and not dry_run:
            con.execute("BEGIN TRANSACTION")  # all of a zone's deletions, or none of them
        proof.deleted += _scan_identifiable(con, tables, link_ids, person_ids, raw_ids, delete=not dry_run,
                                            identities=identities)
        if not dry_run and con is not None:
            proof.remaining += _scan_identifiable(con, tables, link_ids, person_ids, raw_ids, delete=False,
                                                  identities=identities)
            con.execute("COMMIT")
    with open_zone(settings.warehouse_db, read_only=dry_run) as con:
        if con is not None:
            tables = base_tables(con)
            if not dry_run:
                con.execute("BEGIN TRANSACTION")
            proof.deleted += _scan_warehouse(con, tables, person_keys, record_keys, delete=not dry_run)
            if not dry_run:
                proof.remaining += _scan_warehouse(con, tables, person_keys, record_keys, delete=False)
                con.execute("COMMIT")
    proof.deleted += _scan_files(settings, person_keys, record_keys, link_ids, person_ids, delete=not dry_run)
    proof.deleted += _scan_role_files(settings, person_keys, record_keys, delete=not dry_run)
    proof.deleted += _spark_scratch(settings, delete=not dry_run)
    proof.checked = _scan_stores(settings, person_keys | record_keys | link_ids)
    if not dry_run:
        proof.remaining += _scan_files(settings, person_keys, record_keys, link_ids, person_ids, delete=False)
        proof.remaining += _scan_role_files(settings, person_keys, record_keys, delete=False)
        proof.remaining += _spark_scratch(settings, delete=False)
        proof.remaining += [{"where": c["where"], "table": f, "column": "bytes", "rows": 1}
                            for c in proof.checked for f in c["hits"]]
    proof.landing_files = sorted(set(proof.landing_files))

    if not dry_run:
        hashes = [("record", record_hash(settings, p, f, rid)) for p, f, rid in raw_ids]
        hashes += [("person_key", k) for k in sorted(person_keys)]
        for given, family, dob, nhs in identities:
            hashes += [("identity", t) for t in _identity_tokens(
                settings, nhs_number=nhs, given_name=given, family_name=family, date_of_birth=dob)]
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with locked_connect(governance_db(settings)) as gcon:
            _migrate(gcon)
            gcon.executemany("INSERT INTO erasures BY NAME SELECT ? AS erasure_id, ? AS erased_at, ? AS kind, "
                             "? AS value_hash, ? AS reason, ? AS requested_by, ? AS scheme",
                             [[proof.erasure_id, now, kind, value, reason, proof.request["requested_by"],
                               SCHEME_HMAC] for kind, value in sorted(set(hashes))])
        # records of theirs that linkage never tied to them (the second line, now rather than at the next match)
        if settings.identifiable_db.exists():
            con = duckdb.connect()
            try:
                con.execute(f"ATTACH '{settings.identifiable_db}' AS idz")
                purged = purge_excluded(con, settings, db="idz", erasures_only=True)["purged"]
            finally:
                con.close()
            proof.deleted += [{"where": "identifiable", "table": "raw.* / link.* (records not linked to them)",
                               "column": f"identity tokens -> quarantine ({why})", "rows": n}
                              for why, n in sorted(purged.items())]
        # DuckDB frees a deleted row's blocks without overwriting them: rewrite each zone from its live rows
        for path in (settings.identifiable_db, settings.warehouse_db):
            _rewrite_database(path)
        nhs_numbers = {str(i[3]) for i in identities if i[3]}
        proof.checked += _scan_bytes(settings, [settings.identifiable_db, settings.warehouse_db],
                                     person_keys | record_keys | link_ids | nhs_numbers)
        proof.remaining += [{"where": c["where"], "table": f, "column": "bytes", "rows": 1}
                            for c in proof.checked[-2:] for f in c["hits"]]
    body = {"erasure_id": proof.erasure_id, "request": proof.request, "deleted": proof.deleted,
            "remaining": proof.remaining, "checked": proof.checked, "landing_files": proof.landing_files}
    proof.proof_hash = hashlib.sha256(canonical_json(body).encode()).hexdigest()
    if not dry_run:
        with locked_connect(governance_db(settings)) as gcon:
            gcon.execute("UPDATE erasures SET proof_hash = ? WHERE erasure_id = ?", [proof.proof_hash,
                                                                                     proof.erasure_id])
    record_event(settings, action="erase_dry_run" if dry_run else "erase", target=f"person ({len(link_ids)} records)",
                 purpose="erasure", details={**body, "proof_hash": proof.proof_hash})
    if proof.remaining:
        raise PlacelinkError(f"erasure {proof.erasure_id} left rows behind: {proof.remaining}",
                             where="; ".join(r["table"] for r in proof.remaining),
                             fix="a writer may have re-added them; re-run placelink erase and report this")
    return proof


# --- the second line: people already in the identifiable zone ---------------------------------------------

APPLIED_TABLE = "ops.exclusions_applied"
#: Dagster asset tag of the step that applies the lists (matching), and the metadata key holding the
#: :func:`exclusions_fingerprint` it applied: the nightly planner compares the two.
EXCLUSIONS_TAG = "placelink/applies_exclusions"
EXCLUSIONS_METADATA = "exclusions_fingerprint"


def purge_excluded(con: duckdb.DuckDBPyConnection, settings: Settings, *, db: str = "idz",
                   feeds=None, erasures_only: bool = False) -> dict[str, Any]:
    """Remove from the identifiable zone (attached to ``con`` as ``db``, writable) every record of a person on
    the exclusion list or under the national data opt-out, when either list changed since it was last applied.

    Ingest keeps such people out of new drops; this catches the records loaded *before* the list changed: a
    record of an erased person that linkage had not tied to them (found by the keyed NHS-number / name+DOB
    tokens, computed inside DuckDB with the pseudonym key), and every row of a newly opted-out patient in a feed
    whose agreement applies the opt-out. Each such raw row becomes a quarantine row (file and line, reason
    ``erased_or_objected`` / ``national_data_opt_out``, no raw text) and the load log's counts move with it, so
    received = loaded + quarantined still holds; its ``link.*`` rows go; quarantined lines of opted-out patients
    lose their raw text. Matching runs this first (:func:`run_matching`); the src tables notice the missing raw
    rows and rebuild. Returns ``{"fingerprint", "purged": {reason: rows}, "skipped": bool}``.

    ``erasures_only`` (what :func:`erase` runs at once): the exclusion list only, always, and the lists are not
    recorded as applied (the opt-out list was not), so matching still runs the whole of it.
    """
    from orchestration.lib.pseudonymise import Pseudonymiser

    fingerprint = exclusions_fingerprint(settings)
    cols: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in con.execute(
            "SELECT schema_name, table_name, lower(column_name) FROM duckdb_columns() WHERE database_name = ?",
            [db]).fetchall():
        cols.setdefault((schema, table), set()).add(column)
    if ("ops", "exclusions_applied") in cols and not erasures_only:
        done = con.execute(f"SELECT fingerprint FROM {db}.{APPLIED_TABLE}").fetchall()
        if done and done[0][0] == fingerprint:
            return {"fingerprint": fingerprint, "purged": {}, "skipped": True}
    if erasures_only:
        feeds = []
    if feeds is None:
        from orchestration.lib.contracts import load_contracts

        feeds = [f for c in load_contracts() for f in c.feeds]
    ex = load_exclusions(settings)
    opt_outs = read_opt_outs(settings.reference)
    con.execute("CREATE OR REPLACE TEMP TABLE _purge (record_id VARCHAR, reason VARCHAR)")
    if ex and ("link", "person_records") in cols:
        pz = Pseudonymiser(ex.key)
        con.execute("CREATE OR REPLACE TEMP TABLE _ex_tokens AS SELECT unnest(?::VARCHAR[]) AS token",
                    [sorted(ex.identities | ex.records)])
        con.execute("CREATE OR REPLACE TEMP TABLE _ex_legacy AS SELECT unnest(?::VARCHAR[]) AS token",
                    [sorted(ex.legacy_records)])
        name_dob = ("pr.given_name || '|' || pr.family_name || '|' || strftime(pr.date_of_birth, '%Y-%m-%d')")
        with pz.sql_key(con):
            con.execute(f"""INSERT INTO _purge SELECT DISTINCT pr.record_id, '{ERASED_REASON}'
                FROM {db}.link.person_records pr CROSS JOIN {pz.KEY_TABLE} pzk
                WHERE {pz.token_sql('nhs_number', 'pr.nhs_number')} IN (SELECT token FROM _ex_tokens)
                   OR {pz.token_sql('erasure_name_dob', name_dob)} IN (SELECT token FROM _ex_tokens)
                   OR {pz.token_sql('erasure_record', 'pr.record_id')} IN (SELECT token FROM _ex_tokens)
                   OR sha256(pr.record_id) IN (SELECT token FROM _ex_legacy)""")
    opt_feeds = [f for f in feeds if f.agreement.national_data_opt_out and f.person and f.person.nhs_number
                 and any(c.name == f.person.nhs_number and c.sql_name in cols.get(("raw", f.name), ())
                         for c in f.columns)]
    if opt_outs and opt_feeds:
        con.execute("CREATE OR REPLACE TEMP TABLE _opt_outs AS SELECT unnest(?::VARCHAR[]) AS nhs", [sorted(opt_outs)])
        for f in opt_feeds:
            column = next(c.sql_name for c in f.columns if c.name == f.person.nhs_number)
            con.execute(f"""INSERT INTO _purge SELECT DISTINCT '{f.source}:' || r._record_id, '{OPT_OUT_REASON}'
                FROM {db}.raw."{f.name}" r WHERE {_nhs_sql(f'r."{column}"')} IN (SELECT nhs FROM _opt_outs)""")
            if ("ops", "quarantine") in cols:  # malformed lines of an opted-out patient keep no raw text
                con.execute(f"""UPDATE {db}.ops.quarantine SET raw_text = NULL, reason = '{OPT_OUT_REASON}'
                    WHERE partner = ? AND feed = ? AND raw_text IS NOT NULL AND len(list_intersect(
                        regexp_extract_all(regexp_replace(raw_text, '[ -]', '', 'g'), '[0-9]{{10}}'),
                        (SELECT list(nhs) FROM _opt_outs))) > 0""", [f.partner, f.id])
    purged: dict[str, int] = {}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if con.execute("SELECT count(*) FROM _purge").fetchone()[0]:
        for (schema, table), c in sorted(cols.items()):
            if schema == "raw" and "__" in table and {"_record_id", "_source_file", "_line"} <= c:
                partner, feed = table.split("__", 1)
                rel = f'{db}.raw."{table}"'
                match = (f"FROM {rel} r JOIN (SELECT record_id, min(reason) AS reason FROM _purge GROUP BY 1) p "
                         f"ON p.record_id = '{partner}.{feed}:' || r._record_id")
                moved = con.execute(f"SELECT r._partition, r._source_file, r._line, p.reason {match}").fetchall()
                if not moved:
                    continue
                if ("ops", "quarantine") in cols:
                    con.executemany(f"INSERT INTO {db}.ops.quarantine BY NAME SELECT ? AS partner, ? AS feed, "
                                    '? AS "partition", ? AS source_file, ? AS line, ? AS reason, '
                                    "NULL AS raw_text, ? AS quarantined_at",
                                    [[partner, feed, part, src, line, reason, now] for part, src, line, reason
                                     in moved])
                if ("ops", "load_log") in cols:
                    per_file = Counter(src for _, src, _, _ in moved)
                    con.executemany(f"UPDATE {db}.ops.load_log SET rows_loaded = rows_loaded - ?, "
                                    "rows_quarantined = rows_quarantined + ? WHERE partner = ? AND feed = ? "
                                    "AND source_file = ?", [[n, n, partner, feed, src] for src, n in per_file.items()])
                con.execute(f"DELETE FROM {rel} WHERE '{partner}.{feed}:' || _record_id IN "
                            "(SELECT record_id FROM _purge)")
                for *_, reason in moved:
                    purged[reason] = purged.get(reason, 0) + 1
            elif schema != "raw":
                for column in ("record_id", "record_id_l", "record_id_r"):
                    if column in c:
                        con.execute(f'DELETE FROM {db}."{schema}"."{table}" WHERE CAST({column} AS VARCHAR) IN '
                                    "(SELECT record_id FROM _purge)")
    if not erasures_only:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {db}.ops")
        con.execute(f"CREATE OR REPLACE TABLE {db}.{APPLIED_TABLE} AS SELECT ?::VARCHAR AS fingerprint, "
                    "?::TIMESTAMP AS applied_at", [fingerprint, now])
    for t in ("_purge", "_ex_tokens", "_ex_legacy", "_opt_outs"):
        con.execute(f"DROP TABLE IF EXISTS temp.{t}")
    return {"fingerprint": fingerprint, "purged": purged, "skipped": False}


def _nhs_sql(expr: str) -> str:
    """SQL for ``normalise_nhs_number(expr, validate=False)``: spaces/dashes out, an Excel ``.0`` off, 10 digits."""
    digits = f"regexp_replace(regexp_replace(trim(CAST({expr} AS VARCHAR)), '\\.0$', ''), '[\\s\\-]', '', 'g')"
    return f"CASE WHEN regexp_full_match({digits}, '[0-9]{{10}}') THEN {digits} END"
