from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from megaportrait_desktop.core.errors import ImageError
from megaportrait_desktop.core.imaging import Picture, load_image, save_image

from .badinput import EXPECTED, make_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, astronaut) -> dict[str, Path]:
    return make_corpus(tmp_path_factory.mktemp("corpus"), astronaut)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_loads_or_gives_the_typed_error(corpus, name: str) -> None:
    if EXPECTED[name] == "error":
        with pytest.raises(ImageError) as info:
            load_image(corpus[name])
        message = str(info.value)
        assert corpus[name].name in message and "\n" not in message
    else:
        picture = load_image(corpus[name])
        assert picture.pixels.ndim == 3 and picture.pixels.shape[2] == 3


def test_error_messages_say_what_is_wrong(corpus) -> None:
    assert "empty" in str(pytest.raises(ImageError, load_image, corpus["zero_bytes"]).value)
    assert "not an image" in str(pytest.raises(ImageError, load_image, corpus["text_named_jpg"]).value)
    assert "damaged or truncated" in str(pytest.raises(ImageError, load_image, corpus["truncated_jpeg"]).value)
    bomb = str(pytest.raises(ImageError, load_image, corpus["png_20000x20000"]).value)
    assert "20000×20000" in bomb and "limit" in bomb
    assert "not found" in str(pytest.raises(ImageError, load_image, corpus["zero_bytes"].with_name("nope.jpg")).value)


def test_pixel_limit_is_configurable(corpus) -> None:
    assert load_image(corpus["cmyk_jpeg"], max_pixels=512 * 512).width == 512
    with pytest.raises(ImageError, match="limit"):
        load_image(corpus["cmyk_jpeg"], max_pixels=512 * 511)


def test_cmyk_jpeg_becomes_rgb_close_to_the_original(corpus, astronaut) -> None:
    picture = load_image(corpus["cmyk_jpeg"])
    assert picture.pixels.dtype == np.uint8 and picture.pixels.shape == astronaut.shape
    assert np.abs(picture.pixels.astype(int) - astronaut).mean() < 8
    assert picture.icc_profile is not None  # converted to sRGB and says so


def test_16bit_png_keeps_16_bits(corpus, astronaut) -> None:
    picture = load_image(corpus["png_16bit"])
    assert picture.pixels.dtype == np.uint16 and picture.bit_depth == 16
    np.testing.assert_array_equal(picture.pixels, astronaut.astype(np.uint16) * 257 + 100)


def test_exif_orientation_is_applied(corpus, astronaut) -> None:
    picture = load_image(corpus["exif_rotated_jpeg"])
    assert picture.pixels.shape == astronaut.shape  # back to 512×512 upright
    assert np.abs(picture.pixels.astype(int) - astronaut).mean() < 4
    exif = Image.Exif()
    exif.load(picture.exif)
    assert exif[0x0112] == 1 and exif[0x010F] == "TestCam"  # orientation reset, the rest kept


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation(tmp_path, orientation: int) -> None:
    # An asymmetric 2×3 marker; PIL's own exif_transpose is the reference for what "upright" means.
    marker = np.zeros((20, 30, 3), np.uint8)
    marker[:10, :10] = (255, 0, 0)
    marker[10:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    Image.fromarray(marker).save(path, exif=exif.tobytes())
    from PIL import ImageOps

    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal(load_image(path).pixels, expected)


def test_grey_rgba_and_webp(tmp_path, astronaut) -> None:
    Image.fromarray(astronaut).convert("L").save(tmp_path / "grey.png")
    grey = load_image(tmp_path / "grey.png")
    assert grey.pixels.shape == (512, 512, 3) and (grey.pixels[..., 0] == grey.pixels[..., 2]).all()
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    picture = load_image(tmp_path / "alpha.png")
    np.testing.assert_array_equal(picture.pixels, astronaut)
    assert picture.alpha is not None and (picture.alpha == 128).all()
    Image.fromarray(astronaut).save(tmp_path / "photo.webp", lossless=True)
    np.testing.assert_array_equal(load_image(tmp_path / "photo.webp").pixels, astronaut)


def _adobe_like_profile() -> bytes:
    profile = ImageCms.createProfile("LAB")  # any profile that is not sRGB
    return ImageCms.ImageCmsProfile(profile).tobytes()


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_save_keeps_icc_and_exif(tmp_path, astronaut, suffix: str) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "Hasselblad"
    exif[0x0110] = "X2D"
    exif.get_ifd(0x8769)[0x9003] = "2026:11:24 10:00:00"  # DateTimeOriginal, in the EXIF sub-IFD
    picture = Picture(astronaut, icc_profile=icc, exif=exif.tobytes())
    path = save_image(tmp_path / f"out{suffix}", picture)
    again = load_image(path)
    assert again.icc_profile == icc
    back = Image.Exif()
    back.load(again.exif)
    assert back[0x010F] == "Hasselblad" and back[0x0110] == "X2D"
    assert back.get_ifd(0x8769)[0x9003] == "2026:11:24 10:00:00"
    if suffix == ".tif":
        assert again.pixels.dtype == np.uint16
        np.testing.assert_array_equal(again.pixels, astronaut.astype(np.uint16) * 257)
    elif suffix == ".png":
        np.testing.assert_array_equal(again.pixels, astronaut)
    else:
        assert np.abs(again.pixels.astype(int) - astronaut).mean() < 2


def test_16bit_tiff_round_trip_is_lossless(tmp_path) -> None:
    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, (40, 50, 3), dtype=np.uint16)
    path = save_image(tmp_path / "deep.tif", deep)
    np.testing.assert_array_equal(load_image(path).pixels, deep)


