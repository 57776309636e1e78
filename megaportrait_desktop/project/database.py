"""SQLite for a project: a rollback journal, foreign keys, a schema version with migrations, one
connection per thread.

Why a rollback journal and not WAL: SQLite's locks are POSIX advisory locks, which a process loses
on a file as soon as *any* descriptor of that file is closed in it (a file dialog sniffing
``project.db`` is enough). In WAL mode another program that then opens and closes the project sees
no other user and deletes ``-wal``/``-shm`` while this process still writes into them, so later
commits vanish. A rollback journal keeps no state between transactions that another program could
delete, and every transaction re-checks the file; the one-writer rule is kept by ``project.lock``
(see :mod:`.lock`), which such a close cannot drop.

Writes use ``BEGIN IMMEDIATE`` (the write lock is taken up front, so two writers queue on the busy
timeout instead of failing on a lock upgrade) and are retried while the lock is held elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from .errors import ProjectError, disk_problem, sqlite_error

#: The schema this code writes. Bumped by appending to MIGRATIONS.
SCHEMA_VERSION = 4
BUSY_TIMEOUT_MS = 15_000
JOURNAL_MODE = "delete"
READ_ONLY_MESSAGE = ("This project is open read-only here (by a reading command, or on read-only media); nothing can "
                     "be changed in it. Open it for writing (close it in the other window or command first), or copy "
                     "it from read-only media to a writable disk.")

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
    # Batches: identity sets × references with one settings request, expanded into jobs. A job keeps its
    # place in the queue, its attempts and the kind of its last error, which worker runs it, its content
    # key, and the training it waits for; an output remembers the batch that made it.
    3: """
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        settings TEXT NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    ALTER TABLE jobs ADD COLUMN batch_id INTEGER REFERENCES batches (id) ON DELETE CASCADE;
    ALTER TABLE jobs ADD COLUMN reference_id INTEGER REFERENCES reference_images (id) ON DELETE SET NULL;
    ALTER TABLE jobs ADD COLUMN position REAL NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN error_kind TEXT;
    ALTER TABLE jobs ADD COLUMN worker TEXT;
    ALTER TABLE jobs ADD COLUMN key TEXT;
    ALTER TABLE jobs ADD COLUMN after_job INTEGER REFERENCES jobs (id) ON DELETE SET NULL;
    ALTER TABLE outputs ADD COLUMN batch_id INTEGER REFERENCES batches (id) ON DELETE SET NULL;
    CREATE INDEX jobs_by_batch ON jobs (batch_id, position, id);
    CREATE INDEX outputs_by_batch ON outputs (batch_id, identity_score DESC, id DESC);
    """,
    # Full-resolution stage images stored as crops (issue 15): where the crop's top-left pixel lies in the
    # output (the "pasted" stage differs from the final only there). Stages recorded before are whole images: 0, 0.
    4: """
    ALTER TABLE output_stages ADD COLUMN x INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE output_stages ADD COLUMN y INTEGER NOT NULL DEFAULT 0;
    """,
}

#: Every column that holds a file's sha256: what keeps a stored file alive.
FILE_REFERENCES = (
    ("identities", "lora_sha"), ("identity_photos", "file_sha"), ("reference_images", "file_sha"),
    ("masks", "file_sha"), ("outputs", "final_sha"), ("outputs", "thumb_sha"), ("output_stages", "file_sha"),
)


def read_schema_version(db_path: Path) -> int:
    """The schema version of ``db_path``, read without changing the file (read-only connection).

    A process killed in the middle of a write leaves a hot journal, which a read-only connection
    cannot roll back: on a writable disk SQLite's own recovery runs first (a read-write connection
    rolls the unfinished change back; the journal is only hot when no live process holds it).
    """
    try:
        recover_interrupted_write(db_path)
        con = connect_read_only(db_path, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads page 1: fails if corrupt
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise sqlite_error(exc, db_path) from None  # damage named as damage, a full or read-only disk as such
    return int(version)


def recover_interrupted_write(db_path: Path) -> None:
    """Roll back the change a killed process left half-written (its hot journal), where the disk allows it."""
    journal = db_path.with_name(db_path.name + "-journal")
    if not journal.is_file() or journal.stat().st_size == 0 or disk_problem(db_path.parent) is not None:
        return
    con = sqlite3.connect(_uri(db_path, False), uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the first read rolls a hot journal back
    finally:
        con.close()


def connect_read_only(db_path: Path, **kwargs) -> sqlite3.Connection:
    """A connection that can never change ``db_path``.

    On read-only media (a backup share, a DVD) a database still in WAL mode (made by an earlier version)
    cannot be opened even read-only (SQLite must create its ``-shm`` index beside it), so there it is
    opened as immutable: nothing can change it there.
    """
    uri = db_path.absolute().as_uri()
    try:
        con = sqlite3.connect(f"{uri}?mode=ro", uri=True, **kwargs)
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            con.close()
            raise
        return con
    except sqlite3.OperationalError:
        if disk_problem(db_path.parent) not in (errno.EROFS, errno.EACCES):
            raise
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, **kwargs)


class Database:
    """One SQLite file shared by the threads of one process; each thread gets its own connection.

    ``read_only`` connections (``mode=ro``) never write, so they are safe beside a writer in another
    process; they can neither checkpoint nor delete anything.
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
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
            if self.read_only:
                con = connect_read_only(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                        check_same_thread=False)
            else:
                con = sqlite3.connect(_uri(self.path, False), uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                      isolation_level=None, check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA foreign_keys = ON")
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            con.execute("PRAGMA synchronous = FULL")  # with a rollback journal: a commit survives power loss
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
        """A write transaction: all of it commits, or none of it (rolled back on any exception).

        A full disk, a read-only medium or a missing permission ends as a :class:`ProjectError` naming it.
        """
        if self.read_only:
            raise ProjectError(READ_ONLY_MESSAGE)
        con = self.connection
        for attempt in range(20):
            try:
                con.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise sqlite_error(exc, self.path) from None
                time.sleep(min(0.05 * (attempt + 1), 0.5))
        else:
            raise ProjectError("The project is busy in another program; close it there and try again.")
        try:
            yield con
        except BaseException as exc:
            if con.in_transaction:  # SQLite may have rolled back already (a full disk)
                con.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise sqlite_error(exc, self.path) from None
            raise
        else:
            try:
                con.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise sqlite_error(exc, self.path) from None

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


def use_rollback_journal(path: Path) -> None:
    """Switch a project database to the rollback journal (projects before this version used WAL).

    Raises
    ------
    ProjectError
        When another program holds the database open, so the switch cannot be made safely.
    """
    con = sqlite3.connect(_uri(path, False), uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        mode = con.execute(f"PRAGMA journal_mode = {JOURNAL_MODE}").fetchone()[0]
    except sqlite3.OperationalError as exc:
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF not in (5, 6):  # not SQLITE_BUSY/LOCKED: the disk
            raise sqlite_error(exc, path) from None
        raise ProjectError(f"{path.name} is in use by another program ({exc}); close it there and try again.") \
            from None
    finally:
        con.close()
    if str(mode).lower() != JOURNAL_MODE:
        raise ProjectError(f"{path.name} is in use by another program (it stays in {mode} mode); close it there "
                           "and try again.")


def _uri(path: Path, read_only: bool) -> str:
    return f"file:{urllib.parse.quote(str(path))}" + ("?mode=ro" if read_only else "")


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
