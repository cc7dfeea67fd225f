"""Validate a pandas DataFrame against a suite with GX Core and return a structured, masked result.

GX cannot read DuckDB through SQLAlchemy here (docs/design.md), so callers read the table into a DataFrame and
hand it over. Everything GX keeps (validation results, Data Docs under ``<home>/quality/``) has identifier
values masked first: Data Docs are for engineers and partners, not a side door into the identifiable zone.

This module never imports dagster.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from expectations.suite import SuiteSpec, add_derived_columns, build_gx_suite

SAMPLE_ROWS = 5
#: Row-location columns kept (unmasked) in failing-row samples: they say where to look, not who.
LOCATOR_COLUMNS = ("_record_id", "_partition", "_source_file", "_line")


# --- masking ------------------------------------------------------------------------------------------------
def mask_value(value: Any) -> Any:
    """Mask an identifier so a sample shows its shape, not its content.

    Dates keep only the year; postcodes keep the outward code; other text keeps its first character and
    its spaces (so "943 476 5919" -> "9** *** ****", "Smith" -> "S****").
    """
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp) or hasattr(value, "year") and hasattr(value, "month"):
        return f"{value.year}-**-**"
    text = str(value)
    parts = text.split(" ")
    if len(parts) == 2 and 2 <= len(parts[0]) <= 4 and len(parts[1]) == 3 and parts[0][:1].isalpha():
        return f"{parts[0]} ***"  # UK postcode: outward code is a district, not a person
    return "".join(ch if (i == 0 or ch == " ") else "*" for i, ch in enumerate(text))


# --- results --------------------------------------------------------------------------------------------------
@dataclass
class ExpectationOutcome:
    expectation: str
    column: str | None
    severity: str
    success: bool
    catches: list[str]
    why: str
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: Any = None
    error: str | None = None
    sample: list[dict] = field(default_factory=list)
    #: positions (0-based, in the validated frame) of failing rows; not serialised.
    unexpected_index: list[int] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("unexpected_index")
        return d


@dataclass
class QualityResult:
    suite: str
    table: str
    rows: int
    outcomes: list[ExpectationOutcome]
    statistics: dict
    docs_path: str | None = None
    partition: str | None = None

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "blocking"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "warn"]

    @property
    def passed_blocking(self) -> bool:
        return not self.blocking_failures

    @property
    def success(self) -> bool:
        return not self.blocking_failures and not self.warnings

    def outcomes_catching(self, defect: str) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if defect in o.catches]

    def invalid_rows(self, severity: str | None = None) -> set[int]:
        """Positions of rows with an invalid value: failing a row-level expectation other than "not null"
        (that is completeness) or "duplicate" (its own rate), optionally of one severity."""
        rows: set[int] = set()
        for o in self.outcomes:
            if o.expectation == "expect_column_values_to_not_be_null" or o.column == "_duplicate_of_earlier":
                continue
            if severity is None or o.severity == severity:
                rows.update(o.unexpected_index)
        return rows

    def summary(self) -> dict:
        return {
            "suite": self.suite, "table": self.table, "partition": self.partition, "rows": self.rows,
            "passed_blocking": self.passed_blocking, "blocking_failures": len(self.blocking_failures),
            "warnings": len(self.warnings), **self.statistics, "docs": self.docs_path,
        }


# --- GX context ---------------------------------------------------------------------------------------------------
#: The Data Docs index lists the latest this many validation results (older pages stay on disk). GX's index
#: builder otherwise loads every stored result on every validation: each nightly adds a result per feed and
#: table, so after a year each check would spend most of its time re-reading the year's results.
DOCS_INDEX_LIMIT = 300


def _context(quality_dir: Path | None):
    """An ephemeral GX context: no analytics, no progress bars; when ``quality_dir`` is given, validation
    results persist under ``quality_dir/results`` and Data Docs are built into ``quality_dir/docs``."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"  # GX must never phone home from here
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    cfg = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites=sites,
    )
    if quality_dir is not None:
        cfg.data_docs_sites = {"placelink": {
            "class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(quality_dir / "docs")},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                   "validation_results_limit": DOCS_INDEX_LIMIT},
        }}
        cfg.stores[cfg.validation_results_store_name] = {
            "class_name": "ValidationResultsStore",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(quality_dir / "results")},
        }
    return gx.get_context(mode="ephemeral", project_config=cfg)


def build_docs_index(quality_dir: Path) -> str | None:
    """Rebuild the Data Docs index page under ``quality_dir`` (with the page of the latest stored result, as GX
    builds pages and the index together); returns the index URL, or None when nothing was validated yet."""
    results = Path(quality_dir) / "results"
    if not results.exists():
        return None
    ctx = _context(Path(quality_dir))
    keys = ctx.validation_results_store.list_keys()
    if not keys:
        return None
    latest = max(keys, key=lambda k: (k.run_id.run_time or pd.Timestamp.min.to_pydatetime(), str(k.to_tuple())))
    urls = ctx.build_data_docs(site_names=["placelink"], resource_identifiers=[latest], build_index=True)
    return urls.get("placelink")


