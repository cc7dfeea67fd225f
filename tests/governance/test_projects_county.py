"""Projects on the synthetic county (the refreshed tiny county the end-to-end tests build once):

- the two example projects: PRJ-2025-HHRISK is GO, PRJ-2026-FOODRISK is NO-GO with its reasons;
- projects gate use: a project past its review date stops scoring, one not approved stops training, through
  the library, the CLI and Dagster;
- from prediction to action: only the team role, only flagged households, up to capacity, each audited, then the
  review decision and outcome, and the override rate;
- the transparency register renders in headless Chromium.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil

import dagster as dg
import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.defs.resources import settings_resource
from orchestration.lib.config import get_settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance.projects import PROJECTS_DIR

HHRISK = yaml.safe_load((PROJECTS_DIR / "PRJ-2025-HHRISK.yml").read_text())


@pytest.fixture(scope="module")
def county(refreshed_tiny_county, full_refresh_warehouse, tmp_path_factory):
    """A private copy of the refreshed tiny county (its warehouse from the snapshot taken after the refresh), so
    these tests may write cases and audit events without touching the shared home."""
    settings, _ = refreshed_tiny_county
    home = tmp_path_factory.mktemp("projects_county") / "home"
    shutil.copytree(settings.home, home, ignore=shutil.ignore_patterns("dagster", "dbt", "landing", "*.lock"))
    shutil.copyfile(full_refresh_warehouse, home / "warehouse.duckdb")
    return get_settings(home=home, env="local")


def test_the_two_example_projects_go_and_no_go_on_the_synthetic_county(county):
    runner = CliRunner()
    ok = runner.invoke(app, ["project", "check", "PRJ-2025-HHRISK", "--home", str(county.home)])
    assert ok.exit_code == 0, ok.output
    assert "Verdict: **GO**" in ok.output
    folder = county.governance_dir / "projects" / "PRJ-2025-HHRISK"
    md, htm = (folder / "check.md").read_text(), (folder / "check.html").read_text()
    for section in ("## agreements", "## ethics self-assessment", "## history", "## quality", "## coverage"):
        assert section in md
    assert "<strong id='verdict'>GO</strong>" in htm

    from orchestration.lib.governance.project_check import check_project

    report = check_project("PRJ-2025-HHRISK", county)
    quality = report.tables["quality"].set_index("feed")
    assert (quality["months"] >= 12).all() and quality["completeness"].between(0, 1).all()
    assert quality["person_linked_rate"].notna().all()
    coverage = report.tables["coverage"]
    assert set(coverage["dimension"]) == {"age_band", "sex", "ethnicity_group", "deprivation_quintile"}
    for dim in ("age_band", "sex", "ethnicity_group", "deprivation_quintile"):
        known = coverage[(coverage["dimension"] == dim) & coverage["population_share"].notna()]
        assert abs(known["population_share"].sum() - 1) < 1e-6, dim
        assert known["people_in_data"].sum() > 0, dim

    refused = runner.invoke(app, ["project", "check", "PRJ-2026-FOODRISK", "--quiet", "--home", str(county.home)])
    assert refused.exit_code == 1, refused.output
    out = refused.output
    assert "PRJ-2026-FOODRISK: NO-GO" in out
    for reason in ("DSA-VOL-2024-01 does not allow purpose 'risk_modelling'",
                   "DSA-DC-2024-02 does not allow purpose 'risk_modelling'",
                   "columns ['mental_health_flag'] are not in agreement DSA-NHS-2024-01",
                   "DSA-NHS-2024-01 expires on 2028-12-31, before the project ends (2029-06-30)",
                   "ethics_assessment.fairness scores 2/5",
                   "the warehouse holds 24 month(s); the project needs 60"):
        assert reason in out, reason
    assert out.count("(fix: ") >= 10


def test_a_project_past_its_review_date_stops_scoring_in_library_cli_and_dagster(county, tmp_path, project_register):
    from ml.score import score_model
    from orchestration.defs.ml.assets import ML_ASSETS

    past = project_register(review_date=dt.date.today() - dt.timedelta(days=1))
    with duckdb.connect(str(county.warehouse_db), read_only=True) as con:
        before = con.execute("select count(*), max(scored_at) from ml.household_risk_scores").fetchone()
    assert before[0] > 0
    with pytest.raises(PlacelinkError, match="scoring refused: project PRJ-2025-HHRISK is past its review date"):
        score_model("household_risk", settings=county, projects_dir=past)

    env = {"PLACELINK_HOME": str(county.home), "PLACELINK_PROJECTS_DIR": str(past)}
    result = CliRunner().invoke(app, ["score", "--model", "household_risk"], env=env)
    assert result.exit_code != 0
    assert "past its review date" in str(result.exception) + result.output

    scores = next(a for a in ML_ASSETS if a.key.path[-1] == "household_risk_scores")
    run = dg.materialize([scores], resources={"placelink_settings": settings_resource(county)},
                         run_config={"ops": {scores.node_def.name: {"config": {"projects_dir": str(past)}}}},
                         raise_on_error=False)
    assert not run.success
    failure = next(e for e in run.all_events if e.is_step_failure)
    assert "past its review date" in str(failure.event_specific_data.error)
    with duckdb.connect(str(county.warehouse_db), read_only=True) as con:
        assert con.execute("select count(*), max(scored_at) from ml.household_risk_scores").fetchone() == before


def test_training_refused_for_a_project_not_approved_through_dagster(county, tmp_path, project_register):
    from orchestration.defs.ml.assets import ML_ASSETS

    proposed = project_register(status="proposed")
    training = next(a for a in ML_ASSETS if a.key.path[-1] == "household_risk_training")
    run = dg.materialize([training], resources={"placelink_settings": settings_resource(county)},
                         run_config={"ops": {training.node_def.name: {"config": {"projects_dir": str(proposed)}}}},
                         raise_on_error=False)
    assert not run.success
    error = str(next(e for e in run.all_events if e.is_step_failure).event_specific_data.error)
    assert "training refused: project PRJ-2025-HHRISK is proposed, not approved" in error


def _write_roles(settings, grants: dict) -> None:
    path = settings.roles_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(grants))
    path.chmod(0o644)
    path.parent.chmod(0o700)


def test_flagged_households_are_reidentified_by_the_team_up_to_capacity_each_audited(county, tmp_path, project_register):
    from orchestration.lib.governance import actions
    from orchestration.lib.governance.audit import read_events
    from orchestration.lib.governance.identity import current_user

    folder = project_register(**{"action.capacity_per_month": 2})
    seen = {a: len(read_events(county, action=a)) for a in ("reidentify", "case_decision", "case_outcome")}
    flagged = actions.flagged(county, "PRJ-2025-HHRISK", projects_dir=folder)
    threshold = HHRISK["project"]["action"]["threshold"]
    assert len(flagged) >= 3, "the tiny county must flag more households than the capacity"
    assert (flagged["risk_score"] >= threshold).all() and flagged["risk_score"].is_monotonic_decreasing
    with duckdb.connect(str(county.warehouse_db), read_only=True) as con:
        below = con.execute("select household_key from ml.household_risk_scores where risk_score < ? limit 1",
                            [threshold]).fetchone()[0]
    first, second, third = flagged["case_id"].iloc[:3]

    opened = actions.reidentify(county, "PRJ-2025-HHRISK", first, projects_dir=folder)
    assert len(opened.records) > 0 and set(opened.records.columns) == {"partner", "feed", "record_id"}
    again = actions.reidentify(county, "PRJ-2025-HHRISK", first, projects_dir=folder)  # no extra capacity used
    assert again.used_this_month == 1
    actions.reidentify(county, "PRJ-2025-HHRISK", second, projects_dir=folder)
    with pytest.raises(PlacelinkError, match=r"capacity \(2 a month\)"):
        actions.reidentify(county, "PRJ-2025-HHRISK", third, projects_dir=folder)
    not_flagged = actions._case_id("PRJ-2025-HHRISK", flagged["score_month"].iloc[0], below)
    with pytest.raises(PlacelinkError, match="not a household the project flags"):
        actions.reidentify(county, "PRJ-2025-HHRISK", not_flagged, projects_dir=folder)
    with pytest.raises(PlacelinkError, match="is proposed, not approved"):
        actions.reidentify(county, "PRJ-2025-HHRISK", first, projects_dir=project_register(tmp_path / "p", status="proposed"))

    # the first decision and the outcome through the CLI (`project decide` / `project outcome`), the rest in-process
    for command, value in (("decide", "action_taken"), ("outcome", "not_occurred")):
        said = CliRunner().invoke(app, ["project", command, "PRJ-2025-HHRISK", first, value, "--home", str(county.home),
                                        "--projects-dir", str(folder)])
        assert said.exit_code == 0 and f"{first}: {'decision' if command == 'decide' else 'outcome'} {value} recorded" \
            in said.output, said.output
    actions.record_decision(county, "PRJ-2025-HHRISK", second, "disagree", projects_dir=folder)
    with pytest.raises(PlacelinkError, match="not one of"):
        actions.record_decision(county, "PRJ-2025-HHRISK", first, "maybe", projects_dir=folder)
    with pytest.raises(PlacelinkError, match="has not been opened"):
        actions.record_decision(county, "PRJ-2025-HHRISK", third, "agree", projects_dir=folder)
    result = actions.summary(county, "PRJ-2025-HHRISK")
    assert (result.opened, result.decided, result.overrides, result.override_rate) == (2, 2, 1, 0.5)
    assert "Observational" in result.markdown()
    from orchestration.lib.governance.project_check import check_project

    report = check_project("PRJ-2025-HHRISK", county, projects_dir=folder)
    assert "override rate 50%" in report.markdown() and "## actions" in report.markdown()

    events = read_events(county, action="reidentify")[seen["reidentify"]:]
    assert [e["details"]["outcome"] for e in events] == ["ok", "ok", "ok", "refused", "refused", "refused"]
    assert all(e["who"] == current_user() for e in events)
    assert len(read_events(county, action="case_decision")) - seen["case_decision"] == 2
    assert len(read_events(county, action="case_outcome")) - seen["case_outcome"] == 1
    # the audit trail names cases, never the household's key or the partners' record ids it opened
    text = county.audit_db.read_bytes()
    for secret in [*flagged["household_key"].iloc[:3], *opened.records["record_id"]]:
        assert secret.encode() not in text

    # an account without the team role is refused (and the refusal audited)
    _write_roles(county, {"engineer": {"users": [current_user()]}, "prevention_team": {"users": ["someone-else"]}})
    try:
        with pytest.raises(PlacelinkError, match="does not hold the project's team role prevention_team"):
            actions.reidentify(county, "PRJ-2025-HHRISK", first, projects_dir=folder)
    finally:
        county.roles_file.unlink()
    assert read_events(county, action="reidentify")[-1]["details"]["outcome"] == "refused"


def test_transparency_register_renders_in_headless_chromium(county, test_output, capfd):
    from playwright.sync_api import sync_playwright

    from ml.records import build_register_site
    from orchestration.lib.governance.audit import verify
    from tests.ops.test_browser import CHROMIUM_ARGS

    capfd.readouterr()
    index = build_register_site(county, county.home / "register")
    # reading each model's fairness table from MLflow prints none of its progress bars (the demo's output)
    assert "Downloading artifacts" not in "".join(capfd.readouterr())
    site = index.parent
    dpia = (site / "projects" / "PRJ-2025-HHRISK" / "dpia.md").read_text()
    for step in range(1, 8):
        assert f"## Step {step}:" in dpia
    atrs = (site / "models" / "household_risk" / "atrs.md").read_text()
    assert "## Tier 1" in atrs and "## Tier 2" in atrs and "PRJ-2025-HHRISK" in atrs
    head = verify(county).head_hash
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(index.as_uri())
            page.screenshot(path=str(test_output / "transparency_register.png"), full_page=True)
            assert page.title() == "Transparency register"
            agreements = page.locator("#agreements tr")
            assert agreements.count() == 1 + 9  # header + every feed
            assert page.locator("#agreements").inner_text().count("2028-12-31") >= 8
            projects = page.locator("#projects-table").inner_text()
            for pid in ("PRJ-2025-HHRISK", "PRJ-2025-EARLYHELP", "PRJ-2025-PLACE", "PRJ-2026-FOODRISK"):
                assert pid in projects
            assert "NO-GO" in projects and "GO" in projects
            assert page.locator("#models-table tr").count() == 3
            assert page.locator("#fairness-household_risk tr").count() > 3
            assert head and head in page.locator("#audit-head").inner_text()
            page.click("text=DPIA >> nth=0")
            assert "DPIA draft" in page.locator("h1").inner_text()
            page.screenshot(path=str(test_output / "transparency_register_dpia.png"), full_page=True)
        finally:
            browser.close()
    assert os.path.getsize(test_output / "transparency_register.png") > 10_000
