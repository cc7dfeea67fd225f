"""Suites are data: ``expectations/suites/<name>.yml`` turned into GX Core suites by small builders.

A suite file names the table it guards, which columns are identifiers (masked in every sample we keep),
the structural contract (column -> type; always **blocking**) and a list of GX expectations, each with an
explicit ``severity`` (``blocking`` stops downstream assets; ``warn`` reports only) and the synthetic
defects it is meant to ``catch``. Some rules GX cannot express on a DataFrame (the NHS number modulus-11 check
digit, "is a later copy of an earlier record") are computed as derived boolean columns here and then
validated by ordinary GX expectations, so every verdict still comes from GX.

This module never imports dagster.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from orchestration.lib.errors import PlacelinkError

SUITES_DIR = Path(__file__).resolve().parent / "suites"
SEVERITIES = ("blocking", "warn")

#: GX ``type_list`` names per contract type. pandas 3 reads DuckDB VARCHAR as the ``str`` dtype, which GX's
#: dtype comparison does not recognise, so the runner hands string columns to GX as ``object`` and GX then
#: checks each value's Python type ("str").
TYPE_LISTS: dict[str, list[str]] = {
    "string": ["str", "StringDtype"],
    "integer": ["int8", "int16", "int32", "int64", "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype"],
    "float": ["float32", "float64", "Float32Dtype", "Float64Dtype"],
    "date": ["datetime64[s]", "datetime64[ms]", "datetime64[us]", "datetime64[ns]"],
    "datetime": ["datetime64[s]", "datetime64[ms]", "datetime64[us]", "datetime64[ns]"],
    "boolean": ["bool", "BooleanDtype"],
}

#: Columns ingestion adds to every raw table (docs/architecture.md).
RAW_META_COLUMNS = {"_record_id": "string", "_partition": "date", "_source_file": "string", "_line": "integer"}


# --- derived columns ------------------------------------------------------------------------------------
def nhs_number_valid(values: pd.Series) -> pd.Series:
    """True if a 10-digit NHS number passes the modulus-11 check digit; null where the number is null.

    Written here because no maintained Python package for NHS number validation is in our lock, and the
    rule is a few lines (NHS Data Dictionary: weights 10..2, check = 11 - sum mod 11, 11 -> 0, 10 invalid).
    """
    text = values.astype("string").str.replace(r"[\s-]", "", regex=True)
    ok_shape = text.str.fullmatch(r"\d{10}").fillna(False).astype(bool)
    digits = text.where(ok_shape, "0000000000")
    total = sum(digits.str[i].astype(int) * (10 - i) for i in range(9))
    check = 11 - (total % 11)
    check = check.where(check != 11, 0)
    valid = ok_shape & (check != 10) & (check == digits.str[9].astype(int))
    out = pd.Series(valid.astype(object), index=values.index)
    out[values.isna()] = None
    return out


#: A boolean column a caller may add when it validates only some months of a table: True where a copy of the
#: row (by the derivation's columns) was loaded in an earlier month that is not in the frame.
EARLIER_COPY_COLUMN = "_copy_in_earlier_month"


def duplicate_of_earlier(df: pd.DataFrame, columns: list[str]) -> pd.Series:
    """True for every later copy of a record id (the first copy is not counted), so the unexpected count
    is the number of surplus rows: the duplicate rate partners recognise."""
    dup = df.duplicated(subset=columns, keep="first")
    if EARLIER_COPY_COLUMN in df.columns:
        dup = dup | df[EARLIER_COPY_COLUMN].fillna(False).astype(bool)
    return dup


DERIVATIONS: dict[str, Callable[..., pd.Series]] = {
    "nhs_number_valid": lambda df, column: nhs_number_valid(df[column]),
    "duplicate_of_earlier": lambda df, columns: duplicate_of_earlier(df, list(columns)),
}


# --- suite specification ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpectationSpec:
    expect: str  # GX snake-case name, e.g. expect_column_values_to_match_regex
    kwargs: dict[str, Any]
    severity: str
    catches: tuple[str, ...] = ()
    why: str = ""

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    kind: str  # feed | mart | published
    asset: str  # Dagster asset key, e.g. raw/police__street_crimes
    database: str  # identifiable | warehouse
    table: str  # schema.table
    description: str
    identifiers: tuple[str, ...]
    columns: dict[str, str]
    expectations: tuple[ExpectationSpec, ...]
    derive: tuple[dict, ...] = ()
    partner: str | None = None
    feed: str | None = None
    record_id: tuple[str, ...] = ()
    event_date: str | None = None
    volume: dict | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def record_id_identifies(self) -> bool:
        """True when the record id is made of identifier columns (a pupil's UPN): ``_record_id`` is then an
        identifier too, and is never shown in samples."""
        return bool(set(self.record_id) & set(self.identifiers))

    @property
    def all_expectations(self) -> list[ExpectationSpec]:
        """The structural expectations generated from ``columns`` (blocking) followed by the listed ones."""
        structural = [
            ExpectationSpec("expect_table_row_count_to_be_between", {"min_value": 1}, "blocking",
                            why="an empty table means the feed did not load")
        ]
        for column, type_ in self.columns.items():
            structural.append(ExpectationSpec("expect_column_to_exist", {"column": column}, "blocking",
                                              why="the contract says this column exists"))
            structural.append(ExpectationSpec("expect_column_values_to_be_in_type_list",
                                              {"column": column, "type_list": TYPE_LISTS[type_]}, "blocking",
                                              why=f"the contract types this column as {type_}"))
        if self.volume:
            structural.append(ExpectationSpec(
                "expect_table_row_count_to_be_between",
                {"min_value": {"$PARAMETER": "volume_min"}, "max_value": {"$PARAMETER": "volume_max"}},
                self.volume.get("severity", "warn"), catches=("volume",),
                why="rows loaded should be plausible against the median of recent months"))
        return structural + list(self.expectations)


def _where(path: Path, key: str) -> str:
    return f"{path}: {key}"


def contract_identifiers(partner: str, feed: str) -> tuple[str, ...]:
    """The feed's identifier columns (direct and quasi) as its contract marks them, by table column name.

    The contract is where a column is declared an identifier; a suite's own ``identifiers:`` list can only add to
    it (a suite that forgot ``gender`` or a free-text ``notes`` column would otherwise show their values in
    failing-row samples and Data Docs). Empty when no contract of that name is found (test suites)."""
    return _contract_identifiers().get((partner, feed), ())


@functools.lru_cache(maxsize=1)
def _contract_identifiers() -> dict[tuple[str, str], tuple[str, ...]]:
    from orchestration.lib.contracts import load_contracts

    try:
        contracts = load_contracts()
    except PlacelinkError:
        return {}
    return {(f.partner, f.id): tuple(c.sql_name for c in f.columns if c.identifier in ("direct", "quasi"))
            for f in contracts.feeds()}


def load_suite(path: str | Path) -> SuiteSpec:
    """Read one suite file, checking what a reviewer would otherwise have to check by eye."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PlacelinkError(f"suite is not valid YAML: {exc}", where=str(path),
                             fix="fix the YAML syntax (indentation, quoting)") from exc
    for key in ("suite", "kind", "asset", "database", "table"):
        if not raw.get(key):
            raise PlacelinkError(f"suite has no '{key}'", where=str(path), fix=f"add a top-level '{key}:'")
    columns = {str(k): str(v) for k, v in (raw.get("columns") or {}).items()}
    for column, type_ in columns.items():
        if type_ not in TYPE_LISTS:
            raise PlacelinkError(f"unknown type {type_!r}", where=_where(path, f"columns.{column}"),
                                 fix=f"use one of {', '.join(TYPE_LISTS)}")
    if raw["kind"] == "feed":
        columns = {**RAW_META_COLUMNS, **columns}
    specs = []
    for i, item in enumerate(raw.get("expectations") or []):
        item = dict(item)
        expect = item.pop("expect", None)
        severity = item.pop("severity", None)
        if not expect or not str(expect).startswith("expect_"):
            raise PlacelinkError("expectation has no 'expect: expect_...' name", where=_where(path, f"expectations[{i}]"),
                                 fix="name a GX expectation, e.g. expect_column_values_to_not_be_null")
        if severity not in SEVERITIES:
            raise PlacelinkError(f"severity {severity!r} is not one of {SEVERITIES}",
                                 where=_where(path, f"expectations[{i}] ({expect})"),
                                 fix="say 'severity: blocking' (stops downstream) or 'severity: warn'")
        catches = tuple(item.pop("catches", None) or ())
        why = str(item.pop("why", "") or "")
        kwargs = item.pop("kwargs", None) or {}
        kwargs.update(item)  # shorthand: column/mostly/... may sit next to 'expect'
        specs.append(ExpectationSpec(expect, kwargs, severity, catches, why))
    record_id = raw.get("record_id") or []
    identifiers = tuple(raw.get("identifiers") or ())
    if raw["kind"] == "feed" and raw.get("partner") and raw.get("feed"):
        identifiers += tuple(c for c in contract_identifiers(raw["partner"], raw["feed"]) if c not in identifiers)
    return SuiteSpec(
        name=raw["suite"], kind=raw["kind"], asset=raw["asset"], database=raw["database"], table=raw["table"],
        description=str(raw.get("description", "")).strip(), identifiers=identifiers,
        columns=columns, expectations=tuple(specs), derive=tuple(raw.get("derive") or ()),
        partner=raw.get("partner"), feed=raw.get("feed"),
        record_id=tuple([record_id] if isinstance(record_id, str) else record_id),
        event_date=raw.get("event_date"), volume=raw.get("volume"), path=path,
    )


