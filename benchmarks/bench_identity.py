"""The identity scorer on your photos: how well the box from our MediaPipe face stands in for dlib's own
HOG detector box, the box mapping those photos would give, and how long one face takes.

    .venv/bin/python benchmarks/bench_identity.py [PHOTO_OR_FOLDER ...]   # default: resources/devset

Prints figures; asserts nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from megaportrait_desktop.core.dlib_recogniser import BOX_FROM_MESH, DlibBackend  # noqa: E402
from megaportrait_desktop.core.face import detect_faces  # noqa: E402
from megaportrait_desktop.core.identity import distance  # noqa: E402
from megaportrait_desktop.core.imaging import load_image  # noqa: E402

SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"}


def photos(args: list[str]) -> list[Path]:
    found = []
    for item in map(Path, args or [ROOT / "resources" / "devset"]):
        found += sorted(p for p in item.rglob("*") if p.suffix.lower() in SUFFIXES) if item.is_dir() else [item]
    return found


def main() -> None:
    import dlib

    backend = DlibBackend()
    hog = dlib.get_frontal_face_detector()
    boxes, point_errors, moves, times = [], [], [], []
    for path in photos(sys.argv[1:]):
        rgb = load_image(path).rgb8()
        faces = detect_faces(rgb)
        if not faces:
            print(f"{path.name}: no face")
            continue
        face = faces[0]
        x0, y0, x1, y1 = face.box
        cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        dets = [d for d in hog(rgb, 1) if d.left() < cx < d.right() and d.top() < cy < d.bottom()]
        started = time.perf_counter()
        ours = backend.embed(rgb, face)
        times.append(time.perf_counter() - started)
        if not dets:
            print(f"{path.name}: dlib's HOG detector finds no face here (ours does)")
            continue
        det = dets[0]
        boxes.append((((det.left() + det.right()) / 2 - cx) / w, ((det.top() + det.bottom()) / 2 - cy) / h,
                      det.width() / w, det.height() / h))
        shape = backend._landmarks(rgb, det)
        theirs = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
        interocular = np.linalg.norm(theirs[0:2].mean(0) - theirs[2:4].mean(0))
        error = float(np.abs(backend.five_points(rgb, face) - theirs).max() / interocular)
        move = distance(np.asarray(backend.resnet.compute_face_descriptor(rgb, shape)), ours, "euclidean")
        point_errors.append(error)
        moves.append(move)
        print(f"{path.name}: points {error:.3f} of the interocular distance, descriptor moved {move:.3f}")
    if boxes:
        print(f"\n{len(boxes)} faces. Box mapping these photos give (dx, dy, width, height): "
              f"{tuple(round(float(v), 3) for v in np.median(boxes, axis=0))}; in use: {BOX_FROM_MESH}")
        print(f"5 points vs dlib's own box: median {np.median(point_errors):.3f}, worst {max(point_errors):.3f} "
              "of the interocular distance")
        print(f"descriptor moved by: median {np.median(moves):.3f}, worst {max(moves):.3f} (same person below 0.6)")
    if times:
        print(f"one face (landmarks, chip, ResNet): median {np.median(times) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
