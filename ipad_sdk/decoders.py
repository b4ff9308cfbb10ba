"""Decoders beyond Pillow, each imported only when its format is met: HEIC/HEIF through
pillow-heif (extra ``heif``) and camera RAW/DNG through rawpy (extra ``raw``). AVIF is read by
Pillow itself. A missing extra is a :class:`~ipad_sdk.errors.BackendUnavailable` naming it.

RAW defaults (rawpy/LibRaw): the camera's own white balance (``use_camera_wb``), its colour
matrix to sRGB (``output_color=sRGB``) with the sRGB tone curve (``gamma=(2.4, 12.92)``), AHD
demosaicing, no auto-brightening, 16 bits per channel out, the sensor's full resolution; the
size is checked from the metadata before the demosaic.
"""

from __future__ import annotations

import importlib
import io
from typing import Any, Literal

import numpy as np

from .errors import BackendUnavailable, InputError

#: ISO-BMFF major/compatible brands of HEIF still images (AVIF is left to Pillow).
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
#: Camera RAW files by extension: most are TIFF-like and would otherwise open as a thumbnail.
RAW_SUFFIXES = (".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf",
                ".rw2", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".rwl", ".erf", ".kdc")  # fmt: skip
_DNG_VERSION_TAG = b"\xc6\x12"  # 50706, big-endian; little-endian files hold b"\x12\xc6"

Decoded = tuple[np.ndarray, "bytes | None"]  # HxWx3 uint8/uint16 pixels, ICC profile


#: ISO-BMFF major brands of video files (MP4, MOV, M4V, 3GP), and the Matroska/WebM magic.
VIDEO_BRANDS = (b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ",
                b"qt  ", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"dash", b"mmp4", b"f4v ")  # fmt: skip
_EBML = b"\x1a\x45\xdf\xa3"


def sniff(data: bytes, suffix: str) -> str:
    """``"heif"``, ``"raw"``, ``"video"`` or ``"pillow"`` for encoded ``data`` (file extension
    ``suffix``)."""
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "heif"
    if (data[4:8] == b"ftyp" and data[8:12] in VIDEO_BRANDS) or data[:4] == _EBML:
        return "video"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "video"
    if data[4:8] == b"ftyp" and data[8:12] == b"crx ":  # Canon CR3
        return "raw"
    if suffix in RAW_SUFFIXES or (data[:4] in (b"II*\0", b"MM\0*") and _has_dng_tag(data)):
        return "raw"
    return "pillow"


def _has_dng_tag(data: bytes) -> bool:
    """Whether the first IFD of a TIFF holds a DNGVersion tag."""
    order: Literal["little", "big"] = "little" if data[:2] == b"II" else "big"
    at = int.from_bytes(data[4:8], order)
    count = int.from_bytes(data[at : at + 2], order)
    tag = _DNG_VERSION_TAG if order == "big" else _DNG_VERSION_TAG[::-1]
    return any(data[at + 2 + 12 * i : at + 4 + 12 * i] == tag for i in range(min(count, 512)))


def require(module: str, extra: str, what: str) -> Any:
    """Import ``module`` or raise :class:`BackendUnavailable` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BackendUnavailable(
            f"{what} needs the '{extra}' extra: pip install 'ipad-sdk[{extra}]'"
        ) from None


def decode_heif(data: bytes, name: str, max_pixels: int) -> Decoded:
    """A HEIC/HEIF still (primary image): 8-bit, or 10/12-bit as full-range uint16. libheif
    applies the file's rotation and mirroring (pillow-heif writes EXIF orientation as those)."""
    from .io import check_size

    pillow_heif = require("pillow_heif", "heif", f"{name}: HEIC/HEIF")
    try:
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        check_size(heif.size[0], heif.size[1], name, max_pixels)
        pixels = np.asarray(heif)
    except InputError:
        raise
    except (RuntimeError, ValueError, OSError, SyntaxError, EOFError) as exc:
        raise InputError(
            f"{name}: cannot decode HEIF image (truncated or corrupt): {exc}"
        ) from None
    return _rgb(pixels, int(heif.info.get("bit_depth", 8))), heif.info.get("icc_profile")


def _rgb(pixels: np.ndarray, bits: int) -> np.ndarray:
    """HxW(xC) decoder output -> HxWx3; high bit depths (stored in the top bits) -> full-range
    uint16."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    pixels = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :3]
    if pixels.dtype != np.uint16:
        return pixels
    codes = (pixels >> (16 - bits)).astype(np.float64)
    return np.round(codes * (65535.0 / ((1 << bits) - 1))).astype(np.uint16)


def decode_raw(data: bytes, name: str, max_pixels: int) -> Decoded:
    """A camera RAW/DNG file demosaiced to 16-bit sRGB (see the module docstring)."""
    from .io import check_size

    rawpy = require("rawpy", "raw", f"{name}: camera RAW/DNG")
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            size = raw.sizes
            check_size(size.width, size.height, name, max_pixels)
            rgb = raw.postprocess(
                use_camera_wb=True, output_color=rawpy.ColorSpace.sRGB, output_bps=16,
                gamma=(2.4, 12.92), no_auto_bright=True,
                demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD,
            )  # fmt: skip
    except InputError:
        raise
    except (rawpy.LibRawError, OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"{name}: cannot decode RAW image (truncated or corrupt): {exc}") from None
    return np.ascontiguousarray(rgb), None
