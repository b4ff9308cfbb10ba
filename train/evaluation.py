"""Evaluation metrics of training and the benchmarks: the paper's image-level (C-) and
pixel-level (S-) AUROC, AP, F1-max and AUPRO, its Table 1 (:data:`TABLE1`) and the selection score
of training (:func:`evaluation_metrics`). Not shipped with the SDK: inference needs none of it.

Every curve is exact: one point per distinct score value, all samples with an equal score form a
single threshold step (a sample is predicted positive when ``score >= t``). No threshold grid.

* AUROC is the trapezoidal area under the ROC curve, which equals the Mann-Whitney statistic
  ``P(s_pos > s_neg) + P(s_pos == s_neg) / 2``; it is computed in exact integer arithmetic.
* AP is ``sum_n (R_n - R_{n-1}) P_n`` over the thresholds (step-wise, no interpolation), as
  ``sklearn.metrics.average_precision_score`` defines it.
* F1-max is ``max_t F1(score >= t)``, i.e. ``max 2 TP / (2 TP + FP + FN)``.
* AUPRO follows the MVTec AD evaluation code: ground-truth regions are the 8-connected components
  of each mask; ``PRO(t)`` is the mean over all regions of all images of the region's fraction of
  pixels with ``score >= t``; ``FPR(t)`` is the fraction of ground-truth-negative pixels of all
  images (clean images included) with ``score >= t``. The curve starts at ``(0, 0)``; PRO is
  integrated over FPR with the trapezoid rule up to ``fpr_limit`` (linearly interpolated at exactly
  the limit) and divided by ``fpr_limit``.

Undefined values are ``nan``, never an exception: AUROC and AP need both classes (positives and
negatives), F1-max needs positives; AUPRO needs at least one ground-truth region and one
negative pixel. Unusable inputs (NaN scores, shape mismatches, non-binary labels, no samples)
raise :class:`ipad_sdk.errors.InputError`, a ``ValueError``.

Why hand-written rather than scikit-learn: it needs numpy only (scipy is imported lazily,
for the connected components of :func:`aupro` and :func:`pixel_metrics`), and the pixel metrics
must handle ~10^8 pixels in a few GB. Pixel scores are therefore packed with their region id into
one ``uint64`` key per pixel (monotone float32 bit pattern in the high 32 bits, region id in the low
32 bits) and sorted in place with ``ndarray.sort`` (several times faster than ``argsort`` and no
index array); the sorted keys are then swept in chunks from the highest score down, accumulating
negative counts, positive counts and PRO weights with cumulative sums. Per-region true-positive
counts are not tracked one by one: each pixel of region ``r`` carries the weight ``1 / |r|``
(region sizes from ``np.bincount``), so ``PRO(t) = sum of the weights with score >= t / #regions``.
Pixel scores are compared in float32 (the SDK's maps are float32; wider inputs are rounded to
float32 first, which merges values closer than float32 precision). Image-level scores stay
float64.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from ipad_sdk.errors import InputError

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "TABLE1",
    "aupro",
    "auroc",
    "average_precision",
    "evaluation_metrics",
    "f1_max",
    "image_metrics",
    "per_class_image_metrics",
    "pixel_metrics",
    "pro_curve",
]

#: The paper's Table 1: (column, report level, metric key) of every headline metric.
TABLE1 = [("C-AUROC", "image", "auroc"), ("C-AP", "image", "ap"), ("C-F1", "image", "f1_max"),
          ("S-AUROC", "pixel", "auroc"), ("S-AP", "pixel", "ap"), ("S-F1", "pixel", "f1_max"),
          ("S-AUPRO", "pixel", "aupro")]  # fmt: skip

#: Score maps or ground-truth masks: an ``[N, H, W]`` array or a sequence of ``[H, W]`` arrays.
Maps: TypeAlias = "np.ndarray | Sequence[npt.ArrayLike]"

_CHUNK = 1 << 22  # samples per sweep step: bounds the temporaries to ~200 MB
_LOW32 = np.uint64(0xFFFFFFFF)

# ----------------------------------------------------------------------------------------------
# validation


def _check_scores(scores: np.ndarray, name: str) -> None:
    if scores.dtype.kind not in "biuf":
        raise InputError(f"{name}: scores must be real numbers, got dtype {scores.dtype}")
    if scores.dtype.kind == "f":
        nans = np.isnan(scores)
        if nans.any():
            first = np.unravel_index(int(np.argmax(nans)), scores.shape)
            raise InputError(
                f"{name}: contains {int(nans.sum())} NaN score(s) (first at index "
                f"{tuple(int(i) for i in first)}); scores must not be NaN"
            )


def _binary(values: npt.ArrayLike, name: str) -> np.ndarray:
    """``values`` as a bool array; only bool or numbers equal to 0 / 1 are accepted."""
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{name}: must be binary (bool or 0/1), got dtype {arr.dtype}")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        example = arr[bad].flat[0]
        raise InputError(
            f"{name}: must be binary (bool or 0/1), found {int(bad.sum())} other value(s) such "
            f"as {example!r}; threshold it first (e.g. mask > 0)"
        )
    binary: np.ndarray = arr != 0
    return binary


def _image_inputs(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1 or s.shape != y.shape:
        raise InputError(
            f"scores/labels: need two 1-D arrays of one length, got shapes {s.shape} and {y.shape}"
        )
    if s.size == 0:
        raise InputError("scores: no samples")
    _check_scores(s, "scores")
    return s.astype(np.float64, copy=False), _binary(y, "labels")


def _as_maps(maps: Maps, name: str) -> list[np.ndarray]:
    if isinstance(maps, np.ndarray) and maps.ndim != 3:
        raise InputError(
            f"{name}: need an [N, H, W] array or a sequence of [H, W], got {maps.shape}"
        )
    out = [np.asarray(m) for m in maps]
    for i, m in enumerate(out):
        if m.ndim != 2:
            raise InputError(f"{name}[{i}]: need a 2-D [H, W] map, got shape {m.shape}")
    return out


def _pixel_inputs(maps: Maps, masks: Maps) -> tuple[list[np.ndarray], list[np.ndarray]]:
    score_maps = _as_maps(maps, "maps")
    gt = _as_maps(masks, "masks")
    if len(score_maps) != len(gt):
        raise InputError(f"maps/masks: {len(score_maps)} maps but {len(gt)} masks")
    if not score_maps or sum(m.size for m in score_maps) == 0:
        raise InputError("maps: no pixels")
    for i, (m, g) in enumerate(zip(score_maps, gt, strict=True)):
        if m.shape != g.shape:
            raise InputError(f"maps[{i}]: shape {m.shape} differs from masks[{i}] shape {g.shape}")
        _check_scores(m, f"maps[{i}]")
    return score_maps, [_binary(g, f"masks[{i}]") for i, g in enumerate(gt)]


def _check_fpr_limit(fpr_limit: float) -> float:
    limit = float(fpr_limit)
    if not 0.0 < limit <= 1.0:
        raise InputError(f"fpr_limit: must be in (0, 1], got {fpr_limit!r}")
    return limit


# ----------------------------------------------------------------------------------------------
# the sweep: cumulative counts at every distinct threshold, highest score first


def _sweep(
    n: int,
    chunk: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    weights: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Yield ``(neg, pos, w)`` at the end of each group of equal scores, in descending order.

    ``chunk(a, b)`` returns ``(values, group_ids)`` of the samples ``a:b`` sorted by descending
    score; ``group_ids`` 0 marks a negative, anything else a positive (a region id, which selects
    its weight in ``weights``). ``neg[i]`` / ``pos[i]`` count the negatives / positives with a
    score >= the i-th distinct score, ``w[i]`` sums their weights (None without ``weights``).
    """
    neg_carry, pos_carry, w_carry = 0, 0, 0.0
    for a in range(0, n, _CHUNK):
        b = min(a + _CHUNK, n)
        values, ids = chunk(a, b)
        is_end = np.empty(b - a, dtype=bool)
        np.not_equal(values[:-1], values[1:], out=is_end[:-1])
        is_end[-1] = b == n or values[-1] != chunk(b, b + 1)[0][0]
        ends = np.flatnonzero(is_end)
        neg_cum = np.cumsum(ids == 0, dtype=np.int64)
        neg = neg_cum[ends]
        pos = ends + 1 - neg
        neg += neg_carry
        pos += pos_carry
        neg_carry += int(neg_cum[-1])
        pos_carry += (b - a) - int(neg_cum[-1])
        w = None
        if weights is not None:
            w_cum = np.cumsum(weights[ids])
            w = w_cum[ends] + w_carry
            w_carry += float(w_cum[-1])
        if ends.size:  # a chunk inside one long tie holds no group end
            yield neg, pos, w


