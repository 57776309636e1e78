"""A camera-sized reference for tests: the astronaut portrait enlarged to 24 megapixels, with sensor-like noise."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import Image


def camera_reference(path: Path, width: int = 4000, height: int = 6000) -> Path:
    """A ``width`` × ``height`` JPEG (default 24 MP, portrait 2:3) of the astronaut, face in the upper half.

    Noise (σ 6 levels) keeps it compressing like a photo, not like enlarged flat pixels.
    """
    square = cv2.resize(skimage.data.astronaut(), (width, width), interpolation=cv2.INTER_CUBIC)
    frame = cv2.copyMakeBorder(square, 0, height - width, 0, 0, cv2.BORDER_REPLICATE)
    noise = np.random.default_rng(0).normal(0, 6.0, frame.shape).astype(np.float32)
    Image.fromarray(np.clip(frame + noise, 0, 255).astype(np.uint8)).save(path, quality=92)
    return path
