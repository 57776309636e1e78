"""The mask overlay's pixels: the colour everywhere, the mask as alpha, recoloured in place."""

from __future__ import annotations

import numpy as np

from megaportrait_desktop.ui.canvas import _OverlayItem, overlay_image


def test_the_overlay_is_the_colour_everywhere_with_the_mask_as_alpha(qapp, astronaut) -> None:
    mask = astronaut[::4, ::4, 0].copy()  # a real image's byte values as the mask
    image = overlay_image(mask, (12, 200, 77))
    assert (image.width(), image.height()) == (mask.shape[1], mask.shape[0])
    corner = image.pixelColor(0, 0)
    assert (corner.red(), corner.green(), corner.blue(), corner.alpha()) == (12, 200, 77, mask[0, 0])
    item = _OverlayItem()
    item.set_image(image, (12, 200, 77))
    pixels = item._pixels()
    assert np.array_equal(pixels[..., 3], mask)
    assert (pixels[..., :3] == (12, 200, 77)).all()
    item.set_colour((255, 1, 128))
    assert (pixels[..., :3] == (255, 1, 128)).all() and np.array_equal(pixels[..., 3], mask)