class _Binary:
    """Streams ``(neg, pos)`` sweep points into AUROC, AP and F1-max."""

    def __init__(self, n_pos: int, n_neg: int) -> None:
        self.n_pos, self.n_neg = n_pos, n_neg
        self.fp, self.tp = 0, 0  # the previous point; the curve starts at threshold +inf
        self.auc2 = 0  # 2 * area * n_pos * n_neg, an exact integer
        self.ap = 0.0
        self.f1 = 0.0

    def update(self, fp: np.ndarray, tp: np.ndarray) -> None:
        fp_prev = np.concatenate(([self.fp], fp[:-1]))
        tp_prev = np.concatenate(([self.tp], tp[:-1]))
        self.auc2 += int(np.sum((fp - fp_prev) * (tp + tp_prev)))
        if self.n_pos:
            self.ap += float(np.sum((tp - tp_prev) / self.n_pos * (tp / (tp + fp))))
            self.f1 = max(self.f1, float(np.max(2.0 * tp / (tp + fp + self.n_pos))))
        self.fp, self.tp = int(fp[-1]), int(tp[-1])

    def result(self) -> dict[str, float]:
        both = self.n_pos > 0 and self.n_neg > 0
        return {
            "auroc": self.auc2 / (2 * self.n_pos * self.n_neg) if both else float("nan"),
            "ap": self.ap if both else float("nan"),
            "f1_max": self.f1 if self.n_pos else float("nan"),
        }


