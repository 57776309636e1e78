"""Checks of a project database that came from elsewhere (a zip, a copied folder), before anything uses it.

A database this app wrote has a known schema version, every table and column of that schema, no
triggers, and passes SQLite's integrity check. Anything else is refused with one line saying what is
wrong, and the file is only read (a read-only connection), never changed.
"""

from __future__ import annotations

import sqlite3
from functools import cache
from pathlib import Path

from .database import MIGRATIONS, SCHEMA_VERSION, _statements, connect_read_only
from .errors import ProjectError, sqlite_error


@cache
def expected_schema() -> dict[str, frozenset[str]]:
    """Every table of the current schema with its columns, from the migrations themselves."""
    con = sqlite3.connect(":memory:")
    try:
        for version in range(1, SCHEMA_VERSION + 1):
            for statement in _statements(MIGRATIONS[version]):
                con.execute(statement)
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: frozenset(r[1] for r in con.execute(f"PRAGMA table_info('{t}')")) for t in tables}
    finally:
        con.close()


def check_database(db_path: Path, label: str, pages: str | None = "full") -> int:
    """Check that ``db_path`` is an undamaged MegaPortrait project database; returns its schema version.

    Parameters
    ----------
    db_path:
        The ``project.db`` to check (opened read-only).
    label:
        How to name it in messages (the zip's name, the folder).
    pages:
        ``"full"``: SQLite's ``integrity_check`` (every page and index); ``"quick"``: its ``quick_check``;
        ``None``: the schema only (cheap enough for every open).

    Raises
    ------
    ProjectError
        Damaged, not a project, a version this app cannot read, missing tables or columns, triggers.
    """
    try:
        con = connect_read_only(db_path)
    except sqlite3.Error as exc:
        raise sqlite_error(exc, db_path) from None
    try:
        return _check(con, label, pages)
    except sqlite3.Error as exc:
        raise sqlite_error(exc, db_path) from None
    finally:
        con.close()


def _check(con: sqlite3.Connection, label: str, pages: str | None) -> int:
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ProjectError(f"{label} was written by a newer version of MegaPortrait (schema {version}, this version "
                           f"reads up to {SCHEMA_VERSION}); update the app to open it.")
    if version < 1:
        raise ProjectError(f"{label} holds no MegaPortrait project data (schema version {version}); it is not a "
                           "MegaPortrait project, or it is damaged.")
    if pages is not None:
        result = con.execute(f"PRAGMA {'integrity_check' if pages == 'full' else 'quick_check'}(20)").fetchall()
        if [r[0] for r in result] != ["ok"]:
            raise ProjectError(f"{label}: the project database is damaged ({result[0][0]}); it was refused.")
    found: dict[str, set[str]] = {}
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        found[table] = {r[1] for r in con.execute(f"PRAGMA table_info('{table.replace(chr(39), '')}')")}
    if version == SCHEMA_VERSION:
        missing = [t for t in expected_schema() if t not in found]
        if missing:
            raise ProjectError(f"{label}: the project database lacks its table(s) {', '.join(sorted(missing))}; it "
                               "is damaged or was not made by MegaPortrait, and was refused.")
        short = [f"{t}.{c}" for t, cols in expected_schema().items() for c in sorted(cols - found[t])]
        if short:
            raise ProjectError(f"{label}: the project database lacks the column(s) {', '.join(short[:5])}; it is "
                               "damaged or was not made by MegaPortrait, and was refused.")
    triggers = con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0]
    if triggers:
        raise ProjectError(f"{label}: the project database holds {triggers} trigger(s), which MegaPortrait never "
                           "writes; it was refused.")
    return int(version)
