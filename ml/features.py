"""Features from the warehouse marts, cut at monthly cutoffs so nothing from the future leaks in.

Every example is (unit, cutoff): features use only months *before* the cutoff, the label only the
``horizon`` months from the cutoff on. Splits are by time (see :func:`time_splits`): the test period is the
last ``horizon`` months, validation the ``horizon`` before it, and training cutoffs end early enough that
their labels are all observed before validation starts.

Only indicators whose feed is listed in the model's ethics record are used (and that record has already
been checked against the feed agreements); an indicator whose feed cannot be told is left out.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

from orchestration.lib.errors import PlacelinkError

MODELS_DIR = Path(__file__).resolve().parent / "models"

#: The indicator catalogue (dbt seed ``indicators``): the one statement of which partner feed each indicator is
#: counted from, including those built only in the place marts (crimes_total, school_sessions_possible ...).
INDICATOR_CATALOGUE = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds" / "indicators.csv"


def _catalogue_feeds() -> dict[str, str]:
    """indicator -> '<partner>.<feed>' from the indicator catalogue."""
    with open(INDICATOR_CATALOGUE, newline="", encoding="utf-8") as f:
        return {row["indicator"]: f"{row['partner']}.{row['feed']}" for row in csv.DictReader(f)}


@dataclass(frozen=True)
class ModelSpec:
    """What a model predicts (``ml/models/<name>/model.yml``)."""

    name: str
    kind: str  # "risk" | "demand"
    unit: str
    outcome: str
    horizon_months: int
    lookbacks_months: tuple[int, ...]
    min_history_months: int
    primary_metric: str
    registered_model: str
    predictions_table: str
    marts: tuple[str, ...]
    top_fraction: float = 0.05

    @property
    def higher_is_better(self) -> bool:
        return self.primary_metric in {"auc", "average_precision", "precision_at_top"}


def load_spec(model: str, models_dir: Path | None = None) -> ModelSpec:
    path = (models_dir or MODELS_DIR) / model / "model.yml"
    if not path.exists():
        known = sorted(p.name for p in (models_dir or MODELS_DIR).iterdir() if (p / "model.yml").exists())
        raise PlacelinkError(f"unknown model {model!r}", where=str(path), fix=f"use one of {known}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return ModelSpec(
        name=raw["name"], kind=raw["kind"], unit=raw["unit"], outcome=raw["outcome"],
        horizon_months=int(raw["horizon_months"]), lookbacks_months=tuple(raw["lookbacks_months"]),
        min_history_months=int(raw["min_history_months"]), primary_metric=raw["primary_metric"],
        registered_model=raw["registered_model"], predictions_table=raw["predictions_table"],
        marts=tuple(raw.get("marts") or ()), top_fraction=float(raw.get("top_fraction", 0.05)),
    )


def list_models(models_dir: Path | None = None) -> list[str]:
    return sorted(p.name for p in (models_dir or MODELS_DIR).iterdir() if (p / "model.yml").exists())


# ---- months -------------------------------------------------------------------------------------------


def month_index(values) -> np.ndarray:
    """Months as integers (year * 12 + month - 1) so windows are plain integer ranges."""
    ts = pd.to_datetime(pd.Series(values))
    return (ts.dt.year * 12 + ts.dt.month - 1).to_numpy(dtype=np.int64)


def month_start(index: int) -> dt.date:
    return dt.date(int(index) // 12, int(index) % 12 + 1, 1)


def feature_name(indicator: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", indicator).strip("_").lower()


# ---- warehouse access -------------------------------------------------------------------------------


def connect_read_only(warehouse: Path) -> duckdb.DuckDBPyConnection:
    if not Path(warehouse).exists():
        raise PlacelinkError("warehouse not found", where=str(warehouse),
                             fix="run the pipeline first (placelink refresh, or placelink build after ingest)")
    return duckdb.connect(str(warehouse), read_only=True)


def _existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("select table_schema || '.' || table_name from information_schema.tables").fetchall()
    return {r[0] for r in rows}


def require_tables(con: duckdb.DuckDBPyConnection, tables, warehouse: Path | str) -> None:
    missing = sorted(set(tables) - _existing_tables(con))
    if missing:
        raise PlacelinkError(f"the warehouse lacks the dbt models {missing}", where=str(warehouse),
                             fix="run `placelink build` (dbt) so the marts exist before training")


def indicator_feeds(con: duckdb.DuckDBPyConnection, indicators) -> dict[str, str | None]:
    """Map each indicator to '<partner>.<feed>' (None when it cannot be told)."""
    known: dict[str, str] = {}
    if "intermediate.int_events_joined_to_places" in _existing_tables(con):
        columns = {r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'intermediate' "
            "and table_name = 'int_events_joined_to_places'").fetchall()}
        for column in [c for c in ("event_type", "indicator") if c in columns]:
            rows = con.execute(f"select distinct {column}, partner || '.' || feed "
                               "from intermediate.int_events_joined_to_places").fetchall()
            known.update({r[0]: r[1] for r in rows if r[0]})
    catalogue = _catalogue_feeds()
    return {ind: known.get(ind) or catalogue.get(ind) for ind in indicators}


def permitted_indicators(con, indicators, feeds: list[str]) -> tuple[list[str], dict[str, str]]:
    """Indicators whose feed is in ``feeds``; and the dropped ones with the reason."""
    mapping = indicator_feeds(con, indicators)
    allowed, dropped = [], {}
    for ind in sorted(indicators):
        feed = mapping.get(ind)
        if feed is None:
            dropped[ind] = "feed unknown"
        elif feed not in feeds:
            dropped[ind] = f"feed {feed} not in the ethics record"
        else:
            allowed.append(ind)
    return allowed, dropped


def frame_digest(frame: pd.DataFrame) -> str:
    """A short content digest of a table, so a run records exactly which data it saw."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(map(str, frame.columns)).encode()).hexdigest()[:16]


