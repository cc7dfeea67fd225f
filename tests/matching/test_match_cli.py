"""``placelink match`` is a run of the matching assets on the home's Dagster instance (issue #24): what it prints is
the run's materialisation metadata, the assets show the run, the audit has its events once."""

from __future__ import annotations

import dagster as dg
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.defs.matching.assets import ADDRESS_MATCHES, HOUSEHOLD_INDEX, PERSON_INDEX
from orchestration.lib.config import get_settings
from orchestration.lib.governance.audit import read_events
from orchestration.runner import instance_for
from tests.support.matching_county import make_county, write_home


def test_placelink_match_is_a_dagster_run_whose_figures_it_prints(tmp_path):
    home = tmp_path / "bound"  # not the environment's home (tests/conftest.py: tmp_path / "home")
    write_home(home, make_county(n_people=120, seed=5))
    out = CliRunner().invoke(app, ["match", "--home", str(home)])
    assert out.exit_code == 0, out.output

    settings = get_settings(home=home)
    with instance_for(settings) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.run_id in out.output
        person = instance.get_latest_materialization_event(PERSON_INDEX)
        assert person.run_id == run.run_id
        f1 = person.asset_materialization.metadata["person_f1"].value
        assert f1 >= 0.9
        printed = dict(line.split(None, 1) for line in out.output.splitlines() if line.strip())
        assert float(printed["person_f1"]) == f1 and printed["mode"] == "full"
        for key in (ADDRESS_MATCHES, HOUSEHOLD_INDEX):
            assert instance.get_latest_materialization_event(key).run_id == run.run_id
    events = [e for e in read_events(settings) if e["details"].get("run_id") == run.run_id]
    assert sorted(e["target"] for e in events) == ["link.address_matches", "link.household_index",
                                                   "link.person_index"]