def test_save_refuses_unknown_suffix_and_keeps_old_file_on_failure(tmp_path, astronaut, monkeypatch) -> None:
    with pytest.raises(ImageError, match="cannot save"):
        save_image(tmp_path / "out.bmp", astronaut)
    target = tmp_path / "keep.png"
    save_image(target, astronaut)
    before = target.read_bytes()

    import errno
    import os

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(ImageError, match="disk is full"):
        save_image(target, np.zeros_like(astronaut))
    assert target.read_bytes() == before  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".part"] == []


def test_decode_never_leaks_other_exceptions(tmp_path, astronaut) -> None:
    # Every truncation length of a small JPEG and PNG: each loads or raises ImageError, nothing else.
    buffers = {}
    for fmt in ("JPEG", "PNG"):
        out = io.BytesIO()
        Image.fromarray(astronaut[:64, :64]).save(out, format=fmt)
        buffers[fmt] = out.getvalue()
    from megaportrait_desktop.core.imaging import decode_image

    for data in buffers.values():
        for cut in range(0, len(data), max(1, len(data) // 60)):
            with contextlib.suppress(ImageError):
                decode_image(data[:cut])


@pytest.mark.parametrize("options", [dict(quality=90), dict(quality=90, progressive=True),
                                     dict(quality=95, subsampling=0), dict(grey=True)])
def test_a_jpeg_decodes_to_pillows_pixels(tmp_path, astronaut, options: dict) -> None:
    # 8-bit JPEGs are decoded by OpenCV (it lets the window's thread run meanwhile): the same pixels.
    grey = options.pop("grey", False)
    path = tmp_path / "photo.jpg"
    Image.fromarray(astronaut[..., 0] if grey else astronaut).save(path, "JPEG", **options)
    expected = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(load_image(path).pixels, expected)


def test_a_grey_png_and_a_pngs_exif_orientation_read_as_pillow_reads_them(tmp_path, astronaut) -> None:
    # Grey PNGs (masks) decode through OpenCV, and a PNG's EXIF comes from its eXIf chunk without Pillow
    # decoding the pixels: the same results as Pillow's own reading.
    grey = tmp_path / "mask.png"
    Image.fromarray(astronaut[..., 1]).save(grey)
    assert np.array_equal(load_image(grey).pixels, np.asarray(Image.open(grey).convert("RGB")))
    turned = tmp_path / "turned.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    Image.fromarray(astronaut[:200, :300]).save(turned, exif=exif)
    picture = load_image(turned)
    assert picture.pixels.shape[:2] == (300, 200)
    assert np.array_equal(picture.pixels, np.rot90(astronaut[:200, :300], k=-1))


def test_float_pixels_round_to_8_bits_as_numpy_rounds_them(astronaut) -> None:
    """to_uint8's OpenCV path (float32) gives NumPy's clip(rint(x · 255)) exactly: halves to even, out of range
    saturated, in colour and grey, and the NumPy path still serves other floats."""
    from megaportrait_desktop.core.imaging import to_uint8

    levels = np.arange(256, dtype=np.float32)
    halves = (levels + np.float32(0.5)) / np.float32(255.0)  # x · 255 lands on or next to .5
    edges = np.concatenate([halves, np.nextafter(halves, np.float32(2)), np.nextafter(halves, np.float32(-2)),
                            levels / np.float32(255.0), np.float32([-0.3, -0.0, 1.0, 1.7, 1e-9])])
    photo = astronaut.astype(np.float32) / np.float32(255.0) * np.float32(1.3) - np.float32(0.1)
    photo.reshape(-1)[:edges.size] = edges
    for pixels in (photo, photo[:, :, 1].copy(), photo[::2, ::3], photo.astype(np.float64)):
        expected = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
        got = to_uint8(pixels)
        assert got.shape == pixels.shape and got.dtype == np.uint8
        assert np.array_equal(got, expected)
    assert to_uint8(photo)[0, 0, 0] == 0 and to_uint8(photo).max() == 255  # the edges are in the image