class _ProArea:
    """Streams ``(fpr, pro)`` sweep points into the area up to ``limit`` (MVTec's trapezoid)."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.x, self.y = 0.0, 0.0  # the curve starts at (0, 0)
        self.area = 0.0
        self.done = False

    def update(self, fpr: np.ndarray, pro: np.ndarray) -> None:
        if self.done:
            return
        x = np.concatenate(([self.x], fpr))
        y = np.concatenate(([self.y], pro))
        k = int(np.searchsorted(x, self.limit, side="right"))  # points with x <= limit; >= 1
        self.area += float(np.sum((x[1:k] - x[: k - 1]) * (y[1:k] + y[: k - 1]) / 2.0))
        if k < len(x):  # the curve passes the limit between points k-1 and k: interpolate there
            x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
            if x0 < self.limit:
                y_lim = y0 + (y1 - y0) * (self.limit - x0) / (x1 - x0)
                self.area += float((self.limit - x0) * (y0 + y_lim) / 2.0)
            self.done = True
        else:
            self.x, self.y = float(x[-1]), float(y[-1])

    def result(self) -> float:
        return self.area / self.limit


# ----------------------------------------------------------------------------------------------
# image level


def _image_binary(scores: npt.ArrayLike, labels: npt.ArrayLike) -> dict[str, float]:
    s, y = _image_inputs(scores, labels)
    order = np.argsort(s, kind="stable")[::-1]
    s_desc, y_desc = s[order], y[order].astype(np.intp)
    n_pos = int(y.sum())
    acc = _Binary(n_pos, y.size - n_pos)
    for neg, pos, _ in _sweep(s.size, lambda a, b: (s_desc[a:b], y_desc[a:b])):
        acc.update(neg, pos)
    return acc.result()


def auroc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Exact area under the ROC curve of ``scores`` [N] against binary ``labels`` [N].

    Equals the Mann-Whitney statistic (ties count 1/2). ``nan`` unless both classes occur.
    """
    return _image_binary(scores, labels)["auroc"]


