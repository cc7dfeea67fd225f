"""Hostile drops through ``placelink ingest`` now that the command is a Dagster run (issue #24): the command's error
names the feed, the month and the file, quotes no value of the file, and the instance holds the same story (a
failed run, the feed's month not materialised, so the sensor and the nightly still see it pending)."""

from __future__ import annotations

import dagster as dg
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.lib.config import get_settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance.audit import read_events
from orchestration.runner import instance_for
from tests.feeds.conftest import CONTRACTS, VISITS_HEADER, write_attendances, write_visits

#: values of the hostile drop that must never leave the identifiable zone (a person's name, NHS number, notes)
PERSONAL = ["Zoë", "O'Brien", "943 476 5919", "9434765919", "SECRET-NOTE", "Optout"]


def test_a_drop_whose_header_carries_personal_data_fails_its_run_and_names_the_file_only(acme_home):
    # a partner pasted a record into the header row: the Surname column is now a person's name and NHS number
    write_visits(acme_home, header=VISITS_HEADER.replace("Surname", "Zoë O'Brien 943 476 5919"))
    write_attendances(acme_home)
    result = CliRunner().invoke(app, ["ingest", "--home", str(acme_home), "--feeds-dir", str(CONTRACTS)])

    assert result.exit_code != 0 and isinstance(result.exception, PlacelinkError)
    first = str(result.exception).splitlines()[0]
    assert first.startswith("1 feed load(s) failed; nothing was loaded for them: acme.visits 2025-03")
    assert "landing/acme/visits/2025-03-04.csv" in first  # the step's own reason: which file
    shown = result.output + str(result.exception)
    assert not [p for p in PERSONAL if p in shown], shown

    settings = get_settings(home=acme_home)
    with instance_for(settings) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.FAILURE and run.run_id in first
        failed = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
        assert [r.event_log_entry.step_key for r in failed] == ["raw__acme__visits"]
        # the bad feed's month is not materialised (still pending for the sensor and the nightly); the others are
        assert instance.get_latest_materialization_event(dg.AssetKey(["raw", "acme__visits"])) is None
        loaded = instance.get_latest_materialization_event(dg.AssetKey(["raw", "acme__attendances"]))
        assert loaded.run_id == run.run_id
        # nothing of the file reached the event log either (Dagster's own record of the failure)
        logged = " ".join(str(r.event_log_entry.message) + str(r.event_log_entry.dagster_event)
                          for r in instance.get_records_for_run(run.run_id).records)
        assert not [p for p in PERSONAL if p in logged]
    # audited once, by the run, for what it loaded; the failed feed has no ingest event
    ingests = [e for e in read_events(settings, action="ingest") if e["details"].get("run_id") == run.run_id]
    assert [e["target"] for e in ingests] == ["raw.acme__attendances"]
    assert {e["details"]["status"] for e in ingests} == {"failure"}
