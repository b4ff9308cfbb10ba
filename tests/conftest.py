"""Shared fixtures: a tiny random-init bundle (built once per session) and small test images."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ipad_sdk.metadata import ModelConfig


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained IPAD-Tiny-ViT-16 bundle (64 px input, 4 classes), seed 0."""
    from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip, save_bundle

    model = build_ipad_clip(TINY_BACKBONE, seed=0, description="test bundle")
    return save_bundle(model, tmp_path_factory.mktemp("bundle") / "tiny.safetensors")


@pytest.fixture(scope="session")
def detector(tiny_bundle: Path):
    """A CPU Detector on the tiny bundle (the untrained-model warning silenced)."""
    from ipad_sdk import Detector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Detector(tiny_bundle, device="cpu")


@pytest.fixture
def rgb_image() -> np.ndarray:
    """A deterministic 48x80 RGB uint8 gradient image with some texture."""
    yy, xx = np.mgrid[0:48, 0:80]
    img = np.stack([xx * 3 % 256, yy * 5 % 256, (xx * yy) % 256], axis=-1)
    return img.astype(np.uint8)


@pytest.fixture
def config() -> ModelConfig:
    """A small valid config (32 px input, patch 16, 4 blocks) for network-free tests."""
    return ModelConfig(
        backbone="x",
        clip_config={
            "embed_dim": 8,
            "vision_cfg": {"layers": 4, "width": 16, "patch_size": 16, "image_size": 32},
            "quick_gelu": False,
        },
        image_size=32,
        feature_layers=(1, 2, 3, 4),
        n_adapt=2,
    ).validate()
