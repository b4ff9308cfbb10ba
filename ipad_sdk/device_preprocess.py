"""Preprocessing of images that are already on the model's GPU (torch CUDA tensors, DLPack), with
no copy to the host: the device twin of :mod:`ipad_sdk.preprocess`.

Inputs follow the torch-tensor conventions of :mod:`ipad_sdk.io` (``HxW`` or ``C x H x W`` with
``C`` in 1/3/4, ``uint8`` or floating point in ``[0, 1]``; alpha dropped, gray repeated, floats
``round(v * 255)``). Any other DLPack producer (CuPy, JAX, ...) is imported with
``torch.from_dlpack`` and read the same way, channels first.

The resize is ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``: the same
filter as Pillow's (a = -0.5 with antialiasing), run as Pillow runs it: horizontal pass, rounded
and clipped to uint8, then vertical pass. Pixels then differ from the host path by at most one
level (Pillow's fixed-point rounding). Everything after the resize is identical.

Raw YUV frames (NV12, I420, YUYV) convert on their device too (:func:`yuv_to_rgb_tensor`): the
same layouts, BT.601/BT.709 matrices and full/limited ranges as :mod:`ipad_sdk.yuv`, the same
float64 arithmetic, so the RGB equals the host conversion's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .arrays import ArrayOrTensor
from .errors import InputError
from .io import SupportsDLPack, check_size, check_unit_range
from .metadata import ModelConfig

if TYPE_CHECKING:
    import torch


def as_tensor(obj: torch.Tensor | SupportsDLPack) -> torch.Tensor:
    """``obj`` as a torch tensor: itself, or imported zero-copy from a DLPack producer."""
    import torch

    return obj if isinstance(obj, torch.Tensor) else torch.from_dlpack(obj)


def to_rgb_uint8(tensor: torch.Tensor, name: str, max_pixels: int) -> torch.Tensor:
    """Validate an image tensor and return it as ``3 x H x W`` uint8 on the same device."""
    import torch

    t = tensor.detach()
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
        raise InputError(
            f"{name}: expected a channels-first tensor (HxW or 1, 3 or 4 x H x W), got shape "
            f"{tuple(tensor.shape)}"
        )
    check_size(int(t.shape[2]), int(t.shape[1]), name, max_pixels)
    t = t[:3]
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()):
            raise InputError(f"{name}: contains NaN or infinite values")
        check_unit_range(float(t.min()), float(t.max()), name)
        t = torch.round(t.double() * 255.0).to(torch.uint8)
    elif t.dtype != torch.uint8:
        raise InputError(
            f"{name}: unsupported tensor dtype {t.dtype}; use uint8 or float in [0, 1]"
        )
    return t.expand(3, -1, -1).contiguous() if t.shape[0] == 1 else t.contiguous()


def yuv_to_rgb_tensor(
    buffer: torch.Tensor, pixel_format: str, size: tuple[int, int], matrix: str = "bt601",
    yuv_range: str = "limited", name: str = "<yuv frame>", max_pixels: int | None = None,
) -> torch.Tensor:  # fmt: skip
    """A YUV frame in a uint8 tensor (any shape, C order, any device) -> ``3 x H x W`` RGB uint8
    on the same device: :func:`ipad_sdk.yuv.yuv_to_rgb` computed there, no host copy."""
    import torch

    from .yuv import MATRICES, check_frame, check_options, rgb_planes

    check_options(matrix, yuv_range, name)
    if buffer.dtype != torch.uint8:
        raise InputError(f"{name}: a {pixel_format} frame must be uint8, got {buffer.dtype}")
    width, height = check_frame(pixel_format, size, buffer.numel(), name, max_pixels)
    flat = buffer.detach().reshape(-1)
    if pixel_format == "yuyv":
        pairs = flat.view(height, width // 2, 4)
        y = pairs[:, :, [0, 2]].reshape(height, width)
        u, v = (pairs[:, :, i].repeat_interleave(2, dim=1) for i in (1, 3))
    else:
        y, chroma = flat[: width * height].view(height, width), flat[width * height :]
        if pixel_format == "nv12":
            uv = chroma.view(height // 2, width // 2, 2)
            u, v = uv[:, :, 0], uv[:, :, 1]
        else:
            u, v = chroma.view(2, height // 2, width // 2)
        u, v = (p.repeat_interleave(2, dim=0).repeat_interleave(2, dim=1) for p in (u, v))
    y64, u64, v64 = (p.to(torch.float64) for p in (y, u, v))
    rgb = torch.stack(rgb_planes(y64, u64, v64, MATRICES[matrix], yuv_range == "full"))
    return torch.round(rgb.clamp_(0.0, 1.0) * 255.0).to(torch.uint8)


def resize_tensor(rgb: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``3 x H x W`` uint8 -> ``3 x h x w`` uint8 (bicubic, antialiased, as Pillow)."""
    import torch
    import torch.nn.functional as F

    def one_pass(image: torch.Tensor, target: tuple[int, int]) -> torch.Tensor:
        out = F.interpolate(image[None].float(), size=target, mode="bicubic", antialias=True,
                            align_corners=False)[0]  # fmt: skip
        return out.round_().clamp_(0, 255).to(torch.uint8)

    height, width = size
    if rgb.shape[2] != width:  # Pillow's order: the horizontal pass first, each rounded to uint8
        rgb = one_pass(rgb, (rgb.shape[1], width))
    if rgb.shape[1] != height:
        rgb = one_pass(rgb, (height, width))
    return rgb


def preprocess_tensors(
    images: Sequence[torch.Tensor], config: ModelConfig, input_format: str = "float"
) -> torch.Tensor:
    """``3 x H x W`` uint8 tensors -> the ``B x 3 x S x S`` batch ``preprocess_batch`` makes,
    on their device."""
    import torch

    size = config.image_size
    batch = torch.stack([resize_tensor(rgb, (size, size)) for rgb in images])
    if input_format == "uint8":
        return batch
    if input_format != "float":
        raise ValueError(f"input_format must be 'float' or 'uint8', got {input_format!r}")
    mean = torch.tensor(config.mean, dtype=torch.float32, device=batch.device)[:, None, None]
    std = torch.tensor(config.std, dtype=torch.float32, device=batch.device)[:, None, None]
    return batch.float() / (std * 255.0) - mean / std


def stack_on_device(inputs: Sequence[ArrayOrTensor], device: str) -> torch.Tensor:
    """Network inputs (device tensors and/or host arrays) -> one batch tensor on ``device``."""
    import torch

    return torch.stack([torch.as_tensor(x).to(device, non_blocking=True) for x in inputs])
