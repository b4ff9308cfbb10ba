"""The one result type every backend returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

from .metadata import ModelConfig


@dataclass(frozen=True, eq=False)
class Result:
    """Detection result for one image.

    ``scores`` are the image-level class probabilities; ``artifact_score = 1 - scores[clean]``.
    ``label`` is the clean class when ``artifact_score < image_threshold``, otherwise the most
    probable artifact class. ``heatmap`` is the per-pixel artifact probability ``1 - P(clean)`` at
    the original image size (computed on first access); ``mask`` is ``heatmap >= pixel_threshold``
    for images labelled as an artifact and all False for images labelled clean.
    """

    label: str
    scores: dict[str, float]
    artifact_score: float
    image_size: tuple[int, int]  # (height, width) of the input image
    # [K+1, h, w]: at network resolution S x S, or at the working resolution when tiled
    pixel_probs: np.ndarray = field(repr=False)
    image_threshold: float = 0.5
    pixel_threshold: float = 0.5
    source: str | None = None

    ok = True  # a Failure (from Detector.stream) has ok False

    @classmethod
    def from_probs(
        cls,
        class_probs: np.ndarray,
        pixel_probs: np.ndarray,
        config: ModelConfig,
        image_size: tuple[int, int],
        source: str | None = None,
    ) -> Result:
        """Build a result from one image's outputs ``[K+1]`` and ``[K+1, h, w]``."""
        probs = np.asarray(class_probs, dtype=np.float64)
        scores = {name: float(p) for name, p in zip(config.classes, probs, strict=True)}
        artifact_score = float(1.0 - probs[0])
        if artifact_score < config.image_threshold:
            label = config.classes[0]
        else:
            label = config.classes[1 + int(np.argmax(probs[1:]))]
        return cls(
            label=label,
            scores=scores,
            artifact_score=artifact_score,
            image_size=(int(image_size[0]), int(image_size[1])),
            pixel_probs=np.asarray(pixel_probs, dtype=np.float32),
            image_threshold=config.image_threshold,
            pixel_threshold=config.pixel_threshold,
            source=source,
        )

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.scores)

    @property
    def is_artifact(self) -> bool:
        return self.label != self.classes[0]

    def _to_image_size(self, plane: np.ndarray) -> np.ndarray:
        height, width = self.image_size
        if plane.shape == (height, width):
            return plane.astype(np.float32, copy=True)
        resized = Image.fromarray(plane.astype(np.float32), mode="F").resize(
            (width, height), Image.Resampling.BILINEAR
        )
        return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)

    @cached_property
    def heatmap(self) -> np.ndarray:
        """Per-pixel artifact probability ``1 - P(clean)``, float32 ``[H, W]`` in [0, 1]."""
        return self._to_image_size(1.0 - self.pixel_probs[0])

    def class_heatmap(self, name: str) -> np.ndarray:
        """Per-pixel probability of class ``name``, float32 ``[H, W]``."""
        if name not in self.scores:
            raise KeyError(f"unknown class {name!r}; classes are {self.classes}")
        return self._to_image_size(self.pixel_probs[self.classes.index(name)])

    @cached_property
    def mask(self) -> np.ndarray:
        """Boolean ``[H, W]`` artifact mask (empty when the image is labelled clean)."""
        if not self.is_artifact:
            return np.zeros(self.image_size, dtype=bool)
        return self.heatmap >= self.pixel_threshold

    @property
    def mask_fraction(self) -> float:
        """Fraction of the image's pixels inside :attr:`mask`."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-pixel arrays)."""
        return {
            "source": self.source,
            "label": self.label,
            "is_artifact": self.is_artifact,
            "artifact_score": self.artifact_score,
            "scores": dict(self.scores),
            "width": self.image_size[1],
            "height": self.image_size[0],
            "mask_fraction": self.mask_fraction,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def overlay(self, image: Any, alpha: float = 0.5) -> Image.Image:
        """``image`` (any input :func:`ipad_sdk.load_image` takes) with the mask drawn on it."""
        from .io import load_image
        from .visualize import draw_overlay

        rgb = load_image(image)
        if rgb.shape[:2] != self.image_size:
            raise ValueError(
                f"overlay image is {rgb.shape[1]}x{rgb.shape[0]}, the result is for "
                f"{self.image_size[1]}x{self.image_size[0]}"
            )
        return draw_overlay(rgb, self.heatmap, self.mask, self.label, alpha)


@dataclass(frozen=True)
class Failure:
    """An input that could not be processed (what :meth:`Detector.stream` yields in its place).

    ``error`` is the :class:`~ipad_sdk.errors.InputError` that names the input and the problem.
    """

    source: str | None
    error: Exception

    ok = False  # Result.ok is True: ``if item.ok`` tells the two apart

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "error_type": type(self.error).__name__,
                "error": str(self.error)}  # fmt: skip
