"""Ghosting generator: shapes, determinism, mask honesty, locality and zero-motion identity.

Procedural scenes only (no files from ../shared); small sizes keep it fast.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from scipy import ndimage

from train.synth.common import VISIBLE_DELTA, outside_mask_max_change, visible_mask
from train.synth.ghosting import ghost_footprint, render_ghosting, synthesize_ghosting
from train.synth.scenes import procedural_scene

SEEDS = range(6)


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return procedural_scene(96, 128, np.random.default_rng(11))


@pytest.fixture(scope="module")
def donor() -> np.ndarray:
    return procedural_scene(80, 120, np.random.default_rng(12))


@pytest.fixture(scope="module")
def samples(clean, donor) -> list[tuple[int, bool, bool, object]]:
    """(seed, hard, with_donor, sample) over several seeds, hard and normal, with/without donor."""
    out = []
    for seed in SEEDS:
        for hard in (False, True):
            for with_donor in (False, True):
                rng = np.random.default_rng(seed)
                s = synthesize_ghosting(clean, rng, hard=hard, donor=donor if with_donor else None)
                out.append((seed, hard, with_donor, s))
    return out


def test_shapes_dtypes_label_params(clean, samples):
    for _, hard, _, s in samples:
        assert s.image.shape == clean.shape and s.image.dtype == np.uint8
        assert s.reference.shape == clean.shape and s.reference.dtype == np.uint8
        assert s.mask.shape == clean.shape[:2] and s.mask.dtype == bool
        assert s.label == "ghosting"
        assert s.params["route"] in {"segment", "pasted", "blob"}
        assert s.params["hard"] is hard
        assert 2 <= len(s.params["frames"]) <= 3
        assert json.loads(json.dumps(s.params)) == s.params


def test_both_routes_occur(samples):
    routes = {s.params["route"] for _, _, with_donor, s in samples if with_donor}
    assert {"segment", "pasted"} <= routes
    assert all(s.params["route"] != "pasted" for _, _, with_donor, s in samples if not with_donor)


def test_deterministic(clean, donor):
    a = synthesize_ghosting(clean, np.random.default_rng(3), donor=donor)
    b = synthesize_ghosting(clean, np.random.default_rng(3), donor=donor)
    c = synthesize_ghosting(clean, np.random.default_rng(4), donor=donor)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.reference.tobytes() == b.reference.tobytes()
    assert a.mask.tobytes() == b.mask.tobytes()
    assert a.params == b.params
    assert a.image.tobytes() != c.image.tobytes()


def test_mask_honest_and_non_empty(samples):
    for seed, hard, with_donor, s in samples:
        case = (seed, hard, with_donor, s.params["route"])
        assert outside_mask_max_change(s) < VISIBLE_DELTA, case
        assert np.array_equal(s.mask, visible_mask(s.reference, s.image)), case
        assert s.mask.mean() >= 0.002, case


def test_normal_ghosts_stronger_than_hard(samples):
    def mean_change(hard: bool) -> float:
        return float(
            np.mean(
                [
                    np.abs(s.image.astype(int) - s.reference).max(2)[s.mask].mean()
                    for _, h, _, s in samples
                    if h == hard
                ]
            )  # fmt: skip
        )

    assert mean_change(True) < mean_change(False)


def test_change_is_near_the_moved_object(clean, donor, samples):
    for seed, hard, with_donor, s in samples:
        footprint = ghost_footprint(clean, s.params, donor if with_donor else None)
        near = ndimage.binary_dilation(footprint, iterations=4)
        assert not (s.mask & ~near).any(), (seed, hard, with_donor)
        # and the footprint is a small part of the frame, not a global smear
        assert footprint.mean() < 0.5


def test_replay_and_zero_motion(clean, donor, samples):
    for seed, _, with_donor, s in samples[:: max(1, len(samples) // 6)]:
        d = donor if with_donor else None
        again = render_ghosting(clean, s.params, d)
        assert again.image.tobytes() == s.image.tobytes(), seed
        still = copy.deepcopy(s.params)
        for f in still["frames"]:
            f.update(dy=0.0, dx=0.0, rot=0.0, scale=1.0)
        z = render_ghosting(clean, still, d)
        assert np.array_equal(z.image, z.reference), seed
        assert np.array_equal(z.reference, s.reference), seed
        assert not z.mask.any()
