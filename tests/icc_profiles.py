"""Small ICC v2 matrix-shaper profiles written from first principles, for the colour tests.

No profile files ship with Pillow's wheel or the packages here, so the tests build Display P3,
Adobe RGB (1998) and ProPhoto (ROMM) RGB from their published primaries, white points and tone
curves: colorants chromatically adapted to the PCS white (D50) with the Bradford transform, as the
ICC specification asks. :func:`reference_to_srgb` is the textbook conversion the tests compare
against: it never reads a profile.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

D50 = (0.9642, 1.0, 0.8249)
D65_XY = (0.3127, 0.3290)
D50_XY = (0.3457, 0.3585)
BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)  # ICC parametric type 3


@dataclass(frozen=True)
class RGBSpace:
    name: str
    primaries: tuple[tuple[float, float], ...]  # red, green, blue xy
    white: tuple[float, float]
    gamma: float | None  # a pure power curve, stored as u8Fixed8; None: the sRGB curve

    def stored_gamma(self) -> float:
        assert self.gamma is not None
        return round(self.gamma * 256) / 256

    def decode(self, encoded: np.ndarray) -> np.ndarray:
        """Encoded values in [0, 1] -> linear light (the profile's tone curve)."""
        if self.gamma is not None:
            return encoded ** self.stored_gamma()
        g, a, b, c, d = SRGB_CURVE
        return np.where(encoded >= d, (a * encoded + b) ** g, c * encoded)


DISPLAY_P3 = RGBSpace("Display P3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), D65_XY, None)
ADOBE_RGB = RGBSpace("Adobe RGB", ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), D65_XY, 563 / 256)
PROPHOTO = RGBSpace(
    "ProPhoto RGB", ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)), D50_XY, 1.8
)
SRGB = RGBSpace("sRGB", ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), D65_XY, None)


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz(space: RGBSpace) -> np.ndarray:
    """Linear RGB -> XYZ under the space's own white (columns: the primaries' XYZ)."""
    primaries = np.stack([_xyz(p) for p in space.primaries], axis=1)
    scale = np.linalg.solve(primaries, _xyz(space.white))
    return primaries * scale


def bradford(src_white: np.ndarray, dst_white: np.ndarray) -> np.ndarray:
    """The Bradford chromatic adaptation matrix from one white's XYZ to another's."""
    gain = (BRADFORD @ dst_white) / (BRADFORD @ src_white)
    return np.linalg.inv(BRADFORD) @ np.diag(gain) @ BRADFORD


def reference_to_srgb(encoded: np.ndarray, space: RGBSpace) -> np.ndarray:
    """Textbook conversion of encoded ``space`` values in [0, 1] to encoded sRGB in [0, 1]:
    decode, to XYZ, white adapted (Bradford) where the whites differ, to linear sRGB, clipped,
    sRGB-encoded."""
    to_xyz = rgb_to_xyz(space)
    if space.white != SRGB.white:
        to_xyz = bradford(_xyz(space.white), _xyz(SRGB.white)) @ to_xyz
    linear = space.decode(encoded) @ (np.linalg.inv(rgb_to_xyz(SRGB)) @ to_xyz).T
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: np.ndarray) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _curve_tag(space: RGBSpace) -> bytes:
    if space.gamma is None:
        return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in SRGB_CURVE)
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(space.gamma * 256)) + b"\0\0"


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode() + b"\0"
    body = struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * 8 + b"\0\0\0" + b"\0" * 67
    return b"desc\0\0\0\0" + body


def make_profile(space: RGBSpace) -> bytes:
    """An ICC v2 display-class matrix-shaper profile of ``space``."""
    adapted = bradford(_xyz(space.white), np.array(D50)) @ rgb_to_xyz(space)
    curve = _curve_tag(space)
    tags = [
        (b"desc", _desc_tag(space.name)),
        (b"cprt", b"text\0\0\0\0public domain test profile\0"),
        (b"wtpt", _xyz_tag(np.array(D50))),
        (b"rXYZ", _xyz_tag(adapted[:, 0])),
        (b"gXYZ", _xyz_tag(adapted[:, 1])),
        (b"bXYZ", _xyz_tag(adapted[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += struct.pack(">4sII", sig, offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I4sI4s4s4s", size, b"\0" * 4, 0x02100000, b"mntr", b"RGB ", b"XYZ ")
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + b"".join(_s15(v) for v in D50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + table + data
