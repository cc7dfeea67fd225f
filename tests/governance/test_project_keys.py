"""Per-project pseudonyms: an approved project's person-level extracts carry keys derived with the project's own
key, so two projects' outputs cannot be joined on their keys and the warehouse's shared keys stay internal."""

from __future__ import annotations

import hashlib
import hmac

import duckdb

from orchestration.lib.governance.roles import connect, role_dir
from orchestration.lib.pseudonymise import Pseudonymiser, load_key
from tests.governance.test_roles import PROJECT


def _keys(settings, feeds, projects, project):
    with connect("analyst", settings, project=project, projects_dir=projects, feeds_dir=feeds) as con:
        person = con.query("SELECT person_key FROM person_marts.marts.person_footprint ORDER BY person_key")
        household = con.query("SELECT household_key FROM person_marts.marts.household_footprint")
    return person["person_key"].tolist(), household["household_key"].tolist()


def test_each_project_sees_its_own_keys(zone_home, tmp_path):
    s, feeds = zone_home["settings"], zone_home["feeds_dir"]
    projects = tmp_path / "projects"
    projects.mkdir()
    for pid in ("PRJ-A", "PRJ-B"):
        (projects / f"{pid}.yml").write_text(PROJECT.format(id=pid, purpose="risk_modelling", person_level="true"))
    with duckdb.connect(str(s.warehouse_db), read_only=True) as wh:
        shared_person = sorted(r[0] for r in wh.execute("SELECT person_key FROM marts.person_footprint").fetchall())
        shared_household = [r[0] for r in wh.execute("SELECT household_key FROM marts.household_footprint").fetchall()]
    a_person, a_household = _keys(s, feeds, projects, "PRJ-A")
    b_person, b_household = _keys(s, feeds, projects, "PRJ-B")
    assert len(a_person) == len(shared_person) == 2
    # nothing in common: not with the warehouse, not with the other project
    assert not set(a_person) & set(shared_person) and not set(a_person) & set(b_person)
    assert not set(a_household) & set(shared_household) and not set(a_household) & set(b_household)
    # and exactly the project's HMAC of the shared key, so a project's keys join across its own tables
    project_key = hmac.new(load_key(s), b"project\x1fPRJ-A", hashlib.sha256).digest()
    assert sorted(Pseudonymiser(project_key).token("person", k) for k in shared_person) == a_person
    assert [Pseudonymiser(project_key).token("household", k) for k in shared_household] == a_household
    # the same project twice: the same keys (its outputs stay joinable over time)
    assert _keys(s, feeds, projects, "PRJ-A") == (a_person, a_household)
    assert (role_dir(s) / "analyst_person__PRJ-A.duckdb").exists()
