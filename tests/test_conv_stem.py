"""The convolutional stem for backbones trained from scratch: shapes, bundle round trip, export
(BatchNorm folded, every op on the TensorRT list, FP32/FP16 parity) and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ipad_sdk import ModelError  # noqa: E402
from ipad_sdk.metadata import ModelConfig  # noqa: E402
from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip, load_bundle, save_bundle  # noqa: E402
from ipad_sdk.model.backbone import conv_stem, create_clip  # noqa: E402
from ipad_sdk.preprocess import preprocess_batch  # noqa: E402


def _trained_like(seed: int = 3):
    """A tiny conv-stem model whose BatchNorm statistics and affine terms are not the identity
    (as after training), so that folding them at export is actually exercised."""
    model = build_ipad_clip(TINY_BACKBONE, seed=0, stem="conv")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.visual.conv1.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model.eval()


@pytest.mark.parametrize(("patch", "convs"), [(16, 4), (8, 3), (32, 5)])
def test_stem_maps_pixels_to_the_patch_grid(patch, convs):
    stem = conv_stem(64, patch)
    out = stem(torch.zeros(2, 3, 4 * patch, 4 * patch))
    assert tuple(out.shape) == (2, 64, 4, 4)
    strided = [m for m in stem if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == convs  # log2(patch) stride-2 3x3 convs, then one 1x1
    assert [m.out_channels for m in strided][-1] == 64


def test_stem_needs_a_power_of_two_patch():
    with pytest.raises(ModelError, match="power-of-two"):
        conv_stem(64, 14)


def test_conv_stem_model_replaces_only_the_patchify_conv():
    patch = build_ipad_clip(TINY_BACKBONE, seed=0)
    conv = build_ipad_clip(TINY_BACKBONE, seed=0, stem="conv")
    assert isinstance(patch.visual.conv1, torch.nn.Conv2d)
    assert isinstance(conv.visual.conv1, torch.nn.Sequential)
    assert conv.config.clip_config["stem"] == "conv" and "stem" not in patch.config.clip_config
    probs, pixels = conv(torch.zeros(1, 3, 64, 64))
    assert tuple(probs.shape) == (1, 4) and tuple(pixels.shape) == (1, 4, 64, 64)


def test_bundle_round_trip_keeps_the_stem_and_its_statistics(tmp_path):
    model = _trained_like()
    path = save_bundle(model, tmp_path / "conv.safetensors")
    again = load_bundle(path, "cpu")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        for a, b in zip(model(x), again(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_unknown_stem_and_pretrained_conv_stem_are_refused(tmp_path):
    config = build_ipad_clip(TINY_BACKBONE, seed=0).config
    bad = config.to_dict()
    bad["clip_config"] = dict(bad["clip_config"], stem="dilated")
    with pytest.raises(ModelError, match="stem"):
        ModelConfig.from_dict(bad)
    with pytest.raises(ModelError, match="stem"):
        build_ipad_clip(TINY_BACKBONE, stem="dilated")
    weights = tmp_path / "w.pt"
    torch.save({}, weights)
    with pytest.raises(ModelError, match="random init only"):
        create_clip(TINY_BACKBONE, pretrained=weights, stem="conv")


def test_export_folds_batch_norm_and_matches_pytorch(tmp_path: Path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxslim")
    from ipad_sdk.backends.onnx_backend import OnnxBackend
    from ipad_sdk.export import onnx as ex

    model = _trained_like()
    bundle = save_bundle(model, tmp_path / "conv.safetensors")
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    batch = preprocess_batch(photos, model.config)
    with torch.inference_mode():
        ref_cls, ref_pix = (t.numpy() for t in model(torch.from_numpy(batch)))
    for fp16, limit in ((False, 1e-4), (True, 1e-2)):
        path = ex.export_onnx(bundle, tmp_path / f"m{int(fp16)}.onnx", fp16=fp16)
        proto = onnx.load(str(path))
        ops = ex.graph_ops(proto)
        assert "Conv" in ops and "BatchNormalization" not in ops
        assert ex.unsupported_ops(proto) == []
        got_cls, got_pix = OnnxBackend(path, device="cpu").run(batch)
        assert np.abs(got_cls - ref_cls).max() < limit
        assert np.abs(got_pix - ref_pix).max() < limit
