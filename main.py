"""MegaPortrait Desktop: ``python main.py`` opens the app; ``python main.py <command>`` runs the CLI."""

from __future__ import annotations

import os
import sys


def _has_display() -> bool:
    if sys.platform in {"win32", "darwin"}:
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or \
        os.environ.get("QT_QPA_PLATFORM") == "offscreen"


def _quiet_native_logs() -> None:
    # MediaPipe's C++ (glog/absl) and TensorFlow Lite write start-up chatter to stderr.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> int:
    if sys.argv[1:2] == ["--descriptor-server"]:  # the app's identity-score helper, in an installed build
        from megaportrait_desktop.core.descriptor_process import serve

        serve(sys.argv[2], sys.stdin.buffer, sys.stdout.buffer)
        return 0
    _quiet_native_logs()
    from megaportrait_desktop.core.allocator import keep_freed_memory

    keep_freed_memory()
    from megaportrait_desktop.cli import main as cli_main
    from megaportrait_desktop.cli import route_native_logs

    route_native_logs()

    argv = sys.argv[1:]
    if argv == ["--self-test"]:
        from megaportrait_desktop.ui.selftest import run_self_test

        return run_self_test()
    if argv:
        return cli_main(argv)
    try:
        from megaportrait_desktop.ui.app import run_app  # the desktop app
    except ImportError:
        run_app = None
    if run_app is not None and _has_display():
        return run_app()
    print("No display (or no desktop app in this build): running the demo headless "
          "(python main.py demo --out demo-output).", file=sys.stderr)
    return cli_main(["demo", "--out", "demo-output"])


if __name__ == "__main__":
    sys.exit(main())