def _for_gx(df: pd.DataFrame) -> pd.DataFrame:
    """pandas 3 ``str`` columns -> object, so GX's type checks see Python ``str`` values (see TYPE_LISTS);
    datetime columns -> nanosecond resolution where every value fits (1677-2262).

    GX compares only ``datetime64[ns]`` columns vectorised: DuckDB's dates arrive as ``datetime64[us]``, which
    GX checked one Python call per row (validating a county month of the nine feeds: 24 -> 20 s). A date
    outside the nanosecond range keeps its resolution (and the slow, equally correct path)."""
    out = df.reset_index(drop=True)
    for column in out.columns:
        dtype = out[column].dtype
        if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
            out[column] = out[column].astype(object).where(out[column].notna(), None)
        elif pd.api.types.is_datetime64_dtype(dtype) and not pd.api.types.is_datetime64_ns_dtype(dtype):
            try:
                out[column] = out[column].astype("datetime64[ns]")
            except (OverflowError, pd.errors.OutOfBoundsDatetime):
                pass  # e.g. a typed year 0199: left as it came, GX then compares it row by row
    return out


def _locators(df: pd.DataFrame, spec: SuiteSpec) -> list[str]:
    """Columns that say where a failing row is. ``_record_id`` only when the record id is not itself made of
    identifiers (a pupil's UPN is the school attendance record id: it reached check metadata, issue #22);
    ``_source_file`` and ``_line`` always find the row."""
    hide = {"_record_id"} if spec.record_id_identifies else set()
    return [c for c in LOCATOR_COLUMNS if c in df.columns and c not in hide]


def _masked_sample(df: pd.DataFrame, rows: list[int], columns: list[str], spec: SuiteSpec) -> list[dict]:
    sample = []
    locators = _locators(df, spec)
    for pos in rows[:SAMPLE_ROWS]:
        record = {c: _plain(df.at[pos, c]) for c in locators}
        for col in columns:
            if col in df.columns:
                value = df.at[pos, col]
                record[col] = mask_value(value) if col in spec.identifiers else _plain(value)
        sample.append(record)
    return sample


def _plain(value: Any) -> Any:
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (int, float, bool, str)) else str(value)


WITHHELD = "[withheld: a library message can quote the data]"


def _exception_type(info: dict) -> str:
    """The exception's type from a GX ``exception_info`` (the last traceback line reads ``Type: message``)."""
    lines = [ln for ln in str(info.get("exception_traceback") or "").strip().splitlines() if ln.strip()]
    head = lines[-1].split(":", 1)[0].strip() if lines else ""
    return head if head.replace(".", "").replace("_", "").isalnum() else "an exception"


def gx_error(exc_info: dict | None, success: bool) -> str | None:
    """What we say when GX raised while evaluating an expectation: the exception's type, never its message
    (``could not convert string 'Smith' to float`` names a person)."""
    exc_info = exc_info or {}
    if exc_info.get("raised_exception"):
        return f"GX raised {_exception_type(exc_info)} evaluating this expectation; {WITHHELD}"
    if not success:
        for value in exc_info.values():  # metric-level exceptions are keyed by metric id
            if isinstance(value, dict) and value.get("raised_exception"):
                return f"GX raised {_exception_type(value)} evaluating this expectation; {WITHHELD}"
    return None


def _observes_type(expectation: str) -> bool:
    """Type expectations observe a dtype name, not a value."""
    return "_type" in expectation


def _scrub_exception_info(info: Any) -> None:
    if isinstance(info, dict):
        for key in ("exception_message", "exception_traceback"):
            if info.get(key):
                info[key] = WITHHELD
        for value in info.values():
            _scrub_exception_info(value)


def _mask_gx_result(er, spec: SuiteSpec) -> None:
    """Strip full lists, mask identifier values and withhold exception texts inside a GX result before anything
    stores it (the results store and Data Docs under ``<home>/quality``)."""
    res = er.result
    for key in ("unexpected_list", "unexpected_index_list", "unexpected_index_query", "unexpected_rows"):
        res.pop(key, None)
    if set(_columns_of(er.expectation_config.kwargs)) & set(spec.identifiers):
        if "partial_unexpected_list" in res:
            res["partial_unexpected_list"] = [_mask_any(v) for v in res["partial_unexpected_list"]]
        if res.get("observed_value") is not None and not _observes_type(er.expectation_config.type):
            # e.g. the max of a date of birth is someone's birthday
            res["observed_value"] = _mask_any(res["observed_value"])
        res.pop("partial_unexpected_counts", None)
        res.pop("partial_unexpected_index_list", None)
        res.pop("details", None)
    _scrub_exception_info(er.exception_info)


