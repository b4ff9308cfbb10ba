"""Tests of :mod:`train.evaluation` against sklearn, scipy, brute force and hand-computed curves."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from train import evaluation as metrics
from train.evaluation import (
    aupro,
    auroc,
    average_precision,
    f1_max,
    image_metrics,
    per_class_image_metrics,
    pixel_metrics,
    pro_curve,
)

ndimage = pytest.importorskip("scipy.ndimage")
NAN = float("nan")
ROOT = Path(__file__).resolve().parents[1]  # the checkout: `train` is importable from it


# ----------------------------------------------------------------------------------------------
# independent slow references


def brute_f1_max(scores: np.ndarray, labels: np.ndarray) -> float:
    """max over every distinct threshold (and +inf) of F1 of ``scores >= t``."""
    labels = labels.astype(bool)
    best = 0.0
    for t in [*np.unique(scores), np.inf]:
        pred = scores >= t
        tp = int(np.sum(pred & labels))
        fp = int(np.sum(pred & ~labels))
        fn = int(np.sum(~pred & labels))
        if tp:
            best = max(best, 2 * tp / (2 * tp + fp + fn))
    return best


def reference_pro_curve(maps, masks) -> tuple[np.ndarray, np.ndarray]:
    """One explicit boolean-mask evaluation per distinct threshold, highest first."""
    regions = []  # (image index, boolean region mask)
    for i, gt in enumerate(masks):
        labeled, count = ndimage.label(gt, structure=np.ones((3, 3)))
        regions += [(i, labeled == r) for r in range(1, count + 1)]
    negatives = [~np.asarray(gt, bool) for gt in masks]
    n_neg = sum(int(n.sum()) for n in negatives)
    fpr, pro = [0.0], [0.0]
    for t in np.unique(np.concatenate([np.ravel(m) for m in maps]))[::-1]:
        above = [np.asarray(m) >= t for m in maps]
        fpr.append(sum(int((a & n).sum()) for a, n in zip(above, negatives, strict=True)) / n_neg)
        overlaps = [(above[i] & r).sum() / r.sum() for i, r in regions]
        pro.append(float(np.mean(overlaps)))
    return np.array(fpr), np.array(pro)


def reference_aupro(maps, masks, limit: float) -> float:
    """Segment by segment trapezoid, the last segment cut at ``limit`` by interpolation."""
    fpr, pro = reference_pro_curve(maps, masks)
    area = 0.0
    for x0, x1, y0, y1 in zip(fpr[:-1], fpr[1:], pro[:-1], pro[1:], strict=True):
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
            continue
        if x0 < limit:
            y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + y_limit) / 2
        break
    return area / limit


def random_case(seed: int, levels: int | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """4-5 small images of different sizes: one clean, the others with rectangles and specks
    (regions of many sizes, some touching diagonally); scores quantised to ``levels`` for ties."""
    rng = np.random.default_rng(seed)
    maps, masks = [], []
    for i in range(int(rng.integers(4, 6))):
        h, w = int(rng.integers(6, 13)), int(rng.integers(6, 13))
        gt = np.zeros((h, w), dtype=bool)
        if i > 0:  # image 0 is clean
            for _ in range(int(rng.integers(1, 4))):
                r, c = int(rng.integers(0, h)), int(rng.integers(0, w))
                gt[r : r + int(rng.integers(1, 4)), c : c + int(rng.integers(1, 5))] = True
            gt |= rng.random((h, w)) < 0.04
        score = rng.random((h, w)) + 0.7 * gt
        if levels:
            score = np.round(score * levels) / levels
        maps.append(score.astype(np.float32))
        masks.append(gt)
    return maps, masks


# ----------------------------------------------------------------------------------------------
# image level


@pytest.mark.parametrize("seed", range(6))
def test_auroc_and_ap_match_sklearn(seed: int):
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    labels = rng.random(n) < rng.uniform(0.1, 0.9)
    labels[:2] = [True, False]
    scores = rng.normal(size=n) + labels
    if seed % 2:  # heavy ties
        scores = np.round(scores * 2) / 2
    result = image_metrics(scores, labels)
    assert result["auroc"] == pytest.approx(sk.roc_auc_score(labels, scores), rel=1e-12)
    assert result["ap"] == pytest.approx(sk.average_precision_score(labels, scores), rel=1e-12)
    assert auroc(scores, labels.astype(int)) == result["auroc"]
    assert average_precision(scores, labels) == result["ap"]


@pytest.mark.parametrize("seed", range(4))
def test_auroc_equals_mann_whitney_u(seed: int):
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(100 + seed)
    scores = rng.integers(0, 6, 150).astype(float)  # many ties, each worth 1/2
    labels = rng.random(150) < 0.4
    u = mannwhitneyu(scores[labels], scores[~labels], method="asymptotic").statistic
    assert auroc(scores, labels) == pytest.approx(u / (labels.sum() * (~labels).sum()), rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_f1_max_matches_brute_force(seed: int):
    rng = np.random.default_rng(200 + seed)
    scores = rng.integers(0, 12, 120).astype(float) + rng.random(120) * (seed % 2)
    labels = rng.random(120) < 0.3
    assert f1_max(scores, labels) == pytest.approx(brute_f1_max(scores, labels), rel=1e-12)


def test_image_metrics_hand_case_with_ties():
    # sorted: 0.9 (pos), 0.5 (pos, neg tied), 0.1 (neg)
    scores = [0.5, 0.9, 0.1, 0.5]
    labels = [1, 1, 0, 0]
    result = image_metrics(scores, labels)
    # pairs (pos, neg): (0.9,0.1)=1 (0.9,0.5)=1 (0.5,0.1)=1 (0.5,0.5)=1/2 -> 3.5 / 4
    assert result["auroc"] == pytest.approx(0.875)
    # thresholds 0.9: R=1/2 P=1; 0.5: R=1 P=2/3; 0.1: R=1 P=1/2 -> 1/2 + 1/2 * 2/3
    assert result["ap"] == pytest.approx(5 / 6)
    # F1 at 0.9: 2/3; at 0.5: 2*2/(4+1) = 4/5; at 0.1: 2/3
    assert result["f1_max"] == pytest.approx(0.8)


def test_image_edge_cases():
    assert math.isnan(auroc([0.1, 0.4], [1, 1]))  # one class only
    assert math.isnan(average_precision([0.1, 0.4], [1, 1]))
    assert f1_max([0.1, 0.4], [1, 1]) == 1.0  # still defined: predict everything positive
    none = image_metrics([0.1, 0.4, 0.3], [0, 0, 0])  # no positives
    assert all(math.isnan(v) for v in none.values())
    constant = image_metrics(np.full(8, 0.3), [1, 0, 0, 0, 1, 0, 0, 0])
    assert constant["auroc"] == 0.5
    assert constant["ap"] == pytest.approx(0.25)  # the prevalence
    assert constant["f1_max"] == pytest.approx(2 * 0.25 / 1.25)
    assert auroc([-np.inf, 0.0, np.inf], [0, 0, 1]) == 1.0  # infinities are ordinary scores
    assert auroc([-0.0, 0.0], [1, 0]) == 0.5  # -0 == +0: one tie


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.1, np.nan, 0.3], [0, 1, 1], "NaN"),
        ([0.1, 0.2], [0, 1, 1], "shapes"),
        ([[0.1, 0.2]], [[0, 1]], "1-D"),
        ([], [], "no samples"),
        ([0.1, 0.2], [0, 2], "binary"),
        (["a", "b"], [0, 1], "real numbers"),
    ],
)
def test_image_input_errors(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        image_metrics(scores, labels)


def test_per_class_is_one_vs_clean():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, 60)  # clean, ghosting, flare; no moire image
    probs = rng.dirichlet(np.ones(4), 60)
    classes = ("clean", "ghosting", "flare", "moire")
    result = per_class_image_metrics(probs, labels, classes)
    assert list(result) == ["ghosting", "flare", "moire"]
    for k, name in [(1, "ghosting"), (2, "flare")]:
        keep = (labels == 0) | (labels == k)
        assert result[name] == image_metrics(probs[keep, k], labels[keep] == k)
    assert all(math.isnan(v) for v in result["moire"].values())
    with pytest.raises(ValueError, match="class_probs"):
        per_class_image_metrics(probs[:, :3], labels, classes)
    with pytest.raises(ValueError, match="labels"):
        per_class_image_metrics(probs, np.full(60, 4), classes)
    with pytest.raises(ValueError, match="labels"):
        per_class_image_metrics(probs, labels[:-1], classes)


# ----------------------------------------------------------------------------------------------
# AUPRO: hand-made cases


def test_pro_curve_hand_case_with_clean_image_and_ties():
    # image A (3x4): region R1 = {(0,0), (0,1)} (2 px), region R2 = {(2,3)} (1 px), 9 negatives;
    # image B (1x3) is clean: 3 negatives. 12 negatives in all.
    mask_a = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
    map_a = np.array([[0.9, 0.5, 0.5, 0.1], [0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.5]])
    mask_b = np.zeros((1, 3), dtype=int)
    map_b = np.array([[0.9, 0.1, 0.1]])
    maps, masks = [map_a, map_b], [mask_a, mask_b]
    # t=0.9: R1 1/2, R2 0 -> PRO 1/4; negatives >= 0.9: B(0,0) -> FPR 1/12
    # t=0.5: R1 1, R2 1 -> PRO 1; negatives: + A(0,2) -> FPR 2/12
    # t=0.1: everything -> (1, 1)
    fpr, pro = pro_curve(maps, masks)
    np.testing.assert_allclose(fpr, [0, 1 / 12, 1 / 6, 1], rtol=1e-15)
    np.testing.assert_allclose(pro, [0, 1 / 4, 1, 1], rtol=1e-15)
    # limit 0.3: 1/12 * 1/4 / 2 + 1/12 * 5/4 / 2 + (0.3 - 1/6) * 1 = 1/16 + 2/15 = 47/240
    assert aupro(maps, masks) == pytest.approx(47 / 240 / 0.3, rel=1e-12)
    assert aupro(maps, masks, fpr_limit=1 / 6) == pytest.approx(3 / 8, rel=1e-12)  # at a vertex
    # limit 0.05 inside the first segment PRO = 3 FPR: area 3 * 0.05**2 / 2, / 0.05
    assert aupro(maps, masks, fpr_limit=0.05) == pytest.approx(0.075, rel=1e-12)
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(1 / 96 + 5 / 96 + 5 / 6, rel=1e-12)
    result = pixel_metrics(maps, masks)
    assert result["aupro"] == aupro(maps, masks)


def test_regions_are_8_connected():
    # the diagonal makes one 3-px region; with 4-connectivity there would be two (1 px + 2 px)
    mask = np.array([[1, 0, 0], [0, 1, 1]])
    scores = np.array([[0.9, 0.1, 0.1], [0.1, 0.5, 0.5]])
    fpr, pro = pro_curve([scores], [mask])
    np.testing.assert_allclose(pro, [0, 1 / 3, 1, 1])  # 4-connected: 1/2 after t = 0.9
    np.testing.assert_allclose(fpr, [0, 0, 0, 1])
    assert aupro([scores], [mask]) == pytest.approx(1.0)


def test_aupro_is_one_sixth_on_a_straight_line():
    # One region (column 0, 3 px) and 3 negatives (column 1); every row has one score, so each
    # threshold adds one region pixel and one negative: curve (0,0) (1/3,1/3) (2/3,2/3) (1,1),
    # PRO = FPR. The area up to L is L^2 / 2, normalised L / 2: 1/6 for L = 1/3 (a vertex),
    # 1/8 for L = 1/4 (interpolated inside the first segment).
    mask = np.array([[1, 0], [1, 0], [1, 0]])
    scores = np.array([[2.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    fpr, pro = pro_curve([scores], [mask])
    np.testing.assert_allclose(fpr, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(pro, fpr)
    assert aupro([scores], [mask], fpr_limit=1 / 3) == pytest.approx(1 / 6, rel=1e-12)
    assert aupro([scores], [mask], fpr_limit=1 / 4) == pytest.approx(1 / 8, rel=1e-12)


def _anomalib_case(columns: list[int], tied_rows: bool) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((1, 400, 7), dtype=int)
    mask[0, :, columns] = 1
    if tied_rows:
        scores = np.repeat(np.arange(400, dtype=np.float32)[:, None], 7, axis=1)[None] / 400
    else:  # anomalib's preds: torch.arange(2800) / 2800 viewed as 400 x 7 (row-major)
        scores = (np.arange(2800, dtype=np.float32) / np.float32(2800)).reshape(1, 400, 7)
    return scores, mask


def test_aupro_anomalib_reference_cases():
    # anomalib's test_aupro: 400x7 maps, scores rising row-major, fpr_limit 1/3, expected ~1/6.
    # (a) one region (column 3, 400 px), 2400 negatives. Descending through row k (k = 0 from the
    #     top score), 3 negatives come at PRO k/400, then the region pixel, then 3 negatives at
    #     PRO (k+1)/400: the area of row k is (3/2400) (2k+1) / 400, after K rows K^2 / 320000 at
    #     FPR K/400. The limit 1/3 = 800/2400 falls after K = 133 rows and 2 more negatives at
    #     PRO 133/400: area 17689/320000 + 266/960000 = 53333/960000 -> AUPRO 53333/320000.
    scores, mask = _anomalib_case([3], tied_rows=False)
    assert aupro(scores, mask, fpr_limit=1 / 3) == pytest.approx(53333 / 320000, rel=1e-12)
    # (b) three regions (columns 1, 3, 5), 1600 negatives; per row: neg, pos, neg, pos, neg, pos,
    #     neg with PRO steps of 1/1200, FPR steps of 1/1600; again K^2 / 320000 after K rows. The
    #     limit 1/3 = 533.33/1600: after 133 rows, one negative at PRO 133/400 (+133/640000),
    #     the region pixel (PRO -> 1/3), then 1/4800 of FPR interpolated at PRO 1/3 (+1/14400):
    #     319999/5760000 -> AUPRO 319999/1920000.
    scores, mask = _anomalib_case([1, 3, 5], tied_rows=False)
    assert aupro(scores, mask, fpr_limit=1 / 3) == pytest.approx(319999 / 1920000, rel=1e-12)
    # (c) both images together (anomalib expects the mean, 1/6, within its tolerance)
    s1, m1 = _anomalib_case([3], tied_rows=False)
    s2, m2 = _anomalib_case([1, 3, 5], tied_rows=False)
    both = aupro(np.concatenate([s1, s2]), np.concatenate([m1, m2]), fpr_limit=1 / 3)
    assert both == pytest.approx(1 / 6, abs=1e-5)
    # the staircase disappears when every row is one tie: PRO = FPR on the vertices k/400 and
    # linear in between, so exactly 1/6 (the limit falls inside a segment: interpolation)
    for columns in ([3], [1, 3, 5]):
        scores, mask = _anomalib_case(columns, tied_rows=True)
        assert aupro(scores, mask, fpr_limit=1 / 3) == pytest.approx(1 / 6, rel=1e-12)


def test_constant_maps_give_the_two_point_curve():
    maps = np.full((2, 5, 6), 0.7, dtype=np.float32)
    masks = np.zeros((2, 5, 6), dtype=bool)
    masks[0, 1:3, 1:4] = True
    masks[1, 4, 5] = True
    fpr, pro = pro_curve(maps, masks)
    np.testing.assert_allclose(fpr, [0, 1])
    np.testing.assert_allclose(pro, [0, 1])
    result = pixel_metrics(maps, masks, fpr_limit=0.3)
    assert result["aupro"] == pytest.approx(0.15)  # interpolated at 0.3 -> 0.3^2 / 2 / 0.3
    assert result["auroc"] == 0.5
    prevalence = 7 / 60
    assert result["ap"] == pytest.approx(prevalence)
    assert result["f1_max"] == pytest.approx(2 * prevalence / (1 + prevalence))


# ----------------------------------------------------------------------------------------------
# AUPRO and pixel metrics: random cases against the references


@pytest.mark.parametrize(("seed", "levels"), [(0, 6), (1, 10), (2, 20), (3, None), (4, 3)])
def test_aupro_matches_the_slow_reference(seed: int, levels: int | None):
    maps, masks = random_case(seed, levels)
    fpr, pro = pro_curve(maps, masks)
    ref_fpr, ref_pro = reference_pro_curve(maps, masks)
    np.testing.assert_allclose(fpr, ref_fpr, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(pro, ref_pro, rtol=1e-12, atol=1e-15)
    for limit in (0.3, 0.05, 1 / 3, 1.0, float(fpr[len(fpr) // 2])):
        expected = reference_aupro(maps, masks, limit)
        assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("seed", "levels"), [(10, 5), (11, None)])
def test_pixel_metrics_match_sklearn_and_brute_force(seed: int, levels: int | None):
    sk = pytest.importorskip("sklearn.metrics")
    maps, masks = random_case(seed, levels)
    scores = np.concatenate([m.ravel() for m in maps])
    labels = np.concatenate([g.ravel() for g in masks])
    result = pixel_metrics(maps, masks)
    assert result["auroc"] == pytest.approx(sk.roc_auc_score(labels, scores), rel=1e-12)
    assert result["ap"] == pytest.approx(sk.average_precision_score(labels, scores), rel=1e-12)
    assert result["f1_max"] == pytest.approx(brute_f1_max(scores, labels), rel=1e-12)
    assert result["aupro"] == pytest.approx(reference_aupro(maps, masks, 0.3), rel=1e-12)
    # the image-level code path (float64, argsort) agrees with the pixel path (uint64 keys)
    flat = image_metrics(scores, labels)
    assert flat == pytest.approx({k: result[k] for k in flat}, rel=1e-12)


@pytest.mark.parametrize("chunk", [1, 2, 7, 64])
def test_chunked_sweep_gives_the_same_results(monkeypatch: pytest.MonkeyPatch, chunk: int):
    maps, masks = random_case(5, levels=8)
    expected = pixel_metrics(maps, masks, fpr_limit=0.2)
    expected_curve = pro_curve(maps, masks)
    scores = np.round(np.random.default_rng(1).random(50), 1)
    labels = np.arange(50) % 3 == 0
    expected_image = image_metrics(scores, labels)
    monkeypatch.setattr(metrics, "_CHUNK", chunk)
    assert pixel_metrics(maps, masks, fpr_limit=0.2) == pytest.approx(expected, rel=1e-12)
    assert aupro(maps, masks, fpr_limit=0.2) == pytest.approx(expected["aupro"], rel=1e-12)
    for got, want in zip(pro_curve(maps, masks), expected_curve, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert image_metrics(scores, labels) == pytest.approx(expected_image, rel=1e-12)


def test_input_layouts_and_dtypes_agree():
    maps, masks = random_case(6, levels=None)
    maps = [m[:6, :6] for m in maps]
    masks = [g[:6, :6] for g in masks]
    expected = pixel_metrics(maps, masks)
    stacked = pixel_metrics(np.stack(maps).astype(np.float64), np.stack(masks).astype(np.uint8))
    assert stacked == pytest.approx(expected, rel=1e-12)
    # negative scores and -0.0 / +0.0 (one threshold) are ordered correctly
    shifted = pixel_metrics([m - np.float32(0.5) for m in maps], masks)
    assert shifted == pytest.approx(expected, rel=1e-12)
    zeros = pixel_metrics([np.array([[-0.0, 0.0]])], [np.array([[1, 0]])])
    assert zeros["auroc"] == 0.5
    assert len(pro_curve([np.array([[-0.0, 0.0]])], [np.array([[1, 0]])])[0]) == 2


# ----------------------------------------------------------------------------------------------
# pixel edge cases and errors


def test_no_ground_truth_anywhere():
    maps = np.random.default_rng(0).random((2, 4, 4)).astype(np.float32)
    masks = np.zeros((2, 4, 4), dtype=bool)
    result = pixel_metrics(maps, masks)
    assert all(math.isnan(v) for v in result.values())
    assert math.isnan(aupro(maps, masks))
    fpr, pro = pro_curve(maps, masks)
    assert fpr[0] == 0 and fpr[-1] == 1 and np.isnan(pro).all()


def test_no_negative_pixel():
    maps = np.random.default_rng(0).random((1, 3, 3))
    masks = np.ones((1, 3, 3), dtype=bool)
    result = pixel_metrics(maps, masks)
    assert math.isnan(result["auroc"]) and math.isnan(result["ap"]) and math.isnan(result["aupro"])
    assert result["f1_max"] == 1.0
    fpr, pro = pro_curve(maps, masks)
    assert np.isnan(fpr).all() and pro[-1] == pytest.approx(1.0)


def test_clean_images_only_add_negatives():
    maps, masks = random_case(8, levels=10)
    base = aupro(maps[1:], masks[1:])
    hot_clean = np.full((5, 5), 10.0, dtype=np.float32)  # above every score: all false positives
    with_clean = aupro([*maps[1:], hot_clean], [*masks[1:], np.zeros((5, 5))])
    assert with_clean < base
    assert with_clean == pytest.approx(
        reference_aupro([*maps[1:], hot_clean], [*masks[1:], np.zeros((5, 5))], 0.3), rel=1e-12
    )


@pytest.mark.parametrize(
    ("maps", "masks", "message"),
    [
        ([np.array([[0.1, np.nan]])], [np.array([[0, 1]])], r"maps\[0\].*NaN"),
        ([np.zeros((2, 3))], [np.zeros((3, 2))], "shape"),
        ([np.zeros((2, 3))], [np.zeros((2, 3)), np.zeros((2, 3))], "1 maps but 2 masks"),
        (np.zeros((4, 4)), np.zeros((4, 4)), r"\[N, H, W\]"),
        ([np.zeros(4)], [np.zeros(4)], "2-D"),
        ([np.zeros((2, 2))], [np.full((2, 2), 255)], "binary"),
        ([], [], "no pixels"),
    ],
)
def test_pixel_input_errors(maps, masks, message):
    for fn in (pixel_metrics, aupro, pro_curve):
        with pytest.raises(ValueError, match=message):
            fn(maps, masks)


def test_fpr_limit_range():
    maps, masks = [np.array([[0.1, 0.2]])], [np.array([[0, 1]])]
    for limit in (0.0, -0.1, 1.5, NAN):
        with pytest.raises(ValueError, match="fpr_limit"):
            aupro(maps, masks, fpr_limit=limit)


def test_evaluation_needs_numpy_only():
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"scipy", "sklearn", "torch"}:
                    raise ImportError("blocked " + name)

        sys.meta_path.insert(0, Block())
        from train.evaluation import image_metrics
        print(image_metrics([0.2, 0.9, 0.4], [0, 1, 1])["auroc"])
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1.0"
