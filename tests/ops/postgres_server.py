"""A throwaway PostgreSQL server on 127.0.0.1 from Debian's ``postgresql`` package, for tests.

The server refuses to run as root, so as root it is initialised and started as the ``postgres`` user
the package creates (``runuser``). Written by hand rather than with pytest-postgresql because all we
need is initdb + pg_ctl on a free port, and this keeps the root/postgres-user dance in one visible place.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("PostgreSQL server not installed: apt-get install -y postgresql (CI's .ci/run does)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    data_dir: Path
    port: int
    bin_dir: Path
    user: str = "postgres"
    host: str = "127.0.0.1"

    def url(self, db: str, user: str | None = None) -> str:
        # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; the locked environment ships psycopg2
        return f"postgresql+psycopg2://{user or self.user}@{self.host}:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        import psycopg2

        con = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'create database "{name}"')
        con.close()
        return self.url(name)

    def run_sql_file(self, path: Path, db: str = "postgres") -> None:
        """Run a SQL script with psql, as an operator would (CREATE DATABASE cannot run in a transaction)."""
        subprocess.run([str(self.bin_dir / "psql"), "-h", self.host, "-p", str(self.port), "-U", self.user,
                        "-d", db, "-v", "ON_ERROR_STOP=1", "-q", "-f", str(path)],
                       check=True, capture_output=True, text=True, timeout=60)

    def stop(self) -> None:
        _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def _as_postgres(cmd: list[str]) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    return proc


def start_postgres() -> PostgresServer:
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="placelink-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o755)
    _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync"])
    port = _free_port()
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "server.log"),
                  "-w", "start"])
    return PostgresServer(data, port, bin_dir)
