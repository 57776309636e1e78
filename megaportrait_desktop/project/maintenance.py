"""Checking and repairing a project: rows whose files are missing, files no row names, damage.

Repair never follows a path it read from the database outside ``objects/`` (see
:meth:`FileStore.absolute`): a row naming anything else is dropped, and its "file" is left alone.
It holds the project's in-process store lock, so it never sees the files a writer in this process
has stored but not yet committed as orphans; files younger than :data:`GRACE_S` are left alone too,
for a writer in another process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import leftovers
from .database import FILE_REFERENCES
from .errors import UnsafePathError
from .files import sha256_of
from .project import Project

#: Files under ``objects/`` that no row names yet are left alone this long: a write may be under way.
GRACE_S = 600.0


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found; ``ok`` when there is nothing to repair."""

    integrity: str = "ok"
    missing_files: tuple[str, ...] = ()       # files rows whose file is gone
    damaged_files: tuple[str, ...] = ()       # content no longer matches its sha256 (deep check only)
    orphan_files: tuple[str, ...] = ()        # files on disk that no files row names (or .part leftovers)
    unreferenced_rows: tuple[str, ...] = ()   # files rows that no table refers to
    broken_outputs: tuple[int, ...] = field(default=())  # outputs whose final image is missing or damaged
    unsafe_rows: tuple[str, ...] = ()         # files rows naming a path outside objects/ (or a link): never used
    recent_files: tuple[str, ...] = ()        # files not named by a row yet, but younger than GRACE_S: left alone

    @property
    def ok(self) -> bool:
        return self.integrity == "ok" and not (self.missing_files or self.damaged_files or self.orphan_files
                                               or self.unreferenced_rows or self.broken_outputs or self.unsafe_rows)

    def summary(self) -> str:
        recent = (f" {len(self.recent_files)} file(s) written in the last {GRACE_S / 60:.0f} minutes are not in the "
                  "project yet (a write may be under way); they are left alone." if self.recent_files else "")
        if self.ok:
            return "Project OK: every row's files are present and no stray files." + recent
        parts = []
        if self.integrity != "ok":
            parts.append(f"database check: {self.integrity}")
        for label, items in (("rows naming files outside the project (never used)", self.unsafe_rows),
                             ("missing files", self.missing_files), ("damaged files", self.damaged_files),
                             ("orphan files", self.orphan_files), ("unreferenced file rows", self.unreferenced_rows),
                             ("outputs without their image", self.broken_outputs)):
            if items:
                parts.append(f"{len(items)} {label}")
        return "Problems: " + ", ".join(parts) + ". Run repair to fix them." + recent


def verify(project: Project, deep: bool = False) -> VerifyReport:
    """Compare rows and files. ``deep`` also re-hashes every file (slow on big projects)."""
    with project.files.lock:
        return _verify(project, deep)


def _verify(project: Project, deep: bool) -> VerifyReport:
    integrity = project.db.one("PRAGMA quick_check")[0]
    rows = project.db.query("SELECT sha256, path FROM files")
    unsafe, missing, damaged = [], [], []
    known = set()
    for r in rows:
        try:
            path = project.files.absolute(r["path"], r["sha256"])
        except UnsafePathError:
            unsafe.append(str(r["path"]))
            continue
        known.add(r["path"])
        if not path.is_file():
            missing.append(r["path"])
        elif deep and sha256_of(path) != r["sha256"]:
            damaged.append(r["path"])
    orphans, recent = [], []
    for p in project.files.walk():
        if p not in known:
            (recent if project.files.age(p) < GRACE_S else orphans).append(p)
    referenced = " UNION ".join(f"SELECT {c} FROM {t} WHERE {c} IS NOT NULL" for t, c in FILE_REFERENCES)
    unreferenced = [str(r["path"])
                    for r in project.db.query(f"SELECT path FROM files WHERE sha256 NOT IN ({referenced})")]
    bad = set(missing) | set(damaged) | set(unsafe)
    broken = [r["id"] for r in project.db.query(
        "SELECT o.id, f.path FROM outputs o JOIN files f ON f.sha256 = o.final_sha") if str(r["path"]) in bad]
    return VerifyReport(integrity, tuple(missing), tuple(damaged), tuple(orphans), tuple(unreferenced), tuple(broken),
                        tuple(unsafe), tuple(recent))


def repair(project: Project, deep: bool = False) -> VerifyReport:
    """Make every row's files present: drop rows that lost their file, delete stray files.

    An output whose final image is gone cannot be rebuilt and is removed; a missing stage image or
    thumbnail only loses that image. Rows naming a path outside ``objects/`` are dropped like rows
    whose file is missing; only files inside ``objects/`` are ever deleted. Stale leftovers of killed
    exports (copies of the database beside the project) are removed too. Returns the report of a
    fresh :func:`verify` afterwards.
    """
    with project.files.lock:
        report = _verify(project, deep)
        bad = set(report.missing_files) | set(report.damaged_files) | set(report.unsafe_rows)
        if bad:
            # By the rows themselves: a hostile row's path need not even be text.
            shas = [r["sha256"] for r in project.db.query("SELECT sha256, path FROM files") if str(r["path"]) in bad]
            smarks = ",".join("?" * len(shas))
            with project.db.write() as tx:
                tx.execute(f"DELETE FROM outputs WHERE final_sha IN ({smarks})", shas)
                tx.execute(f"UPDATE outputs SET thumb_sha = NULL WHERE thumb_sha IN ({smarks})", shas)
                tx.execute(f"DELETE FROM output_stages WHERE file_sha IN ({smarks})", shas)
                tx.execute(f"DELETE FROM masks WHERE file_sha IN ({smarks})", shas)
                tx.execute(f"DELETE FROM identity_photos WHERE file_sha IN ({smarks})", shas)
                tx.execute(f"DELETE FROM reference_images WHERE file_sha IN ({smarks})", shas)
                tx.execute(f"UPDATE identities SET lora_sha = NULL, training_state = 'untrained' "
                           f"WHERE lora_sha IN ({smarks})", shas)
                tx.execute(f"DELETE FROM files WHERE sha256 IN ({smarks})", shas)
            for path in report.damaged_files:  # checked safe by _verify: inside objects/
                project.files.remove(path)
        for path in report.orphan_files:
            project.files.remove_stray(path)
        project.collect_garbage()
        project.files.prune()
        leftovers.sweep(project.root)
        return _verify(project, deep)
