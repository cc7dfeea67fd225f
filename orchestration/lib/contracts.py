"""Feed contracts and sharing agreements: ``orchestration/feeds/<partner>.yml``.

A contract is data, not code: adding a partner is adding one YAML file. This module is the model
(pydantic v2) and the validator. Validation collects *every* mistake in a file — structural ones from
pydantic and cross-field ones (a mapping that names a column the feed does not declare, an identifier
outside the agreement ...) — and reports each with the file, the key path and how to fix it.

Examples:
    >>> contracts = load_contracts()            # every orchestration/feeds/*.yml, validated
    >>> feed = contracts.feed("police", "street_crimes")
    >>> feed.table                              # 'raw.police__street_crimes'
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestration.lib.errors import PlacelinkError
from orchestration.lib.validation import collect_problems

#: Where the contracts of the real partners live (data shipped with the code location).
FEEDS_DIR = Path(__file__).resolve().parents[1] / "feeds"

_ID = r"^[a-z][a-z0-9_]*$"
ColumnType = Literal["string", "integer", "float", "date", "datetime", "boolean"]


def snake_case(name: str) -> str:
    """Raw-table column name of a native column name: ``Crime ID`` -> ``crime_id``, ``DOB`` -> ``dob``."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    s = re.sub(r"[^0-9A-Za-z]+", "_", s).strip("_").lower()
    return s if s and not s[0].isdigit() else f"c_{s}"


@functools.lru_cache(maxsize=4096)
def _snake_cached(name: str) -> str:
    return snake_case(name)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Format(_Strict):
    type: Literal["csv", "excel", "jsonl"]
    encoding: str = "utf-8"
    delimiter: str = ","
    extension: str | None = None
    sheet: str | None = None
    quotechar: str = '"'

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, v: str) -> str:
        v = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(v, v)
        if len(v) != 1:
            raise ValueError(f"delimiter must be one character (use \\t for TAB), got {v!r}")
        return v

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        import codecs

        if v.lower() in ("auto", "detect"):
            return "auto"
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}; use e.g. utf-8, windows-1252, latin-1 or auto") from None
        return v

    @property
    def file_extension(self) -> str:
        return self.extension or {"csv": "csv", "excel": "xlsx", "jsonl": "jsonl"}[self.type]


# --- plausible dates ------------------------------------------------------------------------------
#
# A date can be well-formed and still impossible: a crime in 1900, an A&E arrival in 2031, a birth next year. One
# such value once stretched the calendar to 1900 and emptied every mart (issue #22), so the contract says, for each
# date/datetime column, which values are plausible — relative to the drop date (the date in the drop's file name),
# and for people's events relative to their date of birth. Ingest quarantines a row outside the range.

_SPAN = re.compile(r"^\s*(\d{1,4})\s*(day|days|month|months|year|years)\s*$")
DateRole = Literal["event", "birth", "other"]


def parse_span(text: str) -> tuple[int, int]:
    """``"3 years"`` -> ``(36, 0)``: a span as (months, days). Raises ValueError naming the accepted form."""
    m = _SPAN.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a span; write e.g. '1 day', '18 months' or '3 years'")
    n, unit = int(m.group(1)), m.group(2).rstrip("s")
    return {"day": (0, n), "month": (n, 0), "year": (12 * n, 0)}[unit]


