"""The Spark engine profile's configuration: a bad setting fails before any work with an error naming the fix.

None of these start a JVM (seconds in all); the engine itself is tested in test_equivalence.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.lib import spark as sp
from orchestration.lib.config import ConfigError, get_settings
from orchestration.lib.errors import PlacelinkError

ROOT = Path(__file__).resolve().parents[2]


def test_engine_defaults_to_duckdb_and_spark_is_chosen_in_the_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("PLACELINK_ENGINE", raising=False)
    assert get_settings(home=tmp_path).engine == "duckdb"
    monkeypatch.setenv("PLACELINK_ENGINE", " Spark ")
    s = get_settings(home=tmp_path)
    assert (s.engine, s.spark_master, s.spark_driver_memory) == ("spark", "local[2]", "2g")
    # the two zones' Spark tables live apart, the identifiable one inside the zone's owner-only folder
    assert s.spark_identifiable.is_relative_to(s.identifiable_dir)
    assert not s.spark_warehouse.is_relative_to(s.identifiable_dir)


@pytest.mark.parametrize("var, value, expected", [
    ("PLACELINK_ENGINE", "postgres", "PLACELINK_ENGINE='postgres' is not a known engine"),
    ("PLACELINK_SPARK_DRIVER_MEMORY", "two gigs", "is not a JVM memory size"),
])
def test_bad_engine_settings_are_refused_with_the_fix(tmp_path, monkeypatch, var, value, expected):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=expected):
        get_settings(home=tmp_path)


def test_cli_names_a_bad_engine_in_one_line(tmp_path):
    env = {**os.environ, "PLACELINK_ENGINE": "hadoop", "PLACELINK_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "where"], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "PLACELINK_ENGINE='hadoop'" in proc.stderr and "use one of duckdb, spark" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_java_names_the_package_to_install(tmp_path):
    with pytest.raises(PlacelinkError, match="no Java runtime found") as err:
        sp.java_version(java_home=str(tmp_path / "no-jdk"))
    assert "openjdk-17" in err.value.fix


def test_old_java_is_refused(tmp_path):
    fake = tmp_path / "jdk8" / "bin" / "java"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho \'openjdk version "1.8.0_392"\' >&2\n')
    fake.chmod(0o755)
    with pytest.raises(PlacelinkError, match="Java 8 is too old for Spark 4"):
        sp.java_version(java_home=str(fake.parent.parent))


def test_this_machines_java_is_accepted():
    assert sp.java_version() >= sp.MIN_JAVA


def test_wrong_spark_major_version_is_refused():
    sp.check_spark_version("4.0.5")
    with pytest.raises(PlacelinkError, match=r"pyspark 3\.5\.1 is installed; placelink runs on Spark 4\.x") as err:
        sp.check_spark_version("3.5.1")
    assert "uv sync --frozen --extra spark" in err.value.fix


def test_missing_similarity_jar_names_the_override(tmp_path, monkeypatch):
    assert sp.similarity_jar().exists()  # the jar that ships in the splink wheel
    monkeypatch.setenv("PLACELINK_SPARK_SIMILARITY_JAR", str(tmp_path / "gone.jar"))
    with pytest.raises(PlacelinkError, match="similarity jar is missing") as err:
        sp.similarity_jar()
    assert "PLACELINK_SPARK_SIMILARITY_JAR" in err.value.fix


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("master", ["local[2]", "local[*]", "local", "yarn"])
def test_local_masters_need_no_network(master):
    sp.check_master(master)


def test_unreachable_master_fails_fast_naming_the_setting():
    port = _closed_port()
    with pytest.raises(PlacelinkError, match=f"the Spark master 127.0.0.1:{port} does not answer") as err:
        sp.check_master(f"spark://127.0.0.1:{port}", timeout_s=2)
    assert "PLACELINK_SPARK_MASTER" in err.value.fix


@pytest.mark.parametrize("master", ["local[two]", "mesos://x:5050", "http://spark:7077", ""])
def test_malformed_master_is_refused(master):
    with pytest.raises(PlacelinkError, match="is not a Spark master URL"):
        sp.check_master(master)
