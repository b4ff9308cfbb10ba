"""Network input preparation, shared by every backend (and mirrored by the C++ example).

The whole image is resized (not cropped) to ``size x size`` with Pillow's antialiased bicubic
filter, so that every pixel of the photo is seen and the predicted map maps back onto the full
frame; then ``(x / 255 - mean) / std`` per channel, channels first. Models exported with a uint8
input (``input_format="uint8"``) take the resized image channels-first and normalise in-graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from .metadata import ModelConfig


def resize_to(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an ``HxWx3`` uint8 image to ``size`` ``(height, width)`` (bicubic, antialiased)."""
    if rgb.shape[:2] == tuple(size):
        return rgb
    height, width = size
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC))


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an ``HxWx3`` uint8 image to ``size x size`` (bicubic, antialiased)."""
    return resize_to(rgb, (size, size))


def normalize(rgb: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``HxWx3`` uint8 -> ``3xHxW`` float32 ``(x / 255 - mean) / std``."""
    scale = np.asarray(std, np.float32) * 255.0
    offset = np.asarray(mean, np.float32) / np.asarray(std, np.float32)
    chw = rgb.astype(np.float32).transpose(2, 0, 1)
    return chw / scale[:, None, None] - offset[:, None, None]


def preprocess(rgb: np.ndarray, config: ModelConfig) -> np.ndarray:
    """One image -> ``3 x S x S`` float32 network input for ``config``."""
    return normalize(resize_rgb(rgb, config.image_size), config.mean, config.std)


def preprocess_batch(
    images: Sequence[np.ndarray], config: ModelConfig, input_format: str = "float"
) -> np.ndarray:
    """Images -> ``B x 3 x S x S`` batch for ``config``: normalised float32 (``"float"``) or the
    resized uint8 pixels (``"uint8"``, for graphs that normalise themselves)."""
    if input_format == "uint8":
        size = config.image_size
        return np.stack([resize_rgb(rgb, size).transpose(2, 0, 1) for rgb in images])
    if input_format != "float":
        raise ValueError(f"input_format must be 'float' or 'uint8', got {input_format!r}")
    return np.stack([preprocess(rgb, config) for rgb in images])
