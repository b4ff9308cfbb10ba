"""Lens-flare synthesis: shapes, determinism, honest masks, additivity, source handling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from train.synth.common import VISIBLE_DELTA, change_delta, outside_mask_max_change
from train.synth.flare import synthesize_flare
from train.synth.scenes import procedural_scene

H, W = 96, 128


def _scene(seed: int = 0) -> np.ndarray:
    return procedural_scene(H, W, np.random.default_rng(seed))


def _pattern() -> np.ndarray:
    """A small synthetic flare render on black: a bright core, a bluish halo and 6 rays."""
    yy, xx = np.mgrid[0:60, 0:80].astype(np.float32)
    dx, dy = xx - 40, yy - 30
    r = np.hypot(dx, dy)
    phi = np.arctan2(dy, dx)
    rays = np.exp(-((r * np.sin(3 * phi)) ** 2) / 2) * np.exp(-r / 20)
    core = np.exp(-((r / 4) ** 2)) + 0.3 / (1 + (r / 6) ** 2) + rays
    img = np.stack([core * 0.8, core * 0.9, core], axis=-1)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def _samples(hard: bool, patterns: list[np.ndarray] | None, seeds: range):
    scene = _scene(1)
    return [
        synthesize_flare(scene, np.random.default_rng(s), hard=hard, patterns=patterns)
        for s in seeds
    ]


def test_shapes_types_and_reference_unchanged() -> None:
    scene = _scene()
    before = scene.copy()
    s = synthesize_flare(scene, np.random.default_rng(0))
    assert s.image.shape == scene.shape and s.image.dtype == np.uint8
    assert s.mask.shape == (H, W) and s.mask.dtype == bool
    assert s.label == "flare"
    assert np.array_equal(s.reference, before) and np.array_equal(scene, before)
    assert s.params["route"] in ("physical", "pattern")
    json.dumps(s.params)


def test_deterministic_per_seed() -> None:
    scene, pats = _scene(), [_pattern()]
    a = synthesize_flare(scene, np.random.default_rng(7), patterns=pats)
    b = synthesize_flare(scene, np.random.default_rng(7), patterns=pats)
    c = synthesize_flare(scene, np.random.default_rng(8), patterns=pats)
    assert a.image.tobytes() == b.image.tobytes()
    assert np.array_equal(a.mask, b.mask)
    assert json.dumps(a.params, sort_keys=True) == json.dumps(b.params, sort_keys=True)
    assert a.image.tobytes() != c.image.tobytes()


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("with_patterns", [False, True])
def test_masks_honest_nonempty_and_additive(hard: bool, with_patterns: bool) -> None:
    samples = _samples(hard, [_pattern()] if with_patterns else None, range(8))
    for s in samples:
        assert outside_mask_max_change(s) < VISIBLE_DELTA
        assert s.mask.mean() >= 0.002
        assert (change_delta(s.reference, s.image) >= VISIBLE_DELTA).any()
        # flare is added light: the image only gets brighter (up to rounding)
        assert (s.image.astype(np.int16) >= s.reference.astype(np.int16) - 1).all()
        assert s.params["hard"] is hard
        json.dumps(s.params)
    routes = {s.params["route"] for s in samples}
    assert routes == ({"physical", "pattern"} if with_patterns else {"physical"})


def test_hard_is_subtler_than_normal() -> None:
    def mean_change(hard: bool) -> float:
        samples = _samples(hard, None, range(6))
        return float(np.mean([change_delta(s.reference, s.image).mean() for s in samples]))

    assert mean_change(True) < mean_change(False)


def test_places_a_source_in_a_dark_image() -> None:
    dark = np.full((H, W, 3), 12, np.uint8)
    for seed in range(4):
        s = synthesize_flare(dark, np.random.default_rng(seed))
        assert s.params["detected_source"] is None
        assert s.params["source"]["kind"] in ("sun", "lamp", "headlight", "offframe_sun")
        assert s.mask.any() and outside_mask_max_change(s) < VISIBLE_DELTA


def test_detects_a_bright_source() -> None:
    scene = _scene(2) // 2
    yy, xx = np.mgrid[0:H, 0:W]
    scene[(yy - 20) ** 2 + (xx - 90) ** 2 <= 16] = 255
    s = synthesize_flare(scene, np.random.default_rng(0))
    found = s.params["detected_source"]
    assert found is not None and abs(found["x"] - 90) <= 2 and abs(found["y"] - 20) <= 2


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        synthesize_flare(np.zeros((H, W), np.uint8), np.random.default_rng(0))
