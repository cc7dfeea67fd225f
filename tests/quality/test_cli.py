"""``placelink quality`` prints a summary, writes the scorecard on request, opens nothing, and exits 1 when a
structural expectation fails."""

from typer.testing import CliRunner

from orchestration.cli import app


def test_quality_command_summarises_and_builds_docs(ae_db, tmp_path):
    ae_db.close()  # the command opens the zone read-only itself
    result = CliRunner().invoke(app, ["quality", "--home", str(tmp_path), "--scorecard"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "nhs__ae_attendances" in result.output and "ok" in result.output
    assert "feed scorecard" in result.output
    assert f"file://{tmp_path}/quality/docs/index.html" in result.output
    assert (tmp_path / "quality" / "docs" / "index.html").exists()
    assert (tmp_path / "warehouse.duckdb").exists()
    # the scorecard is the nightly refresh's asset, built by a run on this home's instance (the UI shows it)
    import dagster as dg

    from orchestration.lib.config import get_settings
    from orchestration.runner import instance_for

    instance = instance_for(get_settings(home=tmp_path))
    try:
        event = instance.get_latest_materialization_event(dg.AssetKey(["quality", "feed_scorecard"]))
    finally:
        instance.dispose()
    assert event is not None and f"run {event.run_id}" in result.output


def test_quality_command_exits_1_on_a_broken_structure(ae_db, tmp_path):
    ae_db.execute("ALTER TABLE raw.nhs__ae_attendances DROP COLUMN arrival_datetime")
    ae_db.close()
    result = CliRunner().invoke(app, ["quality", "--home", str(tmp_path), "--partner", "nhs"], terminal_width=200)
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "arrival_datetime" in result.output
