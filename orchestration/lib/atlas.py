"""The analyst's atlas: a static site of maps and charts built from the PUBLISHED tables only.

``placelink atlas`` (and the ``published/files`` Dagster asset, after every publish) writes ``<home>/atlas/``:

- ``index.html``: every published indicator, and per district "what rose here" (the indicators whose rate rose
  most between the last twelve months and the twelve before);
- ``indicators/<indicator>.html``: a choropleth of the rate by LSOA for the latest month and for the last 12
  months, trend small-multiples by district, and the LSOAs where the rate rose most;
- ``scorecard.html``: the partner scorecard (completeness, validity, timeliness, link rates by feed and month).

Why a static site of hand-drawn SVG: it opens offline, from any static server or a file share, with no
JavaScript, no tile server and no CDN. Altair would need vl-convert (not in the lock) to inline Vega's JavaScript
for offline use; matplotlib's SVG cannot carry a tooltip per area or mark suppressed cells as a pattern. An SVG
path per area with a ``<title>`` tooltip is a few lines and renders in every browser.

Disclosure: only ``<home>/published/place_monthly_indicators.parquet`` is read for the indicators. A suppressed
cell is drawn hatched and called suppressed; nothing is ever derived for it (no differencing against totals). A
12-month rate is the sum of twelve published monthly counts (what any reader of the published file can add up);
when any of the twelve is suppressed the 12-month value is suppressed too. The scorecard holds aggregates only
(``quality.feed_scorecard``).
"""

from __future__ import annotations

import html
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from orchestration.lib.boundaries import Boundaries, boundary_file, load_reference_boundaries
from orchestration.lib.config import Settings
from orchestration.lib.errors import PlacelinkError

PUBLISHED_TABLE = "place_monthly_indicators"
INDICATORS_SEED = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds" / "indicators.csv"
#: ColorBrewer YlOrRd, 5 classes (colour-blind safe, prints in grey)
PALETTE = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
SUPPRESSED_FILL = "url(#suppressed)"
NO_DATA_FILL = "#ffffff"
SCORECARD_MEASURES = (("completeness", "Completeness"), ("validity", "Validity (GX)"),
                      ("timeliness", "Timeliness"), ("address_match_rate", "Address match rate"),
                      ("person_linked_rate", "Person link rate"))
