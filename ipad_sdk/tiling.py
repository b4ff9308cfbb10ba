"""Native-resolution tiled inference (beyond the paper, which shrinks every photo to model size).

A photo is seen twice: whole, resized to the model size, for the global decision; and as
overlapping model-size tiles cut from the photo resized to a *working resolution* (``scale`` times
native), for the map. Tile maps are blended with a smooth window so seams do not show::

    map(p) = sum_t w_t(p) * map_t(p) / sum_t w_t(p)

``w_t`` is a separable raised-cosine (Hann) window that is positive at every pixel centre, so the
normalised weights at each pixel sum to 1 and every pixel is covered, image borders included.

The image decision combines the global class probabilities ``g`` with those of the tile whose
artifact score ``1 - P(clean)`` is highest, ``t*`` (``image_rule``):

- ``"global"``: ``g`` (the whole-image decision, unchanged by tiling);
- ``"mean"`` (default): ``(g + t*) / 2``: a local artifact the whole view misses raises the score,
  while one noisy tile alone cannot reach the score of a clear whole-image detection;
- ``"max"``: whichever of ``g`` and ``t*`` has the higher artifact score.

The model's thresholds were calibrated on whole-image scores; tiled scores and maps follow other
distributions (``benchmarks/tiling.py`` measures the threshold-free metrics).

Hand-written rather than taken from MONAI's ``sliding_window_inference``: the blend is ten lines
of numpy, and MONAI would add torch and a large dependency to an SDK that runs on ONNX Runtime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

IMAGE_RULES = ("global", "mean", "max")


@dataclass(frozen=True)
class TilingSpec:
    """How to tile. ``scale``: working resolution as a fraction of native (``None``: the largest
    that keeps the grid within ``max_tiles``, at most native); ``overlap``: the fraction of a tile
    shared with its neighbour; ``max_tiles``: the scale is lowered until the grid fits;
    ``min_side``: images whose working short side is below ``min_side`` model sizes are not tiled
    (their whole-image result is returned unchanged), nor are those whose grid only fits
    ``max_tiles`` below that size."""

    scale: float | None = None
    overlap: float = 0.25
    max_tiles: int = 64
    min_side: float = 1.5
    image_rule: str = "mean"

    def __post_init__(self) -> None:
        if self.scale is not None and not 0.0 < self.scale <= 1.0:
            raise ValueError(f"tiling scale must be in (0, 1], got {self.scale}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"tiling overlap must be in [0, 1), got {self.overlap}")
        if self.max_tiles < 1:
            raise ValueError(f"tiling max_tiles must be >= 1, got {self.max_tiles}")
        if not (math.isfinite(self.min_side) and self.min_side >= 1.0):  # NaN fails every test
            raise ValueError(f"tiling min_side must be a finite number >= 1, got {self.min_side}")
        if self.image_rule not in IMAGE_RULES:
            raise ValueError(f"tiling image_rule must be one of {IMAGE_RULES}, got "
                             f"{self.image_rule!r}")  # fmt: skip

    @classmethod
    def parse(cls, spec: str | TilingSpec | None) -> TilingSpec | None:
        """``"off"``/``None`` -> no tiling; ``"auto"`` -> the defaults; ``"scale=0.5,overlap=0.25,
        max_tiles=32,min_side=1.5,image_rule=max"`` (any subset) -> those settings."""
        if spec is None or isinstance(spec, TilingSpec):
            return spec
        text = spec.strip().lower()
        if text in ("off", "none", ""):
            return None
        if text == "auto":
            return cls()
        values: dict[str, object] = {}
        types = {"scale": float, "overlap": float, "max_tiles": int, "min_side": float,
                 "image_rule": str}  # fmt: skip
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in types:
                raise ValueError(
                    f"bad tiling spec {spec!r}: expected 'auto', 'off' or key=value pairs with "
                    f"keys {sorted(types)}"
                )
            try:
                values[key] = types[key](value.strip())
            except ValueError:
                raise ValueError(f"bad tiling spec {spec!r}: {key}={value!r}") from None
        return replace(cls(), **values)  # type: ignore[arg-type]  # each parsed by its type


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``[0, length)``, evenly spaced, the first
    at 0 and the last flush with the end, neighbours overlapping by at least ``overlap * tile``."""
    if length <= tile:
        return [0]
    stride = max(1, math.floor(tile * (1.0 - overlap)))
    count = math.ceil((length - tile) / stride) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def window(tile: int) -> np.ndarray:
    """``tile x tile`` float32 blending window: the outer product of a Hann window sampled at
    pixel centres (positive everywhere, peak 1 in the middle)."""
    centres = (np.arange(tile, dtype=np.float64) + 0.5) / tile
    hann = np.sin(np.pi * centres) ** 2
    return np.outer(hann, hann).astype(np.float32)


@dataclass(frozen=True)
class TileLayout:
    """Where the tiles of one image lie: the working size ``(height, width)`` and the top-left
    corner of each ``tile x tile`` tile, row-major."""

    working_size: tuple[int, int]
    tile: int
    corners: tuple[tuple[int, int], ...]


def plan_tiles(image_size: tuple[int, int], tile: int, spec: TilingSpec) -> TileLayout | None:
    """The tile layout for an image of ``image_size`` ``(height, width)``, or ``None`` when the
    image is too small to tile (then the whole-image result stands)."""
    height, width = image_size
    scale = 1.0 if spec.scale is None else spec.scale
    while True:  # the scale shrinks by 10 % steps until the grid fits or the image is too small
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        if min(size) < spec.min_side * tile:
            return None
        rows, cols = (tile_starts(size[0], tile, spec.overlap),
                      tile_starts(size[1], tile, spec.overlap))  # fmt: skip
        if len(rows) * len(cols) <= spec.max_tiles:
            corners = tuple((y, x) for y in rows for x in cols)
            return TileLayout(size, tile, corners)
        scale *= 0.9


def blend(tile_maps: np.ndarray, layout: TileLayout) -> np.ndarray:
    """Blend ``[T, C, tile, tile]`` tile maps into one ``[C, H, W]`` map at the working size."""
    count, channels = tile_maps.shape[:2]
    if count != len(layout.corners):
        raise ValueError(f"{count} tile maps for a layout of {len(layout.corners)} tiles")
    height, width = layout.working_size
    acc = np.zeros((channels, height, width), np.float64)
    weight = np.zeros((height, width), np.float64)
    win = window(layout.tile)
    t = layout.tile
    for (y, x), tile_map in zip(layout.corners, tile_maps, strict=True):
        acc[:, y : y + t, x : x + t] += win * tile_map
        weight[y : y + t, x : x + t] += win
    return (acc / weight).astype(np.float32)


def combine_scores(global_probs: np.ndarray, tile_probs: np.ndarray, rule: str) -> np.ndarray:
    """Image-level class probabilities from the global ``[K+1]`` and the tiles' ``[T, K+1]``
    (see the module docstring for the rules)."""
    if rule == "global":
        return global_probs
    top = tile_probs[int(np.argmin(tile_probs[:, 0]))]  # the tile most likely to be an artifact
    if rule == "mean":
        mean: np.ndarray = (global_probs + top) / 2.0
        return mean
    if rule == "max":
        return top if top[0] < global_probs[0] else global_probs
    raise ValueError(f"image_rule must be one of {IMAGE_RULES}, got {rule!r}")


__all__ = ["TileLayout", "TilingSpec", "blend", "combine_scores", "plan_tiles", "tile_starts",
           "window"]  # fmt: skip
