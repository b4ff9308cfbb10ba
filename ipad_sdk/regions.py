"""Artifact regions: the connected parts of a result's mask, per artifact class.

scipy is imported on first use (``import ipad_sdk`` stays numpy + pillow only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BackendUnavailable


@dataclass(frozen=True)
class Region:
    """One connected region of the mask (8-connected) whose pixels are most probably ``label``.

    Attributes:
        label: The artifact class of the region's pixels.
        bbox: ``(left, top, right, bottom)`` in image pixels, right and bottom exclusive (as in
            Pillow).
        area: The region's share of the image's pixels.
        peak: The highest per-pixel artifact probability inside the region.
    """

    label: str
    bbox: tuple[int, int, int, int]
    area: float
    peak: float

    def to_dict(self) -> dict[str, Any]:
        """Summarise the region as JSON-ready values.

        Returns:
            ``label``, ``bbox`` (a list), ``area`` and ``peak``.
        """
        return {"label": self.label, "bbox": list(self.bbox), "area": self.area, "peak": self.peak}


def _ndimage() -> Any:
    try:
        from scipy import ndimage
    except ImportError:
        raise BackendUnavailable("artifact regions need scipy: pip install scipy") from None
    return ndimage


def find_regions(
    mask: np.ndarray, heatmap: np.ndarray, class_map: np.ndarray, classes: Sequence[str]
) -> list[Region]:
    """Find the connected regions of a mask, per artifact class.

    Args:
        mask: bool ``[H, W]`` artifact mask.
        heatmap: float ``[H, W]`` per-pixel artifact probability.
        class_map: Integer ``[H, W]``: each pixel's most probable artifact class, as an index into
            ``classes``.
        classes: The artifact class names.

    Returns:
        The regions of every class in class order, largest first within each class.

    Raises:
        BackendUnavailable: scipy is not installed.
    """
    ndimage = _ndimage()
    structure = np.ones((3, 3), dtype=bool)
    regions: list[Region] = []
    for k, name in enumerate(classes):
        labels, count = ndimage.label(mask & (class_map == k), structure=structure)
        if count == 0:
            continue
        index = np.arange(1, count + 1)
        areas = ndimage.sum_labels(np.ones(mask.shape, dtype=np.int64), labels, index)
        peaks = ndimage.maximum(heatmap, labels, index)
        found = [
            Region(name, (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop),
                   float(area) / mask.size, float(peak))
            for sl, area, peak in zip(ndimage.find_objects(labels), areas, peaks, strict=True)
        ]  # fmt: skip
        regions.extend(sorted(found, key=lambda r: -r.area))
    return regions