def _columns_of(kwargs: dict) -> list[str]:
    cols = [kwargs.get(k) for k in ("column", "column_A", "column_B")]
    return [c for c in cols + list(kwargs.get("column_list") or []) if c]


def _mask_any(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [mask_value(v) for v in value]
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    return mask_value(value)


def rules_day(today=None) -> pd.Timestamp:
    """The day the rules about dates are applied on (``today`` if given, else the current date at midnight)."""
    return pd.Timestamp(today) if today is not None else pd.Timestamp.now().normalize()


def validate_dataframe(df: pd.DataFrame, spec: SuiteSpec, *, params: dict | None = None,
                       quality_dir: Path | None = None, partition: str | None = None,
                       docs_index: bool = True) -> QualityResult:
    """Validate ``df`` against ``spec`` and return outcomes with masked samples.

    Args:
        df: the table (or one partition of it) as read from DuckDB.
        spec: the suite (see :func:`expectations.suite.load_suite`).
        params: suite parameters: ``today`` (Timestamp; default now), ``volume_min``/``volume_max``.
        quality_dir: when given, results are stored and Data Docs rebuilt under it; ``docs_path`` is set.
        partition: label recorded with the result.
        docs_index: also rebuild the Data Docs index page (:func:`build_docs_index`). The index reads up to
            ``DOCS_INDEX_LIMIT`` stored results: with 300 of them (a month of nightlies) a rebuild took 2.2-2.7 s
            here against 0.55 s with 30, so the nightly's per-feed checks leave it to one rebuild after them.
    """
    import great_expectations as gx

    params = dict(params or {})
    params["today"] = rules_day(params.get("today"))
    params.setdefault("volume_min", 1)
    params.setdefault("volume_max", None)
    frame = _for_gx(add_derived_columns(df, spec))
    ctx = _context(quality_dir)
    gx_suite = ctx.suites.add(build_gx_suite(spec, params))
    asset_name = spec.name if partition is None else f"{spec.name}@{partition}"
    batch = ctx.data_sources.add_pandas("placelink").add_dataframe_asset(asset_name) \
        .add_batch_definition_whole_dataframe("frame")
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=spec.name, data=batch, suite=gx_suite))
    from great_expectations.core.run_identifier import RunIdentifier

    run_id = RunIdentifier(run_name=partition or "all", run_time=pd.Timestamp.now(tz="UTC").to_pydatetime())
    result = vd.run(batch_parameters={"dataframe": frame}, expectation_parameters=params,
                    result_format={"result_format": "COMPLETE"}, run_id=run_id)

    outcomes = []
    for er in result.results:
        cfg = er.expectation_config
        meta = cfg.meta or {}
        res = er.result or {}
        index = [int(i) for i in (res.get("unexpected_index_list") or []) if isinstance(i, (int, float))]
        error = gx_error(er.exception_info, bool(er.success))
        column = cfg.kwargs.get("column")
        observed = res.get("observed_value")
        if observed is not None and not _observes_type(cfg.type) and set(_columns_of(cfg.kwargs)) & set(spec.identifiers):
            observed = _mask_any(observed)
        outcomes.append(ExpectationOutcome(
            expectation=cfg.type, column=column, severity=meta.get("severity", "blocking"),
            success=bool(er.success), catches=list(meta.get("catches") or []), why=meta.get("why", ""),
            unexpected_count=res.get("unexpected_count"), unexpected_percent=res.get("unexpected_percent"),
            observed_value=_plain(observed) if not isinstance(observed, (list, dict)) else observed,
            error=error, sample=[] if er.success else _masked_sample(frame, index, _columns_of(cfg.kwargs), spec),
            unexpected_index=index,
        ))
        _mask_gx_result(er, spec)

    docs_path = None
    if quality_dir is not None:
        # the key of the result this run just stored (the store also holds earlier runs from disk)
        keys = [k for k in ctx.validation_results_store.list_keys()
                if k.expectation_suite_identifier.name == spec.name and k.run_id.to_tuple() == run_id.to_tuple()]
        key = keys[0] if keys else None
        if key is not None:
            ctx.validation_results_store.set(key, result)  # overwrite with the masked result
            ctx.build_data_docs(site_names=["placelink"], resource_identifiers=[key], build_index=docs_index)
            urls = ctx.get_docs_sites_urls(resource_identifier=key, site_name="placelink")
            docs_path = urls[0]["site_url"] if urls else None
    statistics = dict(result.statistics)
    statistics = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in statistics.items()}
    return QualityResult(suite=spec.name, table=spec.table, rows=len(frame), outcomes=outcomes,
                         statistics=statistics, docs_path=docs_path, partition=partition)
