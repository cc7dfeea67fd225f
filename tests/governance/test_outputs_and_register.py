"""Output checking gates releases and records the approver; the agreements register shows every feed."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from orchestration.lib.config import get_settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance.audit import read_events, record_event
from orchestration.lib.governance.outputs import (
    approve_export,
    check_file,
    release_status,
)
from orchestration.lib.governance.register import agreements_register, render

GOOD = ("SELECT * FROM (VALUES ('lsoa', 'E01000001', 'ae', 12, 1500, 8.0, false), "
        "('lsoa', 'E01000002', 'ae', NULL, 1400, NULL, true), ('lsoa', 'E01000003', 'ae', 0, 1300, 0.0, false)) "
        "t(geography_level, area_code, indicator, event_count, population, rate_per_1000, is_suppressed)")


@pytest.fixture
def published(tmp_path):
    s = get_settings(home=tmp_path / "home").ensure()
    duckdb.sql(f"COPY ({GOOD}) TO '{s.published / 'place_monthly_indicators.parquet'}' (FORMAT PARQUET)")
    duckdb.sql(f"COPY ({GOOD}) TO '{s.published / 'place_monthly_indicators.csv'}' (FORMAT CSV, HEADER)")
    return s


def act_as(monkeypatch, account: str) -> None:
    """The acting OS account. One test process runs as one OS user, so the account the governance code reads
    (audit.current_user, the one seam for identity) is set here; the check itself runs unchanged."""
    from orchestration.lib.governance import audit

    monkeypatch.setattr(audit, "current_user", lambda: account)


def authorise(settings, *accounts: str) -> None:
    """The administrator's role file (:mod:`identity`) grants ``approver`` to ``accounts``."""
    path = settings.roles_file
    path.parent.mkdir(parents=True, exist_ok=True)
    users = ", ".join(accounts)
    path.write_text(f"# kept by the administrator\napprover: {{users: [{users}]}}\npublic: {{users: ['*']}}\n")
    path.chmod(0o644)


def test_approval_records_who_and_the_file_hashes(published, monkeypatch):
    s = published
    authorise(s, "olu.checker")
    act_as(monkeypatch, "olu.checker")
    checks = approve_export(s, note="monthly release")
    assert [c.file for c in checks] == ["place_monthly_indicators.csv", "place_monthly_indicators.parquet"]
    status = {r["file"]: r for r in release_status(s)}
    assert all(r["status"] == "approved" and r["approved_by"] == "olu.checker" for r in status.values())
    event = read_events(s, action="approve_export")[-1]
    assert event["details"]["approved_by"] == "olu.checker" and event["who"] == "olu.checker"
    assert event["details"]["files"]["place_monthly_indicators.csv"] == checks[0].sha256
    # any later change to a file voids its approval
    with (s.published / "place_monthly_indicators.csv").open("a") as fh:
        fh.write("lsoa,E01000004,ae,2,100,20.0,false\n")
    assert {r["file"]: r["status"] for r in release_status(s)}["place_monthly_indicators.csv"] == \
        "changed since approval"


def test_small_counts_or_person_columns_block_the_export(published, monkeypatch):
    s = published
    authorise(s, "olu.checker")
    act_as(monkeypatch, "olu.checker")
    duckdb.sql(f"COPY (SELECT 'E01000001' area_code, 3 event_count, 'abc' person_key) TO "
               f"'{s.published / 'leaky.parquet'}' (FORMAT PARQUET)")
    result = check_file(s.published / "leaky.parquet")
    assert any("person_key" in f for f in result.failures)
    assert any("between 1 and 4" in f for f in result.failures)
    with pytest.raises(PlacelinkError, match="output check"):
        approve_export(s)
    assert read_events(s, action="export_rejected")
    assert all(r["status"] == "not approved" for r in release_status(s))


def test_suppressed_rows_must_hide_rates(published):
    s = published
    duckdb.sql(f"COPY (SELECT 'E01' area_code, NULL::INT event_count, 2.5 rate_per_1000, true is_suppressed) "
               f"TO '{s.published / 'rates.csv'}' (FORMAT CSV, HEADER)")
    assert any("still show rate_per_1000" in f for f in check_file(s.published / "rates.csv").failures)


