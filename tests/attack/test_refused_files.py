"""A drop refused whole for its content (UTF-16, binary, a ZIP) is accounted for like a file the landing rule
rejects: status `rejected` in ops.load_log and a whole-file row in ops.quarantine, with a reason naming what the
file is and never a value from it; the month still fails (fail-fast), and a fixed drop replaces the record."""

from __future__ import annotations

import io
import zipfile

import duckdb
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.defs.resources import settings_resource
from orchestration.lib.config import get_settings
from orchestration.lib.landing import REJECTED
from tests.feeds.conftest import CONTRACTS, VISITS_HEADER, VISITS_ROWS, write_visits

MARK = "Zebedee-Quarrington-7731"


def _q(home, sql):
    with duckdb.connect(str(home / "identifiable.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _ingest(home, month):
    return CliRunner().invoke(app, ["ingest", "--partner", "acme", "--feed", "visits", "--month", month,
                                    "--home", str(home), "--feeds-dir", str(CONTRACTS)])


def test_a_file_refused_for_its_encoding_is_recorded_not_dropped(acme_home):
    rows = [*VISITS_ROWS[:-1], VISITS_ROWS[-1].replace("Wright", MARK)]
    assert MARK in rows[-1]
    text = "\r\n".join([VISITS_HEADER, *rows]) + "\r\n"
    write_visits(acme_home, "2025-03-04.csv")                                  # a good drop of the same month
    folder = acme_home / "landing" / "acme" / "visits"
    (folder / "2025-03-11.csv").write_bytes(text.encode("utf-16"))            # UTF-16 with a byte-order mark
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("visits.csv", text)
    (folder / "2025-03-18.csv").write_bytes(buf.getvalue())                    # a zipped export named .csv
    for _ in range(2):  # a rerun replaces the records, it does not add to them
        result = _ingest(acme_home, "2025-03")
        assert result.exit_code != 0 and "UTF-16" in " ".join(result.output.split())
    log = _q(acme_home, "SELECT source_file, \"partition\", sha256 IS NOT NULL, note FROM ops.load_log "
                        f"WHERE status = '{REJECTED}' ORDER BY source_file")
    assert [(f.rsplit("/", 1)[1], str(p)) for f, p, _, _ in log] == [("2025-03-11.csv", "2025-03-01"),
                                                                      ("2025-03-18.csv", "2025-03-01")]
    assert all(hashed for _, _, hashed, _ in log)
    assert "UTF-16" in log[0][3] and "ZIP" in log[1][3] and "fix:" in log[0][3]
    quarantine = _q(acme_home, "SELECT source_file, line, raw_text, reason FROM ops.quarantine ORDER BY 1")
    assert [(f.rsplit("/", 1)[1], line, raw) for f, line, raw, _ in quarantine] == [
        ("2025-03-11.csv", None, None), ("2025-03-18.csv", None, None)]
    assert all(reason.startswith("refused_file: this file is") for *_, reason in quarantine)
    assert MARK not in repr(log) + repr(quarantine) + result.output
    assert not _q(acme_home, "SELECT * FROM information_schema.tables WHERE table_name = 'acme__visits'")

    # the partner re-sends the file as agreed: the month loads and the refusal is no longer on record
    write_visits(acme_home, "2025-03-11.csv", rows=rows)
    (folder / "2025-03-18.csv").unlink()
    result = _ingest(acme_home, "2025-03")
    assert result.exit_code == 0, result.output
    assert _q(acme_home, f"SELECT count(*) FROM ops.load_log WHERE status = '{REJECTED}'") == [(0,)]
    assert _q(acme_home, "SELECT count(*) FROM ops.quarantine WHERE line IS NULL") == [(0,)]


def test_the_dagster_raw_asset_records_the_refused_file_too(acme_home, tmp_path, monkeypatch):
    """The same mechanism under Dagster (an in-process run of the raw asset): the month fails, the file is on
    record, and the planted value is in no Dagster event."""
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from orchestration.defs.feeds.assets import build_feed_assets
    from orchestration.lib.contracts import load_contracts

    monkeypatch.setenv("PLACELINK_HOME", str(acme_home))
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "cd" * 32)
    rows = [*VISITS_ROWS[:-1], VISITS_ROWS[-1].replace("Wright", MARK)]
    folder = acme_home / "landing" / "acme" / "visits"
    folder.mkdir(parents=True)
    (folder / "2025-03-11.csv").write_bytes(("\r\n".join([VISITS_HEADER, *rows]) + "\r\n").encode("utf-16"))
    raw = [a for a in build_feed_assets(load_contracts(CONTRACTS)) if a.key == dg.AssetKey(["raw", "acme__visits"])]
    resources = {"identifiable_db": DuckDBResource(database=str(acme_home / "identifiable.duckdb")),
                 "warehouse_db": DuckDBResource(database=str(acme_home / "warehouse.duckdb")),
                 "placelink_settings": settings_resource(get_settings(home=acme_home))}
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.materialize(raw, partition_key="2025-03-01", resources=resources, instance=instance,
                                raise_on_error=False)
        events = "\n".join(str(r) for r in instance.all_logs(result.run_id))
    assert not result.success and "UTF-16" in events and MARK not in events
    assert _q(acme_home, "SELECT source_file, strftime(\"partition\", '%Y-%m'), split_part(note, ':', 1) "
                         f"FROM ops.load_log WHERE status = '{REJECTED}'") == [
        ("landing/acme/visits/2025-03-11.csv", "2025-03", "refused_file")]
