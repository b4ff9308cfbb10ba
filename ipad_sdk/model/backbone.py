"""open_clip backbones: model configs, vision towers and full CLIP models.

The SDK uses open_clip's own model registry and constructors; the additions are
:data:`TINY_BACKBONE`, a random-init ViT config shipped for tests and demos (~4 M parameters), and
an optional convolutional stem (``clip_config["stem"] = "conv"``) that replaces the ViT's single
patchify convolution for models trained from scratch. A pretrained CLIP keeps its own stem.
"""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable, ModelError

TINY_BACKBONE = "IPAD-Tiny-ViT-16"
_CONFIG_DIR = Path(__file__).parent / "configs"
_registered = False
#: how a ViT turns pixels into patch tokens: open_clip's patchify conv, or :func:`conv_stem`
STEMS = ("patch", "conv")


def import_open_clip() -> Any:
    """Import open_clip (and torch), registering the SDK's own model configs once."""
    global _registered
    try:
        import open_clip
    except ImportError as exc:
        raise BackendUnavailable(
            f"the PyTorch backend needs torch and open_clip ({exc}); "
            "install them with: pip install 'ipad-sdk[torch]'"
        ) from None
    if not _registered:
        open_clip.add_model_config(_CONFIG_DIR)
        _registered = True
    return open_clip


def clip_config_for(
    name: str, image_size: int | None = None, quick_gelu: bool = False, stem: str = "patch"
) -> dict[str, Any]:
    """The vision part of open_clip's config for ``name`` (``embed_dim``, ``vision_cfg``,
    ``quick_gelu``), with the input size set to ``image_size`` when given; ``stem`` is recorded
    only when it is not open_clip's own patchify conv."""
    open_clip = import_open_clip()
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        vits = [m for m in open_clip.list_models() if m.startswith("ViT-")][:12]
        raise ModelError(f"{name}: unknown open_clip model name (e.g. {', '.join(vits)}, ...)")
    vision = copy.deepcopy(cfg["vision_cfg"])
    if vision.get("timm_model_name") or not isinstance(vision.get("layers"), int):
        raise ModelError(
            f"{name}: only open_clip's own ViT towers are supported (not timm or ResNet towers)"
        )
    if image_size is not None:
        vision["image_size"] = int(image_size)
    if stem not in STEMS:
        raise ModelError(f"unknown stem {stem!r}; expected one of {STEMS}")
    return {
        "embed_dim": int(cfg["embed_dim"]),
        "vision_cfg": vision,
        "quick_gelu": bool(quick_gelu or cfg.get("quick_gelu", False)),
    } | ({"stem": stem} if stem != "patch" else {})


def check_vision_tower(visual: Any, name: str) -> None:
    """Raise :class:`ModelError` unless ``visual`` is a plain open_clip VisionTransformer."""
    from open_clip.transformer import VisionTransformer

    if not isinstance(visual, VisionTransformer):
        raise ModelError(f"{name}: vision tower is {type(visual).__name__}, not a ViT")
    if visual.attn_pool is not None or visual.proj is None:
        raise ModelError(f"{name}: ViTs with attentional pooling or no projection are unsupported")


def conv_stem_channels(width: int, patch_size: int) -> list[int]:
    """Output channels of the stride-2 convs of :func:`conv_stem` (doubling up to ``width``)."""
    steps = patch_size.bit_length() - 1
    if patch_size != 1 << steps or steps < 1:
        raise ModelError(f"conv stem needs a power-of-two patch size, got {patch_size}")
    return [max(16, width >> (steps - 1 - step)) for step in range(steps)]


