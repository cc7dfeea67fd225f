"""``generate_county``: the whole synthetic county, deterministic for a seed."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from orchestration.lib.boundaries import write_synthetic_boundaries
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.synthetic.config import (
    DEFAULT_MONTHS,
    SCALES,
    DefectRates,
    GenerationConfig,
    ServiceRates,
)
from orchestration.lib.synthetic.defects import DefectLog
from orchestration.lib.synthetic.events import FEEDS, generate_events
from orchestration.lib.synthetic.feeds import RENDERERS, write_feed
from orchestration.lib.synthetic.geography import build_geography
from orchestration.lib.synthetic.names import ETHNICITY_TABLE
from orchestration.lib.synthetic.population import simulate_population

Progress = Callable[[str, float], None]


@dataclass
class GenerationSummary:
    home: Path
    scale: str
    seed: int
    months: int
    start: str
    residents: int
    people_ever: int
    households_ever: int
    lsoas: int
    uprns: int
    postcodes: int
    records: dict[str, int] = field(default_factory=dict)
    files: int = 0
    defects: int = 0
    seconds: float = 0.0

    @property
    def total_records(self) -> int:
        return sum(self.records.values())

    def as_dict(self) -> dict:
        d = asdict(self)
        d["home"] = str(self.home)
        d["total_records"] = self.total_records
        return d


def _check_start(start: str) -> None:
    try:
        np.datetime64(start, "M")
    except ValueError as exc:
        raise PlacelinkError(f"start month {start!r} is not a YYYY-MM month", where="--start",
                             fix="pass e.g. --start 2024-11") from exc


def generate_county(out: Path | str, scale: str = "small", seed: int = 42, months: int | None = None,
                    start: str = "2024-11", progress: Progress | None = None,
                    defects: DefectRates | None = None, rates: ServiceRates | None = None) -> GenerationSummary:
    """Generate a synthetic county under ``out``: ``landing/``, ``reference/`` and ``truth/``.

    Args:
        out: the placelink home to write into (existing landing/reference/truth folders are replaced).
        scale: ``tiny`` (~3k residents), ``small`` (~20k), ``medium`` (~200k) or ``county`` (~1.5M).
        seed: the same seed gives byte-identical output.
        months: months of events (default 24; 12 at county scale).
        start: first month of events, ``YYYY-MM``.
        progress: called as ``progress(stage, fraction)``.

    Returns:
        A :class:`GenerationSummary` with record counts per feed.
    """
    if scale not in SCALES:
        raise PlacelinkError(f"unknown scale {scale!r}", where="--scale", fix=f"use one of {', '.join(SCALES)}")
    _check_start(start)
    months = DEFAULT_MONTHS[scale] if months is None else int(months)
    if months < 1 or months > 120:
        raise PlacelinkError(f"months={months} is out of range", where="--months", fix="use 1 to 120 months")
    cfg = GenerationConfig(scale=scale, seed=seed, months=months, start=start,
                           defects=defects or DefectRates(), rates=rates or ServiceRates())
    t0 = time.perf_counter()
    report = progress or (lambda stage, frac: None)
    home = Path(out)
    for sub in ("landing", "reference", "truth"):
        if (home / sub).exists():
            shutil.rmtree(home / sub)
        (home / sub).mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    report("geography", 0.0)
    geo = build_geography(rng, cfg.residents, cfg.districts)
    report("geography", 1.0)
    pop = simulate_population(rng, geo, months, start, cfg.rates, report)
    events = generate_events(rng, geo, pop, cfg.rates, report)

    records: dict[str, int] = {}
    truth_parts, defect_parts = [], []
    rid0 = 0
    for i, key in enumerate(FEEDS):
        feed_rng = np.random.default_rng([seed, i + 1])  # each feed its own stream: stable if others change
        log = DefectLog()
        rows = RENDERERS[key](feed_rng, events[key], pop, geo, cfg.defects, log, rid0)
        rid0 += len(rows)
        truth, defects_df = write_feed(feed_rng, key, rows, log, home, pop.month_starts, cfg.defects)
        truth_parts.append(truth)
        defect_parts.append(defects_df)
        records[key] = len(truth)
        report("feeds", (i + 1) / len(FEEDS))

    report("truth", 0.0)
    opted_out = _write_reference(home, geo, pop, np.random.default_rng([seed, 99]))
    # area polygons for the atlas's maps, from the postcodes just written (adds files; draws no random numbers)
    write_synthetic_boundaries(home / "reference")
    _write_truth(home, pop, geo, truth_parts, defect_parts, cfg, opted_out)
    report("truth", 1.0)
    files = sum(1 for _ in (home / "landing").rglob("*.*"))
    summary = GenerationSummary(
        home=home, scale=scale, seed=seed, months=months, start=start,
        residents=int((pop.person_hh[0] >= 0).sum()), people_ever=len(pop.people),
        households_ever=pop.hh_uprn.shape[1], lsoas=len(geo.lsoas), uprns=len(geo.gazetteer),
        postcodes=len(geo.postcodes), records=records, files=files,
        defects=int(sum(len(d) for d in defect_parts)), seconds=round(time.perf_counter() - t0, 2))
    (home / "truth" / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2))
    return summary


#: share of people registered with the National Data Opt-out (England: about 5%)
OPT_OUT_RATE = 0.05


def _write_reference(home: Path, geo, pop, rng: np.random.Generator) -> np.ndarray:
    """Write reference/*.csv; return the opt-out mask over people."""
    ref = home / "reference"
    geo.districts.to_csv(ref / "districts.csv", index=False)
    geo.wards.to_csv(ref / "wards.csv", index=False)
    geo.msoas.to_csv(ref / "msoas.csv", index=False)
    geo.lsoas[["lsoa_code", "lsoa_name", "msoa_code", "ward_code", "district_code", "population", "imd_score",
               "imd_decile"]].to_csv(ref / "lsoas.csv", index=False)
    geo.postcodes.to_csv(ref / "postcodes.csv", index=False)
    geo.gazetteer.to_csv(ref / "gazetteer.csv", index=False)
    geo.schools[["school_urn", "school_name", "lsoa_code", "phase"]].to_csv(ref / "schools.csv", index=False)
    # mid-month residents per LSOA (from the simulation)
    gaz_lsoa = pd.Categorical(geo.gazetteer["lsoa_code"], categories=geo.lsoas["lsoa_code"]).codes
    parts = []
    for m in range(pop.person_hh.shape[0]):
        ph = pop.person_hh[m]
        u = pop.hh_uprn[m][ph[ph >= 0]]
        counts = np.bincount(gaz_lsoa[u], minlength=len(geo.lsoas))
        parts.append(pd.DataFrame({"lsoa_code": geo.lsoas["lsoa_code"], "month": str(pop.month_starts[m]),
                                   "population": counts}))
    pd.concat(parts, ignore_index=True).to_csv(ref / "lsoa_population.csv", index=False)
    rows = []
    for _, e in ETHNICITY_TABLE.iterrows():
        rows += [("ons_2021", e["key"], e["ons_label"], e["group"]), ("nhs", e["nhs_code"], e["ons_label"], e["group"]),
                 ("dfe", e["dfe_code"], e["ons_label"], e["group"])]
    rows += [("nhs", "Z", "Not stated", "Unknown"), ("dfe", "NOBT", "Information not yet obtained", "Unknown"),
             ("ons_2021", "Prefer not to say", "Prefer not to say", "Unknown")]
    eth = pd.DataFrame(rows, columns=["scheme", "code", "label", "ons_group"]).drop_duplicates(["scheme", "code"])
    eth.to_csv(ref / "ethnicity_codes.csv", index=False)
    # the National Data Opt-out list the NHS partner sends with its data (ingest drops these NHS numbers)
    nhs = np.char.zfill(pop.people["nhs_number"].to_numpy().astype(str), 10)
    opted = rng.random(len(nhs)) < OPT_OUT_RATE
    pd.DataFrame({"nhs_number": np.sort(nhs[opted])}).to_csv(ref / "nhs_opt_outs.csv", index=False)
    return opted


def _write_truth(home: Path, pop, geo, truth_parts, defect_parts, cfg: GenerationConfig,
                 opted_out: np.ndarray) -> None:
    t = home / "truth"
    people = pop.people.copy()
    people["nhs_opt_out"] = opted_out
    people["nhs_number"] = np.char.zfill(people["nhs_number"].to_numpy().astype(str), 10)
    people["date_of_birth"] = people["date_of_birth"].astype("datetime64[s]")
    people.to_parquet(t / "people.parquet", index=False)
    pd.concat(truth_parts, ignore_index=True).to_parquet(t / "records.parquet", index=False)
    pd.concat(defect_parts, ignore_index=True).to_parquet(t / "defects.parquet", index=False)
    # where everyone lived each month (spells) and each household's latent need: for scoring linkage and models
    months = pop.person_hh.shape[0]
    uprns = geo.gazetteer["uprn"].to_numpy()
    spells = []
    prev_h = np.full(pop.person_hh.shape[1], -2, dtype=np.int32)
    prev_u = np.full(pop.person_hh.shape[1], -2, dtype=np.int64)
    for m in range(months):
        h = pop.person_hh[m]
        u = np.where(h >= 0, pop.hh_uprn[m][np.maximum(h, 0)], -1)
        change = (h >= 0) & ((h != prev_h) | (u != prev_u))
        idx = np.flatnonzero(change)
        spells.append(pd.DataFrame({"person_id": idx, "month": str(pop.month_starts[m]), "household_id": h[idx],
                                    "uprn": uprns[u[idx]]}))
        prev_h, prev_u = h, u
    pd.concat(spells, ignore_index=True).to_parquet(t / "residence.parquet", index=False)
    n_h = pop.hh_uprn.shape[1]
    need = pd.DataFrame({
        "household_id": np.tile(np.arange(n_h), months),
        "month": np.repeat(pop.month_starts[:months].astype(str), n_h),
        "need": pop.hh_need.reshape(-1), "crisis": pop.hh_crisis.reshape(-1),
    })
    need = need[(pop.hh_uprn.reshape(-1) >= 0)]
    need.to_parquet(t / "household_need.parquet", index=False)
    config = {"scale": cfg.scale, "seed": cfg.seed, "months": cfg.months, "start": cfg.start,
              "residents": cfg.residents, "defect_rates": cfg.defects.as_dict(), "service_rates": cfg.rates.as_dict(),
              "note": "defect rates are per eligible record; see docs/data-dictionary.md"}
    (t / "config.json").write_text(json.dumps(config, indent=2))
