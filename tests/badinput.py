"""The bad-input corpus: files made by the tests, each either loadable or refused with ImageError."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png_header(width: int = 20000, height: int = 20000) -> bytes:
    """A valid PNG signature and IHDR declaring ``width``×``height``, with one tiny IDAT: a bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


def make_corpus(folder: Path, photo: np.ndarray) -> dict[str, Path]:
    """Write the corpus into ``folder``; ``photo`` is a real RGB face photo (uint8)."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    good = folder / "good.jpg"
    Image.fromarray(photo).save(good, quality=95)
    data = good.read_bytes()
    files["truncated_jpeg"] = folder / "truncated.jpg"
    files["truncated_jpeg"].write_bytes(data[: len(data) // 3])

    files["zero_bytes"] = folder / "empty.jpg"
    files["zero_bytes"].write_bytes(b"")

    files["text_named_jpg"] = folder / "notes.jpg"
    files["text_named_jpg"].write_text("This is a shopping list, not a photo.\n")

    files["one_pixel"] = folder / "one_pixel.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(files["one_pixel"])

    files["png_20000x20000"] = folder / "bomb.png"
    files["png_20000x20000"].write_bytes(huge_png_header())

    files["cmyk_jpeg"] = folder / "cmyk.jpg"
    Image.fromarray(photo).convert("CMYK").save(files["cmyk_jpeg"], quality=95)

    files["png_16bit"] = folder / "deep.png"
    deep = photo.astype(np.uint16) * 257 + 100  # uses the low byte too
    cv2.imwrite(str(files["png_16bit"]), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))

    files["exif_rotated_jpeg"] = folder / "rotated.jpg"
    # Stored sideways (as a camera held upright writes it) with orientation 6: display rotates 90° CW.
    stored = np.ascontiguousarray(np.rot90(photo, k=1))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    Image.fromarray(stored).save(files["exif_rotated_jpeg"], quality=95, exif=exif.tobytes())

    files["no_face"] = folder / "no_face.jpg"
    rng = np.random.default_rng(3)
    landscape = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 3)
    Image.fromarray(landscape).save(files["no_face"], quality=90)
    return files


#: What each corpus file must do: "load" or "error" (ImageError at load time).
EXPECTED = {
    "truncated_jpeg": "error", "zero_bytes": "error", "text_named_jpg": "error", "one_pixel": "load",
    "png_20000x20000": "error", "cmyk_jpeg": "load", "png_16bit": "load", "exif_rotated_jpeg": "load",
    "no_face": "load",
}
