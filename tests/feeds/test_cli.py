"""``placelink ingest`` and ``placelink pseudonymise`` run the same code outside Dagster."""

from __future__ import annotations

import duckdb
from typer.testing import CliRunner

from orchestration.cli import app
from tests.feeds.conftest import CONTRACTS, VISITS_HEADER, write_attendances, write_visits


def test_cli_ingest_then_pseudonymise(acme_home, monkeypatch):
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "ef" * 32)
    write_visits(acme_home)
    write_attendances(acme_home)
    common = ["--home", str(acme_home), "--feeds-dir", str(CONTRACTS)]
    result = CliRunner().invoke(app, ["ingest", "--partner", "acme", "--month", "2025-03", *common])
    assert result.exit_code == 0, result.output
    assert "received 9, loaded 5, quarantined 4" in result.output
    result = CliRunner().invoke(app, ["pseudonymise", *common])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(acme_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM src.acme__attendances").fetchall() == [(2,)]


def test_cli_ingest_reports_a_schema_change_and_exits_non_zero(acme_home):
    write_visits(acme_home, header=VISITS_HEADER.replace("DOB", "Date of Birth"))
    write_attendances(acme_home)
    result = CliRunner().invoke(app, ["ingest", "--home", str(acme_home), "--feeds-dir", str(CONTRACTS)])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and "acme.visits 2025-03" in str(result.exception)
    with duckdb.connect(str(acme_home / "identifiable.duckdb"), read_only=True) as con:  # the others loaded
        assert con.execute("SELECT count(*) FROM raw.acme__attendances").fetchall() == [(2,)]


def test_cli_month_must_be_a_month(acme_home):
    result = CliRunner().invoke(app, ["ingest", "--home", str(acme_home), "--feeds-dir", str(CONTRACTS),
                                      "--month", "March"])
    assert result.exit_code != 0 and "is not YYYY-MM" in str(result.exception)
