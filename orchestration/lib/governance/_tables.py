"""Helpers shared by erasure and retention: open a zone for writing, list its tables and columns."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb

from orchestration.lib.errors import PlacelinkError


@contextlib.contextmanager
def open_zone(path: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """Open a zone's DuckDB file; ``None`` if it does not exist. A clear error if another process writes it."""
    if not path.exists():
        yield None
        return
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        raise PlacelinkError(
            f"cannot open {path.name}: another process is using it ({str(exc).splitlines()[0]})",
            where=str(path),
            fix="wait for the running pipeline job to finish (Dagster runs hold the writer pool), then retry",
        ) from exc
    try:
        yield con
    finally:
        con.close()


def base_tables(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], set[str]]:
    """(schema, table) -> lower-case column names, for every base table (views follow their tables)."""
    rows = con.execute(
        "SELECT c.table_schema, c.table_name, lower(c.column_name) FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE t.table_type = 'BASE TABLE' AND c.table_catalog = current_database()").fetchall()
    out: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in rows:
        out.setdefault((schema, table), set()).add(column)
    return out


def qualified(schema: str, table: str) -> str:
    return f'"{schema}"."{table}"'
