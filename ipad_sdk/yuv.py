"""Raw YUV frames (ISP and decoder buffers) -> RGB ``uint8``, on the host (numpy; a torch tensor or
DLPack array is copied there); :func:`ipad_sdk.device_preprocess.yuv_to_rgb_tensor` is the same
conversion on a tensor's own device.

Layouts: ``nv12`` (Y plane, then interleaved U/V at half resolution both ways), ``i420`` (Y, U, V
planes; U and V at half resolution both ways), ``yuyv`` (YUY2: ``Y0 U Y1 V`` for each pair of
pixels). ``size`` is ``(width, height)``; 4:2:0 needs an even width and height, YUYV an even width.
Chroma is upsampled by repetition (each sample covers its 2x2 or 2x1 block).

Matrices: ``bt601`` (Kr 0.299, Kb 0.114, SD and most JPEG/camera pipelines) or ``bt709`` (Kr
0.2126, Kb 0.0722, HD video); range ``limited`` (Y 16..235, chroma 16..240, the video default) or
``full`` (0..255). RGB: the matrix on the normalised Y, Cb, Cr, clipped, ``round(v * 255)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    import torch

    from .io import SupportsDLPack

PIXEL_FORMATS = ("nv12", "i420", "yuyv")
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
RANGES = ("limited", "full")


def yuv_to_rgb(
    buffer: np.ndarray | torch.Tensor | SupportsDLPack, pixel_format: str, size: tuple[int, int],
    matrix: str = "bt601", yuv_range: str = "limited", name: str = "<yuv frame>",
    max_pixels: int | None = None,
) -> np.ndarray:  # fmt: skip
    """Convert one raw YUV frame to RGB on the host.

    Args:
        buffer: The frame's bytes, uint8, any shape, C order: a numpy array, or a torch tensor
            or DLPack array (copied to the host).
        pixel_format: ``"nv12"``, ``"i420"`` or ``"yuyv"``.
        size: ``(width, height)`` of the frame.
        matrix: ``"bt601"`` or ``"bt709"``.
        yuv_range: ``"limited"`` or ``"full"``.
        name: Name of the input, for error messages.
        max_pixels: Refuse a frame with more pixels than this before converting it.

    Returns:
        ``HxWx3`` RGB uint8.

    Raises:
        InputError: An unknown format, matrix or range, a buffer that is not uint8, an odd or
            zero size where the layout needs an even one, a buffer of the wrong size, or a frame
            above ``max_pixels``.
    """
    check_options(matrix, yuv_range, name)
    y, u, v = _planes(_host(buffer, name), pixel_format, size, name, max_pixels)
    rgb = np.stack(rgb_planes(y, u, v, MATRICES[matrix], yuv_range == "full"), axis=-1)
    out: np.ndarray = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def check_options(matrix: str, yuv_range: str, name: str) -> None:
    """Refuse an unknown ``matrix`` or ``yuv_range``, naming ``name``."""
    if matrix not in MATRICES:
        raise InputError(f"{name}: matrix must be one of {sorted(MATRICES)}, got {matrix!r}")
    if yuv_range not in RANGES:
        raise InputError(f"{name}: yuv_range must be 'limited' or 'full', got {yuv_range!r}")


def check_frame(
    pixel_format: str, size: tuple[int, int], nbytes: int, name: str,
    max_pixels: int | None = None,
) -> tuple[int, int]:  # fmt: skip
    """The ``(width, height)`` of a ``pixel_format`` frame of ``nbytes`` bytes (at most
    ``max_pixels`` pixels when given), or InputError."""
    if pixel_format not in PIXEL_FORMATS:
        raise InputError(
            f"{name}: pixel_format must be one of {PIXEL_FORMATS}, got {pixel_format!r}"
        )
    try:
        width, height = (int(s) for s in size)
    except (TypeError, ValueError):
        raise InputError(f"{name}: size must be (width, height), got {size!r}") from None
    odd = height % 2 if pixel_format != "yuyv" else 0
    if width <= 0 or height <= 0 or width % 2 or odd:
        raise InputError(f"{name}: {pixel_format} needs a positive even size, got {width}x{height}")
    expected = frame_bytes(pixel_format, width, height)
    if nbytes != expected:
        raise InputError(
            f"{name}: a {width}x{height} {pixel_format} frame holds {expected:,} bytes, "
            f"the buffer has {nbytes:,}"
        )
    if max_pixels is not None:
        from .io import check_size

        check_size(width, height, name, max_pixels)
    return width, height


def _host(buffer: object, name: str) -> object:
    """A torch tensor or DLPack array as numpy (copied to the host); anything else as is."""
    from .io import _dlpack_to_numpy, _tensor_to_numpy, is_torch_tensor

    if is_torch_tensor(buffer):
        return _tensor_to_numpy(buffer, name)
    if not isinstance(buffer, np.ndarray) and hasattr(buffer, "__dlpack__"):
        return _dlpack_to_numpy(buffer, name)
    return buffer


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
    buffer: object,
    pixel_format: str,
    size: tuple[int, int],
    name: str,
    max_pixels: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-resolution Y, U, V planes (``HxW`` uint8) of a checked buffer."""
    if not isinstance(buffer, np.ndarray) or buffer.dtype != np.uint8:
        raise InputError(
            f"{name}: a {pixel_format} frame must be a uint8 numpy array, torch tensor or "
            f"DLPack array, got {_kind(buffer)}"
        )
    width, height = check_frame(pixel_format, size, buffer.size, name, max_pixels)
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


def _kind(buffer: object) -> str:
    dtype = getattr(buffer, "dtype", None)
    return f"{type(buffer).__name__} of {dtype}" if dtype is not None else type(buffer).__name__


def rgb_planes(y: Any, u: Any, v: Any, k: tuple[float, float], full: bool) -> tuple[Any, Any, Any]:
    """Normalised R, G, B (unclipped) from full-resolution Y, U, V planes: numpy arrays (uint8 or
    float64) or float64 torch tensors, the same float64 arithmetic for both."""
    kr, kb = k
    if full:
        luma, cb, cr = y / 255.0, (u - 128.0) / 255.0, (v - 128.0) / 255.0
    else:
        luma, cb, cr = (y - 16.0) / 219.0, (u - 128.0) / 224.0, (v - 128.0) / 224.0
    r = luma + 2.0 * (1.0 - kr) * cr
    b = luma + 2.0 * (1.0 - kb) * cb
    g = (luma - kr * r - kb * b) / (1.0 - kr - kb)
    return r, g, b
