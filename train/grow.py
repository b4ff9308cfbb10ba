"""Grow a trained conv-stem model to a larger input without starting over.

A model trained at 256 px sees a 1,024-px photo shrunk 4x, which erases the fine structure of
moiré and ghost edges. Its larger twin (e.g. ``IPAD-Small-ViT-64`` at 1,024 px: the same ViT on
the same 16x16 token grid, behind a conv stem two stride-2 convs deeper) can see it, and can start
from everything the small model learned:

1. :func:`transplant` copies every tensor of the same name and shape (blocks, embeddings,
   adapters, projectors, anchors, thresholds' network) and maps the small stem's stages 2..n onto
   the large stem's last stages (identical shapes: the channel ladder only gains stages in front);
2. :func:`distil_front` trains the large stem's new front stages (``1 + extra``: stride
   ``2 ** (1 + extra)``) to reproduce, on the full-size image, what the small stem's first stage
   computes on the image shrunk by ``2 ** extra`` (antialiased bicubic, as the dataset resizes).

After that the large model computes nearly what the small one did (``grow`` reports how nearly),
and training continues from there with the new pixels available.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sized
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from ipad_sdk.model import IpadClip

#: modules per stem stage: Conv2d, BatchNorm2d, ReLU (``ipad_sdk.model.backbone.conv_stem``)
_STAGE = 3


def stem_stages(model: IpadClip) -> int:
    """Number of stride-2 stages of ``model``'s conv stem (``ValueError`` for a patchify stem)."""
    stem = model.visual.conv1
    if not isinstance(stem, nn.Sequential):
        raise ValueError("growing needs a conv stem (clip_config stem 'conv') on both models")
    return (len(stem) - 1) // _STAGE


def transplant(small: IpadClip, large: IpadClip) -> int:
    """Copy ``small``'s weights into ``large`` (see the module doc); returns the number of extra
    stem stages of ``large``. Raises ``ValueError`` unless everything but the stem's front fits."""
    extra = stem_stages(large) - stem_stages(small)
    if extra < 1 or large.config.image_size != small.config.image_size << extra:
        raise ValueError(
            f"cannot grow {small.config.image_size} px ({stem_stages(small)} stem stages) to "
            f"{large.config.image_size} px ({stem_stages(large)} stem stages): the input must "
            "double with every added stage"
        )
    offset = extra * _STAGE

    def large_key(key: str) -> str | None:
        prefix = "visual.conv1."
        if not key.startswith(prefix):
            return key
        index, _, rest = key[len(prefix) :].partition(".")
        if int(index) < _STAGE:  # the small stem's first stage: replaced by the distilled front
            return None
        return f"{prefix}{int(index) + offset}.{rest}"

    theirs = large.state_dict()
    copied: dict[str, torch.Tensor] = {}
    for key, value in small.state_dict().items():
        target = large_key(key)
        if target is None:
            continue
        if target not in theirs or theirs[target].shape != value.shape:
            raise ValueError(f"{key}: no tensor of shape {tuple(value.shape)} at {target}")
        copied[target] = value
    missing = [k for k in theirs if k not in copied and not k.startswith("visual.conv1.")]
    if missing:
        raise ValueError(f"the large model has weights the small one lacks: {missing[:3]}")
    large.load_state_dict(copied, strict=False)
    return extra


def _shrink(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Images shrunk by ``factor`` with antialiased bicubic (PIL's resize, as the dataset's)."""
    size = images.shape[-1] // factor
    return F.interpolate(images, size=(size, size), mode="bicubic", antialias=True,
                         align_corners=False)  # fmt: skip


def distil_front(
    small: IpadClip,
    large: IpadClip,
    extra: int,
    dataset: Dataset,
    steps: int,
    batch_size: int = 8,
    lr: float = 3e-3,
    seed: int = 0,
) -> dict[str, float]:
    """Train ``large``'s first ``1 + extra`` stem stages to match ``small``'s first stage on the
    shrunk images of ``dataset`` (items with an ``image``); returns the fraction of the target's
    variance explained at the end (1.0: exact) and the seconds taken."""
    front = large.visual.conv1[: (1 + extra) * _STAGE]
    teacher = small.visual.conv1[:_STAGE].eval()
    front.train().requires_grad_(True)
    optimizer = torch.optim.Adam(front.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / steps))
    )
    gen = torch.Generator().manual_seed(seed)
    assert isinstance(dataset, Sized)
    draws = steps * batch_size
    sampler = RandomSampler(dataset, replacement=True, num_samples=draws, generator=gen)
    tic, recent = time.perf_counter(), []  # the last 20 steps' explained variance
    for batch in DataLoader(dataset, batch_size, sampler=sampler):
        images = batch["image"]
        with torch.no_grad():
            target = teacher(_shrink(images, 1 << extra))
        error = F.mse_loss(front(images), target)
        optimizer.zero_grad(set_to_none=True)
        error.backward()
        optimizer.step()
        schedule.step()
        recent = (recent + [1.0 - error.item() / max(target.var().item(), 1e-12)])[-20:]
    front.eval()
    explained = sum(recent) / max(len(recent), 1)
    return {"explained_variance": explained, "seconds": time.perf_counter() - tic}


@torch.no_grad()
def agreement(small: IpadClip, large: IpadClip, images: torch.Tensor, extra: int) -> float:
    """Mean absolute difference of the two models' image class probabilities on ``images``
    (large input) and their shrunk copies (small input)."""
    large_probs, _ = large.eval()(images)
    small_probs, _ = small.eval()(_shrink(images, 1 << extra))
    return float((large_probs - small_probs).abs().mean())


def grow(
    small: IpadClip,
    large: IpadClip,
    dataset: Dataset,
    steps: int,
    batch_size: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`transplant` then :func:`distil_front` (in place on ``large``); the report adds the
    models' :func:`agreement` on ``batch_size`` dataset images."""
    extra = transplant(small, large)
    report = distil_front(small, large, extra, dataset, steps, batch_size, seed=seed)
    probe = next(iter(DataLoader(dataset, batch_size)))["image"]
    return report | {"extra_stages": extra, "steps": steps,
                     "class_prob_mean_abs_diff": agreement(small, large, probe, extra)}  # fmt: skip


__all__ = ["agreement", "distil_front", "grow", "stem_stages", "transplant"]
