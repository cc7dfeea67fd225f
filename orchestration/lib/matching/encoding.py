"""Privacy-preserving encodings of the standard person record (scheme ``placelink-clk/1``).

The partner-side tool (``placelink-partner``) runs this on the partner's own machine, over the columns
:func:`orchestration.lib.matching.normalise.prepare_records` makes (so the values are normalised *exactly* as the
clear-text linkage normalises them), with a secret that the partners share and the platform never holds. The
platform receives only the encodings and links them with :mod:`orchestration.lib.matching.encoded_model`.

Why our own encoder and not ``clkhash``/``anonlink``: they are not in our lock, have had no release since
2023, and what we need is short: keyed HMACs (``hmac``/``hashlib``) and Bloom filters (``numpy``). The scheme:

- **Keys.** One secret per deployment, shared by the partners. Every field gets its own key,
  ``HMAC-SHA256(secret, "placelink-clk/1|field|<field>")`` ("salting per field": the same bigram or value in
  two fields encodes differently, so one field's frequencies cannot be used to read another's).
- **Exact fields** (NHS number and its ten digits, another national identifier, date of birth and its
  year/month/day and its day-month swap, postcode and its sector/district, UPRN, the name tokens, the house
  number + first street word): ``HMAC-SHA256(field key, value)``, first
  128 bits as hex. Equal values give equal tokens, so Splink's exact levels and term-frequency adjustments work
  on them unchanged. **Lists** (the nickname set, family-name parts, the address's words and house numbers)
  are sent as their members' tokens, so the clear model's list intersections run on them unchanged. Given and
  family names share one key so the "given/family transposed" level still works;
  the day-month swap is encoded with the date-of-birth key so ``dob_swapped_l = dob_r`` is the clear level.
- **Fuzzy fields** (given and family name): a cryptographic long-term key (CLK) per field -- a Bloom filter
  of ``BLOOM_BITS`` bits into which every bigram of ``_name_`` sets ``BLOOM_HASHES`` bits chosen by the
  field key's HMAC of the bigram ("random hashing", which resists the attacks on double hashing). Then
  **balancing** (Schnell & Borgs 2016): the filter is concatenated with its complement and the result permuted
  by a permutation drawn from the field key, so every encoded name has exactly ``BLOOM_BITS`` bits set
  whatever its length -- the number of set bits, which gives away the length and hence narrows a name,
  is constant. Similarity is the Dice coefficient of the balanced filters, computed in DuckDB with
  ``bit_count(a & b)``.
- **Key check value** (KCV): ``HMAC-SHA256(secret, "placelink-clk/1|key-check")``, 12 hex. It goes in every
  manifest and in the deployment's contract, so a partner with the wrong secret is refused loudly at source
  and at landing instead of silently never linking. It reveals nothing usable about the secret (one HMAC
  output, 48 bits of it).

Not done, and why: record-level Bloom filters (Durham 2012) put all fields in one filter, which Splink cannot
weigh field by field -- and the person model's strength is its per-field m/u weights; free-text address
n-grams are not sent: the address is matched to a UPRN at source and the model compares the UPRN and the
address's word and number *tokens* (exact words, as the clear model compares them), nothing fuzzy. Sex stays clear (M/F): the warehouse holds it anyway. The residual risk of deterministic
encodings (equal names encode equally, so their frequencies show) is measured by
``benchmarks/bench_encoded.py`` (frequency attack) and stated in docs/governance.md.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from orchestration.lib.errors import PlacelinkError

SCHEME = "placelink-clk/1"
BLOOM_BITS = 512          # per field before balancing (1024 after)
BLOOM_HASHES = 10         # bits set per bigram; 10 x ~7 bigrams of a name fills ~13% of 512 bits
TOKEN_HEX = 32            # 128-bit HMAC tokens
SECRET_ENV = "PLACELINK_PARTNER_SECRET"
MIN_SECRET_BYTES = 32

#: Exact-token columns of the encoded record, and the field key each uses. ``nhs_number`` (valid check digit) and
#: ``nhs_digits`` (any ten digits) share a key: equal digits, equal tokens, as the clear columns are equal.
TOKEN_FIELDS = {
    "nhs_number": "nhs_number", "nhs_digits": "nhs_number", "national_id": "national_id",
    "given_name": "name", "family_name": "name", "dob": "dob",
    "dob_swapped": "dob", "dob_year": "dob_year", "dob_month": "dob_month", "dob_day": "dob_day",
    "postcode": "postcode", "postcode_sector": "postcode_sector", "postcode_district": "postcode_district",
    "uprn": "uprn", "addr_key": "addr_key",
}
#: Token-list columns (``|``-joined in the drop): each member tokenised with the field key, so the clear model's
#: list intersections run unchanged on tokens. Family-name parts share the name key (a part of one record's
#: double-barrelled name equals the other's whole family name).
LIST_FIELDS = {"given_name_set": "name", "family_parts": "name", "addr_words": "addr_word",
               "addr_numbers": "addr_number"}
BLOOM_FIELDS = {"given_name_bf": "given_name", "family_name_bf": "family_name"}
#: Every column of the encoded person record (besides ``record_id``/``source``): what leaves the partner.
ENCODED_COLUMNS = [*TOKEN_FIELDS, *LIST_FIELDS, *BLOOM_FIELDS, "sex", "lsoa_code"]


def parse_secret(text: str | None, where: str) -> bytes:
    """The shared secret from its text form (hex or any text of at least 32 bytes)."""
    if text is None or not text.strip():
        raise PlacelinkError("no shared linkage secret given", where=where,
                             fix=f"set {SECRET_ENV} (or pass --secret-file) to the secret your deployment's "
                                 "partners share; the platform does not hold it")
    text = text.strip()
    raw = bytes.fromhex(text) if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text) else text.encode("utf-8")
    if len(raw) < MIN_SECRET_BYTES:
        # the secret's length only: never its value
        raise PlacelinkError(f"the shared linkage secret is {len(raw)} bytes; at least {MIN_SECRET_BYTES} needed",
                             where=where, fix="use the secret your deployment issued (e.g. 64 hex characters)")
    return raw


def load_secret(secret_file: Path | None = None) -> bytes:
    """The secret from ``secret_file`` or else the ``PLACELINK_PARTNER_SECRET`` environment variable."""
    if secret_file is not None:
        path = Path(secret_file)
        if not path.exists():
            raise PlacelinkError("secret file does not exist", where=str(path), fix="check the path")
        return parse_secret(path.read_text(encoding="utf-8"), where=str(path))
    return parse_secret(os.environ.get(SECRET_ENV), where=f"environment variable {SECRET_ENV}")


def key_check_value(secret: bytes) -> str:
    """12-hex check value of the secret: equal for everyone holding the same secret, useless for guessing it."""
    return hmac.new(secret, f"{SCHEME}|key-check".encode(), hashlib.sha256).hexdigest()[:12]


class Encoder:
    """Encodes prepared person records (``prepare_records`` output) with one deployment secret."""

    def __init__(self, secret: bytes, bloom_bits: int = BLOOM_BITS, bloom_hashes: int = BLOOM_HASHES):
        if bloom_hashes * 2 > 32:
            raise ValueError("at most 16 hashes: positions come from one 32-byte HMAC")
        self.kcv = key_check_value(secret)
        self.bits, self.hashes = bloom_bits, bloom_hashes
        self._keys = {f: hmac.new(secret, f"{SCHEME}|field|{f}".encode(), hashlib.sha256).digest()
                      for f in {*TOKEN_FIELDS.values(), *LIST_FIELDS.values(), *BLOOM_FIELDS.values(),
                                "record_id"}}
        # balancing permutation per Bloom field, drawn from the field key (partners agree on it, nobody else can)
        self._perm = {f: np.random.default_rng(np.frombuffer(self._keys[f], dtype=np.uint32)).permutation(2 * bloom_bits)
                      for f in BLOOM_FIELDS.values()}
        self._gram_cache: dict[tuple[str, str], np.ndarray] = {}

    # --- exact tokens ------------------------------------------------------------------------------------------
    def token(self, field: str, value: object) -> str | None:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        text = str(value)
        if not text:
            return None
        return hmac.new(self._keys[field], text.encode("utf-8"), hashlib.sha256).hexdigest()[:TOKEN_HEX]

    def tokens(self, field: str, values: pd.Series) -> pd.Series:
        """Vectorised over distinct values (a county has ~30 k dates of birth among 1.5 M records)."""
        uniq = values.dropna().unique()
        lookup = {v: self.token(field, v) for v in uniq}
        return values.map(lookup).astype(object).where(values.notna(), None)

    # --- Bloom filters -----------------------------------------------------------------------------------------
    def _positions(self, field: str, gram: str) -> np.ndarray:
        key = (field, gram)
        pos = self._gram_cache.get(key)
        if pos is None:
            digest = hmac.new(self._keys[field], gram.encode("utf-8"), hashlib.sha256).digest()
            pos = np.frombuffer(digest[: 2 * self.hashes], dtype=">u2").astype(np.int64) % self.bits
            self._gram_cache[key] = pos
        return pos

    def bloom(self, field: str, value: str | None) -> str | None:
        """Balanced, permuted Bloom filter of the value's bigrams, as hex (``2 * bits`` bits)."""
        if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
            return None
        padded = f"_{value}_"
        bf = np.zeros(self.bits, dtype=bool)
        for i in range(len(padded) - 1):
            bf[self._positions(field, padded[i:i + 2])] = True
        balanced = np.concatenate([bf, ~bf])[self._perm[field]]
        return np.packbits(balanced).tobytes().hex()

    def blooms(self, field: str, values: pd.Series) -> pd.Series:
        uniq = values.dropna().unique()
        lookup = {v: self.bloom(field, v) for v in uniq}
        return values.map(lookup).astype(object).where(values.notna(), None)

    # --- records -----------------------------------------------------------------------------------------------
    def encode_prepared(self, prepared: pd.DataFrame) -> pd.DataFrame:
        """The encoded person record of every prepared record: ``record_id, source`` + :data:`ENCODED_COLUMNS`.

        ``prepared`` has ``prepare_records``' columns (``unique_id, source, given_name, family_name, dob, sex,
        postcode, nhs_number, nhs_digits, national_id, uprn, addr_key`` and the lists of :data:`LIST_FIELDS`)
        plus ``lsoa_code`` from address matching; a column it lacks encodes as null."""
        p = prepared.copy()
        for col in ("nhs_number", "nhs_digits", "national_id", "addr_key", "uprn", "sex", *LIST_FIELDS):
            if col not in p:
                p[col] = None
        out = pd.DataFrame({"record_id": p["unique_id"].astype(str), "source": p.get("source")})
        dob = p["dob"]  # ISO YYYY-MM-DD text, or null
        parts = dob.str.split("-", expand=True) if dob.notna().any() else None
        year = parts[0] if parts is not None else dob
        month = parts[1] if parts is not None else dob
        day = parts[2] if parts is not None else dob
        # the day-month swap only where it is itself a date (clear model: substr comparison of the two strings)
        swapped = (year + "-" + day + "-" + month).where(day.notna() & (day.astype(float) <= 12), None) \
            if parts is not None else dob
        pc = p["postcode"]
        has_space = pc.str.contains(" ", regex=False).fillna(False).astype(bool)
        outward = pc.str.split(" ").str[0].where(has_space, None)
        sector = (outward + " " + pc.str.split(" ").str[1].str[:1]).where(has_space, None)
        values = {col: p[col] for col in TOKEN_FIELDS if col in p}
        values.update({"dob": dob, "dob_swapped": swapped, "dob_year": year, "dob_month": month, "dob_day": day,
                       "postcode": pc, "postcode_sector": sector, "postcode_district": outward})
        for col, field in TOKEN_FIELDS.items():
            out[col] = self.tokens(field, values[col].astype(object).where(values[col].notna(), None))
        # lists (nickname sets, family-name parts, address words and numbers): each member tokenised with the
        # field key, so list intersection on tokens is the clear intersection (Bill ~ William)
        for col, field in LIST_FIELDS.items():
            lists = [None if not isinstance(v, list | tuple | np.ndarray) or not len(v) else v for v in p[col]]
            members = {m for v in lists if v is not None for m in v}
            tok = {m: self.token(field, m) for m in members}
            out[col] = [None if v is None else "|".join(sorted({tok[m] for m in v})) for v in lists]
        for col, field in BLOOM_FIELDS.items():
            out[col] = self.blooms(field, p[field])
        out["sex"] = p["sex"]
        out["lsoa_code"] = p["lsoa_code"] if "lsoa_code" in p else None
        return out


