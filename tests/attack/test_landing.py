"""Hostile and careless landing folders: which files are drops, and an account of every file that is not.

One landing rule (``orchestration.lib.landing``) decides for ingest, the landing sensor and the nightly planner.
Every case is built at test time in a fresh home: odd names (``march.csv``, ``2025-03-32.csv``, ``20250310.csv``,
``.csv.bak``, temporary files), a ``_v2`` drop, symbolic links to a secret file outside the home and to a folder,
a FIFO, files outside any feed folder. Each is run through ``placelink ingest`` (CLI) and through Dagster (the raw
asset, the landing sensor, the planner), and the planted secret must appear nowhere.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import string
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.defs.resources import settings_resource
from orchestration.lib.config import get_settings
from orchestration.lib.contracts import load_contracts
from orchestration.lib.feeds import feed_drops
from orchestration.lib.landing import classify_name, scan_feed, scan_landing
from orchestration.lib.ops.drops import list_drops
from tests.feeds.conftest import CONTRACTS, VISITS_HEADER, write_visits
from tests.support import daemon_ticks

MARKER = "PLANTED-SECRET-7f3a9c"
TODAY = dt.date(2026, 12, 3)


# --- the rule, name by name ------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "code", "fix_has"), [
    ("march.csv", "landing_name", "rename it to the day it was sent"),
    ("2026-12-32.csv", "landing_name", "real day"),
    ("20261210.csv", "landing_name", "rename it to 2026-12-10.csv"),
    ("2026-12-05.csv.bak", "landing_extension", "rename it to 2026-12-05.csv"),
    ("2026-12-05.xlsx", "landing_extension", "2026-12-05.csv"),
    ("2026-12-10 (1).csv", "landing_name", "2026-12-10_v2.csv"),
    ("2026-12-10", "landing_name", "2026-12-10.csv"),
    ("1900-01-01.csv", "landing_date_out_of_range", "really sent"),
    ("2031-01-01.csv", "landing_date_out_of_range", "really sent"),
    (".2026-12-10.csv", "landing_temporary", "2026-12-10.csv"),
    (".~lock.2026-12-10.csv#", "landing_temporary", "delete it"),
    ("~$2026-12-10.xlsx", "landing_temporary", "delete it"),
    ("2026-12-10.csv.part", "landing_temporary", "2026-12-10.csv"),
    ("2026-12-10.csv~", "landing_temporary", "2026-12-10.csv"),
    ("２０２６-12-10.csv", "landing_name", "rename"),  # full-width digits are not ISO digits
])
def test_an_odd_name_is_rejected_with_a_reason_naming_the_rule_and_a_fix(name, code, fix_has):
    day, reason, fix = classify_name(name, "csv", today=TODAY)
    assert day is None
    assert reason.split(":", 1)[0] == code
    assert "<YYYY-MM-DD>[_<suffix>].csv" in reason
    assert fix_has in fix


@pytest.mark.parametrize(("name", "day"), [
    ("2026-11-10.csv", dt.date(2026, 11, 10)),
    ("2026-11-10_v2.csv", dt.date(2026, 11, 10)),
    ("2026-11-10_part-2.CSV", dt.date(2026, 11, 10)),
    ("2026-12-04.csv", dt.date(2026, 12, 4)),   # tomorrow: a partner's clock may be a day ahead
    ("2024-01-01.csv", dt.date(2024, 1, 1)),    # the first partition
])
def test_a_drop_name(name, day):
    assert classify_name(name, "csv", today=TODAY) == (day, None, None)


# --- a hostile landing folder ----------------------------------------------------------------------

def _secret(tmp_path: Path) -> Path:
    """A passwd-like file outside the home whose first line would pass for a header."""
    secret = tmp_path / "outside" / "passwd"
    secret.parent.mkdir()
    secret.write_text(f"root;x;0;0;{MARKER};/root;/bin/bash\nuser;x;1;1;{MARKER}-2;/home;/bin/sh\n")
    return secret


def _hostile_landing(home: Path, tmp_path: Path) -> dict[str, str]:
    """The acme visits feed with one good drop, a second drop that day, and every odd entry; returns
    ``landing-relative path -> expected reason code`` of the entries that must be rejected."""
    write_visits(home)                                                       # 2025-03-04.csv: 7 rows
    # dated on its drop day: a visit after the day the file was sent is quarantined as implausible (plausibility)
    write_visits(home, "2025-03-04_v2.csv", rows=["V7;04/03/2025;Al;Bee;01/01/1990;M;SH1 2AB;;;1"])
    folder = home / "landing" / "acme" / "visits"
    bak_rows = ["B1;08/03/2025;Bak;Up;01/01/1990;M;SH1 2AB;;;1"]
    for name in ("march.csv", "2025-03-32.csv", "20250310.csv", "2025-03-05.csv.bak", ".2025-03-06.csv.part"):
        write_visits(home, name, rows=bak_rows)
    secret = _secret(tmp_path)
    (folder / "2025-03-06.csv").symlink_to(secret)                          # a link dressed as a drop
    inside = home / "reference" / "nhs_opt_outs.csv"
    (folder / "2025-03-07.csv").symlink_to(inside)                          # a link inside the home
    (folder / "2025-03-08").symlink_to(secret.parent, target_is_directory=True)  # a linked folder
    (folder / "2025-03-09_sub").mkdir()                                      # a real folder
    (folder / "2025-03-09_sub" / "2025-03-09.csv").write_text(VISITS_HEADER + "\n")
    os.mkfifo(folder / "2025-03-10.csv")                                     # would block a reader
    (home / "landing" / "stray.csv").write_text("x\n")
    (home / "landing" / "acme" / "2025-03-11.csv").write_text("x\n")
    (home / "landing" / "acme" / "unknown_feed").mkdir()
    (home / "landing" / "acme" / "unknown_feed" / "2025-03-12.csv").write_text("x\n")
    (home / "landing" / "zzz").symlink_to(secret.parent, target_is_directory=True)  # a linked partner folder
    return {
        "acme/visits/march.csv": "landing_name",
        "acme/visits/2025-03-32.csv": "landing_name",
        "acme/visits/20250310.csv": "landing_name",
        "acme/visits/2025-03-05.csv.bak": "landing_extension",
        "acme/visits/.2025-03-06.csv.part": "landing_temporary",
        "acme/visits/2025-03-06.csv": "landing_symlink",
        "acme/visits/2025-03-07.csv": "landing_symlink",
        "acme/visits/2025-03-08": "landing_symlink",
        "acme/visits/2025-03-09_sub": "landing_not_a_file",
        "acme/visits/2025-03-10.csv": "landing_not_a_file",
        "stray.csv": "landing_outside_feed",
        "acme/2025-03-11.csv": "landing_outside_feed",
        "acme/unknown_feed/2025-03-12.csv": "landing_outside_feed",
        "zzz": "landing_symlink",
    }


def _text_everywhere(home: Path, skip: Path) -> str:
    """Every string value of every table of every DuckDB file of the home, and every other file's bytes."""
    chunks = []
    for path in home.rglob("*"):
        if path.is_symlink() or not path.is_file() or path.is_relative_to(skip) or path.suffix == ".wal":
            continue
        if path.suffix == ".duckdb":
            with duckdb.connect(str(path), read_only=True) as con:
                for schema, table in con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall():
                    chunks.append(str(con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()))
        else:
            chunks.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


