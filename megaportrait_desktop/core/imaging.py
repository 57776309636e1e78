"""Images in and out: JPEG, PNG, TIFF and WebP, 8 and 16 bit, with ICC and EXIF kept.

Every failure to read or write becomes an :class:`ImageError` with a plain message; nothing else
escapes :func:`load_image` or :func:`save_image`.
"""

from __future__ import annotations

import errno
import io
import os
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from isal import isal_zlib
from PIL import Image, ImageCms, ImageFile, TiffImagePlugin, UnidentifiedImageError

from .atomic_write import write_bytes_atomically
from .errors import ImageError
from .png_writer import BAND_BYTES, DEFAULT_LEVEL, BandCallback, encode_png

#: Default pixel limit (width × height) above which a file is refused as a decompression bomb.
#: 200 MP is far above any camera (a 150 MP medium-format frame still passes).
DEFAULT_MAX_PIXELS = 200_000_000

READ_FORMATS = {"JPEG", "PNG", "TIFF", "WEBP", "MPO"}  # MPO: JPEGs from some cameras
SAVE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}

_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_ICC_TAG = 34675
_XMP_TAG = 700

# We check the size ourselves against a configurable limit, before decoding anything.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True, eq=False)
class Picture:
    """A decoded image, upright, with the metadata needed to export it faithfully.

    Attributes
    ----------
    pixels:
        ``(H, W, 3)`` RGB, ``uint8`` or ``uint16``. Grey and CMYK sources are converted to RGB.
    alpha:
        ``(H, W)`` alpha of the same dtype, or ``None``.
    icc_profile:
        The embedded ICC profile (bytes) or ``None`` (treat as sRGB).
    exif:
        Raw EXIF (TIFF-structured bytes as Pillow writes them) with orientation reset to 1, or ``None``.
    source_format:
        ``"JPEG"``, ``"PNG"``, ``"TIFF"`` or ``"WEBP"``.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    source_format: str = ""

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    def rgb8(self) -> np.ndarray:
        """The pixels as ``uint8`` RGB (16-bit data rounded down to 8 bits)."""
        return to_uint8(self.pixels)

    def with_pixels(self, pixels: np.ndarray) -> Picture:
        """A copy carrying the same metadata with other pixels (alpha dropped if the size changed)."""
        alpha = self.alpha if self.alpha is not None and self.alpha.shape == pixels.shape[:2] else None
        return replace(self, pixels=pixels, alpha=alpha)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Convert ``uint8``/``uint16``/float ``[0, 1]`` pixels to ``uint8`` with rounding."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if pixels.dtype == np.float32 and pixels.flags.c_contiguous and pixels.ndim in (2, 3) and pixels.size:
        # The same numbers as below (float32 products, rounded half to even, saturated) in two threaded
        # OpenCV passes instead of four NumPy ones: several times faster for a live preview's crops.
        # convertScaleAbs takes |x|, so negatives go to 0 first; one channel, so the 0 applies to every value.
        flat = pixels.reshape(pixels.shape[0], -1)
        return cv2.convertScaleAbs(cv2.max(flat, 0.0), alpha=255.0).reshape(pixels.shape)
    return np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)


def to_float(pixels: np.ndarray) -> np.ndarray:
    """Convert integer pixels to ``float32`` in ``[0, 1]``."""
    scale = 65535.0 if pixels.dtype == np.uint16 else 255.0
    return pixels.astype(np.float32) * np.float32(1.0 / scale)


def from_float(pixels: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """Convert ``float32`` ``[0, 1]`` pixels back to ``uint8`` or ``uint16`` with rounding."""
    top = 65535.0 if np.dtype(dtype) == np.uint16 else 255.0
    return np.clip(np.rint(pixels * top), 0, top).astype(dtype)


# --------------------------------------------------------------------------------------------- load


def load_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """Read an image file, upright (EXIF orientation applied), as RGB with metadata.

    Parameters
    ----------
    path:
        A JPEG, PNG, TIFF or WebP file.
    max_pixels:
        Files declaring more than this many pixels are refused before decoding.

    Raises
    ------
    ImageError
        For a missing, empty, damaged, truncated, unsupported or oversized file.
    """
    return read_image_file(path, max_pixels)[1]


def read_image_file(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[bytes, Picture]:
    """The file's bytes (to store them as they are) and the decoded picture; see :func:`load_image`."""
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(f"{name}: file not found ({path}).") from None
    except OSError as exc:
        raise ImageError(f"{name}: cannot be read ({exc.strerror}).") from None
    if path.is_dir():
        raise ImageError(f"{name}: is a folder, not an image file.")
    if size == 0:
        raise ImageError(f"{name}: the file is empty (0 bytes); copy it again from the original.")
    limit = max_file_bytes(max_pixels)
    if size > limit:
        raise ImageError(f"{name}: the file is {size / 1e9:.1f} GB, more than any image within the pixel limit "
                         f"({max_pixels / 1e6:.0f} megapixels) can take ({limit / 1e9:.1f} GB); it is not a photo, "
                         "or raise the pixel limit in settings if it really is one.")
    try:
        with path.open("rb") as fh:
            head = fh.read(4 << 20)
            # A non-image is refused before the rest is even read.
            _check_signature(head, name)
            if head.startswith(b"\xff\xd8") and _jpeg_junk(head) > MAX_JPEG_JUNK:
                raise ImageError(f"{name}: not an image file: a JPEG signature followed by data that is no JPEG.")
            data = head + fh.read(limit + 1 - len(head))
    except OSError as exc:
        raise ImageError(f"{name}: cannot be read ({exc.strerror}).") from None
    if len(data) > limit:  # it grew while we read it
        raise ImageError(f"{name}: the file is larger than any image within the pixel limit; it is not a photo.")
    return data, decode_image(data, name=name, max_pixels=max_pixels)


