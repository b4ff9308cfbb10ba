"""Operating points on plain folders of photos (``ipad calibrate``).

The photos are scored through :meth:`Detector.stream <ipad_sdk.Detector.stream>`, the path that
later applies the thresholds; the image threshold is set where at most ``fpr`` of the clean photos
are flagged, the pixel threshold (optional) where at most ``pixel_fpr`` of their pixels are, each
midway between neighbouring scores (:func:`~ipad_sdk.thresholds.threshold_at_fpr`). The new
thresholds are written into the model file in place, atomically: a bundle's header, an ONNX
file's metadata or an engine's sidecar (the plan itself is not touched).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backends import backend_for
from .detector import Detector
from .fileio import atomic_write
from .metadata import ModelConfig, write_bundle_config, write_engine_config, write_onnx_config
from .result import Failure
from .thresholds import threshold_at_fpr


@dataclass(frozen=True)
class Scored:
    """The artifact scores of the readable photos of a folder, their heatmap values (at the
    model's map resolution, when asked for) and the photos that could not be read."""

    scores: np.ndarray
    pixels: np.ndarray
    failed: list[Failure]


def score_files(detector: Detector, files: Sequence[Path], keep_pixels: bool = False) -> Scored:
    """Score ``files`` through ``detector``; unreadable ones are collected, not raised."""
    scores: list[float] = []
    pixels: list[np.ndarray] = []
    failed: list[Failure] = []
    for item in detector.stream(os.fspath(f) for f in files):
        if not item.ok:
            failed.append(item)
            continue
        scores.append(item.artifact_score)
        if keep_pixels:
            pixels.append((1.0 - item.pixel_probs[0]).ravel())
    flat = np.concatenate(pixels) if pixels else np.zeros(0, dtype=np.float32)
    return Scored(np.asarray(scores, dtype=np.float64), flat, failed)


@dataclass(frozen=True)
class Calibration:
    """Thresholds and the operating point they achieve on the calibration photos."""

    image_threshold: float
    pixel_threshold: float
    clean_images: int
    clean_flagged: float
    artifact_images: int = 0
    artifacts_caught: float | None = None
    clean_pixels_in_mask: float | None = None

    def summary(self) -> list[str]:
        """The operating point in words, one line per threshold."""
        lines = [
            f"image threshold {self.image_threshold:.6g}: {self.clean_flagged:.1%} of "
            f"{self.clean_images} clean images flagged"
            + (f", {self.artifacts_caught:.1%} of {self.artifact_images} artifact images caught"
               if self.artifacts_caught is not None else "")
        ]  # fmt: skip
        if self.clean_pixels_in_mask is not None:
            share = f"{self.clean_pixels_in_mask:.2%}"
            lines.append(f"pixel threshold {self.pixel_threshold:.6g}: {share} of clean pixels "
                         "in the mask")  # fmt: skip
        return lines


def calibrate(
    config: ModelConfig, clean: Scored, artifacts: Scored | None, fpr: float,
    pixel_fpr: float | None = None,
) -> Calibration:  # fmt: skip
    """The thresholds at ``fpr`` (and ``pixel_fpr``; else ``config``'s pixel threshold is kept)
    on ``clean``, with the share of ``artifacts`` they catch."""
    image_t = threshold_at_fpr(clean.scores, fpr)
    pixel_t = config.pixel_threshold
    in_mask = None
    if pixel_fpr is not None:
        pixel_t = threshold_at_fpr(clean.pixels, pixel_fpr)
        in_mask = float((clean.pixels >= np.float64(pixel_t)).mean())  # as Result.mask compares
    caught = None
    if artifacts is not None and artifacts.scores.size:
        caught = float((artifacts.scores >= image_t).mean())
    return Calibration(
        image_threshold=image_t, pixel_threshold=pixel_t, clean_images=clean.scores.size,
        clean_flagged=float((clean.scores >= image_t).mean()),
        artifact_images=0 if artifacts is None else artifacts.scores.size,
        artifacts_caught=caught, clean_pixels_in_mask=in_mask,
    )  # fmt: skip


_WRITERS = {"torch": write_bundle_config, "onnxruntime": write_onnx_config,
            "tensorrt": write_engine_config}  # fmt: skip


def write_thresholds(model: str | os.PathLike[str], config: ModelConfig, cal: Calibration) -> None:
    """Write ``cal``'s thresholds into ``config`` inside the model file ``model``, in place."""
    new = config.replace(image_threshold=cal.image_threshold, pixel_threshold=cal.pixel_threshold)
    _WRITERS[backend_for(model)](model, new)


def _share_at_or_above(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    ordered = np.sort(scores)
    return 1.0 - np.searchsorted(ordered, thresholds, side="left") / max(ordered.size, 1)


def write_plot(path: Path, cal: Calibration, clean: Scored, artifacts: Scored | None) -> str:
    """Write the ROC curve (clean flagged vs artifacts caught, with the operating point) or,
    without artifact photos, the share of clean photos flagged at each threshold, as a PNG at
    ``path``; returns what was done (matplotlib missing: a note, nothing written)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install matplotlib)"
    positives = artifacts.scores if artifacts is not None else np.zeros(0)
    return _plot(plt, path, cal, clean.scores, positives)


def _plot(plt: Any, path: Path, cal: Calibration, clean: np.ndarray, artifacts: np.ndarray) -> str:
    steps = np.unique(np.concatenate([clean, artifacts, [0.0, np.nextafter(1.0, 2.0)]]))
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    if artifacts.size:
        ax.step(_share_at_or_above(clean, steps), _share_at_or_above(artifacts, steps),
                where="post")  # fmt: skip
        ax.plot(cal.clean_flagged, cal.artifacts_caught, "o",
                label=f"threshold {cal.image_threshold:.4g}")  # fmt: skip
        ax.set(xlabel="clean images flagged", ylabel="artifact images caught", title="ROC")
    else:
        ax.step(steps, _share_at_or_above(clean, steps), where="post")
        ax.axvline(cal.image_threshold, linestyle="--",
                   label=f"threshold {cal.image_threshold:.4g}")  # fmt: skip
        ax.set(xlabel="image threshold", ylabel="clean images flagged",
               title="clean images flagged (no artifact photos given)")  # fmt: skip
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return f"plot -> {path}"


__all__ = ["Calibration", "Scored", "calibrate", "score_files", "write_plot", "write_thresholds"]
