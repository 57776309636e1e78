"""Benchmark full-size camera files (issue 15): 12, 24 and 40 megapixel references, classic engine.

For each size it prints:

- **run**: the pipeline, recording the output into a project (the History row), and the total wall time;
- **peak RSS** of the process that ran it (and how far above its resting size the run took it);
- **export** of the output to JPEG, PNG and 16-bit TIFF;
- **History click**: decoding an output's final and stage images (the work behind a click in History);
- **mask save**: storing an edited full-size mask;
- **app**: the desktop window itself (offscreen), driven as a user would: Run all until History shows the
  output, a History click, Recall, mask save, each export, and training progress at 21 updates a second,
  each with its wall time and the **longest event-loop stall** (a 5 ms QTimer heartbeat on the GUI thread);
- **CLI**: ``python main.py run --identity DIR --reference REF --out DIR`` (final and stage images) on the
  24 MP reference against the same command on the 512 px demo reference.

Prints figures; asserts nothing. The references are the demo reference (Eileen Collins, public domain)
enlarged to the size (2:3 portrait frame, 4000×6000 for 24 MP) with camera-like noise (σ 6 levels) and saved
as JPEG (quality 92): flat, enlarged pixels would compress unrealistically well.

Run: ``.venv/bin/python benchmarks/bench_large.py [--sizes 12 24 40] [--src DIR] [--skip-app] [--skip-cli]``;
``--src`` benchmarks another checkout (the code before a change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (12, 24, 40)


def make_reference(megapixels: int, path: Path) -> tuple[int, int]:
    """The demo reference enlarged to ``megapixels`` in a 2:3 portrait frame, with sensor-like noise."""
    import cv2
    import numpy as np
    from PIL import Image

    from megaportrait_desktop.core.paths import demo_dir

    width = int(round((megapixels * 1e6 / 1.5) ** 0.5))
    height = int(round(width * 1.5))
    if path.is_file():
        return width, height
    source = np.asarray(Image.open(next((demo_dir() / "reference").glob("*.jpg"))).convert("RGB"))
    square = cv2.resize(source, (width, width), interpolation=cv2.INTER_CUBIC)
    frame = cv2.copyMakeBorder(square, 0, height - width, 0, 0, cv2.BORDER_REPLICATE)
    noise = np.random.default_rng(0).normal(0, 6.0, frame.shape).astype(np.float32)
    Image.fromarray(np.clip(frame + noise, 0, 255).astype(np.uint8)).save(path, quality=92)
    return width, height


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(work: Path, megapixels: int):
    """A project with the demo identity set and the enlarged reference; returns (project, ids, request)."""
    from megaportrait_desktop.core.paths import demo_dir
    from megaportrait_desktop.core.request import RunRequest
    from megaportrait_desktop.project import Project, import_identity_photos, import_references

    root = work / f"project_{megapixels}mp"
    shutil.rmtree(root, ignore_errors=True)
    project = Project.create(root, f"bench {megapixels} MP")
    identity_id = project.create_identity("Grace Hopper")
    import_identity_photos(project, identity_id, sorted((demo_dir() / "identity").glob("*.jpg")))
    (imported,) = import_references(project, [work / f"reference_{megapixels}mp.jpg"])
    reference = project.reference(imported.item_id)
    photos = tuple(str(project.path_of(p.path)) for p in project.identity_photos(identity_id))
    request = RunRequest(identity=photos, reference=str(project.path_of(reference.path)))
    return project, identity_id, imported.item_id, request


def core_worker(work: Path, megapixels: int) -> None:
    """Pipeline, recording, peak memory, exports, History click and mask save (one process per size)."""
    import gc

    from megaportrait_desktop.core.imaging import load_image
    from megaportrait_desktop.core.paths import demo_dir
    from megaportrait_desktop.core.pipeline import run
    from megaportrait_desktop.project.exchange import export_output

    project, identity_id, reference_id, request = _setup(work, megapixels)
    warm = request.replace(reference=str(next((demo_dir() / "reference").glob("*.jpg"))))
    run(warm)  # MediaPipe graphs and the recogniser load once per process
    gc.collect()
    resting = _rss_mb()
    started = time.perf_counter()
    result = run(request)
    ran = time.perf_counter()
    output_id = project.record_run(result, identity_id, reference_id)
    recorded = time.perf_counter()
    peak = _peak_mb()
    w, h = result.final.width, result.final.height
    stages = ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items())
    print(f"{megapixels} MP ({w}×{h}) run: pipeline {ran - started:.2f} s ({stages}), recording "
          f"{recorded - ran:.2f} s, total {recorded - started:.2f} s")
    print(f"{megapixels} MP peak RSS {peak:.0f} MB (resting {resting:.0f} MB before the run, "
          f"+{peak - resting:.0f} MB)")
    del result
    gc.collect()
    out = work / "exports"
    out.mkdir(exist_ok=True)
    parts = []
    for suffix, label in ((".jpg", "JPEG"), (".png", "PNG"), (".tif", "16-bit TIFF")):
        t = time.perf_counter()
        path = export_output(project, output_id, out / f"export_{megapixels}{suffix}")
        parts.append(f"{label} {time.perf_counter() - t:.2f} s ({path.stat().st_size / 1e6:.0f} MB)")
    print(f"{megapixels} MP export: " + ", ".join(parts))
    from megaportrait_desktop.ui.history_actions import output_images

    t = time.perf_counter()
    images = output_images(project, output_id)
    print(f"{megapixels} MP History click (decode final + {len(images) - 1} stage images, off the GUI thread): "
          f"{time.perf_counter() - t:.2f} s")
    import cv2

    mask = load_image(project.path_of(project.masks(reference_id)[0].path)).pixels[..., 0]
    grown = h // 200  # a user's edit: the automatic mask grown by half a per cent of the height (30 px at 24 MP)
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grown + 1, 2 * grown + 1)))
    t = time.perf_counter()
    project.save_mask(reference_id, mask)
    print(f"{megapixels} MP mask save ({w}×{h}): {time.perf_counter() - t:.2f} s")
    print(f"@@ {json.dumps({'output_id': output_id, 'identity_id': identity_id, 'reference_id': reference_id})}")
    project.close()


def app_worker(work: Path, megapixels: int, ids: dict) -> None:
    """The window, offscreen, on the project ``core_worker`` left: wall time and longest stall per action."""
    import numpy as np
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from megaportrait_desktop.ui.app import create_window

    _app = QApplication.instance() or QApplication([])  # kept alive for the whole run
    window = create_window(work / f"project_{megapixels}mp")
    window.resize(1280, 720)
    window.show()
    clock = QElapsedTimer()
    clock.start()
    ticks: list[int] = []
    heartbeat = QTimer()
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(lambda: ticks.append(clock.elapsed()))
    heartbeat.start()

    def wait(predicate, timeout: float = 120.0) -> float:
        # The event loop runs until ``predicate`` holds (checked every 5 ms), rather than processEvents() in a
        # loop: PySide6 6.12 on Python 3.11 takes a reference from None on every call of a Qt method that
        # returns nothing, and a process aborts after a few thousand such calls.
        start = time.perf_counter()
        loop = QEventLoop()
        check = QTimer()
        check.setInterval(5)
        check.timeout.connect(lambda: (predicate() or time.perf_counter() - start > timeout) and loop.quit())
        check.start()
        loop.exec()
        check.stop()
        if not predicate():
            raise TimeoutError("the app did not finish in time")
        return time.perf_counter() - start

    def measure(label: str, action, done, settle: float = 0.3) -> None:
        wait(lambda: True)
        ticks.clear()
        ticks.append(clock.elapsed())
        start = time.perf_counter()
        action()
        wait(done)
        wall = time.perf_counter() - start
        end = time.perf_counter() + settle  # what follows the result (repaints, thumbnails) counts too
        wait(lambda: time.perf_counter() > end)
        gaps = np.diff(ticks) if len(ticks) > 1 else np.array([0])
        print(f"{megapixels} MP app {label}: {wall:.2f} s, longest event-loop stall {gaps.max():.0f} ms")

    identity_id, reference_id, output_id = ids["identity_id"], ids["reference_id"], ids["output_id"]
    window.identities.select(identity_id)
    window.references.select(reference_id)
    wait(lambda: "full_reference" in window.stage_view.images and window.mask_editor.painter is not None
         and window.mask_editor.painter.mask.shape[0] > 1000 and "shaded" in window.stage_view.images)
    time.sleep(1.0)  # the live preview and the thumbnails settle

    def run_all(label: str) -> None:
        rows = window.history.list.count()
        measure(label, lambda: window.run_pipeline("all"),
                lambda: window.history.list.count() > rows and "History as #" in window.panel.status.text())
        print(f"{megapixels} MP app status after Run all: {window.panel.status.text()!r}")
    run_all("Run all (the user's mask) until History shows it")
    shown = window.history_actions
    measure("History click", lambda: shown.show(output_id), lambda: shown.shown_output == output_id)
    painter_before = window.mask_editor.painter
    measure("Recall settings", lambda: shown.recall(output_id),
            lambda: window.mask_editor.painter is not painter_before, settle=1.0)
    painter = window.mask_editor.painter
    x0, y0, x1, y1 = (int(v) for v in window.project.reference(reference_id).faces[0]["box"])
    painter.mask[y1 - 150:y1 + 150, (x0 + x1) // 2 - 150:(x0 + x1) // 2 + 150] = 255  # a stroke over the chin
    window.mask_editor.dirty = True
    messages: list[str] = []
    window.statusBar().messageChanged.connect(messages.append)
    measure("mask save", window.save_mask, lambda: any("Mask saved" in m for m in messages))
    out = work / "app_exports"
    out.mkdir(exist_ok=True)
    for fmt in ("jpeg", "png", "tiff"):
        window.statusBar().clearMessage()  # the same "Exported …" again would not be a change
        messages.clear()
        measure(f"export {fmt}", lambda fmt=fmt: _export_plain(shown, output_id, fmt, out),
                lambda: any("Exported" in m for m in messages))
    for stage in ("harmonize", "save"):
        cancel_during(window, stage, megapixels, wait)
    painter = window.mask_editor.painter
    h, w = painter.mask.shape
    painter.mask[: h // 3, : w // 3] = 255  # a large painted area: harmonisation covers a third of the frame
    window.mask_editor.dirty = True
    run_all("Run all with a large painted mask (a third of the frame; mask saved first)")
    updates = iter(range(1, 43))
    sender = QTimer()
    sender.setInterval(48)  # 21 progress updates a second, as a GPU training's fast path sends them

    def send() -> None:
        step = next(updates, None)
        if step is None:
            sender.stop()
            return
        window.jobs.training_progress.emit(identity_id, step / 42, f"step {step}/42")
    sender.timeout.connect(send)
    measure("training progress (42 updates, 2 s)", sender.start, lambda: not sender.isActive())
    heartbeat.stop()
    window.shutdown()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: Qt and MediaPipe objects freed in any order can crash it


def cancel_during(window, stage: str, megapixels: int, wait) -> None:
    """Run all, Cancel as soon as ``stage`` reports: how long until the run has stopped."""
    clicked: list[float] = []
    stopped: list[float] = []

    def on_progress(name: str, *_: object) -> None:
        if name == stage and not clicked:
            clicked.append(time.perf_counter())
            window.cancel_job()
    window.jobs.run_progress.connect(on_progress)
    window.jobs.cancelled.connect(lambda *_: stopped.append(time.perf_counter()))
    window.jobs.run_finished.connect(lambda *_: stopped.append(time.perf_counter()))
    window.run_pipeline("all")
    wait(lambda: bool(stopped))
    window.jobs.run_progress.disconnect(on_progress)
    if not clicked:
        print(f"{megapixels} MP app Cancel during {stage}: no such step (the run finished)")
    else:
        shown = window.panel.status.text()
        print(f"{megapixels} MP app Cancel during {stage}: stopped {stopped[0] - clicked[0]:.2f} s after the click "
              f"({shown!r})")
    time.sleep(0.5)


def cli(work: Path, src: Path, megapixels: int) -> None:
    from megaportrait_desktop.core.paths import demo_dir

    env = {**os.environ, "PYTHONPATH": str(src), "QT_QPA_PLATFORM": "offscreen"}
    demo = demo_dir()
    times = {}
    for label, reference in (("demo 512 px", next((demo / "reference").glob("*.jpg"))),
                             (f"{megapixels} MP", work / f"reference_{megapixels}mp.jpg")):
        out = work / f"cli_{label.replace(' ', '_')}"
        shutil.rmtree(out, ignore_errors=True)
        best = None
        for _ in range(2):
            t = time.perf_counter()
            done = subprocess.run([sys.executable, str(src / "main.py"), "run", "--identity", str(demo / "identity"),
                                   "--reference", str(reference), "--out", str(out)], env=env, capture_output=True,
                                  text=True)
            seconds = time.perf_counter() - t
            if done.returncode != 0:
                print(f"CLI failed: {done.stderr[-2000:]}")
                return
            best = seconds if best is None else min(best, seconds)
        times[label] = best
        print(f"CLI run --out DIR (final and stage images), {label}: {best:.2f} s (best of 2, with start-up)")
    print(f"CLI {megapixels} MP takes {times[f'{megapixels} MP'] - times['demo 512 px']:.2f} s longer than the demo")



def _export_plain(actions, output_id: int, fmt: str, folder: Path) -> None:
    """Export through the app's Export dialog as a plain full-size file: no resize, sharpening or sRGB
    conversion, so the figure compares with the core export above."""
    actions.export(output_id)
    dialog = actions.export_dialog
    dialog.format.setCurrentIndex(dialog.format.findData(fmt))
    dialog.long_edge.setValue(0)
    dialog.sharpen.setCurrentIndex(dialog.sharpen.findData("none"))
    dialog.srgb.setChecked(False)
    dialog.folder.setText(str(folder))
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--src", type=Path, default=ROOT, help="the checkout to benchmark (default: this one)")
    parser.add_argument("--work", type=Path, help="folder for references and projects (default: a temporary one)")
    parser.add_argument("--skip-app", action="store_true")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--worker", choices=["core", "app"], help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(args.src.resolve()))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.worker:
        try:
            from megaportrait_desktop.core.allocator import keep_freed_memory
        except ImportError:  # an older checkout (--src), from before the app tuned its allocator
            pass
        else:
            keep_freed_memory()  # as main.py does for the app and the CLI
    if args.worker == "core":
        core_worker(args.work, args.sizes[0])
        return
    if args.worker == "app":
        app_worker(args.work, args.sizes[0], json.loads(args.ids))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_large_"))
    work.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(args.src), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; code "
          f"{args.src} ({commit or 'no git'}); load average {load[0]:.1f} at the start (other work on the machine "
          "slows every figure)")
    env = {**os.environ, "PYTHONPATH": str(args.src.resolve()), "MEGAPORTRAIT_CONFIG": str(work / "config"),
           "MEGAPORTRAIT_CACHE": str(work / "cache")}
    for megapixels in args.sizes:
        make_reference(megapixels, work / f"reference_{megapixels}mp.jpg")
        base = [sys.executable, __file__, "--src", str(args.src), "--work", str(work), "--sizes", str(megapixels)]
        done = subprocess.run([*base, "--worker", "core"], env=env, capture_output=True, text=True)
        ids = None
        for line in done.stdout.splitlines():
            if line.startswith("@@ "):
                ids = line[3:]
            else:
                print(line, flush=True)
        if done.returncode != 0 or ids is None:
            print(f"{megapixels} MP core benchmark failed:\n{done.stderr[-3000:]}")
            continue
        if not args.skip_app:
            done = subprocess.run([sys.executable, "-X", "faulthandler", *base[1:], "--worker", "app", "--ids", ids],
                                  env=env, capture_output=True, text=True)
            print(done.stdout, end="", flush=True)
            if done.returncode != 0:
                print(f"{megapixels} MP app benchmark failed (exit status {done.returncode}):\n{done.stderr[-3000:]}")
    if not args.skip_cli:
        make_reference(24, work / "reference_24mp.jpg")
        cli(work, args.src.resolve(), 24)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
