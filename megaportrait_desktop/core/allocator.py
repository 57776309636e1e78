"""glibc's malloc told to keep freed image-sized blocks for reuse (Linux; elsewhere nothing changes).

A 512-pixel crop in float32 is 3 MB. By default glibc gives such a block back to the kernel soon after it
is freed (OpenCV's and PyTorch's threads allocate from their own arenas, which it trims eagerly), so the
next array of that size faults on each of its 4 KB pages as it is first written. Between the crops of a
diffusion draft that cost more than the arithmetic: a frequency separation of a 512 crop spent four
fifths of its time there. Serving blocks under 32 MB from the heap and keeping up to 128 MB of freed memory
there removes those faults; camera-sized arrays (32 MB and more) are still mapped and returned at once.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks under this size come from the heap (glibc's default starts at 128 KB and moves as blocks are freed).
MMAP_THRESHOLD = 32 << 20
#: Freed memory the heap keeps before it is given back to the kernel.
TRIM_THRESHOLD = 128 << 20


def keep_freed_memory() -> bool:
    """Tune this process's malloc as the module says; ``True`` where it took (glibc), else ``False``."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
