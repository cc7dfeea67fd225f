"""Encoded drops: what ``placelink-partner`` writes on the partner's machine and what the platform checks.

Partner side (:func:`encode_export`): the native export is read and checked by ingest's own code
(:func:`orchestration.lib.feeds.load.parse_file`: the same readers, header check, typing, plausibility and
agreement filter as landing), rows that fail go to a quarantine report that stays with the partner, addresses
are matched to UPRN/LSOA with the platform's matcher against the partner's gazetteer, identifiers are normalised
by the linkage SQL and encoded (:mod:`orchestration.lib.matching.encoding`). The drop holds the agreement's
content columns (identifier columns left out), the encodings and the LSOA; its manifest holds counts, checksums,
the scheme, the contract fingerprint and the secret's key check value.

Platform side (:func:`verify_drop`): a drop is accepted only when its manifest's scheme, key check value and
contract fingerprint are the deployment's and its checksum and row count hold.

No Dagster, dbt or MLflow here: the partner package ships this module.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pandas as pd

from orchestration.lib.contracts import Feed, load_contract
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.matching.encoding import ENCODED_COLUMNS, SCHEME, Encoder, encode_person_records

MANIFEST_VERSION = 1
SUPPORTED_SCHEMES = (SCHEME,)
#: columns of the standard person record / place mapping that are identifiers: never in the drop's content
_PLACE_IDENTIFIERS = ("postcode", "address", "uprn", "latitude", "longitude", "easting", "northing")


def contract_fingerprint(feed: Feed) -> str:
    """16 hex of SHA-256 of the feed's contract as validated: the "contract version" both sides compare."""
    text = json.dumps(feed.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identifier_columns(feed: Feed) -> set[str]:
    """Native columns that never leave the partner in encoded mode: everything the person mapping reads, the
    place's identifying columns, and every column the contract marks ``identifier: direct`` or ``quasi``."""
    out = {c.name for c in feed.columns if c.identifier in ("direct", "quasi")}
    if feed.person:
        out |= {n for names in feed.person.columns().values() for n in names}
    if feed.place:
        out |= {n for k, names in feed.place.columns().items() if k in _PLACE_IDENTIFIERS for n in names}
    return out


def feed_of(contract_path: Path, feed_id: str) -> Feed:
    contract = load_contract(contract_path)
    for feed in contract.feeds:
        if feed.id == feed_id:
            return feed
    raise PlacelinkError(f"the contract has no feed {feed_id!r}", where=str(contract_path),
                         fix="use one of: " + ", ".join(f.id for f in contract.feeds))


def check_encoded_feed(feed: Feed, encoder: Encoder | None, where: str) -> None:
    """The contract asks for encoded linkage with a scheme this tool speaks, and the secret is the partners'."""
    link = feed.linkage
    if link.mode != "encoded":
        raise PlacelinkError(f"feed {feed.source} is linked in clear (linkage.mode: {link.mode}); nothing to encode",
                             where=f"{where}: feeds[{feed.id}].linkage",
                             fix="set linkage.mode: encoded with scheme and key_check in the agreed contract")
    if link.scheme not in SUPPORTED_SCHEMES:
        raise PlacelinkError(f"contract version mismatch: the contract asks for scheme {link.scheme!r}, this tool "
                             f"writes {', '.join(SUPPORTED_SCHEMES)}", where=f"{where}: feeds[{feed.id}].linkage.scheme",
                             fix="install the placelink-partner release that matches your deployment's contract")
    if encoder is not None and encoder.kcv != link.key_check:
        # both values are one-way check values of secrets, not the secrets: safe to show
        raise PlacelinkError(f"wrong secret: its key check value is {encoder.kcv}, the deployment expects "
                             f"{link.key_check}; encodings made with it would silently never link",
                             where=f"{where}: feeds[{feed.id}].linkage.key_check",
                             fix="use the shared secret issued to the partners of this deployment")


def encode_export(contract_path: Path, feed_id: str, export: Path, out_dir: Path, secret: bytes, *,
                  drop_date: dt.date | None = None, gazetteer: Path | None = None, postcodes: Path | None = None,
                  report_dir: Path | None = None, opt_outs: frozenset[str] = frozenset(),
                  name: str | None = None) -> dict:
    """Validate, match, normalise and encode one native export; write ``<date>.csv`` and
    ``<date>.manifest.json`` to ``out_dir`` (``name`` instead of the date: the landed drop's own stem, e.g.
    ``2025-06-01_v2``) and the quarantine report to ``report_dir``. Returns the manifest."""
    from orchestration.lib.feeds.load import parse_file
    from orchestration.lib.governance.erasure import Exclusions

    contract_path, export, out_dir = Path(contract_path), Path(export), Path(out_dir)
    feed = feed_of(contract_path, feed_id)
    encoder = Encoder(secret)
    check_encoded_feed(feed, encoder, str(contract_path))
    if not export.is_file():
        raise PlacelinkError("the export file does not exist", where=str(export), fix="check the path")
    drop_date = drop_date or dt.date.today()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    digest = _sha256(export)
    parsed = parse_file(feed, export, export.name, digest, drop_date.replace(day=1), now, opt_outs, Exclusions())
    if parsed.header_error:
        message, where, fix = parsed.header_error
        raise PlacelinkError(f"the export does not match the contract: {message}", where=where or str(export),
                             fix=fix or "export the file in the contract's format")
    if parsed.empty:
        raise PlacelinkError("the export is empty: no header and no rows", where=str(export),
                             fix="export the feed again; an empty month is sent as a header line alone")
    report_dir = Path(report_dir) if report_dir else out_dir.parent / "quarantine"
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / f"{drop_date.isoformat()}_{feed.partner}__{feed.id}_quarantine.csv"
    # line and reason only: the partner has the file; the report is theirs to fix it and is never sent
    pd.DataFrame([(q[4], q[5]) for q in parsed.quarantine], columns=["line", "reason"]).to_csv(report, index=False)
    received = parsed.result.rows_received if parsed.result else 0
    rows = parsed.rows.to_pandas() if parsed.rows is not None else pd.DataFrame()
    people = parsed.people.to_pandas() if parsed.people is not None else pd.DataFrame()

    def read_ref(path: Path | None) -> pd.DataFrame | None:
        if path is None:
            return None
        if not Path(path).is_file():
            raise PlacelinkError("reference file does not exist", where=str(path), fix="check the path")
        return pd.read_csv(path, dtype=str, keep_default_na=False).replace("", None)

    if feed.person is None:
        raise PlacelinkError(f"feed {feed.source} has no people: send it as it is", where=str(contract_path),
                             fix="encoded linkage is for feeds with a person mapping")
    # loaded rows and their person records are parallel (ingest appends both for each loaded row); they are
    # encoded under their row number, not their record id: a drop may hold a record twice (a duplicate row)
    assert len(people) == len(rows)
    keyed = people.drop(columns=["_line"], errors="ignore").assign(record_id=[str(i) for i in range(len(people))])
    encoded = encode_person_records(keyed, encoder, read_ref(gazetteer), read_ref(postcodes)) if len(people) else \
        pd.DataFrame({c: pd.Series(dtype=object) for c in ["record_id", "source", *ENCODED_COLUMNS]})
    hidden = identifier_columns(feed)
    content = [c for c in feed.loaded_columns if c.name not in hidden]  # as drop_columns() says
    drop = pd.DataFrame({"_row": [str(i) for i in range(len(rows))],
                         "record_id": pd.Series((feed.source + ":" + rows["_record_id"]) if len(rows) else [],
                                                dtype=object)})
    for c in content:
        drop[c.sql_name] = rows[c.sql_name].values if len(rows) else []
    # by row number, never by position: the matcher and the normaliser return records in their own order
    drop = drop.merge(encoded.drop(columns=["source"]).rename(columns={"record_id": "_row"}), on="_row",
                      how="left", validate="one_to_one").drop(columns=["_row"])
    if any(feed.column(c).identifier == "direct" for c in feed.record_id_columns):
        # a record id that is itself an identifier (a pupil number) travels as a token
        drop["record_id"] = encoder.tokens("record_id", drop["record_id"]).radd(feed.source + ":")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name or drop_date.isoformat()
    path = out_dir / f"{stem}.csv"
    drop.to_csv(path, index=False)
    manifest = {
        "manifest_version": MANIFEST_VERSION, "scheme": SCHEME, "key_check": encoder.kcv,
        "partner": feed.partner, "feed": feed.id, "contract_fingerprint": contract_fingerprint(feed),
        "drop_date": drop_date.isoformat(), "created_at": now.isoformat(timespec="seconds"),
        "rows_received": int(received), "rows_encoded": int(len(drop)),
        "rows_quarantined": int(len(parsed.quarantine)),
        "quarantine_reasons": {k: int(v) for k, v in sorted(parsed.reasons.items())},
        "lsoa_matched": int(drop["lsoa_code"].notna().sum()) if len(drop) else 0,
        "columns": list(drop.columns), "file": path.name, "sha256": _sha256(path),
        "export_sha256": digest,
    }
    (out_dir / f"{stem}.manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def drop_columns(feed: Feed) -> list[str]:
    """The columns of an encoded drop of ``feed``: the record id, the agreement's content columns (the contract's
    loaded columns but its identifiers, which never leave the partner) and the encodings the model compares."""
    hidden = identifier_columns(feed)
    return ["record_id", *(c.sql_name for c in feed.loaded_columns if c.name not in hidden), *ENCODED_COLUMNS]


def verify_drop(manifest_path: Path, feed: Feed, drop_file: str | None = None) -> pd.DataFrame:
    """The platform's check of an encoded drop: right scheme, secret (key check value), contract version,
    checksum and row count; returns the drop's rows (every column as text). ``drop_file``: the name of the
    landed file the manifest must describe (ingest: a manifest copied beside another file proves nothing)."""
    manifest_path = Path(manifest_path)
    where = str(manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlacelinkError(f"the manifest cannot be read ({type(exc).__name__})", where=where,
                             fix="ask the partner to re-send the drop with its manifest") from None
    if not isinstance(manifest, dict):
        raise PlacelinkError("the manifest is not a JSON object", where=where, fix="re-send the drop")
    check_encoded_feed(feed, None, f"orchestration/feeds/{feed.partner}.yml")
    if manifest.get("scheme") != feed.linkage.scheme:
        raise PlacelinkError(f"the drop was encoded with scheme {manifest.get('scheme')!r}, the contract says "
                             f"{feed.linkage.scheme!r}", where=where, fix="re-encode with the deployment's tool")
    if manifest.get("key_check") != feed.linkage.key_check:
        raise PlacelinkError(f"the drop was encoded with another secret (key check {manifest.get('key_check')!r}, "
                             f"expected {feed.linkage.key_check!r}): it would never link", where=where,
                             fix="the partner re-encodes with the deployment's shared secret")
    if manifest.get("contract_fingerprint") != contract_fingerprint(feed):
        raise PlacelinkError("the drop was made under another version of the feed's contract", where=where,
                             fix="the partner updates their copy of the contract and re-encodes")
    if drop_file is not None and manifest.get("file") != drop_file:
        raise PlacelinkError(f"the manifest describes another file, not {drop_file}", where=where,
                             fix="land each drop with its own manifest (<drop name>.manifest.json)")
    path = manifest_path.parent / str(manifest.get("file", ""))
    if not path.is_file() or _sha256(path) != manifest.get("sha256"):
        raise PlacelinkError("the drop file is missing or its checksum differs from the manifest's",
                             where=str(path), fix="re-send the drop file with its manifest")
    df = pd.read_csv(path, dtype=str, keep_default_na=False).replace("", None)
    if len(df) != manifest.get("rows_encoded") or list(df.columns) != manifest.get("columns"):
        raise PlacelinkError("the drop's rows or columns differ from its manifest", where=str(path),
                             fix="re-send the drop file with its manifest")
    # a drop from another version of placelink-partner (the same scheme and secret) would load with encodings
    # missing (NULL: those people linked on less than the model compares) or columns nobody reads: refused whole
    expected = drop_columns(feed)
    missing = [c for c in expected if c not in df.columns]
    unknown = [c for c in df.columns if c not in expected]
    if missing or unknown:
        raise PlacelinkError("the drop's columns are not the ones this platform's encoded model reads"
                             + (f"; missing: {missing}" if missing else "") + (f"; unknown: {unknown}" if unknown else ""),
                             where=str(path), fix="the partner installs this deployment's placelink-partner (the "
                                                  "wheel built from its repository) and re-encodes the drop")
    return df


#: The synthetic county's partners' shared secret (``PLACELINK_LINKAGE=encoded make demo``). Public, so it protects
#: nothing: synthetic people only. A real deployment's partners hold their own secret; the platform never does.
DEMO_SECRET = hashlib.sha256(b"placelink demo: the synthetic partners' shared secret").digest()


def use_demo_linkage() -> bool:
    """With ``PLACELINK_LINKAGE=encoded`` and no key check value set, the demo's (of :data:`DEMO_SECRET`).
    Returns whether the deployment is encoded."""
    import os

    from orchestration.lib.contracts import LINKAGE_ENV, LINKAGE_KEY_CHECK_ENV
    from orchestration.lib.matching.encoding import key_check_value

    if os.environ.get(LINKAGE_ENV, "").strip() != "encoded":
        return False
    os.environ.setdefault(LINKAGE_KEY_CHECK_ENV, key_check_value(DEMO_SECRET))
    return True


def encode_landing(home: Path, secret: bytes, report_dir: Path) -> dict:
    """Play the partners of a synthetic county: replace every native drop of every encoded feed under
    ``<home>/landing`` by what ``placelink-partner encode`` makes of it (drop + manifest, same name), matched
    against the county's gazetteer. Drops that already have a manifest are left alone. Returns counts."""
    import shutil
    import tempfile

    from orchestration.lib.contracts import FEEDS_DIR, load_contracts
    from orchestration.lib.governance.erasure import read_opt_outs
    from orchestration.lib.landing import MANIFEST_SUFFIX, scan_feed

    home = Path(home)
    landing, reference = home / "landing", home / "reference"
    opt_outs = read_opt_outs(reference)
    counts = {"drops": 0, "rows_encoded": 0, "rows_quarantined": 0}
    for feed in load_contracts().feeds():
        if feed.linkage.mode != "encoded":
            continue
        for f in scan_feed(landing, feed.partner, feed.id, feed.format.file_extension):
            stem = f.path.name.rsplit(".", 1)[0]
            if f.drop_date is None or (f.path.parent / f"{stem}{MANIFEST_SUFFIX}").exists():
                continue
            with tempfile.TemporaryDirectory() as tmp:
                manifest = encode_export(FEEDS_DIR / f"{feed.partner}.yml", feed.id, f.path, Path(tmp), secret,
                                         drop_date=f.drop_date, gazetteer=reference / "gazetteer.csv",
                                         postcodes=reference / "postcodes.csv",
                                         report_dir=Path(report_dir) / feed.partner / feed.id, opt_outs=opt_outs,
                                         name=stem)
                f.path.unlink()  # the native export stays at the partner
                for suffix in (".csv", MANIFEST_SUFFIX):
                    shutil.move(Path(tmp) / f"{stem}{suffix}", f.path.parent / f"{stem}{suffix}")
            counts["drops"] += 1
            counts["rows_encoded"] += manifest["rows_encoded"]
            counts["rows_quarantined"] += manifest["rows_quarantined"]
    return counts