def _acme_feed(feed: str = "visits"):
    return load_contracts(CONTRACTS).feed("acme", feed)


def test_placelink_ingest_accounts_for_every_odd_file_and_never_reads_a_link(acme_home, tmp_path):
    expected = _hostile_landing(acme_home, tmp_path)
    runner = CliRunner()
    args = ["ingest", "--home", str(acme_home), "--feeds-dir", str(CONTRACTS)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = result.output
    # the two drops of March are loaded (7 + 1 rows); nothing else is read
    assert "received 8, loaded 4, quarantined 4" in out
    assert f"{len(expected)} file(s) in landing/ rejected" in out
    for rel, code in expected.items():
        assert f"landing/{rel}: {code}:" in out
    assert "rename it to 2025-03-10.csv" in out  # 20250310.csv: the exact rename
    with duckdb.connect(str(acme_home / "identifiable.duckdb"), read_only=True) as con:
        log = con.execute("SELECT source_file, split_part(note, ':', 1), \"partition\", sha256 FROM ops.load_log "
                          "WHERE status = 'rejected' ORDER BY 1").fetchall()
        assert {r[0]: r[1] for r in log} == {f"landing/{k}": v for k, v in expected.items()}
        assert {(r[2], r[3]) for r in log} == {(None, None)}  # no partition; never opened, so no hash
        whole = con.execute('SELECT source_file, reason FROM ops.quarantine WHERE line IS NULL').fetchall()
        assert {r[0] for r in whole} == {f"landing/{k}" for k in expected}
        assert all("<YYYY-MM-DD>[_<suffix>]" in r[1] for r in whole)
        files = con.execute("SELECT DISTINCT _source_file FROM raw.acme__visits ORDER BY 1").fetchall()
        assert files == [("landing/acme/visits/2025-03-04.csv",), ("landing/acme/visits/2025-03-04_v2.csv",)]
        assert con.execute("SELECT count(*) FROM raw.acme__visits WHERE visit_ref = 'B1'").fetchone() == (0,)
    # the planted secret is nowhere: not in the output, the tables, the audit log or any other file
    assert MARKER not in out
    assert MARKER not in _text_everywhere(acme_home, skip=acme_home / "landing")

    # reported on every run until fixed; fixing a name makes it a drop and its record goes
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "landing/acme/visits/march.csv: landing_name:" in again.output
    (acme_home / "landing" / "acme" / "visits" / "march.csv").rename(
        acme_home / "landing" / "acme" / "visits" / "2025-03-20.csv")
    fixed = runner.invoke(app, args)
    assert fixed.exit_code == 0 and "march.csv" not in fixed.output
    with duckdb.connect(str(acme_home / "identifiable.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ops.load_log WHERE status='rejected'").fetchone() == (
            len(expected) - 1,)
        assert con.execute("SELECT count(*) FROM raw.acme__visits WHERE visit_ref = 'B1'").fetchone() == (1,)


def test_a_link_dressed_as_a_drop_is_never_followed_even_alone(acme_home, tmp_path):
    """The case that leaked ``/etc/passwd``'s first line: the only drop of the month is a link."""
    folder = acme_home / "landing" / "acme" / "visits"
    folder.mkdir(parents=True)
    (folder / "2025-03-04.csv").symlink_to(_secret(tmp_path))
    result = CliRunner().invoke(app, ["ingest", "--home", str(acme_home), "--feeds-dir", str(CONTRACTS),
                                      "--partner", "acme", "--feed", "visits"])
    assert result.exit_code == 0, result.output
    assert "landing/acme/visits/2025-03-04.csv: landing_symlink:" in result.output
    assert MARKER not in result.output and MARKER not in str(result.exception or "")
    assert MARKER not in _text_everywhere(acme_home, skip=acme_home / "landing")


def test_a_file_swapped_for_a_link_after_the_scan_is_not_read(tmp_path):
    """``open_drop`` (how a drop is hashed) refuses a link and a FIFO even if the scan saw a regular file."""
    from orchestration.lib.landing import open_drop

    secret = _secret(tmp_path)
    link = tmp_path / "2025-03-04.csv"
    link.symlink_to(secret)
    with pytest.raises(OSError):
        open_drop(link)
    os.mkfifo(tmp_path / "fifo.csv")
    with pytest.raises(OSError):
        open_drop(tmp_path / "fifo.csv")  # returns at once (O_NONBLOCK), refused


# --- Dagster: the raw asset, the sensor and the planner pick the same files ------------------------

def _resources(home):
    return {"identifiable_db": DuckDBResource(database=str(home / "identifiable.duckdb")),
            "warehouse_db": DuckDBResource(database=str(home / "warehouse.duckdb")),
            "placelink_settings": settings_resource(get_settings(home=home))}


@pytest.fixture
def acme_dagster(acme_home, monkeypatch):
    from orchestration.defs.feeds import build_feed_definitions

    monkeypatch.setenv("PLACELINK_HOME", str(acme_home))
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "cd" * 32)
    return dg.Definitions.merge(build_feed_definitions(load_contracts(CONTRACTS)),
                                dg.Definitions(resources=_resources(acme_home)))


def test_dagster_raw_asset_loads_the_same_drops_and_records_the_rejected(acme_dagster, acme_home, tmp_path):
    from orchestration.defs.feeds.assets import build_feed_assets

    expected = _hostile_landing(acme_home, tmp_path)
    raw = [a for a in build_feed_assets(load_contracts(CONTRACTS)) if a.key == dg.AssetKey(["raw", "acme__visits"])]
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.materialize(raw, partition_key="2025-03-01", resources=_resources(acme_home), instance=instance)
        assert result.success
        md = result.asset_materializations_for_node("raw__acme__visits")[0].metadata
        assert [f["file"] for f in md["source_files"].value] == [
            "landing/acme/visits/2025-03-04.csv", "landing/acme/visits/2025-03-04_v2.csv"]
        mine = {k: v for k, v in expected.items() if k.startswith("acme/visits/")}
        assert {f["file"]: f["reason"].split(":")[0] for f in md["rejected_files"].value} == {
            f"landing/{k}": v for k, v in mine.items()}
        events = "\n".join(str(r) for r in instance.all_logs(result.run_id))
        assert "landing/acme/visits/march.csv rejected, not loaded: landing_name" in events
        assert MARKER not in events
    # recorded: the feed's own rejected files and, as placelink ingest records them, those outside any feed's
    # folder (every odd file accounted for whichever run loaded last); the other feeds' are theirs to record
    outside = {k for k in expected if not k.startswith(tuple(f"acme/{f}/" for f in ("visits", "attendances",
                                                                                     "referrals")))}
    with duckdb.connect(str(acme_home / "identifiable.duckdb"), read_only=True) as con:
        assert {r[0] for r in con.execute("SELECT source_file FROM ops.load_log WHERE status='rejected'")
                .fetchall()} == {f"landing/{k}" for k in {*mine, *outside}}
    assert outside  # the hostile landing has strays outside any feed's folder
    assert MARKER not in _text_everywhere(tmp_path / "dagster", skip=tmp_path / "outside")
    assert MARKER not in _text_everywhere(acme_home, skip=acme_home / "landing")


def test_sensor_requests_runs_for_the_drops_ingest_loads_and_reports_the_rest(acme_dagster, acme_home, tmp_path):
    import json

    expected = _hostile_landing(acme_home, tmp_path)
    sensor = next(s for s in acme_dagster.sensors if s.name == "landing_drop_sensor")
    with dg.instance_for_test() as instance:
        tick = daemon_ticks.tick(sensor, acme_dagster, instance)
        requested = sorted(r.run_key.rsplit(":", 1)[0] for r in tick.run_requests)
        ingest_drops = sorted(f"landing/{p.relative_to(acme_home / 'landing').as_posix()}"
                              for paths in feed_drops(acme_home / "landing", _acme_feed()).values() for p in paths)
        assert requested == ingest_drops == ["landing/acme/visits/2025-03-04.csv",
                                             "landing/acme/visits/2025-03-04_v2.csv"]
        cursor = json.loads(tick.cursor)
        assert {k for k, v in cursor.items() if v[0] == "rejected"} == {f"landing/{k}" for k in expected}
        assert MARKER not in tick.cursor and MARKER not in str(tick.run_requests)
        again = daemon_ticks.tick(sensor, acme_dagster, instance, cursor=tick.cursor)
        assert again.run_requests == [] and json.loads(again.cursor) == cursor


def test_the_nightly_planner_schedules_exactly_the_months_ingest_would_load(tmp_path):
    """Real contract (police street crimes, .csv): the planner and ingest agree on ``_v2`` and ``.bak``."""
    from orchestration.defs.ops.planning import plan_refresh

    landing = tmp_path / "landing"
    folder = landing / "police" / "street_crimes"
    folder.mkdir(parents=True)
    for name in ("2025-12-10_v2.csv", "2025-11-05.csv.bak", "march.csv", "2025-10-32.csv", "20250910.csv"):
        (folder / name).write_text("x\n")
    (folder / "2025-08-04.csv").symlink_to(_secret(tmp_path))
    key = dg.AssetKey(["raw", "police__street_crimes"])
    monthly = dg.MonthlyPartitionsDefinition(start_date="2024-01-01", end_offset=1)

    @dg.asset(key=key, partitions_def=monthly)
    def _street_crimes() -> None:  # never executed: planning reads the graph only
        return None

    graph = dg.Definitions(assets=[_street_crimes]).resolve_asset_graph()
    with dg.DagsterInstance.ephemeral() as instance:
        plan = plan_refresh(graph, instance, landing)
    street_crimes = load_contracts().feed("police", "street_crimes")
    assert list(plan.partitions) == sorted(feed_drops(landing, street_crimes)) == ["2025-12-01"]
    assert sorted(f.rel for f in plan.rejected) == sorted(
        f"police/street_crimes/{n}" for n in ("2025-11-05.csv.bak", "march.csv", "2025-10-32.csv",
                                              "20250910.csv", "2025-08-04.csv"))


# --- property: for any names, planner and ingest classify identically --------------------------------

_parts = st.sampled_from(["2025-03-04", "2026-12-10", "2026-02-29", "2024-02-29", "2025-13-01", "1999-01-01",
                          "20250304", "march", "", ".", "~$", "#", "_v2", "_", "-v2", " (1)", "_part-2",
                          ".csv", ".CSV", ".bak", ".part", ".jsonl", ".tmp", "~", "\n", "\x1b[2J", "é", "٢"])
_names = st.one_of(
    st.lists(_parts, min_size=1, max_size=5).map("".join),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=40),
    st.text(string.digits + "-_.csvCSV", min_size=1, max_size=20),
).filter(lambda n: n not in ("", ".", "..") and len(os.fsencode(n)) <= 255)


