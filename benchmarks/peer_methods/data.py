"""The fixed subsets every peer run uses, the two generator families, and a cached dataset.

Subsets are drawn once (seed 0, whatever the run's seed) from the dataset's own train/val/test
splits (split per source photo), stratified by class: the first ``n`` items of a seeded
permutation of each class's ids. A larger subset of the same split therefore contains a smaller
one, and the reconstruction baseline's clean images include the supervised subset's.

Generator families (Table 4 analog), from ``params.synthesis.route`` of each record:

* family A (analytic): moire ``grating`` (interference gratings blended with paper Eq. 1), flare
  ``physical`` (the analytic lens model: core, halo, starburst, ghost chain), ghosting ``segment``
  (and its ``blob`` fallback): a segment of the same photo moved across the frames;
* family B (rendered / resampled): moire ``display`` (content on an RGB-stripe/PenTile display
  resampled at the sensor lattice with CFA and demosaic), flare ``pattern`` (rendered flare images
  composited), ghosting ``pasted`` (a segment pasted from another photo).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ipad_sdk.metadata import DEFAULT_CLASSES, ModelConfig
from train.dataset import Augment, IpadDataset

FAMILIES: dict[str, dict[str, frozenset[str]]] = {
    "A": {"moire": frozenset({"grating"}), "flare": frozenset({"physical"}),
          "ghosting": frozenset({"segment", "blob"})},
    "B": {"moire": frozenset({"display"}), "flare": frozenset({"pattern"}),
          "ghosting": frozenset({"pasted"})},
}  # fmt: skip

Record = dict[str, Any]


def family(record: Record) -> str | None:
    """``"A"`` or ``"B"`` for an artifact record, ``None`` for a clean one."""
    if record["label"] == "clean":
        return None
    route = record["params"]["synthesis"].get("route")
    for name, routes in FAMILIES.items():
        if route in routes[record["label"]]:
            return name
    raise ValueError(f"{record['id']}: route {route!r} of {record['label']} is in no family")


def stratified(
    records: Sequence[Record],
    split: str,
    per_class: int | None,
    keep: Callable[[Record], bool] = lambda r: True,
    seed: int = 0,
) -> list[str]:
    """Ids of up to ``per_class`` items of every class of ``split`` (``None``: all) passing
    ``keep``: the first of a seeded permutation of each class's sorted ids."""
    by_id = {r["id"]: r for r in records}
    ids: list[str] = []
    for k, name in enumerate(DEFAULT_CLASSES):
        pool = sorted(r["id"] for r in records if r["split"] == split and r["label"] == name)
        order = np.random.default_rng([seed, k]).permutation(len(pool))
        chosen = [pool[i] for i in order if keep(by_id[pool[i]])]
        ids += chosen if per_class is None else chosen[:per_class]
    return ids


def in_family(name: str) -> Callable[[Record], bool]:
    """``keep`` for :func:`stratified`: clean items and family ``name``'s artifacts."""
    return lambda r: family(r) in (None, name)


class SubsetDataset(IpadDataset):
    """An :class:`IpadDataset` restricted to ``ids``; with ``cache`` the decoded images and masks
    are kept in memory (shared by every run of a process; items are still augmented afresh)."""

    _decoded: ClassVar[dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]] = {}

    def __init__(
        self,
        root: str | Path,
        split: str,
        config: ModelConfig,
        ids: Sequence[str],
        augment: Augment | None = None,
        seed: int = 0,
        cache: bool = True,
    ) -> None:
        super().__init__(root, split, config, augment=augment, seed=seed)
        by_id = {r["id"]: r for r in self.records}
        self.records = [by_id[i] for i in ids]
        self.cache = cache

    def _decode(self, record: Record) -> tuple[np.ndarray, np.ndarray]:
        key = (str(self.root), record["id"])
        if key in self._decoded:
            return self._decoded[key]
        image, mask = super()._decode(record)
        if self.cache:
            self._decoded[key] = (image, mask)
        return image, mask
