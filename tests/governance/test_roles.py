"""Roles are enforced by what a connection can reach: an analyst cannot read the identifiable zone."""

from __future__ import annotations

import pytest

from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance.audit import read_events
from orchestration.lib.governance.roles import connect, person_level_allowed

PROJECT = """
project:
  id: {id}
  title: Household risk
  purpose: {purpose}
  agreements: [DSA-POL-TEST]
  person_level: {person_level}
"""


@pytest.fixture
def projects(tmp_path):
    d = tmp_path / "projects"
    d.mkdir()
    (d / "ok.yml").write_text(PROJECT.format(id="PRJ-OK", purpose="risk_modelling", person_level="true"))
    (d / "place.yml").write_text(PROJECT.format(id="PRJ-PLACE", purpose="place_indicators", person_level="false"))
    (d / "bad.yml").write_text(PROJECT.format(id="PRJ-BAD", purpose="marketing", person_level="true"))
    return d


def test_analyst_reads_place_marts(zone_home):
    with connect("analyst", zone_home["settings"]) as con:
        df = con.query("SELECT event_count FROM marts.lsoa_monthly_indicators")
        assert df["event_count"].tolist() == [12]
        assert "warehouse.published.lsoa_counts" in con.tables()


@pytest.mark.parametrize("sql", [
    "SELECT * FROM identifiable.raw.police__person_records",
    "SELECT * FROM raw.police__person_records",
    "SELECT * FROM src.police__person_records",          # pseudonymised person rows: engineer only
    "SELECT * FROM staging.stg_police__person_recordss",
    "SELECT * FROM marts.person_footprint",              # person-level mart without an approved project
])
def test_analyst_cannot_see_identifiable_or_person_level_tables(zone_home, sql):
    with connect("analyst", zone_home["settings"]) as con, pytest.raises(PlacelinkError, match="analyst query"):
        con.query(sql)


def test_analyst_cannot_attach_or_read_the_identifiable_file(zone_home):
    s = zone_home["settings"]
    with connect("analyst", s) as con:
        for sql in (f"ATTACH '{s.identifiable_db}' AS idz (READ_ONLY)",
                    f"SELECT * FROM read_text('{s.identifiable_db}')",
                    "SET enable_external_access = true",
                    "SET lock_configuration = false",
                    f"COPY (SELECT 1) TO '{s.home / 'leak.csv'}'"):
            with pytest.raises(PlacelinkError, match="analyst query"):
                con.query(sql)
        assert not (s.home / "leak.csv").exists()
        assert all(not t.startswith("identifiable.") for t in con.tables())
    denied = [e for e in read_events(s, action="read") if e["details"]["outcome"] == "failed"]
    assert len(denied) == 5
    assert all(e["details"]["error"].endswith("Exception") for e in denied)  # the type, never the text


def test_person_level_marts_only_for_an_approved_project(zone_home, projects):
    s, feeds = zone_home["settings"], zone_home["feeds_dir"]
    with connect("analyst", s, project="PRJ-OK", projects_dir=projects, feeds_dir=feeds) as con:
        df = con.query("SELECT count(*) n FROM person_marts.marts.person_footprint")
        assert df["n"].tolist() == [2]
    event = read_events(s, action="read")[-1]
    assert event["details"]["person_level"] is True and event["details"]["project"] == "PRJ-OK"
    for project, why in (("PRJ-PLACE", "place-level work only"), ("PRJ-BAD", "does not permit purpose"),
                         ("PRJ-NONE", "no project")):
        assert person_level_allowed(project, projects_dir=projects, feeds_dir=feeds)[0] is False
        with pytest.raises(PlacelinkError, match=why):
            connect("analyst", s, project=project, projects_dir=projects, feeds_dir=feeds)


def test_engineer_reads_both_zones_read_only_and_is_audited(zone_home):
    s = zone_home["settings"]
    with connect("engineer", s, purpose="data quality") as con:
        df = con.query("SELECT count(*) n FROM identifiable.raw.police__person_records")
        assert df["n"].tolist() == [3]
        with pytest.raises(PlacelinkError):
            con.query("DELETE FROM identifiable.raw.police__person_records")
    event = read_events(s, action="read")[-1]
    assert event["role"] == "engineer" and event["details"]["outcome"] == "failed"
    ok = read_events(s, action="read")[-2]
    assert ok["details"]["outcome"] == "ok" and ok["details"]["rows"] == 1
    assert ok["details"]["person_level"] is True and ok["purpose"] == "data quality"
    assert ok["target"] == "identifiable.raw.police__person_records"


def test_public_sees_published_files_only(zone_home):
    s = zone_home["settings"]
    with connect("public", s) as con:
        assert con.query("SELECT event_count FROM lsoa_counts")["event_count"].tolist() == [12]
        with pytest.raises(PlacelinkError):
            con.query("SELECT * FROM marts.lsoa_monthly_indicators")
        with pytest.raises(PlacelinkError):
            con.query(f"ATTACH '{s.warehouse_db}' AS wh")
    assert read_events(s, action="read") == []


def test_unknown_role_is_refused(zone_home):
    with pytest.raises(PlacelinkError, match="unknown role"):
        connect("admin", zone_home["settings"])
