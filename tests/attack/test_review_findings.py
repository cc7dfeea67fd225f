"""Findings of the review of the integration branch (c0357e8..e-review): each test fails on the defect it names.

Kept small (seconds each): they call the asset, sensor or function at fault directly, not a refresh.
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

# --- (4) settings / home confusion ------------------------------------------------------------------------------

def test_matching_asset_links_with_the_engine_and_home_of_its_settings_resource_not_the_environments(
        tmp_path, monkeypatch):
    """The runner no longer wraps a run in ``settings.active()``: assets must get everything from their
    ``placelink_settings`` resource. ``linkage.index.update_index`` still calls ``engine.splink_api(con)`` with no
    settings, so Splink's engine and (for Spark) its checkpoint / spill folders -- clear identifiers -- come from
    the process environment: another home's identifiable zone, or ``./.placelink`` when PLACELINK_HOME is unset
    (``PLACELINK_ENGINE=spark placelink refresh --home B``)."""
    from orchestration.defs.matching.assets import build_matching_asset
    from orchestration.defs.resources import settings_resource
    from orchestration.lib.config import get_settings
    from orchestration.lib.contracts import load_contracts
    from orchestration.lib.matching import engine
    from tests.support.matching_county import make_county, write_home

    home_b, home_a = tmp_path / "b", tmp_path / "a"
    write_home(home_b, make_county(n_people=40, seed=3))
    settings = get_settings(home=home_b, env="local", engine="duckdb")   # what the run was given
    monkeypatch.setenv("PLACELINK_HOME", str(home_a))                    # what the process happens to say
    monkeypatch.setenv("PLACELINK_ENGINE", "spark")
    used: list = []

    def spark_api(con, s):  # stands in for the JVM: records which home's zone it would write checkpoints into
        used.append(s.home)
        raise RuntimeError(f"Spark engine picked up from the environment, checkpoints under {s.home}")

    monkeypatch.setattr(engine, "_spark_api", spark_api)
    asset = build_matching_asset(load_contracts())
    result = dg.materialize([asset], raise_on_error=False, resources={
        "identifiable_db": DuckDBResource(database=str(settings.identifiable_db)),
        "placelink_settings": settings_resource(settings)})
    assert used == [], f"linkage of home {home_b} used the environment's engine and home {used}"
    assert result.success


# --- (3) audit gaps ---------------------------------------------------------------------------------------------

def _audited_run_ids(home) -> set[str]:
    from orchestration.lib.config import get_settings
    from orchestration.lib.governance.audit import read_events

    return {str((e.get("details") or {}).get("run_id")) for e in read_events(get_settings(home=home))}


def _sense(sensor, instance, run_id: str, status_event: dg.DagsterEventType) -> None:
    from orchestration.defs.resources import settings_resource

    run = instance.get_run_by_id(run_id)
    event = instance.get_records_for_run(run_id, of_type=status_event).records[0].event_log_entry.dagster_event
    sensor(dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_instance=instance, dagster_run=run,
                                              dagster_event=event,
                                              # as the daemon's code location binds it: from PLACELINK_HOME
                                              resources={"placelink_settings": settings_resource()}))


@pytest.fixture
def audit_home(tmp_path, monkeypatch):
    from orchestration.lib.config import get_settings

    home = tmp_path / "home"
    get_settings(home=home).ensure()
    monkeypatch.setenv("PLACELINK_HOME", str(home))  # what the daemon's code location reads
    return home


def test_a_run_someone_tagged_audited_by_runner_is_still_audited_when_the_runner_did_not_run_it(audit_home):
    """The sensor skips any run carrying ``placelink/audited_by_runner``, but a tag is what anyone who can launch a
    run sets: the UI launchpad's tag editor, "Open in Launchpad" of a runner's run (its tags are copied), a
    GraphQL client. Such a run is executed by the daemon, never by the runner, and so is audited by nobody.
    The skip should rest on what the audit log holds (events of that run id), not on a tag."""
    from orchestration.defs.governance import governance_audit_sensor
    AUDITED_BY_RUNNER_TAG = "placelink/audited_by_runner"  # the tag the sensor used to trust (removed)

    @dg.asset(key=["marts", "review_probe"])
    def probe():
        return 1

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([probe], instance=instance, tags={AUDITED_BY_RUNNER_TAG: "true"})  # launched, not run by the runner
    _sense(governance_audit_sensor, instance, result.run_id, dg.DagsterEventType.RUN_SUCCESS)
    assert result.run_id in _audited_run_ids(audit_home), "a materialising run left no audit event at all"


def test_a_failed_daemon_run_is_audited_for_what_it_materialised(audit_home):
    """The runner audits a failed run's materialisations (``runner._audit``: status ``failure``); a run the daemon
    executes (the 02:00 schedule's monthly load, a UI launch) is audited only by ``governance_audit_sensor``, which
    fires on SUCCESS only. A nightly load where one feed's drop is bad fails as a run after the other feeds were
    ingested: those ingests never reach the audit log (while the same night run by ``placelink refresh`` records
    them)."""
    from orchestration.defs.governance import defs as governance_defs

    @dg.asset(key=["marts", "review_ok"])
    def loaded():
        return 1

    @dg.asset(key=["marts", "review_bad"], deps=[loaded])
    def bad():
        raise ValueError("bad drop")

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([loaded, bad], instance=instance, raise_on_error=False)
    assert not result.success and result.get_asset_materialization_events()
    on_failure = [s for s in governance_defs.sensors if isinstance(s, dg.RunStatusSensorDefinition)
                  and s._run_status == dg.DagsterRunStatus.FAILURE]  # noqa: SLF001 - no public accessor
    for sensor in on_failure:
        _sense(sensor, instance, result.run_id, dg.DagsterEventType.RUN_FAILURE)
    assert result.run_id in _audited_run_ids(audit_home), (
        f"no audit sensor for failed runs (sensors on failure: {[s.name for s in on_failure]}): the run's "
        "materialisations are never audited")


# --- errors say what / where / fix ------------------------------------------------------------------------------

def test_a_failed_dbt_build_names_the_nodes_that_failed_on_its_first_line(tmp_path):
    """``placelink build`` and the refresh show each failed step's first description line. The dbt asset's used
    to be "dbt build failed: The dbt CLI process with command", naming neither model nor test; it now names the
    failed nodes from the build's run_results.json (names only, never a row or a value)."""
    import json

    from orchestration.lib import dbt_runner

    results = tmp_path / "run_results.json"
    results.write_text(json.dumps({"results": [
        {"unique_id": "model.placelink.lsoa_profile", "status": "success"},
        {"unique_id": "test.placelink.not_null_lsoa_profile_lsoa_code.1a2b", "status": "fail"},
        {"unique_id": "model.placelink.place_indicator_cells", "status": "error"},
        {"unique_id": "test.placelink.unique_x.9f", "status": "skipped"}]}))
    assert dbt_runner.failed_nodes(results) == ["test not_null_lsoa_profile_lsoa_code.1a2b",
                                                 "model place_indicator_cells"]
    assert dbt_runner.failed_nodes(tmp_path / "missing.json") == []
    # the asset puts them on the first line of its failure: a real failing build through placelink build and
    # Dagster is in tests/dbt/test_build_through_dagster.py


# --- (2) silently ignored input in the encoded ingest path -------------------------------------------------------

def test_a_drop_from_the_previous_partner_tool_is_not_loaded_silently_without_its_encodings(tmp_path, capsys):
    """The encoded record changed (postcode_area gone; nhs_digits, national_id, addr_key, family_parts, addr_words,
    addr_numbers added) but the scheme is still ``placelink-clk/1``, and ``verify_drop`` checks the drop's columns
    only against its own manifest. A partner still running the previous ``placelink-partner`` sends a drop that is
    verified and loaded: ``postcode_area`` is dropped without a word and every new encoding is NULL, so those
    people are linked on less than the model compares -- and nothing (load log, quarantine, metadata) says so."""
    import datetime as dt
    import hashlib
    import json
    import shutil
    from pathlib import Path

    import duckdb
    import pandas as pd

    from orchestration.lib.contracts import load_contract
    from orchestration.lib.feeds import ingest_partition
    from tests.partner.conftest import make_partner_dir
    from tests.partner.test_partner import _encode

    partner_dir = make_partner_dir(tmp_path)
    rc, drop_dir = _encode(partner_dir)
    assert rc == 0, capsys.readouterr().err
    feed = next(f for f in load_contract(partner_dir / "police.yml").feeds if f.id == "person_records")
    folder = partner_dir / "landing" / "police" / "person_records"
    folder.mkdir(parents=True)
    # the previous tool's drop: same scheme, same key check, same contract, its own (older) encoded columns
    df = pd.read_csv(drop_dir / "2025-02-01.csv", dtype=str)
    new = ["nhs_digits", "national_id", "addr_key", "family_parts", "addr_words", "addr_numbers"]
    df = df.drop(columns=[c for c in new if c in df.columns]).assign(postcode_area="0" * 32)
    drop = folder / "2025-02-01.csv"
    df.to_csv(drop, index=False)
    manifest = json.loads((drop_dir / "2025-02-01.manifest.json").read_text())
    manifest.update(sha256=hashlib.sha256(drop.read_bytes()).hexdigest(), columns=list(df.columns))
    (folder / "2025-02-01.manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(drop_dir)
    with duckdb.connect() as con:
        result = ingest_partition(con, feed, "2025-02-01", Path(partner_dir / "landing"), today=dt.date(2025, 3, 1))
        [f] = result.files
    said = f"{f.note} {result.quarantined_by_reason}"
    assert f.rows_loaded == 0 or any(c in said for c in [*new, "postcode_area", "columns"]), (
        f"a drop without {new} (and with an unknown postcode_area) loaded {f.rows_loaded} rows, saying {said!r}")


# --- (5) what tests/attack/test_erasure.py no longer proves --------------------------------------------------------

def test_a_changed_opt_out_list_alone_plans_a_full_downstream_rebuild_with_no_new_drop(tmp_path):
    """``test_erasure.py::test_an_opt_out_added_on_the_day_of_a_new_drop_applies_on_that_nightly`` shares its night with a new
    month's drop (``next_night``), so the refresh it checks is no longer plain: the new month plans the downstream
    run by itself, and a planner that ignored a changed erasure / opt-out list whenever nothing new landed would pass
    it. This pins the no-new-drop path the old test covered: the fingerprint alone plans the rebuild, from scratch.
    (Passes today; it is the coverage the merge of the two nights dropped.)"""
    from orchestration.defs.ops.planning import plan_refresh
    from orchestration.lib.governance.erasure import EXCLUSIONS_METADATA, EXCLUSIONS_TAG

    @dg.asset(key=["link", "person_index"], tags={EXCLUSIONS_TAG: "true"})
    def applies():
        return dg.MaterializeResult(metadata={EXCLUSIONS_METADATA: dg.MetadataValue.text("lists-of-last-night")})

    @dg.asset(key=["marts", "person_footprint"], deps=[applies])
    def mart():
        return None

    defs = dg.Definitions(assets=[applies, mart])
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([applies, mart], instance=instance).success
    graph = defs.resolve_asset_graph()
    assert plan_refresh(graph, instance, None, exclusions="lists-of-last-night").downstream == []
    plan = plan_refresh(graph, instance, None, exclusions="an-opt-out-added-today")
    assert plan.exclusions_changed and not plan.months
    assert {k.to_user_string() for k in plan.downstream} == {"link/person_index", "marts/person_footprint"}
