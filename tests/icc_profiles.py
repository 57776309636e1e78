"""A wide-gamut ICC profile for tests, built here (LittleCMS can only make sRGB, Lab and XYZ ones).

A matrix/TRC display profile (ICC v2) with the Adobe RGB (1998) primaries, adapted to D50 as ICC
profiles store them, and a 2.2 gamma: what a studio camera set to Adobe RGB writes into its JPEGs.
"""

from __future__ import annotations

import struct

#: Adobe RGB (1998) primaries, Bradford-adapted to D50 (the published colorant tags), and the D50 white.
ADOBE_RGB_D50 = {"rXYZ": (0.60974, 0.31111, 0.01947), "gXYZ": (0.20528, 0.62567, 0.06087),
                 "bXYZ": (0.14919, 0.06322, 0.74457)}
D50 = (0.9642, 1.0, 0.8249)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(values: tuple[float, float, float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in values)


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return (b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(8)  # no Unicode description
            + bytes(3) + bytes(67))  # no ScriptCode description


def adobe_rgb_profile(description: str = "Adobe RGB (1998) test profile") -> bytes:
    """The profile's bytes."""
    gamma = b"curv" + bytes(4) + struct.pack(">IH", 1, round(2.2 * 256)) + bytes(2)
    tags = [(b"desc", _desc(description)), (b"cprt", b"text" + bytes(4) + b"public domain\0"),
            (b"wtpt", _xyz(D50)), *((sig.encode(), _xyz(v)) for sig, v in ADOBE_RGB_D50.items()),
            (b"rTRC", gamma), (b"gTRC", gamma), (b"bTRC", gamma)]
    table, data = [], b""
    offset = 128 + 4 + 12 * len(tags)
    for sig, body in tags:
        body += bytes(-len(body) % 4)  # every tag starts on a 4-byte boundary
        table.append(sig + struct.pack(">II", offset + len(data), len(body)))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2025, 1, 1, 0, 0, 0) + b"acsp" + b"APPL" + bytes(4) + bytes(8) + bytes(8)
              + struct.pack(">I", 0) + b"".join(_s15(v) for v in D50) + b"lcms" + bytes(16) + bytes(28))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(table) + data
