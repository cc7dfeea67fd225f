"""Linkage pictures: Splink's own charts, written as HTML that opens with no network.

Two kinds, kept apart because one holds clear identifiers and the other must not:

- **Review explanations** (:func:`write_review_explanations`): for every pair in the clerical review queue,
  Splink's waterfall chart (how each comparison moved the pair's match weight, with both records' values) and
  Splink's comparison viewer over the review band. They show names, dates of birth and NHS numbers, so they are
  written ONLY into the review folder of the identifiable zone (``<home>/identifiable/review/``), owner-only, and
  rewritten on every run (an erased person or a decided pair does not linger in an old file).
- **Run diagnostics** (:func:`run_diagnostics`): aggregate charts for MLflow -- the model's match weights and
  m/u parameters (parameters), the match-weight histogram of the scored pairs, the unlinkables chart and the
  cluster-size distribution (counts). No record-level value reaches them.

Splink 5 renders charts with vega-embed; ``to_html()`` loads vega from a CDN by default, which a partner's
network (and a reviewer's locked-down laptop) will not reach. Every page here inlines the vega, vega-lite and
vega-embed builds that ship inside the splink wheel, so the files work offline. The comparison viewer inlines
its scripts too but links Google Fonts; those links are removed (the page falls back to a local font).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pandas as pd

#: The clerical review queue (``<home>/identifiable/review/``): the pairs these pages explain. Named here, below
#: the linkage stage that writes it (run.py) and erasure that cleans it, so neither imports the other for it.
REVIEW_QUEUE = "person_review_queue.csv"

#: Pairs per waterfall file: each file carries the ~0.85 MB of inlined vega once, and a few hundred pairs
#: keep a file quick to open (about 3 kB of chart data per pair).
PAIRS_PER_WATERFALL = 250
#: Waterfalls are written for the first pairs of the queue (highest match probability first): a reviewer decides
#: these, and the next run explains the next undecided ones. The comparison viewer covers all.
MAX_EXPLAINED_PAIRS = 2_000
WATERFALL_PREFIX = "person_review_waterfall_"
COMPARISON_VIEWER = "person_review_comparison_viewer.html"
#: The diagnostics logged to MLflow with each linkage run (artefact file names).
DIAGNOSTIC_CHARTS = ("match_weights_chart.html", "m_u_parameters_chart.html", "match_weights_histogram.html",
                     "unlinkables_chart.html", "cluster_sizes_chart.html")
#: The unlinkables chart scores every record against itself; on a sample the proportions are within a fraction of
#: a percent and a county-sized run does not pay for 1.5 M self-comparisons.
UNLINKABLES_SAMPLE = 100_000

_REMOTE_FONTS = re.compile(r'<link[^>]+href="https://fonts\.(googleapis|gstatic)\.com[^>]*>\s*')
# '#17' at the end of a waterfall page's address opens it at pair 17 (the queue's explanation_pair). vega binds
# the chart's slider to a range input named after its parameter; setting it and sending an input event is what a
# drag does, so this needs no access to vega's view.
_GO_TO_PAIR = """<script>
(function () {
  function go() {
    var n = parseInt((location.hash || '').slice(1), 10);
    var input = document.querySelector('input[name="record_number"]');
    if (!input) { return setTimeout(go, 50); }
    if (!isNaN(n)) { input.value = n; input.dispatchEvent(new Event('input', {bubbles: true})); }
  }
  window.addEventListener('load', go);
  window.addEventListener('hashchange', go);
})();
</script>"""


def offline_html(spec: dict, title: str = "Splink chart") -> str:
    """A complete HTML page for a vega-lite ``spec`` with the chart libraries inlined (no network)."""
    # splink's own renderer: it pairs the spec with the vega builds of the same splink release (a public
    # SplinkChart.to_html(inline=True) does the same, but some charts need their spec edited first)
    from splink.internals.html_utils import _ChartEncoder, chart_html, json_for_html

    # chart_html deep-copies the spec, data and all (seconds for a file of 250 pairs): the data goes in after
    values = spec.get("data", {}).get("values")
    placeholder = '"__placelink_chart_values__"'
    if values is not None:
        spec = {**spec, "data": {**spec["data"], "values": json.loads(placeholder)}}
    html = chart_html(spec, inline=True, fullhtml=True)
    if values is not None:
        head, tail = html.rsplit(placeholder, 1)  # the last: the inlined vega source comes first
        html = head + json_for_html(values, cls=_ChartEncoder) + tail
    return html.replace("<title>Splink chart</title>", f"<title>{_escape(title)}</title>", 1)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _linker(con: duckdb.DuckDBPyConnection, records_table: str, model: dict):
    """A Splink linker for ``model`` over ``records_table`` (prepared records on ``con``). A fresh DuckDBAPI
    each time: Splink refuses to register one templated table name twice on the same API."""
    import logging

    from splink import DuckDBAPI, Linker

    from orchestration.lib.matching.engine import model_for_engine

    db_api = DuckDBAPI(con)
    # a model trained on Spark carries Spark's SQL (the jar's jaro_winkler, back-quoted names): the charts run on
    # DuckDB, so the linker gets the model in DuckDB's dialect, as the matching stage does for its engine.
    # The model was validated when it was trained and when it linked this run (validation is ~1 s a linker)
    return db_api, Linker(db_api.register(records_table), model_for_engine(db_api, model),
                          log_level=logging.ERROR, validate_settings=False)


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts with None for missing values (what Splink's waterfall expects)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


#: The fields of a comparison level's description a waterfall row carries (as Splink's waterfall_chart picks them).
_LEVEL_FIELDS = ("label_for_charts", "sql_condition", "log2_bayes_factor", "bayes_factor", "comparison_vector_value",
                 "m_probability", "u_probability", "bayes_factor_description")


def waterfall_rows(linker, records: list[dict]) -> list[dict]:
    """The rows of Splink's waterfall chart for ``records`` (prediction rows), equal to Splink's own
    ``records_to_waterfall_data(records, settings, False)`` (a test compares them) but ~20x faster: Splink
    re-describes each comparison level per pair (a deep copy and SQL parses, ~10 ms a pair, 20 s for a county's
    queue); a level's description depends on the model only, so it is built once here and each pair adds its
    values and term-frequency weights."""
    from splink.internals.waterfall_chart import _final_score_record, _prior_record

    settings = linker._settings_obj
    plan = []
    for c in settings.comparisons:
        used = c._input_columns_used_by_case_statement
        cols_l, cols_r = [ic.unquote().name_l for ic in used], [ic.unquote().name_r for ic in used]
        levels = {}
        for cl in c.comparison_levels:
            described = cl._as_detailed_record(c._num_levels, c.comparison_levels).as_dict()
            tf_col = cl._tf_adjustment_input_column
            tf = (tf_col.unquote().name_l, tf_col.unquote().name_r, tf_col.input_name) if tf_col is not None else None
            levels[cl.comparison_vector_value] = ({k: described[k] for k in _LEVEL_FIELDS}, tf,
                                                  cl._has_tf_adjustments)
        plan.append((c.output_column_name, c._gamma_column_name, c._mw_tf_adj_column_name if c._has_tf_adjustments
                     else None, cols_l, cols_r, levels))
    prior = _prior_record(settings)
    rows: list[dict] = []
    for number, rec in enumerate(records):
        pair = [dict(prior)]
        for name, gamma, mw_tf, cols_l, cols_r, levels in plan:
            level, tf, level_has_tf = levels[rec[gamma]]
            row = dict(level, column_name=name, value_l=", ".join(str(rec[n]) for n in cols_l),
                       value_r=", ".join(str(rec[n]) for n in cols_r), term_frequency_adjustment=False)
            pair.append(row)
            if mw_tf is None:
                continue
            tf_row = dict(row, column_name="tf_" + name, term_frequency_adjustment=True, bayes_factor=1.0,
                          log2_bayes_factor=0.0, value_l=str(rec[tf[0]]) if tf else "",
                          value_r=str(rec[tf[1]]) if tf else "")
            if level_has_tf:
                mw = rec[mw_tf]
                bf = 2**mw if mw != 0 else 1.0
                text = f"Term frequency adjustment on {tf[2]} makes comparison"
                text = (f"{text} {bf:,.2f} times more likely to be a match" if bf >= 1.0 else
                        f"{text}  {1 / bf if bf > 0 else float('inf'):,.2f} times less likely to be a match")
                tf_row.update(label_for_charts=f"Term freq adjustment on {tf[2]}", log2_bayes_factor=mw,
                              bayes_factor=bf, m_probability=None, u_probability=None,
                              bayes_factor_description=text)
            pair.append(tf_row)
        pair.append(_final_score_record(rec))
        for order, row in enumerate(pair):
            row["bar_sort_order"], row["record_number"] = order, number
        rows.extend(pair)
    return rows


def waterfall_file(pair: int) -> tuple[str | None, int | None]:
    """The waterfall file and slider position of queue pair ``pair`` (0-based row of the queue); None, None
    beyond :data:`MAX_EXPLAINED_PAIRS`."""
    if pair >= MAX_EXPLAINED_PAIRS:
        return None, None
    return f"{WATERFALL_PREFIX}{pair // PAIRS_PER_WATERFALL + 1:04d}.html", pair % PAIRS_PER_WATERFALL


def explanation_files(folder: Path) -> list[Path]:
    """Every review explanation in ``folder`` (the waterfall files and the comparison viewer)."""
    if not folder.is_dir():
        return []
    return sorted([*folder.glob(f"{WATERFALL_PREFIX}*.html"), *folder.glob(COMPARISON_VIEWER)])


def write_review_explanations(con: duckdb.DuckDBPyConnection, records_table: str, model: dict | None,
                              review: pd.DataFrame, folder: Path) -> list[Path]:
    """Write the waterfall pages (``person_review_waterfall_NNNN.html``, :data:`PAIRS_PER_WATERFALL` pairs each,
    in queue order, the first :data:`MAX_EXPLAINED_PAIRS` pairs) and the comparison viewer for the review queue
    ``review`` (Splink prediction rows) into ``folder``, which must be inside the identifiable zone. Earlier
    explanations are removed first. Returns the files written (none when the queue is empty)."""
    for old in explanation_files(folder):
        old.unlink()
    if model is None or len(review) == 0:
        return []
    from splink.internals.charts import WaterfallChart

    db_api, linker = _linker(con, records_table, model)
    linker._raise_error_if_necessary_waterfall_columns_not_computed()
    written = []
    for start in range(0, min(len(review), MAX_EXPLAINED_PAIRS), PAIRS_PER_WATERFALL):
        chunk = review.iloc[start:min(start + PAIRS_PER_WATERFALL, MAX_EXPLAINED_PAIRS)]
        # = linker.visualisations.waterfall_chart(records, filter_nulls=False), with the rows built faster
        chart = WaterfallChart(waterfall_rows(linker, _records(chunk)), filter_nulls=False)
        spec = chart.chart_dict
        # Splink sets the slider's maximum to the number of chart rows, not of pairs
        spec["params"][0]["bind"]["max"] = len(chunk) - 1
        spec["title"] = {"text": f"Review pairs {start + 1}-{start + len(chunk)} of {len(review)}",
                         "subtitle": "Slide, or add #N to the address, to see pair N of this file "
                                     "(column explanation_pair of the review queue)"}
        name, _ = waterfall_file(start)
        path = folder / name
        html = offline_html(spec, "Review: match weight waterfall")
        end = html.rindex("</body>")  # the last one: the inlined vega source has the string in it too
        html = html[:end] + _GO_TO_PAIR + html[end:]
        path.write_text(html, encoding="utf-8")
        written.append(path)
    # the comparison viewer reads Splink's predictions under their templated name, with DuckDB's rowid
    con.register("_review_pairs_df", review)
    con.execute("CREATE OR REPLACE TEMP TABLE _review_pairs AS SELECT * FROM _review_pairs_df").fetchall()
    con.unregister("_review_pairs_df")
    predictions = db_api.register("_review_pairs", table_name="__splink__df_predict")
    viewer = folder / COMPARISON_VIEWER
    html = linker.visualisations.comparison_viewer_dashboard(predictions, str(viewer), overwrite=True,
                                                             return_html_as_string=True)
    viewer.write_text(_REMOTE_FONTS.sub("", html), encoding="utf-8")
    written.append(viewer)
    con.execute("DROP TABLE _review_pairs").fetchall()
    for path in written:
        path.chmod(0o600)
    return written


def _cluster_sizes_spec(sizes: pd.DataFrame) -> dict:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": {"text": "Cluster sizes", "subtitle": "persons by number of records linked to them"},
        "data": {"values": _records(sizes)},
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "x": {"field": "records_per_person", "type": "ordinal", "title": "records per person"},
            "y": {"field": "persons", "type": "quantitative", "title": "persons", "scale": {"type": "symlog"}},
        },
        "width": 500, "height": 250,
    }


def run_diagnostics(con: duckdb.DuckDBPyConnection, records_table: str, model: dict,
                    predictions_table: str | None, person_table: str | None) -> dict[str, str]:
    """The aggregate charts of one linkage run as offline HTML pages, by artefact name
    (:data:`DIAGNOSTIC_CHARTS`). ``predictions_table`` holds the run's scored pairs (Splink columns),
    ``person_table`` its ``record_id, person_id``; a chart whose input is missing or empty is left out."""
    _, linker = _linker(con, records_table, model)
    out = {
        "match_weights_chart.html": offline_html(linker.visualisations.match_weights_chart().chart_dict,
                                                 "Match weights"),
        "m_u_parameters_chart.html": offline_html(linker.visualisations.m_u_parameters_chart().chart_dict,
                                                  "m and u parameters"),
    }
    has_weights = predictions_table and con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = 'match_weight'",
        [predictions_table]).fetchall()[0][0]
    if has_weights and con.execute(f"SELECT count(*) FROM {predictions_table}").fetchall()[0][0]:
        db_api, scored = _linker(con, records_table, model)
        chart = scored.visualisations.match_weights_histogram(
            db_api.register(predictions_table, table_name="__splink__df_predict"))
        spec = chart.chart_dict
        spec["title"] = {"text": "Match weights of the scored pairs",
                         "subtitle": "pairs at or above the review floor (lower scores are not kept)"}
        out["match_weights_histogram.html"] = offline_html(spec, "Match weight histogram")
    n = con.execute(f"SELECT count(*) FROM {records_table}").fetchall()[0][0]
    if n:
        sample = f"(SELECT * FROM {records_table} USING SAMPLE reservoir({UNLINKABLES_SAMPLE} ROWS) REPEATABLE (42))"
        con.execute(f"CREATE OR REPLACE TEMP TABLE _unlinkables_sample AS SELECT * FROM {sample}").fetchall()
        _, sampled = _linker(con, "_unlinkables_sample", model)
        spec = sampled.evaluation.unlinkables_chart().chart_dict
        if n > UNLINKABLES_SAMPLE:
            spec["title"]["text"] += f" (a random {UNLINKABLES_SAMPLE:,} of {n:,} records)"
        out["unlinkables_chart.html"] = offline_html(spec, "Unlinkable records")
        con.execute("DROP TABLE _unlinkables_sample").fetchall()
    if person_table:
        sizes = con.execute(f"""SELECT records_per_person, count(*) AS persons FROM (
            SELECT person_id, count(*) AS records_per_person FROM {person_table} GROUP BY 1) GROUP BY 1 ORDER BY 1
            """).df()
        if len(sizes):
            out["cluster_sizes_chart.html"] = offline_html(_cluster_sizes_spec(sizes), "Cluster sizes")
    return out
