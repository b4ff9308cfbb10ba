"""The model bundle: save -> load round trip, and clear errors for every kind of bad file."""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402

from ipad_sdk import Detector, ModelError  # noqa: E402
from ipad_sdk.metadata import CONFIG_KEY, read_bundle_config  # noqa: E402
from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip, load_bundle, save_bundle  # noqa: E402


@pytest.fixture(scope="module")
def trained_like():
    """A tiny model whose adapters, projectors and anchors are all non-default."""
    model = build_ipad_clip(TINY_BACKBONE, seed=2, tau=0.2, image_threshold=0.3, trained=True)
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for param in list(model.adapters.parameters()) + list(model.projectors.parameters()):
            param.add_(torch.randn(param.shape, generator=gen) * 0.1)
        model.set_anchors(torch.randn(4, model.config.embed_dim, generator=gen))
    return model


def _images(size: int) -> torch.Tensor:
    return torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_round_trip_gives_identical_outputs(trained_like, tmp_path):
    path = save_bundle(trained_like, tmp_path / "m.safetensors")
    loaded = load_bundle(path)
    assert loaded.config == trained_like.config
    original, restored = trained_like.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    images = _images(trained_like.config.image_size)
    with torch.no_grad():
        for a, b in zip(trained_like(images), loaded(images), strict=True):
            assert torch.equal(a, b)
    assert not any(p.requires_grad for p in loaded.visual.parameters())
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp files left


def test_header_config_readable_without_torch(trained_like, tmp_path):
    path = save_bundle(trained_like, tmp_path / "m.safetensors")
    config = read_bundle_config(path)
    assert config == trained_like.config
    assert config.tau == 0.2 and config.image_threshold == 0.3 and config.trained


def _raw_bundle(path: Path) -> tuple[int, dict, bytes]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8 : 8 + n]), data[8 + n :]


def _write_raw(path: Path, header: dict, body: bytes) -> Path:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    return path


def _bad_files(tiny_bundle: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    data = tiny_bundle.read_bytes()
    _, header, body = _raw_bundle(tiny_bundle)
    cases: dict[str, tuple[Path, str]] = {}

    def add(name: str, content: bytes, match: str) -> None:
        path = tmp / f"{name}.safetensors"
        path.write_bytes(content)
        cases[name] = (path, match)

    add("empty", b"", "too short")
    add("random-bytes", bytes(range(256)) * 40, "not a model bundle")
    add("truncated-header", data[:100], "not a model bundle")
    add("truncated-body", data[: len(data) // 2], "corrupt model bundle")
    add("onnx-like", b"\x08\x07\x12\x07pytorch" + b"\x00" * 64, "not a model bundle")

    foreign = tmp / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    cases["foreign"] = (foreign, "not an ipad-sdk model bundle")

    meta = header["__metadata__"]
    bad_json = dict(header, __metadata__=dict(meta, **{CONFIG_KEY: "{not json"}))
    cases["bad-json"] = (_write_raw(tmp / "bad-json.safetensors", bad_json, body), "not valid JSON")

    config = json.loads(meta[CONFIG_KEY])
    future = dict(
        header, __metadata__=dict(meta, **{CONFIG_KEY: json.dumps(dict(config, format_version=99))})
    )
    cases["future"] = (_write_raw(tmp / "future.safetensors", future, body), "newer than this SDK")

    fewer = dict(
        header, __metadata__=dict(meta, **{CONFIG_KEY: json.dumps(dict(config, n_adapt=2))})
    )
    cases["mismatch"] = (
        _write_raw(tmp / "mismatch.safetensors", fewer, body),
        "6 unexpected \\(adapters.2",
    )

    wider = dict(config, clip_config=dict(config["clip_config"], embed_dim=32))
    shape = dict(header, __metadata__=dict(meta, **{CONFIG_KEY: json.dumps(wider)}))
    cases["shape"] = (_write_raw(tmp / "shape.safetensors", shape, body), "shape")

    def nested(name: str, change: dict, match: str) -> None:  # a changed clip_config.vision_cfg
        clip = dict(config["clip_config"])
        clip["vision_cfg"] = dict(clip["vision_cfg"], **change)
        bad = dict(header, __metadata__=dict(meta, **{CONFIG_KEY: json.dumps(
            dict(config, clip_config=clip))}))  # fmt: skip
        cases[name] = (_write_raw(tmp / f"{name}.safetensors", bad, body), match)

    nested("unknown-key", {"head_w8dth": 32}, "invalid clip_config.*head_w8dth")
    nested("head-width", {"head_width": 7}, "invalid clip_config")
    nested("mlp-ratio", {"mlp_ratio": "x"}, "invalid clip_config")
    no_gelu = dict(config, clip_config={k: v for k, v in config["clip_config"].items()
                                        if k != "quick_gelu"})  # fmt: skip
    cases["no-quick-gelu"] = (
        _write_raw(tmp / "no-quick-gelu.safetensors",
                   dict(header, __metadata__=dict(meta, **{CONFIG_KEY: json.dumps(no_gelu)})),
                   body),
        "invalid clip_config, open_clip cannot build it: no 'quick_gelu'",
    )  # fmt: skip
    return cases


BAD = [
    "empty", "random-bytes", "truncated-header", "truncated-body", "onnx-like", "foreign",
    "bad-json", "future", "mismatch", "shape", "unknown-key", "head-width", "mlp-ratio",
    "no-quick-gelu",
]  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_bundles_raise_model_error_naming_the_file(case, tiny_bundle, tmp_path):
    path, match = _bad_files(tiny_bundle, tmp_path)[case]
    with pytest.raises(ModelError, match=match) as info:
        load_bundle(path)
    assert str(path) in str(info.value)
    with pytest.raises(ModelError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Detector(path, device="cpu")


def test_missing_bundle(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_bundle(tmp_path / "nope.safetensors")


def test_bundle_gets_umask_permissions(trained_like, tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = save_bundle(trained_like, tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
