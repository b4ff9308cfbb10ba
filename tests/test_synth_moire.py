"""Moire generator: shapes, determinism, mask honesty, the pattern's spectrum, screen detection.

Procedural scenes only (no files under ../shared), small sizes, a few seconds in all.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from train.synth.common import VISIBLE_DELTA, outside_mask_max_change
from train.synth.moire import WIDE_PERIODS, detect_screen, synthesize_moire
from train.synth.scenes import procedural_scene, ui_content

H, W = 96, 128


def _scene(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return procedural_scene(h, w, np.random.default_rng(1000 + seed))


@pytest.fixture(scope="module")
def samples() -> list[tuple[int, bool, object]]:
    """(seed, hard, sample) over enough seeds to cover both routes and placements."""
    out = []
    for seed in range(14):
        for hard in (False, True):
            content = ui_content(60, 80, np.random.default_rng(seed)) if seed % 2 else None
            out.append((seed, hard, synthesize_moire(_scene(seed), np.random.default_rng(seed),
                                                     hard=hard, content=content)))  # fmt: skip
    return out


def test_shapes_dtypes_label_params(samples) -> None:
    for _, _, s in samples:
        assert s.image.shape == (H, W, 3) and s.image.dtype == np.uint8
        assert s.reference.shape == (H, W, 3) and s.reference.dtype == np.uint8
        assert s.mask.shape == (H, W) and s.mask.dtype == bool
        assert s.label == "moire"
        json.dumps(s.params)
        assert s.params["route"] in ("display", "grating")
        assert s.params["placement"] in ("full_frame", "random", "detected")


def test_covers_routes_and_placements(samples) -> None:
    routes = {s.params["route"] for _, _, s in samples}
    placements = {s.params["placement"] for _, _, s in samples}
    assert routes == {"display", "grating"}
    assert {"full_frame", "random"} <= placements


def test_mask_is_honest_and_visible(samples) -> None:
    for seed, hard, s in samples:
        assert outside_mask_max_change(s) < VISIBLE_DELTA, (seed, hard)
        frac = s.mask.mean()
        assert frac >= 0.005, (seed, hard, frac)  # visible somewhere, hard cases included
        if s.params["placement"] != "full_frame":
            assert frac < 1.0


def test_mask_stays_on_the_screen(samples) -> None:
    for seed, hard, s in samples:
        if s.params["placement"] == "full_frame":
            continue
        quad = np.array(s.params["quad"])
        x0, y0 = np.floor(quad.min(axis=0)) - 6
        x1, y1 = np.ceil(quad.max(axis=0)) + 6
        ys, xs = np.nonzero(s.mask)
        assert xs.min() >= x0 and xs.max() <= x1, (seed, hard)
        assert ys.min() >= y0 and ys.max() <= y1, (seed, hard)
        # and outside that box the photo is untouched
        box = np.zeros((H, W), bool)
        box[max(0, int(y0)) : int(y1) + 1, max(0, int(x0)) : int(x1) + 1] = True
        assert np.array_equal(s.image[~box], s.reference[~box])


def test_hard_is_subtler_than_normal(samples) -> None:
    strength = {hard: [s.params["strength"] for _, h, s in samples if h == hard] for hard in (0, 1)}
    strength = {bool(k): v for k, v in strength.items()}
    assert np.mean(strength[True]) < np.mean(strength[False])


def test_deterministic() -> None:
    scene = _scene(3)
    a = synthesize_moire(scene, np.random.default_rng(7))
    b = synthesize_moire(scene, np.random.default_rng(7))
    c = synthesize_moire(scene, np.random.default_rng(8))
    assert a.image.tobytes() == b.image.tobytes()
    assert a.reference.tobytes() == b.reference.tobytes()
    assert np.array_equal(a.mask, b.mask) and a.params == b.params
    assert a.image.tobytes() != c.image.tobytes()


def _band_energy(x: np.ndarray) -> np.ndarray:
    """Per-pixel energy of a difference-of-Gaussians band pass (periods ~3-20 px)."""
    x = x.astype(np.float32)
    bp = ndimage.gaussian_filter(x, (0.7, 0.7, 0)) - ndimage.gaussian_filter(x, (3, 3, 0))
    return (bp**2).sum(axis=2)


def test_moire_adds_frequencies_absent_from_the_reference() -> None:
    """On a flat grey screen the reference stays flat and the image carries the beat pattern."""
    flat = np.full((40, 60, 3), 170, np.uint8)
    seen = set()
    for seed in range(12):
        s = synthesize_moire(_scene(seed), np.random.default_rng(seed), content=flat)
        seen.add(s.params["route"])
        diff = s.image.astype(np.int16) - s.reference.astype(np.int16)
        e_diff = _band_energy(diff)
        inside = ndimage.binary_erosion(s.mask, iterations=8)  # away from the screen's edges
        if not inside.any():
            continue
        outside = ~ndimage.binary_dilation(s.mask, iterations=8)
        if outside.sum() > 100:  # not a full-frame screen
            assert e_diff[inside].mean() > 25 * (e_diff[outside].mean() + 0.1), seed
        # the reference's own screen area has (almost) no band-pass energy; the image has
        e_ref = _band_energy(s.reference)[inside].mean()
        e_img = _band_energy(s.image)[inside].mean()
        assert e_img > 10 * e_ref + 1, (seed, e_img, e_ref)
    assert seen == {"display", "grating"}


def test_detects_a_bright_rectangle() -> None:
    scene = _scene(5, 120, 160).copy()
    scene[70:100, 40:90] = (236, 238, 242)  # a lit screen-like panel on the ground
    found = detect_screen(scene)
    assert found is not None
    quad = np.array(found["corners"])
    assert np.allclose(quad.min(axis=0), (40, 70), atol=3)
    assert np.allclose(quad.max(axis=0), (90, 100), atol=3)
    # and the generator puts the display there when the placement is not full-frame
    placed = [synthesize_moire(scene, np.random.default_rng(seed)) for seed in range(6)]
    detected = [s for s in placed if s.params["placement"] == "detected"]
    assert detected and all(s.params["placement"] != "random" for s in placed)
    for s in detected:
        assert np.allclose(np.array(s.params["quad"]), quad, atol=0.5)
        assert s.mask[72:98, 42:88].mean() > 0.5
        assert not s.mask[:, :30].any()


def test_flat_featureless_scene_has_no_detection() -> None:
    grey = np.full((80, 100, 3), 128, np.uint8)
    assert detect_screen(grey) is None


def _downscaled_rms_share(s) -> float:
    """RMS of image - reference over the mask after a 4x box downscale (the model's view of a
    1,024 px photo), as a share of its full-resolution RMS."""
    d = s.image.astype(np.float32) - s.reference.astype(np.float32)
    h, w = d.shape[0] // 4 * 4, d.shape[1] // 4 * 4
    small = d[:h, :w].reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3))
    inside = s.mask[:h, :w].reshape(h // 4, 4, w // 4, 4).all(axis=(1, 3))
    return float(np.sqrt((small[inside] ** 2).mean() / (d[s.mask] ** 2).mean()))


def test_wide_bands_survive_the_downscale_and_are_masked() -> None:
    """``wide_bands=1``: every item is wide grating bands (periods in WIDE_PERIODS), honestly
    masked, and keeps over 85 % of its contrast through a 4x downscale, where the fine display
    moire of the same scenes keeps less on average."""
    kept = {True: [], False: []}
    for seed in range(6):
        for wide in (1.0, 0.0):
            s = synthesize_moire(_scene(seed, 192, 256), np.random.default_rng(seed),
                                 wide_bands=wide, full_frame=1.0)  # fmt: skip
            assert outside_mask_max_change(s) < VISIBLE_DELTA, (seed, wide)
            assert s.mask.mean() > 0.5, (seed, wide)
            if wide:
                assert s.params["bands"] == "wide" and s.params["route"] == "grating"
                assert WIDE_PERIODS[0] <= s.params["grating"]["beat_period"] <= WIDE_PERIODS[1]
            else:
                assert "bands" not in s.params
            if s.params["route"] == "display" or wide:
                kept[bool(wide)].append(_downscaled_rms_share(s))
    assert min(kept[True]) > 0.85, kept
    assert kept[False] and np.mean(kept[False]) < np.mean(kept[True]) - 0.1, kept
