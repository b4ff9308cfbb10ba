"""IPAD-CLIP: a frozen open_clip ViT with residual adapters, multi-granularity patch features and a
cosine head against constant text anchors (paper Sec. 4.3, Eqs. 7-9 and 12)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..metadata import DEFAULT_CLASSES, ModelConfig, default_feature_layers
from .backbone import check_vision_tower, clip_config_for, create_clip, vision_tower_from_config


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the activation of OpenAI's CLIP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "quick_gelu": QuickGELU,
}


class ResidualAdapter(nn.Module):
    """``F' = beta * LayerNorm(act(W F)) + (1 - beta) * F`` with a square ``W`` (Eqs. 7-8)."""

    def __init__(self, width: int, beta: float, act: str = "gelu") -> None:
        super().__init__()
        self.beta = beta
        self.fc = nn.Linear(width, width, bias=False)
        self.act = _ACTIVATIONS[act]()
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        adapted: torch.Tensor = self.beta * self.norm(self.act(self.fc(x))) + (1.0 - self.beta) * x
        return adapted


def cosine_logits(features: torch.Tensor, anchors: torch.Tensor, tau: float) -> torch.Tensor:
    """``cos(features, anchors) / tau`` over the last dim; ``anchors`` are already unit-norm."""
    return F.normalize(features, dim=-1) @ anchors.t() / tau


