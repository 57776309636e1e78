"""``python main.py project ...``: the project store from the command line."""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
import sys
from pathlib import Path

from ..core.errors import os_error_message
from . import batch_command
from .errors import ProjectError, disk_problem
from .exchange import export_project, import_project
from .history import SORTS, VERDICT_FILTERS, OutputQuery, list_outputs
from .imports import IMPORTED, identity_set_issues, import_identity_photos, import_references
from .maintenance import repair, verify
from .project import Project

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"}
#: Commands that only read the project.
READING = {"info", "list", "export", "contact-sheet"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    project = sub.add_parser("project", help="create, fill, list, export and check projects")
    cmds = project.add_subparsers(dest="project_command", metavar="<project command>", required=True)

    new = cmds.add_parser("new", help="create a project folder")
    new.add_argument("path")
    new.add_argument("--name")

    info = cmds.add_parser("info", help="what a project holds")
    info.add_argument("path")
    info.add_argument("--json", action="store_true")

    ident = cmds.add_parser("import-identity", help="import photos into an identity set (created if new)")
    ident.add_argument("path")
    ident.add_argument("--name", required=True, help="the identity's name")
    ident.add_argument("photos", nargs="+", help="photo files or folders")

    ref = cmds.add_parser("import-reference", help="import reference portraits")
    ref.add_argument("path")
    ref.add_argument("images", nargs="+", help="image files or folders")

    lst = cmds.add_parser("list", help="the output history, a page at a time")
    lst.add_argument("path")
    lst.add_argument("--identity", help="only this identity (name)")
    lst.add_argument("--tag")
    lst.add_argument("--min-score", type=float)
    lst.add_argument("--min-rating", type=int)
    lst.add_argument("--verdict", choices=VERDICT_FILTERS,
                     help="only outputs whose face reads as the client, a mix, still the reference person, or "
                          "with no identity report (none)")
    lst.add_argument("--sort", choices=sorted(SORTS), default="newest")
    lst.add_argument("--page", type=int, default=1, help="1-based page number")
    lst.add_argument("--page-size", type=int, default=50)
    lst.add_argument("--json", action="store_true")

    sheet = cmds.add_parser("contact-sheet", help="a PNG of outputs side by side, each with its identity verdict")
    sheet.add_argument("path")
    sheet.add_argument("out", help="the PNG to write")
    sheet.add_argument("--identity", help="only this identity (name)")
    sheet.add_argument("--verdict", choices=VERDICT_FILTERS)
    sheet.add_argument("--sort", choices=sorted(SORTS), default="newest")
    sheet.add_argument("--limit", type=int, default=48, help="at most this many outputs (default %(default)s)")
    sheet.add_argument("--columns", type=int, default=6)

    exp = cmds.add_parser("export", help="export one output (PNG/JPEG/TIFF), or the whole project as a zip")
    exp.add_argument("path")
    exp.add_argument("out", help="file to write: .png, .jpg or .tif with --output, else a .zip of the project")
    exp.add_argument("--output", type=int, help="the output id to export")
    exp.add_argument("--preset", help="an export preset by name (e.g. 'Web (2048 px JPEG, sRGB, sharpened for "
                     "screen)'): size, sharpening, sRGB, metadata; the file type follows OUT")
    exp.add_argument("--provenance", action="store_true",
                     help="embed MegaPortrait's provenance (client name, prompt, settings); off by default, for a "
                          "file that leaves the studio")

    imp = cmds.add_parser("import", help="unpack a project zip into a new folder")
    imp.add_argument("zip")
    imp.add_argument("path")

    batch_command.add_parser(cmds)

    ver = cmds.add_parser("verify", help="check that every row's files are present (and --repair)")
    ver.add_argument("path")
    ver.add_argument("--deep", action="store_true", help="re-hash every file")
    ver.add_argument("--repair", action="store_true", help="fix what verify finds")


def run(args: argparse.Namespace) -> int:
    command = args.project_command
    if command == "new":
        with Project.create(args.path, args.name, program="the command 'project new'") as project:
            print(f"Created project '{project.name}' in {project.root}")
        return 0
    if command == "import":
        with import_project(args.zip, args.path) as project:
            print(f"Imported project '{project.name}' into {project.root}")
        return 0
    # Reading commands open the project read-only: they work beside the app, which holds the write lock.
    read_only = command in READING or (command == "verify" and not args.repair)
    with Project.open(args.path, read_only=read_only, program=f"the command 'project {command}'") as project:
        if read_only and disk_problem(project.root) == errno.EROFS:
            print(f"note: {project.root} is on a read-only disk: list, info and export work; changes do not.",
                  file=sys.stderr)
        return {"info": _info, "import-identity": _import_identity, "import-reference": _import_reference,
                "list": _list, "contact-sheet": _contact_sheet, "export": _export,
                "verify": _verify, "batch": batch_command.run_batch}[command](project, args)


def _info(project: Project, args: argparse.Namespace) -> int:
    identities = project.identities()
    references = project.references()
    total = list_outputs(project, OutputQuery(page_size=1)).total
    jobs = project.interrupted_jobs()
    data = {"name": project.name, "path": str(project.root),
            "identities": [{"id": i.id, "name": i.name, "photos": i.photo_count, "warnings": i.warning_count,
                            "training": i.training_state,
                            "set_warnings": [issue.message for issue in identity_set_issues(project, i.id)]}
                           for i in identities],
            "references": [{"id": r.id, "name": r.name, "size": f"{r.width}x{r.height}", "faces": r.face_count}
                           for r in references],
            "outputs": total, "interrupted_jobs": [j.id for j in jobs]}
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    print(f"Project '{data['name']}' ({data['path']})")
    print(f"  identities: {len(identities)}")
    for i in data["identities"]:
        print(f"    #{i['id']} {i['name']}: {i['photos']} photos, {i['warnings']} with warnings, {i['training']}")
        for message in i["set_warnings"]:
            print(f"      warning: {message}")
    print(f"  references: {len(references)}")
    for r in data["references"]:
        print(f"    #{r['id']} {r['name']}: {r['size']}, {r['faces']} face(s)")
    print(f"  outputs: {total}")
    if jobs:
        print(f"  interrupted jobs (resume them in the app): {', '.join(str(j) for j in data['interrupted_jobs'])}")
    return 0


def _import_identity(project: Project, args: argparse.Namespace) -> int:
    identity_id = project.ensure_identity(args.name)  # atomic: a second import into the same new set joins it
    results = import_identity_photos(project, identity_id, _expand(args.photos), on_progress=_show)
    return 0 if any(r.status == IMPORTED for r in results) or not results else 2


def _import_reference(project: Project, args: argparse.Namespace) -> int:
    results = import_references(project, _expand(args.images), on_progress=_show)
    return 0 if any(r.status == IMPORTED for r in results) or not results else 2


def _list(project: Project, args: argparse.Namespace) -> int:
    from ..core.identity_report import VERDICT_LABELS

    identity_id = project.identity_by_name(args.identity).id if args.identity else None
    page = list_outputs(project, OutputQuery(identity_id=identity_id, tag=args.tag, min_score=args.min_score,
                                             min_rating=args.min_rating, verdict=args.verdict, sort=args.sort,
                                             page=max(0, args.page - 1), page_size=args.page_size))
    if args.json:
        print(json.dumps([{"id": o.id, "identity": o.identity_name, "reference": o.reference_name,
                           "engine": o.engine, "score": o.identity_score, "verdict": o.verdict,
                           "identity_report": o.identity_report, "rating": o.rating,
                           "favourite": o.favourite, "tags": list(o.tags), "created": o.created,
                           "final": o.final_path} for o in page.items], indent=1))
        return 0
    print(f"Outputs {page.page * page.page_size + 1 if page.items else 0}–"
          f"{page.page * page.page_size + len(page.items)} of {page.total} (page {page.page + 1}/{page.pages})")
    for o in page.items:
        when = dt.datetime.fromtimestamp(o.created).strftime("%Y-%m-%d %H:%M")
        score = "  n/a" if o.identity_score is None else f"{o.identity_score:5.3f}"
        verdict = VERDICT_LABELS.get(o.verdict, "-")
        print(f"  #{o.id:<6} {when}  {o.engine:9} score {score}  {verdict:26}  {'★' * o.rating:5}  "
              f"{o.identity_name or '-'} → {o.reference_name or '-'}  {' '.join(o.tags)}")
    return 0


def _contact_sheet(project: Project, args: argparse.Namespace) -> int:
    from .contact_sheets import write_contact_sheet

    if Path(args.out).suffix.lower() != ".png":
        raise ProjectError(f"{args.out}: a contact sheet is written as .png.")
    identity_id = project.identity_by_name(args.identity).id if args.identity else None
    outputs = list_outputs(project, OutputQuery(identity_id=identity_id, verdict=args.verdict, sort=args.sort,
                                                page_size=max(1, min(args.limit, 1000)))).items
    if not outputs:
        raise ProjectError("No outputs match; nothing to put on a contact sheet.")
    path = write_contact_sheet(project, outputs, args.out, columns=max(1, args.columns))
    print(f"Wrote {path} ({len(outputs)} outputs)")
    return 0


def _export(project: Project, args: argparse.Namespace) -> int:
    if args.output is not None:
        from dataclasses import replace

        from .export_presets import ExportPreset, export_one, preset_named

        preset = preset_named(args.preset) if args.preset else ExportPreset("plain", srgb=False, quality=95)
        if args.provenance:
            preset = replace(preset, include_provenance=True)
        path = export_one(project, args.output, args.out, preset)
    else:
        if Path(args.out).suffix.lower() != ".zip":
            raise ProjectError("To export one output give --output ID; to export the project, name a .zip file.")
        path = export_project(project, args.out)
    print(f"Wrote {path}")
    return 0


def _verify(project: Project, args: argparse.Namespace) -> int:
    report = verify(project, deep=args.deep)
    print(report.summary())
    if report.ok:
        return 0
    if not args.repair:
        return 1
    after = repair(project, deep=args.deep)
    print("After repair: " + after.summary())
    return 0 if after.ok else 1


def _expand(items: list[str]) -> list[Path]:
    paths = []
    for item in map(Path, items):
        try:
            if item.is_dir():
                paths.extend(sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
                continue
        except OSError as exc:  # an unreadable folder: said as such, before anything is imported
            raise ProjectError(os_error_message(exc, f"the folder {item}")) from None
        paths.append(item)
    return paths


def _show(done: int, total: int, result) -> None:
    note = f" – {result.reason}" if result.reason else ""
    print(f"[{done}/{total}] {Path(result.path).name}: {result.status}{note}", file=sys.stderr)