#: what the README shows (written by ``placelink demo``)
README_MAP = "atlas-map.svg"
README_CHART = "atlas-scorecard.svg"

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3a5f;color:#fff;padding:.6rem 1.2rem}header a{color:#fff;margin-right:1rem}
main{padding:1rem 1.2rem;max-width:1200px}h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.6rem}
.maps,.multiples{display:flex;flex-wrap:wrap;gap:1rem}.card{background:#fff;border:1px solid #ddd;padding:.5rem}
.note{color:#555;font-size:.9rem}table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #eee;
text-align:left}.up{color:#b30000}.suppressed{color:#666;font-style:italic}ul.cols{columns:2}
"""

PATTERN = ('<pattern id="suppressed" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="6" height="6" fill="#e6e6e6"/>'
           '<line x1="0" y1="0" x2="0" y2="6" stroke="#888" stroke-width="2"/></pattern>')


@dataclass
class AtlasResult:
    folder: Path
    indicators: int
    pages: int
    maps: bool

    @property
    def index(self) -> Path:
        return self.folder / "index.html"


# ------------------------------------------------------------------------------------------------------ data
def read_published(settings: Settings) -> pd.DataFrame:
    path = settings.published / f"{PUBLISHED_TABLE}.parquet"
    if not path.exists():
        raise PlacelinkError("no published indicators", where=str(path),
                             fix="run `placelink refresh` (or `placelink build` then `placelink publish`) first")
    df = pd.read_parquet(path)
    df["month"] = pd.to_datetime(df["month"]).dt.to_period("M")
    return df


def indicator_labels() -> dict[str, tuple[str, str]]:
    seed = pd.read_csv(INDICATORS_SEED, dtype=str)
    return {r.indicator: (r.label, r.unit) for r in seed.itertuples()}


def window_rates(df: pd.DataFrame, months: list) -> pd.DataFrame:
    """Per area: events per 1,000 residents over ``months`` from the published monthly cells, or suppressed.

    A window with any suppressed month is suppressed (never filled in); a window with a month missing from the
    file is left out (``NaN``, "no data")."""
    part = df[df["month"].isin(months)]
    g = part.groupby("area_code")
    out = pd.DataFrame({
        "months": g["month"].nunique(),
        "suppressed": g["is_suppressed"].any(),
        "events": g["event_count"].sum(min_count=1),
        "population": g["population"].mean(),
    })
    complete = out["months"] == len(months)
    out["rate"] = np.where(~out["suppressed"] & complete & (out["population"] > 0),
                           out["events"] / out["population"] * 1000, np.nan)
    out.loc[~complete, "suppressed"] = False
    return out


def rises(df: pd.DataFrame, months: list, window: int) -> pd.DataFrame:
    """Change of the windowed rate between the last ``window`` months and the ``window`` before, per area."""
    if len(months) < 2 * window:
        return pd.DataFrame(columns=["now", "before", "change", "suppressed"])
    now = window_rates(df, months[-window:])
    before = window_rates(df, months[-2 * window:-window])
    out = pd.DataFrame({"now": now["rate"], "before": before["rate"]})
    out["suppressed"] = now["suppressed"].reindex(out.index, fill_value=False) | before["suppressed"].reindex(
        out.index, fill_value=False)
    out["change"] = out["now"] - out["before"]
    return out


# ------------------------------------------------------------------------------------------------------ drawing
def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


class Projection:
    """Boundary coordinates -> SVG pixels (north up). WGS84 is scaled by cos(latitude) so shapes keep their form."""

    def __init__(self, bounds: tuple[float, float, float, float], projected: bool, width: int = 460):
        x0, y0, x1, y1 = bounds
        self.kx = 1.0 if projected else math.cos(math.radians((y0 + y1) / 2))
        self.x0, self.y1 = x0, y1
        self.scale = (width - 10) / max((x1 - x0) * self.kx, 1e-9)
        self.width = width
        self.height = int((y1 - y0) * self.scale) + 10

    def path(self, rings: list[np.ndarray]) -> str:
        parts = []
        for ring in rings:
            px = np.round(np.c_[(ring[:, 0] - self.x0) * self.kx * self.scale + 5,
                                (self.y1 - ring[:, 1]) * self.scale + 5], 1)
            keep = np.r_[True, (np.diff(px, axis=0) != 0).any(axis=1)]  # drop points on the same 0.1 px
            px = px[keep]
            if len(px) < 3:
                continue
            parts.append("M" + "L".join(f"{x:g},{y:g}" for x, y in px) + "Z")
        return "".join(parts)


def _classes(values: pd.Series) -> list[float]:
    """Quintile breaks of the published values (fewer when there are few distinct values)."""
    v = values.dropna()
    if v.empty:
        return []
    qs = np.unique(np.quantile(v, [0.2, 0.4, 0.6, 0.8]))
    return [float(q) for q in qs]


def _colour(value: float, breaks: list[float]) -> str:
    k = int(np.searchsorted(breaks, value, side="right")) if breaks else 0
    return PALETTE[min(k, len(PALETTE) - 1) if breaks else 2]


def map_defs(lsoas: Boundaries, districts: Boundaries | None, proj: Projection) -> str:
    """The areas' geometry once per page; each map re-uses it with its own colours (``<use>``)."""
    paths = [f'<path id="a-{_esc(code)}" d="{proj.path(rings)}"/>' for code, rings in lsoas.areas.items()]
    if districts is not None:
        d = "".join(proj.path(r) for r in districts.areas.values())
        paths.append(f'<path id="district-lines" d="{d}" fill="none" stroke="#222" stroke-width="1.4"/>')
    return (f'<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>{PATTERN}'
            + "".join(paths) + "</defs></svg>")


def choropleth(lsoas: Boundaries, proj: Projection, values: pd.DataFrame, title: str, unit: str,
               css_id: str, standalone: bool = False, defs: str = "") -> str:
    """One map: ``values`` indexed by area code with ``rate`` (NaN = no data) and ``suppressed``."""
    breaks = _classes(values.loc[~values["suppressed"], "rate"]) if not values.empty else []
    shapes = []
    for code in lsoas.areas:
        name = lsoas.names.get(code, code)
        if code in values.index and bool(values.at[code, "suppressed"]):
            fill, tip = SUPPRESSED_FILL, "suppressed (small numbers)"
        elif code in values.index and pd.notna(values.at[code, "rate"]):
            rate = float(values.at[code, "rate"])
            fill, tip = _colour(rate, breaks), f"{rate:.2f} {unit}"
        else:
            fill, tip = NO_DATA_FILL, "no data"
        shapes.append(f'<use href="#a-{_esc(code)}" fill="{fill}" stroke="#777" stroke-width="0.4" '
                      f'data-area="{_esc(code)}"><title>{_esc(name)} ({_esc(code)}): {_esc(tip)}</title></use>')
    shapes.append('<use href="#district-lines"/>')
    legend = _legend(breaks, proj.height + 8)
    height = proj.height + 60
    body = (f'<svg xmlns="http://www.w3.org/2000/svg" id="{css_id}" class="map" width="{proj.width}" '
            f'height="{height}" viewBox="0 0 {proj.width} {height}" role="img" aria-label="{_esc(title)}">'
            + (defs if standalone else "")
            + f'<title>{_esc(title)}</title>' + "".join(shapes) + legend + "</svg>")
    return body


def _legend(breaks: list[float], y: int) -> str:
    items, x = [], 5
    labels = []
    edges = [None, *breaks, None]
    for k in range(len(edges) - 1):
        lo, hi = edges[k], edges[k + 1]
        labels.append(f"< {hi:.2f}" if lo is None and hi is not None else
                      f"{lo:.2f}+" if hi is None and lo is not None else
                      f"{lo:.2f}–{hi:.2f}" if lo is not None else "all")
    for k, text in enumerate(labels if breaks else []):  # no colour key when every area is withheld
        fill = PALETTE[min(k, len(PALETTE) - 1)] if breaks else PALETTE[2]
        items.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{fill}" stroke="#777"/>'
                     f'<text x="{x + 16}" y="{y + 10}" font-size="10">{_esc(text)}</text>')
        x += 26 + 6 * len(text)
    y2 = y + 20
    items.append(f'<rect x="5" y="{y2}" width="12" height="12" fill="{SUPPRESSED_FILL}" stroke="#777"/>'
                 f'<text x="21" y="{y2 + 10}" font-size="10">suppressed</text>'
                 f'<rect x="90" y="{y2}" width="12" height="12" fill="{NO_DATA_FILL}" stroke="#777"/>'
                 f'<text x="106" y="{y2 + 10}" font-size="10">no data</text>')
    return "".join(items)


def line_chart(series: dict[str, pd.Series], months: list, title: str, ymax: float, width: int = 260,
               height: int = 150, ylabel: str = "", suppressed: pd.Series | None = None,
               colours: tuple[str, ...] = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"),
               css_class: str = "trend") -> str:
    """A small line chart; NaN values are gaps. ``suppressed`` (bool per month) marks withheld months below."""
    legend_rows = math.ceil(len(series) / 2) if len(series) > 1 else 0
    left, right, top, bottom = 34, 8, 22 + 11 * legend_rows, 22
    height += 11 * legend_rows
    w, h = width - left - right, height - top - bottom
    n = max(len(months) - 1, 1)
    ymax = ymax if ymax and np.isfinite(ymax) and ymax > 0 else 1.0

    def xy(i, v):
        return left + w * i / n, top + h * (1 - v / ymax)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(title)}">',
           f'<text x="{left}" y="12" font-size="11" font-weight="600">{_esc(title)}</text>',
           f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#999"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#999"/>',
           f'<text x="{left - 3}" y="{top + 4}" font-size="9" text-anchor="end">{ymax:.3g}</text>',
           f'<text x="{left - 3}" y="{top + h}" font-size="9" text-anchor="end">0</text>']
    if months:
        out.append(f'<text x="{left}" y="{height - 6}" font-size="9">{_esc(months[0])}</text>'
                   f'<text x="{left + w}" y="{height - 6}" font-size="9" text-anchor="end">{_esc(months[-1])}</text>')
    for k, (name, s) in enumerate(series.items()):
        colour = colours[k % len(colours)]
        values = s.reindex(months)
        segs, cur = [], []
        for i, v in enumerate(values.tolist()):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                if cur:
                    segs.append(cur)
                cur = []
            else:
                cur.append(xy(i, float(v)))
        if cur:
            segs.append(cur)
        for seg in segs:
            if len(seg) == 1:
                out.append(f'<circle cx="{seg[0][0]:.1f}" cy="{seg[0][1]:.1f}" r="2" fill="{colour}"/>')
            else:
                pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)
                out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.6">'
                           f'<title>{_esc(name)}</title></polyline>')
    if suppressed is not None:
        for i, m in enumerate(months):
            if bool(suppressed.get(m, False)):
                x = left + w * i / n
                out.append(f'<rect class="suppressed-month" x="{x - 2:.1f}" y="{top + h - 6}" width="4" height="6" '
                           f'fill="#888"><title>{_esc(m)}: suppressed</title></rect>')
    if len(series) > 1:
        for k, name in enumerate(series):
            x, y = left + (w // 2) * (k % 2), 26 + 11 * (k // 2)
            out.append(f'<rect x="{x}" y="{y - 6}" width="8" height="3" fill="{colours[k % len(colours)]}"/>'
                       f'<text x="{x + 11}" y="{y}" font-size="9">{_esc(str(name)[:22])}</text>')
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------------------------------------------ pages
def _page(title: str, body: str, depth: int = 0) -> str:
    up = "../" * depth
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)} · placelink atlas'
            f'</title><meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>'
            f'<body><header><a href="{up}index.html">placelink atlas</a><a href="{up}scorecard.html">partner '
            f'scorecard</a><a href="{up}../index.html">all docs</a></header><main>{body}'
            '<p class="note">Built from the published, disclosure-controlled tables only. Hatched areas and grey '
            'ticks are suppressed cells (small numbers): they are shown as suppressed and never estimated.</p>'
            "</main></body></html>")