def max_file_bytes(max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """The largest image file read: every pixel at 16-bit RGBA uncompressed, plus 64 MB of metadata."""
    return max_pixels * 8 + (64 << 20)


#: The first bytes of every format we read (TIFF in both byte orders; WebP inside a RIFF container).
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"RIFF")
#: A JPEG's header may hold this many bytes that are no part of a marker segment (padding, junk).
MAX_JPEG_JUNK = 1 << 20


def _check_signature(head: bytes, name: str) -> None:
    if any(head.startswith(sig) for sig in _SIGNATURES) and not (head.startswith(b"RIFF") and head[8:12] != b"WEBP"):
        return
    other = next((fmt for sig, fmt in _OTHER_FORMATS if head.startswith(sig) or head[4:12].startswith(sig)), None)
    if other:
        raise ImageError(f"{name}: {other} files are not supported; use JPEG, PNG, TIFF or WebP.")
    raise ImageError(f"{name}: not an image file (JPEG, PNG, TIFF or WebP expected).")


#: Image formats people try that we do not read, named in the refusal.
_OTHER_FORMATS = ((b"GIF8", "GIF"), (b"BM", "BMP"), (b"8BPS", "PSD"), (b"ftypheic", "HEIC"), (b"ftypmif1", "HEIF"),
                  (b"ftypavif", "AVIF"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"))


def _jpeg_junk(data: bytes) -> int:
    """Bytes of a JPEG header that belong to no marker segment, counted up to its start of scan.

    Pillow skips such bytes one at a time in Python (about 15 MB/s), so a JPEG signature followed by
    gigabytes of anything else would take minutes to refuse; ``bytes.find`` jumps over them at memory speed.
    """
    pos, junk, n = 2, 0, len(data)
    while pos < n and junk <= MAX_JPEG_JUNK:
        if data[pos] != 0xFF:
            nxt = data.find(b"\xff", pos)
            nxt = n if nxt < 0 else nxt
            junk += nxt - pos
            pos = nxt
            continue
        if pos + 1 >= n:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker in (0x00, 0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # stuffing and stand-alone markers
            pos += 2
        elif marker in (0xDA, 0xD9):  # start of scan (the header is over) or end of image
            break
        else:
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
            pos += 2 + max(length, 2)
    return junk


def decode_image(data: bytes, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """Decode image bytes; see :func:`load_image`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _decode(data, name, max_pixels)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, cv2.error,
            Image.DecompressionBombError, MemoryError) as exc:
        raise ImageError(f"{name}: the file is damaged or truncated and cannot be decoded ({exc}).") from None


def _decode(data: bytes, name: str, max_pixels: int) -> Picture:
    _check_signature(data[:12], name)
    if data.startswith(b"\xff\xd8") and _jpeg_junk(data) > MAX_JPEG_JUNK:
        raise ImageError(f"{name}: not an image file: a JPEG signature followed by data that is no JPEG.")
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (JPEG, PNG, TIFF or WebP expected).") from None
    if im.format not in READ_FORMATS:
        raise ImageError(f"{name}: {im.format} files are not supported; use JPEG, PNG, TIFF or WebP.")
    width, height = im.size
    if width < 1 or height < 1:
        raise ImageError(f"{name}: the image has no pixels ({width}×{height}).")
    if width * height > max_pixels:
        raise ImageError(
            f"{name}: {width}×{height} is {width * height / 1e6:.0f} megapixels, above the limit of "
            f"{max_pixels / 1e6:.0f}; raise the pixel limit in settings if this really is a photo."
        )
    icc = im.info.get("icc_profile") or None
    exif = _exif_of(im)
    orientation = int(exif.get(_ORIENTATION, 1) or 1)

    if _maybe_16bit(im):
        pixels, alpha = _decode_with_opencv(data, im)
    elif im.format == "JPEG" and im.mode in {"RGB", "L"}:
        pixels, alpha = _decode_jpeg_with_opencv(data, im), None
    else:
        pixels, alpha = None, None
    if pixels is None:
        im.load()  # raises OSError on truncated data
        pixels, alpha, icc = _pil_to_arrays(im, icc)

    pixels = _orient(pixels, orientation)
    alpha = _orient(alpha, orientation) if alpha is not None else None
    exif_bytes = None
    if len(exif):
        exif[_ORIENTATION] = 1
        exif_bytes = exif.tobytes()
    return Picture(np.ascontiguousarray(pixels), None if alpha is None else np.ascontiguousarray(alpha),
                   icc, exif_bytes, "JPEG" if im.format == "MPO" else im.format)


def _exif_of(im: Image.Image) -> Image.Exif:
    """The image's EXIF. For a PNG, from its eXIf chunk when that comes before the pixels (as every writer
    puts it, ours included): Pillow's ``getexif`` decodes the whole PNG to look for one after them, which
    on 24 megapixels holds the GIL and is then thrown away (OpenCV decodes the pixels)."""
    if im.format != "PNG":
        return im.getexif()
    exif = Image.Exif()
    if im.info.get("exif"):
        exif.load(im.info["exif"])
    return exif


def _maybe_16bit(im: Image.Image) -> bool:
    # Pillow reduces 16-bit RGB(A) PNG/TIFF to 8 bits, so those go through OpenCV, which keeps 16 bits.
    return im.format in {"PNG", "TIFF"} and im.mode not in {"CMYK", "P", "1", "LA", "PA"}


def _decode_with_opencv(data: bytes, im: Image.Image) -> tuple[np.ndarray | None, np.ndarray | None]:
    """RGB(A) PNG/TIFF through OpenCV: 16-bit ones keep 16 bits; 8-bit RGB, RGBA and grey PNGs are read here too
    (OpenCV lets other threads run while it decodes, and is faster: Pillow holds the GIL for up to 0.1 s
    at a time on a 24-megapixel PNG, which the window would feel). ``(None, None)``: let Pillow read it."""
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if arr is None or arr.shape[:2] != (im.size[1], im.size[0]):
        return None, None
    if arr.dtype == np.uint8:
        channels = {"RGB": 3, "RGBA": 4, "L": 1}.get(im.mode)
        if im.format != "PNG" or channels is None or "transparency" in im.info \
                or (arr.shape[2] if arr.ndim == 3 else 1) != channels:
            return None, None  # anything unusual (a tRNS colour key, another layout): Pillow's reading stands
    elif arr.dtype != np.uint16:
        return None, None
    if arr.ndim == 2:  # grey (a mask): through OpenCV too, which lets other threads run
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB), None
    if arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB), arr[:, :, 3].copy()
    if arr.shape[2] == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB), None
    return None, None


def _decode_jpeg_with_opencv(data: bytes, im: Image.Image) -> np.ndarray | None:
    """An RGB or greyscale JPEG through OpenCV: the same pixels as Pillow's (both are libjpeg-turbo's
    defaults), but OpenCV lets other threads run while it decodes, where turning Pillow's image into an
    array holds Python's GIL throughout, which the window feels on a camera file. A file that does not
    end in the JPEG end marker may be cut short: Pillow reads it, and says so. ``None``: let Pillow read
    it."""
    if data.rstrip(b"\0")[-2:] != b"\xff\xd9":
        return None
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None or arr.shape[:2] != (im.size[1], im.size[0]):
        return None
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def _pil_to_arrays(im: Image.Image, icc: bytes | None) -> tuple[np.ndarray, np.ndarray | None, bytes | None]:
    mode = im.mode
    if mode == "CMYK":
        # Convert through the embedded profile when there is one; the result is sRGB.
        if icc:
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                srgb = ImageCms.createProfile("sRGB")
                im = ImageCms.profileToProfile(im, src, srgb, outputMode="RGB")
            except (ImageCms.PyCMSError, OSError):
                im = im.convert("RGB")
        else:
            im = im.convert("RGB")
        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        return np.asarray(im), None, icc
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        grey = np.asarray(im)
        grey = np.clip(grey, 0, 65535).astype(np.uint16)
        return np.repeat(grey[:, :, None], 3, axis=2), None, icc
    if mode == "F":
        grey = np.asarray(im, dtype=np.float32)
        top = 1.0 if float(grey.max(initial=0.0)) <= 1.0 else 255.0
        grey8 = np.clip(np.rint(grey / top * 255), 0, 255).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2), None, icc
    has_alpha = mode in {"RGBA", "LA", "PA"} or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"))
        return rgba[:, :, :3].copy(), rgba[:, :, 3].copy(), icc
    return np.asarray(im if mode == "RGB" else im.convert("RGB")), None, icc  # RGB: no 72 MB copy at 24 MP


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1–8) so the image is upright."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return np.swapaxes(arr, 0, 1)
    if orientation == 6:
        return np.rot90(arr, k=-1)
    if orientation == 7:
        return np.swapaxes(arr[::-1, ::-1], 0, 1)
    if orientation == 8:
        return np.rot90(arr, k=1)
    return arr


# --------------------------------------------------------------------------------------------- save


def save_image(
    path: str | os.PathLike[str],
    picture: Picture | np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    quality: int = 95,
    text: dict[str, str] | None = None,
    xmp: bytes | None = None,
    on_band: BandCallback | None = None,
) -> Path:
    """Write an image, choosing the format from the suffix: ``.png``, ``.jpg``/``.jpeg``, ``.tif``.

    PNG and JPEG are written at 8 bits; TIFF at 16 bits. The ICC profile and EXIF of ``picture``
    (or the ones given, which win) are embedded; ``text`` adds PNG text chunks and ``xmp`` an XMP
    packet. The file is written next to its destination and moved into place, so a failure (a full
    disk) never leaves a half-written file where the old one was. ``on_band`` hears how far the
    encoding is (rows done, rows in all) and may raise to stop it (see :func:`encode_image`).

    Raises
    ------
    ImageError
        For an unsupported suffix or a failed write (the message says why: disk full, no permission).
    """
    path = Path(path)
    fmt = SAVE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path.name}: cannot save as '{path.suffix}'; use .png, .jpg or .tif.")
    data = encode_image(picture, fmt, icc_profile=icc_profile, exif=exif, quality=quality, text=text, xmp=xmp,
                        on_band=on_band)
    write_atomic(path, data)
    return path


def png_bytes(image: np.ndarray) -> bytes:
    """``image`` (any dtype :func:`to_uint8` takes) as an 8-bit PNG, as the project stores stages and masks."""
    return encode_png(to_uint8(np.asarray(image)))  # ISA-L's deflate: a mask of 24 MP in a few hundredths


def encode_image(
    picture: Picture | np.ndarray,
    fmt: str,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    quality: int = 95,
    text: dict[str, str] | None = None,
    xmp: bytes | None = None,
    on_band: BandCallback | None = None,
) -> bytes:
    """The bytes of ``picture`` as ``fmt`` ("PNG", "JPEG" or "TIFF"); see :func:`save_image`.

    PNG and TIFF are compressed a band of rows at a time (:mod:`.png_writer`, ISA-L's deflate): a
    24-megapixel image takes well under a second, and ``on_band(rows done, rows in all)`` is called
    after each band (it may raise, e.g. :class:`~.errors.Cancelled`, to stop). A JPEG is one step.
    """
    if isinstance(picture, Picture):
        pixels, alpha = picture.pixels, picture.alpha
        icc_profile = icc_profile if icc_profile is not None else picture.icc_profile
        exif = exif if exif is not None else picture.exif
    else:
        pixels, alpha = picture, None
    pixels = _as_rgb(np.asarray(pixels))

    buffer = io.BytesIO()
    if fmt == "TIFF":
        _write_tiff16(buffer, pixels, icc_profile, exif, xmp, on_band)
        return buffer.getvalue()
    if fmt == "PNG":
        rgb = to_uint8(pixels)
        if alpha is not None:
            rgb = np.dstack([rgb, to_uint8(alpha)])
        chunks = dict(text or {})
        if xmp:
            chunks["XML:com.adobe.xmp"] = xmp.decode("utf-8")
        return encode_png(rgb, icc_profile=icc_profile, exif=exif, text=chunks, on_band=on_band)
    im = Image.fromarray(to_uint8(pixels))
    params: dict[str, object] = {}
    if icc_profile:
        params["icc_profile"] = icc_profile
    if exif:
        params["exif"] = exif
    if fmt == "JPEG":
        # No optimize=True: Pillow holds the GIL through an optimised encode (0.45 s on 24 MP, a frozen
        # window) for files about 6 % smaller; the standard Huffman tables encode in chunks and faster.
        params.update(quality=quality, subsampling=0)
        if xmp:
            params["xmp"] = xmp
    im.save(buffer, format=fmt, **params)
    if on_band is not None:
        on_band(pixels.shape[0], pixels.shape[0])
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file in the same folder, then rename."""
    try:
        write_bytes_atomically(path, data)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ImageError(f"{path.name}: the disk is full; free some space and save again.") from None
        raise ImageError(f"{path.name}: could not be written ({exc.strerror}).") from None


def _as_rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return pixels
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return pixels[:, :, :3]
    raise ImageError(f"cannot save an array of shape {pixels.shape} as an image.")


def _to_uint16(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint16:
        return pixels
    if pixels.dtype == np.uint8:
        return pixels.astype(np.uint16) * 257
    return from_float(pixels, np.uint16)


def _write_tiff16(out: io.BytesIO, pixels: np.ndarray, icc: bytes | None, exif: bytes | None,
                  xmp: bytes | None = None, on_band: BandCallback | None = None) -> None:
    """16-bit RGB TIFF (deflate, horizontal predictor) with the ICC profile and the EXIF sub-IFDs.

    tifffile lays out the file; the strips it writes are compressed here, a band at a time, with
    ISA-L (zlib's own deflate takes about 7 s for 24 megapixels at 16 bits, this about 0.5 s).

    Pillow cannot hold 16-bit RGB and tifffile refuses to write an EXIF sub-IFD pointer, so tifffile
    writes the image with a placeholder tag one code below each pointer (34664 for EXIF 34665, 34852
    for GPS 34853: the IFD stays sorted), then the placeholder becomes the pointer to the sub-IFD that
    Pillow serialises at the end of the file.
    """
    import tifffile

    extratags: list[tuple] = []
    if icc:
        extratags.append((_ICC_TAG, 7, len(icc), icc, True))
    if xmp:
        extratags.append((_XMP_TAG, 1, len(xmp), xmp, True))
    text_tags, sub_ifds = _split_exif(exif)
    extratags.extend(text_tags)
    for tag in sub_ifds:
        extratags.append((tag - 1, 4, 1, 0, True))  # LONG placeholder, patched below
    deep = _to_uint16(pixels)
    rows = max(1, BAND_BYTES // (deep.shape[1] * 6))
    tifffile.imwrite(out, data=_tiff_strips(deep, rows, on_band), shape=deep.shape, dtype=np.uint16,
                     photometric="rgb", compression="zlib", predictor=2, rowsperstrip=rows, byteorder="<",
                     bigtiff=False, extratags=extratags, metadata=None, software=False)
    if not sub_ifds:
        return
    out.seek(0)
    with tifffile.TiffFile(out) as tif:
        offsets = {tag: tif.pages[0].tags[tag - 1].valueoffset for tag in sub_ifds}
    for tag, entries in sub_ifds.items():
        end = out.seek(0, io.SEEK_END)
        end += end % 2  # IFDs start on a word boundary
        ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
        for key, value in entries.items():
            ifd[key] = value
        out.seek(end)
        out.write(ifd.tobytes(end))
        # The 12-byte entry is code, type, count, value: rewrite it as (tag, LONG, 1, offset).
        out.seek(offsets[tag] - 8)
        out.write(struct.pack("<HHII", tag, 4, 1, end))


def _tiff_strips(pixels: np.ndarray, rows: int, on_band: BandCallback | None) -> Iterator[bytes]:
    """Strips of ``rows`` rows, horizontally differenced (TIFF predictor 2) and deflated (zlib format)."""
    height = pixels.shape[0]
    for top in range(0, height, rows):
        block = pixels[top:top + rows]
        diff = block.copy()
        np.subtract(block[:, 1:], block[:, :-1], out=diff[:, 1:])  # uint16 wraps around, as the predictor wants
        strip = isal_zlib.compress(diff.astype("<u2", copy=False).tobytes(), DEFAULT_LEVEL)
        if on_band is not None:
            on_band(min(top + rows, height), height)
        yield strip


def _split_exif(exif: bytes | None) -> tuple[list[tuple], dict[int, dict]]:
    """Split EXIF into IFD0 text tags (written as TIFF tags) and the sub-IFDs (EXIF, GPS) to append."""
    if not exif:
        return [], {}
    parsed = Image.Exif()
    try:
        parsed.load(exif)
    except (SyntaxError, ValueError, struct.error, OSError):
        return [], {}
    # Make, Model, Software, DateTime, ImageDescription, Artist, Copyright: EXIF's IFD0 is a TIFF IFD.
    text_tags = [(tag, 2, 0, value, True) for tag in (271, 272, 305, 306, 270, 315, 33432)
                 if isinstance(value := parsed.get(tag), str) and value]
    sub = {tag: dict(parsed.get_ifd(tag)) for tag in (_EXIF_IFD, _GPS_IFD) if parsed.get_ifd(tag)}
    return text_tags, sub
