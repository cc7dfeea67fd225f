"""``placelink ingest`` and ``placelink pseudonymise`` are runs of the code location's assets on the home's Dagster
instance (issue #24): the figures they print, the instance's runs and asset status, the landing sensor and the audit
agree on what was done."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import duckdb
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.defs.feeds import build_feed_definitions
from orchestration.defs.resources import shared_resources
from orchestration.lib.config import get_settings
from orchestration.lib.contracts import load_contracts
from orchestration.lib.governance.audit import read_events
from orchestration.runner import instance_for
from tests.feeds.conftest import CONTRACTS, VISITS_HEADER, write_attendances, write_visits
from tests.support import daemon_ticks

MARCH = "2025-03-01"


def test_cli_ingest_then_pseudonymise(acme_home, monkeypatch):
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "ef" * 32)
    write_visits(acme_home)
    write_attendances(acme_home)
    common = ["--home", str(acme_home), "--feeds-dir", str(CONTRACTS)]
    result = CliRunner().invoke(app, ["ingest", "--partner", "acme", "--month", "2025-03", *common])
    assert result.exit_code == 0, result.output
    assert "received 9, loaded 5, quarantined 4" in result.output
    assert "(bad_encoding 1, invalid_date 1, national_data_opt_out 1, wrong_column_count 1)" in result.output

    settings = get_settings(home=acme_home)
    # referrals has no March drop: nothing to load, said so, and not marked loaded (an empty month is not done)
    assert "no drop for 2025-03 in landing/ for: acme.referrals" in result.output
    raw = [dg.AssetKey(["raw", f"acme__{f}"]) for f in ("attendances", "visits")]
    with instance_for(settings) as instance:
        (run,) = instance.get_runs()
        assert (run.job_name, run.status) == ("all_feeds_ingest_job", dg.DagsterRunStatus.SUCCESS)
        assert run.run_id in result.output and run.tags["dagster/partition"] == MARCH
        for key in raw:  # asset status: each feed's March is materialised by the command's run
            event = instance.get_latest_materialization_event(key)
            assert (event.run_id, event.dagster_event.partition) == (run.run_id, MARCH)
        assert instance.get_latest_materialization_event(dg.AssetKey(["raw", "acme__referrals"])) is None
        visits = instance.get_latest_materialization_event(raw[1]).asset_materialization.metadata
        assert (visits["rows_received"].value, visits["rows_loaded"].value) == (7, 3)

        # audit: one event per feed month, the run's, under the feed's agreement; none from a second path
        ingests = read_events(settings, action="ingest")
        assert Counter((e["target"], e["details"]["partition"], e["details"]["run_id"]) for e in ingests) == {
            (".".join(k.path), MARCH, run.run_id): 1 for k in raw}
        assert {e["agreement_id"] for e in ingests if e["target"] == "raw.acme__visits"} == {"DSA-ACME-2024-01"}

        # the landing sensor (what the daemon would run now) sees the drops loaded: no run for them
        monkeypatch.setenv("PLACELINK_HOME", str(acme_home))
        feed_defs = dg.Definitions.merge(build_feed_definitions(load_contracts(CONTRACTS)),
                                         dg.Definitions(resources=shared_resources(settings)))
        sensor = next(s for s in feed_defs.sensors if s.name == "landing_drop_sensor")
        tick = daemon_ticks.tick(sensor, feed_defs, instance)
        assert tick.run_requests == []
        write_visits(acme_home, name="2025-03-20.csv", rows=["V9;09/03/2025;A;B;01/01/2001;F;SH1 2AB;;;1"])
        later = daemon_ticks.tick(sensor, feed_defs, instance, cursor=tick.cursor)
        assert [r.run_key.split(":")[0] for r in later.run_requests] == ["landing/acme/visits/2025-03-20.csv"]

    result = CliRunner().invoke(app, ["pseudonymise", *common])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(acme_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM src.acme__attendances").fetchall() == [(2,)]
    assert "src.acme__attendances" in result.output and " 2\n" in result.output
    with instance_for(settings) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["src", "acme__attendances"]))
        assert event.run_id in result.output
        assert instance.get_run_by_id(event.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert [e["target"] for e in read_events(settings, action="pseudonymise")
            if e["details"].get("run_id") == event.run_id] == ["src.acme__attendances", "src.acme__visits"]


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
