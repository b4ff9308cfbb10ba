"""The one metadata schema: defaults, validation and JSON round trip (no torch needed)."""

from __future__ import annotations

import json

import pytest

from ipad_sdk import ModelConfig, ModelError
from ipad_sdk.metadata import FORMAT_VERSION, default_feature_layers


def _config(**changes) -> ModelConfig:
    base = ModelConfig(
        backbone="test",
        clip_config={
            "embed_dim": 8,
            "vision_cfg": {"layers": 8, "width": 16, "patch_size": 14, "image_size": 28},
            "quick_gelu": False,
        },
        image_size=28,
        feature_layers=(2, 4, 6, 8),
    )
    return base.replace(**changes) if changes else base.validate()


@pytest.mark.parametrize(
    ("depth", "layers"),
    [(24, (6, 12, 18, 24)), (12, (3, 6, 9, 12)), (32, (8, 16, 24, 32)), (4, (1, 2, 3, 4)),
     (2, (1, 2)), (6, (1, 3, 4, 6))],
)  # fmt: skip
def test_default_feature_layers(depth, layers):
    assert default_feature_layers(depth) == layers


def test_defaults_follow_the_paper():
    cfg = _config()
    assert cfg.classes == ("clean", "ghosting", "flare", "moire")
    assert (cfg.beta, cfg.n_adapt, cfg.format_version) == (0.1, 6, FORMAT_VERSION)
    assert (cfg.patch_size, cfg.grid_size, cfg.embed_dim, cfg.width, cfg.num_classes) == (
        14, 2, 8, 16, 4,
    )  # fmt: skip


def test_json_round_trip():
    cfg = _config(tau=0.05, classes=("clean", "flare"), description="x", extra={"a": [1, 2]})
    again = ModelConfig.from_json(cfg.to_json())
    assert again == cfg and isinstance(again.feature_layers, tuple)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"image_size": 30}, "not a multiple of patch size"),
        ({"feature_layers": (0, 4)}, "feature_layers"),
        ({"feature_layers": (4, 2)}, "feature_layers"),
        ({"feature_layers": (2, 9)}, "feature_layers"),
        ({"feature_layers": ()}, "feature_layers"),
        ({"n_adapt": 9}, "n_adapt"),
        ({"beta": 1.5}, "beta"),
        ({"tau": 0.0}, "tau"),
        ({"adapter_act": "swish"}, "adapter_act"),
        ({"classes": ("clean",)}, "classes"),
        ({"classes": ("clean", "flare", "flare")}, "classes"),
        ({"mean": (0.5, 0.5)}, "mean and std"),
        ({"std": (0.5, 0.0, 0.5)}, "mean and std"),
        ({"image_threshold": 1.5}, "image_threshold"),
        ({"pixel_threshold": -0.1}, "pixel_threshold"),
        ({"format_version": FORMAT_VERSION + 1}, "newer than this SDK"),
        ({"clip_config": {"embed_dim": 8}}, "vision_cfg"),
    ],
)
def test_invalid_configs_are_refused(changes, match):
    with pytest.raises(ModelError, match=match):
        _config(**changes)


def test_unknown_and_missing_keys():
    data = _config().to_dict()
    with pytest.raises(ModelError, match="unknown model config keys"):
        ModelConfig.from_dict(dict(data, surprise=1), source="f.onnx")
    del data["image_size"]
    with pytest.raises(ModelError, match="f.onnx: incomplete model config"):
        ModelConfig.from_dict(data, source="f.onnx")
    with pytest.raises(ModelError, match="not a JSON object"):
        ModelConfig.from_json(json.dumps([1, 2]))
