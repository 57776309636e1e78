"""``python main.py models ...``: the model manager from the command line.

Bad input (a refused pack, an unknown role, offline mode) ends as one ``error: ...`` line and exit 2
through :func:`megaportrait_desktop.cli.main`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .core.model_settings import ROLES, SWITCHES
from .core.progress import Progress, Reporter


def add_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="model manager: state of each model, packs, downloads, licences")
    cmds = models.add_subparsers(dest="models_command", metavar="<models command>", required=True)

    lst = cmds.add_parser("list", help="each role: installed / missing / damaged, size, source, hash, licence")
    lst.add_argument("--hash", action="store_true", help="hash every file (slow for large models; finds damage "
                                                         "a size check cannot)")
    lst.add_argument("--json", action="store_true")

    inst = cmds.add_parser("install-pack", help="install an offline model pack (folder, zip or USB drive)")
    inst.add_argument("path")
    inst.add_argument("--no-use", action="store_true", help="install only; leave the model choices as they are")

    ver = cmds.add_parser("verify-pack", help="check every file of a pack against its manifest, install nothing")
    ver.add_argument("path")

    pack = cmds.add_parser("pack", help="build an offline model pack from the installed models")
    pack.add_argument("out", help="a new folder, or a file ending in .zip")
    pack.add_argument("--role", action="append", choices=[*ROLES, "insightface"],
                      help="only this role (repeatable; default: every installed one)")

    down = cmds.add_parser("download", help="download a role's model from the Hugging Face Hub into its cache")
    down.add_argument("role", choices=ROLES)
    down.add_argument("repo", nargs="?", help="repo id (default: the role's suggested model)")

    st = cmds.add_parser("set", help="choose a role's model: a folder, a .safetensors file or a cached repo id")
    st.add_argument("role", choices=ROLES)
    st.add_argument("source")
    st.add_argument("--config", help="for a single file: a diffusers config folder or cached repo id "
                                     "(default: the SD 1.5 configs shipped with the app)")

    acc = cmds.add_parser("accept-licence", help="accept a model's restrictive licence (asked once)")
    acc.add_argument("role", choices=[*ROLES, "insightface", "annotators"])

    off = cmds.add_parser("offline", help="offline mode: 'on' forbids every network access; no argument shows it")
    off.add_argument("state", nargs="?", choices=["on", "off"])

    speed = cmds.add_parser("speed", help="the GPU fast path (CUDA graphs, compiled models, low-memory mode); "
                                          "no option shows the settings and what this machine gets")
    for name, what in (("fast-path", "the fast path on CUDA (auto = on; off = stock diffusers calls)"),
                       ("compile", "compile the models (auto = on: ~1 s runs, minutes once at the first start)"),
                       ("low-memory", "keep the whole pipeline under 8 GiB of GPU memory (auto = on GPUs of 12 GB "
                                      "or less)")):
        speed.add_argument(f"--{name}", choices=SWITCHES, help=what)


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "install-pack": _install, "verify-pack": _verify, "pack": _pack, "download": _download,
            "set": _set, "accept-licence": _accept, "offline": _offline, "speed": _speed}[args.models_command](args)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _list(args: argparse.Namespace) -> int:
    from .core.modelstore.manager import model_states

    states = model_states(hashes=args.hash)
    if args.json:
        json.dump([s.to_json() for s in states], sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    for s in states:
        licence = s.licence.name + ("" if s.licence_accepted else " (not accepted yet)")
        print(f"{s.role:20} {s.state:9} {_size(s.size) if s.size else '':>9}  {s.source or '-'}")
        if s.path and str(s.path) != s.source:
            print(f"{'':31}at {s.path}" + (" (Hugging Face cache)" if s.in_hf_cache else ""))
        if s.sha256:
            print(f"{'':31}sha256 {s.sha256}")
        print(f"{'':31}licence: {licence}")
        if s.cached_default:
            print(f"{'':31}{s.cached_default} is in the Hugging Face cache: "
                  f"python main.py models set {s.role} {s.cached_default}")
        if s.message:
            print(f"{'':31}{s.message}")
    return 0


def _progress_printer(verb: str):
    last = [0.0]

    def show(p: Progress) -> None:
        now = time.monotonic()
        if now - last[0] > 0.5 or p.step == p.total:
            last[0] = now
            print(f"\r{verb} {_size(p.step)} of {_size(p.total)}", end="", file=sys.stderr, flush=True)

    return show


def _install(args: argparse.Namespace) -> int:
    from .core.modelstore.packs import install_pack

    report = install_pack(args.path, reporter=Reporter(_progress_printer("installing")), use=not args.no_use)
    print(file=sys.stderr)
    for model in report.models:
        note = " (accept its licence before use: python main.py models accept-licence " + model.role + ")" \
            if model.licence.requires_acceptance else ""
        print(f"installed {model.role}: {model.name} [{model.licence.name}]{note}")
    print(f"{report.copied} files copied, {report.skipped} already installed")
    if report.roles_set:
        print(f"now used for: {', '.join(report.roles_set)}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .core.modelstore.packs import verify_pack

    manifest = verify_pack(args.path, Reporter(_progress_printer("checking")))
    print(file=sys.stderr)
    print(f"pack OK: {sum(len(m.files) for m in manifest.models)} files of {len(manifest.models)} models match "
          "their SHA-256")
    return 0


def _pack(args: argparse.Namespace) -> int:
    from .core.modelstore.pack_builder import build_pack
    from .core.modelstore.packs import PACK_ROLES

    manifest = build_pack(args.out, roles=tuple(args.role) if args.role else PACK_ROLES,
                          reporter=Reporter(_progress_printer("packing")))
    print(file=sys.stderr)
    for model in manifest.models:
        print(f"packed {model.role}: {model.path} ({_size(sum(f.size for f in model.files))})")
    print(f"wrote {args.out}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from .core.modelstore.downloads import DownloadProgress, download_role

    last = [0.0]

    def show(p: DownloadProgress) -> None:
        now = time.monotonic()
        if now - last[0] > 0.5 or p.done == p.total:
            last[0] = now
            eta = f", {p.eta:.0f} s left" if p.eta is not None else ""
            print(f"\r{p.file}: {_size(p.done)} of {_size(p.total)} at {_size(p.speed)}/s{eta}   ", end="",
                  file=sys.stderr, flush=True)

    snapshot = download_role(args.role, args.repo, on_progress=show)
    print(file=sys.stderr)
    print(f"{args.role}: {snapshot}")
    return 0


def _set(args: argparse.Namespace) -> int:
    from .core.modelstore.manager import set_model

    state = set_model(args.role, args.source, args.config)
    print(f"{state.role}: {state.state} ({state.path})")
    return 0


def _accept(args: argparse.Namespace) -> int:
    from .core.licences import accept
    from .core.modelstore.manager import role_state

    state = role_state(args.role)
    print(f"{args.role}: {state.licence.name}" + (f" — {state.licence.summary}" if state.licence.summary else "")
          + (f" ({state.licence.url})" if state.licence.url else ""))
    accept(args.role, state.licence)
    print("accepted" if state.licence.requires_acceptance else "nothing to accept: no restrictive terms")
    return 0


def _offline(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .core.model_settings import load_settings, save_settings

    settings = load_settings()
    if args.state is not None:
        settings = replace(settings, offline=args.state == "on")
        save_settings(settings)
    print(f"offline mode: {'on' if settings.offline else 'off'}")
    return 0


def _speed(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .core.model_settings import load_settings, save_settings

    settings = load_settings()
    changes = {field: value for field, value in (("fast_path", args.fast_path), ("compile", args.compile),
                                                 ("low_memory", args.low_memory)) if value is not None}
    if changes:
        settings = replace(settings, **changes)
        save_settings(settings)
    print(f"fast path: {settings.fast_path}; compile: {settings.compile}; low memory: {settings.low_memory}")
    try:
        from .core.diffusion.devices import choose_device
    except ImportError:
        print("this installation has no diffusion engine (no PyTorch)")
        return 0
    choice = choose_device(settings.device, settings.precision, settings.offload, settings.fast_path,
                           settings.low_memory, settings.compile)
    why_not = "" if choice.fast is not None else (
        "; stock diffusers calls (the fast path needs a CUDA GPU without CPU offload, and fast path not off)")
    print(f"this machine: {choice.describe()}{why_not}")
    return 0