def load_suites(kind: str | None = None, directory: Path = SUITES_DIR) -> list[SuiteSpec]:
    suites = [load_suite(p) for p in sorted(directory.glob("*.yml"))]
    return [s for s in suites if kind is None or s.kind == kind]


def suite_for_table(table: str, directory: Path = SUITES_DIR) -> SuiteSpec:
    for suite in load_suites(directory=directory):
        if suite.table == table or suite.name == table:
            return suite
    raise PlacelinkError(f"no quality suite for {table!r}", where=str(directory),
                         fix=f"add {directory}/<name>.yml with 'table: {table}'")


# --- building GX objects ----------------------------------------------------------------------------------
def _camel(expect: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in expect.split("_"))


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parametrise(kwargs: dict, index: int, params: dict) -> dict:
    """GX on pandas compares datetime columns only with Timestamps, which a YAML suite cannot hold:
    turn ISO date strings and the word ``today`` into suite parameters resolved at validation time."""
    out = {}
    for key, value in kwargs.items():
        if key == "row_condition" and isinstance(value, dict):
            # YAML {column: c, equals: v} -> a GX Condition object (string conditions are deprecated in GX 1.9)
            from great_expectations.expectations.row_conditions import Column

            out[key] = Column(value["column"]) == value["equals"]
            continue
        if key in ("min_value", "max_value") and isinstance(value, (str, date)):
            name = f"e{index}_{key}"
            if value == "today":
                params[name] = pd.Timestamp(params.get("today") or pd.Timestamp.now().normalize())
            elif isinstance(value, date) or _DATE_RE.match(value):
                params[name] = pd.Timestamp(value)
            else:
                out[key] = value
                continue
            out[key] = {"$PARAMETER": name}
        else:
            out[key] = value
    return out


