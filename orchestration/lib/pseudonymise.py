"""Pseudonymisation: normalise identifiers, then HMAC-SHA256 them with a secret key.

The same clear value gives the same token in every feed and every night (as long as the key stays the
same); another key gives unlinkable tokens. The key comes from ``PLACELINK_PSEUDONYM_KEY`` (hex or any
string of at least 32 characters) or the file named by ``PLACELINK_PSEUDONYM_KEY_FILE``. Only the local
profile may fall back to a generated key in ``<home>/keys/pseudonym.key`` (it says so loudly);
production refuses to run without one, refuses that demo key, and refuses a weak key
(:func:`key_weaknesses`: shorter than 32 bytes, a repeated block, dictionary words, a key published in this
repository, or under 128 bits of estimated entropy).

Standard library ``hmac``/``hashlib`` do the cryptography; the normalisers are ours because they encode
English public-sector conventions (NHS number spacing, postcode format) that no library packages.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import math
import os
import re
import secrets
import stat
import sys
import unicodedata
import warnings
from collections.abc import Iterable
from pathlib import Path

from orchestration.lib.config import Settings
from orchestration.lib.errors import PlacelinkError

KEY_ENV = "PLACELINK_PSEUDONYM_KEY"
KEY_FILE_ENV = "PLACELINK_PSEUDONYM_KEY_FILE"
MIN_KEY_BYTES = 16
#: Production's floor: the HMAC-SHA256 block of security the tokens are meant to have.
PRODUCTION_MIN_KEY_BYTES = 32
PRODUCTION_MIN_ENTROPY_BITS = 128
#: Keys printed in this repository's tests, docs and examples: public, so never a production secret.
PUBLISHED_KEYS = frozenset({
    "governance-tests-key-0123456789abcdef", "k" * 32, "ab" * 32, "cd" * 32, "ef" * 32, "5e" * 32,
})
#: Words people put in keys; a key that is mostly these is guessable whatever its length.
COMMON_WORDS = ("password", "passw0rd", "secret", "changeme", "change-me", "placelink", "pseudonym", "letmein",
                "qwerty", "admin", "default", "example", "test", "demo", "key", "0123456789", "123456789",
                "abcdefgh")


class DemoKeyWarning(UserWarning):
    """The local profile is using a generated pseudonym key: fine for a demo, never for real data."""


# --- normalisers -----------------------------------------------------------------------------------

def strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


_SPACES = re.compile(r"\s+")
_NOT_NAME = re.compile(r"[^A-Z' -]")


# The normalisers run on every identifier of every row; names, sexes and postcodes repeat a great deal,
# so each distinct value is normalised once per process (typed: 1, 1.0 and True are different values).
@functools.lru_cache(maxsize=1 << 18, typed=True)
def normalise_text(value: object) -> str | None:
    """Case, accents and spacing folded: ``'  Zoë  O'Brien '`` -> ``'ZOE O'BRIEN'``."""
    if value is None:
        return None
    text = _SPACES.sub(" ", strip_accents(str(value))).strip().upper()
    return text or None


@functools.lru_cache(maxsize=1 << 18, typed=True)
def normalise_name(value: object) -> str | None:
    """A name for comparison: accents and case folded, punctuation other than ``-``/``'`` removed."""
    text = normalise_text(value)
    if text is None:
        return None
    text = _NOT_NAME.sub(" ", text.replace("’", "'"))
    text = _SPACES.sub(" ", text).strip()
    return text or None


