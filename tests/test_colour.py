"""Colour management (embedded ICC profiles -> sRGB) and 16-bit precision through the resize,
checked against textbook conversions computed here (tests/icc_profiles.py), not against the SDK."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from ipad_sdk.colour import quantize8
from ipad_sdk.io import load_image, load_pixels
from ipad_sdk.preprocess import preprocess_batch, resize_to
from tests.icc_profiles import ADOBE_RGB, DISPLAY_P3, PROPHOTO, SRGB, make_profile
from tests.icc_profiles import reference_to_srgb as reference

SPACES = [DISPLAY_P3, ADOBE_RGB, PROPHOTO]


def _colours(dtype: type, seed: int = 0) -> np.ndarray:
    """Random colours plus the saturated primaries (out of sRGB's gamut in the wide spaces)."""
    top = np.iinfo(dtype).max
    pixels = np.random.default_rng(seed).integers(0, top + 1, (16, 16, 3)).astype(dtype)
    pixels[0, :3] = np.eye(3, dtype=dtype) * top
    return pixels


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png16_with_profile(pixels: np.ndarray, icc: bytes) -> bytes:
    """A 16-bit RGB PNG (Sub filter on every row) with an iCCP chunk."""
    h, w = pixels.shape[:2]
    rows = pixels.astype(">u2").view(np.uint8).reshape(h, w * 6).astype(np.int64)
    sub = (rows - np.pad(rows, ((0, 0), (6, 0)))[:, :-6]) % 256
    raw = b"".join(b"\x01" + bytes(row.astype(np.uint8)) for row in sub)
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"iCCP", b"test\0\0" + zlib.compress(icc))
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def _png8_with_profile(pixels: np.ndarray, icc: bytes) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", icc_profile=icc)
    return buf.getvalue()


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_eight_bit_profile_is_converted_to_srgb(space):
    pixels = _colours(np.uint8)
    expected = np.round(reference(pixels / 255.0, space) * 255.0)
    out = load_image(_png8_with_profile(pixels, make_profile(space)))
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert np.abs(out.astype(int) - pixels).max() > 20  # the conversion did something


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_sixteen_bit_profile_is_converted_at_full_precision(space):
    pixels = _colours(np.uint16)
    expected = np.round(reference(pixels / 65535.0, space) * 65535.0)
    out = load_pixels(_png16_with_profile(pixels, make_profile(space)))
    assert out.dtype == np.uint16
    assert np.abs(out.astype(int) - expected).max() <= 32  # an eighth of one 8-bit level


def test_a_pil_image_with_a_profile_is_converted():
    pixels = _colours(np.uint8, seed=3)
    image = Image.fromarray(pixels)
    image.info["icc_profile"] = make_profile(DISPLAY_P3)
    expected = np.round(reference(pixels / 255.0, DISPLAY_P3) * 255.0)
    assert np.abs(load_image(image).astype(int) - expected).max() <= 1


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_an_srgb_profile_leaves_the_pixels_alone(dtype):
    pixels = _colours(dtype, seed=1)
    encode = _png8_with_profile if dtype == np.uint8 else _png16_with_profile
    np.testing.assert_array_equal(load_pixels(encode(pixels, make_profile(SRGB))), pixels)


def test_an_unreadable_profile_keeps_the_stored_pixels():
    pixels = _colours(np.uint8, seed=2)
    broken = make_profile(DISPLAY_P3)[:140]  # header and a tag table pointing past the end
    np.testing.assert_array_equal(load_image(_png8_with_profile(pixels, broken)), pixels)


def _columns(width: int, low: int, high: int) -> np.ndarray:
    row = np.where(np.arange(width) % 2 == 0, low, high).astype(np.uint16)
    return np.repeat(np.repeat(row[None, :, None], 8, axis=0), 3, axis=2)


def test_sixteen_bit_is_quantised_once_after_the_resize(config):
    """Columns alternating 0 and 770 halve to their mean 385 inside the image: round(385 / 257)
    = 1. Quantising first (0 and 3 in 8 bits) would give round(1.5) = 2."""
    image = _columns(2 * config.image_size, 0, 770)
    image = np.repeat(image[:1], 2 * config.image_size, axis=0)
    batch = preprocess_batch([image], config, "uint8")[0]
    interior = batch[:, 4:-4, 4:-4]
    assert (interior == 1).all()
    eight_bit_first = resize_to(quantize8(image), (config.image_size, config.image_size))
    assert (eight_bit_first[4:-4, 4:-4] == 2).all()  # what the fix changes


def test_detector_keeps_sixteen_bits_until_after_the_resize(detector):
    size = detector.config.image_size
    image = _columns(2 * size, 0, 770)
    image = np.repeat(image[:1], 3 * size, axis=0)
    resized_once = quantize8(resize_to(image, (size, size)))  # already at the network size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, want = detector.detect(image), detector.detect(resized_once)
    assert got.scores == want.scores


def _png16_gray_alpha(gray: np.ndarray, alpha: np.ndarray) -> bytes:
    """A 16-bit gray+alpha PNG (colour type 4, 4 bytes a pixel), encoded here: rows filtered Sub
    (each byte minus the one 4 bytes before) and Up (minus the byte above) in turn, so that a
    decoder must know the pixel size."""
    h, w = gray.shape
    rows = np.stack([gray, alpha], -1).astype(">u2").view(np.uint8).reshape(h, w * 4)
    rows = rows.astype(np.int64)
    left = np.pad(rows, ((0, 0), (4, 0)))[:, :-4]
    above = np.pad(rows, ((1, 0), (0, 0)))[:-1]
    raw = b"".join(
        (b"\x01" + bytes(((rows[y] - left[y]) % 256).astype(np.uint8)))
        if y % 2 == 0
        else (b"\x02" + bytes(((rows[y] - above[y]) % 256).astype(np.uint8)))
        for y in range(h)
    )
    header = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def test_sixteen_bit_gray_alpha_png_keeps_both_bytes():
    rng = np.random.default_rng(3)
    gray, alpha = (rng.integers(0, 65536, (9, 13)).astype(np.uint16) for _ in range(2))
    gray[0, :3] = [0x02FF, 0x8080, 0xFFFF]  # the high byte alone: 2, 128, 255
    data = _png16_gray_alpha(gray, alpha)
    pixels = load_pixels(data)
    assert pixels.dtype == np.uint16 and pixels.shape == (9, 13, 3)
    for c in range(3):
        np.testing.assert_array_equal(pixels[:, :, c], gray)  # alpha dropped, gray repeated
    eight = load_image(data)
    want = np.floor(gray.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)  # round(v / 257)
    np.testing.assert_array_equal(eight, np.repeat(want[:, :, None], 3, axis=2))
    assert eight[0, :3, 0].tolist() == [3, 128, 255]


def test_sixteen_bit_gray_alpha_is_quantised_once_after_the_resize(config):
    """As for 16-bit RGB: columns of 0 and 770 halve to 385 -> round(385 / 257) = 1 (their high
    bytes, 0 and 3, would give 2)."""
    size = config.image_size
    gray = np.repeat(np.where(np.arange(2 * size) % 2 == 0, 0, 770)[None], 2 * size, axis=0)
    data = _png16_gray_alpha(gray.astype(np.uint16), np.full(gray.shape, 65535, np.uint16))
    batch = preprocess_batch([load_pixels(data)], config, "uint8")[0]
    assert (batch[:, 4:-4, 4:-4] == 1).all()
