"""Hostile project files: incomplete, placeholder answers, a purpose no agreement allows, an expired agreement.

Each must be refused with the field named and a fix; none may crash the register or hide the other projects.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.lib.config import get_settings
from orchestration.lib.governance.project_check import check_project
from orchestration.lib.governance.projects import (
    PROJECTS_DIR,
    ProjectError,
    load_register,
    project_gate,
    require_project,
    validate_project_data,
)

ROOT = Path(__file__).resolve().parents[2]
FEEDS = ROOT / "orchestration" / "feeds"
HHRISK = yaml.safe_load((PROJECTS_DIR / "PRJ-2025-HHRISK.yml").read_text())

#: every required field, as the path a refusal must name
REQUIRED = ["id", "title", "lead", "status", "problem", "problem.statement", "problem.why_it_matters",
            "problem.can_data_help", "action", "action.decision", "action.team", "action.role",
            "action.capacity_per_month", "outcome", "outcome.measure", "outcome.evaluation", "data", "data.feeds",
            "data.history_months", "data.population", "purpose", "lawful_basis", "lawful_basis.article_6",
            "lawful_basis.article_9_or_dpa_condition", "start", "valid_to", "review_date", "ethics_assessment"]


def _without(raw: dict, dotted: str) -> dict:
    out = copy.deepcopy(raw)
    node = out["project"]
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node[p]
    del node[leaf]
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(st.sampled_from(REQUIRED), min_size=1, max_size=5))
def test_an_incomplete_file_names_every_missing_field_and_its_fix(dropped):
    raw = copy.deepcopy(HHRISK)
    for dotted in sorted(dropped, key=len, reverse=True):  # children before parents
        try:
            raw = _without(raw, dotted)
        except KeyError:
            pass  # its parent went first
    loaded = validate_project_data(raw, Path("PRJ-2025-HHRISK.yml"))
    assert not loaded.complete
    named = {where.split(": ", 1)[1].removeprefix("project.") for where, _, _ in loaded.problems}
    for dotted in dropped:
        # the field, or the parent that was dropped with it, is named
        assert any(dotted == n or dotted.startswith(n + ".") for n in named), (dotted, named)
    assert all(fix for _, _, fix in loaded.problems)


@pytest.mark.parametrize(("field", "value", "named", "fix"), [
    ("problem.statement", "TBD", "problem.statement", "real answer"),
    ("action.capacity_per_month", 0, "action.capacity_per_month", "positive"),
    ("ethics_assessment.fairness.score", 7, "ethics_assessment.fairness.score", "0 to 5"),
    ("ethics_assessment.fairness.evidence", "", "ethics_assessment.fairness.evidence", "real answer"),
    ("status", "maybe", "status", "allowed values"),
    ("review_date", "next spring", "review_date", "YYYY-MM-DD"),
    ("data.feeds", [{"feed": "nhs", "columns": ["x"]}], "data.feeds[nhs].feed", "<partner>.<feed>"),
    ("approvals", [], "approvals", "proposed"),
    ("id", "PRJ-2025-OTHER", "id", "rename the file"),
    ("ethics_assessment.vibes", {"score": 5, "evidence": "good"}, "ethics_assessment", "unknown principle(s) vibes"),
])
def test_a_wrong_value_is_refused_naming_the_field_and_the_fix(tmp_path, field, value, named, fix, project_register):
    folder = project_register(**{field: value})
    with pytest.raises(ProjectError) as err:
        require_project("PRJ-2025-HHRISK" if field != "id" else "PRJ-2025-OTHER", folder)
    text = str(err.value)
    assert f"project.{named}" in text and fix in text, text
    # one bad file never hides the others
    register = load_register(folder)
    assert register["PRJ-2025-EARLYHELP"].complete


def test_files_that_are_not_projects_are_refused_not_crashed_on(tmp_path):
    folder = tmp_path / "projects"
    folder.mkdir()
    (folder / "PRJ-2026-A.yml").write_text("project: [1, 2\n")  # broken YAML
    (folder / "PRJ-2026-B.yml").write_text("- just a list\n")
    register = load_register(folder)
    assert "not valid YAML" in register["PRJ-2026-A"].problems[0][1]
    assert ":1:" in register["PRJ-2026-A"].problems[0][0] or ":2:" in register["PRJ-2026-A"].problems[0][0]
    assert "project:" in register["PRJ-2026-B"].problems[0][1]
    gate = project_gate("PRJ-2026-B", stage="score", directory=folder)
    assert not gate.allowed and "incomplete" in gate.reasons[0]


def test_a_purpose_no_agreement_allows_is_no_go_naming_the_feed_and_the_fix(tmp_path, project_register):
    folder = project_register(purpose="safeguarding")  # police and social care allow it; the rest do not
    report = check_project("PRJ-2025-HHRISK", get_settings(home=tmp_path / "home"), projects_dir=folder)
    assert not report.go
    refused = [f for f in report.reasons if f.section == "agreements"]
    feeds = {f.text.split("]")[0].removeprefix("data.feeds[") for f in refused}
    assert feeds == {"county_council.school_attendance", "district_councils.homelessness_presentations",
                     "nhs.ae_attendances", "fire.safe_and_well_visits"}
    assert all("does not allow purpose 'safeguarding'" in f.text and "agreement.purposes" in f.fix for f in refused)


def test_an_expired_agreement_is_no_go_naming_the_agreement_its_expiry_and_the_fix(tmp_path):
    feeds = tmp_path / "feeds"
    shutil.copytree(FEEDS, feeds)
    fire = feeds / "fire.yml"
    fire.write_text(fire.read_text().replace("valid_to: 2028-12-31", "valid_to: 2026-06-30"))
    report = check_project("PRJ-2025-HHRISK", get_settings(home=tmp_path / "home"), feeds_dir=feeds)
    texts = [f"{f.text} (fix: {f.fix})" for f in report.reasons if f.section == "agreements"]
    assert len(texts) == 1, texts
    assert "data.feeds[fire.safe_and_well_visits]" in texts[0] and "DSA-FRS-2024-01 expires on 2026-06-30" in texts[0]
    assert "renew agreement DSA-FRS-2024-01" in texts[0]
    # and a model of the project may no longer use the feed (its agreement ended)
    from ml.ethics import load_record as load_ethics
    from ml.ethics import project_permission, record_path

    gate = project_permission(load_ethics(record_path("household_risk")), stage="score", feeds_dir=feeds)
    assert not gate.allowed and any("fire.safe_and_well_visits" in r and "ended 2026-06-30" in r for r in gate.reasons)


def test_cli_refuses_an_incomplete_project_naming_the_field(tmp_path, project_register):
    folder = project_register()
    raw = _without(HHRISK, "outcome.evaluation")
    (folder / "PRJ-2025-HHRISK.yml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["project", "check", "PRJ-2025-HHRISK", "--quiet", "--projects-dir", str(folder),
                                      "--home", str(tmp_path / "home")])
    assert result.exit_code == 1, result.output
    assert "NO-GO" in result.output and "project.outcome.evaluation: missing" in result.output
    assert "fix: add the key" in result.output
    assert (tmp_path / "home" / "governance" / "projects" / "PRJ-2025-HHRISK" / "check.html").exists()


def test_gate_refuses_each_way_a_project_can_be_unusable(tmp_path, project_register):
    today = dt.date(2026, 12, 3)
    ok = project_gate("PRJ-2025-HHRISK", stage="score", purpose="risk_modelling", today=today)
    assert ok.allowed, ok.reasons
    cases = {
        "past its review date 2026-11-30": project_register(tmp_path / "a", review_date=dt.date(2026, 11, 30)),
        "is suspended, not approved": project_register(tmp_path / "b", status="suspended"),
        "ended on 2026-10-31": project_register(tmp_path / "c", valid_to=dt.date(2026, 10, 31),
                                          review_date=dt.date(2026, 10, 31)),
    }
    for why, folder in cases.items():
        gate = project_gate("PRJ-2025-HHRISK", stage="score", purpose="risk_modelling", directory=folder, today=today)
        assert not gate.allowed and any(why in r for r in gate.reasons), (why, gate.reasons)
    wrong = project_gate("PRJ-2025-HHRISK", stage="train", purpose="service_planning", today=today)
    assert not wrong.allowed and "not its project's purpose 'risk_modelling'" in wrong.reasons[0]
    assert not project_gate(None, stage="train").allowed
    assert not project_gate("PRJ-2026-FOODRISK", stage="train", purpose="risk_modelling", today=today).allowed