def random_anchors(num_classes: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Seeded random unit anchors for an untrained model (training replaces them)."""
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(num_classes, dim, generator=gen), dim=-1)


class IpadClip(nn.Module):
    """The IPAD-CLIP inference network.

    ``forward(images [B,3,S,S])`` returns ``class_probs [B,K+1]`` and ``pixel_probs [B,K+1,S,S]``
    (per-patch softmax over the anchors, bilinearly upsampled from the patch grid). The backbone
    is frozen; adapters and projectors are the trainable parts; anchors are a constant buffer.
    """

    anchors: torch.Tensor  # the constant buffer ``[K+1, D]``
    visual: Any  # an open_clip VisionTransformer (open_clip ships no type information)

    def __init__(
        self, visual: nn.Module, config: ModelConfig, anchors: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        config.validate()
        check_vision_tower(visual, config.backbone)
        self.visual = visual
        if tuple(self.visual.image_size) != (config.image_size, config.image_size):
            raise ValueError(
                f"vision tower is {self.visual.image_size}, config {config.image_size}"
            )
        self.config = config
        visual.requires_grad_(False)
        width, dim = config.width, config.embed_dim
        self.adapters = nn.ModuleList(
            ResidualAdapter(width, config.beta, config.adapter_act) for _ in range(config.n_adapt)
        )
        # Each projector starts as the tower's own ln_post+proj map: with a pretrained CLIP the
        # patch features then start in the joint image-text space; from random init it is just
        # a shared starting point.
        projectors = [nn.Linear(width, dim) for _ in config.feature_layers]
        self.projectors = nn.ModuleList(projectors)
        with torch.no_grad():
            for proj in projectors:
                proj.weight.copy_(self.visual.proj.t())
                proj.bias.zero_()
        if anchors is None:
            anchors = random_anchors(config.num_classes, dim)
        self.register_buffer("anchors", torch.empty(config.num_classes, dim))
        self.set_anchors(anchors)

    def set_anchors(self, anchors: torch.Tensor) -> None:
        """Replace the text anchors (``[K+1, D]``; L2-normalised here)."""
        expected = (self.config.num_classes, self.config.embed_dim)
        if tuple(anchors.shape) != expected:
            raise ValueError(f"anchors must have shape {expected}, got {tuple(anchors.shape)}")
        with torch.no_grad():
            self.anchors.copy_(F.normalize(anchors.float(), dim=-1))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``images [B,3,S,S]`` -> global embedding ``[B,D]`` and patch features ``[B,N,D]``."""
        size = self.config.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise ValueError(f"expected images [B,3,{size},{size}], got {tuple(images.shape)}")
        visual = self.visual
        x, taken = self.block_features(images)
        pooled, _ = visual._pool(x)
        global_feature = pooled @ visual.proj
        pairs = zip(self.projectors, taken, strict=True)
        patches = sum(proj(visual.ln_post(feat[:, 1:])) for proj, feat in pairs)
        return global_feature, patches

    def block_features(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the ViT blocks, each of the first ``n_adapt`` followed by its adapter: the last
        block's tokens and those of the ``feature_layers`` blocks, all ``[B, 1+N, W]``."""
        visual = self.visual
        batch_first = getattr(visual.transformer, "batch_first", True)
        x = visual._embeds(images)
        if not batch_first:
            x = x.transpose(0, 1)
        taken = []
        layers = set(self.config.feature_layers)
        for index, block in enumerate(visual.transformer.resblocks):
            x = block(x)
            if index < len(self.adapters):
                x = self.adapters[index](x)
            if index + 1 in layers:
                taken.append(x if batch_first else x.transpose(0, 1))
        return (x if batch_first else x.transpose(0, 1)), taken

    def to_grid(self, per_patch: torch.Tensor) -> torch.Tensor:
        """``[B, N, C]`` per-patch values -> ``[B, C, g, g]``."""
        grid = self.config.grid_size
        return per_patch.transpose(1, 2).reshape(per_patch.shape[0], -1, grid, grid)

    def upsample(self, patch_probs: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """``[B, C, g, g]`` -> ``[B, C, S, S]`` bilinear (probabilities stay a distribution);
        ``size`` overrides ``S`` (default: the input size), e.g. for training losses."""
        size = size or self.config.image_size
        return F.interpolate(patch_probs, size=(size, size), mode="bilinear", align_corners=False)

    def logits(
        self, images: torch.Tensor, anchors: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image logits ``[B,K+1]`` and patch logits ``[B,K+1,g,g]`` (before softmax), against
        the constant anchors or, in training, against ``anchors`` (normalised here)."""
        anchors = self.anchors if anchors is None else F.normalize(anchors, dim=-1)
        global_feature, patches = self.encode(images)
        image_logits = cosine_logits(global_feature, anchors, self.config.tau)
        return image_logits, self.to_grid(cosine_logits(patches, anchors, self.config.tau))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image_logits, patch_logits = self.logits(images)
        return image_logits.softmax(dim=-1), self.upsample(patch_logits.softmax(dim=1))


def model_config(
    backbone: str,
    clip_config: dict[str, Any],
    n_adapt: int = 6,
    feature_layers: Sequence[int] | None = None,
    **config_fields: Any,
) -> ModelConfig:
    """The :class:`ModelConfig` of an IPAD-CLIP network on ``clip_config``: ``n_adapt`` clipped to
    the depth, ``feature_layers`` defaulting to 4 evenly spaced blocks, other fields passed on."""
    depth = clip_config["vision_cfg"]["layers"]
    return ModelConfig(
        backbone=backbone,
        clip_config=clip_config,
        image_size=clip_config["vision_cfg"]["image_size"],
        feature_layers=tuple(feature_layers or default_feature_layers(depth)),
        n_adapt=min(n_adapt, depth),
        **config_fields,
    ).validate()


def build_ipad_clip(
    backbone: str = "ViT-L-14",
    *,
    pretrained: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    quick_gelu: bool = False,
    stem: str = "patch",
    n_adapt: int = 6,
    feature_layers: tuple[int, ...] | None = None,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    anchors: torch.Tensor | None = None,
    seed: int = 0,
    **config_fields: Any,
) -> IpadClip:
    """Build an IPAD-CLIP network on any open_clip ViT.

    ``pretrained`` is an open_clip tag or a local checkpoint; ``None`` gives seeded random weights
    (tests, demos, speed measurements). ``stem="conv"`` replaces the patchify conv by a
    convolutional stem (random init only). ``n_adapt`` is clipped to the backbone depth;
    ``feature_layers`` default to 4 evenly spaced blocks (6/12/18/24 on ViT-L). Other
    :class:`ModelConfig` fields (``beta``, ``tau``, thresholds, ...) pass through ``config_fields``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if pretrained is None:
            clip_config = clip_config_for(backbone, image_size, quick_gelu, stem)
            visual = vision_tower_from_config(clip_config)
        else:
            clip_model, clip_config = create_clip(
                backbone, pretrained, image_size, quick_gelu, stem
            )
            visual = clip_model.visual
        config = model_config(
            backbone, clip_config, n_adapt, feature_layers, classes=tuple(classes), **config_fields
        )
        if anchors is None:
            anchors = random_anchors(len(classes), config.embed_dim, seed)
        return IpadClip(visual, config, anchors).eval()
