"""The inference graph every fast runtime uses: the network with FP16 weights and matmuls, and
LayerNorm, attention softmax, L2 normalisation and the cosine head in FP32.

``InferenceGraph`` is what the ONNX export traces (``fused_attention=False``: attention as plain
MatMul/Softmax ops with the softmax in FP32) and what the PyTorch backend runs on CUDA in FP16
(``fused_attention=True``: ``scaled_dot_product_attention``, whose flash/memory-efficient kernels
accumulate the softmax in FP32). Optionally the graph takes resized uint8 pixels and normalises
them itself (a quarter of the host-to-device traffic of float32).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .network import IpadClip, cosine_logits


class MatmulAttention(nn.Module):
    """``nn.MultiheadAttention`` (self-attention, no mask) with its own weights, computed either
    as plain MatMul/Softmax ops (softmax in FP32; what an ONNX exporter can trace) or with
    ``scaled_dot_product_attention`` (``fused``)."""

    def __init__(self, mha: nn.MultiheadAttention, fused: bool = False) -> None:
        super().__init__()
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("only plain self-attention blocks are supported")
        self.heads = mha.num_heads
        self.batch_first = mha.batch_first
        self.fused = fused
        self.in_proj_weight = mha.in_proj_weight
        self.in_proj_bias = mha.in_proj_bias
        self.out_proj = mha.out_proj

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:  # fmt: skip
        if attn_mask is not None:
            raise ValueError("vision attention has no mask")
        x = q if self.batch_first else q.transpose(0, 1)
        batch, tokens, width = x.shape
        head_dim = width // self.heads
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.reshape(batch, tokens, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        if self.fused:
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        else:
            query, key, value = qkv[0] * head_dim**-0.5, qkv[1], qkv[2]
            scores = (query @ key.transpose(-2, -1)).float()
            out = scores.softmax(dim=-1).to(value.dtype) @ value
        out = self.out_proj(out.transpose(1, 2).reshape(batch, tokens, width))
        return (out if self.batch_first else out.transpose(0, 1)), None


class Fp32LayerNorm(nn.Module):
    """LayerNorm computed in FP32 whatever the input dtype (one LayerNormalization op + Casts)."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        self.shape = norm.normalized_shape
        self.eps = norm.eps
        self.weight = nn.Parameter(norm.weight.detach().float(), requires_grad=False)
        self.bias = nn.Parameter(norm.bias.detach().float(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:  # no Cast nodes in an FP32 graph
            return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)
        y = F.layer_norm(x.float(), self.shape, self.weight, self.bias, self.eps)
        return y.to(x.dtype)


def _fold_batch_norms(root: nn.Module) -> None:
    """Fold every Conv2d -> BatchNorm2d pair of a Sequential (the convolutional stem) into one
    conv (eval-mode statistics), so that no FP32 running statistics meet FP16 activations."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in root.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for index in range(len(module) - 1):
            conv, norm = module[index], module[index + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                module[index] = fuse_conv_bn_eval(conv, norm)
                module[index + 1] = nn.Identity()


def _replace_modules(root: nn.Module, fused: bool) -> None:
    for name, child in list(root.named_children()):
        if isinstance(child, nn.MultiheadAttention):
            setattr(root, name, MatmulAttention(child, fused))
        elif isinstance(child, nn.LayerNorm):
            setattr(root, name, Fp32LayerNorm(child))
        else:
            _replace_modules(child, fused)


class InferenceGraph(nn.Module):
    """(uint8 ->) normalised images -> ``class_probs [B,K+1]``, ``pixel_probs [B,K+1,S,S]``."""

    anchors: torch.Tensor
    scale: torch.Tensor
    mean: torch.Tensor

    def __init__(
        self, model: IpadClip, fp16: bool = False, uint8_input: bool = False,
        fused_attention: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        model = copy.deepcopy(model).float().eval()
        _fold_batch_norms(model)
        _replace_modules(model, fused_attention)
        self.dtype = torch.float16 if fp16 else torch.float32
        for module in model.modules():  # FP16 weights everywhere except the FP32 LayerNorms
            if not isinstance(module, Fp32LayerNorm):
                for param in module.parameters(recurse=False):
                    param.data = param.data.to(self.dtype)
        self.model = model
        self.uint8_input = uint8_input
        config = model.config
        self.register_buffer("anchors", model.anchors.detach().float().clone())
        scale = torch.tensor(config.std, dtype=torch.float32) * 255.0
        self.register_buffer("scale", scale.reshape(1, 3, 1, 1))
        self.register_buffer("mean", torch.tensor(config.mean).reshape(1, 3, 1, 1) * 255.0)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        if self.uint8_input:
            images = (images.float() - self.mean) / self.scale
        global_feature, patches = model.encode(images.to(self.dtype))
        tau = model.config.tau
        image_logits = cosine_logits(global_feature.float(), self.anchors, tau)
        patch_logits = model.to_grid(cosine_logits(patches.float(), self.anchors, tau))
        return image_logits.softmax(dim=-1), model.upsample(patch_logits.softmax(dim=1))
