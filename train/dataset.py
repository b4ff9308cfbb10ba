"""The IPAD dataset format, split assignment and the PyTorch loader.

On-disk layout (made by ``train/make_dataset.py``, documented in ``train/README.md``)::

    DATASET/
      dataset.json        build settings (format, seed, counts, size, inputs) - identifies a dataset
      manifest.jsonl      one record per image, in a fixed order (see :data:`RECORD_KEYS`)
      images/<id>.jpg     the image (its JPEG encode is part of the global camera finish)
      masks/<id>.png      binary mask, 0/255 (all 0 for clean images)
      items/<id>.json     the record of each finished item (what a resumed build skips)
      SOURCES.md          attribution of the source photos

Splits are assigned per **source photo**, so no photo's variants appear in two splits.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ipad_sdk.metadata import DEFAULT_CLASSES, ModelConfig
from ipad_sdk.preprocess import normalize

DATASET_FORMAT = "ipad-dataset"
DATASET_VERSION = 1
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
RECORD_KEYS = (
    "id", "image", "mask", "label", "source", "source_photo", "split", "hard", "width", "height",
    "mask_fraction", "params",
)  # fmt: skip

#: (image uint8 HxWx3, mask bool HxW, rng) -> (image, mask); runs before the resize to model size.
Augment = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def assign_splits(photos: Sequence[str], seed: int) -> dict[str, str]:
    """Photo name -> split: a seeded permutation of the sorted names cut 70/15/15 (each split gets
    at least one photo when there are three or more)."""
    names = sorted(photos)
    order = np.random.default_rng([seed, 7]).permutation(len(names))
    n = len(names)
    n_val = max(1, round(n * SPLIT_FRACTIONS[1])) if n >= 3 else 0
    n_test = max(1, round(n * SPLIT_FRACTIONS[2])) if n >= 3 else 0
    n_train = n - n_val - n_test
    splits: dict[str, str] = {}
    for rank, index in enumerate(order):
        splits[names[index]] = (
            "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
        )
    return splits


def read_manifest(root: str | Path) -> list[dict[str, Any]]:
    """All records of the dataset at ``root``."""
    path = Path(root) / "manifest.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest (not a finished dataset)")
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def split_leaks(records: Sequence[dict[str, Any]]) -> dict[str, set[str]]:
    """Source photos that appear in more than one split (empty when the splits are clean)."""
    seen: dict[str, set[str]] = {}
    for rec in records:
        seen.setdefault(rec["source_photo"], set()).add(rec["split"])
    return {photo: splits for photo, splits in seen.items() if len(splits) > 1}


class IpadDataset:
    """Images, masks and labels of one split, resized for a model.

    Items are dicts: ``image`` float32 ``[3,S,S]`` preprocessed exactly as the SDK does at
    inference, ``mask`` float32 ``[M,M]`` in {0, 1} (resized with nearest neighbour to
    ``mask_size``, default ``S``), ``label``
    int (index into ``classes``), ``id`` str. ``augment`` runs on the full-size uint8 image and
    bool mask before the resize, seeded by ``(seed, epoch, index)``: call :meth:`set_epoch` before
    each epoch so every epoch sees new crops, reproducibly. Works as a
    ``torch.utils.data.Dataset`` (``__len__`` and ``__getitem__``); arrays are numpy, which the
    default collate turns into tensors.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        config: ModelConfig,
        augment: Augment | None = None,
        seed: int = 0,
        mask_size: int | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.config = config
        self.classes: tuple[str, ...] = tuple(config.classes)
        self.records = [r for r in read_manifest(self.root) if r["split"] == split]
        unknown = {r["label"] for r in self.records} - set(self.classes)
        if unknown:
            raise ValueError(f"{self.root}: labels {sorted(unknown)} not in classes {self.classes}")
        self.augment = augment
        self.seed = seed
        self.mask_size = mask_size or config.image_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (an epoch always gets the same ones)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def _decode(self, rec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The item's RGB image and boolean mask, as stored."""
        image = np.asarray(Image.open(self.root / rec["image"]).convert("RGB"))
        mask = np.asarray(Image.open(self.root / rec["mask"]).convert("L")) > 127
        return image, mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        image, mask = self._decode(rec)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, mask = self.augment(image, mask, rng)
        size = self.config.image_size
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))
        side = self.mask_size
        small = Image.fromarray(mask.astype(np.uint8) * 255).resize(
            (side, side), Image.Resampling.NEAREST
        )
        return {
            "image": normalize(image, self.config.mean, self.config.std),
            "mask": (np.asarray(small) > 127).astype(np.float32),
            "label": self.classes.index(rec["label"]),
            "id": rec["id"],
        }

    def class_counts(self) -> dict[str, int]:
        counts = Counter(r["label"] for r in self.records)
        return {c: counts.get(c, 0) for c in self.classes}

    def balanced_weights(self) -> np.ndarray:
        """Per-item sampling weights that give every present class the same total weight (for
        ``torch.utils.data.WeightedRandomSampler``)."""
        counts = self.class_counts()
        return np.array([1.0 / counts[r["label"]] for r in self.records], dtype=np.float64)