def conv_stem(width: int, patch_size: int) -> Any:
    """Early convolutions (Xiao et al., "Early Convolutions Help Transformers See Better", 2021):
    ``log2(patch_size)`` stride-2 3x3 conv + BatchNorm + ReLU layers, channels doubling up to
    ``width``, then a 1x1 conv to ``width``. Maps ``[B,3,S,S]`` to ``[B,width,S/p,S/p]`` like the
    patchify conv it replaces; BatchNorm folds into the convs at export."""
    from torch import nn

    layers: list[nn.Module] = []
    channels_in = 3
    for channels in conv_stem_channels(width, patch_size):
        layers += [
            nn.Conv2d(channels_in, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        channels_in = channels
    layers.append(nn.Conv2d(channels_in, width, 1))
    return nn.Sequential(*layers)


def apply_stem(visual: Any, stem: str) -> Any:
    """Give an open_clip ViT the ``stem`` named in :data:`STEMS` (in place); returns ``visual``."""
    if stem not in STEMS:
        raise ModelError(f"unknown stem {stem!r}; expected one of {STEMS}")
    if stem == "conv":
        width = visual.conv1.out_channels
        visual.conv1 = conv_stem(width, int(visual.patch_size[0]))
    return visual


def vision_tower_from_config(clip_config: dict[str, Any]) -> Any:
    """Build a random-init open_clip vision tower from a stored ``clip_config``."""
    import_open_clip()
    # open_clip has no public vision-only constructor; _build_vision_tower is what create_model
    # itself calls, and building the text tower only to drop it would double load time.
    from open_clip.model import _build_vision_tower

    visual = _build_vision_tower(
        clip_config["embed_dim"],
        clip_config["vision_cfg"],
        quick_gelu=clip_config["quick_gelu"],
    )
    check_vision_tower(visual, "clip_config")
    return apply_stem(visual, clip_config.get("stem", "patch"))


def _needs_quick_gelu(open_clip: Any, name: str, pretrained: str | None) -> bool:
    if not pretrained or os.path.exists(pretrained):
        return False
    return bool(open_clip.get_pretrained_cfg(name, pretrained).get("quick_gelu", False))


def create_clip(
    name: str,
    pretrained: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    quick_gelu: bool = False,
    stem: str = "patch",
) -> tuple[Any, dict[str, Any]]:
    """A full open_clip model (both towers, e.g. for training) and its vision ``clip_config``.

    ``pretrained`` is an open_clip tag (downloads, for users online) or a local checkpoint file
    (``.pt``/``.bin``/``.safetensors``). OpenAI tags switch QuickGELU on as their weights need.
    Positional embeddings are resized once here when ``image_size`` differs from the config's.
    ``stem="conv"`` (random init only) swaps the patchify conv for :func:`conv_stem`.
    """
    open_clip = import_open_clip()
    pretrained = os.fspath(pretrained) if pretrained is not None else None
    if pretrained and not os.path.exists(pretrained):
        tags = open_clip.list_pretrained_tags_by_model(name)
        if pretrained not in tags:
            raise ModelError(
                f"{pretrained}: neither a local checkpoint file nor an open_clip tag for {name} "
                f"(tags: {', '.join(tags) or 'none'})"
            )
    if pretrained and stem != "patch":
        raise ModelError(f"stem {stem!r} is for random init only (a pretrained CLIP keeps its own)")
    quick_gelu = quick_gelu or _needs_quick_gelu(open_clip, name, pretrained)
    clip_config = clip_config_for(name, image_size, quick_gelu, stem)
    try:
        model = open_clip.create_model(
            name,
            pretrained=pretrained,
            force_image_size=clip_config["vision_cfg"]["image_size"],
            force_quick_gelu=quick_gelu,
        )
    except pickle.UnpicklingError:  # torch.load(weights_only=True) refused an object
        raise ModelError(
            f"{pretrained}: refused: this checkpoint holds pickled Python objects besides weights, "
            "and loading them could run code; save its state_dict or convert it to .safetensors"
        ) from None
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        raise ModelError(f"{pretrained or name}: cannot build/load CLIP weights: {exc}") from exc
    check_vision_tower(model.visual, name)
    apply_stem(model.visual, stem)
    return model, clip_config
