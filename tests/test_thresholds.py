"""Choosing operating points: :func:`ipad_sdk.thresholds.threshold_at_fpr` (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from ipad_sdk.thresholds import threshold_at_fpr


def test_threshold_at_fpr_hand_cases():
    negatives = np.arange(1, 11) / 10.5  # 10 distinct values below 1
    t = threshold_at_fpr(negatives, 0.2)  # two may pass: midway between the 8th and 9th value
    assert t == pytest.approx(8.5 / 10.5) and (negatives >= t).sum() == 2
    t0 = threshold_at_fpr(negatives, 0.0)  # none may pass: midway between the top value and 1
    assert t0 == pytest.approx((10 / 10.5 + 1) / 2) and (negatives >= t0).sum() == 0
    assert threshold_at_fpr(negatives, 1.0) == pytest.approx(negatives.min() / 2)
    ties = np.full(10, 0.5)
    assert threshold_at_fpr(ties, 0.3) == pytest.approx(0.75)  # ties cannot be split: none pass
    assert threshold_at_fpr(np.array([0.2, 1.0, 1.0]), 0.0) == 1.0  # nothing above 1 exists
    with pytest.raises(ValueError, match="fpr"):
        threshold_at_fpr(negatives, 1.5)


def test_threshold_at_fpr_is_robust_to_rescoring_noise():
    """The fresh-clone failure of issue 20: a clean score recomputed 3e-8 higher (another batch
    composition) crossed a threshold placed one ulp above it. Midway thresholds keep every score
    on its side under any perturbation smaller than half the gap."""
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.3, 0.9, 200).astype(np.float32)
    for fpr in (0.0, 0.01, 0.05, 0.2):
        t = threshold_at_fpr(scores, fpr)
        flagged = scores >= t
        assert flagged.mean() <= fpr
        for eps in (-1e-6, 1e-6):
            assert np.array_equal((scores + np.float32(eps)) >= t, flagged)
