"""CUDA checks of the PyTorch backend (skipped, with the reason, where no GPU is visible)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)"),
]


def _detector(path, device, precision="auto"):
    from ipad_sdk import Detector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Detector(path, device=device, precision=precision)


@pytest.fixture(scope="module")
def vit_b16_bundle(tmp_path_factory):
    from ipad_sdk.model import build_ipad_clip, save_bundle

    model = build_ipad_clip("ViT-B-16", image_size=224, seed=0)
    return save_bundle(model, tmp_path_factory.mktemp("b16") / "b16.safetensors")


@pytest.mark.parametrize("bundle", ["tiny_bundle", "vit_b16_bundle"])
@pytest.mark.parametrize(("precision", "atol"), [("fp32", 2e-3), ("auto", 1e-2)])
def test_cuda_matches_cpu(bundle, precision, atol, request, rgb_image):
    """FP32 on CUDA (cuDNN may use TF32: 2e-3) and the default FP16 fast path (1e-2, same labels)
    against eager FP32 on the CPU."""
    path = request.getfixturevalue(bundle)
    cpu, gpu = _detector(path, "cpu"), _detector(path, "auto", precision)
    assert gpu.device == "cuda"
    assert gpu.backend.precision == ("fp32" if precision == "fp32" else "fp16")
    images = [rgb_image, rgb_image[::-1].copy(), np.full((90, 30, 3), 200, np.uint8)]
    for a, b in zip(cpu.detect_batch(images), gpu.detect_batch(images), strict=True):
        assert a.label == b.label
        np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), atol=atol)
        np.testing.assert_allclose(a.heatmap, b.heatmap, atol=atol)


@pytest.mark.parametrize("tiling", ["off", "scale=0.5"])
def test_cuda_tensor_input_is_preprocessed_on_the_gpu(tiny_bundle, tiling, monkeypatch):
    """CUDA tensors and CUDA DLPack arrays skip the host decoder and match the host path (the
    device resize differs from Pillow's by at most one level)."""
    from ipad_sdk import Detector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(tiny_bundle, device="cuda", precision="fp32", tiling=tiling)
    yy, xx = np.mgrid[0:300, 0:260]
    rgb = np.stack([xx * 4 + yy, yy * 6 + xx, (xx * yy) // 5], axis=-1) % 256
    rgb = rgb.astype(np.uint8)  # textured but smooth: the device resize stays within 1 level
    host = det.detect(rgb)
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).cuda()

    class DLPackOnly:
        def __dlpack__(self, **kwargs):
            return tensor.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return tensor.__dlpack_device__()

    def no_host(*args, **kwargs):
        raise AssertionError("a CUDA input went through the host decoder")

    monkeypatch.setattr("ipad_sdk.detector.load_pixels", no_host)
    for item in (tensor, DLPackOnly()):
        res = det.detect(item)
        assert res.image_size == host.image_size
        np.testing.assert_allclose(list(res.scores.values()), list(host.scores.values()), atol=0.02)
        np.testing.assert_allclose(res.pixel_probs, host.pixel_probs, atol=0.05)


def test_compiled_cuda_graphs_match_the_uncompiled_fast_path(tiny_bundle, rgb_image):
    """``compile=True`` on CUDA: inductor + CUDA graphs, padded fixed batches, same results."""
    plain, compiled = _detector(tiny_bundle, "cuda"), None
    from ipad_sdk import Detector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = Detector(tiny_bundle, device="cuda", batch_size=2, compile=True)
    images = [rgb_image, rgb_image[::-1].copy(), np.full((90, 30, 3), 200, np.uint8)]
    for _ in range(2):  # the second pass replays the captured graphs
        for a, b in zip(plain.detect_batch(images), compiled.detect_batch(images), strict=True):
            assert a.label == b.label
            np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), atol=2e-3)
            np.testing.assert_allclose(a.pixel_probs, b.pixel_probs, atol=1e-2)


@pytest.mark.parametrize("fmt", ["nv12", "i420", "yuyv"])
def test_cuda_yuv_frames_are_converted_on_the_gpu(tiny_bundle, fmt, monkeypatch):
    """A YUV frame in a CUDA tensor: converted there (the same float64 arithmetic as the numpy
    conversion, so the same RGB), preprocessed there, and detected like the host frame."""
    from ipad_sdk import Detector
    from ipad_sdk.device_preprocess import yuv_to_rgb_tensor
    from ipad_sdk.yuv import frame_bytes, yuv_to_rgb

    w, h = 160, 96
    noise = np.random.default_rng(3).integers(0, 256, frame_bytes(fmt, w, h)).astype(np.uint8)
    for matrix in ("bt601", "bt709"):
        for yuv_range in ("limited", "full"):
            rgb = yuv_to_rgb_tensor(torch.from_numpy(noise).cuda(), fmt, (w, h), matrix, yuv_range)
            assert rgb.is_cuda and rgb.shape == (3, h, w)
            host = yuv_to_rgb(noise, fmt, (w, h), matrix, yuv_range)
            np.testing.assert_array_equal(rgb.permute(1, 2, 0).cpu().numpy(), host)
    yy, xx = np.mgrid[0 : frame_bytes(fmt, w, h) // w, 0:w]
    smooth = (64 + (xx + 2 * yy) % 128).astype(np.uint8).reshape(-1)  # the resize: within 1 level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(tiny_bundle, device="cuda", precision="fp32")
        want = det.detect(smooth, pixel_format=fmt, size=(w, h))

        def no_host(*args, **kwargs):
            raise AssertionError("a CUDA frame went through a host conversion")

        monkeypatch.setattr("ipad_sdk.yuv.yuv_to_rgb", no_host)
        monkeypatch.setattr("ipad_sdk.detector.load_pixels", no_host)
        got = det.detect(torch.from_numpy(smooth).cuda(), pixel_format=fmt, size=(w, h))
    assert got.image_size == want.image_size == (h, w)
    np.testing.assert_allclose(list(got.scores.values()), list(want.scores.values()), atol=0.02)
    np.testing.assert_allclose(got.pixel_probs, want.pixel_probs, atol=0.05)
