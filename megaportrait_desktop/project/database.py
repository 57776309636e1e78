"""SQLite for a project: WAL, foreign keys, a schema version with migrations, one connection per thread.

Writes use ``BEGIN IMMEDIATE`` (the write lock is taken up front, so two writers queue on the busy
timeout instead of failing on a lock upgrade) and are retried if the lock is still held; readers
never block in WAL mode. That is what keeps ``database is locked`` from reaching the user.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import ProjectError

#: The schema this code writes. Bumped by appending to MIGRATIONS.
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 15_000

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    -- Every stored file, content-addressed: path is relative to the project folder.
    CREATE TABLE files (
        sha256 TEXT PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        kind TEXT NOT NULL,
        created REAL NOT NULL
    );

    CREATE TABLE identities (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        notes TEXT NOT NULL DEFAULT '',
        trigger_token TEXT NOT NULL,
        training_params TEXT NOT NULL DEFAULT '{}',
        training_state TEXT NOT NULL DEFAULT 'untrained'
            CHECK (training_state IN ('untrained', 'queued', 'training', 'trained', 'failed', 'cancelled')),
        training_progress REAL NOT NULL DEFAULT 0,
        lora_sha TEXT REFERENCES files (sha256),
        created REAL NOT NULL
    );

    CREATE TABLE identity_photos (
        id INTEGER PRIMARY KEY,
        identity_id INTEGER NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
        file_sha TEXT NOT NULL REFERENCES files (sha256),
        original_name TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        faces TEXT NOT NULL,
        quality TEXT NOT NULL,
        embedding BLOB,
        created REAL NOT NULL,
        UNIQUE (identity_id, file_sha)
    );

    CREATE TABLE reference_images (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        file_sha TEXT NOT NULL UNIQUE REFERENCES files (sha256),
        original_name TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        faces TEXT NOT NULL,
        face_count INTEGER NOT NULL,
        chosen_face INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );

    -- Version 0 is the automatic mask; user edits are versions 1, 2, ...
    CREATE TABLE masks (
        id INTEGER PRIMARY KEY,
        reference_id INTEGER NOT NULL REFERENCES reference_images (id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('auto', 'user')),
        file_sha TEXT NOT NULL REFERENCES files (sha256),
        created REAL NOT NULL,
        UNIQUE (reference_id, version)
    );

    CREATE TABLE outputs (
        id INTEGER PRIMARY KEY,
        identity_id INTEGER REFERENCES identities (id) ON DELETE SET NULL,
        reference_id INTEGER REFERENCES reference_images (id) ON DELETE SET NULL,
        request TEXT NOT NULL,
        engine TEXT NOT NULL,
        models TEXT NOT NULL DEFAULT '{}',
        final_sha TEXT NOT NULL REFERENCES files (sha256),
        thumb_sha TEXT REFERENCES files (sha256),
        identity_score REAL,
        timings TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        rating INTEGER NOT NULL DEFAULT 0 CHECK (rating BETWEEN 0 AND 5),
        favourite INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX outputs_by_created ON outputs (created DESC, id DESC);
    CREATE INDEX outputs_by_identity ON outputs (identity_id, created DESC);
    CREATE INDEX outputs_by_reference ON outputs (reference_id, created DESC);
    CREATE INDEX outputs_by_score ON outputs (identity_score DESC, id DESC);
    CREATE INDEX outputs_by_rating ON outputs (rating DESC, created DESC, id DESC);

    CREATE TABLE output_stages (
        output_id INTEGER NOT NULL REFERENCES outputs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        file_sha TEXT NOT NULL REFERENCES files (sha256),
        PRIMARY KEY (output_id, name)
    );

    CREATE TABLE output_tags (
        output_id INTEGER NOT NULL REFERENCES outputs (id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (output_id, tag)
    );
    CREATE INDEX output_tags_by_tag ON output_tags (tag, output_id);

    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('generate', 'train')),
        state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        payload TEXT NOT NULL,
        identity_id INTEGER REFERENCES identities (id) ON DELETE SET NULL,
        output_id INTEGER REFERENCES outputs (id) ON DELETE SET NULL,
        progress REAL NOT NULL DEFAULT 0,
        error TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX jobs_by_state ON jobs (state, created);
    """,
    # Every output's identity report (core.identity_report, as JSON) and its verdict, filterable in SQL.
    # Outputs recorded before have neither (NULL): they list as they did.
    2: """
    ALTER TABLE outputs ADD COLUMN identity_report TEXT;
    ALTER TABLE outputs ADD COLUMN verdict TEXT CHECK (verdict IN ('client', 'mix', 'reference'));
    CREATE INDEX outputs_by_verdict ON outputs (verdict, identity_score DESC, id DESC);
    """,
}

#: Every column that holds a file's sha256: what keeps a stored file alive.
FILE_REFERENCES = (
    ("identities", "lora_sha"), ("identity_photos", "file_sha"), ("reference_images", "file_sha"),
    ("masks", "file_sha"), ("outputs", "final_sha"), ("outputs", "thumb_sha"), ("output_stages", "file_sha"),
)


def read_schema_version(db_path: Path) -> int:
    """The schema version of ``db_path``, read without changing the file (read-only connection)."""
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads page 1: fails if corrupt
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise ProjectError(f"{db_path.name} is damaged ({exc}); restore the project from a backup or an "
                           "exported zip.") from None
    return int(version)


class Database:
    """One SQLite file shared by the threads of one process; each thread gets its own connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ connections

    @property
    def connection(self) -> sqlite3.Connection:
        if self._closed:
            raise ProjectError("The project is closed.")
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                  check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA foreign_keys = ON")
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            con.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable at checkpoint, never corrupt
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                with contextlib.suppress(sqlite3.Error):
                    con.close()
            self._all.clear()
        self._closed = True

    # ------------------------------------------------------------------ use

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.connection.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        return self.connection.execute(sql, params).fetchone()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all of it commits, or none of it (rolled back on any exception)."""
        con = self.connection
        for attempt in range(20):
            try:
                con.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                time.sleep(min(0.05 * (attempt + 1), 0.5))
        else:
            raise ProjectError("The project is busy in another program; close it there and try again.")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        else:
            con.execute("COMMIT")

    # ------------------------------------------------------------------ schema

    def migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION`, one migration per transaction."""
        con = self.connection
        current = con.execute("PRAGMA user_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise ProjectError(f"This project was written by a newer version of MegaPortrait (schema {current}, "
                               f"this version reads up to {SCHEMA_VERSION}); update the app to open it.")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self.write() as tx:
                for statement in _statements(MIGRATIONS[version]):
                    tx.execute(statement)
                tx.execute(f"PRAGMA user_version = {version}")


def enable_wal(path: Path) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = WAL")
    finally:
        con.close()


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction; split on complete statements instead.
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    return out
