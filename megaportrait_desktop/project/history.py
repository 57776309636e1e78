"""The output history: list, sort and filter outputs, a page at a time."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .errors import ProjectError
from .project import Output, Project

SORTS = {
    "newest": "o.created DESC, o.id DESC",
    "oldest": "o.created ASC, o.id ASC",
    # SQLite sorts NULL lowest, so outputs without a score come last, and the index serves the order.
    "score": "o.identity_score DESC, o.id DESC",
    "rating": "o.rating DESC, o.created DESC, o.id DESC",
}


#: Verdict filters: the report's verdicts, and "none" for outputs without a report.
VERDICT_FILTERS = ("client", "mix", "reference", "none")


@dataclass(frozen=True)
class OutputQuery:
    """Which outputs to list, in what order, and which page (0-based)."""

    identity_id: int | None = None
    reference_id: int | None = None
    min_score: float | None = None
    min_rating: int | None = None
    tag: str | None = None
    favourite: bool | None = None
    since: float | None = None
    until: float | None = None
    #: Only outputs with this identity verdict (``"client"``, ``"mix"``, ``"reference"``), or ``"none"``:
    #: outputs without a report (recorded before reports, or with no recogniser).
    verdict: str | None = None
    #: Only the outputs of this batch.
    batch_id: int | None = None
    #: Outputs left out (the app's deleted outputs while their deletion can still be undone).
    exclude_ids: tuple[int, ...] = ()
    #: Only drafts (``"draft"``) or only final renders (``"final"``).
    quality: str | None = None
    sort: str = "newest"
    page: int = 0
    page_size: int = 100


@dataclass(frozen=True)
class Page:
    items: list[Output]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


_SELECT = """
SELECT o.*, i.name AS identity_name, r.name AS reference_name, f.path AS final_path, t.path AS thumb_path
FROM outputs o
LEFT JOIN identities i ON i.id = o.identity_id
LEFT JOIN reference_images r ON r.id = o.reference_id
JOIN files f ON f.sha256 = o.final_sha
LEFT JOIN files t ON t.sha256 = o.thumb_sha
"""


def list_outputs(project: Project, query: OutputQuery = OutputQuery()) -> Page:
    """One page of outputs matching ``query``."""
    if query.sort not in SORTS:
        raise ProjectError(f"Unknown sort '{query.sort}'; use one of {', '.join(SORTS)}.")
    if query.verdict is not None and query.verdict not in VERDICT_FILTERS:
        raise ProjectError(f"Unknown verdict '{query.verdict}'; use one of {', '.join(VERDICT_FILTERS)}.")
    if query.page < 0 or not 1 <= query.page_size <= 1000:
        raise ProjectError("Pages start at 0 and hold 1 to 1000 rows.")
    where, params = _where(query)
    total = project.db.one(f"SELECT count(*) FROM outputs o {where}", params)[0]
    rows = project.db.query(f"{_SELECT} {where} ORDER BY {SORTS[query.sort]} LIMIT ? OFFSET ?",
                            (*params, query.page_size, query.page * query.page_size))
    return Page(_with_details(project, rows), int(total), query.page, query.page_size)


def output_by_id(project: Project, output_id: int) -> Output:
    rows = project.db.query(f"{_SELECT} WHERE o.id = ?", (output_id,))
    if not rows:
        raise ProjectError(f"Output {output_id} does not exist in this project.")
    return _with_details(project, rows)[0]


def _where(q: OutputQuery) -> tuple[str, tuple]:
    clauses, params = [], []
    for sql, value in (("o.identity_id = ?", q.identity_id), ("o.reference_id = ?", q.reference_id),
                       ("o.batch_id = ?", q.batch_id),
                       ("o.identity_score >= ?", q.min_score), ("o.rating >= ?", q.min_rating),
                       ("o.created >= ?", q.since), ("o.created < ?", q.until)):
        if value is not None:
            clauses.append(sql)
            params.append(value)
    if q.verdict == "none":
        clauses.append("o.verdict IS NULL")
    elif q.verdict is not None:
        clauses.append("o.verdict = ?")
        params.append(q.verdict)
    if q.quality is not None:
        clauses.append("COALESCE(json_extract(o.request, '$.diffusion.quality'), 'final') = ?")
        params.append(q.quality)
    if q.favourite is not None:
        clauses.append("o.favourite = ?")
        params.append(int(q.favourite))
    if q.exclude_ids:
        clauses.append(f"o.id NOT IN ({','.join('?' * len(q.exclude_ids))})")
        params.extend(q.exclude_ids)
    if q.tag:
        clauses.append("EXISTS (SELECT 1 FROM output_tags g WHERE g.output_id = o.id AND g.tag = ?)")
        params.append(q.tag)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", tuple(params)


def _with_details(project: Project, rows: list) -> list[Output]:
    """Rows → Output, with tags and stage paths fetched in two queries for the whole page."""
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    marks = ",".join("?" * len(ids))
    tags: dict[int, list[str]] = {i: [] for i in ids}
    for r in project.db.query(f"SELECT output_id, tag FROM output_tags WHERE output_id IN ({marks}) ORDER BY tag",
                              tuple(ids)):
        tags[r["output_id"]].append(r["tag"])
    stages: dict[int, dict[str, str]] = {i: {} for i in ids}
    offsets: dict[int, dict[str, tuple[int, int]]] = {i: {} for i in ids}
    for r in project.db.query(f"""SELECT s.output_id, s.name, s.x, s.y, f.path FROM output_stages s
                                   JOIN files f ON f.sha256 = s.file_sha WHERE s.output_id IN ({marks})""",
                              tuple(ids)):
        stages[r["output_id"]][r["name"]] = r["path"]
        offsets[r["output_id"]][r["name"]] = (int(r["x"]), int(r["y"]))
    return [Output(r["id"], r["identity_id"], r["reference_id"], r["identity_name"], r["reference_name"],
                   json.loads(r["request"]), r["engine"], json.loads(r["models"]), r["final_path"], r["thumb_path"],
                   r["identity_score"], json.loads(r["timings"]), r["created"], r["rating"], bool(r["favourite"]),
                   tuple(tags[r["id"]]), stages[r["id"]],
                   None if r["identity_report"] is None else json.loads(r["identity_report"]), r["verdict"],
                   r["batch_id"], offsets[r["id"]])
            for r in rows]


def stage_pixels(crop: np.ndarray, offset: tuple[int, int], final: np.ndarray) -> np.ndarray:
    """A full-resolution stage image (``pasted``): its stored crop laid over the (8-bit) final at ``offset``.

    Such a stage differs from the final only inside the run's paste region, so that part is all a project
    keeps of it (see :meth:`.project.Project.record_run`); one stored whole (before schema 4) has offset
    (0, 0) and the final's size, and comes back as it is. Whatever a damaged row says, the crop is clipped
    to the image.
    """
    x, y = offset
    h, w = final.shape[:2]
    ch, cw = crop.shape[:2]
    if crop.ndim != final.ndim or not (0 <= x < w and 0 <= y < h):
        raise ProjectError("A stage image of this output does not fit its final image; run Verify/Repair on the "
                           "project.")
    whole = final.copy()
    whole[y:y + ch, x:x + cw] = crop[:h - y, :w - x]
    return whole
