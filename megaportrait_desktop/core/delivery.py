"""Preparing a finished portrait for delivery: a long-edge size, output sharpening, sRGB, no GPS.

Pure image functions on :class:`.imaging.Picture` (no project, no Qt): the export presets
(:mod:`project.export_presets`) chain them. Resizing uses OpenCV's area filter (the standard for
downscaling photographs); sharpening is an unsharp mask sized for the medium, as Lightroom's
"Sharpen for screen / matte / glossy paper" are; the sRGB conversion goes through LittleCMS
(Pillow's ImageCms) from the picture's own ICC profile.
"""

from __future__ import annotations

import io
from dataclasses import replace

import cv2
import numpy as np
from PIL import Image, ImageCms

from .errors import ImageError
from .imaging import Picture, from_float, to_float

#: Unsharp-mask (radius in pixels, amount) by medium and strength. Screen output wants a fine radius;
#: paper spreads ink, so print sharpening is wider and stronger.
SHARPENING = {
    "screen": {"low": (0.5, 0.35), "standard": (0.6, 0.6), "high": (0.7, 0.9)},
    "matte": {"low": (1.0, 0.5), "standard": (1.0, 0.8), "high": (1.2, 1.1)},
    "glossy": {"low": (0.8, 0.4), "standard": (0.8, 0.65), "high": (1.0, 0.9)},
}
#: The EXIF pointer to the GPS block (where the photo was taken).
GPS_IFD = 0x8825


def resize_long_edge(picture: Picture, long_edge: int) -> Picture:
    """The picture with its longer side ``long_edge`` pixels (never enlarged), same bit depth."""
    if long_edge <= 0:
        raise ValueError("the long edge must be a positive number of pixels")
    h, w = picture.height, picture.width
    scale = long_edge / max(h, w)
    if scale >= 1.0:
        return picture
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    pixels = cv2.resize(picture.pixels, size, interpolation=cv2.INTER_AREA)
    alpha = None if picture.alpha is None else cv2.resize(picture.alpha, size, interpolation=cv2.INTER_AREA)
    return replace(picture, pixels=pixels, alpha=alpha)


def sharpen_for_output(picture: Picture, medium: str, strength: str = "standard") -> Picture:
    """Output sharpening (an unsharp mask) for ``medium`` (``screen``, ``matte``, ``glossy``) at ``strength``
    (``low``, ``standard``, ``high``); applied after resizing, as the last step before encoding."""
    try:
        radius, amount = SHARPENING[medium][strength]
    except KeyError:
        raise ValueError(f"unknown sharpening {medium!r}/{strength!r}; media: {', '.join(SHARPENING)}; "
                         "strengths: low, standard, high") from None
    image = to_float(picture.pixels)
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=radius, sigmaY=radius)
    sharpened = np.clip(image + amount * (image - blurred), 0.0, 1.0)
    return replace(picture, pixels=from_float(sharpened, picture.pixels.dtype))


def srgb_profile() -> bytes:
    """The sRGB ICC profile (LittleCMS's built-in one) as bytes, to embed in a converted file."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def is_srgb(icc: bytes | None) -> bool:
    """No profile (read as sRGB) or one whose description says sRGB."""
    if not icc:
        return True
    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImageCms.PyCMSError, OSError, ValueError):
        return False
    return "srgb" in description.lower().replace(" ", "")


def convert_to_srgb(picture: Picture) -> Picture:
    """The picture in sRGB, carrying the sRGB profile: what browsers, phones and print labs assume.

    A picture already in sRGB (or with no profile) keeps its pixels. Only 8-bit pictures are converted
    (LittleCMS through Pillow works on 8 bits per channel; a 16-bit master keeps its own wide profile).

    Raises
    ------
    ImageError
        For a 16-bit picture in another profile, or a profile LittleCMS cannot read.
    """
    icc = picture.icc_profile
    if icc is None or is_srgb(icc):
        return replace(picture, icc_profile=srgb_profile())
    if picture.pixels.dtype != np.uint8:
        raise ImageError("Converting a 16-bit picture to sRGB is not supported; export it as JPEG or PNG for sRGB, "
                         "or as TIFF keeping its own profile.")
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(Image.fromarray(picture.pixels), source, ImageCms.createProfile("sRGB"),
                                              renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        raise ImageError(f"The picture's colour profile cannot be converted to sRGB ({exc}).") from None
    return replace(picture, pixels=np.asarray(converted), icc_profile=srgb_profile())


def without_location(picture: Picture) -> Picture:
    """The picture with the GPS block (where the reference was shot) taken out of its EXIF."""
    if not picture.exif:
        return picture
    exif = Image.Exif()
    try:
        exif.load(picture.exif)
    except (SyntaxError, ValueError, OSError):
        return replace(picture, exif=None)
    if GPS_IFD not in exif:
        return picture
    del exif[GPS_IFD]
    return replace(picture, exif=exif.tobytes())
