"""The audit trail is append-only in the platform and any tampering with the file is detected."""

from __future__ import annotations

import json
import multiprocessing
import os
import pwd

import duckdb
import pytest

from orchestration.lib.config import get_settings
from orchestration.lib.governance import audit
from orchestration.lib.governance.audit import read_events, record_event, verify


@pytest.fixture
def settings(tmp_path):
    s = get_settings(home=tmp_path / "home")
    for i in range(5):
        record_event(s, action="ingest", target=f"raw.police__street_crimes/{i}", purpose="place_indicators",
                     agreement_id="DSA-POL-2024-01", details={"rows_loaded": 100 + i})
    return s


def test_events_record_who_role_what_when_why(settings, monkeypatch):
    # PLACELINK_USER is a display hint: recorded beside the real OS account, never instead of it
    monkeypatch.setenv("PLACELINK_USER", "jo.analyst@county.example")
    row = record_event(settings, action="read", target="marts.person_footprint", purpose="risk_modelling",
                       agreement_id="DSA-CC-2024-01", role="analyst", details={"rows": 3})
    events = read_events(settings)
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    last = events[-1]
    assert last["who"] == pwd.getpwuid(os.getuid()).pw_name and last["role"] == "analyst"
    assert last["action"] == "read" and last["purpose"] == "risk_modelling"
    assert last["agreement_id"] == "DSA-CC-2024-01"
    assert last["details"] == {"rows": 3, "claimed_user": "jo.analyst@county.example"}
    assert last["occurred_at"].endswith("Z") and last["hash"] == row["hash"]
    assert last["prev_hash"] == events[-2]["hash"]
    assert [e["seq"] for e in read_events(settings, action="read")] == [6]
    assert len(read_events(settings, target_contains="street_crimes", limit=2)) == 2


def test_intact_log_verifies(settings):
    result = verify(settings)
    assert result.ok, result.problems
    assert result.rows == 5 and result.head_hash == read_events(settings)[-1]["hash"]


def test_platform_exposes_no_update_or_delete():
    public = [n for n in dir(audit) if not n.startswith("_")]
    assert not [n for n in public if any(w in n.lower() for w in ("update", "delete", "remove", "truncate"))]


def _raw(settings, sql):
    con = duckdb.connect(str(settings.audit_db))
    con.execute(sql)
    con.close()


def test_updating_a_row_is_detected(settings):
    _raw(settings, "UPDATE audit_log SET details = '{\"rows_loaded\":1}' WHERE seq = 3")
    result = verify(settings)
    assert not result.ok
    assert any("seq=3" in p and "modified" in p for p in result.problems), result.problems


def test_rewriting_a_row_and_its_hash_is_detected_by_the_next_row(settings):
    rows = read_events(settings)
    row = {k: rows[2][k] for k in audit.FIELDS}
    row["who"] = "someone-else"
    row["details"] = audit.canonical_json(rows[2]["details"])
    _raw(settings, f"UPDATE audit_log SET who = 'someone-else', hash = '{audit.row_hash(row)}' WHERE seq = 3")
    result = verify(settings)
    assert not result.ok
    assert any("seq=4" in p and "prev_hash" in p for p in result.problems), result.problems


def test_deleting_a_middle_row_is_detected(settings):
    _raw(settings, "DELETE FROM audit_log WHERE seq = 2")
    result = verify(settings)
    assert not result.ok and any("seq=3" in p for p in result.problems), result.problems


def test_inserting_a_row_in_the_middle_is_detected(settings):
    _raw(settings, "UPDATE audit_log SET seq = seq + 10 WHERE seq >= 3")
    _raw(settings, "UPDATE audit_log SET seq = seq - 9 WHERE seq >= 13")
    rows = read_events(settings)
    forged = {k: rows[1][k] for k in audit.FIELDS}
    forged.update(seq=3, action="export", prev_hash=rows[1]["hash"],
                  details=audit.canonical_json({"forged": True}))
    forged["hash"] = audit.row_hash(forged)
    con = duckdb.connect(str(settings.audit_db))
    con.execute(f"INSERT INTO audit_log VALUES ({', '.join('?' * 11)})", [forged[k] for k in (*audit.FIELDS, "hash")])
    con.close()
    result = verify(settings)
    assert not result.ok and any("seq=4" in p and "prev_hash" in p for p in result.problems), result.problems


def test_truncating_the_end_is_detected_by_the_head_anchor(settings):
    _raw(settings, "DELETE FROM audit_log WHERE seq = 5")
    result = verify(settings)
    assert not result.ok
    assert any("head anchor says seq 5" in p for p in result.problems), result.problems
    head = json.loads((settings.governance_dir / "audit_head.json").read_text())
    assert head["seq"] == 5


def _append_many(home: str, n: int) -> None:
    s = get_settings(home=home)
    for i in range(n):
        record_event(s, action="read", target=f"t{i}")


def test_concurrent_appends_from_processes_keep_one_chain(tmp_path):
    home = str(tmp_path / "home")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(home, 6)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = get_settings(home=home)
    result = verify(s)
    assert result.ok and result.rows == 18, result.problems


def test_batch_append_continues_the_chain(settings):
    from orchestration.lib.governance.audit import record_events

    rows = record_events(settings, [{"action": "ingest", "target": f"raw.p__f/{m}"} for m in range(50)])
    assert [r["seq"] for r in rows] == list(range(6, 56))
    assert record_events(settings, []) == []
    result = verify(settings)
    assert result.ok and result.rows == 55 and result.head_hash == rows[-1]["hash"]


def test_a_log_from_before_the_start_marker_gets_one_naming_its_first_row(settings):
    marker = settings.governance_dir / "audit_started.json"
    first = read_events(settings)[0]
    assert json.loads(marker.read_text())["first_hash"] == first["hash"]
    marker.unlink()                                    # a home whose log was written before the marker existed
    record_event(settings, action="read", target="t")
    assert json.loads(marker.read_text()) == {"first_seq": 1, "first_hash": first["hash"],
                                              "started_at": first["occurred_at"]}
    assert verify(settings).ok
