"""Device-side preprocessing (CUDA tensors / DLPack without a host copy), checked on the CPU
against the host path; the CUDA run itself is in tests/test_gpu.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ipad_sdk import Detector, InputError, load_image  # noqa: E402
from ipad_sdk.device_preprocess import (  # noqa: E402
    preprocess_tensors,
    resize_tensor,
    stack_on_device,
    to_rgb_uint8,
)
from ipad_sdk.preprocess import preprocess_batch, resize_to  # noqa: E402


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 4 + yy, yy * 6 + xx, (xx * yy) // 5], axis=-1)
    return ((base + rng.integers(0, 60, size=(height, width, 3))) % 256).astype(np.uint8)


def _chw(rgb: np.ndarray):
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


class DLPackOnly:
    """A foreign array that speaks only DLPack (as CuPy or JAX arrays do)."""

    def __init__(self, array) -> None:
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


@pytest.mark.parametrize(("hw", "size"), [((100, 150), (64, 64)), ((37, 300), (50, 80)),
                                          ((64, 64), (200, 120))])  # fmt: skip
def test_resize_matches_pillow_within_one_level(hw, size):
    rgb = _image(*hw)
    host = resize_to(rgb, size).astype(int)
    device = resize_tensor(_chw(rgb), size).permute(1, 2, 0).numpy().astype(int)
    assert device.shape == host.shape
    diff = np.abs(device - host)
    assert diff.max() <= 1 and diff.mean() < 0.2


def test_preprocess_tensors_matches_the_host_batch(config):
    images = [_image(90, 70, 1), _image(32, 32, 2)]
    for fmt, atol in (("uint8", 1), ("float", 1.01 / (255 * min(config.std)))):
        host = preprocess_batch(images, config, fmt)
        device = preprocess_tensors([_chw(x) for x in images], config, fmt).numpy()
        assert device.dtype == host.dtype and device.shape == host.shape
        np.testing.assert_allclose(device.astype(np.float64), host.astype(np.float64), atol=atol)
    exact = preprocess_tensors([_chw(images[1])], config, "float").numpy()  # no resize: exact
    np.testing.assert_allclose(exact, preprocess_batch(images[1:], config, "float"), atol=1e-6)


def test_to_rgb_uint8_conversions():
    gray = torch.tensor([[0.0, 0.5], [1.0, 0.25]])
    out = to_rgb_uint8(gray, "g", 100)
    assert out.dtype == torch.uint8 and out.shape == (3, 2, 2)
    np.testing.assert_array_equal(out[0].numpy(), [[0, 128], [255, 64]])  # round(v * 255)
    assert torch.equal(out[0], out[2])
    rgba = torch.arange(4 * 3 * 5, dtype=torch.uint8).reshape(4, 3, 5)
    assert torch.equal(to_rgb_uint8(rgba, "x", 100), rgba[:3])


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (torch.full((3, 4, 4), float("nan")), "NaN"),
        (torch.full((3, 4, 4), 2.0), r"\[0, 1\]"),
        (torch.zeros((2, 4, 4)), "channels-first"),
        (torch.zeros((3, 4, 4), dtype=torch.int32), "dtype"),
        (torch.zeros((3, 0, 4)), "zero size"),
        (torch.zeros((3, 20, 20), dtype=torch.uint8), "limit"),
    ],
)
def test_to_rgb_uint8_errors_name_the_input(tensor, message):
    with pytest.raises(InputError, match=message) as info:
        to_rgb_uint8(tensor, "<cam0 frame>", max_pixels=100)
    assert str(info.value).startswith("<cam0 frame>")


def test_stack_on_device_mixes_tensors_and_arrays():
    a, b = torch.ones((3, 2, 2)), np.zeros((3, 2, 2), np.float32)
    batch = stack_on_device([a, b], "cpu")
    assert batch.shape == (2, 3, 2, 2) and batch[0].sum() == 12 and batch[1].sum() == 0


def test_dlpack_inputs_are_read_channels_first_on_the_host():
    rgb = _image(20, 30, 3)
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(load_image(DLPackOnly(chw)), rgb)
    np.testing.assert_array_equal(load_image(DLPackOnly(_chw(rgb))), rgb)
    with pytest.raises(InputError, match="DLPackOnly"):
        load_image(DLPackOnly(np.zeros((5, 20, 30), np.uint8)))


@pytest.fixture(scope="module")
def forced_device_detector(tiny_bundle):
    """A CPU detector that treats CPU tensors as if they were on its GPU, so the whole device
    path (validation, resize, normalisation, batching, tiling) runs here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = Detector(tiny_bundle, device="cpu", batch_size=4)
        forced = Detector(tiny_bundle, device="cpu", batch_size=4, tiling="scale=0.5")
    forced._device_image = lambda image: image if isinstance(image, torch.Tensor) else None
    return plain, forced


def test_device_path_matches_the_host_path(forced_device_detector, monkeypatch):
    plain, forced = forced_device_detector
    images = [_image(48, 80, 4), _image(300, 260, 5)]  # the second is tiled
    host = [forced.detect(x) for x in images]
    assert np.abs(host[0].pixel_probs - plain.detect(images[0]).pixel_probs).max() == 0  # untiled
    monkeypatch.setattr("ipad_sdk.detector.load_pixels", _no_host_decode)
    device = forced.detect_batch([_chw(x) for x in images])
    for a, b in zip(host, device, strict=True):
        assert a.image_size == b.image_size and a.pixel_probs.shape == b.pixel_probs.shape
        np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), atol=0.02)
        np.testing.assert_allclose(a.pixel_probs, b.pixel_probs, atol=0.05)


def test_device_stream_reports_a_bad_tensor_and_goes_on(forced_device_detector):
    _, forced = forced_device_detector
    good = _chw(_image(40, 40, 6))
    bad = torch.full((3, 40, 40), float("nan"))
    out = list(forced.stream([good, bad, good], batch_size=2))
    assert [r.ok for r in out] == [True, False, True]
    assert "NaN" in str(out[1].error) and "torch tensor" in str(out[1].error)
    assert out[0].scores == out[2].scores


def _no_host_decode(*args, **kwargs):
    raise AssertionError("a device tensor went through the host decoder")