@functools.cache
def _street_crimes():
    return load_contracts().feed("police", "street_crimes")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(_names, min_size=1, max_size=6, unique=True))
def test_planner_and_ingest_classify_any_names_identically(tmp_path_factory, names):
    landing = tmp_path_factory.mktemp("prop") / "landing"
    folder = landing / "police" / "street_crimes"
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(b"x\n")
    feed = _street_crimes()
    # as plan_refresh lists a feed's drops (the extension from the contracts, read once per plan)
    planner = {d.path: d.partition for d in list_drops(landing, "police", "street_crimes",
                                                       extension=feed.format.file_extension)}
    ingest = {p: part for part, paths in feed_drops(landing, feed).items() for p in paths}
    assert planner == ingest
    scanned = scan_feed(landing, "police", "street_crimes", "csv")
    everything = scan_landing(landing, {("police", "street_crimes"): "csv"})
    assert sorted(f.rel for f in everything) == sorted(f.rel for f in scanned)
    assert len(scanned) == len(names)  # every file accounted for, once
    for f in scanned:
        # a drop of exactly one partition, or rejected with a reason and a fix
        assert (f.partition is not None) != (f.reason is not None)
        if f.partition:
            assert planner[f.path] == f.partition == f.drop_date.replace(day=1).isoformat()
            assert f.path.name.startswith(f.drop_date.isoformat())
        else:
            assert f.path not in planner and f.reason.startswith("landing_") and f.fix
            assert "\n" not in f.rel and "\x1b" not in f.rel  # names are printed escaped