def dice(a_hex: str, b_hex: str) -> float:
    """Dice coefficient of two hex Bloom filters (tests and benchmarks; the model computes it in DuckDB)."""
    a = np.unpackbits(np.frombuffer(bytes.fromhex(a_hex), dtype=np.uint8))
    b = np.unpackbits(np.frombuffer(bytes.fromhex(b_hex), dtype=np.uint8))
    return 2.0 * int((a & b).sum()) / max(int(a.sum()) + int(b.sum()), 1)


def manifest_checksum(paths: Iterable[Path]) -> dict[str, str]:
    out = {}
    for path in paths:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out[Path(path).name] = h.hexdigest()
    return out


def match_addresses_locally(records: pd.DataFrame, gazetteer: pd.DataFrame | None,
                            postcodes: pd.DataFrame | None) -> pd.DataFrame:
    """Standard person records with ``uprn`` from the platform's address matcher (the feed's own UPRN where
    the matcher finds none, as the platform's matching stage does) and ``lsoa_code``. Without a gazetteer and
    postcode directory the records come back with ``lsoa_code`` null."""
    import duckdb

    from orchestration.lib.matching.address import match_addresses, prepare_gazetteer
    from orchestration.lib.matching.normalise import check_columns

    check_columns(records.columns, where="person records")
    out = records.copy()
    if gazetteer is None or postcodes is None or not len(records):
        out["lsoa_code"] = None
        return out
    con = duckdb.connect()
    con.register("_records", records)
    con.register("_gazetteer", gazetteer.astype(str))
    con.register("_postcodes", postcodes.astype(str))
    prepare_gazetteer(con, "_gazetteer", "_gaz_prepared")
    match_addresses(con, "_records", "_gazetteer", "_postcodes", out_table="_matches",
                    prepared_gazetteer="_gaz_prepared")
    # a record id given twice (a duplicate row) matches once: both rows carry the same address
    m = con.execute("SELECT record_id, any_value(uprn) AS uprn, any_value(lsoa_code) AS lsoa_code FROM _matches "
                    "GROUP BY record_id").df().set_index("record_id")
    con.close()
    key = out["record_id"].astype(str)
    given = out["uprn"].astype("string") if "uprn" in out else pd.Series(pd.NA, index=out.index, dtype="string")
    matched = key.map(m["uprn"]).astype("string")
    out["uprn"] = matched.fillna(given.str.replace(r"\.0$", "", regex=True))
    out["lsoa_code"] = key.map(m["lsoa_code"])
    return out


