"""HEIC/HEIF through pillow-heif (extra ``heif``) and AVIF through Pillow: files written here."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image, features

from ipad_sdk.errors import BackendUnavailable, InputError
from ipad_sdk.io import load_image, load_pixels


def _smooth(h: int = 32, w: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 5, yy * 7, 128 + 0 * xx], axis=-1).astype(np.uint8)


def _heic(pixels: np.ndarray, orientation: int = 1) -> bytes:
    pillow_heif = pytest.importorskip("pillow_heif", reason="the 'heif' extra is not installed")
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    mode = "RGB;16" if pixels.dtype == np.uint16 else "RGB"
    heif = pillow_heif.from_bytes(mode, (pixels.shape[1], pixels.shape[0]), pixels.tobytes())
    heif.save(buf, format="HEIF", quality=95, chroma=444, exif=exif.tobytes())
    return buf.getvalue()


def test_heic_decodes_close_to_what_was_written():
    pixels = _smooth()
    out = load_image(_heic(pixels))
    assert out.shape == pixels.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - pixels).mean() < 2.0


@pytest.mark.parametrize("orientation, turn", [(6, -1), (8, 1), (3, 2)])
def test_heic_orientation_is_applied(orientation, turn):
    pixels = _smooth()
    out = load_image(_heic(pixels, orientation))
    upright = np.rot90(pixels, turn)
    assert out.shape == upright.shape
    assert np.abs(out.astype(int) - upright).mean() < 2.0


def test_ten_bit_heic_keeps_its_precision():
    codes = (np.arange(32 * 48).reshape(32, 48) % 1024).astype(np.uint16)
    pixels = np.stack([codes, codes[::-1], codes[:, ::-1]], axis=-1)
    out = load_pixels(_heic(pixels << 6))  # pillow-heif takes 10-bit codes in the top bits
    assert out.dtype == np.uint16 and out.shape == pixels.shape
    expected = pixels * (65535 / 1023)
    assert np.abs(out - expected).mean() < 0.01 * 65535
    assert len(np.unique(out)) > 256  # more levels than 8 bits hold


def test_truncated_and_oversized_heic_are_input_errors():
    data = _heic(_smooth())
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])
    with pytest.raises(InputError, match="decompression bomb"):
        load_image(data, max_pixels=100)


def test_missing_extra_names_it(monkeypatch):
    data = _heic(_smooth())
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import pillow_heif -> ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install 'ipad-sdk\[heif\]'"):
        load_image(data)


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow build has no AVIF codec")
def test_avif_through_pillow_with_orientation():
    pixels = _smooth()
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="AVIF", quality=95, exif=exif.tobytes())
    out = load_image(buf.getvalue())
    assert out.shape == (48, 32, 3)
    assert np.abs(out.astype(int) - np.rot90(pixels, -1)).mean() < 3.0