def average_precision(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Average precision ``sum_n (R_n - R_{n-1}) P_n`` (sklearn's definition).

    ``nan`` unless both classes occur.
    """
    return _image_binary(scores, labels)["ap"]


def f1_max(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Best F1 of ``scores >= t`` over all thresholds ``t``; ``nan`` without positives."""
    return _image_binary(scores, labels)["f1_max"]


def image_metrics(scores: npt.ArrayLike, labels: npt.ArrayLike) -> dict[str, float]:
    """``{"auroc", "ap", "f1_max"}`` of ``scores`` [N] against binary ``labels`` [N].

    Typically the artifact score ``1 - P(clean)`` against artifact (1) / clean (0). AUROC and AP
    are ``nan`` when only one class occurs; F1-max is ``nan`` when there is no positive.
    """
    return _image_binary(scores, labels)


def per_class_image_metrics(
    class_probs: npt.ArrayLike, labels: npt.ArrayLike, classes: Sequence[str]
) -> dict[str, dict[str, float]]:
    """One-vs-clean :func:`image_metrics` for every artifact class.

    ``class_probs`` is [N, K+1] with column 0 the clean class, ``labels`` [N] the true class
    indices in ``0..K``, ``classes`` the K+1 names (``classes[0]`` clean). Class ``k`` is scored
    with ``P(class k)`` on the images of class ``k`` (positives) plus the clean images (negatives);
    images of the other artifact classes are left out. Returns ``{name: metrics}`` for
    ``classes[1:]``; a class with no image gets ``nan`` everywhere.
    """
    probs = np.asarray(class_probs)
    y = np.asarray(labels)
    names = list(classes)
    if probs.ndim != 2 or probs.shape[1] != len(names) or len(names) < 2:
        raise InputError(
            f"class_probs: need shape [N, {len(names)}] for classes {tuple(names)} "
            f"(at least clean + one artifact class), got {probs.shape}"
        )
    if y.shape != (probs.shape[0],):
        raise InputError(f"labels: need shape ({probs.shape[0]},), got {y.shape}")
    if y.size and (y.dtype.kind not in "iub" or y.min() < 0 or y.max() >= len(names)):
        raise InputError(f"labels: must be class indices in 0..{len(names) - 1}")
    _check_scores(probs, "class_probs")
    result = {}
    for k, name in enumerate(names[1:], start=1):
        keep = (y == k) | (y == 0)
        if not (y == k).any():
            result[name] = {"auroc": float("nan"), "ap": float("nan"), "f1_max": float("nan")}
            continue
        result[name] = image_metrics(probs[keep, k], y[keep] == k)
    return result


# ----------------------------------------------------------------------------------------------
# pixel level


class _SortedPixels:
    """All pixels as sorted uint64 keys (score bits << 32 | global region id) plus region data."""

    def __init__(self, maps: Maps, masks: Maps) -> None:
        try:
            from scipy import ndimage
        except ImportError as exc:  # scipy is not an SDK dependency
            raise ImportError("pixel metrics need scipy (pip install scipy)") from exc

        score_maps, gt = _pixel_inputs(maps, masks)
        self.n = sum(m.size for m in score_maps)
        self.keys = np.empty(self.n, dtype=np.uint64)
        structure = np.ones((3, 3), dtype=bool)  # 8-connectivity, as MVTec AD
        sizes = [np.zeros(1, dtype=np.int64)]  # index 0: the negatives
        n_regions = 0
        offset = 0
        for m, g in zip(score_maps, gt, strict=True):
            key = self.keys[offset : offset + m.size]
            key[...] = _monotone_bits(m.ravel())
            key <<= np.uint64(32)
            regions, count = ndimage.label(g, structure=structure)
            if count:
                ids = regions.ravel().astype(np.uint64)
                ids[ids != 0] += np.uint64(n_regions)
                key |= ids
                sizes.append(np.bincount(regions.ravel(), minlength=count + 1)[1:])
                n_regions += count
            offset += m.size
        if n_regions >= 2**32:
            raise InputError(f"masks: {n_regions} regions, more than 2**32 - 1")
        self.n_regions = n_regions
        region_sizes = np.concatenate(sizes)
        self.n_pos = int(region_sizes[1:].sum())
        self.n_neg = self.n - self.n_pos
        with np.errstate(divide="ignore"):
            self.weights = np.where(region_sizes > 0, 1.0 / region_sizes, 0.0)
        self.keys.sort()  # in place: no argsort index array
        self._reverse = self.keys[::-1]

    def _chunk(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        keys = self._reverse[a:b]
        return keys >> np.uint64(32), keys & _LOW32

    def sweep(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(fp, tp, pro)`` per distinct threshold, descending (see :func:`_sweep`)."""
        r = max(self.n_regions, 1)
        for neg, pos, w in _sweep(self.n, self._chunk, self.weights):
            assert w is not None
            yield neg, pos, w / r


def _monotone_bits(scores: np.ndarray) -> np.ndarray:
    """uint32 whose unsigned order is the float32 order of ``scores`` (equal floats, equal bits)."""
    bits: np.ndarray = (scores.astype(np.float32) + np.float32(0.0)).view(
        np.uint32
    )  # + 0 turns -0 into +0
    # negative floats: flip all bits; positive floats: set the sign bit
    bits ^= (np.uint32(0) - (bits >> np.uint32(31))) | np.uint32(0x80000000)
    return bits


def pro_curve(maps: Maps, masks: Maps) -> tuple[np.ndarray, np.ndarray]:
    """The exact PRO curve: ``(fpr, pro)`` float64 arrays, one point per distinct score.

    ``maps`` and ``masks`` are an [N, H, W] array or a sequence of [H, W] arrays (sizes may differ
    between images); masks are bool or 0/1, images with an empty mask contribute negatives only.
    Point 0 is ``(0, 0)`` (threshold above every score); point ``i`` is the threshold at the
    i-th highest distinct score, so the last point is ``(1, 1)``. ``fpr`` is non-decreasing.
    ``pro`` is all ``nan`` without ground-truth regions, ``fpr`` all ``nan`` without negative
    pixels. Memory: the sort keys (8 bytes per pixel) plus 16 bytes per distinct score.
    """
    px = _SortedPixels(maps, masks)
    fprs, pros = [np.zeros(1)], [np.zeros(1)]
    for fp, _, pro in px.sweep():
        fprs.append(fp / px.n_neg if px.n_neg else np.full(fp.shape, np.nan))
        pros.append(pro if px.n_regions else np.full(pro.shape, np.nan))
    fpr, pro = np.concatenate(fprs), np.concatenate(pros)
    if not px.n_neg:
        fpr[0] = np.nan
    if not px.n_regions:
        pro[0] = np.nan
    return fpr, pro


def aupro(maps: Maps, masks: Maps, fpr_limit: float = 0.3) -> float:
    """Area under the PRO curve up to ``fpr_limit``, divided by ``fpr_limit`` (MVTec AD).

    See :func:`pro_curve` for the inputs. ``nan`` when the masks hold no region or no negative
    pixel. ``fpr_limit`` must lie in (0, 1].
    """
    limit = _check_fpr_limit(fpr_limit)
    px = _SortedPixels(maps, masks)
    if not px.n_regions or not px.n_neg:
        return float("nan")
    acc = _ProArea(limit)
    for fp, _, pro in px.sweep():
        acc.update(fp / px.n_neg, pro)
        if acc.done:
            break
    return acc.result()


def pixel_metrics(maps: Maps, masks: Maps, fpr_limit: float = 0.3) -> dict[str, float]:
    """``{"auroc", "ap", "f1_max", "aupro"}`` over all pixels of all images, from one sort.

    ``maps`` are the per-pixel artifact scores, ``masks`` the binary ground truth (see
    :func:`pro_curve`). AUROC/AP/F1-max treat every pixel as one sample (``nan`` as in
    :func:`image_metrics`); AUPRO is :func:`aupro` with ``fpr_limit``.
    """
    limit = _check_fpr_limit(fpr_limit)
    px = _SortedPixels(maps, masks)
    binary = _Binary(px.n_pos, px.n_neg)
    area = _ProArea(limit)
    defined = px.n_regions > 0 and px.n_neg > 0
    for fp, tp, pro in px.sweep():
        binary.update(fp, tp)
        if defined:
            area.update(fp / px.n_neg, pro)
    return {**binary.result(), "aupro": area.result() if defined else float("nan")}


def evaluation_metrics(
    class_probs: np.ndarray,
    artifact_maps: np.ndarray,
    labels: np.ndarray,
    masks: np.ndarray,
    classes: tuple[str, ...],
) -> dict[str, Any]:
    """The paper's metrics: image (C-) and pixel (S-) AUROC/AP/F1-max, AUPRO, per class, and the
    selection ``score`` = mean of image AUROC and pixel AUPRO (NaN counted as 0)."""
    image = image_metrics(1.0 - class_probs[:, 0], (labels != 0).astype(int))
    pixel = pixel_metrics(artifact_maps, masks)
    per_class = per_class_image_metrics(class_probs, labels, classes)
    accuracy = float((class_probs.argmax(1) == labels).mean())

    def _num(v: float) -> float:
        return 0.0 if v != v else v  # NaN -> 0

    return {
        "image": image, "pixel": pixel, "per_class": per_class, "accuracy": accuracy,
        "score": (_num(image["auroc"]) + _num(pixel["aupro"])) / 2,
    }  # fmt: skip
