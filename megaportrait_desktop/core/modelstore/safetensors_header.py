"""Whether a ``.safetensors`` file is whole: its header parses and every tensor's bytes fit the file exactly.

A safetensors file is 8 bytes of little-endian header length, a JSON header naming each tensor's
dtype, shape and ``data_offsets`` (begin, end) in the data that follows, then the data. The rules are
the ``safetensors`` library's own (its ``Metadata::validate``): every entry has all three fields with
the right types, each tensor's byte length is its shape times its dtype's size, the tensors tile the
data from 0 without gap or overlap, and the data ends where the file ends. Checked here on the header
bytes alone, so a pack can be checked while it streams out of a zip, and a damaged file never reaches
code that indexes its header.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

#: The library's own cap on the header (100 MB).
MAX_HEADER = 100_000_000
#: Bits per element of each dtype the format defines.
DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16,
              "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64,
              "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}


def header_length(prefix: bytes) -> int | None:
    """The header length the first 8 bytes declare, or ``None`` when there are not 8."""
    return struct.unpack("<Q", prefix[:8])[0] if len(prefix) >= 8 else None


def problem(prefix: bytes, size: int) -> str | None:
    """Why a file of ``size`` bytes starting with ``prefix`` (at least its 8 + header bytes) is not a whole
    safetensors file, or ``None`` when it is."""
    n = header_length(prefix)
    if n is None:
        return "too short to be a safetensors file"
    if n < 2 or n > MAX_HEADER or 8 + n > size:
        return "not a safetensors file (its header length is out of range)"
    if len(prefix) < 8 + n:
        return "its header is cut short"
    try:
        header = json.loads(prefix[8:8 + n])
    except (ValueError, RecursionError):
        return "not a safetensors file (its header is not JSON)"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                return "its metadata is not a map of strings"
            continue
        why = _entry_problem(entry)
        if why:
            return f"tensor {str(name)[:60]!r}: {why}"
        spans.append(tuple(entry["data_offsets"]))
    end = 0
    for begin, stop in sorted(spans):
        if begin != end:
            return "its tensors overlap or leave gaps in the data"
        end = stop
    expected = 8 + n + end
    if expected != size:
        return f"{size} bytes, its header says {expected}: " + ("truncated" if size < expected else "extra bytes")
    return None


def file_problem(path: Path) -> str | None:
    """:func:`problem` for a file on disk; a file that cannot be read says so. Never raises."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            prefix = f.read(8)
            n = header_length(prefix)
            if n is not None and 2 <= n <= min(MAX_HEADER, size - 8):
                prefix += f.read(n)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return problem(prefix, size)


def _entry_problem(entry: object) -> str | None:
    if not isinstance(entry, dict):
        return "not a tensor description"
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        return f"unknown dtype {str(dtype)[:20]!r}"
    if not isinstance(shape, list) or not all(_count(d) for d in shape):
        return "its shape is not a list of sizes"
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_count(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        return "its data_offsets are not two ascending byte offsets"
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8 or offsets[1] - offsets[0] != bits // 8:
        return "its size does not match its shape and dtype"
    return None


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
