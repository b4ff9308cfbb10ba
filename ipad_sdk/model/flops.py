"""Analytic FLOPs of one IPAD-CLIP forward pass, from its :class:`~ipad_sdk.metadata.ModelConfig`.

FLOPs here are 2 x the multiply-accumulates of the convolutions and matrix products (the work
tensor cores do): patch embedding or convolutional stem, attention (QKV, scores, weighted sum,
output), MLPs, residual adapters, projectors and the cosine head. LayerNorm, softmax, GELU and
the bilinear upsampling are left out (about 1-2 % more). ``tests/test_flops.py`` checks the count
against PyTorch's own ``FlopCounterMode`` on real models. Used by the model card and the
benchmarks (``benchmarks/flops.py`` turns it into throughput estimates).
"""

from __future__ import annotations

from ..metadata import ModelConfig


def ipad_flops(config: ModelConfig) -> dict[str, float]:
    """FLOPs per image of the network ``config`` describes, by part, and their ``total``."""
    vision = config.vision_cfg
    width, dim, depth = config.width, config.embed_dim, config.depth
    grid = config.grid_size
    mlp = int(width * float(vision.get("mlp_ratio", 4.0)))
    patches = grid * grid
    tokens = patches + 1
    classes = config.num_classes
    parts: dict[str, float] = {
        "patch_embed": _stem_flops(config),
        "attention_proj": depth * 2 * tokens * width * 4 * width,  # QKV + output
        "attention_scores": depth * 2 * 2 * tokens * tokens * width,  # QK^T and AV
        "mlp": depth * 2 * 2 * tokens * width * mlp,
        "adapters": config.n_adapt * 2 * tokens * width * width,
        "projectors": len(config.feature_layers) * 2 * patches * width * dim + 2 * width * dim,
        "cosine_head": 2 * (patches + 1) * dim * classes,
    }
    parts["total"] = float(sum(parts.values()))
    return {k: float(v) for k, v in parts.items()}


def _stem_flops(config: ModelConfig) -> int:
    """The patchify conv, or the stride-2 3x3 convs and the 1x1 conv of the conv stem (BatchNorm
    folded into them at export)."""
    width, grid, patch = config.width, config.grid_size, config.patch_size
    if config.clip_config.get("stem", "patch") == "patch":
        return 2 * grid * grid * 3 * patch * patch * width
    from .backbone import conv_stem_channels

    total, channels_in, side = 0, 3, config.image_size
    for channels in conv_stem_channels(width, patch):
        side = (side + 1) // 2
        total += 2 * side * side * channels_in * 9 * channels
        channels_in = channels
    return total + 2 * grid * grid * channels_in * width