def build_gx_suite(spec: SuiteSpec, params: dict) -> Any:
    """Build a ``gx.ExpectationSuite`` from a spec. ``params`` gains the suite parameters it needs.

    Each GX expectation carries ``meta`` with our severity, the defects it catches and why it exists.
    """
    os.environ["GX_ANALYTICS_ENABLED"] = "false"  # GX must never phone home from here
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.data_context.context_factory import project_manager
    from great_expectations.exceptions import DataContextRequiredError

    try:
        project_manager.get_current_project()
    except DataContextRequiredError:
        gx.get_context(mode="ephemeral")  # GX 1.x builds suites only inside an active context

    suite = gx.ExpectationSuite(name=spec.name, meta={"kind": spec.kind, "table": spec.table})
    for i, exp in enumerate(spec.all_expectations):
        cls = getattr(gxe, _camel(exp.expect), None)
        if cls is None:
            raise PlacelinkError(f"GX has no expectation {exp.expect!r}",
                                 where=f"{spec.path}: {exp.expect}",
                                 fix="check the name in the GX gallery for the installed version")
        kwargs = _parametrise(exp.kwargs, i, params)
        meta = {"severity": exp.severity, "catches": list(exp.catches), "why": exp.why, "index": i}
        try:
            suite.add_expectation(cls(**kwargs, meta=meta))
        except Exception as exc:  # pydantic validation of the kwargs
            raise PlacelinkError(f"bad arguments for {exp.expect}: {exc}", where=f"{spec.path}: expectation {i}",
                                 fix="compare the kwargs with the expectation's documented arguments") from exc
    return suite


def add_derived_columns(df: pd.DataFrame, spec: SuiteSpec) -> pd.DataFrame:
    df = df.copy()
    for item in spec.derive:
        item = dict(item)
        name, fn = item.pop("name"), item.pop("function")
        if fn not in DERIVATIONS:
            raise PlacelinkError(f"unknown derivation {fn!r}", where=f"{spec.path}: derive.{name}",
                                 fix=f"use one of {', '.join(DERIVATIONS)}")
        missing = [c for c in ([item["column"]] if "column" in item else item.get("columns", [])) if c not in df]
        if missing:
            df[name] = None  # the structural expectations already report the missing column
            continue
        df[name] = DERIVATIONS[fn](df, **item)
    return df