# ---- splits -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Splits:
    train: tuple[int, ...]
    valid: int
    test: int
    score: int  # first month after the data: predictions look forward from here

    def describe(self) -> dict[str, str]:
        return {"train_cutoffs": f"{month_start(self.train[0])}..{month_start(self.train[-1])}",
                "valid_cutoff": str(month_start(self.valid)), "test_cutoff": str(month_start(self.test)),
                "score_cutoff": str(month_start(self.score))}


class NotEnoughHistoryError(PlacelinkError):
    """The marts hold fewer months than a model's time-based splits need. Not a fault in the data: a county
    evaluated on a year of drops has too little history to train, and the rest of the pipeline is still useful."""


def time_splits(first: int, end: int, horizon: int, min_history: int) -> Splits:
    """Cutoffs for months ``first`` .. ``end - 1`` (``end`` exclusive) with no label overlap across splits."""
    test = end - horizon
    valid = test - horizon
    train = tuple(range(first + min_history, valid - horizon + 1))
    if not train:
        need = min_history + 3 * horizon
        raise NotEnoughHistoryError(
            f"not enough history: {end - first} months in the marts, the time-based splits need {need} "
            f"({min_history} of history, then train, validation and test windows of {horizon})",
            where="marts", fix="generate or load more months (placelink generate --months 24)")
    return Splits(train=train, valid=valid, test=test, score=end)


