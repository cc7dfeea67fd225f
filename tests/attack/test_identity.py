"""Attacks on "who acts": self-declared users and roles, readable zone files, a deleted audit log, endless
queries and weak secrets. Each test states the attack and asserts it fails.

Tests run as root. A different account is a forked child that drops to ``nobody`` with ``os.setuid``
(``subprocess.run(..., user="nobody")`` cannot be used here: the interpreter lives under ``/root``, which
``nobody`` may not enter, so the child keeps the already-running interpreter and its imported modules).
Homes that ``nobody`` must reach are made under ``/tmp`` with traversable parents, so what stops it is the
zone's own modes and the role file, not pytest's private temp folder.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import duckdb
import pandas  # noqa: F401  (imported before forking: the child cannot read /root's stdlib to import it)
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orchestration.cli import app
from orchestration.lib import config
from orchestration.lib.config import get_settings
from orchestration.lib.errors import PlacelinkError
from orchestration.lib.governance.audit import read_events, record_event, verify
from orchestration.lib.governance.roles import connect
from orchestration.lib.pseudonymise import load_key
from tests.feeds.conftest import CONTRACTS, write_visits
from tests.governance.conftest import build_zone_home

NOBODY = pwd.getpwnam("nobody")
ME = pwd.getpwuid(os.getuid()).pw_name
SPOOF = {"PLACELINK_USER": "dpo.officer", "PLACELINK_ROLE": "engineer", "USER": "root", "LOGNAME": "root"}
NAMES_SQL = "SELECT forename FROM identifiable.raw.police__person_records"
runner = CliRunner()


def as_nobody(fn, *args) -> dict:
    """Run ``fn(*args)`` in a forked child whose real and effective uid and gid are nobody's; its JSON result."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            os.environ.update(SPOOF)  # everything a person could set to claim to be someone else
            try:
                out = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - report anything to the parent
                out = {"crash": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
            with os.fdopen(write_fd, "w") as fh:
                json.dump(out, fh, default=str)
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    result = json.loads(data)
    assert "crash" not in result, result
    return result


@pytest.fixture
def open_tmp():
    """A folder under /tmp that other accounts may traverse (pytest's own temp folder is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="placelink-identity-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def zone(open_tmp, monkeypatch) -> dict:
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "governance-tests-key-0123456789abcdef")
    # written with plain duckdb, as root, umask 022: an earlier test's placelink command in this worker set the
    # process umask to 077 (cli.main), which would make the home untraversable for nobody before any check ran
    previous = os.umask(0o022)
    try:
        built = build_zone_home(open_tmp / "zhome")
    finally:
        os.umask(previous)
    built["settings"].ensure()                   # what the owner's next placelink command does first
    return built


def _last_read(settings) -> dict:
    return read_events(settings, action="read")[-1]


# --- who acts: the OS account, not an environment variable ------------------------------------------------

def test_placelink_user_spoofing_changes_neither_who_nor_role(zone, monkeypatch):
    s = zone["settings"]
    for name, value in SPOOF.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["query", "--role", "engineer", "--home", str(s.home),
                                 "--purpose", "spoof test", "SELECT count(*) n FROM identifiable.raw.police__person_records"])
    assert result.exit_code == 0, result.output
    event = _last_read(s)
    assert event["who"] == ME                                    # the real account, not dpo.officer
    assert event["details"]["claimed_user"] == "dpo.officer"     # the claim is on the record as a claim
    from orchestration.lib.governance import identity

    assert identity.current_user() == ME and identity.claimed_user() == "dpo.officer"
    whoami = runner.invoke(app, ["whoami", "--home", str(s.home)])
    assert whoami.exit_code == 0 and f"user       {ME}\n" in whoami.output
    assert "dpo.officer (PLACELINK_USER: recorded as a claim, grants nothing)" in whoami.output


def _nobody_tries_engineer(home: str) -> dict:
    s = get_settings(home=home)
    out: dict = {}
    try:
        with connect("engineer", s) as con:
            out["rows"] = con.query(NAMES_SQL)["forename"].tolist()
    except PlacelinkError as exc:
        out["refused"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - e.g. the audit append of a query that did run
        out["error"] = f"{type(exc).__name__}: {exc}"
    cli = CliRunner().invoke(app, ["query", "--role", "engineer", "--home", home, NAMES_SQL])
    out["cli_exit"], out["cli_output"] = cli.exit_code, cli.output + repr(cli.exception)
    try:
        Path(s.identifiable_db).read_bytes()
        out["file_readable"] = True
    except PermissionError:
        out["file_readable"] = False
    try:
        from orchestration.lib.governance import identity
    except ImportError:  # the code before this module existed: report what the attack achieved
        return out
    out["who"] = identity.current_user()
    try:
        out["roles"] = identity.roles_of(s)
    except PlacelinkError as exc:
        out["roles"] = str(exc)
    return out


def test_an_account_without_the_role_is_refused_engineer(zone):
    """No role file (local): only the home's owner holds engineer; nobody's PLACELINK_USER=root etc. do nothing."""
    s = zone["settings"]
    out = as_nobody(_nobody_tries_engineer, str(s.home))
    assert "refused" in out and "rows" not in out, out
    assert out["who"] == "nobody"
    assert "nobody may not read the role file, so holds no role" in out["refused"]
    assert out["cli_exit"] != 0 and "Alice" not in out["cli_output"]
    assert out["file_readable"] is False                           # and the OS would not let it read the file
    s.governance_dir.chmod(0o755)                                  # even where it may look: no file, not the owner
    out = as_nobody(_nobody_tries_engineer, str(s.home))
    assert out["roles"] == ["public"] and "rows" not in out
    assert "nobody does not hold the engineer role" in out["refused"]
    assert "PLACELINK_USER=dpo.officer is a display hint" in out["refused"]


def test_the_role_file_decides_and_only_an_administrator_may_write_it(zone):
    from orchestration.lib.governance import identity

    s = zone["settings"]
    s.roles_file.write_text(f"engineer: {{users: [{ME}]}}\nanalyst: {{users: [nobody]}}\n"
                            f"approver: {{users: [{ME}]}}\n")
    s.roles_file.chmod(0o644)
    s.governance_dir.chmod(0o755)  # let nobody read the file, so what refuses it is the file's content
    out = as_nobody(_nobody_tries_engineer, str(s.home))
    assert out["roles"] == ["analyst", "public"]
    assert "nobody does not hold the engineer role" in out["refused"] and "you hold: analyst, public" in out["refused"]
    assert identity.holds(s, "analyst", "nobody") and not identity.holds(s, "approver", "nobody")
    assert identity.holds(s, "approver") and identity.roles_of(s) == ["engineer", "analyst", "public", "approver"]

    os.chown(s.roles_file, NOBODY.pw_uid, NOBODY.pw_gid)  # a role file someone else could have written
    with pytest.raises(PlacelinkError, match="owned by nobody, not an administrator"):
        connect("engineer", s)
    os.chown(s.roles_file, 0, 0)
    s.roles_file.chmod(0o666)
    with pytest.raises(PlacelinkError, match="writable by group or others"):
        identity.holds(s, "engineer")
    s.roles_file.chmod(0o644)
    s.governance_dir.chmod(0o777)
    with pytest.raises(PlacelinkError, match="folder is writable by group or others"):
        identity.roles_of(s)


def test_production_needs_a_role_file_and_trusts_the_web_tier_only_where_it_says(tmp_path, monkeypatch):
    from orchestration.lib.governance import identity

    prod = get_settings(home=tmp_path / "home", env="production").ensure()
    monkeypatch.setattr(config, "PRODUCTION_ROLES_FILE", tmp_path / "etc" / "roles.yml")
    with pytest.raises(PlacelinkError, match="production needs a role file"):
        connect("public", prod)
    tags = {"user": "jo@county.example"}
    # the open-source webserver lets anyone type this tag: without the role file's say-so it is a claim
    (tmp_path / "etc").mkdir(mode=0o755)
    prod.roles_file.write_text(f"engineer: {{users: [{ME}]}}\n")
    assert identity.run_identity(prod, tags) == (ME, {"claimed_user": "jo@county.example"})
    prod.roles_file.write_text(f"engineer: {{users: [{ME}]}}\nweb_identity: {{run_tag: user}}\n")
    who, details = identity.run_identity(prod, tags)
    assert who == "jo@county.example" and details["os_user"] == ME
    local = get_settings(home=tmp_path / "local").ensure()          # never in the local profile
    assert identity.run_identity(local, tags)[0] == ME


# --- identifiable files are owner-only ---------------------------------------------------------------------

def _nobody_reads(paths: list[str]) -> dict:
    readable = []
    for p in paths:
        try:
            if os.path.isdir(p):
                os.listdir(p)
            else:
                with open(p, "rb") as fh:
                    fh.read(1)
            readable.append(p)
        except PermissionError:
            pass
    return {"readable": readable}


def _zone_files(home: Path) -> list[Path]:
    """The identifiable zone and what governs it, listed here independently of ``filemodes``."""
    found = []
    for name in ("landing", "identifiable", "governance", "keys", "identifiable.duckdb", "identifiable.duckdb.wal",
                 "audit.duckdb", "audit.duckdb.wal", "audit.duckdb.lock"):
        root = home / name
        if root.exists():
            found.append(root)
            if root.is_dir():
                found += sorted(root.rglob("*"))
    return found


def _assert_owner_only(home: Path) -> None:
    files = _zone_files(home)
    assert home / "identifiable.duckdb" in files and home / "audit.duckdb" in files
    assert any(p.suffix == ".csv" for p in files)                  # the landing drop itself
    out = as_nobody(_nobody_reads, [str(p) for p in files])
    assert out["readable"] == []
    modes = {str(p): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert {p: m for p, m in modes.items() if m != (0o700 if Path(p).is_dir() else 0o600)} == {}
    from orchestration.lib.filemodes import exposed

    assert exposed(home) == []


def test_cli_ingest_leaves_every_identifiable_file_owner_only(open_tmp):
    home = open_tmp / "home"
    write_visits(home)                                             # a partner's SFTP drop: 0644
    (home / "reference").mkdir()
    env = {**os.environ, "PLACELINK_HOME": str(home), "PLACELINK_ENV": "local",
           "PLACELINK_PSEUDONYM_KEY": "ef" * 32}
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "ingest", "--feeds-dir", str(CONTRACTS)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    _assert_owner_only(home)


def test_dagster_ingest_leaves_every_identifiable_file_owner_only(open_tmp, monkeypatch):
    import dagster as dg

    from orchestration.defs.feeds.assets import build_feed_assets
    from orchestration.defs.resources import shared_resources
    from orchestration.lib.contracts import load_contracts

    home = open_tmp / "home"
    write_visits(home)
    (home / "reference").mkdir()
    monkeypatch.setenv("PLACELINK_HOME", str(home))
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY", "cd" * 32)
    settings = get_settings(home=home)
    assets = [a for a in build_feed_assets(load_contracts(CONTRACTS)) if a.key.path == ["raw", "acme__visits"]]
    previous = os.umask(0o022)  # as an in-process run or a notebook would have it: the modes must not depend on it
    try:
        result = dg.materialize(assets, partition_key="2025-03-01", resources=shared_resources(settings))
        record_event(settings, action="ingest", target="raw.acme__visits")  # the audit sensor's append
    finally:
        os.umask(previous)
    assert result.success
    _assert_owner_only(home)


# --- the audit log and its anchor ------------------------------------------------------------------------

@pytest.fixture
def audited(tmp_path):
    s = get_settings(home=tmp_path / "home").ensure()
    duckdb.connect(str(s.identifiable_db)).close()                 # the home holds data
    for i in range(3):
        record_event(s, action="ingest", target=f"raw.p__f/{i}")
    assert verify(s).ok
    return s


def _delete(s, *what):
    files = {"log": [s.audit_db, Path(f"{s.audit_db}.wal")], "anchor": [s.governance_dir / "audit_head.json"],
             "marker": [s.governance_dir / "audit_started.json"], "data": [s.identifiable_db]}
    for name in what:
        for f in files[name]:
            f.unlink(missing_ok=True)


@pytest.mark.parametrize("deleted", [("log", "anchor"), ("anchor",), ("log",), ("log", "anchor", "marker")])
def test_verify_fails_when_the_log_or_its_anchor_is_missing(audited, deleted):
    _delete(audited, *deleted)
    result = verify(audited)
    assert not result.ok and result.problems, str(result)
    cli = runner.invoke(app, ["audit", "--verify", "--home", str(audited.home)])
    assert cli.exit_code == 1 and "TAMPERED" in cli.output and "intact" not in cli.output


def test_verify_fails_when_the_log_is_replaced_by_a_fresh_chain(audited):
    _delete(audited, "log", "anchor")
    record_event(audited, action="ingest", target="raw.p__f/after")  # a new, self-consistent chain
    result = verify(audited)
    assert not result.ok and any("log was replaced" in p for p in result.problems), result.problems


def test_verify_of_a_home_that_never_did_anything_says_so(tmp_path):
    s = get_settings(home=tmp_path / "fresh").ensure()
    cli = runner.invoke(app, ["audit", "--verify", "--home", str(s.home)])
    assert cli.exit_code == 0 and "never recorded an event" in cli.output
    assert verify(s).fresh


# --- query time limit, and every outcome audited without values --------------------------------------------

# minutes on any machine we know (a plain count(*) over range(1e10) took 22 s on one machine and 1.1 s on a faster one)
SLOW = "SELECT sum(hash(i)) FROM range(100000000000) t(i)"


@pytest.mark.timeout(120)
def test_a_slow_query_is_interrupted_at_the_limit_and_audited(zone, monkeypatch):
    s = zone["settings"]
    monkeypatch.setenv("PLACELINK_QUERY_TIMEOUT_S", "1")
    start = time.monotonic()
    result = runner.invoke(app, ["query", "--role", "analyst", "--home", str(s.home), SLOW])
    elapsed = time.monotonic() - start
    assert result.exit_code != 0 and "stopped after" in str(result.exception)
    assert elapsed < 30, elapsed
    event = _last_read(s)
    assert event["details"]["outcome"] == "interrupted" and event["details"]["reason"] == "time limit"
    assert event["details"]["limit_s"] == 1 and "rows" not in event["details"]

    with connect("engineer", s, timeout_s=0.5) as con:               # the lib path, a shorter limit
        with pytest.raises(PlacelinkError, match="time limit is 0.5 s"):
            con.query(SLOW)
    assert _last_read(s)["details"]["outcome"] == "interrupted"


@pytest.mark.timeout(120)
def test_ctrl_c_stops_a_running_query_and_is_audited(zone):
    """DuckDB holds the thread while it runs, so Python's own SIGINT handling would wait for the query to end."""
    s = zone["settings"]
    default = signal.getsignal(signal.SIGINT)

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 30
        while signal.getsignal(signal.SIGINT) is default:  # until the query listens (never kill pytest itself)
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    start = time.monotonic()
    with connect("engineer", s) as con, pytest.raises(KeyboardInterrupt):
        con.query(SLOW)
    assert time.monotonic() - start < 15
    assert signal.getsignal(signal.SIGINT) is default               # handler restored
    event = _last_read(s)
    assert event["details"]["outcome"] == "interrupted" and event["details"]["reason"] == "cancelled"


def test_a_failed_query_is_audited_with_its_error_type_never_a_value(zone):
    s = zone["settings"]
    with connect("engineer", s) as con, pytest.raises(PlacelinkError, match="Alice"):  # the engineer sees it
        con.query("SELECT CAST(forename AS INTEGER) FROM identifiable.raw.police__person_records")
    event = _last_read(s)
    assert event["details"]["outcome"] == "failed" and event["details"]["error"] == "ConversionException"
    assert "Alice" not in json.dumps(event)


# --- weak secrets ------------------------------------------------------------------------------------------

def _production_key(tmp_path, text: str) -> bytes:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PLACELINK_PSEUDONYM_KEY", text)
        mp.delenv("PLACELINK_PSEUDONYM_KEY_FILE", raising=False)
        return load_key(get_settings(home=tmp_path, env="production"))


@pytest.mark.parametrize("weak", ["00" * 32, "passwordpassword", "passwordpassword" * 2, "ab" * 32,
                                  "governance-tests-key-0123456789abcdef", "abcdefghijklmnopqrstuvwxyz012345",
                                  "changeme-changeme-changeme-changeme"])
def test_production_refuses_known_weak_keys(tmp_path, weak):
    with pytest.raises(PlacelinkError, match="weak pseudonym key") as exc:
        _production_key(tmp_path, weak)
    assert weak not in str(exc.value)                              # the message never quotes the key


_SMALL_ALPHABET = st.lists(st.binary(min_size=1, max_size=1), min_size=1, max_size=8, unique=True).flatmap(
    lambda alphabet: st.lists(st.sampled_from(alphabet), min_size=32, max_size=40).map(b"".join))
_REPEATED_BLOCK = st.tuples(st.binary(min_size=1, max_size=16), st.integers(32, 64)).map(
    lambda t: (t[0] * 64)[: max(t[1], 2 * len(t[0]))])
_SEQUENCE = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(32, 64)).map(
    lambda t: bytes((t[0] + t[1] * i) % 256 for i in range(t[2])))


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.one_of(_SMALL_ALPHABET, _REPEATED_BLOCK, _SEQUENCE))
def test_production_refuses_low_entropy_keys(tmp_path, key):
    with pytest.raises(PlacelinkError, match="weak pseudonym key"):
        _production_key(tmp_path, key.hex())


