"""Build the one-folder app bundle, self-test it, and pack the Linux archive.

    .venv/bin/python packaging/build.py          # lean bundle: the classic engine (no PyTorch)
    .venv/bin/python packaging/build.py --full   # with PyTorch, diffusers and CUDA (several GB)

Writes dist/MegaPortrait/ (the bundle) and dist/MegaPortrait-<version>-linux-x86_64[-full].tar.gz
(bundle + launcher + .desktop file), then prints the bundle size and its cold-start time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="include PyTorch/diffusers (the diffusion engine)")
    parser.add_argument("--no-trim", action="store_true", help="keep unused Qt modules etc. (to measure trimming)")
    parser.add_argument("--no-archive", action="store_true", help="stop after the bundle and its self-test")
    args = parser.parse_args()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    env = {**os.environ, "MEGAPORTRAIT_LEAN": "0" if args.full else "1",
           "MEGAPORTRAIT_TRIM": "0" if args.no_trim else "1"}

    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--distpath", str(DIST),
                    "--workpath", str(ROOT / "build" / "pyinstaller"), str(ROOT / "packaging" / "megaportrait.spec")],
                   check=True, env=env, cwd=ROOT)
    built = time.perf_counter() - started
    bundle = DIST / "MegaPortrait"
    print(f"built {bundle} in {built / 60:.1f} min; size {_size(bundle) / 2**20:.0f} MiB")

    # The self-test in a clean environment, without a display: as a photographer's machine would run it.
    clean = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "DISPLAY", "VIRTUAL_ENV"}}
    t0 = time.perf_counter()
    test = subprocess.run([str(bundle / "megaportrait"), "--self-test"], env=clean, capture_output=True, text=True,
                          timeout=600)
    print(test.stdout.strip() or test.stderr.strip()[-2000:])
    if test.returncode != 0:
        print("bundle self-test FAILED", file=sys.stderr)
        return 1
    print(f"self-test of the bundle (cold start included): {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    subprocess.run([str(bundle / "megaportrait"), "--help"], env=clean, capture_output=True, check=True)
    print(f"cold start to --help: {time.perf_counter() - t0:.2f} s")

    if args.no_archive:
        return 0
    archive = DIST / f"MegaPortrait-{version}-linux-x86_64{'-full' if args.full else ''}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        top = f"MegaPortrait-{version}"
        tar.add(bundle, arcname=f"{top}/MegaPortrait")
        tar.add(ROOT / "packaging" / "linux" / "launcher.sh", arcname=f"{top}/megaportrait-launcher")
        tar.add(ROOT / "packaging" / "linux" / "megaportrait.desktop", arcname=f"{top}/megaportrait.desktop")
        tar.add(ROOT / "README.md", arcname=f"{top}/README.md")
    print(f"archive {archive.name}: {archive.stat().st_size / 2**20:.0f} MiB")
    return 0


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


if __name__ == "__main__":
    shutil.rmtree(DIST / "MegaPortrait", ignore_errors=True)
    sys.exit(main())
