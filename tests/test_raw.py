"""Camera RAW/DNG through rawpy (extra ``raw``) on a minimal DNG that tifffile writes here: a flat
RGGB mosaic whose red and blue sites read half the green, with AsShotNeutral (0.5, 1, 0.5)."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from ipad_sdk.errors import BackendUnavailable, InputError
from ipad_sdk.io import load_image, load_pixels

H, W, WHITE = 64, 96, 4095


def _dng(neutral: tuple[int, int, int, int, int, int] = (1, 2, 1, 1, 1, 2)) -> bytes:
    """A DNG 1.4 CFA file: green sites at 1600, red and blue at 800, identity colour matrix."""
    tifffile = pytest.importorskip("tifffile")
    cfa = np.full((H, W), 1600, np.uint16)
    cfa[0::2, 0::2] = 800  # R
    cfa[1::2, 1::2] = 800  # B
    identity = (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1)
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern RGGB
        (50721, "2i", 9, identity, True),  # ColorMatrix1
        (50728, "2I", 3, neutral, True),  # AsShotNeutral
        (50717, "H", 1, WHITE, True),  # WhiteLevel
        (271, "s", 0, "ipad-sdk test", True),  # Make
        (50708, "s", 0, "ipad-sdk test camera", True),  # UniqueCameraModel
    ]
    buf = io.BytesIO()
    tifffile.imwrite(buf, cfa, photometric=32803, subfiletype=0, extratags=tags)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _rawpy():
    pytest.importorskip("rawpy", reason="the 'raw' extra is not installed")


def test_camera_white_balance_makes_the_flat_mosaic_gray():
    out = load_pixels(_dng())
    assert out.shape == (H, W, 3) and out.dtype == np.uint16
    centre = out[8:-8, 8:-8].reshape(-1, 3).mean(axis=0)
    assert np.ptp(centre) < 0.02 * centre.mean()  # neutral: the camera's WB was applied


def test_a_different_as_shot_neutral_changes_the_colour():
    """The same mosaic with a unit AsShotNeutral stays green: the WB comes from the file."""
    centre = load_pixels(_dng((1, 1, 1, 1, 1, 1)))[8:-8, 8:-8].reshape(-1, 3).mean(axis=0)
    assert centre[1] > 1.2 * max(centre[0], centre[2])


def test_a_dng_path_and_its_bytes_decode_alike(tmp_path):
    path = tmp_path / "shot.dng"
    path.write_bytes(_dng())
    np.testing.assert_array_equal(load_image(path), load_image(_dng()))


def test_max_pixels_and_damage_are_input_errors():
    data = _dng()
    with pytest.raises(InputError, match="decompression bomb"):
        load_image(data, max_pixels=H * W - 1)
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_image(data[: len(data) // 3])


def test_missing_extra_names_it(monkeypatch):
    data = _dng()
    monkeypatch.setitem(sys.modules, "rawpy", None)
    with pytest.raises(BackendUnavailable, match=r"pip install 'ipad-sdk\[raw\]'"):
        load_image(data)
