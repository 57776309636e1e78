"""A project: a folder holding ``project.db`` and content-addressed files.

Identity sets, the reference gallery with masks, the output history with full provenance, and the
job list. Every write is one transaction; files are written before the rows that name them, so a
crash can leave an orphan file (``repair`` removes it) but never a row without its file.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
import sqlite3
import string
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import os_error_message
from ..core.imaging import png_bytes, to_uint8
from .database import FILE_REFERENCES, SCHEMA_VERSION, Database, read_schema_version, use_rollback_journal
from .errors import ProjectError, UnsafePathError, disk_problem, sqlite_error, storage_error
from .files import FileStore, StoredFile
from .lock import LOCK_NAME, ProjectLock

DB_NAME = "project.db"
THUMB_SIZE = 256
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
TRAINING_STATES = ("untrained", "queued", "training", "trained", "failed", "cancelled")


# ------------------------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Identity:
    id: int
    name: str
    notes: str
    trigger_token: str
    training_params: dict
    training_state: str
    training_progress: float
    lora_path: str | None
    photo_count: int
    warning_count: int
    created: float
    #: Why the latest training failed, until the next attempt (``None`` when it did not fail).
    training_error: str | None = None


@dataclass(frozen=True)
class IdentityPhoto:
    id: int
    identity_id: int
    path: str
    original_name: str
    width: int
    height: int
    faces: list
    quality: dict
    embedding: np.ndarray | None
    created: float


@dataclass(frozen=True)
class Reference:
    id: int
    name: str
    path: str
    original_name: str
    width: int
    height: int
    faces: list
    face_count: int
    chosen_face: int
    created: float


@dataclass(frozen=True)
class Mask:
    id: int
    reference_id: int
    version: int
    source: str
    path: str
    created: float


@dataclass(frozen=True)
class Output:
    id: int
    identity_id: int | None
    reference_id: int | None
    identity_name: str | None
    reference_name: str | None
    request: dict
    engine: str
    models: dict
    final_path: str
    thumb_path: str | None
    identity_score: float | None
    timings: dict
    created: float
    rating: int
    favourite: bool
    tags: tuple[str, ...]
    stages: dict[str, str]
    #: The identity report (``core.identity_report.IdentityReport.to_json``) and its verdict code.
    identity_report: dict | None = None
    verdict: str | None = None
    #: The batch that made it (``None`` for a single run).
    batch_id: int | None = None


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    state: str
    payload: dict
    identity_id: int | None
    output_id: int | None
    progress: float
    error: str | None
    created: float
    updated: float
    #: Batch jobs: their batch, reference, place in the queue, tries so far, the kind of the last error,
    #: the worker that runs (ran) them, their content key and the training job they wait for.
    batch_id: int | None = None
    reference_id: int | None = None
    position: float = 0.0
    attempts: int = 0
    error_kind: str | None = None
    worker: str | None = None
    key: str | None = None
    after_job: int | None = None


# ---------------------------------------------------------------------------------------- project


#: Who opens a project for writing, as a refused second writer is told.
DEFAULT_PROGRAM = "a MegaPortrait command"


class Project:
    """An open project. Thread-safe: any thread may read or write (each gets its own connection).

    Opened for writing, it holds the project's lock (:mod:`.lock`) until :meth:`close`: no other
    MegaPortrait window or command writes meanwhile. Opened ``read_only`` it takes no lock and
    cannot write; that is how commands read a project that the app has open.
    """

    def __init__(self, root: Path, db: Database, durable: bool = True, lock: ProjectLock | None = None) -> None:
        self.root = root
        self.db = db
        self.files = FileStore(root, durable=durable)
        self.lock = lock
        #: Jobs left queued or running by a process that ended without finishing them (see :meth:`open`).
        self.interrupted: list[Job] = []

    @property
    def read_only(self) -> bool:
        return self.db.read_only

    # ------------------------------------------------------------------ open / create / close

    @classmethod
    def create(cls, root: str | Path, name: str | None = None, program: str = DEFAULT_PROGRAM) -> Project:
        """Create a new project folder (it must not exist, or be empty), open for writing.

        On any failure (a full disk, a read-only parent) what was created is removed again, so a retry
        finds the folder as it was.
        """
        root = Path(root)
        try:
            if root.exists() and (not root.is_dir() or any(root.iterdir())):
                raise ProjectError(f"{root} already exists and is not empty; choose a new folder for the project.")
            created = _first_missing(root)
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, f"the folder {root}") from None
        db_path = root / DB_NAME
        db = lock = None
        try:
            lock = ProjectLock(root, program).acquire()
            use_rollback_journal(db_path)
            db = Database(db_path)
            db.migrate()
            with db.write() as tx:
                tx.execute("INSERT INTO meta (key, value) VALUES ('name', ?), ('created', ?)",
                           (name or root.name, str(time.time())))
        except BaseException as exc:
            if db is not None:
                db.close()
            if lock is not None:
                lock.release()
            _remove_created(root, created)
            if isinstance(exc, sqlite3.Error):
                raise sqlite_error(exc, db_path) from None
            if isinstance(exc, OSError):
                raise storage_error(exc, f"the folder {root}") from None
            raise
        return cls(root, db, lock=lock)

    @classmethod
    def open(cls, root: str | Path, durable: bool = True, *, read_only: bool = False,
             program: str = DEFAULT_PROGRAM) -> Project:
        """Open a project folder; older schemas are migrated, newer ones refused untouched.

        For writing (the default) the project's lock is taken first: a second writer gets
        :class:`ProjectBusyError` naming the holder. Jobs that a dead process left queued or running
        are listed in :attr:`interrupted`. ``read_only`` takes no lock and changes nothing on disk; it
        is also how a project on read-only media (a backup share, a DVD) is listed and exported: opened
        for writing there, it is refused with a message saying so.
        """
        root = Path(root)
        db_path = root / DB_NAME
        try:
            if not root.is_dir():
                raise ProjectError(f"{root} is not a folder; choose a project folder (one with {DB_NAME}).")
            if not db_path.is_file():
                raise ProjectError(f"{root} is not a MegaPortrait project (no {DB_NAME}); choose a project folder "
                                   "or create a new project.")
        except OSError as exc:
            raise storage_error(exc, f"the project folder {root}") from None
        if not read_only:
            problem = disk_problem(root)
            if problem not in (None, errno.ENOSPC) or not os.access(db_path, os.W_OK):
                code = problem or errno.EACCES
                raise ProjectError(os_error_message(OSError(code, os.strerror(code), str(root)), "the project"))
        version = read_schema_version(db_path)  # read-only: a damaged or newer file is left as it is
        if version > SCHEMA_VERSION:
            raise ProjectError(f"This project was written by a newer version of MegaPortrait (schema {version}, "
                               f"this version reads up to {SCHEMA_VERSION}); update the app to open it.")
        if version <= 0:
            if not _has_tables(db_path):
                raise ProjectError(f"{DB_NAME} in {root} holds no project data; it is not a MegaPortrait project.")
            raise ProjectError(f"{DB_NAME} in {root} has an unknown schema version ({version}); it is damaged or was "
                               "not made by MegaPortrait.")
        from .integrity import check_database

        check_database(db_path, f"{DB_NAME} in {root}", pages=None)  # every table and column there
        if read_only:
            if version < SCHEMA_VERSION:
                raise ProjectError("This project was written by an older version of MegaPortrait; open it for "
                                   "writing once (in the app, or any project command that changes it) to update it.")
            return cls(root, Database(db_path, read_only=True), durable=durable)
        lock = ProjectLock(root, program).acquire()
        db = None
        try:
            use_rollback_journal(db_path)
            db = Database(db_path)
            db.migrate()
            project = cls(root, db, durable=durable, lock=lock)
            # We hold the only write lock, so a job still marked queued or running has no process left to run it.
            project.interrupted = [j for j in project.jobs(("queued", "running")) if j.batch_id is None]
            from .queue import requeue_interrupted

            requeue_interrupted(project)  # a batch's jobs wait in its queue again, for Resume
        except BaseException as exc:
            if db is not None:
                db.close()
            lock.release()
            if isinstance(exc, sqlite3.Error):
                raise sqlite_error(exc, db_path) from None
            raise
        return project

    def close(self) -> None:
        self.db.close()
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def name(self) -> str:
        row = self.db.one("SELECT value FROM meta WHERE key = 'name'")
        return row["value"] if row else self.root.name

    def path_of(self, relative: str) -> Path:
        return self.files.absolute(relative)

    # ------------------------------------------------------------------ files

    def store(self, data: bytes, suffix: str, kind: str) -> StoredFile:
        """Write a file into the store (before any transaction that references it).

        Hold ``self.files.lock`` from here until that transaction commits, so repair and garbage
        collection in this process never take the file for an orphan.
        """
        return self.files.put(data, suffix, kind)

    @staticmethod
    def register(tx: sqlite3.Connection, stored: StoredFile) -> str:
        tx.execute("INSERT OR IGNORE INTO files (sha256, path, size, kind, created) VALUES (?, ?, ?, ?, ?)",
                   (stored.sha256, stored.path, stored.size, stored.kind, time.time()))
        return stored.sha256

    def collect_garbage(self) -> int:
        """Delete stored files no row refers to; returns how many rows went.

        Only files inside ``objects/`` are deleted: a row naming anything else loses its row, never a file.
        A file that a writer reused after the collection started (its time refreshed by :meth:`FileStore.put`,
        or a row naming it again) is kept.
        """
        referenced = " UNION ".join(f"SELECT {col} FROM {table} WHERE {col} IS NOT NULL"
                                    for table, col in FILE_REFERENCES)
        with self.files.lock:
            started = time.time()
            with self.db.write() as tx:
                rows = tx.execute(f"SELECT sha256, path FROM files WHERE sha256 NOT IN ({referenced})").fetchall()
                tx.executemany("DELETE FROM files WHERE sha256 = ?", [(r["sha256"],) for r in rows])
            for row in rows:  # after the commit: a crash here leaves orphans for repair, never a dangling row
                if not self.files.is_safe(row["path"], row["sha256"]):
                    continue  # not one of ours: never touched
                if self.files.age(row["path"]) <= time.time() - started:
                    continue  # reused since we started (a writer in another process refreshed it): kept
                if self.db.one("SELECT 1 FROM files WHERE sha256 = ?", (row["sha256"],)) is None:
                    self.files.remove(row["path"], row["sha256"])
        return len(rows)

    # ------------------------------------------------------------------ identities

    def create_identity(self, name: str, notes: str = "", trigger_token: str | None = None) -> int:
        name = _clean_name(name, "identity")
        token = trigger_token or "mp" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(4))
        try:
            with self.db.write() as tx:
                cur = tx.execute("INSERT INTO identities (name, notes, trigger_token, created) VALUES (?, ?, ?, ?)",
                                 (name, notes, token, time.time()))
        except sqlite3.IntegrityError:
            raise ProjectError(f"An identity named '{name}' already exists; choose another name.") from None
        return int(cur.lastrowid)

    def ensure_identity(self, name: str) -> int:
        """The id of the identity called ``name``, created if there is none: one atomic insert-or-get, so two
        imports into the same new identity at once both land in it."""
        name = _clean_name(name, "identity")
        token = "mp" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(4))
        with self.db.write() as tx:
            tx.execute("""INSERT INTO identities (name, notes, trigger_token, created) VALUES (?, '', ?, ?)
                          ON CONFLICT (name) DO NOTHING""", (name, token, time.time()))
            return int(tx.execute("SELECT id FROM identities WHERE name = ?", (name,)).fetchone()[0])

    def identities(self) -> list[Identity]:
        rows = self.db.query(
            """SELECT i.*, f.path AS lora_path,
                      (SELECT count(*) FROM identity_photos p WHERE p.identity_id = i.id) AS photo_count,
                      (SELECT count(*) FROM identity_photos p WHERE p.identity_id = i.id
                          AND json_extract(p.quality, '$.ok') = 0) AS warning_count,
                      (SELECT CASE WHEN j.state = 'failed' THEN j.error END FROM jobs j
                          WHERE j.identity_id = i.id AND j.kind = 'train' ORDER BY j.id DESC LIMIT 1)
                          AS training_error
               FROM identities i LEFT JOIN files f ON f.sha256 = i.lora_sha ORDER BY i.name COLLATE NOCASE""")
        return [_identity(r) for r in rows]

    def identity(self, identity_id: int) -> Identity:
        for item in self.identities():
            if item.id == identity_id:
                return item
        raise ProjectError(f"Identity {identity_id} does not exist in this project.")

    def identity_by_name(self, name: str) -> Identity:
        for item in self.identities():
            if item.name == name:
                return item
        raise ProjectError(f"No identity named '{name}' in this project.")

    def rename_identity(self, identity_id: int, name: str) -> None:
        name = _clean_name(name, "identity")
        try:
            with self.db.write() as tx:
                changed = tx.execute("UPDATE identities SET name = ? WHERE id = ?", (name, identity_id)).rowcount
        except sqlite3.IntegrityError:
            raise ProjectError(f"An identity named '{name}' already exists; choose another name.") from None
        _must_exist(changed, "Identity", identity_id)

    def update_identity(self, identity_id: int, *, notes: str | None = None, trigger_token: str | None = None,
                        training_params: dict | None = None) -> None:
        sets = {"notes": notes, "trigger_token": trigger_token,
                "training_params": None if training_params is None else json.dumps(training_params)}
        sets = {k: v for k, v in sets.items() if v is not None}
        if not sets:
            return
        with self.db.write() as tx:
            changed = tx.execute(f"UPDATE identities SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                                 (*sets.values(), identity_id)).rowcount
        _must_exist(changed, "Identity", identity_id)

    def set_training(self, identity_id: int, state: str, progress: float | None = None,
                     lora: bytes | None = None) -> None:
        """Record the training state (and, when done, the LoRA file) of an identity."""
        if state not in TRAINING_STATES:
            raise ValueError(f"unknown training state {state!r}")
        with self.files.lock:
            stored = self.store(lora, ".safetensors", "lora") if lora is not None else None
            with self.db.write() as tx:
                sha = self.register(tx, stored) if stored else None
                changed = tx.execute(
                    """UPDATE identities SET training_state = ?,
                           training_progress = COALESCE(?, training_progress), lora_sha = COALESCE(?, lora_sha)
                       WHERE id = ?""", (state, progress, sha, identity_id)).rowcount
        _must_exist(changed, "Identity", identity_id)

    def delete_identity(self, identity_id: int) -> None:
        """Delete an identity and its photos (files too). Its outputs stay in the history."""
        with self.db.write() as tx:
            changed = tx.execute("DELETE FROM identities WHERE id = ?", (identity_id,)).rowcount
        _must_exist(changed, "Identity", identity_id)
        self.collect_garbage()

    def identity_photos(self, identity_id: int) -> list[IdentityPhoto]:
        rows = self.db.query("""SELECT p.*, f.path FROM identity_photos p JOIN files f ON f.sha256 = p.file_sha
                                WHERE p.identity_id = ? ORDER BY p.id""", (identity_id,))
        return [IdentityPhoto(r["id"], r["identity_id"], r["path"], r["original_name"], r["width"], r["height"],
                              json.loads(r["faces"]), json.loads(r["quality"]),
                              None if r["embedding"] is None else np.frombuffer(r["embedding"], np.float32).copy(),
                              r["created"]) for r in rows]

    def delete_identity_photo(self, photo_id: int) -> None:
        with self.db.write() as tx:
            changed = tx.execute("DELETE FROM identity_photos WHERE id = ?", (photo_id,)).rowcount
        _must_exist(changed, "Photo", photo_id)
        self.collect_garbage()

    # ------------------------------------------------------------------ references and masks

    def references(self) -> list[Reference]:
        rows = self.db.query("""SELECT r.*, f.path FROM reference_images r JOIN files f ON f.sha256 = r.file_sha
                                ORDER BY r.id""")
        return [_reference(r) for r in rows]

    def reference(self, reference_id: int) -> Reference:
        row = self.db.one("""SELECT r.*, f.path FROM reference_images r JOIN files f ON f.sha256 = r.file_sha
                             WHERE r.id = ?""", (reference_id,))
        if row is None:
            raise ProjectError(f"Reference {reference_id} does not exist in this project.")
        return _reference(row)

    def rename_reference(self, reference_id: int, name: str) -> None:
        name = _clean_name(name, "reference")
        with self.db.write() as tx:
            changed = tx.execute("UPDATE reference_images SET name = ? WHERE id = ?", (name, reference_id)).rowcount
        _must_exist(changed, "Reference", reference_id)

    def choose_face(self, reference_id: int, index: int) -> None:
        ref = self.reference(reference_id)
        if not 0 <= index < ref.face_count:
            raise ProjectError(f"Face {index + 1} was asked for, but the reference has {ref.face_count} face(s).")
        with self.db.write() as tx:
            tx.execute("UPDATE reference_images SET chosen_face = ? WHERE id = ?", (index, reference_id))

    def delete_reference(self, reference_id: int) -> None:
        """Delete a reference and its masks (files too). Its outputs stay in the history."""
        with self.db.write() as tx:
            changed = tx.execute("DELETE FROM reference_images WHERE id = ?", (reference_id,)).rowcount
        _must_exist(changed, "Reference", reference_id)
        self.collect_garbage()

    def masks(self, reference_id: int) -> list[Mask]:
        rows = self.db.query("""SELECT m.*, f.path FROM masks m JOIN files f ON f.sha256 = m.file_sha
                                WHERE m.reference_id = ? ORDER BY m.version""", (reference_id,))
        return [Mask(r["id"], r["reference_id"], r["version"], r["source"], r["path"], r["created"]) for r in rows]

    def current_mask(self, reference_id: int) -> Mask | None:
        """The newest mask version (a user edit if there is one, else the automatic mask)."""
        masks = self.masks(reference_id)
        return masks[-1] if masks else None

    def save_mask(self, reference_id: int, mask: np.ndarray, source: str = "user") -> int:
        """Store a mask (float ``[0, 1]`` or uint8) as the reference's next version; returns the version."""
        ref = self.reference(reference_id)
        if mask.shape[:2] != (ref.height, ref.width):
            raise ProjectError(f"The mask is {mask.shape[1]}×{mask.shape[0]} but the reference is "
                               f"{ref.width}×{ref.height}.")
        data = png_bytes(to_uint8(mask))
        with self.files.lock:
            stored = self.store(data, ".png", "mask")
            with self.db.write() as tx:
                sha = self.register(tx, stored)
                row = tx.execute("SELECT COALESCE(MAX(version), -1) + 1 FROM masks WHERE reference_id = ?",
                                 (reference_id,)).fetchone()
                version = 0 if source == "auto" else max(1, int(row[0]))
                tx.execute("""INSERT INTO masks (reference_id, version, source, file_sha, created)
                              VALUES (?, ?, ?, ?, ?)
                              ON CONFLICT (reference_id, version) DO UPDATE SET file_sha = excluded.file_sha""",
                           (reference_id, version, source, sha, time.time()))
        return version

    def reset_mask(self, reference_id: int) -> None:
        """Drop the user's mask versions: the automatic mask is current again."""
        with self.db.write() as tx:
            tx.execute("DELETE FROM masks WHERE reference_id = ? AND source = 'user'", (reference_id,))
        self.collect_garbage()

    # ------------------------------------------------------------------ outputs

    def record_output(self, *, request: dict, engine: str, final: np.ndarray, final_file: bytes | None = None,
                      final_suffix: str = ".png",
                      stages: dict[str, np.ndarray] | None = None, identity_id: int | None = None,
                      reference_id: int | None = None, models: dict | None = None,
                      identity_score: float | None = None, timings: dict | None = None,
                      tags: tuple[str, ...] = (), created: float | None = None, job_id: int | None = None,
                      identity_report: dict | None = None, batch_id: int | None = None,
                      stage_files: dict[str, bytes] | None = None) -> int:
        """Record one output atomically: its files first, then its rows in one transaction.

        ``job_id``: the job that made it is marked done in the same transaction, so a job is never
        recorded twice nor left "running" with its output saved.

        ``final`` is the image (for the thumbnail, and stored as PNG unless ``final_file`` gives the
        encoded file, e.g. a 16-bit TIFF with the reference's ICC profile, and ``final_suffix`` its type).
        ``identity_report`` is an ``IdentityReport.to_json()``; its verdict is kept in its own column.
        ``stage_files``: the stages already encoded as PNG (by the worker that ran it), in place of ``stages``.
        """
        final_data = final_file if final_file is not None else png_bytes(final)
        thumb_data = _thumbnail_bytes(final)
        stage_data = stage_files if stage_files is not None else {
            name: png_bytes(image) for name, image in (stages or {}).items()}
        with self.files.lock:  # from storing the files to committing their rows: repair never sees them as orphans
            final_stored = self.store(final_data, final_suffix, "output")
            thumb_file = self.store(thumb_data, ".jpg", "thumbnail")
            stage_files = {name: self.store(data, ".png", "stage") for name, data in stage_data.items()}
            with self.db.write() as tx:
                final_sha = self.register(tx, final_stored)
                thumb_sha = self.register(tx, thumb_file)
                cur = tx.execute(
                    """INSERT INTO outputs (identity_id, reference_id, request, engine, models, final_sha, thumb_sha,
                                            identity_score, timings, created, identity_report, verdict, batch_id)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (identity_id, reference_id, json.dumps(request, sort_keys=True), engine,
                     json.dumps(models or {}, sort_keys=True), final_sha, thumb_sha, identity_score,
                     json.dumps(timings or {}), created if created is not None else time.time(),
                     None if identity_report is None else json.dumps(identity_report, sort_keys=True),
                     None if identity_report is None else identity_report.get("verdict"), batch_id))
                output_id = int(cur.lastrowid)
                for name, stored in stage_files.items():
                    tx.execute("INSERT INTO output_stages (output_id, name, file_sha) VALUES (?, ?, ?)",
                               (output_id, name, self.register(tx, stored)))
                tx.executemany("INSERT OR IGNORE INTO output_tags (output_id, tag) VALUES (?, ?)",
                               [(output_id, t) for t in tags])
                if job_id is not None:
                    _update_job(tx, job_id, state="done", progress=1.0, output_id=output_id)
        return output_id

    def record_run(self, result, identity_id: int | None = None, reference_id: int | None = None,
                   models: dict | None = None, stages: bool = True, job_id: int | None = None,
                   batch_id: int | None = None) -> int:
        """Record a :class:`core.pipeline.RunResult`: the final keeps its bit depth (PNG, or 16-bit TIFF),
        ICC profile and EXIF."""
        from ..core.imaging import encode_image

        deep = result.final.bit_depth == 16
        request = self.portable_request(result.request.to_dict())
        encoded = encode_image(result.final, "TIFF" if deep else "PNG",
                               text={"megaportrait:request": json.dumps(request, sort_keys=True)})
        # The final stage is the final itself; the other stages are kept for the stage switcher.
        kept = {k: v for k, v in result.stages.items() if k != "final"} if stages else None
        encoded_stages = (result.stage_files or None) if stages else {}
        return self.record_output(
            request=request, engine=result.request.engine, final=result.final.rgb8(),
            final_file=encoded, final_suffix=".tif" if deep else ".png", stages=kept, stage_files=encoded_stages,
            identity_id=identity_id,
            reference_id=reference_id, models=models, identity_score=result.identity_score,
            timings=result.timings, job_id=job_id, identity_report=_report_json(result), batch_id=batch_id)

    def portable_request(self, request: dict) -> dict:
        """The request with paths inside the project made relative, so a moved project still recalls."""
        def rel(path: str | None) -> str | None:
            if path is None:
                return None
            try:
                return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
            except ValueError:
                return path
        out = dict(request)
        out["identity"] = [rel(p) for p in request.get("identity", [])]
        for key in ("reference", "mask"):
            if key in out:
                out[key] = rel(out[key])
        if isinstance(out.get("diffusion"), dict):  # the identity LoRA version the run used
            out["diffusion"] = {**out["diffusion"], "lora": rel(out["diffusion"].get("lora"))}
        return out

    def resolve_request(self, request: dict) -> dict:
        """The inverse of :meth:`portable_request`: project-relative paths become absolute again."""
        def absolute(path: str | None) -> str | None:
            if path is None or Path(path).is_absolute():
                return path  # the user's own file outside the project, named as it was
            resolved = (self.root / path).resolve()
            if not resolved.is_relative_to(self.root.resolve()):
                raise UnsafePathError(f"The stored request names '{str(path)[:120]}', outside the project; it "
                                      "cannot be recalled.")
            return str(self.root / path)
        out = dict(request)
        out["identity"] = [absolute(p) for p in request.get("identity", [])]
        for key in ("reference", "mask"):
            if key in out:
                out[key] = absolute(out[key])
        if isinstance(out.get("diffusion"), dict):
            out["diffusion"] = {**out["diffusion"], "lora": absolute(out["diffusion"].get("lora"))}
        return out

    def output(self, output_id: int) -> Output:
        from .history import output_by_id

        return output_by_id(self, output_id)

    def set_rating(self, output_id: int, rating: int) -> None:
        if not 0 <= rating <= 5:
            raise ProjectError("A rating is 0 to 5 stars.")
        with self.db.write() as tx:
            _must_exist(tx.execute("UPDATE outputs SET rating = ? WHERE id = ?", (rating, output_id)).rowcount,
                        "Output", output_id)

    def set_favourite(self, output_id: int, favourite: bool) -> None:
        with self.db.write() as tx:
            changed = tx.execute("UPDATE outputs SET favourite = ? WHERE id = ?", (int(favourite), output_id)).rowcount
        _must_exist(changed, "Output", output_id)

    def add_tag(self, output_id: int, tag: str) -> None:
        tag = _clean_name(tag, "tag")
        with self.db.write() as tx:
            tx.execute("INSERT OR IGNORE INTO output_tags (output_id, tag) VALUES (?, ?)", (output_id, tag))

    def remove_tag(self, output_id: int, tag: str) -> None:
        with self.db.write() as tx:
            tx.execute("DELETE FROM output_tags WHERE output_id = ? AND tag = ?", (output_id, tag))

    def delete_output(self, output_id: int) -> None:
        with self.db.write() as tx:
            _must_exist(tx.execute("DELETE FROM outputs WHERE id = ?", (output_id,)).rowcount, "Output", output_id)
        self.collect_garbage()

    # ------------------------------------------------------------------ jobs

    def add_job(self, kind: str, payload: dict, identity_id: int | None = None) -> int:
        """Queue a job (a run or a training): it is in the project before any work starts."""
        now = time.time()
        with self.db.write() as tx:
            cur = tx.execute("""INSERT INTO jobs (kind, state, payload, identity_id, created, updated)
                                VALUES (?, 'queued', ?, ?, ?, ?)""", (kind, json.dumps(payload), identity_id, now, now))
        return int(cur.lastrowid)

    def update_job(self, job_id: int, *, state: str | None = None, progress: float | None = None,
                   error: str | None = None, output_id: int | None = None) -> None:
        if state is not None and state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        with self.db.write() as tx:
            _update_job(tx, job_id, state=state, progress=progress, error=error, output_id=output_id)

    def start_job(self, job_id: int) -> None:
        """The job is running in this process (its error from an earlier attempt is cleared)."""
        with self.db.write() as tx:
            _must_exist(tx.execute("UPDATE jobs SET state = 'running', error = NULL, updated = ? WHERE id = ?",
                                   (time.time(), job_id)).rowcount, "Job", job_id)

    def job(self, job_id: int) -> Job:
        rows = self.db.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise ProjectError(f"Job {job_id} does not exist in this project.")
        return job_from_row(rows[0])

    def jobs(self, states: tuple[str, ...] | None = None) -> list[Job]:
        if states:
            rows = self.db.query(f"SELECT * FROM jobs WHERE state IN ({','.join('?' * len(states))}) ORDER BY id",
                                 tuple(states))
        else:
            rows = self.db.query("SELECT * FROM jobs ORDER BY id")
        return [job_from_row(r) for r in rows]

    def interrupted_jobs(self) -> list[Job]:
        """Jobs that a process which has ended left queued or running: offer to run them again or
        discard them. A project open for writing lists those it found on opening (its own jobs are
        not interrupted); a read-only view lists them only while no process has the project open."""
        if self.lock is not None:
            waiting = {j.id for j in self.jobs(("queued", "running"))}
            return [j for j in self.interrupted if j.id in waiting]
        from .lock import held_elsewhere

        return [] if held_elsewhere(self.root) else [j for j in self.jobs(("queued", "running")) if j.batch_id is None]

    def resume_job(self, job_id: int) -> None:
        """Queue an interrupted (or failed, or cancelled) job again."""
        self.update_job(job_id, state="queued", progress=0.0)

    def discard_job(self, job_id: int) -> None:
        """The user chose not to run an interrupted job again: it is kept as cancelled."""
        self.update_job(job_id, state="cancelled", error="Discarded after an interruption.")


# ------------------------------------------------------------------------------------------ helpers


def _update_job(tx: sqlite3.Connection, job_id: int, *, state: str | None = None, progress: float | None = None,
                error: str | None = None, output_id: int | None = None) -> None:
    changed = tx.execute(
        """UPDATE jobs SET state = COALESCE(?, state), progress = COALESCE(?, progress),
               error = COALESCE(?, error), output_id = COALESCE(?, output_id), updated = ? WHERE id = ?""",
        (state, progress, error, output_id, time.time(), job_id)).rowcount
    _must_exist(changed, "Job", job_id)


def job_from_row(r: sqlite3.Row) -> Job:
    return Job(r["id"], r["kind"], r["state"], json.loads(r["payload"]), r["identity_id"], r["output_id"],
               r["progress"], r["error"], r["created"], r["updated"], r["batch_id"], r["reference_id"],
               r["position"], r["attempts"], r["error_kind"], r["worker"], r["key"], r["after_job"])


def _report_json(result) -> dict | None:
    report = getattr(result, "identity_report", None)
    return None if report is None else report.to_json()


def _has_tables(db_path: Path) -> bool:
    con = sqlite3.connect(f"file:{urllib.parse.quote(str(db_path))}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'meta'").fetchone()[0] > 0
    finally:
        con.close()


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what a ``mkdir(parents=True)`` creates)."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def _remove_created(root: Path, created: Path | None) -> None:
    """Undo a failed :meth:`Project.create`: its database and lock files, and the folders it made."""
    for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", LOCK_NAME):
        with contextlib.suppress(OSError):
            (root / name).unlink(missing_ok=True)
    if created is None:
        return
    for folder in (root, *root.parents):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only empty folders go
        if folder == created:
            break


def _clean_name(name: str, what: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise ProjectError(f"The {what} needs a name.")
    if len(name) > 200:
        raise ProjectError(f"The {what} name is too long (200 characters at most).")
    return name


def _must_exist(changed: int, what: str, item_id: int) -> None:
    if not changed:
        raise ProjectError(f"{what} {item_id} does not exist in this project.")


def _thumbnail_bytes(image: np.ndarray) -> bytes:
    thumb = Image.fromarray(to_uint8(np.asarray(image)))
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.convert("RGB").save(out, format="JPEG", quality=88)
    return out.getvalue()


def _identity(r: sqlite3.Row) -> Identity:
    return Identity(r["id"], r["name"], r["notes"], r["trigger_token"], json.loads(r["training_params"]),
                    r["training_state"], r["training_progress"], r["lora_path"], r["photo_count"],
                    r["warning_count"] or 0, r["created"], r["training_error"])


def _reference(r: sqlite3.Row) -> Reference:
    return Reference(r["id"], r["name"], r["path"], r["original_name"], r["width"], r["height"],
                     json.loads(r["faces"]), r["face_count"], r["chosen_face"], r["created"])
