"""The IPAD-CLIP network in PyTorch (imports torch and open_clip; used by training and the
PyTorch backend)."""

from .backbone import TINY_BACKBONE, create_clip, vision_tower_from_config
from .bundle import load_bundle, save_bundle
from .network import IpadClip, ResidualAdapter, build_ipad_clip, cosine_logits, model_config

__all__ = [
    "TINY_BACKBONE",
    "IpadClip",
    "ResidualAdapter",
    "build_ipad_clip",
    "cosine_logits",
    "create_clip",
    "load_bundle",
    "model_config",
    "save_bundle",
    "vision_tower_from_config",
]
