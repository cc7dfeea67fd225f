"""The governance commands work end to end from the CLI."""

from __future__ import annotations

from typer.testing import CliRunner

from orchestration.cli import app

from .conftest import TODAY


def run(*args):
    return CliRunner(env={"COLUMNS": "400"}).invoke(app, [str(a) for a in args])


def test_governance_commands(zone_home):
    s, feeds = zone_home["settings"], zone_home["feeds_dir"]
    home = ["--home", s.home]

    r = run("query", "--role", "analyst", "SELECT * FROM identifiable.raw.police__person_records", *home)
    assert r.exit_code != 0 and "analyst query refused" in str(r.exception)

    r = run("query", "--role", "analyst", "--format", "csv", "SELECT event_count FROM marts.lsoa_monthly_indicators",
            *home)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == ["event_count", "12"]

    r = run("erase", "--partner", "police", "--record-id", "PR-2", *home)
    assert r.exit_code == 0, r.output
    assert "proof sha256" in r.output and "raw.police__person_records" in r.output

    r = run("retention", "--dry-run", "--today", TODAY, "--feeds-dir", feeds, *home)
    assert r.exit_code == 0, r.output
    assert "expired (dry run)" in r.output

    r = run("agreements", "--format", "csv", "--feeds-dir", feeds)
    assert r.exit_code == 0 and "DSA-POL-TEST" in r.output

    r = run("audit", "--format", "json", "--action", "erase", *home)
    assert r.exit_code == 0 and '"action": "erase"' in r.output
    r = run("audit", *home)
    assert r.exit_code == 0 and "retention_dry_run" in r.output

    r = run("audit", "--verify", *home)
    assert r.exit_code == 0 and "audit log intact" in r.output

    r = run("approve-export", "--status", *home)
    assert r.exit_code == 0 and "person_extract.parquet" in r.output and "not approved" in r.output
    r = run("approve-export", "--by", "Olu Checker", *home)     # a typed-in name is not the approver
    assert r.exit_code != 0 and "not a typed-in name" in str(r.exception)
    r = run("approve-export", *home)       # the home's owner approves (no role file); person_extract has person_key
    assert r.exit_code != 0 and "person_key" in str(r.exception)


def test_data_commands_are_audited_with_argv(tmp_path):
    import subprocess
    import sys

    from orchestration.lib.config import get_settings
    from orchestration.lib.governance.audit import read_events

    home = tmp_path / "cli_home"
    # `publish` on an empty home fails fast, after the invocation has been recorded
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "publish", "--home", str(home)],
                          capture_output=True, text=True)
    events = read_events(get_settings(home=home))
    assert [e["action"] for e in events] == ["export"], proc.stderr
    assert events[0]["details"]["argv"] == ["publish", "--home", str(home)]
    assert events[0]["target"] == "placelink publish"
    # commands that touch no data are not audited
    assert run("where", "--home", home).exit_code == 0
    assert len(read_events(get_settings(home=home))) == 1