def _month_label(m) -> str:
    return pd.Period(m, "M").strftime("%b %Y")


def _window(n_months: int) -> int:
    return 12 if n_months >= 24 else max(1, n_months // 2)


def _indicator_page(ind: str, label: str, unit: str, df: pd.DataFrame, months: list, lsoas: Boundaries | None,
                    districts: Boundaries | None, district_names: dict[str, str]) -> tuple[str, str | None]:
    """The page's HTML and the latest-month map as a standalone SVG (for the README)."""
    latest = months[-1]
    last12 = months[-12:]
    lsoa = df[df["geography_level"] == "lsoa"]
    parts = [f"<h1>{_esc(label)}</h1><p class='note'>Indicator <code>{_esc(ind)}</code>, {_esc(unit)} per "
             f"1,000 residents. Latest month {_month_label(latest)}.</p>"]
    standalone = None
    if lsoas is not None:
        proj = Projection(lsoas.bounds(), lsoas.projected)
        defs = map_defs(lsoas, districts, proj)
        cur = lsoa[lsoa["month"] == latest].set_index("area_code")
        cur = pd.DataFrame({"rate": cur["rate_per_1000"].astype(float), "suppressed": cur["is_suppressed"]})
        year = window_rates(lsoa, last12)
        t1 = f"{label}: rate per 1,000 by LSOA, {_month_label(latest)}"
        t2 = (f"{label}: per 1,000 residents by LSOA, {len(last12)} months to {_month_label(latest)}")
        m1 = choropleth(lsoas, proj, cur, t1, f"{unit} per 1,000", "map-latest")
        m2 = choropleth(lsoas, proj, year, t2, f"{unit} per 1,000", "map-12m")
        standalone = choropleth(lsoas, proj, cur, t1, f"{unit} per 1,000", "map-latest", standalone=True,
                                defs=defs.replace('<svg width="0" height="0" style="position:absolute" '
                                                  'aria-hidden="true">', "").replace("</svg>", ""))
        parts.append(defs + f"<h2>Where</h2><div class='maps'><div class='card'><b>{_esc(_month_label(latest))}"
                     f"</b><br>{m1}</div><div class='card'><b>Last {len(last12)} months</b><br>{m2}</div></div>")
    else:
        parts.append("<p class='note'>No boundaries in <code>reference/</code>: maps are left out "
                     "(docs/atlas.md says which ONS files to put there).</p>")
    # trend small-multiples by district
    dist = df[df["geography_level"] == "district"]
    county = df[df["geography_level"] == "county"].set_index("month")["rate_per_1000"].astype(float)
    ymax = float(np.nanmax(np.r_[dist["rate_per_1000"].astype(float).to_numpy(), county.to_numpy(), 0.0]))
    ymax = ymax * 1.1 if ymax > 0 else 1.0
    labels = [_month_label(m) for m in months]
    charts = []
    for code, g in dist.groupby("area_code"):
        g = g.set_index("month")
        s = g["rate_per_1000"].astype(float).reindex(months)
        s.index = labels
        c = county.reindex(months)
        c.index = labels
        sup = g["is_suppressed"].reindex(months, fill_value=False)
        sup.index = labels
        charts.append("<div class='card'>" + line_chart(
            {district_names.get(code, code): s, "county": c}, labels, district_names.get(code, code), ymax,
            suppressed=sup) + "</div>")
    parts.append(f"<h2>Trend by district</h2><p class='note'>Monthly rate per 1,000; county for comparison."
                 f"</p><div class='multiples'>{''.join(charts)}</div>")
    # what rose here
    w = _window(len(months))
    r = rises(lsoa, months, w)
    if r.empty:
        parts.append("<h2>What rose here</h2><p class='note'>Not enough published months to compare.</p>")
    else:
        names = lsoas.names if lsoas is not None else {}
        shown = r[~r["suppressed"] & r["change"].notna()].sort_values("change", ascending=False).head(8)
        rows = "".join(f"<tr><td>{_esc(names.get(c, c))}</td><td>{_esc(c)}</td><td>{v.before:.2f}</td>"
                       f"<td>{v.now:.2f}</td><td class='{'up' if v.change > 0 else ''}'>{v.change:+.2f}</td></tr>"
                       for c, v in shown.iterrows())
        n_sup = int(r["suppressed"].sum())
        parts.append(f"<h2>What rose here</h2><p class='note'>LSOAs whose rate per 1,000 rose most: last {w} "
                     f"months against the {w} before. {n_sup} LSOA(s) cannot be compared because a month is "
                     f"suppressed.</p><table class='rises'><tr><th>LSOA</th><th>code</th><th>before</th><th>now</th>"
                     f"<th>change</th></tr>{rows}</table>")
    return _page(label, "".join(parts), depth=1), standalone


def _scorecard_page(card: pd.DataFrame | None) -> tuple[str, str | None]:
    if card is None or card.empty:
        return _page("Partner scorecard", "<h1>Partner scorecard</h1><p class='note'>No scorecard yet: run "
                     "`placelink refresh`.</p>"), None
    card = card.copy()
    card["month"] = pd.to_datetime(card["month"]).dt.to_period("M")
    months = sorted(card["month"].unique())
    labels = [_month_label(m) for m in months]
    parts = ["<h1>Partner scorecard</h1><p class='note'>Per partner, feed and month (quality.feed_scorecard, "
             "aggregates only): share of values present, of rows passing every row-level expectation, of events "
             "dropped on time, of person records matched to an address and linked to another agency.</p>"]
    first_chart = None
    for measure, title in SCORECARD_MEASURES:
        if measure not in card.columns:
            continue
        charts = []
        for partner, g in card.groupby("partner"):
            series = {}
            for feed, f in g.groupby("feed"):
                s = f.set_index("month")[measure].astype(float).reindex(months)
                s.index = labels
                series[feed] = s
            chart = line_chart(series, labels, f"{partner}", 1.0, width=300, height=160, css_class="scorecard")
            first_chart = first_chart or chart
            charts.append(f"<div class='card'>{chart}</div>")
        parts.append(f"<h2>{_esc(title)}</h2><div class='multiples'>{''.join(charts)}</div>")
    return _page("Partner scorecard", "".join(parts)), first_chart


def read_scorecard(settings: Settings) -> pd.DataFrame | None:
    """The scorecard table (aggregates only), or None if the warehouse has none yet or is busy."""
    import duckdb

    if not settings.warehouse_db.exists():
        return None
    try:
        with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
            return con.execute("select * from quality.feed_scorecard").df()
    except duckdb.Error:
        return None


def _load_maps(settings: Settings) -> tuple[Boundaries | None, Boundaries | None]:
    if not boundary_file(settings.reference, "lsoa").exists():
        return None, None
    lsoas = load_reference_boundaries(settings.reference, "lsoa")
    districts = (load_reference_boundaries(settings.reference, "district")
                 if boundary_file(settings.reference, "district").exists() else None)
    return lsoas, districts


def build_atlas(settings: Settings, out: Path | None = None, readme_images: Path | None = None) -> AtlasResult:
    """Write the atlas under ``out`` (default ``<home>/atlas``) from the published files; returns where."""
    df = read_published(settings)
    folder = Path(out) if out else settings.home / "atlas"
    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "indicators").mkdir(parents=True)
    lsoas, districts = _load_maps(settings)
    labels = indicator_labels()
    district_names = {}
    dcsv = settings.reference / "districts.csv"
    if dcsv.exists():
        d = pd.read_csv(dcsv, dtype=str)
        district_names = dict(zip(d["district_code"], d["district_name"], strict=True))
    months = sorted(df["month"].unique())
    indicators = sorted(df["indicator"].unique())
    readme_map = None
    links = []
    for ind in indicators:
        label, unit = labels.get(ind, (ind, "events"))
        page, standalone = _indicator_page(ind, label, unit, df[df["indicator"] == ind], months, lsoas, districts,
                                           district_names)
        (tmp / "indicators" / f"{ind}.html").write_text(page, encoding="utf-8")
        links.append(f"<li><a href='indicators/{_esc(ind)}.html'>{_esc(label)}</a></li>")
        # the README's map: the indicator with the most LSOAs published (not suppressed) in the latest month
        shown = int((~df.loc[(df["indicator"] == ind) & (df["geography_level"] == "lsoa")
                             & (df["month"] == months[-1]), "is_suppressed"].astype(bool)).sum())
        if standalone and (readme_map is None or shown > readme_map[0]):
            readme_map = (shown, standalone)
    score_page, score_chart = _scorecard_page(read_scorecard(settings))
    (tmp / "scorecard.html").write_text(score_page, encoding="utf-8")
    index = (_index_page(df, months, labels, district_names, links) if months else
             _page("Atlas", "<h1>placelink atlas</h1><p class='note'>Nothing published yet.</p>"))
    (tmp / "index.html").write_text(index, encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    if readme_images is not None:
        readme_images.mkdir(parents=True, exist_ok=True)
        if readme_map:
            (readme_images / README_MAP).write_text(readme_map[1], encoding="utf-8")
        if score_chart:
            (readme_images / README_CHART).write_text(score_chart, encoding="utf-8")
    return AtlasResult(folder=folder, indicators=len(indicators), pages=len(indicators) + 2, maps=lsoas is not None)


def _index_page(df: pd.DataFrame, months: list, labels: dict, district_names: dict, links: list[str]) -> str:
    w = _window(len(months))
    dist = df[df["geography_level"] == "district"]
    blocks = []
    for code, g in dist.groupby("area_code"):
        rows = []
        for ind, gi in g.groupby("indicator"):
            r = rises(gi, months, w)
            if r.empty or code not in r.index:
                continue
            v = r.loc[code]
            if bool(v["suppressed"]):
                rows.append((None, ind, v))
            elif pd.notna(v["change"]) and v["change"] > 0 and v["before"] > 0:
                rows.append((v["change"] / v["before"], ind, v))
        top = sorted((x for x in rows if x[0] is not None), key=lambda x: -x[0])[:3]
        n_sup = sum(1 for x in rows if x[0] is None)
        items = "".join(f"<li><a href='indicators/{_esc(ind)}.html'>{_esc(labels.get(ind, (ind,))[0])}</a> "
                        f"<span class='up'>+{pct * 100:.0f}%</span> ({v['before']:.2f} → {v['now']:.2f} per 1,000)"
                        f"</li>" for pct, ind, v in top) or "<li>nothing rose</li>"
        blocks.append(f"<div class='card what-rose'><b>{_esc(district_names.get(code, code))}</b><ul>{items}</ul>"
                      + (f"<span class='suppressed'>{n_sup} indicator(s) not comparable (suppressed)</span>"
                         if n_sup else "") + "</div>")
    body = (f"<h1>placelink atlas</h1><p class='note'>{len(links)} published indicators, "
            f"{_month_label(months[0])} to {_month_label(months[-1])}.</p>"
            f"<h2>What rose here</h2><p class='note'>Per district, the indicators whose rate rose most (last {w} "
            f"months against the {w} before).</p><div class='multiples'>{''.join(blocks)}</div>"
            f"<h2>Indicators</h2><ul class='cols'>{''.join(links)}</ul>"
            "<h2>Quality</h2><p><a href='scorecard.html'>Partner scorecard charts</a></p>")
    return _page("Atlas", body)