def random_flip_crop(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A basic augmentation: horizontal flip (p=0.5) and a random crop keeping >= 80 % per side."""
    image, mask = _flip(image, mask, rng)
    h, w = mask.shape
    ch, cw = int(h * rng.uniform(0.8, 1.0)), int(w * rng.uniform(0.8, 1.0))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return _window(image, mask, y, x, ch, cw)


def _flip(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Both mirrored horizontally with probability 0.5 (one draw from ``rng``)."""
    if rng.random() < 0.5:
        return image[:, ::-1], mask[:, ::-1]
    return image, mask


def _window(
    image: np.ndarray, mask: np.ndarray, y: int, x: int, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``h`` x ``w`` window at ``(y, x)`` of both, as contiguous arrays."""
    return (
        np.ascontiguousarray(image[y : y + h, x : x + w]),
        np.ascontiguousarray(mask[y : y + h, x : x + w]),
    )


def native_crop(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, side: int
) -> tuple[np.ndarray, np.ndarray]:
    """A square window of ``side`` to ``2 * side`` px (clipped to the image) after a horizontal
    flip (p=0.5): the model, which shrinks its input to ``side``, then sees the pixels at 1:1 to
    1:2 scale instead of the whole photo shrunk. When the mask has pixels the window holds one of
    them, drawn uniformly, so an artifact item's window shows its artifact and keeps its label."""
    image, mask = _flip(image, mask, rng)
    h, w = mask.shape
    crop = min(h, w, int(side * rng.uniform(1.0, 2.0)))
    ys, xs = np.nonzero(mask)
    if len(ys):
        pick = int(rng.integers(len(ys)))
        cy, cx = int(ys[pick]), int(xs[pick])
        y = int(rng.integers(max(0, cy - crop + 1), min(cy, h - crop) + 1))
        x = int(rng.integers(max(0, cx - crop + 1), min(cx, w - crop) + 1))
    else:
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    return _window(image, mask, y, x, crop, crop)


def training_augment(native_share: float, side: int) -> Augment:
    """:func:`native_crop` for ``native_share`` of the items, :func:`random_flip_crop` otherwise."""
    if not 0.0 <= native_share <= 1.0:
        raise ValueError(f"native_share must be in 0..1, got {native_share}")
    if native_share == 0.0:
        return random_flip_crop

    def augment(
        image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        if rng.random() < native_share:
            return native_crop(image, mask, rng, side)
        return random_flip_crop(image, mask, rng)

    return augment


__all__ = [
    "DATASET_FORMAT",
    "DEFAULT_CLASSES",
    "IpadDataset",
    "assign_splits",
    "native_crop",
    "random_flip_crop",
    "training_augment",
    "read_manifest",
    "split_leaks",
]