def test_retention_deletes_old_second_drops_and_backups_too(tmp_path):
    """A ``_v2`` drop is a drop: retention ages it by its date like the first (it used to be kept for ever)."""
    from orchestration.lib.config import get_settings
    from orchestration.lib.governance.retention import apply_retention

    settings = get_settings().ensure()
    folder = settings.landing / "police" / "street_crimes"
    folder.mkdir(parents=True)
    for name in ("2017-12-04.csv", "2017-12-04_v2.csv", "2017-12-04.csv.bak", "2026-11-04_v2.csv", "notes.txt"):
        (folder / name).write_text("x\n")
    apply_retention(settings, today=TODAY, zones=("landing",))
    assert sorted(p.name for p in folder.iterdir()) == ["2026-11-04_v2.csv", "notes.txt"]


def test_a_rebuild_still_records_the_rejected_files(acme_home):
    """``--rebuild`` forgets what a feed recorded; the rejected files are recorded again after it."""
    write_visits(acme_home)
    write_visits(acme_home, "march.csv")
    args = ["ingest", "--home", str(acme_home), "--feeds-dir", str(CONTRACTS), "--partner", "acme",
            "--feed", "visits"]
    for extra in ([], ["--rebuild"]):
        result = CliRunner().invoke(app, args + extra)
        assert result.exit_code == 0, result.output
        assert "landing/acme/visits/march.csv: landing_name:" in result.output
        with duckdb.connect(str(acme_home / "identifiable.duckdb"), read_only=True) as con:
            assert con.execute("SELECT source_file FROM ops.load_log WHERE status='rejected'").fetchall() == [
                ("landing/acme/visits/march.csv",)]
