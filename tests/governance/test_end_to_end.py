"""Governance on the real dbt project: the session ``dbt_warehouse`` (every model built, files published).

Erasing a person removes their key from every table dbt built; analysts get the real place marts but not
the person-level ones; the real published files pass the independent output checks.
"""

from __future__ import annotations

import shutil

import duckdb
import pytest

from orchestration.lib.config import get_settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance.audit import read_events, verify
from orchestration.lib.governance.erasure import erase, excluded_person_keys
from orchestration.lib.governance.outputs import approve_export, check_outputs, release_status
from orchestration.lib.governance.roles import connect

pytestmark = pytest.mark.slow


@pytest.fixture
def home(dbt_warehouse, tmp_path):
    dst = tmp_path / "home"
    shutil.copytree(dbt_warehouse, dst)
    return get_settings(home=dst)


def _tables_holding(db, key) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for schema, table in con.execute("SELECT table_schema, table_name FROM information_schema.columns "
                                         "WHERE column_name = 'person_key'").fetchall():
            n = con.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE person_key = ?', [key]).fetchone()[0]
            if n:
                out[f"{schema}.{table}"] = n
        return out
    finally:
        con.close()


def test_erase_removes_a_person_from_every_dbt_table(home):
    con = duckdb.connect(str(home.warehouse_db), read_only=True)
    key = con.execute("SELECT person_key FROM intermediate.int_events_joined_to_places WHERE person_key IS NOT NULL "
                      "GROUP BY 1 ORDER BY count(DISTINCT partner) DESC, 1 LIMIT 1").fetchone()[0]
    con.close()
    before = _tables_holding(home.warehouse_db, key)
    assert any(t.startswith("src.") for t in before) and any(t.startswith("marts.") for t in before), before

    proof = erase(home, person_key=key, reason="objection (Art. 21)")

    assert _tables_holding(home.warehouse_db, key) == {}
    base = {d["table"] for d in proof.deleted}
    assert base and all(t.split(".")[0] in ("src", "intermediate", "marts", "ml", "published") for t in base)
    assert key in excluded_person_keys(home)
    assert read_events(home, action="erase")[-1]["details"]["proof_hash"] == proof.proof_hash
    assert verify(home).ok


def test_analyst_on_the_real_marts(home):
    with connect("analyst", home) as con:
        tables = con.tables()
        assert "warehouse.marts.lsoa_monthly_indicators" in tables
        assert not [t for t in tables if ".src." in t or ".staging." in t or "person_footprint" in t]
        assert len(con.query("SELECT * FROM marts.lsoa_monthly_indicators LIMIT 5")) == 5
        with pytest.raises(PlacelinkError):
            con.query("SELECT * FROM marts.person_footprint")


def test_real_published_files_pass_output_checks(home):
    from orchestration.lib.governance.audit import current_user
    from orchestration.lib.governance.outputs import sha256_file

    exports = {e["target"]: e for e in read_events(home, action="export")}   # written by dbt_runner.publish
    assert exports and all(exports[p.name]["details"]["sha256"] == sha256_file(p)
                           for p in home.published.glob("*.*"))
    with pytest.raises(PlacelinkError, match="four eyes"):
        approve_export(home, by=current_user())
    # a typed-in second pair of eyes is not one: the approver is the OS account running the command (a second,
    # authorised account approving through the CLI is tests/attack/test_disclosure.py)
    with pytest.raises(PlacelinkError, match="not a typed-in name"):
        approve_export(home, by="Olu Checker")
    checks = check_outputs(home)
    assert checks and all(c.ok for c in checks), [c.failures for c in checks if not c.ok]
    assert {r["status"] for r in release_status(home)} == {"not approved"}