def test_production_accepts_random_keys_and_refuses_the_demo_key(tmp_path, monkeypatch):
    for _ in range(200):
        key = secrets.token_bytes(32)
        assert _production_key(tmp_path, key.hex()) == key
    monkeypatch.delenv("PLACELINK_PSEUDONYM_KEY", raising=False)
    with pytest.warns(UserWarning, match="DEMO PSEUDONYM KEY"):
        demo = load_key(get_settings(home=tmp_path, env="local"))   # strong, but generated for the demo
    demo_file = tmp_path / "keys" / "pseudonym.key"
    with pytest.raises(PlacelinkError, match="demo key"):
        _production_key(tmp_path, demo.hex())
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY_FILE", str(demo_file))
    with pytest.raises(PlacelinkError, match="demo key"):
        load_key(get_settings(home=tmp_path, env="production"))
    shared = tmp_path / "shared.key"
    shared.write_text(secrets.token_hex(32))
    shared.chmod(0o644)
    monkeypatch.setenv("PLACELINK_PSEUDONYM_KEY_FILE", str(shared))
    with pytest.raises(PlacelinkError, match="every user can read"):
        load_key(get_settings(home=tmp_path, env="production"))
    shared.chmod(0o600)
    assert len(load_key(get_settings(home=tmp_path, env="production"))) == 32


