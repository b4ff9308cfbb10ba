"""The one metadata schema: defaults, validation and JSON round trip (no torch needed)."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from ipad_sdk import ModelConfig, ModelError
from ipad_sdk.cli import main
from ipad_sdk.metadata import (
    FORMAT_VERSION,
    MAX_JSON_DEPTH,
    default_feature_layers,
    read_bundle_config,
    read_engine_metadata,
)


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
        ({"mean": (0.5, 0.5)}, "mean must be a list of 3"),
        ({"std": (0.5, 0.0, 0.5)}, "mean and std"),
        ({"image_threshold": 1.5}, "image_threshold"),
        ({"pixel_threshold": -0.1}, "pixel_threshold"),
        ({"format_version": FORMAT_VERSION + 1}, "newer than this SDK"),
        ({"clip_config": {"embed_dim": 8}}, "vision_cfg"),
        ({"format_version": -1}, "format_version -1 must be >= 1"),
        ({"image_size": 14 * 1000}, "image_size 14000"),
        (
            {
                "clip_config": {
                    "embed_dim": "8",
                    "vision_cfg": {"layers": 8, "width": 16, "patch_size": 14},
                }
            },
            "clip_config.embed_dim must be an integer",
        ),
        (
            {
                "clip_config": {
                    "embed_dim": 8,
                    "vision_cfg": {"layers": 10**9, "width": 16, "patch_size": 14},
                }
            },
            "clip_config.vision_cfg.layers must be an integer",
        ),
        (
            {
                "clip_config": {
                    "embed_dim": 8,
                    "vision_cfg": {"layers": 8, "width": True, "patch_size": 14},
                }
            },
            "clip_config.vision_cfg.width must be an integer",
        ),
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


@pytest.mark.parametrize(
    ("key", "value"),
    [("image_size", "28"), ("image_size", None), ("image_size", 28.0), ("image_size", True),
     ("beta", "0.1"), ("tau", None), ("tau", float("nan")), ("image_threshold", "0.5"),
     ("classes", "abcd"), ("classes", [0, 1, 2, 3]), ("classes", ["clean", ""]),
     ("classes", [f"c{i}" for i in range(1000)]), ("classes", ["clean", "x" * 1000]),
     ("mean", ["a", "b", "c"]), ("std", [1, 1, None]), ("trained", "no"), ("trained", 1),
     ("feature_layers", "2468"), ("feature_layers", [2.0, 4]), ("n_adapt", 2.5),
     ("clip_config", []), ("extra", []), ("description", 5), ("format_version", "1"),
     ("backbone", None)],
)  # fmt: skip
def test_wrong_json_types_are_refused_naming_the_field(key, value):
    text = json.dumps(_config().to_dict() | {key: value})
    with pytest.raises(ModelError, match=f"^m.onnx: invalid model config: {key} must be "):
        ModelConfig.from_json(text, source="m.onnx")


def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def test_deeply_nested_json_is_a_model_error():
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ModelError, match="m.onnx: model config is nested deeper than"):
        ModelConfig.from_json(deep, source="m.onnx")
    too_deep = _config().to_dict() | {"extra": {"a": _nested(MAX_JSON_DEPTH)}}
    with pytest.raises(ModelError, match="nested deeper"):
        ModelConfig.from_json(json.dumps(too_deep), source="m.onnx")
    fits = _config().to_dict() | {"extra": {"a": _nested(MAX_JSON_DEPTH - 2)}}
    assert ModelConfig.from_json(json.dumps(fits)).extra == fits["extra"]
    with pytest.raises(ModelError, match="ipad_config must be a JSON string"):
        ModelConfig.from_json({"a": 1}, source="m.onnx")  # type: ignore[arg-type]


def _fake_bundle(path: Path, header: bytes) -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


@pytest.mark.parametrize(
    ("header", "match"),
    [(b'{"__metadata__": [1]}', "__metadata__ must map names to strings"),
     (b'{"__metadata__": {"format": "ipad-bundle", "ipad_config": {"a": 1}}}',
      "__metadata__ must map names to strings"),
     (b'{"__metadata__": {"format": "ipad-bundle", "ipad_config": "[1]"}}', "not a JSON object"),
     (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "header is nested deeper than"),
     (b'{"__metadata__": {"format": "ipad-bundle", "ipad_config": "{\\"trained\\": 1}"}}',
      "invalid model config: trained must be true or false")],
)  # fmt: skip
def test_tampered_bundle_headers_are_model_errors(tmp_path, capsys, header, match):
    bundle = _fake_bundle(tmp_path / "m.safetensors", header)
    with pytest.raises(ModelError, match=match):
        read_bundle_config(bundle)
    assert main(["info", str(bundle)]) == 2
    assert f"{bundle}: " in capsys.readouterr().err


def _engine(tmp_path: Path, **changes: object) -> Path:
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"plan")
    meta = {
        "format": "ipad-engine",
        "ipad_config": _config().to_json(),
        "precision": "fp16",
        "input_format": "float",
        "format_version": str(FORMAT_VERSION),
        "tensorrt": {"plan_bytes": 4, "plan_sha256": hashlib.sha256(b"plan").hexdigest()},
    }
    Path(f"{plan}.json").write_text(json.dumps(meta | changes))  # fmt: skip
    return plan


def test_an_integer_too_long_for_python_to_read_is_a_model_error(tmp_path):
    plan = _engine(tmp_path, extra="HUGE")
    sidecar = Path(f"{plan}.json")
    sidecar.write_text(sidecar.read_text().replace('"HUGE"', "1" * 5000))  # over 4,300 digits
    with pytest.raises(ModelError, match="m.plan.json: engine metadata is not valid JSON"):
        read_engine_metadata(plan)


def test_engine_sidecars_are_checked_against_the_schema(tmp_path):
    assert read_engine_metadata(_engine(tmp_path))[0] == _config()
    bad_size = {"plan_bytes": "4", "plan_sha256": hashlib.sha256(b"plan").hexdigest()}
    cases = [
        ({"tensorrt": bad_size}, "m.plan.json: tensorrt.plan_bytes must be an integer"),
        ({"tensorrt": {"plan_bytes": 4, "plan_sha256": None}}, "plan_sha256 must be a string"),
        ({"extra": _nested(100)}, "m.plan.json: engine metadata is nested deeper"),
        ({"format_version": "-1"}, "format version '-1' is not supported"),
        ({"format_version": "0"}, "format version '0' is not supported"),
        ({"ipad_config": _config().to_json().replace('"trained": false', '"trained": "no"')},
         "trained must be true or false"),
    ]  # fmt: skip
    for changes, match in cases:
        with pytest.raises(ModelError, match=match):
            read_engine_metadata(_engine(tmp_path, **changes))
