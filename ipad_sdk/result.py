"""The one result type every backend returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from PIL import Image

from .metadata import ModelConfig
from .regions import Region, find_regions
from .thresholds import Thresholds

if TYPE_CHECKING:
    from .io import ImageInput

#: The stages a result's ``timings`` measures, in milliseconds per image.
STAGES = ("decode", "preprocess", "inference", "postprocess")


@dataclass(frozen=True, eq=False)
class Result:
    """Detection result for one image.

    ``label`` follows ``thresholds`` (the clean class when
    ``artifact_score < image_threshold``, otherwise the most probable artifact class, unless
    class thresholds are set). `heatmap` is the per-pixel artifact probability
    ``1 - P(clean)`` at the original image size (computed on first access); `mask` is
    ``heatmap >= pixel_threshold`` for images labelled as an artifact and all False for images
    labelled clean; `regions` its connected parts per class.

    Attributes:
        label: The decided class name: ``"clean"`` or an artifact class.
        scores: Image-level probability of every class, in the model's class order.
        artifact_score: ``1 - scores[clean]``.
        image_size: ``(height, width)`` of the input image.
        pixel_probs: ``[K+1, h, w]`` class probabilities at network resolution ``S x S``, or at
            the working resolution when tiled.
        thresholds: The operating point that decided ``label`` and the mask.
        source: Name of the input (a path, or a description of an in-memory input), if known.
        timings: Milliseconds each stage of ``STAGES`` took for this image (inference: its
            share of the batch).
        ok: Always True (a [`Failure`][ipad_sdk.Failure] has ``ok`` False).
    """

    label: str
    scores: dict[str, float]
    artifact_score: float
    image_size: tuple[int, int]  # (height, width) of the input image
    # [K+1, h, w]: at network resolution S x S, or at the working resolution when tiled
    pixel_probs: np.ndarray = field(repr=False)
    thresholds: Thresholds = field(default_factory=Thresholds)
    source: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    ok: ClassVar[Literal[True]] = True  # a Failure (from Detector.stream) has ok False

    @classmethod
    def from_probs(
        cls,
        class_probs: np.ndarray,
        pixel_probs: np.ndarray,
        config: ModelConfig,
        image_size: tuple[int, int],
        source: str | None = None,
        thresholds: Thresholds | None = None,
    ) -> Result:
        """Build a result from one image's network outputs.

        Args:
            class_probs: Image-level class probabilities ``[K+1]``.
            pixel_probs: Per-pixel class probabilities ``[K+1, h, w]``.
            config: The model's configuration (class names, default thresholds).
            image_size: ``(height, width)`` of the input image.
            source: Name of the input, if known.
            thresholds: The operating point; default: the model's.

        Returns:
            The labelled result.
        """
        thresholds = thresholds if thresholds is not None else Thresholds.resolve(config)
        probs = np.asarray(class_probs, dtype=np.float64)
        scores = {name: float(p) for name, p in zip(config.classes, probs, strict=True)}
        return cls(
            label=thresholds.label(probs, config.classes),
            scores=scores,
            artifact_score=float(1.0 - probs[0]),
            image_size=(int(image_size[0]), int(image_size[1])),
            pixel_probs=np.asarray(pixel_probs, dtype=np.float32),
            thresholds=thresholds,
            source=source,
        )

    @property
    def image_threshold(self) -> float:
        """Threshold on ``artifact_score`` used for the label."""
        return self.thresholds.image

    @property
    def pixel_threshold(self) -> float:
        """Threshold on the heatmap used for the mask."""
        return self.thresholds.pixel

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in the model's order, the clean class first."""
        return tuple(self.scores)

    @property
    def is_artifact(self) -> bool:
        """Whether the image is labelled as showing an artifact."""
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
        """Per-pixel probability of one class at the original image size.

        Args:
            name: A class name of the model (see `classes`).

        Returns:
            float32 ``[H, W]`` probabilities in [0, 1].

        Raises:
            KeyError: ``name`` is not a class of the model.
        """
        if name not in self.scores:
            raise KeyError(f"unknown class {name!r}; classes are {self.classes}")
        return self._to_image_size(self.pixel_probs[self.classes.index(name)])

    @cached_property
    def mask(self) -> np.ndarray:
        """Boolean ``[H, W]`` artifact mask (empty when the image is labelled clean)."""
        if not self.is_artifact:
            return np.zeros(self.image_size, dtype=bool)
        # in float64: a float32 comparison would round the threshold, which sits midway between
        # two calibration scores, onto one of them when they are neighbouring float32 values
        inside: np.ndarray = self.heatmap >= np.float64(self.pixel_threshold)
        return inside

    @property
    def mask_fraction(self) -> float:
        """Fraction of the image's pixels inside `mask`."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    @cached_property
    def regions(self) -> list[Region]:
        """The connected regions of `mask` per artifact class (needs scipy).

        Each mask pixel belongs to its most probable artifact class; an image labelled clean has
        none. See [`Region`][ipad_sdk.regions.Region].
        """
        if not self.is_artifact:
            return []
        height, width = self.image_size
        top = np.argmax(self.pixel_probs[1:], axis=0).astype(np.uint8)
        nearest = Image.fromarray(top).resize((width, height), Image.Resampling.NEAREST)
        class_map = np.asarray(nearest)
        return find_regions(self.mask, self.heatmap, class_map, self.classes[1:])

    def to_dict(self) -> dict[str, Any]:
        """Summarise the result as JSON-ready values.

        Returns:
            ``source``, ``label``, ``is_artifact``, ``artifact_score``, ``scores``, ``width``,
                ``height``, ``mask_fraction``, ``regions``, ``thresholds`` and ``timings_ms`` (no
                per-pixel arrays).
        """
        return {
            "source": self.source,
            "label": self.label,
            "is_artifact": self.is_artifact,
            "artifact_score": self.artifact_score,
            "scores": dict(self.scores),
            "width": self.image_size[1],
            "height": self.image_size[0],
            "mask_fraction": self.mask_fraction,
            "regions": [region.to_dict() for region in self.regions],
            "thresholds": self.thresholds.to_dict(),
            "timings_ms": dict(self.timings),
        }

    def to_json(self) -> str:
        """Serialise the summary.

        Returns:
            `to_dict` as one line of JSON.
        """
        return json.dumps(self.to_dict())

    def overlay(self, image: ImageInput, alpha: float = 0.5) -> Image.Image:
        """Draw the mask and its labelled regions on the image.

        Args:
            image: The image this result is for, as any input
                [`load_image`][ipad_sdk.io.load_image] takes.
            alpha: Opacity of the mask tint, 0 to 1.

        Returns:
            The RGB overlay, at the image's size.

        Raises:
            ValueError: The image's size is not the result's.
            InputError: The image cannot be loaded.
        """
        from .io import load_image
        from .visualize import draw_overlay

        rgb = load_image(image)
        if rgb.shape[:2] != self.image_size:
            raise ValueError(
                f"overlay image is {rgb.shape[1]}x{rgb.shape[0]}, the result is for "
                f"{self.image_size[1]}x{self.image_size[0]}"
            )
        return draw_overlay(rgb, self.heatmap, self.mask, self.label, alpha, self.regions)


@dataclass(frozen=True)
class Failure:
    """An input that could not be processed (what ``Detector.stream`` yields in its place).

    Attributes:
        source: Name of the input, if known.
        error: The exception, usually an [`InputError`][ipad_sdk.errors.InputError] that names
            the input and the problem.
        ok: Always False (a [`Result`][ipad_sdk.Result] has ``ok`` True): ``if item.ok`` tells
            the two apart.
    """

    source: str | None
    error: Exception

    ok: ClassVar[Literal[False]] = False  # Result.ok is True: ``if item.ok`` tells them apart

    def to_dict(self) -> dict[str, Any]:
        """Summarise the failure as JSON-ready values.

        Returns:
            ``source``, ``error_type`` (the exception's class name) and ``error`` (its message).
        """
        return {"source": self.source, "error_type": type(self.error).__name__,
                "error": str(self.error)}  # fmt: skip