def test_exporter_cannot_approve_own_export(published, monkeypatch):
    """Even an authorised checker cannot approve what their own account exported, with or without --by."""
    s = published
    authorise(s, "sam.engineer", "olu.checker")
    record_event(s, action="export", target="place_monthly_indicators.csv", who="sam.engineer")
    act_as(monkeypatch, "sam.engineer")
    with pytest.raises(PlacelinkError, match="four eyes"):
        approve_export(s)
    # naming someone else does not help: the typed name is refused, not recorded
    with pytest.raises(PlacelinkError, match="not a typed-in name"):
        approve_export(s, by="olu.checker")
    assert not read_events(s, action="approve_export")
    act_as(monkeypatch, "olu.checker")
    approve_export(s)
    assert {r["approved_by"] for r in release_status(s)} == {"olu.checker"}


def test_only_an_authorised_checker_can_approve(published, monkeypatch):
    s = published
    act_as(monkeypatch, "pat.analyst")
    with pytest.raises(PlacelinkError, match="does not hold the approver role"):
        approve_export(s)  # no role file: only the home's owner approves
    authorise(s, "olu.checker")
    with pytest.raises(PlacelinkError, match="does not hold the approver role"):
        approve_export(s)
    with pytest.raises(PlacelinkError, match="not a typed-in name"):
        approve_export(s, by="olu.checker")  # typing an authorised name is not being them
    s.roles_file.chmod(0o666)  # a role file anyone can edit authorises nobody
    act_as(monkeypatch, "olu.checker")
    with pytest.raises(PlacelinkError, match="writable by group or others"):
        approve_export(s)
    assert not read_events(s, action="approve_export")
    assert all(r["status"] == "not approved" for r in release_status(s))


def test_agreements_register_lists_feeds_with_lineage(zone_home, tmp_path):
    feeds = zone_home["feeds_dir"]
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({
        "sources": {"source.p.src.nhs__ae_attendances": {"name": "nhs__ae_attendances"},
                    "source.p.src.police__person_records": {"name": "police__person_records"}},
        "nodes": {
            "model.p.stg_nhs__ae_attendancess": {"resource_type": "model", "schema": "staging",
                                                 "name": "stg_nhs__ae_attendancess"},
            "model.p.lsoa_monthly_indicators": {"resource_type": "model", "schema": "marts",
                                                "name": "lsoa_monthly_indicators"},
            "model.p.place_monthly_indicators": {"resource_type": "model", "schema": "published",
                                                 "name": "place_monthly_indicators"}},
        "child_map": {"source.p.src.nhs__ae_attendances": ["model.p.stg_nhs__ae_attendancess"],
                      "model.p.stg_nhs__ae_attendancess": ["model.p.lsoa_monthly_indicators"],
                      "model.p.lsoa_monthly_indicators": ["model.p.place_monthly_indicators"]}}))
    models = tmp_path / "models"
    (models / "risk").mkdir(parents=True)
    (models / "risk" / "ethics.yml").write_text("model: household_risk\npurpose: {agreement_purpose: risk_modelling}\n"
                                                "data:\n  feeds: [police.person_records, nhs.ae_attendances]\n")
    rows = agreements_register(feeds, manifest, models, today=dt.date(2025, 12, 1))
    by_feed = {r["feed"]: r for r in rows}
    nhs, police = by_feed["ae_attendances"], by_feed["person_records"]
    assert nhs["agreement_id"] == "DSA-NHS-TEST" and nhs["retention_months"] == 24
    assert nhs["used_by_marts"] == "marts.lsoa_monthly_indicators, published.place_monthly_indicators"
    assert nhs["opt_out_applied"] == "yes"
    assert "expired 2025-01-31" in nhs["status"] and "no DPA 2018 condition" in nhs["status"]
    # the NHS agreement permits place_indicators only: a risk model using it is flagged for the DPO
    assert "model household_risk uses it for risk_modelling, which the agreement does not permit" in nhs["status"]
    assert police["used_by_models"] == "household_risk" and police["status"] == "ok"
    assert police["dpa_2018_condition"] == "DPA 2018 Part 3 s.35"
    md = render(rows, "md")
    assert md.splitlines()[0].startswith("| partner | feed | agreement_id")
    assert render(rows, "csv").splitlines()[1].startswith("nhs,ae_attendances,DSA-NHS-TEST")
