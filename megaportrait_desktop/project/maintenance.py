"""Checking and repairing a project: rows whose files are missing, files no row names, damage."""

from __future__ import annotations

from dataclasses import dataclass, field

from .database import FILE_REFERENCES
from .files import sha256_of
from .project import Project


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found; ``ok`` when there is nothing to repair."""

    integrity: str = "ok"
    missing_files: tuple[str, ...] = ()       # files rows whose file is gone
    damaged_files: tuple[str, ...] = ()       # content no longer matches its sha256 (deep check only)
    orphan_files: tuple[str, ...] = ()        # files on disk that no files row names (or .part leftovers)
    unreferenced_rows: tuple[str, ...] = ()   # files rows that no table refers to
    broken_outputs: tuple[int, ...] = field(default=())  # outputs whose final image is missing or damaged

    @property
    def ok(self) -> bool:
        return self.integrity == "ok" and not (self.missing_files or self.damaged_files or self.orphan_files
                                               or self.unreferenced_rows or self.broken_outputs)

    def summary(self) -> str:
        if self.ok:
            return "Project OK: every row's files are present and no stray files."
        parts = []
        if self.integrity != "ok":
            parts.append(f"database check: {self.integrity}")
        for label, items in (("missing files", self.missing_files), ("damaged files", self.damaged_files),
                             ("orphan files", self.orphan_files), ("unreferenced file rows", self.unreferenced_rows),
                             ("outputs without their image", self.broken_outputs)):
            if items:
                parts.append(f"{len(items)} {label}")
        return "Problems: " + ", ".join(parts) + ". Run repair to fix them."


def verify(project: Project, deep: bool = False) -> VerifyReport:
    """Compare rows and files. ``deep`` also re-hashes every file (slow on big projects)."""
    integrity = project.db.one("PRAGMA quick_check")[0]
    rows = project.db.query("SELECT sha256, path FROM files")
    known = {r["path"] for r in rows}
    missing, damaged = [], []
    for r in rows:
        path = project.path_of(r["path"])
        if not path.is_file():
            missing.append(r["path"])
        elif deep and sha256_of(path) != r["sha256"]:
            damaged.append(r["path"])
    orphans = [p for p in project.files.walk() if p not in known]
    referenced = " UNION ".join(f"SELECT {c} FROM {t} WHERE {c} IS NOT NULL" for t, c in FILE_REFERENCES)
    unreferenced = [r["path"] for r in project.db.query(f"SELECT path FROM files WHERE sha256 NOT IN ({referenced})")]
    bad = set(missing) | set(damaged)
    broken = [r["id"] for r in project.db.query(
        "SELECT o.id, f.path FROM outputs o JOIN files f ON f.sha256 = o.final_sha") if r["path"] in bad]
    return VerifyReport(integrity, tuple(missing), tuple(damaged), tuple(orphans), tuple(unreferenced), tuple(broken))


def repair(project: Project, deep: bool = False) -> VerifyReport:
    """Make every row's files present: drop rows that lost their file, delete stray files.

    An output whose final image is gone cannot be rebuilt and is removed; a missing stage image or
    thumbnail only loses that image. Returns the report of a fresh :func:`verify` afterwards.
    """
    report = verify(project, deep=deep)
    bad = set(report.missing_files) | set(report.damaged_files)
    if bad:
        marks = ",".join("?" * len(bad))
        shas = [r["sha256"] for r in project.db.query(f"SELECT sha256 FROM files WHERE path IN ({marks})", tuple(bad))]
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
        for path in report.damaged_files:
            project.files.remove(path)
    for path in report.orphan_files:
        project.files.remove(path)
    project.collect_garbage()
    return verify(project, deep=deep)
