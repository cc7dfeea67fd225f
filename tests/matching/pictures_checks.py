"""Checks of the linkage pictures (#23, #28) on a home after logged matching runs; test_index_and_run.py runs
them on its ``two_nights`` home (two logged runs and a full re-link, already paid for there): the review
explanations are in the identifiable zone and point from the queue; nothing of them leaves it; the MLflow charts
hold aggregates only; headless Chromium, with the network cut off, draws a waterfall and an MLflow chart
(screenshots in test-output/); and the waterfall rows placelink builds are Splink's own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from orchestration.lib.matching.pictures import (
    COMPARISON_VIEWER,
    DIAGNOSTIC_CHARTS,
    PAIRS_PER_WATERFALL,
    WATERFALL_PREFIX,
    explanation_files,
)
from orchestration.lib.matching.run import REVIEW_QUEUE, review_dir


def mlflow_artefacts(settings) -> Path:
    """The artefact folder of the latest linkage run in MLflow."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    run = mlflow.search_runs(experiment_names=["linkage"]).iloc[0]
    return Path(mlflow.get_run(run["run_id"]).info.artifact_uri.removeprefix("file://"))


def _needles(county) -> dict[str, set[str]]:
    """Clear identifiers of the input, as they could be written: record ids, NHS numbers, dates of birth,
    postcodes (as given and as matching writes them)."""
    recs = county["records"]
    pcs = recs["postcode"].dropna().astype(str)
    return {
        "record_id": set(recs["record_id"].astype(str)),
        "nhs_number": set(recs["nhs_number"].dropna().astype(str)),
        "date_of_birth": set(recs["date_of_birth"].dropna().astype(str)),
        "postcode": set(pcs) | set(pcs.str.upper().str.replace(" ", "")),
    }


def _found(text: str, needles: dict[str, set[str]]) -> dict[str, list[str]]:
    """Needles present in ``text`` as whole tokens (an NHS number inside a longer digit string is not one)."""
    tokens = set(re.findall(r"[A-Za-z0-9][A-Za-z0-9.:_-]*[A-Za-z0-9]", text))
    tokens |= {" ".join(p) for p in re.findall(r"\b([A-Z]{1,2}[0-9][0-9A-Z]?) ([0-9][A-Z]{2})\b", text)}
    return {kind: sorted(values & tokens)[:3] for kind, values in needles.items() if values & tokens}


def _library_free(html: str) -> str:
    """The page without the vega/vega-lite/vega-embed sources inlined from the splink wheel (third-party code,
    the same in every page): what is left is the chart's spec, its data and our few lines."""
    from splink.internals.html_utils import load_chart_libraries

    for source in load_chart_libraries().values():
        html = html.replace(source, "")
    return html


def _chart_spec(html: str) -> dict:
    """The vega-lite spec a Splink chart page hands to vegaEmbed."""
    match = re.search(r"vegaEmbed\(document\.getElementById\('[^']+'\), (\{.*\}), \{\}\)\.catch", html, re.S)
    assert match, "no vegaEmbed call with an inline spec"
    return json.loads(match.group(1))


