"""Artifact synthesis: one generator per artifact class, all returning :class:`Sample`.

Generators are imported on first use, so importing the package stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .common import ARTIFACT_CLASSES, VISIBLE_DELTA, Sample, camera_finish, visible_mask

#: probability that moire shows the partner photo (else UI-like content) on the screen
PHOTO_CONTENT_P = 0.5


def synthesize(
    label: str,
    clean: np.ndarray,
    rng: np.random.Generator,
    hard: bool = False,
    partner: np.ndarray | None = None,
    flare_patterns: Sequence[np.ndarray] = (),
    lamps: Sequence[dict[str, Any]] = (),
    screens: float | None = None,
    wide_bands: float = 0.0,
) -> Sample:
    """Make one ``label`` artifact on ``clean``. ``partner`` is another photo of the same split
    (screen content for moire, object donor for ghosting); ``flare_patterns`` enable the flare
    generator's pattern route; ``lamps`` (of a night scene) its night route; ``screens`` is the
    moire generator's share of frame-filling screens (None: its default), ``wide_bands`` its share
    of wide low-frequency bands."""
    if label == "flare":
        from .flare import synthesize_flare

        return synthesize_flare(
            clean, rng, hard=hard, patterns=list(flare_patterns) or None, lamps=list(lamps) or None
        )
    if label == "moire":
        from .moire import synthesize_moire

        content = partner if partner is not None and rng.random() < PHOTO_CONTENT_P else None
        frame = {} if screens is None else {"full_frame": screens}
        return synthesize_moire(
            clean, rng, hard=hard, content=content, wide_bands=wide_bands, **frame
        )
    if label == "ghosting":
        from .ghosting import synthesize_ghosting

        return synthesize_ghosting(clean, rng, hard=hard, donor=partner)
    raise ValueError(f"unknown artifact class {label!r}; expected one of {ARTIFACT_CLASSES}")


__all__ = [
    "ARTIFACT_CLASSES",
    "VISIBLE_DELTA",
    "Sample",
    "camera_finish",
    "synthesize",
    "visible_mask",
]