def shift(day: dt.date, months: int = 0, days: int = 0) -> dt.date:
    """``day`` moved by whole months (the day clamped to the month's end: 29 Feb - 12 months = 28 Feb) and days.

    Saturates at ``date.min``/``date.max``: "120 years before" 0005-01-01 is simply "no earlier limit"."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    if year < dt.MINYEAR:
        return dt.date.min
    if year > dt.MAXYEAR:
        return dt.date.max
    import calendar

    moved = dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))
    try:
        return moved + dt.timedelta(days=days)
    except OverflowError:
        return dt.date.min if days < 0 else dt.date.max


class Plausible(_Strict):
    """Valid range of one date/datetime column. Every key is optional: a key left out takes the default of the
    column's role (:data:`PLAUSIBLE_DEFAULTS`), ``null`` removes that limit.

    ``after_drop``: the latest plausible value is the drop date plus this span; ``before_drop``: the earliest is
    the drop date minus this span; ``not_before_birth``: the value may not precede the row's date of birth (the
    feed's ``person.date_of_birth`` column). Limits are inclusive; a datetime is compared by its (UTC) date.
    """

    after_drop: str | None = None
    before_drop: str | None = None
    not_before_birth: bool = False

    @field_validator("after_drop", "before_drop")
    @classmethod
    def _span(cls, v: str | None) -> str | None:
        if v is not None:
            parse_span(v)
        return v

    def bounds(self, drop_date: dt.date) -> tuple[dt.date | None, dt.date | None]:
        """(earliest, latest) plausible date for a drop made on ``drop_date``; None = no limit that side."""
        lo = shift(drop_date, *(-x for x in parse_span(self.before_drop))) if self.before_drop else None
        hi = shift(drop_date, *parse_span(self.after_drop)) if self.after_drop else None
        return lo, hi


#: The range of a date column that does not say otherwise, by its role in the feed. Events: a monthly drop holds
#: last month's events and late records, so nothing later than the day after the drop (clocks and UTC conversion)
#: nor more than 3 years old; never before the person was born. Dates of birth: not after the drop, not more than
#: 120 years before it. Any other date: within a century either side of the drop (catches a mistyped century).
PLAUSIBLE_DEFAULTS: dict[str, Plausible] = {
    "event": Plausible(after_drop="1 day", before_drop="3 years", not_before_birth=True),
    "birth": Plausible(after_drop="0 days", before_drop="120 years"),
    "other": Plausible(after_drop="100 years", before_drop="120 years"),
}


class Column(_Strict):
    name: str = Field(min_length=1)
    type: ColumnType = "string"
    format: str | None = None
    required: bool = False
    identifier: Literal["direct", "quasi", "none"] = "none"
    description: str | None = None
    true_values: list[str] = Field(default_factory=lambda: ["true", "t", "yes", "y", "1"])
    false_values: list[str] = Field(default_factory=lambda: ["false", "f", "no", "n", "0"])
    #: date/datetime only: overrides of the plausible range its role gives it (see :class:`Plausible`)
    plausible: Plausible | None = None

    @property
    def sql_name(self) -> str:
        return _snake_cached(self.name)


class EventDate(_Strict):
    column: str


class PersonMapping(_Strict):
    """Mapping of a feed's columns to the standard person record (docs/design.md)."""

    given_name: str | None = None
    family_name: str | None = None
    full_name: str | None = None
    date_of_birth: str | None = None
    sex: str | None = None
    postcode: str | None = None
    address: list[str] | str | None = None
    nhs_number: str | None = None
    age_band: str | None = None
    ethnicity: str | None = None

    def columns(self) -> dict[str, list[str]]:
        """Standard field -> native columns it reads."""
        out: dict[str, list[str]] = {}
        for field, value in self.model_dump(exclude_none=True).items():
            out[field] = [value] if isinstance(value, str) else list(value)
        return out