def encode_person_records(records: pd.DataFrame, encoder: Encoder, gazetteer: pd.DataFrame | None = None,
                          postcodes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Standard person records -> encoded person records, the partner side of encoded linkage.

    The address is matched to UPRN and LSOA with the platform's own matcher against the partner's copy of the
    gazetteer and postcode directory (:func:`match_addresses_locally`), then every field is normalised by the
    clear model's own SQL (``prepare_records``) and encoded. Nothing clear is returned but ``record_id``,
    ``source``, ``sex`` and ``lsoa_code``."""
    import duckdb

    from orchestration.lib.matching.normalise import prepare_records, run

    matched = match_addresses_locally(records, gazetteer, postcodes)
    con = duckdb.connect()
    con.register("_linkable_df", matched)
    run(con, "CREATE TEMP TABLE _linkable AS SELECT * FROM _linkable_df")
    prepare_records(con, "_linkable", "_prepared")
    prepared = con.execute("""SELECT p.*, l.lsoa_code FROM _prepared p
                              JOIN _linkable l ON CAST(l.record_id AS VARCHAR) = p.unique_id""").df()
    con.close()
    for col in LIST_FIELDS:
        prepared[col] = [None if not isinstance(s, list | np.ndarray) else list(s) for s in prepared[col]]
    return encoder.encode_prepared(prepared)
