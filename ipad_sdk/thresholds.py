"""Operating points: choosing thresholds (`threshold_at_fpr`) and applying them
(`Thresholds`). numpy only.

A quality gate is judged by its false alarms, so a threshold is chosen on clean data: the score at
which at most a chosen share of clean images (or pixels) is flagged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .metadata import ModelConfig


def threshold_at_fpr(negatives: np.ndarray, fpr: float) -> float:
    """Choose the threshold that flags at most a given share of negatives.

    The threshold keeps as many negatives below it as the rate requires and no more, placed at the
    **midpoint of the gap** between the highest negative that must stay below and the next higher
    score (or 1.0), never on a score: the same image scored again in another batch or thread count
    (a few ulp away) stays on its side.

    Args:
        negatives: Scores of clean images (or pixels), any shape.
        fpr: The largest share of negatives allowed at or above the threshold, in [0, 1].

    Returns:
        A threshold ``t`` in [0, 1] with ``mean(negatives >= t) <= fpr`` compared in float64 (as
            the SDK compares; in float32 it may round onto a score); when every negative may
            pass, half the lowest score.

    Raises:
        ValueError: ``fpr`` is outside [0, 1] or there are no negatives.
    """
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    values = np.sort(np.asarray(negatives, dtype=np.float64).ravel())
    if values.size == 0:
        raise ValueError("no negatives to calibrate on")
    allowed = int(np.floor(fpr * values.size))
    if allowed >= values.size:
        return float(np.clip(values[0], 0.0, 1.0) / 2)
    below = values[values.size - 1 - allowed]  # this one and every lower score stay below t
    higher = values[values > below]
    upper = float(higher[0]) if higher.size else 1.0
    return float(np.clip((below + upper) / 2, 0.0, 1.0))


def _check_unit(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


@dataclass(frozen=True)
class Thresholds:
    """The decision thresholds of a run.

    An artifact class is *reported* when its probability reaches its own threshold; a class
    without one is reported when it is the most probable artifact class and
    ``artifact_score >= image``. The label is the most probable reported class, else clean; without
    class thresholds this is the plain rule on ``image``.

    Attributes:
        image: Threshold on ``artifact_score = 1 - P(clean)``.
        pixel: Threshold on the per-pixel artifact probability (the mask).
        classes: Artifact class name to its own image-level threshold on ``P(class)``.
    """

    image: float = 0.5
    pixel: float = 0.5
    classes: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        config: ModelConfig,
        image: float | None = None,
        pixel: float | None = None,
        classes: Mapping[str, float] | None = None,
    ) -> Thresholds:
        """Combine a model's thresholds with the ones given in their place.

        Args:
            config: The model's configuration (its thresholds and class names).
            image: Replaces the model's image threshold.
            pixel: Replaces the model's pixel threshold.
            classes: Per-class thresholds, keyed by artifact class name.

        Returns:
            The checked thresholds.

        Raises:
            ValueError: A value is not a number in [0, 1], or a class is not an artifact class of
                the model.
        """
        artifacts = config.classes[1:]
        own = dict(classes or {})
        unknown = sorted(set(own) - set(artifacts))
        if unknown:
            raise ValueError(
                f"class thresholds name {unknown}; the model's artifact classes are "
                f"{list(artifacts)}"
            )
        image = config.image_threshold if image is None else image
        pixel = config.pixel_threshold if pixel is None else pixel
        return cls(
            image=_check_unit(image, "image_threshold"),
            pixel=_check_unit(pixel, "pixel_threshold"),
            classes={c: _check_unit(own[c], f"threshold of {c!r}") for c in artifacts if c in own},
        )

    def label(self, probs: np.ndarray, classes: Sequence[str]) -> str:
        """Label one image by its class probabilities.

        Args:
            probs: Class probabilities ``[K+1]``.
            classes: The class names, ``classes[0]`` the clean class.

        Returns:
            The clean class name or the reported artifact class.
        """
        artifact = probs[1:]
        top = int(np.argmax(artifact))
        reported = [
            k
            for k, name in enumerate(classes[1:])
            if (float(artifact[k]) >= self.classes[name] if name in self.classes
                else k == top and float(1.0 - probs[0]) >= self.image)  # in float64, as the mask
        ]  # fmt: skip
        if not reported:
            return classes[0]
        return classes[1 + max(reported, key=lambda k: artifact[k])]

    def to_dict(self) -> dict[str, Any]:
        """Summarise the thresholds as JSON-ready values.

        Returns:
            ``image``, ``pixel`` and ``classes``.
        """
        return {"image": self.image, "pixel": self.pixel, "classes": dict(self.classes)}


__all__ = ["Thresholds", "threshold_at_fpr"]
