"""Raw YUV frames (ISP and decoder buffers) -> RGB ``uint8``, numpy only.

Layouts: ``nv12`` (Y plane, then interleaved U/V at half resolution both ways), ``i420`` (Y, U, V
planes; U and V at half resolution both ways), ``yuyv`` (YUY2: ``Y0 U Y1 V`` for each pair of
pixels). ``size`` is ``(width, height)``; 4:2:0 needs an even width and height, YUYV an even width.
Chroma is upsampled by repetition (each sample covers its 2x2 or 2x1 block).

Matrices: ``bt601`` (Kr 0.299, Kb 0.114, SD and most JPEG/camera pipelines) or ``bt709`` (Kr
0.2126, Kb 0.0722, HD video); range ``limited`` (Y 16..235, chroma 16..240, the video default) or
``full`` (0..255). RGB: the matrix on the normalised Y, Cb, Cr, clipped, ``round(v * 255)``.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

PIXEL_FORMATS = ("nv12", "i420", "yuyv")
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
RANGES = ("limited", "full")


def yuv_to_rgb(
    buffer: np.ndarray, pixel_format: str, size: tuple[int, int], matrix: str = "bt601",
    yuv_range: str = "limited", name: str = "<yuv frame>",
) -> np.ndarray:  # fmt: skip
    """Convert one raw YUV frame to RGB.

    Args:
        buffer: The frame's bytes as a uint8 numpy array (any shape, C order).
        pixel_format: ``"nv12"``, ``"i420"`` or ``"yuyv"``.
        size: ``(width, height)`` of the frame.
        matrix: ``"bt601"`` or ``"bt709"``.
        yuv_range: ``"limited"`` or ``"full"``.
        name: Name of the input, for error messages.

    Returns:
        ``HxWx3`` RGB uint8.

    Raises:
        InputError: An unknown format, matrix or range, a buffer that is not uint8 numpy, an odd
            or zero size where the layout needs an even one, or a buffer of the wrong size.
    """
    if matrix not in MATRICES:
        raise InputError(f"{name}: matrix must be one of {sorted(MATRICES)}, got {matrix!r}")
    if yuv_range not in RANGES:
        raise InputError(f"{name}: yuv_range must be 'limited' or 'full', got {yuv_range!r}")
    y, u, v = _planes(buffer, pixel_format, size, name)
    return _convert(y, u, v, MATRICES[matrix], yuv_range == "full")


def frame_bytes(pixel_format: str, width: int, height: int) -> int:
    """Compute the buffer size of one frame.

    Args:
        pixel_format: ``"nv12"``, ``"i420"`` or ``"yuyv"``.
        width: Frame width in pixels.
        height: Frame height in pixels.

    Returns:
        The number of bytes of one ``width x height`` frame.
    """
    return width * height * 2 if pixel_format == "yuyv" else width * height * 3 // 2


def _planes(
    buffer: np.ndarray, pixel_format: str, size: tuple[int, int], name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-resolution Y, U, V planes (``HxW`` uint8) of a checked buffer."""
    if pixel_format not in PIXEL_FORMATS:
        raise InputError(
            f"{name}: pixel_format must be one of {PIXEL_FORMATS}, got {pixel_format!r}"
        )
    if not isinstance(buffer, np.ndarray) or buffer.dtype != np.uint8:
        raise InputError(f"{name}: a {pixel_format} frame must be a uint8 numpy array")
    width, height = (int(s) for s in size)
    odd = height % 2 if pixel_format != "yuyv" else 0
    if width <= 0 or height <= 0 or width % 2 or odd:
        raise InputError(f"{name}: {pixel_format} needs a positive even size, got {width}x{height}")
    expected = frame_bytes(pixel_format, width, height)
    if buffer.size != expected:
        raise InputError(
            f"{name}: a {width}x{height} {pixel_format} frame holds {expected:,} bytes, "
            f"the buffer has {buffer.size:,}"
        )
    flat = np.ascontiguousarray(buffer).reshape(-1)
    if pixel_format == "yuyv":
        pairs = flat.reshape(height, width // 2, 4)
        y = pairs[:, :, [0, 2]].reshape(height, width)
        return y, np.repeat(pairs[:, :, 1], 2, axis=1), np.repeat(pairs[:, :, 3], 2, axis=1)
    y, chroma = flat[: width * height].reshape(height, width), flat[width * height :]
    if pixel_format == "nv12":
        uv = chroma.reshape(height // 2, width // 2, 2)
        u, v = uv[:, :, 0], uv[:, :, 1]
    else:
        u, v = chroma.reshape(2, height // 2, width // 2)
    return y, _up2(u), _up2(v)


def _up2(plane: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(plane, 2, axis=0), 2, axis=1)


def _convert(
    y: np.ndarray, u: np.ndarray, v: np.ndarray, k: tuple[float, float], full: bool
) -> np.ndarray:
    kr, kb = k
    if full:
        luma, cb, cr = y / 255.0, (u - 128.0) / 255.0, (v - 128.0) / 255.0
    else:
        luma, cb, cr = (y - 16.0) / 219.0, (u - 128.0) / 224.0, (v - 128.0) / 224.0
    r = luma + 2.0 * (1.0 - kr) * cr
    b = luma + 2.0 * (1.0 - kb) * cb
    g = (luma - kr * r - kb * b) / (1.0 - kr - kb)
    rgb = np.stack([r, g, b], axis=-1)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
