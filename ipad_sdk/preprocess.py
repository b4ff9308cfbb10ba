"""Network input preparation, shared by every backend (and mirrored by the C++ example).

The whole image is resized (not cropped) to ``size x size`` with Pillow's antialiased bicubic
filter, so that every pixel of the photo is seen and the predicted map maps back onto the full
frame; then ``(x / 255 - mean) / std`` per channel, channels first. 16-bit pixels keep their
precision through the resize (the same filter in float, per channel) and are quantised to 8 bits
once, after it, by ``round(v / 257)``. Models exported with a uint8
input (``input_format="uint8"``) take the resized image channels-first and normalise in-graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from .colour import quantize8
from .metadata import ModelConfig

_BICUBIC = Image.Resampling.BICUBIC


def resize_to(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an image with Pillow's antialiased bicubic filter, keeping its dtype.

    Args:
        rgb: ``HxWx3`` uint8 or uint16 pixels (uint16 is resized in float, per channel).
        size: ``(height, width)`` to resize to.

    Returns:
        The resized pixels, of the input's dtype (the input itself when it has that size).
    """
    if rgb.shape[:2] == tuple(size):
        return rgb
    height, width = size
    if rgb.dtype == np.uint16:
        return _resize16(rgb, (width, height))
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC))


def _resize16(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pillow's bicubic filter in float (mode F) per channel, rounded back to uint16."""
    planes = [
        np.asarray(Image.fromarray(rgb[:, :, c].astype(np.float32)).resize(size, _BICUBIC))
        for c in range(3)
    ]
    resized: np.ndarray = np.round(np.clip(np.stack(planes, axis=-1), 0.0, 65535.0))
    return resized.astype(np.uint16)


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an image to a square network input and quantise it to 8 bits.

    Args:
        rgb: ``HxWx3`` uint8 or uint16 pixels.
        size: The side of the square, in pixels.

    Returns:
        ``size x size x 3`` uint8 (16-bit values by ``round(v / 257)``, after the resize).
    """
    return quantize8(resize_to(rgb, (size, size)))


def normalize(rgb: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalise 8-bit pixels per channel, channels first.

    Args:
        rgb: ``HxWx3`` uint8 pixels.
        mean: Per-channel mean, in [0, 1] units.
        std: Per-channel standard deviation, in [0, 1] units.

    Returns:
        ``3xHxW`` float32 ``(x / 255 - mean) / std``.
    """
    scale = np.asarray(std, np.float32) * 255.0
    offset = np.asarray(mean, np.float32) / np.asarray(std, np.float32)
    chw = rgb.astype(np.float32).transpose(2, 0, 1)
    normalised: np.ndarray = chw / scale[:, None, None] - offset[:, None, None]
    return normalised


def preprocess(rgb: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Prepare one image as a model's network input.

    Args:
        rgb: ``HxWx3`` uint8 or uint16 pixels (from `load_pixels`).
        config: The model's configuration (input size ``S``, mean, std).

    Returns:
        ``3 x S x S`` float32.
    """
    return normalize(resize_rgb(rgb, config.image_size), config.mean, config.std)


def preprocess_batch(
    images: Sequence[np.ndarray], config: ModelConfig, input_format: str = "float"
) -> np.ndarray:
    """Prepare a batch of images as a model's network input.

    Args:
        images: ``HxWx3`` uint8 or uint16 pixels, one array per image (sizes may differ).
        config: The model's configuration (input size ``S``, mean, std).
        input_format: ``"float"`` for normalised float32, or ``"uint8"`` for the resized uint8
            pixels (graphs that normalise themselves).

    Returns:
        ``B x 3 x S x S``, float32 or uint8.

    Raises:
        ValueError: ``input_format`` is neither ``"float"`` nor ``"uint8"``.
    """
    if input_format == "uint8":
        size = config.image_size
        return np.stack([resize_rgb(rgb, size).transpose(2, 0, 1) for rgb in images])
    if input_format != "float":
        raise ValueError(f"input_format must be 'float' or 'uint8', got {input_format!r}")
    return np.stack([preprocess(rgb, config) for rgb in images])
