"""Tests of :mod:`ipad_sdk.preprocess` against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from ipad_sdk.metadata import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from ipad_sdk.preprocess import normalize, preprocess, preprocess_batch, resize_rgb


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _hand_normalize(rgb: np.ndarray, mean, std) -> np.ndarray:
    """(x / 255 - mean) / std per channel, channels first, in float64, one value at a time."""
    h, w, _ = rgb.shape
    out = np.empty((3, h, w), dtype=np.float64)
    for c in range(3):
        for y in range(h):
            for x in range(w):
                out[c, y, x] = (int(rgb[y, x, c]) / 255.0 - mean[c]) / std[c]
    return out


def _every_byte_value() -> np.ndarray:
    """16x16x3: every uint8 value in every channel, in a different order per channel."""
    v = np.arange(256, dtype=np.uint8).reshape(16, 16)
    return np.stack([v, v[::-1], v.T], axis=-1)


MEAN_STD = [
    (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
    ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ((0.0, 0.25, 1.0), (1.0, 0.125, 2.0)),
]


@pytest.mark.parametrize(("mean", "std"), MEAN_STD, ids=["clip", "half", "odd"])
@pytest.mark.parametrize(
    "rgb", [_every_byte_value(), _image(5, 9, seed=1)], ids=["all-values", "random-5x9"]
)
def test_normalize_matches_hand_computation(rgb, mean, std):
    out = normalize(rgb, mean, std)
    assert out.dtype == np.float32
    assert out.shape == (3, *rgb.shape[:2])
    np.testing.assert_allclose(out, _hand_normalize(rgb, mean, std), rtol=0, atol=1e-6)


def test_normalize_channel_order_and_known_values():
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0, 255, 51  # R=0, G=1.0, B=0.2
    out = normalize(rgb, (0.5, 0.5, 0.0), (0.5, 0.25, 0.1))
    np.testing.assert_allclose(out[0], -1.0, atol=1e-6)  # (0 - .5) / .5
    np.testing.assert_allclose(out[1], 2.0, atol=1e-6)  # (1 - .5) / .25
    np.testing.assert_allclose(out[2], 2.0, atol=1e-6)  # (.2 - 0) / .1


def test_normalize_does_not_modify_input():
    rgb = _image(4, 4, seed=2)
    before = rgb.copy()
    normalize(rgb, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    np.testing.assert_array_equal(rgb, before)


@pytest.mark.parametrize("hw", [(48, 80), (10, 20), (100, 7), (1, 1), (31, 33), (64, 64)])
@pytest.mark.parametrize("size", [32, 16])
def test_resize_rgb_shape(hw, size):
    out = resize_rgb(_image(*hw, seed=3), size)
    assert out.shape == (size, size, 3)
    assert out.dtype == np.uint8


@pytest.mark.parametrize("size", [1, 16, 32])
def test_resize_rgb_already_at_size_is_unchanged(size):
    rgb = _image(size, size, seed=4)
    before = rgb.copy()
    out = resize_rgb(rgb, size)
    assert out is rgb
    np.testing.assert_array_equal(out, before)


@pytest.mark.parametrize("color", [(0, 0, 0), (255, 255, 255), (17, 200, 99), (1, 254, 128)])
@pytest.mark.parametrize("hw", [(48, 80), (7, 5), (1, 1), (200, 3)])
def test_resize_rgb_constant_colour_stays_constant(hw, color):
    rgb = np.empty((*hw, 3), dtype=np.uint8)
    rgb[...] = color
    out = resize_rgb(rgb, 32)
    expected = np.empty((32, 32, 3), dtype=np.uint8)
    expected[...] = color
    np.testing.assert_array_equal(out, expected)


def test_resize_rgb_is_antialiased_when_shrinking():
    """A 1-pixel 0/255 checkerboard shrunk 8x averages to mid-grey (no aliasing to 0 or 255)."""
    yy, xx = np.mgrid[0:256, 0:256]
    board = (((yy + xx) % 2) * 255).astype(np.uint8)
    out = resize_rgb(np.stack([board] * 3, axis=-1), 32).astype(int)
    assert np.abs(out - 127.5).max() <= 3


def test_resize_rgb_keeps_left_right_and_top_bottom():
    rgb = np.zeros((40, 60, 3), dtype=np.uint8)
    rgb[:, 30:, 0] = 255  # right half red
    rgb[20:, :, 2] = 255  # bottom half blue
    out = resize_rgb(rgb, 32)
    assert out[:, :12, 0].max() == 0 and out[:, 20:, 0].min() == 255
    assert out[:12, :, 2].max() == 0 and out[20:, :, 2].min() == 255
    assert out[..., 1].max() == 0


def test_preprocess_is_normalize_of_resize(config):
    rgb = _image(48, 80, seed=5)
    out = preprocess(rgb, config)
    assert out.shape == (3, 32, 32)
    assert out.dtype == np.float32
    expected = _hand_normalize(resize_rgb(rgb, 32), config.mean, config.std)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


def test_preprocess_constant_image_is_constant_per_channel(config):
    rgb = np.empty((20, 30, 3), dtype=np.uint8)
    rgb[...] = (10, 128, 250)
    out = preprocess(rgb, config)
    for c, v in enumerate((10, 128, 250)):
        np.testing.assert_allclose(
            out[c], (v / 255 - config.mean[c]) / config.std[c], rtol=0, atol=1e-6
        )


@pytest.mark.parametrize("sizes", [[(48, 80)], [(48, 80), (32, 32), (5, 100)], [(32, 32)] * 4])
def test_preprocess_batch_equals_stacked_preprocess(config, sizes):
    images = [_image(h, w, seed=10 + i) for i, (h, w) in enumerate(sizes)]
    batch = preprocess_batch(images, config)
    assert batch.shape == (len(images), 3, 32, 32)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, np.stack([preprocess(im, config) for im in images]))


def test_preprocess_batch_follows_config_size_and_normalisation(config):
    other = config.replace(
        image_size=48,
        clip_config={**config.clip_config, "vision_cfg": {**config.vision_cfg, "image_size": 48}},
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )
    images = [_image(20, 30, seed=20), _image(48, 48, seed=21)]
    batch = preprocess_batch(images, other)
    assert batch.shape == (2, 3, 48, 48)
    np.testing.assert_allclose(
        batch[1], _hand_normalize(images[1], other.mean, other.std), rtol=0, atol=1e-6
    )