class PlaceMapping(_Strict):
    postcode: str | None = None
    address: list[str] | str | None = None
    uprn: str | None = None
    lsoa: str | None = None
    latitude: str | None = None
    longitude: str | None = None
    easting: str | None = None
    northing: str | None = None

    def columns(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for field, value in self.model_dump(exclude_none=True).items():
            out[field] = [value] if isinstance(value, str) else list(value)
        return out


class Partitioning(_Strict):
    cadence: Literal["monthly"] = "monthly"


class LawfulBasis(_Strict):
    article_6: str | None = None
    special_category: bool = False
    law_enforcement: bool = False
    article_9: str | None = None
    dpa_2018_condition: str | None = None


class Agreement(_Strict):
    id: str = Field(min_length=1)
    purposes: list[str] = Field(min_length=1)
    lawful_basis: LawfulBasis | None = None
    allowed_columns: list[str] = Field(min_length=1)
    retention_months: int = Field(gt=0)
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    national_data_opt_out: bool = False
    contact: str | None = None

    def problems(self, today: dt.date | None = None) -> list[str]:
        """Why this agreement does not allow loading today (empty list = it does)."""
        today = today or dt.date.today()
        out = []
        if self.valid_from and today < self.valid_from:
            out.append(f"agreement {self.id} starts on {self.valid_from}")
        if self.valid_to and today > self.valid_to:
            out.append(f"agreement {self.id} expired on {self.valid_to}")
        lb = self.lawful_basis
        if lb is None or not (lb.article_6 or "").strip():
            out.append(f"agreement {self.id} has no lawful basis (agreement.lawful_basis.article_6)")
        elif (lb.special_category or lb.law_enforcement) and not (lb.dpa_2018_condition or "").strip():
            kind = "law-enforcement" if lb.law_enforcement else "special-category"
            out.append(f"agreement {self.id} covers {kind} data but names no DPA 2018 condition "
                       "(agreement.lawful_basis.dpa_2018_condition)")
        return out


class Linkage(_Strict):
    """How the feed's people are linked (docs/governance.md "Linking without sharing identifiers"): ``clear``
    (the partner sends identifiers; the default) or ``encoded`` (the partner runs ``placelink-partner`` and sends
    keyed encodings only). ``key_check`` is the check value of the secret the partners share, which the
    platform does not hold: a drop encoded with another secret is refused, at source and at landing."""

    mode: Literal["clear", "encoded"] = "clear"
    scheme: str | None = None
    key_check: str | None = Field(default=None, pattern=r"^[0-9a-f]{12}$")


class Feed(_Strict):
    id: str = Field(pattern=_ID)
    description: str = Field(min_length=1)
    format: Format
    record_id: str | list[str]
    event_date: EventDate | None = None
    columns: list[Column] = Field(min_length=1)
    person: PersonMapping | None = None
    place: PlaceMapping | None = None
    partitioning: Partitioning = Partitioning()
    agreement: Agreement
    linkage: Linkage = Linkage()

    # filled in by Contract so a feed knows its partner
    partner: str = ""

    @property
    def record_id_columns(self) -> list[str]:
        return [self.record_id] if isinstance(self.record_id, str) else list(self.record_id)

    @property
    def name(self) -> str:
        """``<partner>__<feed>``: the raw/src table name and asset key leaf."""
        return f"{self.partner}__{self.id}"

    @property
    def source(self) -> str:
        """``<partner>.<feed>``: the ``source`` of its standard person records."""
        return f"{self.partner}.{self.id}"

    @property
    def table(self) -> str:
        return f"raw.{self.name}"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def drop_extension(self) -> str:
        """The extension of the files landed for this feed: the native format's, or ``csv`` for an encoded feed
        (``placelink-partner`` writes ``<date>.csv`` + ``<date>.manifest.json`` whatever the native format)."""
        return "csv" if self.linkage.mode == "encoded" else self.format.file_extension

    @property
    def loaded_columns(self) -> list[Column]:
        """Contract columns the agreement allows (in contract order): what reaches the raw table."""
        allowed = set(self.agreement.allowed_columns)
        return [c for c in self.columns if c.name in allowed]

    @property
    def dropped_columns(self) -> list[str]:
        allowed = set(self.agreement.allowed_columns)
        return [c.name for c in self.columns if c.name not in allowed]

    def date_role(self, column: str) -> DateRole:
        """``event`` (the feed's event date), ``birth`` (its ``person.date_of_birth``) or ``other``."""
        if self.event_date and column == self.event_date.column:
            return "event"
        if self.person and column == self.person.date_of_birth:
            return "birth"
        return "other"

    def plausibility(self) -> dict[str, Plausible]:
        """Every date/datetime column's plausible range: its role's default with the contract's overrides.

        ``not_before_birth`` holds only where the feed maps a date of birth (the validator rejects it set
        explicitly without one)."""
        out: dict[str, Plausible] = {}
        has_birth = bool(self.person and self.person.date_of_birth)
        for col in self.columns:
            if col.type not in ("date", "datetime"):
                continue
            role = self.date_role(col.name)
            given = col.plausible.model_dump(include=col.plausible.model_fields_set) if col.plausible else {}
            rule = PLAUSIBLE_DEFAULTS[role].model_copy(update=given)
            if rule.not_before_birth and (not has_birth or role == "birth"):
                rule = rule.model_copy(update={"not_before_birth": False})
            out[col.name] = rule
        return out


class PartnerInfo(_Strict):
    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    # an e-mail address or a Dagster team (team:name): it becomes the asset owner
    owner: str = Field(pattern=r"^([^@\s]+@[^@\s]+\.[^@\s]+|team:[A-Za-z0-9_-]+)$")
    description: str | None = None


class Contract(_Strict):
    partner: PartnerInfo
    feeds: list[Feed] = Field(min_length=1)
    path: Path | None = None


class ContractError(PlacelinkError):
    """One or more mistakes in contract files; ``problems`` lists each as (where, what, fix)."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        lines = [f"{len(problems)} problem(s) in feed contracts:"]
        lines += [f"  - {w}: {m} (fix: {f})" for w, m, f in problems]
        super().__init__("\n".join(lines), fix="edit the contract file(s) above; see docs/feeds.md")


class Contracts:
    """All validated contracts, with lookups by partner and feed."""

    def __init__(self, contracts: list[Contract]):
        self.contracts = contracts

    def __iter__(self) -> Iterator[Contract]:
        return iter(self.contracts)

    def feeds(self, partner: str | None = None, feed: str | None = None) -> list[Feed]:
        out = [f for c in self.contracts for f in c.feeds
               if (partner is None or f.partner == partner) and (feed is None or f.id == feed)]
        if not out and (partner or feed):
            known = ", ".join(f.source for c in self.contracts for f in c.feeds) or "none"
            raise PlacelinkError(f"no feed matches partner={partner!r} feed={feed!r}",
                                 fix=f"use one of: {known}")
        return out

    def feed(self, partner: str, feed: str) -> Feed:
        return self.feeds(partner, feed)[0]

    def partner(self, partner_id: str) -> Contract:
        for c in self.contracts:
            if c.partner.id == partner_id:
                return c
        raise PlacelinkError(f"no contract for partner {partner_id!r}",
                             fix=f"add orchestration/feeds/{partner_id}.yml")


# --- validation ---------------------------------------------------------------------------------

_FIXES = {
    "missing": "add the key",
    "extra_forbidden": "remove the key or correct its spelling (see docs/feeds.md for the schema)",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "ids are lower_snake_case; owner is an e-mail address or team:<name>",
    "too_short": "give at least one value",
    "value_error": "correct the value",
    "date_from_datetime_parsing": "write the date as YYYY-MM-DD",
    "date_parsing": "write the date as YYYY-MM-DD",
}


def _cross_checks(feed: dict, fpath: str) -> list[tuple[str, str, str]]:
    """Checks pydantic cannot express: every name a feed mentions must be one of its columns."""
    problems: list[tuple[str, str, str]] = []
    cols = [c.get("name") for c in feed.get("columns") or [] if isinstance(c, dict)]
    colset = set(cols)
    where = f"{fpath}: feeds[{feed.get('id', '?')}]"

    def need(key: str, name: Any) -> None:
        if isinstance(name, str) and name not in colset:
            close = difflib.get_close_matches(name, cols, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "declare it under columns:"
            problems.append((f"{where}.{key}", f"names column {name!r}, which the feed does not declare", hint))

    for dup in sorted({c for c in cols if cols.count(c) > 1 and c}):
        problems.append((f"{where}.columns", f"column {dup!r} is declared twice", "keep one declaration"))
    rid = feed.get("record_id")
    for name in [rid] if isinstance(rid, str) else (rid or []):
        need("record_id", name)
    if isinstance(feed.get("event_date"), dict):
        need("event_date.column", feed["event_date"].get("column"))
    agreement = feed.get("agreement") if isinstance(feed.get("agreement"), dict) else {}
    allowed = set(agreement.get("allowed_columns") or [])
    for name in agreement.get("allowed_columns") or []:
        need("agreement.allowed_columns", name)
    for section in ("person", "place"):
        mapping = feed.get(section)
        if not isinstance(mapping, dict):
            continue
        for key, value in mapping.items():
            for name in [value] if isinstance(value, str) else (value if isinstance(value, list) else []):
                need(f"{section}.{key}", name)
                if name in colset and allowed and name not in allowed:
                    problems.append((f"{where}.{section}.{key}",
                                     f"maps column {name!r}, which the agreement does not allow",
                                     "add it to agreement.allowed_columns or remove the mapping"))
    person = feed.get("person") if isinstance(feed.get("person"), dict) else {}
    if person.get("full_name") and (person.get("given_name") or person.get("family_name")):
        problems.append((f"{where}.person", "maps both full_name and given_name/family_name",
                         "use either full_name (split at ingest) or the two name columns"))
    for name in [rid] if isinstance(rid, str) else (rid or []):
        if name in colset and allowed and name not in allowed:
            problems.append((f"{where}.record_id", f"record id column {name!r} is not in the agreement",
                             "add it to agreement.allowed_columns"))
    for c in feed.get("columns") or []:
        if not isinstance(c, dict):
            continue
        if c.get("format") and c.get("type") not in ("date", "datetime"):
            problems.append((f"{where}.columns[{c.get('name')}].format",
                             "format is only used for date and datetime columns", "remove it or fix the type"))
        if c.get("plausible") is not None and c.get("type") not in ("date", "datetime"):
            problems.append((f"{where}.columns[{c.get('name')}].plausible",
                             "plausible is only used for date and datetime columns", "remove it or fix the type"))
        elif isinstance(c.get("plausible"), dict) and c["plausible"].get("not_before_birth"):
            dob = person.get("date_of_birth")
            if not dob:
                problems.append((f"{where}.columns[{c.get('name')}].plausible.not_before_birth",
                                 "the feed maps no date of birth to compare with",
                                 "map person.date_of_birth or remove not_before_birth"))
            elif dob == c.get("name"):
                problems.append((f"{where}.columns[{c.get('name')}].plausible.not_before_birth",
                                 "the date of birth cannot be checked against itself", "remove not_before_birth"))
        if c.get("format"):
            try:
                dt.datetime(2024, 1, 2, 3, 4, 5).strftime(str(c["format"]))
            except ValueError as exc:
                problems.append((f"{where}.columns[{c.get('name')}].format", f"not a strptime pattern: {exc}",
                                 "use e.g. %d/%m/%Y"))
    linkage = feed.get("linkage") if isinstance(feed.get("linkage"), dict) else {}
    if linkage.get("mode") == "encoded" and not (linkage.get("scheme") and linkage.get("key_check")):
        problems.append((f"{where}.linkage", "encoded linkage needs the scheme and the shared secret's key_check",
                         "add scheme: placelink-clk/1 and key_check: <the 12-hex value `placelink-partner "
                         "key-check` prints>"))
    fmt = feed.get("format") if isinstance(feed.get("format"), dict) else {}
    if fmt.get("type") == "excel" and not fmt.get("sheet"):
        problems.append((f"{where}.format.sheet", "an Excel feed needs the sheet name", "add sheet: <name>"))
    return problems


def validate_contract_data(data: Any, path: str | Path) -> tuple[Contract | None, list[tuple[str, str, str]]]:
    """Validate one parsed YAML document; return the contract (or None) and every problem found."""
    fpath = str(path)
    problems: list[tuple[str, str, str]] = []
    if not isinstance(data, dict):
        return None, [(fpath, "the file is not a YAML mapping with partner: and feeds:",
                       "start from a copy of an existing contract")]
    contract = None
    try:
        contract = Contract.model_validate({**data, "path": Path(path)})
    except ValidationError as exc:
        problems += collect_problems(exc, data, fpath, _FIXES)
    for feed in data.get("feeds") or []:
        if isinstance(feed, dict):
            problems += _cross_checks(feed, fpath)
    partner = data.get("partner") if isinstance(data.get("partner"), dict) else {}
    stem = Path(path).stem
    if partner.get("id") and partner["id"] != stem:
        problems.append((f"{fpath}: partner.id", f"partner id {partner['id']!r} differs from the file name",
                         f"rename the file to {partner['id']}.yml or set id: {stem}"))
    ids = [f.get("id") for f in data.get("feeds") or [] if isinstance(f, dict)]
    for dup in sorted({i for i in ids if ids.count(i) > 1 and i}):
        problems.append((f"{fpath}: feeds", f"feed id {dup!r} appears twice", "give each feed its own id"))
    if problems:
        return None, problems
    assert contract is not None
    feeds = [f.model_copy(update={"partner": contract.partner.id, **_deployment_linkage(f, fpath)})
             for f in contract.feeds]
    return contract.model_copy(update={"feeds": feeds}), []


#: Deployment-wide switch (``PLACELINK_LINKAGE=encoded``, with ``PLACELINK_LINKAGE_KEY_CHECK`` the partners'
#: key check value): every feed with people is linked on encodings, as if each contract said
#: ``linkage: {mode: encoded, scheme: placelink-clk/1, key_check: <value>}``. ``PLACELINK_LINKAGE=encoded make demo``
#: runs the synthetic county this way; a real deployment writes ``linkage`` in each contract instead.
LINKAGE_ENV, LINKAGE_KEY_CHECK_ENV = "PLACELINK_LINKAGE", "PLACELINK_LINKAGE_KEY_CHECK"


def _deployment_linkage(feed: Feed, fpath: str) -> dict:
    import os

    mode = os.environ.get(LINKAGE_ENV, "").strip()
    if mode in ("", "clear") or feed.person is None or feed.linkage.mode == "encoded":
        return {}
    if mode != "encoded":
        raise ContractError([(f"environment variable {LINKAGE_ENV}", f"unknown linkage mode {mode!r}",
                              "set it to encoded or clear, or unset it")])
    from orchestration.lib.matching.encoding import SCHEME

    key_check = os.environ.get(LINKAGE_KEY_CHECK_ENV, "").strip()
    if not re.fullmatch(r"[0-9a-f]{12}", key_check):
        raise ContractError([(f"environment variable {LINKAGE_KEY_CHECK_ENV}",
                              f"{LINKAGE_ENV}=encoded needs the partners' key check value (12 hex) for {fpath}",
                              "set it to what `placelink-partner key-check` prints")])
    return {"linkage": Linkage(mode="encoded", scheme=SCHEME, key_check=key_check)}


def load_contract(path: str | Path) -> Contract:
    """Read and validate one contract file; raise :class:`ContractError` listing every mistake."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ContractError([(where, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                              "fix the indentation/quoting at that line")]) from None
    contract, problems = validate_contract_data(data, path)
    if problems:
        raise ContractError(problems)
    assert contract is not None
    return contract


def load_contracts(feeds_dir: str | Path | None = None) -> Contracts:
    """Load every ``*.yml``/``*.yaml`` contract in ``feeds_dir`` (default ``orchestration/feeds``).

    Raises:
        ContractError: listing every problem in every file (not just the first).
    """
    feeds_dir = Path(feeds_dir) if feeds_dir else FEEDS_DIR
    files = sorted([*feeds_dir.glob("*.yml"), *feeds_dir.glob("*.yaml")]) if feeds_dir.is_dir() else []
    contracts, problems = [], []
    for path in files:
        try:
            contracts.append(load_contract(path))
        except ContractError as exc:
            problems += exc.problems
    if problems:
        raise ContractError(problems)
    return Contracts(contracts)