def nhs_number_is_valid(digits: str) -> bool:
    """Modulus-11 check digit of a 10-digit NHS number."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def normalise_nhs_number(value: object, *, validate: bool = True) -> str | None:
    """``'943 476 5919'`` / ``'943-476-5919'`` -> ``'9434765919'``; None if not 10 digits (or bad check digit)."""
    if value is None:
        return None
    raw = str(value).strip()
    if raw.endswith(".0"):  # an Excel cell read as a number
        raw = raw[:-2]
    digits = re.sub(r"[\s\-]", "", raw)
    if len(digits) != 10 or not digits.isdigit():
        return None
    if validate and not nhs_number_is_valid(digits):
        return None
    return digits


_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")


@functools.lru_cache(maxsize=1 << 18, typed=True)
def normalise_postcode(value: object) -> str | None:
    """``'ab12cd'``/``' AB1  2CD'`` -> ``'AB1 2CD'`` (outward, one space, inward); None if not a postcode shape."""
    if value is None:
        return None
    compact = re.sub(r"[^A-Z0-9]", "", str(value).upper())
    m = _POSTCODE.match(compact)
    return f"{m.group(1)} {m.group(2)}" if m else None


def postcode_sector(value: object) -> str | None:
    """``'AB1 2CD'`` -> ``'AB1 2'``: a coarse place that is not a full postcode."""
    pc = normalise_postcode(value)
    return pc[:-2] if pc else None


_SEX = {"M": "M", "MALE": "M", "1": "M", "MAN": "M", "BOY": "M",
        "F": "F", "FEMALE": "F", "2": "F", "WOMAN": "F", "GIRL": "F"}


def normalise_sex(value: object) -> str:
    """Any of M/F/Male/Female/1/2 (NHS codes) -> ``M``/``F``; everything else -> ``U``."""
    text = normalise_text(value)
    return _SEX.get(text or "", "U")


_NHS_ETHNIC = {**dict.fromkeys("ABC", "White"), **dict.fromkeys("DEFG", "Mixed"),
               **dict.fromkeys("HJKL", "Asian"), **dict.fromkeys("MNP", "Black"),
               **dict.fromkeys("RS", "Other"), "Z": "Unknown", "99": "Unknown"}
_ETHNIC_WORDS = (("MIXED", "Mixed"), ("MULTIPLE", "Mixed"), ("ASIAN", "Asian"), ("INDIAN", "Asian"),
                 ("PAKISTANI", "Asian"), ("BANGLADESHI", "Asian"), ("CHINESE", "Asian"), ("BLACK", "Black"),
                 ("AFRICAN", "Black"), ("CARIBBEAN", "Black"), ("WHITE", "White"), ("GYPSY", "White"),
                 ("TRAVELLER", "White"), ("ROMA", "White"), ("ARAB", "Other"), ("OTHER", "Other"))


def ethnicity_group(value: object) -> str:
    """ONS 2021 high-level group (Asian, Black, Mixed, White, Other, Unknown) of a code or label.

    Accepts NHS ethnic category codes (``A``..``Z``), DfE-style codes (``WBRI``, ``ABAN`` ...) and labels
    (``White British``, ``Black or Black British`` ...).
    """
    text = normalise_text(value)
    if not text or text in ("NOT STATED", "UNKNOWN", "REFUSED", "NOT KNOWN", "PREFER NOT TO SAY"):
        return "Unknown"
    if text in _NHS_ETHNIC:
        return _NHS_ETHNIC[text]
    if re.fullmatch(r"[A-Z]{4}", text):  # DfE codes: first letter is the group
        return {"W": "White", "M": "Mixed", "A": "Asian", "B": "Black", "C": "Asian", "O": "Other",
                "N": "Unknown", "R": "White", "G": "White", "I": "White"}.get(text[0], "Unknown")
    for word, group in _ETHNIC_WORDS:
        if word in text:
            return group
    return "Unknown"


# --- keys and tokens -------------------------------------------------------------------------------

def _decode_key(text: str, where: str, *, production: bool = False) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text) if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text) else text.encode()
    except ValueError:
        key = text.encode()
    fix = "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
    if len(key) < MIN_KEY_BYTES:
        raise PlacelinkError(f"the pseudonym key is too short ({len(key)} bytes; need {MIN_KEY_BYTES}+)",
                             where=where, fix=fix)
    if production:
        weak = key_weaknesses(key, text)
        if weak:  # says what is wrong with the key, never the key
            raise PlacelinkError("production refuses a weak pseudonym key: " + "; ".join(weak), where=where,
                                 fix=fix + " and keep it in your secret store")
    return key


def _shannon_bits(values: bytes | list[int]) -> float:
    """Empirical entropy of a byte sequence in bits (bits per symbol x length)."""
    n = len(values)
    if not n:
        return 0.0
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return -n * sum(c / n * math.log2(c / n) for c in counts.values())


def estimated_entropy_bits(key: bytes) -> float:
    """A measurable, conservative estimate of a key's entropy: the smaller of the empirical entropy of its
    bytes and of the steps between consecutive bytes (so ``abcdef...`` scores as low as ``aaaa...``).

    32 bytes from ``secrets.token_bytes`` score about 150 bits (at most 160 = 32 x log2 32); a key drawn
    from 8 symbols scores at most 3 bits per byte. It underestimates strong keys and never trusts a
    pattern; it is a floor for accidents (zeros, words, repeats), not a proof of randomness.
    """
    steps = [(b - a) % 256 for a, b in zip(key, key[1:], strict=False)]
    return min(_shannon_bits(key), _shannon_bits(steps))


def key_weaknesses(key: bytes, text: str | None = None) -> list[str]:
    """Why ``key`` is not fit for production (empty list: it is). Never quotes the key.

    The rule: at least :data:`PRODUCTION_MIN_KEY_BYTES` bytes; not a key published in this repository; not a
    repetition of a shorter block; not more than half common words (:data:`COMMON_WORDS`); and at least
    :data:`PRODUCTION_MIN_ENTROPY_BITS` bits by :func:`estimated_entropy_bits`.
    """
    problems = []
    if len(key) < PRODUCTION_MIN_KEY_BYTES:
        problems.append(f"{len(key)} bytes (need {PRODUCTION_MIN_KEY_BYTES}+)")
    forms = {key.hex(), key.decode("latin-1")} | ({text.strip()} if text else set())
    if forms & PUBLISHED_KEYS:
        problems.append("it is a key published in the placelink repository (tests or docs)")
    period = next((p for p in range(1, len(key) // 2 + 1) if key == (key[:p] * (len(key) // p + 1))[:len(key)]),
                  None)
    if period:
        problems.append(f"it repeats a block of {period} byte(s)")
    lowered = key.decode("latin-1").lower()
    stripped = re.sub("|".join(re.escape(w) for w in COMMON_WORDS), "", lowered)
    if len(stripped) * 2 < len(key):
        problems.append(f"it is mostly common words (only {len(stripped)} of {len(key)} bytes are not)")
    bits = max(0.0, estimated_entropy_bits(key))
    if bits < PRODUCTION_MIN_ENTROPY_BITS:
        problems.append(f"estimated entropy {bits:.0f} bits (need {PRODUCTION_MIN_ENTROPY_BITS}+)")
    return problems


_DEMO_KEY_ANNOUNCED: set[Path] = set()


def load_key(settings: Settings) -> bytes:
    """The pseudonymisation key: env var, else key file, else (local profile only) a generated demo key.

    In production the key must pass :func:`key_weaknesses`, may not be the home's generated demo key, and
    a key file may not be readable by other users.
    """
    production = settings.env == "production"
    demo_path = settings.keys_dir / "pseudonym.key"
    env_key = os.environ.get(KEY_ENV)
    if env_key:
        key = _decode_key(env_key, KEY_ENV, production=production)
    elif os.environ.get(KEY_FILE_ENV):
        path = Path(os.environ[KEY_FILE_ENV])
        if not path.is_file():
            raise PlacelinkError(f"{KEY_FILE_ENV} points to {path}, which does not exist", where=KEY_FILE_ENV,
                                 fix="create the key file or correct the path")
        if production and path.stat().st_mode & stat.S_IROTH:
            raise PlacelinkError("production refuses a pseudonym key file that every user can read",
                                 where=str(path), fix=f"chmod o-r {path} (0400 or 0440 for the service group)")
        if production and demo_path.exists() and path.resolve() == demo_path.resolve():
            raise PlacelinkError("production refuses the generated demo key", where=str(path),
                                 fix=f"point {KEY_FILE_ENV} to a key from your secret store")
        key = _decode_key(path.read_text(encoding="utf-8"), str(path), production=production)
    elif production:
        raise PlacelinkError(
            "production refuses to pseudonymise without a key", where=f"{KEY_ENV} / {KEY_FILE_ENV}",
            fix=f"set {KEY_ENV} (hex, 32+ bytes) or {KEY_FILE_ENV} to a secret file managed by your key store")
    else:
        return _demo_key(demo_path)
    if production and demo_path.is_file() and hmac.compare_digest(
            key, _decode_key(demo_path.read_text(encoding="utf-8"), str(demo_path))):
        raise PlacelinkError("production refuses the demo key generated for the local profile",
                             where=f"{KEY_ENV} / {KEY_FILE_ENV}", fix="use a key from your secret store")
    return key


def _demo_key(path: Path) -> bytes:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
        path.chmod(0o600)
    message = (f"DEMO PSEUDONYM KEY in use ({path}): generated for the local profile only. "
               f"Tokens are not protected by a managed secret; set {KEY_ENV} or {KEY_FILE_ENV} for real data.")
    warnings.warn(message, DemoKeyWarning, stacklevel=3)
    if path not in _DEMO_KEY_ANNOUNCED:  # once per process on stderr: every feed loads the key, one line is enough
        _DEMO_KEY_ANNOUNCED.add(path)
        print(f"WARNING: {message}", file=sys.stderr)
    return _decode_key(path.read_text(encoding="utf-8"), str(path))


class Pseudonymiser:
    """HMAC-SHA256 tokens of normalised identifiers.

    ``kind`` separates domains (an NHS number and a record id with the same text give different
    tokens), so a token of one kind can never be joined to another kind by accident.

    Examples:
        >>> p = Pseudonymiser(b"k" * 32)
        >>> p.nhs_number("943 476 5919") == p.nhs_number("9434765919")
        True
    """

    def __init__(self, key: bytes):
        if len(key) < MIN_KEY_BYTES:
            raise PlacelinkError("pseudonym key too short", fix=f"use {MIN_KEY_BYTES}+ bytes")
        self._key = key

    def token(self, kind: str, value: object) -> str | None:
        if value is None or (isinstance(value, float) and value != value):
            return None
        text = str(value)
        if not text:
            return None
        return hmac.new(self._key, f"{kind}\x1f{text}".encode(), hashlib.sha256).hexdigest()

    def tokens(self, kind: str, values: Iterable[object]) -> list[str | None]:
        return [self.token(kind, v) for v in values]

    # HMAC in SQL: the same tokens as ``token`` for VARCHAR values, computed by DuckDB's vectorised sha256 (a
    # Python loop over ``hmac`` spent ~3 us per value, minutes per night at county scale). DuckDB has no HMAC
    # function, so RFC 2104 is spelled out: H((K ^ opad) || H((K ^ ipad) || message)) with K padded to the
    # 64-byte SHA-256 block. The padded keys go in a TEMP table (connection memory, never the database file).
    KEY_TABLE = "_placelink_pseudonym_key"

    @contextlib.contextmanager
    def sql_key(self, con):
        """The keyed pads ``token_sql`` reads, as a TEMP table on ``con`` for the ``with`` block (dropped after)."""
        key = hashlib.sha256(self._key).digest() if len(self._key) > 64 else self._key
        key = key.ljust(64, b"\x00")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {self.KEY_TABLE} AS SELECT $1::BLOB AS ipad, $2::BLOB AS opad",
                    [bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)])
        try:
            yield
        finally:
            con.execute(f"DROP TABLE IF EXISTS temp.{self.KEY_TABLE}")

    def token_sql(self, kind: str, expr: str, key_alias: str = "pzk") -> str:
        """SQL for ``token(kind, <expr>)`` of a VARCHAR expression; the query must ``CROSS JOIN`` the key table
        as ``key_alias`` (inside ``with sql_key(con)``). NULL or empty text gives NULL, as ``token`` does."""
        if not re.fullmatch(r"[a-z_]+", kind):
            raise ValueError(f"token kind must be lower-case letters and underscores, not {kind!r}")
        text = f"CAST({expr} AS VARCHAR)"
        message = f"encode('{kind}' || chr(31) || {text})"
        inner = f"unhex(sha256({key_alias}.ipad || {message}))"
        return f"CASE WHEN {text} IS NULL OR {text} = '' THEN NULL ELSE sha256({key_alias}.opad || {inner}) END"

    # identifiers, normalised first so spacing/case/accents never split one person into two tokens
    def nhs_number(self, value: object) -> str | None:
        return self.token("nhs_number", normalise_nhs_number(value, validate=False))

    def name(self, value: object) -> str | None:
        return self.token("name", normalise_name(value))

    def postcode(self, value: object) -> str | None:
        return self.token("postcode", normalise_postcode(value))

    def date_of_birth(self, value: object) -> str | None:
        return self.token("date_of_birth", None if value is None else str(value)[:10])


def pseudonymiser(settings: Settings) -> Pseudonymiser:
    return Pseudonymiser(load_key(settings))


# --- the warehouse keys, for stages that must find a person's rows (governance: erasure, audit) ------

def record_key(settings: Settings, record_id: str) -> str | None:
    """``src.*.record_key`` of a standard ``record_id`` (``<partner>.<feed>:<id>``)."""
    return pseudonymiser(settings).token("record", record_id)


def person_key(settings: Settings, person_id: object) -> str | None:
    """``src.*.person_key`` of a stable ``person_id`` from ``link.person_index``."""
    return pseudonymiser(settings).token("person", None if person_id is None else str(person_id))


def household_key(settings: Settings, household_id: object) -> str | None:
    """``src.*.household_key`` of a stable ``household_id`` from ``link.household_index``."""
    return pseudonymiser(settings).token("household", None if household_id is None else str(household_id))
