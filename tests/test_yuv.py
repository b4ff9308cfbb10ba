"""YUV frames (NV12, I420, YUYV; BT.601/BT.709; limited/full range) against a per-pixel textbook
conversion written here with the published constants, pixel by pixel."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ipad_sdk.errors import InputError
from ipad_sdk.yuv import yuv_to_rgb

#: Published conversion constants: R = a*(Y - y0) + rv*(V - 128), G = a*(Y - y0) - gu*(U - 128)
#: - gv*(V - 128), B = a*(Y - y0) + bu*(U - 128) (Rec. 601 / Rec. 709, 8-bit).
CONSTANTS = {
    ("bt601", "limited"): (16, 1.164384, 1.596027, 0.391762, 0.812968, 2.017232),
    ("bt601", "full"): (0, 1.0, 1.402, 0.344136, 0.714136, 1.772),
    ("bt709", "limited"): (16, 1.164384, 1.792741, 0.213249, 0.532909, 2.112402),
    ("bt709", "full"): (0, 1.0, 1.5748, 0.187324, 0.468124, 1.8556),
}
W, H = 6, 4


def _reference(y, u, v, matrix, yuv_range):
    """Per-pixel RGB from full-resolution Y, U, V lists of lists."""
    y0, a, rv, gu, gv, bu = CONSTANTS[(matrix, yuv_range)]
    out = np.zeros((H, W, 3))
    for row in range(H):
        for col in range(W):
            luma = a * (int(y[row][col]) - y0)
            cb, cr = int(u[row][col]) - 128, int(v[row][col]) - 128
            out[row, col] = (luma + rv * cr, luma - gu * cb - gv * cr, luma + bu * cb)
    return np.clip(np.round(out), 0, 255)


def _frame(seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 256, (H, W)).astype(np.uint8)
    u, v = (rng.integers(0, 256, (H // 2, W // 2)).astype(np.uint8) for _ in range(2))
    return y, u, v


def _pack(fmt: str, y, u, v) -> tuple[np.ndarray, list, list]:
    """The buffer and the full-resolution chroma each pixel uses (plain index arithmetic)."""
    if fmt == "yuyv":  # 4:2:2: one chroma pair per two pixels of a row: take row 2r of u, v
        uu, vv = np.repeat(u, 2, axis=0), np.repeat(v, 2, axis=0)
        words = [
            [y[r][2 * i], uu[r][i], y[r][2 * i + 1], vv[r][i]]
            for r in range(H)
            for i in range(W // 2)
        ]
        buffer = np.array(words, np.uint8).reshape(-1)
        return (
            buffer,
            [[uu[r][c // 2] for c in range(W)] for r in range(H)],
            [[vv[r][c // 2] for c in range(W)] for r in range(H)],
        )
    if fmt == "nv12":
        chroma = np.stack([u, v], axis=-1).reshape(-1)
    else:
        chroma = np.concatenate([u.reshape(-1), v.reshape(-1)])
    buffer = np.concatenate([y.reshape(-1), chroma])
    full_u = [[u[r // 2][c // 2] for c in range(W)] for r in range(H)]
    full_v = [[v[r // 2][c // 2] for c in range(W)] for r in range(H)]
    return buffer, full_u, full_v


@pytest.mark.parametrize("fmt", ["nv12", "i420", "yuyv"])
@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("yuv_range", ["limited", "full"])
def test_conversion_matches_the_per_pixel_formula(fmt, matrix, yuv_range):
    y, u, v = _frame(seed=len(fmt) + len(matrix) + len(yuv_range))
    buffer, full_u, full_v = _pack(fmt, y, u, v)
    expected = _reference(y.tolist(), full_u, full_v, matrix, yuv_range)
    got = yuv_to_rgb(buffer, fmt, (W, H), matrix, yuv_range)
    assert got.shape == (H, W, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - expected).max() <= 1  # the constants are rounded


def test_known_values():
    """Limited-range black, white and 75 % red (SMPTE bars, BT.601) land where they should."""
    y = np.array([[16, 235], [81, 81]], np.uint8)
    u = np.array([[128]], np.uint8)
    v = np.array([[128]], np.uint8)
    got = yuv_to_rgb(np.concatenate([y.reshape(-1), u[0], v[0]]), "i420", (2, 2))
    assert got[0, 0].tolist() == [0, 0, 0] and got[0, 1].tolist() == [255, 255, 255]
    assert got[1, 0].tolist() == [76, 76, 76]  # (81 - 16) / 219 * 255 = 75.7


@pytest.mark.parametrize(
    "fmt, size, nbytes, word",
    [
        ("nv12", (6, 4), 35, "holds 36 bytes, the buffer has 35"),
        ("i420", (6, 4), 37, "holds 36 bytes"),
        ("yuyv", (6, 4), 47, "holds 48 bytes"),
        ("nv12", (5, 4), 30, "even size"),
        ("yuyv", (5, 4), 40, "even size"),
        ("nv12", (0, 4), 0, "even size"),
        ("rgb24", (6, 4), 72, "pixel_format must be"),
    ],
)
def test_bad_buffers_are_input_errors(fmt, size, nbytes, word):
    with pytest.raises(InputError, match=word):
        yuv_to_rgb(np.zeros(nbytes, np.uint8), fmt, size)


def test_bad_dtype_matrix_and_range_are_input_errors():
    with pytest.raises(InputError, match="uint8"):
        yuv_to_rgb(np.zeros(36, np.uint16), "nv12", (6, 4))
    with pytest.raises(InputError, match="matrix"):
        yuv_to_rgb(np.zeros(36, np.uint8), "nv12", (6, 4), matrix="bt2020")
    with pytest.raises(InputError, match="yuv_range"):
        yuv_to_rgb(np.zeros(36, np.uint8), "nv12", (6, 4), yuv_range="tv")


def test_detector_detects_a_yuv_frame_as_its_rgb(detector):
    y, u, v = (np.repeat(np.repeat(p, 8, 0), 8, 1) for p in _frame(seed=5))
    h, w = y.shape
    buffer = np.concatenate([y.reshape(-1), np.stack([u, v], -1).reshape(-1)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = detector.detect(buffer, pixel_format="nv12", size=(w, h), matrix="bt709")
        want = detector.detect(yuv_to_rgb(buffer, "nv12", (w, h), "bt709"))
        with pytest.raises(InputError, match="needs size"):
            detector.detect(buffer, pixel_format="nv12")
    assert got.scores == want.scores and got.mask.shape == (h, w)


# -- torch tensors: the device conversion (run here on CPU tensors; CUDA in tests/test_gpu.py) ---
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _noise_frame(fmt: str, w: int, h: int, seed: int) -> np.ndarray:
    from ipad_sdk.yuv import frame_bytes

    return np.random.default_rng(seed).integers(0, 256, frame_bytes(fmt, w, h)).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["nv12", "i420", "yuyv"])
@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("yuv_range", ["limited", "full"])
def test_tensor_conversion_matches_the_formula_and_the_host(torch, fmt, matrix, yuv_range):
    from ipad_sdk.device_preprocess import yuv_to_rgb_tensor

    y, u, v = _frame(seed=len(fmt) * len(matrix) + len(yuv_range))
    buffer, full_u, full_v = _pack(fmt, y, u, v)
    expected = _reference(y.tolist(), full_u, full_v, matrix, yuv_range)
    got = yuv_to_rgb_tensor(torch.from_numpy(buffer), fmt, (W, H), matrix, yuv_range)
    assert got.dtype == torch.uint8 and got.shape == (3, H, W)  # channels first, like images
    got = got.permute(1, 2, 0).numpy()
    assert np.abs(got.astype(int) - expected).max() <= 1  # the published constants are rounded
    np.testing.assert_array_equal(got, yuv_to_rgb(buffer, fmt, (W, H), matrix, yuv_range))
    big = _noise_frame(fmt, 96, 64, seed=7)  # every code value, many times over
    rows = big.reshape(-1, 96)  # a 2-D buffer: any shape holding the bytes in order
    device = yuv_to_rgb_tensor(torch.from_numpy(rows), fmt, (96, 64), matrix, yuv_range)
    host = yuv_to_rgb(big, fmt, (96, 64), matrix, yuv_range)
    np.testing.assert_array_equal(device.permute(1, 2, 0).numpy(), host)


def test_tensor_conversion_reads_a_strided_buffer_in_order(torch):
    from ipad_sdk.device_preprocess import yuv_to_rgb_tensor

    big = _noise_frame("nv12", 32, 16, seed=2)
    wide = torch.zeros((big.size, 2), dtype=torch.uint8)
    wide[:, 0] = torch.from_numpy(big)
    strided = wide[:, 0]  # every other byte of a larger buffer: not contiguous
    assert not strided.is_contiguous()
    got = yuv_to_rgb_tensor(strided, "nv12", (32, 16), "bt709", "full")
    want = yuv_to_rgb(big, "nv12", (32, 16), "bt709", "full")
    np.testing.assert_array_equal(got.permute(1, 2, 0).numpy(), want)


@pytest.mark.parametrize(
    "make, fmt, size, word",
    [
        (lambda t: t.zeros(36, dtype=t.int16), "nv12", (6, 4), "must be uint8"),
        (lambda t: t.zeros(35, dtype=t.uint8), "nv12", (6, 4), "holds 36 bytes, the buffer has 35"),
        (lambda t: t.zeros(40, dtype=t.uint8), "yuyv", (5, 4), "even size"),
        (lambda t: t.zeros(36, dtype=t.uint8), "rgb24", (6, 4), "pixel_format must be"),
        (lambda t: t.zeros(36, dtype=t.uint8), "nv12", "6x4", "size must be"),
        (lambda t: t.zeros(150, dtype=t.uint8), "i420", (10, 10), "above the limit"),
    ],
)
def test_bad_tensor_frames_are_input_errors(torch, make, fmt, size, word):
    from ipad_sdk.device_preprocess import yuv_to_rgb_tensor

    with pytest.raises(InputError, match=word) as info:
        yuv_to_rgb_tensor(make(torch), fmt, size, name="<cam0 nv12>", max_pixels=99)
    assert str(info.value).startswith("<cam0 nv12>: ")
    with pytest.raises(InputError, match="matrix"):
        yuv_to_rgb_tensor(torch.zeros(36, dtype=torch.uint8), "nv12", (6, 4), matrix="bt2020")


@pytest.fixture(scope="module")
def yuv_detectors(torch, tiny_bundle):
    """A CPU detector, and one that treats CPU tensors as if they were on its GPU (the device path
    of tests/test_device_input.py)."""
    from ipad_sdk import Detector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = Detector(tiny_bundle, device="cpu")
        forced = Detector(tiny_bundle, device="cpu")
    forced._device_image = lambda image: image if isinstance(image, torch.Tensor) else None
    return plain, forced


def _smooth_nv12(w: int, h: int) -> np.ndarray:
    """A textured but smooth NV12 frame (the device resize stays within a level of Pillow's)."""
    yy, xx = np.mgrid[0:h, 0:w]
    luma = 16 + (xx * 3 + yy * 2) % 220
    cy, cx = np.mgrid[0 : h // 2, 0 : w // 2]
    uv = np.stack([64 + (cx * 2) % 128, 64 + (cy * 3) % 128], axis=-1)
    return np.concatenate([luma.reshape(-1), uv.reshape(-1)]).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["nv12", "i420", "yuyv"])
def test_a_device_tensor_frame_is_converted_on_the_device(yuv_detectors, fmt, torch, monkeypatch):
    plain, forced = yuv_detectors
    w, h = 120, 80
    buffer = _smooth_nv12(w, h)
    if fmt != "nv12":  # the same pixels in the other layouts
        y, uv = buffer[: w * h].reshape(h, w), buffer[w * h :].reshape(h // 2, w // 2, 2)
        if fmt == "i420":
            buffer = np.concatenate([y.reshape(-1), uv[..., 0].reshape(-1), uv[..., 1].reshape(-1)])
        else:
            uv422 = np.repeat(uv, 2, axis=0)  # each chroma row for two luma rows
            buffer = np.stack([y[:, 0::2], uv422[..., 0], y[:, 1::2], uv422[..., 1]], -1)
            buffer = buffer.reshape(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        host = plain.detect(buffer, pixel_format=fmt, size=(w, h), matrix="bt709")

        def no_host(*args, **kwargs):
            raise AssertionError("a device frame went through a host conversion")

        monkeypatch.setattr("ipad_sdk.yuv.yuv_to_rgb", no_host)
        monkeypatch.setattr("ipad_sdk.detector.load_pixels", no_host)
        device = forced.detect(torch.from_numpy(buffer), pixel_format=fmt, size=(w, h),
                               matrix="bt709")  # fmt: skip
        with pytest.raises(InputError, match="holds"):
            forced.detect(torch.from_numpy(buffer[:-2]), pixel_format=fmt, size=(w, h))
    assert device.image_size == host.image_size == (h, w)
    np.testing.assert_allclose(list(device.scores.values()), list(host.scores.values()), atol=0.02)
    np.testing.assert_allclose(device.pixel_probs, host.pixel_probs, atol=0.05)


def test_a_host_tensor_frame_is_converted_on_the_host(detector, torch):
    buffer = _smooth_nv12(64, 48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = detector.detect(torch.from_numpy(buffer), pixel_format="nv12", size=(64, 48))
        want = detector.detect(yuv_to_rgb(buffer, "nv12", (64, 48)))
    assert got.scores == want.scores