def test_each_container_gets_only_the_secrets_it_needs():
    import yaml

    infra = Path(__file__).resolve().parents[2] / "infra"
    services = yaml.safe_load((infra / "docker-compose.yml").read_text())["services"]
    secrets_of = {name: {k for k in (svc.get("environment") or {}) if k.endswith(("KEY", "PASSWORD", "WEBHOOK"))
                         or k == "PLACELINK_MLFLOW_TRACKING_URI"} for name, svc in services.items()}
    assert secrets_of["code-server"] == {"PLACELINK_PSEUDONYM_KEY", "DAGSTER_PG_PASSWORD",
                                         "PLACELINK_MLFLOW_TRACKING_URI", "PLACELINK_ALERT_WEBHOOK"}
    assert secrets_of["webserver"] == secrets_of["daemon"] == {"DAGSTER_PG_PASSWORD"}
    assert secrets_of["mlflow"] == {"MLFLOW_DB_PASSWORD"}
    for name in ("webserver", "daemon"):                           # no data volume either
        assert not any("placelink-data" in v for v in services[name].get("volumes", []))
    values = yaml.safe_load((infra / "helm" / "values.yaml").read_text())
    code_location = values["dagster-user-deployments"]["deployments"][0]
    run_pods = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert [s["name"] for s in code_location["envSecrets"]] == ["placelink-code-location-secrets"]
    assert [s["name"] for s in run_pods["envSecrets"]] == ["placelink-run-secrets"]
    assert "envSecrets" not in values.get("dagsterWebserver", {}) and "envSecrets" not in values["dagsterDaemon"]
