"""The training loss of IPAD-CLIP: ``lambda * CE(image) + Dice + Focal(pixels)`` (paper Eq. 11).

Pixel terms work on per-pixel class probabilities ``[B, K+1, S, S]`` and a binary artifact mask
``[B, S, S]``: the pixel target is the image's class inside the mask and clean (0) outside it.
Focal is the multi-class focal loss on those targets (gamma 2, mean over pixels). Dice is the soft
Dice between the artifact probability ``1 - P(clean)`` (what the SDK calls the heatmap) and the
mask, per image, averaged; an image with an empty mask scores ``1 - 1 = 0`` only when it predicts
no artifact anywhere (the smoothing term makes empty-vs-empty perfect).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-6


def pixel_targets(masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[B,S,S]`` masks in {0,1} and ``[B]`` labels -> ``[B,S,S]`` long class targets."""
    return (masks > 0.5).long() * labels.view(-1, 1, 1)


def focal_loss(probs: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Multi-class focal loss, mean over pixels: ``-(1 - p_t)^gamma * log p_t``."""
    p_t = probs.gather(1, targets.unsqueeze(1)).squeeze(1).clamp_min(EPS)
    return (-((1.0 - p_t) ** gamma) * torch.log(p_t)).mean()


def dice_loss(probs: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice between ``1 - P(clean)`` and the binary mask, per image, averaged."""
    artifact = 1.0 - probs[:, 0]
    inter = (artifact * masks).flatten(1).sum(1)
    total = artifact.flatten(1).sum(1) + masks.flatten(1).sum(1)
    return (1.0 - (2.0 * inter + smooth) / (total + smooth)).mean()


def ipad_loss(
    image_logits: torch.Tensor,
    pixel_probs: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    lambda_cls: float = 4.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``lambda * CE + Dice + Focal`` and its parts (as floats, for logging)."""
    ce = F.cross_entropy(image_logits.float(), labels)
    probs = pixel_probs.float()
    dice = dice_loss(probs, masks.float())
    focal = focal_loss(probs, pixel_targets(masks, labels))
    total = lambda_cls * ce + dice + focal
    parts = {k: float(v.detach()) for k, v in
             (("ce", ce), ("dice", dice), ("focal", focal), ("loss", total))}  # fmt: skip
    return total, parts