def check_every_review_pair_has_an_explanation(settings) -> None:
    """Each queue row names its waterfall file and position, that file shows the pair, and the files are
    owner-only inside the zone."""
    folder = review_dir(settings)
    queue = pd.read_csv(folder / REVIEW_QUEUE, dtype=str)
    assert len(queue) > 0
    files = explanation_files(folder)
    waterfalls = [p for p in files if p.name.startswith(WATERFALL_PREFIX)]
    assert len(waterfalls) == -(-len(queue) // PAIRS_PER_WATERFALL)
    assert folder / COMPARISON_VIEWER in files
    assert queue["explanation_file"].notna().all()
    rows = sorted({0, len(queue) - 1} | ({PAIRS_PER_WATERFALL - 1, PAIRS_PER_WATERFALL} if len(waterfalls) > 1
                                        else set()))
    for _, row in queue.iloc[rows].iterrows():
        spec = _chart_spec((folder / row["explanation_file"]).read_text(encoding="utf-8"))
        shown = [v for v in spec["data"]["values"] if v["record_number"] == int(row["explanation_pair"])]
        dob = next(v for v in shown if v["column_name"] == "dob")
        assert {dob["value_l"], dob["value_r"]} <= {str(row["dob_l"]), str(row["dob_r"]), "None"}
        final = next(v for v in shown if v["column_name"] == "Final score")
        assert final["log2_bayes_factor"] == pytest.approx(float(row["match_weight"]))
    for path in (*files, folder):
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"


def check_review_explanations_never_leave_the_identifiable_zone(settings, county) -> None:
    """The waterfall pages show clear identifiers; that is allowed only inside the zone. Nothing outside it --
    MLflow's store and artefacts, logs, models, Dagster, the warehouse -- has an explanation file or any record
    id, NHS number, date of birth or postcode of the input. Reference data (the postcode directory) and the
    generator's truth/ are not person data and are not scanned."""
    needles = _needles(county)
    home = settings.home
    inside = [settings.identifiable_dir, settings.identifiable_db]
    skipped = [settings.reference, settings.truth, settings.landing]
    scanned, leaks = 0, {}
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        if any(path == z or z in path.parents for z in inside + skipped):
            continue
        assert not path.name.startswith(WATERFALL_PREFIX) and path.name != COMPARISON_VIEWER, path
        text = path.read_bytes().decode("utf-8", errors="replace")
        hits = _found(_library_free(text) if path.suffix == ".html" else text, needles)
        scanned += 1
        if hits:
            leaks[str(path.relative_to(home))] = hits
    assert scanned >= len(DIAGNOSTIC_CHARTS) + 2  # the charts, the MLflow database, the model
    assert leaks == {}, f"clear identifiers outside the identifiable zone: {leaks}"
    # the needles are real: the review pages inside the zone do show them
    inside_text = "".join(_library_free(p.read_text(encoding="utf-8"))
                          for p in explanation_files(review_dir(settings)))
    assert {"record_id", "date_of_birth", "postcode"} <= set(_found(inside_text, needles))


def check_mlflow_diagnostics_are_aggregate_charts(settings, county) -> None:
    """The latest run logged the m/u parameters, match weights, match-weight histogram, unlinkables and cluster
    sizes; their data are parameters and counts: no field or value of a record."""
    artefacts = mlflow_artefacts(settings)
    assert {p.name for p in artefacts.iterdir()} >= set(DIAGNOSTIC_CHARTS)
    needles = _needles(county)
    recs = county["records"]
    names = set(recs["given_name"].dropna().str.lower()) | set(recs["family_name"].dropna().str.lower())
    record_fields = {"value_l", "value_r", "unique_id_l", "unique_id_r", "record_id"}
    for name in DIAGNOSTIC_CHARTS:
        html = (artefacts / name).read_text(encoding="utf-8")
        spec = _chart_spec(html)
        rows = spec["data"]["values"] if "values" in spec.get("data", {}) else []
        # the unlinkables chart plots only records whose self-match stays below certainty: a model that is sure of
        # every record on its own (this county, since #23's address and identifier comparisons) has none to plot
        assert rows or name == "unlinkables_chart.html", f"{name}: no data"
        assert not record_fields & {k for r in rows for k in r}, name
        values = {str(v).strip().lower() for r in rows for v in r.values() if isinstance(v, str)}
        assert not values & names, f"{name} holds a name: {sorted(values & names)[:3]}"
        assert _found(_library_free(html), needles) == {}, name
    sizes = _chart_spec((artefacts / "cluster_sizes_chart.html").read_text(encoding="utf-8"))["data"]["values"]
    con = duckdb.connect(str(settings.identifiable_db), read_only=True)
    try:
        persons, records = con.execute(
            "SELECT count(DISTINCT person_id), count(*) FROM link.person_index").fetchall()[0]
    finally:
        con.close()
    assert sum(r["persons"] for r in sizes) == persons
    assert sum(r["persons"] * r["records_per_person"] for r in sizes) == records


def check_charts_draw_offline(settings, test_output) -> None:
    """Headless Chromium opens a waterfall page at pair 3 of the clerical folder and the MLflow match-weights
    chart as files, with every non-file request refused: each draws a chart (a canvas of real size), with
    no script error and no request to the network. (The match-weights chart MLflow had before loaded vega from
    cdn.jsdelivr.net: offline it showed "Javascript Error: Error loading script".)"""
    from playwright.sync_api import sync_playwright

    from tests.ops.test_browser import CHROMIUM_ARGS

    waterfall = sorted(review_dir(settings).glob(f"{WATERFALL_PREFIX}*.html"))[0]
    pages = [(waterfall.as_uri() + "#3", "review_waterfall"),
             ((mlflow_artefacts(settings) / "match_weights_chart.html").as_uri(), "mlflow_match_weights")]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            for url, shot in pages:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                remote, errors = [], []
                page.route("**/*", lambda route, remote=remote: route.continue_()
                           if route.request.url.startswith("file:") else (remote.append(route.request.url),
                                                                          route.abort()))
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                page.goto(url)
                page.wait_for_function("() => [...document.querySelectorAll('canvas')]"
                                       ".some(c => c.width > 100 && c.height > 100)", timeout=30_000)
                box = page.locator("canvas").first.bounding_box()
                page.screenshot(path=str(test_output / f"linkage_{shot}.png"))
                assert box and box["width"] > 200 and box["height"] > 200, (shot, box)
                assert errors == [] and remote == [], (shot, errors, remote)
                assert "Javascript Error" not in page.inner_text("body"), shot
                if shot == "review_waterfall":
                    assert page.locator('input[name="record_number"]').input_value() == "3"
                page.close()
        finally:
            browser.close()


def check_waterfall_rows_are_splinks_own(county, model) -> None:
    """The waterfall pages build their rows faster than Splink's ``records_to_waterfall_data``; the rows must be
    the same, for pairs at every level of every comparison (term-frequency adjusted names included)."""
    from splink.internals.waterfall_chart import records_to_waterfall_data

    from orchestration.lib.matching.normalise import prepare_records, run
    from orchestration.lib.matching.pictures import _linker, waterfall_rows

    con = duckdb.connect()
    con.register("_df", county["records"].head(1200))
    run(con, "CREATE TABLE recs AS SELECT * FROM _df")
    prepare_records(con, "recs", "prep")
    _, linker = _linker(con, "prep", model)
    pairs = linker.inference.predict(threshold_match_probability=0.001, warning_mode="never").as_pandas_dataframe()
    # a few pairs of every comparison vector seen, so every level and the tf rows are exercised
    gammas = [c for c in pairs.columns if c.startswith("gamma_")]
    sample = pairs.groupby(gammas, dropna=False).head(2)
    records = sample.astype(object).where(sample.notna(), None).to_dict("records")
    # every comparison the data can exercise (a field the county does not have, e.g. national_id, is always null)
    present = [g for g in gammas if (sample[g] != -1).any()]
    assert len(records) > 50 and len(present) >= len(gammas) - 1 and all(sample[g].nunique() >= 2 for g in present)
    assert waterfall_rows(linker, records) == records_to_waterfall_data(records, linker._settings_obj, False)
