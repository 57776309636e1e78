"""The fast PNG writer: what any reader gets back is what was written, metadata included; bands report and stop."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from megaportrait_desktop.core.errors import Cancelled
from megaportrait_desktop.core.imaging import decode_image, encode_image, load_image, save_image
from megaportrait_desktop.core.png_writer import encode_png


def _srgb() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("layout", ["rgb", "grey", "rgba", "rgb16"])
def test_pixels_come_back_exactly_in_pillow_and_opencv(astronaut, layout) -> None:
    pixels = {"rgb": astronaut, "grey": astronaut[..., 1], "rgba": np.dstack([astronaut, astronaut[..., 0]]),
              "rgb16": astronaut.astype(np.uint16) * 257 + 3}[layout]
    data = encode_png(pixels)
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if back.ndim == 3:
        back = cv2.cvtColor(back, cv2.COLOR_BGR2RGB if back.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    np.testing.assert_array_equal(back, pixels)
    if layout != "rgb16":  # Pillow reads 16-bit RGB as 8 bits
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)


def test_icc_exif_and_text_chunks_are_read_back(grace) -> None:
    exif = Image.Exif()
    exif[0x010E] = "a description"
    data = encode_png(grace, icc_profile=_srgb(), exif=exif.tobytes(),
                      text={"megaportrait:request": '{"name": "Zoë"}'})
    im = Image.open(io.BytesIO(data))
    assert im.info["icc_profile"] == _srgb()
    assert im.text["megaportrait:request"] == '{"name": "Zoë"}'
    assert im.getexif()[0x010E] == "a description"
    picture = decode_image(data)  # the app's own reader: pixels, profile and EXIF
    np.testing.assert_array_equal(picture.pixels, grace)
    assert picture.icc_profile == _srgb() and picture.exif


def test_bands_report_progress_and_a_raise_stops_the_encoding(astronaut) -> None:
    tall = np.tile(astronaut, (40, 1, 1))  # 20480 × 512: several bands
    seen: list[tuple[int, int]] = []
    encode_png(tall, on_band=lambda done, rows: seen.append((done, rows)))
    assert len(seen) > 2 and seen[-1] == (tall.shape[0], tall.shape[0])
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    def stop(done: int, rows: int) -> None:
        raise Cancelled()
    with pytest.raises(Cancelled):
        encode_image(tall, "PNG", on_band=stop)


def test_16_bit_tiff_keeps_every_level_and_reports_bands(tmp_path, astronaut) -> None:
    deep = (astronaut.astype(np.uint16) * 257) ^ np.uint16(0x00F3)  # all 16 bits used
    seen: list[int] = []
    path = save_image(tmp_path / "deep.tif", deep, icc_profile=_srgb(), on_band=lambda done, rows: seen.append(done))
    picture = load_image(path)
    np.testing.assert_array_equal(picture.pixels, deep)
    assert picture.icc_profile == _srgb() and seen[-1] == deep.shape[0]


def test_a_big_png_is_smaller_than_raw_and_decodes_the_same(astronaut) -> None:
    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    data = encode_png(big)
    assert len(data) < big.nbytes / 2
    np.testing.assert_array_equal(decode_image(data).pixels, big)