@dataclass
class Frames:
    """Model-ready examples. ``train/valid/test`` hold unit, cutoff, features and ``label``."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    features: list[str]
    splits: Splits
    inputs: dict[str, pd.DataFrame] = field(default_factory=dict)  # dbt model name -> data read
    dropped_indicators: dict[str, str] = field(default_factory=dict)
    scoring: pd.DataFrame | None = None


def _no_examples(scoring: pd.DataFrame) -> pd.DataFrame:
    """No examples, with the columns labelled examples have (for a scoring-only build)."""
    return scoring.iloc[0:0].assign(label=pd.Series(dtype="float64"))


# ---- household risk ------------------------------------------------------------------------------------

def _latest(column: str) -> str:
    """SQL: ``column`` on the latest event, ties to the larger value (deterministic); like ``arg_max(column,
    event_date)``, rows with a null column or date are skipped."""
    return f"arg_max({column}, (event_date, {column})) filter (where event_date is not null)"


_HOUSEHOLD_EVENTS_SQL = f"""
with homes as (
    -- ties (two events on a person's latest date, at different addresses) go to the larger key: a plain
    -- arg_max broke them arbitrarily, so a household's examples changed between two builds of one warehouse
    select person_key, {_latest('household_key')} as household_key
    from intermediate.int_events_joined_to_places
    where person_key is not null and household_key is not null
    group by all
)
select homes.household_key, e.person_key, e.month, e.indicator, e.event_count
from marts.person_monthly_events e join homes using (person_key)
"""

_HOUSEHOLD_GROUPS_SQL = f"""
with per_person as (
    select household_key, person_key, count(*) as n_events,
           {_latest('sex')} as sex, {_latest('age_band')} as age_band,
           {_latest('ethnicity_group')} as ethnicity_group
    from intermediate.int_events_joined_to_places
    where household_key is not null and person_key is not null
    group by all
), reference_person as (
    -- the household reference person: an adult if one is known (as in the census HRP), else whoever has
    -- most events; children dominate some feeds (school absence) but do not head households
    select * from per_person
    qualify row_number() over (
        partition by household_key
        order by (age_band in ('0-4', '5-9', '10-15', '16-17') or age_band is null), n_events desc, person_key
    ) = 1
), place as (
    select household_key, {_latest('lsoa_code')} as lsoa_code
    from intermediate.int_events_joined_to_places where household_key is not null group by all
)
select r.household_key, coalesce(r.sex, 'U') as sex, coalesce(r.age_band, 'Unknown') as age_band,
       coalesce(r.ethnicity_group, 'Unknown') as ethnicity_group, p.lsoa_code, d.imd_decile
from reference_person r join place p using (household_key)
left join ({{dim}}) d using (lsoa_code)
"""


def _dim_lsoa_sql(con) -> str:
    tables = _existing_tables(con)
    if "marts.dim_lsoa" in tables:
        return "select lsoa_code, imd_decile from marts.dim_lsoa"
    if "ref.lsoas" in tables:
        return "select lsoa_code, imd_decile from ref.lsoas"
    return "select null::varchar as lsoa_code, null::integer as imd_decile where false"


def household_groups(con) -> pd.DataFrame:
    """Fairness attributes per household: its reference person's (most events) sex, age band, ethnicity
    group, and the deprivation quintile of its latest LSOA. Audit only; never model inputs."""
    groups = con.execute(_HOUSEHOLD_GROUPS_SQL.format(dim=_dim_lsoa_sql(con))).df()
    decile = pd.to_numeric(groups["imd_decile"], errors="coerce")
    groups["deprivation_quintile"] = ((decile + 1) // 2).astype("Int64").astype("string").fillna("Unknown")
    return groups


def _window(events: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
    return events[(events["m"] >= start) & (events["m"] < stop)]


def _risk_examples(events: pd.DataFrame, groups: pd.DataFrame, cutoff: int, spec: ModelSpec,
                   indicators: list[str], with_label: bool) -> pd.DataFrame:
    """One cutoff's household examples: event counts per permitted indicator over each lookback window, the
    window's total, distinct event types, persons seen and months since the last event in the last 12 months.

    Counted with ``numpy.bincount`` over integer codes, not a pandas ``pivot_table`` per lookback: the same
    numbers (tests/ml/test_gate_units.py checks them against a plain per-household groupby), and every training
    cutoff pays it. County, 24 months, all seven cutoffs of a training build: 13.8 s -> 4.1 s."""
    history = _window(events, cutoff - 12, cutoff)
    # codes in order of first appearance: the rows come out in the order of history["household_key"].unique()
    codes, keys = pd.factorize(history["household_key"], sort=False)
    units = pd.Index(keys, name="household_key")  # known in the last year
    n_units, n_ind = len(units), len(indicators)
    ind_code = pd.Categorical(history["indicator"], categories=indicators).codes  # every one is permitted
    months = history["m"].to_numpy()
    counts = history["event_count"].to_numpy(dtype="float64")
    cols: dict[str, np.ndarray] = {}
    for lookback in spec.lookbacks_months:
        inside = months >= cutoff - lookback
        cell = codes[inside] * n_ind + ind_code[inside]
        per_cell = np.bincount(cell, weights=counts[inside], minlength=n_units * n_ind).reshape(n_units, n_ind)
        for k, ind in enumerate(indicators):
            cols[f"n_{feature_name(ind)}_{lookback}m"] = per_cell[:, k]
        cols[f"events_{lookback}m"] = per_cell.sum(axis=1)
    present = np.bincount(codes * n_ind + ind_code, minlength=n_units * n_ind).reshape(n_units, n_ind) > 0
    cols["distinct_event_types_12m"] = present.sum(axis=1).astype("float64")
    people = pd.DataFrame({"u": codes, "p": history["person_key"].to_numpy()}).dropna().drop_duplicates()
    cols["persons_seen_12m"] = np.bincount(people["u"].to_numpy(), minlength=n_units).astype("float64")
    last = np.full(n_units, np.iinfo(np.int64).min)
    np.maximum.at(last, codes, months.astype(np.int64))
    cols["months_since_last_event"] = (cutoff - last).astype("float64")
    out = pd.DataFrame(cols, index=units)
    out = out.join(groups.set_index("household_key")[["imd_decile"]], how="left")
    out["imd_decile"] = pd.to_numeric(out["imd_decile"], errors="coerce").fillna(5.5)
    out = out.astype("float64").reset_index()
    out.insert(1, "cutoff", month_start(cutoff))
    if with_label:
        future = _window(events, cutoff, cutoff + spec.horizon_months)
        hit = future.loc[future["indicator"] == spec.outcome, "household_key"].unique()
        out["label"] = out["household_key"].isin(hit).astype("int64")
    return out


def risk_frames(con, spec: ModelSpec, feeds: list[str], warehouse: Path | str = "warehouse",
                scoring_only: bool = False) -> Frames:
    require_tables(con, ["marts.person_monthly_events", "intermediate.int_events_joined_to_places"], warehouse)
    events = con.execute(_HOUSEHOLD_EVENTS_SQL).df()
    if events.empty:
        raise PlacelinkError("marts.person_monthly_events has no linked events", where=str(warehouse),
                             fix="run linkage and dbt (placelink refresh) before training")
    indicators, dropped = permitted_indicators(con, events["indicator"].unique(), feeds)
    if spec.outcome not in indicators:
        raise PlacelinkError(
            f"outcome {spec.outcome!r} is not available from the permitted feeds ({dropped.get(spec.outcome, 'no events')})",
            where=f"ml/models/{spec.name}/model.yml: outcome",
            fix="list the outcome's feed in the ethics record's data.feeds, or choose another outcome")
    events = events[events["indicator"].isin(indicators)].copy()
    events["m"] = month_index(events["month"])
    groups = household_groups(con)
    splits = time_splits(int(events["m"].min()), int(events["m"].max()) + 1, spec.horizon_months,
                         spec.min_history_months)
    make = lambda c, lab=True: _risk_examples(events, groups, c, spec, indicators, lab)  # noqa: E731
    scoring = make(splits.score, False)
    features = [c for c in scoring.columns if c not in {"household_key", "cutoff", "label"}]
    attach = groups.drop(columns=["imd_decile"])
    if scoring_only:
        train = valid = test = _no_examples(scoring)
    else:
        train = pd.concat([make(c) for c in splits.train], ignore_index=True)
        valid, test = make(splits.valid), make(splits.test)
        test = test.merge(attach, on="household_key", how="left")
    scoring = scoring.merge(attach[["household_key", "lsoa_code"]], on="household_key", how="left")
    # what training saw, for its digests; scoring records none, so it copies nothing
    inputs = {} if scoring_only else {"marts.person_monthly_events": events.drop(columns=["m"]),
                                      "intermediate.int_events_joined_to_places": groups}
    return Frames(train, valid, test, features, splits, inputs, dropped, scoring)


# ---- LSOA demand -----------------------------------------------------------------------------------------


def demand_frames(con, spec: ModelSpec, feeds: list[str], warehouse: Path | str = "warehouse",
                  scoring_only: bool = False) -> Frames:
    require_tables(con, ["marts.lsoa_monthly_indicators"], warehouse)
    lmi = con.execute("select lsoa_code, month, indicator, event_count, population "
                      "from marts.lsoa_monthly_indicators").df()
    if lmi.empty:
        raise PlacelinkError("marts.lsoa_monthly_indicators is empty", where=str(warehouse),
                             fix="run dbt (placelink build) before training")
    indicators, dropped = permitted_indicators(con, lmi["indicator"].unique(), feeds)
    if spec.outcome not in indicators:
        raise PlacelinkError(
            f"service {spec.outcome!r} is not available from the permitted feeds ({dropped.get(spec.outcome, 'absent')})",
            where=f"ml/models/{spec.name}/model.yml: outcome",
            fix="list the service's feed in the ethics record's data.feeds, or choose another indicator")
    lmi = lmi[lmi["indicator"].isin(indicators)].copy()
    lmi["m"] = month_index(lmi["month"])
    first, end = int(lmi["m"].min()), int(lmi["m"].max()) + 1
    lsoas = np.array(sorted(lmi["lsoa_code"].unique()))
    # dense LSOA x month x indicator array: the marts hold zeros explicitly, and ~1,000 LSOAs x 24 months x
    # tens of indicators is small, so window sums become cumulative-sum differences
    counts = np.zeros((len(lsoas), end - first, len(indicators)))
    li = np.searchsorted(lsoas, lmi["lsoa_code"].to_numpy())
    ii = np.searchsorted(np.array(indicators), lmi["indicator"].to_numpy())
    np.add.at(counts, (li, lmi["m"].to_numpy() - first, ii), lmi["event_count"].to_numpy(dtype=float))
    cum = np.concatenate([np.zeros((len(lsoas), 1, len(indicators))), counts.cumsum(axis=1)], axis=1)
    target = indicators.index(spec.outcome)
    pop = (lmi.sort_values("m").groupby("lsoa_code")["population"].last().reindex(lsoas)
           .astype("float64").fillna(0).to_numpy())
    dim = con.execute(_dim_lsoa_sql(con)).df().set_index("lsoa_code")["imd_decile"]
    imd = pd.to_numeric(dim.reindex(lsoas), errors="coerce").to_numpy(dtype=float)
    horizon = spec.horizon_months

    def window(c: int, start: int, stop: int, ind: int | slice = target) -> np.ndarray:
        lo, hi = max(start - first, 0), max(min(stop - first, end - first), 0)
        return cum[:, hi, ind] - cum[:, lo, ind]

    def examples(c: int, with_label: bool = True) -> pd.DataFrame:
        cols = {
            "lsoa_code": lsoas, "cutoff": month_start(c),
            "target_last_month": window(c, c - 1, c),
            "target_last_quarter": window(c, c - 3, c),  # = the last-value baseline
            "target_last_12m": window(c, c - 12, c),
            "target_same_quarter_last_year": window(c, c - 12, c - 12 + horizon),  # = seasonal naive
            "quarter_start_month": float(month_start(c).month),
            "population": pop, "imd_decile": np.nan_to_num(imd, nan=5.5),
        }
        for k, ind in enumerate(indicators):
            if k != target:
                for lookback in spec.lookbacks_months:
                    cols[f"n_{feature_name(ind)}_{lookback}m"] = window(c, c - lookback, c, k)
        frame = pd.DataFrame(cols)
        if with_label:
            frame["label"] = window(c, c, c + horizon)
        return frame

    splits = time_splits(first, end, horizon, spec.min_history_months)
    scoring = examples(splits.score, False)
    features = [c for c in scoring.columns if c not in {"lsoa_code", "cutoff", "label"}]
    if scoring_only:
        train = valid = test = _no_examples(scoring)
    else:
        train = pd.concat([examples(c) for c in splits.train], ignore_index=True)
        valid, test = examples(splits.valid), examples(splits.test)
        quint = pd.Series(((imd + 1) // 2), index=lsoas).astype("Int64").astype("string").fillna("Unknown")
        test["deprivation_quintile"] = test["lsoa_code"].map(quint)
    inputs = {} if scoring_only else {"marts.lsoa_monthly_indicators": lmi.drop(columns=["m"])}
    return Frames(train, valid, test, features, splits, inputs, dropped, scoring)


#: the mart whose months bound each kind's examples (build_frames reads a subset of them)
HISTORY_TABLES = {"risk": "marts.person_monthly_events", "demand": "marts.lsoa_monthly_indicators"}


def require_history(con, spec: ModelSpec, warehouse: Path | str = "warehouse") -> None:
    """Raise :class:`NotEnoughHistoryError` when even every month of the mart is too few for the model's splits.

    A necessary condition only, so it never refuses a model that :func:`build_frames` would train; it costs
    one aggregate instead of reading the events (and, in the training asset, importing scikit-learn and
    MLflow): a new county has too little history for nearly two years, and its nightly run asks every night."""
    table = HISTORY_TABLES.get(spec.kind)
    if table is None:
        return  # build_frames reports the unknown kind
    require_tables(con, [table], warehouse)
    first, last = con.execute(f"SELECT min(month), max(month) FROM {table}").fetchall()[0]
    if first is not None:
        start, stop = month_index([first, last])
        time_splits(int(start), int(stop) + 1, spec.horizon_months, spec.min_history_months)


def build_frames(con, spec: ModelSpec, feeds: list[str], warehouse: Path | str = "warehouse",
                 scoring_only: bool = False) -> Frames:
    """The model's examples from the marts.

    Args:
        scoring_only: only the examples to score (at the cutoff after the data), with the same feature columns;
            ``train``, ``valid`` and ``test`` are empty. Scoring with a trained champion needs nothing else, and
            building every training cutoff's examples was most of the nightly scoring step (county, 24 months:
            about 60% of the household risk model's 20 s).
    """
    if spec.kind == "risk":
        return risk_frames(con, spec, feeds, warehouse, scoring_only)
    if spec.kind == "demand":
        return demand_frames(con, spec, feeds, warehouse, scoring_only)
    raise PlacelinkError(f"unknown model kind {spec.kind!r}", where=f"ml/models/{spec.name}/model.yml: kind",
                         fix="use 'risk' or 'demand'")
