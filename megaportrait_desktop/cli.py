"""Headless commands over the same core code the app uses: ``python main.py <command>``.

Bad input ends with one line on stderr that says what is wrong and a non-zero exit, never a
traceback; unexpected errors are written in full to the log file and named in that line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import time
from pathlib import Path

from . import cli_diffusion
from .core.errors import Cancelled, MegaPortraitError
from .core.logs import log_path, setup_logging

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"}
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3

log = logging.getLogger("megaportrait")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="MegaPortrait Desktop: put a client's face into a reference portrait. "
                    "With no command, opens the app (or, with no display, runs the demo).")
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    demo = sub.add_parser("demo", help="run the classic engine on the bundled demo images")
    demo.add_argument("--out", default="demo-output", help="folder for final.png and the stage images "
                                                           "(default: %(default)s)")

    analyze = sub.add_parser("analyze", help="faces, landmarks and identity-photo quality of an image, as JSON")
    analyze.add_argument("image")
    analyze.add_argument("--no-landmarks", action="store_true", help="leave the 478 landmarks out")

    run = sub.add_parser("run", help="put the identity's face into a reference portrait")
    run.add_argument("--identity", required=True, help="folder of the client's photos (or one photo)")
    run.add_argument("--reference", required=True, help="the reference portrait")
    run.add_argument("--out", required=True, help="output image (.png, .jpg, .tif) or folder")
    run.add_argument("--engine", default="classic", choices=["classic", "diffusion"])
    run.add_argument("--request", help="a run request JSON file; the options below override it")
    run.add_argument("--face-index", type=int, help="which reference face, 1 = largest (default: largest)")
    run.add_argument("--mask", help="a mask PNG at the reference's size (default: automatic)")
    run.add_argument("--crop-size", type=int, help="working size of the face crop (default 512)")
    run.add_argument("--seed", type=int)
    run.add_argument("--steps", type=int)
    for name, hint in (("a-strength", "identity weight of A, 0–1"), ("b-strength", "identity weight of B, 0–1"),
                       ("face-shape", "classic: the reference's jaw and cheeks moved onto the client's, 0–1"),
                       ("light-cutoff", "light map cut-off, crop pixels"), ("hf-cutoff", "HF-map cut-off, crop pixels"),
                       ("light-weight", "shading from A (1) or B (0)"), ("detail-weight", "gain on B's detail"),
                       ("mask-grow", "grow (+) or shrink (−) the automatic mask, crop pixels"),
                       ("mask-feather", "mask feather, crop pixels"),
                       ("harmonize-strength", "Poisson blend of the seam, 0–1"),
                       ("seam-width", "harmonised band around the mask edge, crop pixels")):
        run.add_argument(f"--{name}", type=float, help=hint)
    run.add_argument("--no-stages", action="store_true", help="write only the final image")
    cli_diffusion.add_run_arguments(run)
    cli_diffusion.add_train_parser(sub)

    ev = sub.add_parser("evaluate", help="score an engine on every identity × reference pair, with baselines")
    ev.add_argument("--identities", nargs="+", required=True, metavar="DIR",
                    help="identity sets: a folder of one person's photos, or a folder of such folders")
    ev.add_argument("--references", nargs="+", required=True, metavar="DIR",
                    help="reference portraits: folders (a sub-folder per person) or image files; a reference of "
                         "the same person (same folder name) as an identity is not paired with it")
    ev.add_argument("--out", required=True, help="folder for table.md, results.json, runs.csv, contact_sheet.png")
    ev.add_argument("--engine", default="classic", choices=["classic", "diffusion"])
    ev.add_argument("--request", help="a run request JSON file with the settings to evaluate (default: defaults)")
    ev.add_argument("--sweep", action="append", default=[], metavar="PARAM=v1,v2,...",
                    help="also run with each value of a request setting, e.g. shading.light_cutoff=5,10,20 "
                         "(repeatable: each swept on its own)")
    ev.add_argument("--scorer", default="dlib", choices=["dlib", "arcface"],
                    help="identity recogniser (arcface needs the insightface buffalo_l pack and its licence)")

    from .project.commands import add_parser as add_project_parser

    add_project_parser(sub)
    from . import cli_models

    cli_models.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging()
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "analyze":
            return _analyze(args)
        if args.command == "run":
            return _run(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "train-identity":
            identity = Path(args.identity)
            return cli_diffusion.train_identity(args, _identity_photos(identity) if identity.is_dir() else [identity])
        if args.command == "project":
            from .project.commands import run as run_project

            return run_project(args)
        if args.command == "models":
            from . import cli_models

            return cli_models.run(args)
        build_parser().print_help()
        return 0
    except Cancelled:
        print("Cancelled.", file=sys.stderr)
        return 130
    except MegaPortraitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _broken_pipe()
    except OSError as exc:  # the disk or the file system said no (permission, full, read-only): not a bug
        log.warning("OS error", exc_info=True)
        from .core.errors import os_error_message

        print(f"error: {os_error_message(exc, _os_error_subject(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except sqlite3.DatabaseError as exc:
        log.warning("database error", exc_info=True)
        print(f"error: {_database_message(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RecursionError:
        log.warning("recursion", exc_info=True)
        print("error: the input is nested too deeply to be read (a damaged or hostile file?); it was refused.",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - the last line of defence: log it, say where
        log.exception("unexpected error")
        print(f"error: unexpected {type(exc).__name__}: {exc} (details in {_log_path()})", file=sys.stderr)
        return EXIT_INTERNAL


def _broken_pipe() -> int:
    """The program reading our output stopped early (``| head -1``): say so once, and let the exit be quiet."""
    import contextlib
    import os

    # Python flushes stdout again at exit: point it at nothing so that flush cannot fail a second time.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    with contextlib.suppress(OSError, ValueError):
        print("error: the output was closed before it was all written (the program reading it stopped early).",
              file=sys.stderr)
    return EXIT_BAD_INPUT


def _os_error_subject(exc: OSError) -> str:
    return f"'{Path(exc.filename).name}'" if exc.filename else "a file this command needs"


def _database_message(exc: sqlite3.DatabaseError) -> str:
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (11, 26):  # SQLITE_CORRUPT, SQLITE_NOTADB
        return f"the project database is damaged ({exc}); restore the project from a backup or an exported zip."
    if code == 13:  # SQLITE_FULL
        return "the disk holding the project is full; free some space and try again. Nothing was changed."
    return (f"the project database could not be used ({exc}); check that its disk is connected and writable, then "
            "run 'project verify'.")


# --------------------------------------------------------------------------------------- commands


def _demo(args: argparse.Namespace) -> int:
    from .core.paths import demo_dir
    from .core.request import RunRequest

    demo = demo_dir()
    identity = _identity_photos(demo / "identity")
    references = sorted(p for p in (demo / "reference").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    request = RunRequest(identity=tuple(identity), reference=str(references[0]))
    return _execute(request, Path(args.out), stages=True)


def _analyze(args: argparse.Namespace) -> int:
    from .core.face import detect_faces
    from .core.imaging import load_image
    from .core.quality import check_identity_photo

    picture = load_image(args.image)
    rgb = picture.rgb8()
    faces = detect_faces(rgb)
    report = check_identity_photo(rgb, faces)
    data = {
        "file": str(args.image), "width": picture.width, "height": picture.height,
        "bit_depth": picture.bit_depth, "has_icc_profile": picture.icc_profile is not None,
        "faces": [], "quality": report.to_json(),
    }
    for face in faces:
        entry = face.to_json()
        if args.no_landmarks:
            entry.pop("landmarks")
        data["faces"].append(entry)
    json.dump(data, sys.stdout, indent=1 if args.no_landmarks else None)
    sys.stdout.write("\n")
    return 0


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .core.errors import RequestError
    from .core.request import RunRequest

    identity_path = Path(args.identity)
    identity = _identity_photos(identity_path) if identity_path.is_dir() else [identity_path]
    if not identity_path.exists():
        raise RequestError(f"--identity {identity_path}: no such file or folder.")
    if args.request:
        try:
            text = Path(args.request).read_text(encoding="utf-8")
        except OSError as exc:
            raise RequestError(f"--request {args.request}: cannot be read ({exc.strerror}).") from None
        request = RunRequest.from_json(text).replace(identity=tuple(map(str, identity)), reference=args.reference)
    else:
        request = RunRequest(identity=tuple(map(str, identity)), reference=args.reference)
    top = {"engine": args.engine, "mask": args.mask, "crop_size": args.crop_size, "seed": args.seed,
           "steps": args.steps, "face_index": None if args.face_index is None else args.face_index - 1}
    request = request.replace(**{k: v for k, v in top.items() if v is not None})
    nested = {
        "identity_params": {"a_strength": args.a_strength, "b_strength": args.b_strength,
                            "face_shape": args.face_shape},
        "shading": {"light_cutoff": args.light_cutoff, "hf_cutoff": args.hf_cutoff,
                    "light_weight": args.light_weight, "detail_weight": args.detail_weight},
        "mask_params": {"grow": args.mask_grow, "feather": args.mask_feather},
        "harmonize": {"strength": args.harmonize_strength, "seam_width": args.seam_width},
    }
    nested["diffusion"] = cli_diffusion.diffusion_overrides(args)
    for group, values in nested.items():
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            request = request.replace(**{group: replace(getattr(request, group), **values)})
    engine = cli_diffusion.engine_from_args(args) if request.engine == "diffusion" else None
    return _execute(request, Path(args.out), stages=not args.no_stages, diffusion=engine)


def _evaluate(args: argparse.Namespace) -> int:
    from .core.errors import RequestError
    from .core.evaluate import evaluate, parse_sweep
    from .core.evaluate_report import write_evaluation
    from .core.identity import load_embedding_backend
    from .core.request import RunRequest

    sweeps = [parse_sweep(text) for text in args.sweep]
    base = None
    if args.request:
        try:
            base = RunRequest.from_json(Path(args.request).read_text(encoding="utf-8"))
        except OSError as exc:
            raise RequestError(f"--request {args.request}: cannot be read ({exc.strerror}).") from None
    def show(done: int, total: int, row) -> None:
        held = f" (held out {row.held_out})" if row.held_out else ""
        print(f"[{done}/{total}] {row.identity}{held} → {row.reference}: {row.method}: client {row.d_client:.3f}, "
              f"reference {row.d_ref:.3f}, {row.verdict}", file=sys.stderr)

    evaluation = evaluate(args.identities, args.references, engine=args.engine, base=base, sweeps=sweeps,
                          backend=load_embedding_backend(name=args.scorer), on_progress=show)
    files = write_evaluation(evaluation, args.out)
    print(files["table"].read_text(encoding="utf-8"))
    print("Wrote " + ", ".join(str(path) for path in files.values()))
    return 0


def _execute(request, out: Path, stages: bool, diffusion=None) -> int:
    from .core.pipeline import run, save_result

    started = time.perf_counter()

    shown = [""]

    def show(progress) -> None:
        # Diffusion passes repeat their message every step: print it once per pass.
        if progress.message and progress.message != shown[0]:
            shown[0] = progress.message
            print(f"[{progress.stage}] {progress.message}", file=sys.stderr)

    result = run(request, on_progress=show, diffusion=diffusion)
    path = save_result(result, out, stages=stages)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    report = result.identity_report
    score = "n/a" if result.identity_score is None else f"{result.identity_score:.3f}"
    print(f"Wrote {path} ({result.final.width}×{result.final.height}) in "
          f"{time.perf_counter() - started:.1f} s; identity score {score}")
    if report is not None:
        print(f"Identity: {report.summary()}")
    return 0


def _identity_photos(folder: Path) -> list[Path]:
    from .core.errors import RequestError

    try:
        if not folder.is_dir():
            raise RequestError(f"{folder}: no such folder.")
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError as exc:
        from .core.errors import os_error_message

        raise RequestError(os_error_message(exc, f"the folder {folder}")) from None
    if not photos:
        raise RequestError(f"{folder}: no photos (JPEG, PNG, TIFF or WebP) in this folder.")
    return photos


def _log_path() -> Path:
    return log_path()


def route_native_logs() -> None:
    """Send what C++ libraries write to file descriptor 2 (MediaPipe's absl and TFLite chatter, some
    of it from background threads) to ``native.log``, and keep Python's stderr on the terminal.

    Set ``MEGAPORTRAIT_NATIVE_LOGS=1`` to leave them on the terminal.
    """
    import os

    if os.environ.get("MEGAPORTRAIT_NATIVE_LOGS") or getattr(route_native_logs, "done", False):
        return
    try:
        path = _log_path().with_name("native.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        sys.stderr.flush()
        terminal = os.dup(2)
        log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding="utf-8", errors="replace")
    except (OSError, ValueError, AttributeError):
        return  # no real file descriptors (an embedded interpreter): leave things as they are
    route_native_logs.done = True  # type: ignore[attr-defined]


def _setup_logging() -> None:
    setup_logging()
