"""Colour management: pixels that carry an embedded RGB ICC profile are converted to sRGB.

8-bit pixels go through Pillow's ImageCms (LittleCMS), relative colorimetric intent, no black point
compensation. 16-bit pixels keep their precision: for a matrix-shaper profile (Display P3, Adobe
RGB, ProPhoto and nearly every camera or display profile) the same conversion is computed in
float here (the profile's tone curves and colorant matrix to PCS XYZ D50, the sRGB profile's
inverse, the sRGB curve), giving 16-bit sRGB; a LUT-based profile goes through ImageCms on the
8-bit quantisation. A profile that describes sRGB itself (by colorants and curves) is a no-op; a
gray, CMYK or unreadable profile is ignored, like a broken EXIF block, and the pixels kept as
stored.
"""

from __future__ import annotations

import functools
import io
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import ImageCms

_PARAMETRIC_COUNTS = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}


@dataclass(frozen=True)
class MatrixShaper:
    """A matrix-shaper RGB profile: per-channel tone curves (65536-entry tables, one per uint16
    code) and the 3x3 matrix from linear RGB to PCS XYZ (D50)."""

    curves: np.ndarray  # 3 x 65536 float64
    matrix: np.ndarray  # 3 x 3, columns: red, green, blue colorants


def to_srgb(pixels: np.ndarray, icc: bytes | None) -> np.ndarray:
    """``HxWx3`` uint8/uint16 pixels described by ``icc`` -> sRGB pixels (see module docstring)."""
    if not icc or len(icc) < 132 or icc[16:20] != b"RGB ":
        return pixels
    shaper = parse_matrix_shaper(icc)
    if shaper is not None and _is_srgb(shaper):
        return pixels
    if pixels.dtype == np.uint16 and shaper is not None:
        return _shaper_to_srgb16(pixels, shaper)
    if pixels.dtype == np.uint16:
        pixels = quantize8(pixels)
    return _cms_to_srgb8(pixels, icc)


def quantize8(pixels: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 by ``round(v / 257)`` (exact integer arithmetic); uint8 as is."""
    if pixels.dtype == np.uint8:
        return pixels
    return ((2 * pixels.astype(np.uint32) + 257) // 514).astype(np.uint8)


def _cms_to_srgb8(pixels: np.ndarray, icc: bytes) -> np.ndarray:
    from PIL import Image

    transform = _cms_transform(icc)
    if transform is None:
        return pixels
    return np.asarray(transform.apply(Image.fromarray(pixels, "RGB")))


@functools.lru_cache(maxsize=16)
def _cms_transform(icc: bytes) -> ImageCms.ImageCmsTransform | None:
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.buildTransform(
            source, _srgb_profile(), "RGB", "RGB", ImageCms.Intent.RELATIVE_COLORIMETRIC
        )
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.lru_cache(maxsize=1)
def _srgb_shaper() -> MatrixShaper:
    shaper = parse_matrix_shaper(_srgb_profile().tobytes())
    assert shaper is not None  # LittleCMS's built-in sRGB is a matrix-shaper profile
    return shaper


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1) of linear values in ``[0, 1]``."""
    linear = np.clip(linear, 0.0, 1.0)
    high = 1.055 * np.power(linear, 1.0 / 2.4) - 0.055
    return np.where(linear <= 0.0031308, 12.92 * linear, high)


def _is_srgb(shaper: MatrixShaper) -> bool:
    srgb = _srgb_shaper()
    same_curves = np.abs(shaper.curves - srgb.curves).max() < 1e-3
    return same_curves and bool(np.abs(shaper.matrix - srgb.matrix).max() < 2e-3)


def _shaper_to_srgb16(pixels: np.ndarray, shaper: MatrixShaper) -> np.ndarray:
    to_srgb_linear = np.linalg.inv(_srgb_shaper().matrix) @ shaper.matrix
    linear = np.stack([shaper.curves[c][pixels[..., c]] for c in range(3)], axis=-1)
    encoded = srgb_encode(linear @ to_srgb_linear.T)
    return np.round(encoded * 65535.0).astype(np.uint16)


def parse_matrix_shaper(icc: bytes) -> MatrixShaper | None:
    """The tone curves and colorant matrix of an RGB matrix-shaper profile, else ``None``."""
    try:
        tags = _tag_table(icc)
        matrix = np.stack([_xyz(tags[sig]) for sig in (b"rXYZ", b"gXYZ", b"bXYZ")], axis=1)
        curves = np.stack([_curve(tags[sig]) for sig in (b"rTRC", b"gTRC", b"bTRC")])
    except (KeyError, struct.error, ValueError, ZeroDivisionError, FloatingPointError):
        return None
    if not np.isfinite(curves).all() or abs(np.linalg.det(matrix)) < 1e-6:
        return None
    return MatrixShaper(curves, matrix)


def _tag_table(icc: bytes) -> dict[bytes, bytes]:
    (count,) = struct.unpack_from(">I", icc, 128)
    if count > 1000:
        raise ValueError("implausible ICC tag count")
    tags = {}
    for i in range(count):
        sig, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
        tags[sig] = icc[offset : offset + size]
    return tags


def _xyz(tag: bytes) -> np.ndarray:
    if tag[:4] != b"XYZ ":
        raise ValueError("not an XYZ tag")
    return np.array(struct.unpack_from(">3i", tag, 8), dtype=np.float64) / 65536.0


def _curve(tag: bytes) -> np.ndarray:
    """A ``curv`` or ``para`` tone curve evaluated at every uint16 code ``v / 65535``."""
    x = np.arange(65536, dtype=np.float64) / 65535.0
    if tag[:4] == b"curv":
        (n,) = struct.unpack_from(">I", tag, 8)
        if n == 0:
            return x
        if n == 1:
            gamma: float = struct.unpack_from(">H", tag, 12)[0] / 256.0
            return x**gamma
        table = np.array(struct.unpack_from(f">{n}H", tag, 12), dtype=np.float64) / 65535.0
        return np.interp(x, np.linspace(0.0, 1.0, n), table)
    if tag[:4] == b"para":
        (kind,) = struct.unpack_from(">H", tag, 8)
        values = struct.unpack_from(f">{_PARAMETRIC_COUNTS[kind]}i", tag, 12)
        return _parametric(kind, [v / 65536.0 for v in values], x)
    raise ValueError("unknown curve type")


def _parametric(kind: int, p: list[float], x: np.ndarray) -> np.ndarray:
    """ICC parametric curve types 0-4, written as the general type 4."""
    g, a, b, c, d, e, f = 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0
    if kind == 0:
        (g,) = p
    elif kind == 1:
        g, a, b = p
        d = -b / a
    elif kind == 2:
        g, a, b, e = p
        d, f = -b / a, e
    elif kind == 3:
        g, a, b, c, d = p
    else:
        g, a, b, c, d, e, f = p
    with np.errstate(invalid="ignore"):
        high = np.power(np.maximum(a * x + b, 0.0), g) + e
    return np.clip(np.where(x >= d, high, c * x + f), 0.0, 1.0)
