"""The Spark engine profile's one Spark session (``PLACELINK_ENGINE=spark``, docs/scaling.md).

Everything that runs on Spark asks :func:`spark_session` for the session: Splink's ``SparkAPI`` (person linkage),
dbt-spark's ``session`` method (dbt runs inside this process's session, no Thrift server) and the storage seam
(:mod:`orchestration.lib.spark_storage`). One session per process: the JVM takes ~15 s to start.

Bad configuration fails here, before any work, with a :class:`PlacelinkError` that names the fix: no Java, a
Spark that is not 4.x, Splink's similarity jar missing, a master URL that is malformed or unreachable.

Zones: the session's local directories (shuffle spill, checkpoints) are inside the identifiable zone's
owner-only folder, because Splink's checkpoints and spill hold clear identifiers. The pseudonymised tables live
under :attr:`Settings.spark_warehouse`, the identifiable ones under :attr:`Settings.spark_identifiable`.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse

from orchestration.lib.config import Settings
from orchestration.lib.errors import PlacelinkError

#: The Spark line placelink is built and tested on (pyspark in uv.lock); Splink ships a jar per major version.
SPARK_MAJOR = 4
MIN_JAVA = 17
#: Shuffle partitions in local mode: Spark's default 200 makes a county's thousands of rows into 200 tasks each.
LOCAL_SHUFFLE_PARTITIONS = 8

_SESSION = None


def _fail(message: str, fix: str, where: str = "Spark engine (PLACELINK_ENGINE=spark)") -> PlacelinkError:
    return PlacelinkError(message, where=where, fix=fix)


def java_version(java_home: str | None = None) -> int:
    """The major version of the Java Spark will start (``JAVA_HOME`` first, then ``java`` on PATH)."""
    home = java_home if java_home is not None else os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise _fail("no Java runtime found: Spark runs on the JVM",
                    fix=f"install a Java {MIN_JAVA}+ runtime (Debian: apt-get install openjdk-17-jre-headless) "
                        "or set JAVA_HOME to one")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        raise _fail("could not read the Java version", where=java,
                    fix=f"point JAVA_HOME at a Java {MIN_JAVA}+ runtime")
    major = int(m.group(1))
    major = int(m.group(2)) if major == 1 and m.group(2) else major  # "1.8.0" is Java 8
    if major < MIN_JAVA:
        raise _fail(f"Java {major} is too old for Spark {SPARK_MAJOR}", where=java,
                    fix=f"install Java {MIN_JAVA}+ (Debian: apt-get install openjdk-17-jre-headless) and set "
                        "JAVA_HOME to it")
    return major


def check_spark_version(version: str) -> None:
    major = int(version.split(".")[0])
    if major != SPARK_MAJOR:
        raise _fail(f"pyspark {version} is installed; placelink runs on Spark {SPARK_MAJOR}.x",
                    fix="install the locked version: `uv sync --frozen --extra spark` (make setup); a cluster "
                        f"must run Spark {SPARK_MAJOR}.x too (Splink's similarity jar is built per major version)")


def similarity_jar() -> Path:
    """Splink's Scala similarity UDFs (Jaro-Winkler, Damerau-Levenshtein ...) for Spark 4: it ships inside the
    splink wheel. ``PLACELINK_SPARK_SIMILARITY_JAR`` overrides it (a cluster may keep jars in object storage)."""
    override = os.environ.get("PLACELINK_SPARK_SIMILARITY_JAR")
    if override:
        path = Path(override)
    else:
        import splink

        path = Path(splink.__file__).parent / "internals" / "files" / "spark_jars" / \
            "scala-udf-similarity-0.2.1_spark4.x.jar"
    if not path.exists():
        raise _fail("Splink's similarity jar is missing", where=str(path),
                    fix="reinstall splink (`uv sync --frozen --reinstall-package splink`) or set "
                        "PLACELINK_SPARK_SIMILARITY_JAR to the jar's path")
    return path


def check_master(master: str, timeout_s: float = 5.0) -> None:
    """``local``/``local[N]``/``local[*]`` or a cluster URL whose host answers. Spark itself retries an unreachable
    master for minutes with a Java stack trace; this says which setting to change in a few seconds."""
    if re.fullmatch(r"local(\[(\d+|\*)(,\d+)?\])?", master):
        return
    if not re.match(r"(spark|k8s|yarn)(://|$)", master):
        raise _fail(f"PLACELINK_SPARK_MASTER={master!r} is not a Spark master URL",
                    fix="use local[2], spark://host:7077, k8s://https://host:443 or yarn")
    if master == "yarn":
        return  # YARN is found through HADOOP_CONF_DIR, not a URL
    url = urlparse(master[len("k8s://"):] if master.startswith("k8s://") else master)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 7077)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise _fail(f"the Spark master {host}:{port} does not answer ({type(exc).__name__})",
                    where=f"PLACELINK_SPARK_MASTER={master}",
                    fix="start the cluster or correct PLACELINK_SPARK_MASTER (local[2] runs on this machine)") from None


def spark_session(settings: Settings):
    """The process's Spark session, started on first use with placelink's configuration and checks."""
    global _SESSION
    if _SESSION is not None and _SESSION._jsc is not None:  # stopped sessions have no context
        # checkpoints follow the home asked for (tests run several homes in one process)
        (settings.spark_identifiable / "checkpoints").mkdir(parents=True, exist_ok=True)
        _SESSION.sparkContext.setCheckpointDir(str(settings.spark_identifiable / "checkpoints"))
        return _SESSION
    try:
        import pyspark
        from pyspark.sql import SparkSession
    except ImportError:
        raise _fail("pyspark is not installed",
                    fix="install the spark extra: `uv sync --frozen --extra spark` (make setup does)") from None
    check_spark_version(pyspark.__version__)
    java_version()
    jar = similarity_jar()
    check_master(settings.spark_master)
    zone = settings.spark_identifiable
    for d in (zone / "tmp", zone / "checkpoints", settings.spark_warehouse):
        d.mkdir(parents=True, exist_ok=True)
    settings.identifiable_dir.chmod(0o700)
    local = settings.spark_master.startswith("local")
    builder = (SparkSession.builder.master(settings.spark_master).appName("placelink")
               .config("spark.driver.memory", settings.spark_driver_memory)
               .config("spark.jars", str(jar))
               .config("spark.local.dir", str(zone / "tmp"))
               .config("spark.sql.warehouse.dir", str(settings.spark_warehouse))
               .config("spark.sql.catalogImplementation", "in-memory")
               .config("spark.sql.session.timeZone", "UTC")
               # the in-memory catalog forgets dbt's tables when the process ends but their Parquet folders stay:
               # a later build re-creates each table over its own folder (a persistent metastore avoids this)
               .config("spark.sql.legacy.allowNonEmptyLocationInCTAS", "true")
               # shared machines: no UI port to collide on; the driver on loopback in local mode
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false"))
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no "hostname resolves to loopback" warning
        builder = (builder.config("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS))
                   .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1"))
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM failed to start: Java's message, not data
        raise _fail(f"Spark did not start ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                    fix="check JAVA_HOME, PLACELINK_SPARK_MASTER and PLACELINK_SPARK_DRIVER_MEMORY") from None
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(str(zone / "checkpoints"))
    _SESSION = spark
    return spark


def stop_spark_session() -> None:
    global _SESSION
    if _SESSION is not None:
        _SESSION.stop()
        _SESSION = None
