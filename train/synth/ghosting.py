"""Ghosting: the semi-transparent duplicates a multi-frame pipeline leaves when something moves.

Model (linear light, per pixel, as in a raw HDR / multi-frame noise-reduction merge):

1. **Object** with a soft alpha matte, one of three routes (``params["route"]``):

   - ``"segment"``: a Felzenszwalb segment of ``clean`` (segmented on a 256 px copy, scale
     150-500, holes filled) that does not touch the border, covers 0.3-20 % of the frame and is
     solid (>= 0.6 of its convex hull), drawn with weight favouring a random target size
     (1-8 %), ring contrast (dE) and boundary gradient strength (hard: only on size among
     low-contrast segments, 4-20 dE); the matte is upsampled and
     refined at full resolution with a guided filter. The background it uncovers is filled by
     biharmonic inpainting of a downscaled crop plus clipped high frequencies of the neighbouring
     same-sized area closest in colour; the object's colour is ``clean - (1 - alpha) * fill``
     (matting equation), so a still object reproduces ``clean`` exactly;
   - ``"pasted"`` (``donor`` given, p = 0.4): a crisp, detailed, contrasting donor segment cut the
     same way, resized to 8-35 % of the long side (hard 6-25 %, never upscaled over 1.5x),
     brightness half-matched to where it lands (uniform random position) and pasted;
   - ``"blob"`` (no qualifying segment): a soft ellipse of ``clean`` treated like a segment.

2. **Frames.** ``n`` = 2 or 3 frames (p = 0.35 / 0.65; hard: 2) one interval apart. The base
   frame has the object at its reference position; frame ``k`` has it moved by
   ``(k - base) * v``: speed log-uniform in 0.8-5 % of the long side per frame (hard 0.15-0.6 %,
   at least 1 px), uniform direction, +-25 % jitter per axis and frame; with p = 0.4 also a
   rotation up to +-4 deg and scaling up to +-4 % per frame about the object's centre (hard: a
   quarter). Exposure: ``X_k = min(S_k * 2**ev_k * g_k, 1)`` with ``S_k`` the frame's linear scene
   and ``g_k`` a per-channel gain error (+-3 % exposure x +-1.5 % white balance; 1 for the base):

   - mode ``"hdr"`` (p = 0.65): ``ev`` = 0 for the base, -gap / +gap for the others (gap
     0.7-2 EV), so the long exposure clips;
   - mode ``"mfnr"``: ``ev`` uniform in +-0.15 EV for the non-base frames.

3. **Fusion without deghosting.** ``F = sum_k w_k X_k / 2**ev_k / sum_k w_k``. ``"hdr"``: ``w_k``
   = Mertens well-exposedness ``exp(-(Y_k - 0.5)**2 / 0.08)`` of the encoded luminance, faded to
   0 as a channel clips (where all frames clip, the shortest exposure decides), times a frame
   factor; ``"mfnr"``: the frame factor only. Factors: base 1, others 0.6-1 (hard: the one extra
   frame 0.2-0.45). ``image`` = sRGB(F); ``reference`` = the same fusion with the object at its
   base position in every frame (for segment routes exactly the fusion of ``clean`` itself).
   The two differ only by the ghosts: semi-transparent copies of the object along its path and
   the see-through hole it leaves, strongest along its edges, their opacity and brightness
   varying with each frame's weight and clipping.

Visibility: while the mask covers less than 0.2 % (hard) / 0.5 % (normal) of the frame, the
motion is scaled by 1.6 and the extra frames' factors raised by 0.1 (up to 3 times, then another
object; at most 3 objects, 5 escalations for the last); ``params["escalations"]`` and
``params["object_attempt"]`` record it.

Mask rule (:mod:`train.synth.common`): ``mask = visible_mask(reference, image)``: every pixel whose
largest per-channel change is >= ``VISIBLE_DELTA`` levels, small gaps closed and holes filled, so
outside the mask the change is below ``VISIBLE_DELTA``. Image and reference are identical outside
a crop around the object's positions, so the mask is computed on that crop (margin wider than the
closing); the result equals the full-image rule.

``params`` holds every random choice; :func:`render_ghosting` replays it exactly (the tests use
it to zero the motion, giving ``image == reference``); :func:`ghost_footprint` gives where the
object is in any frame.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.morphology import convex_hull_image
from skimage.restoration import inpaint_biharmonic
from skimage.segmentation import felzenszwalb

from .common import Sample, fill_holes, linear_to_srgb, srgb_to_linear, visible_mask

WORK_LONG = 256  # long side of the copy that is segmented
MIN_FRACTION = {"hard": 0.002, "normal": 0.005}  # mask fraction the visibility loop enforces
_MARGIN = 12  # crop margin beyond the object's positions (> 2 * visible_mask close_px + 1)

_LIN = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_N_ENC = 4096
_W_EXP = np.exp(-((linear_to_srgb(np.linspace(0, 1, _N_ENC)) - 0.5) ** 2) / 0.08).astype(np.float32)
_N_OUT = 65536
_OUT = np.clip(np.round(linear_to_srgb(np.linspace(0, 1, _N_OUT)) * 255), 0, 255).astype(np.uint8)
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


@dataclass
class _Object:
    """The object at its base position, in a box ``(y0, x0, y1, x1)`` of the clean image."""

    box: tuple[int, int, int, int]
    alpha: np.ndarray  # float32 hxw
    premult: np.ndarray  # float32 hxwx3, linear, multiplied by alpha
    fill: np.ndarray | None  # linear background behind it (None: the clean image itself)
    center: tuple[float, float]  # absolute (y, x)


# ----------------------------------------------------------------------------- helpers


def _resize(img: np.ndarray, hw: tuple[int, int], box=None, resample=Image.BILINEAR) -> np.ndarray:
    """Resize uint8 RGB or float32 2-D arrays with PIL (``box`` in source pixels)."""
    h, w = hw
    if img.ndim == 2:
        out = Image.fromarray(img.astype(np.float32), "F").resize((w, h), resample, box=box)
        return np.asarray(out, np.float32)
    if img.dtype == np.uint8:
        return np.asarray(Image.fromarray(img).resize((w, h), resample, box=box))
    return np.stack([_resize(img[..., c], hw, box, resample) for c in range(img.shape[2])], -1)


def _downscale(img: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    h, w = img.shape[:2]
    scale = max(h, w) / long_side
    if scale <= 1.0:
        return img, 1.0
    hw = (max(1, round(h / scale)), max(1, round(w / scale)))
    return _resize(img, hw, resample=Image.BOX), scale


def _guided(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (grey guide): an edge-aware refinement of the matte ``p``."""

    def box(x: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(x, 2 * r + 1, mode="nearest")

    mi, mp = box(guide), box(p)
    a = (box(guide * p) - mi * mp) / (box(guide * guide) - mi * mi + eps)
    b = mp - a * mi
    return box(a) * guide + box(b)


def _segment(img: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray, float]:
    small, scale = _downscale(img, WORK_LONG)
    min_size = max(8, small.shape[0] * small.shape[1] // 500)
    return small, felzenszwalb(small, scale=k, sigma=0.8, min_size=min_size), scale


def _candidates(small: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    """Compact, mid-sized segments not touching the border, with their contrast to a ring."""
    h, w = labels.shape
    lab = rgb2lab(small)
    grad = np.sqrt(sum(ndimage.sobel(lab[..., c], a) ** 2 for c in range(3) for a in (0, 1)))
    grad_ref = float(np.percentile(grad, 75)) + 1e-3
    area = np.bincount(labels.ravel())
    out = []
    for lbl, sl in enumerate(ndimage.find_objects(labels + 1)):
        if sl is None:
            continue
        frac = area[lbl] / (h * w)
        ys, xs = sl
        bh, bw = ys.stop - ys.start, xs.stop - xs.start
        if not 0.003 <= frac <= 0.2 or ys.start == 0 or xs.start == 0:
            continue
        if ys.stop == h or xs.stop == w or max(bh, bw) > 4 * min(bh, bw):
            continue
        pad = max(2, int(0.15 * math.sqrt(area[lbl])))
        sub = (
            slice(max(ys.start - pad, 0), ys.stop + pad),
            slice(max(xs.start - pad, 0), xs.stop + pad),
        )
        seg = fill_holes(labels[sub] == lbl)
        fill = seg.sum() / (bh * bw)
        solidity = seg.sum() / convex_hull_image(seg).sum()
        if fill < 0.35 or solidity < 0.6:
            continue
        ring = ndimage.binary_dilation(seg, iterations=pad) & ~seg
        contrast = float(np.linalg.norm(lab[sub][seg].mean(0) - lab[sub][ring].mean(0)))
        edge = seg & ~ndimage.binary_erosion(seg)
        edge_abs = float(grad[sub][edge].mean())
        strength = edge_abs / grad_ref
        detail = float(lab[sub][seg][:, 0].std())
        out.append({"label": lbl, "frac": float(seg.sum() / (h * w)), "solidity": float(solidity),
                    "contrast": contrast, "edge": strength, "edge_abs": edge_abs,
                    "detail": detail})  # fmt: skip
    return out


def _choose(
    cands: list[dict[str, Any]], rng: np.random.Generator, hard: bool, donor: bool = False
) -> dict | None:
    """Random segment favouring solidity, contrast, boundary strength and (not for donor
    cut-outs, which are resized anyway) a random target size; hard favours low contrast."""
    if donor:
        cands = [d for d in cands if d["edge"] >= 1.3 and d["contrast"] >= 12 and d["detail"] >= 5]
        cands = [d for d in cands if d["frac"] >= 0.005 and d["edge_abs"] >= 40]
    if not cands:
        return None
    target = math.exp(rng.uniform(math.log(0.01), math.log(0.08 if not hard else 0.05)))
    c = np.array([d["contrast"] for d in cands])
    size = np.array([math.exp(-0.5 * (math.log(d["frac"] / target) / 0.8) ** 2) for d in cands])
    if donor:
        size[:] = 1.0
    solid = np.array([d["solidity"] for d in cands])
    if hard:
        score = solid * size * ((c >= 4) & (c <= 20)) + 1e-9 * (c >= 3)
    else:
        edge = np.array([d["edge"] for d in cands])
        score = (solid * size * np.minimum(c, 40) / 40 * np.minimum(edge, 3) / 3) ** 2 * (c >= 8)
        score += 1e-9 * (c >= 5)
    if score.sum() <= 0:
        return None
    return cands[int(rng.choice(len(cands), p=score / score.sum()))]


def _matte(img: np.ndarray, labels: np.ndarray, label: int, scale: float) -> tuple:
    """Full-resolution soft matte of a work-resolution segment: (box, alpha)."""
    seg = fill_holes(labels == label)
    ys, xs = np.nonzero(seg)
    r = max(1, round(0.8 * scale))
    pad = 2 * r + 4
    h, w = img.shape[:2]
    y0, x0 = max(0, int(ys.min() * scale) - pad), max(0, int(xs.min() * scale) - pad)
    y1, x1 = min(h, int((ys.max() + 1) * scale) + pad), min(w, int((xs.max() + 1) * scale) + pad)
    soft = ndimage.gaussian_filter(seg.astype(np.float32), 0.6)
    # the work-resolution grid may be a fraction of a pixel smaller than h/scale: clamp the box
    box = (x0 / scale, y0 / scale, min(x1 / scale, seg.shape[1]), min(y1 / scale, seg.shape[0]))
    up = _resize(soft, (y1 - y0, x1 - x0), box=box)
    hard_m = (up >= 0.5).astype(np.float32)
    if scale > 1.0:
        guide = img[y0:y1, x0:x1].astype(np.float32) @ (_LUMA / 255.0)
        hard_m = _guided(guide, hard_m, r, 2e-3)
    alpha = ndimage.gaussian_filter(np.clip(hard_m, 0, 1), 0.6).astype(np.float32)
    alpha[alpha < 0.01] = 0.0
    return (y0, x0, y1, x1), alpha


def _blob(shape: tuple[int, int], rng: np.random.Generator) -> dict[str, Any]:
    h, w = shape
    ry, rx = rng.uniform(0.08, 0.2) * h, rng.uniform(0.08, 0.2) * w
    cy, cx = rng.uniform(ry + 2, h - ry - 2), rng.uniform(rx + 2, w - rx - 2)
    return {"cy": float(cy), "cx": float(cx), "ry": float(ry), "rx": float(rx)}


def _blob_matte(shape: tuple[int, int], b: dict[str, Any]) -> tuple:
    h, w = shape
    y0, y1 = max(0, int(b["cy"] - b["ry"]) - 4), min(h, int(b["cy"] + b["ry"]) + 5)
    x0, x1 = max(0, int(b["cx"] - b["rx"]) - 4), min(w, int(b["cx"] + b["rx"]) + 5)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.sqrt(((yy - b["cy"]) / b["ry"]) ** 2 + ((xx - b["cx"]) / b["rx"]) ** 2)
    alpha = np.clip((1 - d) * min(b["ry"], b["rx"]) / 1.5 + 0.5, 0, 1).astype(np.float32)
    return (y0, x0, y1, x1), alpha


def _background_fill(clean: np.ndarray, box: tuple, alpha: np.ndarray) -> np.ndarray:
    """Linear background behind the object: biharmonic fill of a downscaled crop (sRGB-encoded)
    plus the clipped high frequencies of the same-sized area beside the object (of the four
    sides, the one closest in mean colour)."""
    y0, x0, y1, x1 = box
    h, w = alpha.shape
    hole = ndimage.binary_dilation(alpha > 0, iterations=2)
    crop = clean[y0:y1, x0:x1].astype(np.float32) / 255.0
    f = max(1.0, max(h, w) / 64)
    sh, sw = max(4, round(h / f)), max(4, round(w / f))
    small = _resize(crop, (sh, sw), resample=Image.BOX)
    small_hole = _resize(hole.astype(np.float32), (sh, sw), resample=Image.BOX) > 0.02
    filled = inpaint_biharmonic(small, small_hole, channel_axis=-1).astype(np.float32)
    fill = _resize(filled, (h, w))
    target = filled[small_hole].mean(0) if small_hole.any() else filled.mean((0, 1))
    big_h, big_w = clean.shape[:2]
    best, best_d = None, np.inf
    for dy, dx in ((0, w), (0, -w), (h, 0), (-h, 0)):
        if 0 <= y0 + dy and y1 + dy <= big_h and 0 <= x0 + dx and x1 + dx <= big_w:
            src = clean[y0 + dy : y1 + dy, x0 + dx : x1 + dx].astype(np.float32) / 255.0
            d = float(np.abs(src.mean((0, 1)) - target).sum())
            if d < best_d:
                best, best_d = src, d
    if best is not None:
        fill = fill + np.clip(0.8 * (best - ndimage.gaussian_filter(best, (f, f, 0))), -0.12, 0.12)
    fill = srgb_to_linear(np.clip(fill, 0.0, 1.0)).astype(np.float32)
    return np.where(hole[..., None], fill, _LIN[clean[y0:y1, x0:x1]])


# ----------------------------------------------------------------------------- object


def _build_object(
    clean: np.ndarray, p: dict[str, Any], donor: np.ndarray | None, seg=None
) -> _Object:
    """The object described by ``p`` (deterministic; ``seg`` reuses a ``_segment`` result)."""
    h, w = clean.shape[:2]
    fill = None
    if p["route"] == "pasted":
        assert donor is not None, "route 'pasted' needs the donor"
        small, labels, scale = seg or _segment(donor, p["seg_k"])
        (y0, x0, y1, x1), alpha = _matte(donor, labels, p["label"], scale)
        f = min(1.5, p["size"] * max(h, w) / max(y1 - y0, x1 - x0))  # at most 1.5x upscaling
        oh, ow = min(h - 2, max(4, round((y1 - y0) * f))), min(w - 2, max(4, round((x1 - x0) * f)))
        rgb = _resize(donor[y0:y1, x0:x1], (oh, ow), resample=Image.LANCZOS)
        alpha = np.clip(_resize(alpha, (oh, ow)), 0, 1)
        alpha[alpha < 0.01] = 0.0
        py, px = round(p["pos"][0] * (h - oh)), round(p["pos"][1] * (w - ow))
        box = (py, px, py + oh, px + ow)
        obj_lin = _LIN[rgb]
        a_sum = alpha.sum() + 1e-6
        y_obj = float((obj_lin @ _LUMA * alpha).sum() / a_sum)
        y_bg = float((_LIN[clean[py : py + oh, px : px + ow]] @ _LUMA).mean())
        obj_lin = np.clip(
            obj_lin * np.clip(math.sqrt((y_bg + 1e-3) / (y_obj + 1e-3)), 0.5, 2), 0, 1
        )
    else:
        if p["route"] == "segment":
            small, labels, scale = seg or _segment(clean, p["seg_k"])
            box, alpha = _matte(clean, labels, p["label"], scale)
        else:
            box, alpha = _blob_matte((h, w), p["blob"])
        y0, x0, y1, x1 = box
        fill = _background_fill(clean, box, alpha)
    yy, xx = np.nonzero(alpha > 0.5) if (alpha > 0.5).any() else np.nonzero(alpha >= 0)
    center = (box[0] + float(yy.mean()), box[1] + float(xx.mean()))
    a3 = alpha[..., None]
    if fill is None:
        premult = obj_lin * a3
    else:  # matting equation: what is left of the clean pixel once the background is removed
        premult = np.clip(_LIN[clean[y0:y1, x0:x1]] - (1.0 - a3) * fill, 0.0, a3)
    return _Object(box, alpha, premult.astype(np.float32), fill, center)


# ----------------------------------------------------------------------------- frames, fusion


def _fuse(scenes: list[list[np.ndarray]], frames: list[dict[str, Any]], mode: str) -> list:
    """Exposure-normalised, weighted per-pixel merge of the frames (no deghosting), linear.

    ``scenes``: per frame, its linear scene as three float32 colour planes; returns three planes.
    """
    shape = scenes[0][0].shape
    num = [np.zeros(shape, np.float32) for _ in range(3)]
    den = np.zeros(shape, np.float32)
    xs = [np.empty(shape, np.float32) for _ in range(3)]  # buffers reused across frames
    y, sat, wgt = (np.empty(shape, np.float32) for _ in range(3))
    idx = np.empty(shape, np.int32)
    one = np.float32(1.0)
    darkest = min(f["ev"] for f in frames)
    for planes, f in zip(scenes, frames, strict=True):
        m = np.float32(2.0 ** f["ev"])
        gain = np.asarray(f["gain"], np.float32) * m
        for c in range(3):
            np.multiply(planes[c], gain[c], out=xs[c])
            np.minimum(xs[c], one, out=xs[c])
        if mode == "hdr":  # Mertens well-exposedness of the encoded luminance, clipping damped
            np.multiply(xs[0], _LUMA[0] * (_N_ENC - 1), out=y)
            y += xs[1] * (_LUMA[1] * (_N_ENC - 1))
            y += xs[2] * (_LUMA[2] * (_N_ENC - 1)) + np.float32(0.5)
            np.copyto(idx, y, casting="unsafe")
            np.minimum(idx, _N_ENC - 1, out=idx)
            np.take(_W_EXP, idx, out=wgt)
            np.maximum(xs[0], xs[1], out=sat)
            np.maximum(sat, xs[2], out=sat)
            np.subtract(one, sat, out=sat)
            sat *= np.float32(50.0)
            np.clip(sat, 0.0, 1.0, out=sat)
            wgt *= sat
            wgt *= np.float32(f["weight"])
            if f["ev"] == darkest:  # where every frame clips, the shortest exposure decides
                wgt += np.float32(1e-6)
            den += wgt
            wgt /= m
            for c in range(3):
                xs[c] *= wgt
                num[c] += xs[c]
        else:
            den += np.float32(f["weight"])
            for c in range(3):
                xs[c] *= np.float32(f["weight"] / m)
                num[c] += xs[c]
    for c in range(3):
        num[c] /= den
    return num


def _encode(planes: list[np.ndarray]) -> np.ndarray:
    """Linear planes -> sRGB uint8 HxWx3 (65536-entry table)."""
    out = np.empty((*planes[0].shape, 3), np.uint8)
    for c, plane in enumerate(planes):
        idx = plane * np.float32(_N_OUT - 1) + np.float32(0.5)
        np.clip(idx, 0, _N_OUT - 1, out=idx)
        out[..., c] = _OUT[idx.astype(np.int32)]
    return out


def _planes(a: np.ndarray) -> list[np.ndarray]:
    return [a[..., c] for c in range(3)]


def _matrix(f: dict[str, Any]) -> np.ndarray:
    t = math.radians(f["rot"])
    return f["scale"] * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def _moves(f: dict[str, Any]) -> bool:
    return f["dy"] != 0 or f["dx"] != 0 or f["rot"] != 0 or f["scale"] != 1


def _place(obj: _Object, f: dict[str, Any], crop: tuple[int, int, int, int]) -> tuple:
    """Premultiplied colour and alpha of the object moved by frame ``f``, in crop coordinates."""
    cy0, cx0, cy1, cx1 = crop
    shape = (cy1 - cy0, cx1 - cx0)
    y0, x0, y1, x1 = obj.box
    if not _moves(f):
        rgb = np.zeros((*shape, 3), np.float32)
        alpha = np.zeros(shape, np.float32)
        sl = (slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))
        rgb[sl], alpha[sl] = obj.premult, obj.alpha
        return rgb, alpha
    inv = np.linalg.inv(_matrix(f))
    c = np.array(obj.center)
    offset = inv @ (np.array([cy0, cx0]) - c - np.array([f["dy"], f["dx"]])) + c - (y0, x0)

    def warp(a: np.ndarray) -> np.ndarray:
        return ndimage.affine_transform(a, inv, offset, shape, order=1, mode="constant", cval=0.0)

    rgb = np.stack([warp(obj.premult[..., k]) for k in range(3)], -1)
    return rgb, np.clip(warp(obj.alpha), 0, 1)


def _crop(obj: _Object, frames: list[dict[str, Any]], hw: tuple[int, int]) -> tuple:
    y0, x0, y1, x1 = obj.box
    corners = np.array([[y0, x0], [y0, x1], [y1, x0], [y1, x1]], float) - obj.center
    pts = [corners + obj.center]
    for f in frames:
        pts.append(corners @ _matrix(f).T + obj.center + (f["dy"], f["dx"]))
    pts = np.concatenate(pts)
    lo = np.floor(pts.min(0)).astype(int) - _MARGIN
    hi = np.ceil(pts.max(0)).astype(int) + _MARGIN
    return max(0, lo[0]), max(0, lo[1]), min(hw[0], hi[0]), min(hw[1], hi[1])


def _render(clean: np.ndarray, obj: _Object, p: dict[str, Any], static: np.ndarray) -> Sample:
    frames, mode = p["frames"], p["mode"]
    crop = _crop(obj, frames, clean.shape[:2])
    cy0, cx0, cy1, cx1 = crop
    original = _LIN[clean[cy0:cy1, cx0:cx1]]
    scene = original.copy()
    if obj.fill is not None:
        y0, x0, y1, x1 = obj.box
        scene[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0] = obj.fill

    def composite(f: dict[str, Any]) -> np.ndarray:
        rgb, alpha = _place(obj, f, crop)
        return rgb + scene * (1.0 - alpha)[..., None]

    # segment routes: the object at its base position is the clean image itself
    base = original if obj.fill is not None else composite({"dy": 0, "dx": 0, "rot": 0, "scale": 1})
    moved = [composite(f) if _moves(f) else base for f in frames]
    ref_crop = _encode(_fuse([_planes(base)] * len(frames), frames, mode))
    img_crop = _encode(_fuse([_planes(x) for x in moved], frames, mode))
    reference = static.copy()
    reference[cy0:cy1, cx0:cx1] = ref_crop
    image = static.copy()
    image[cy0:cy1, cx0:cx1] = img_crop
    mask = np.zeros(clean.shape[:2], bool)
    mask[cy0:cy1, cx0:cx1] = visible_mask(ref_crop, img_crop)
    params = copy.deepcopy(p)
    return Sample(image=image, reference=reference, mask=mask, label="ghosting", params=params)


def _static(clean: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    planes = [_LIN[clean[..., c]] for c in range(3)]
    return _encode(_fuse([planes] * len(p["frames"]), p["frames"], p["mode"]))


def render_ghosting(
    clean: np.ndarray, params: dict[str, Any], donor: np.ndarray | None = None
) -> Sample:
    """Replay ``params`` (from :func:`synthesize_ghosting`) on ``clean``: the same sample."""
    obj = _build_object(clean, params, donor)
    return _render(clean, obj, params, _static(clean, params))


def ghost_footprint(
    clean: np.ndarray, params: dict[str, Any], donor: np.ndarray | None = None
) -> np.ndarray:
    """Bool HxW: where the object (or, segment routes, its filled hole) is in any frame of
    ``params``; the only place image and reference can differ."""
    obj = _build_object(clean, params, donor)
    h, w = clean.shape[:2]
    full = (0, 0, h, w)
    out = np.zeros((h, w), bool)
    for f in [{"dy": 0, "dx": 0, "rot": 0, "scale": 1}, *params["frames"]]:
        out |= _place(obj, f, full)[1] > 0
    if obj.fill is not None:
        y0, x0, y1, x1 = obj.box
        out[y0:y1, x0:x1] |= ndimage.binary_dilation(obj.alpha > 0, iterations=2)
    return out


# ----------------------------------------------------------------------------- random choices


def _draw_frames(rng: np.random.Generator, hard: bool, long_side: int) -> dict[str, Any]:
    mode = "hdr" if rng.random() < 0.65 else "mfnr"
    n = 2 if hard else (3 if rng.random() < 0.65 else 2)
    base = int(rng.integers(0, n))
    if hard:
        speed = max(1.0, long_side * float(rng.uniform(0.0015, 0.006)))
    else:
        speed = long_side * math.exp(rng.uniform(math.log(0.008), math.log(0.05)))
    theta = float(rng.uniform(0, 2 * math.pi))
    spin = (0.25 if hard else 1.0) * (rng.random() < 0.4)
    rot_rate = spin * float(rng.uniform(-4, 4))
    scale_rate = spin * float(rng.uniform(-0.04, 0.04))
    gap = float(rng.uniform(0.7, 2.0))
    signs = list(rng.permutation([-1.0, 1.0]))
    frames = []
    for k in range(n):
        dt = k - base
        if dt == 0:
            frames.append({"ev": 0.0, "gain": [1.0, 1.0, 1.0], "weight": 1.0, "dy": 0.0,
                           "dx": 0.0, "rot": 0.0, "scale": 1.0})  # fmt: skip
            continue
        ev = signs.pop() * gap if mode == "hdr" else float(rng.uniform(-0.15, 0.15))
        expo = 1.0 + rng.uniform(-0.03, 0.03)
        gain = [float(expo * (1.0 + rng.uniform(-0.015, 0.015))) for _ in range(3)]
        weight = float(rng.uniform(0.2, 0.45) if hard else rng.uniform(0.6, 1.0))
        jit = 1.0 + rng.uniform(-0.25, 0.25, 2)
        frames.append({
            "ev": float(ev), "gain": gain, "weight": weight,
            "dy": float(dt * speed * math.sin(theta) * jit[0]),
            "dx": float(dt * speed * math.cos(theta) * jit[1]),
            "rot": dt * rot_rate, "scale": 1.0 + dt * scale_rate,
        })  # fmt: skip
    return {"mode": mode, "n_frames": n, "base_frame": base, "speed_px": float(speed),
            "direction_rad": theta, "gap_ev": gap, "frames": frames}  # fmt: skip


def _escalate(p: dict[str, Any]) -> None:
    cap = 0.6 if p["hard"] else 1.0
    for f in p["frames"]:
        if _moves(f):
            f["dy"], f["dx"], f["rot"] = 1.6 * f["dy"], 1.6 * f["dx"], 1.6 * f["rot"]
            f["scale"] = 1.0 + 1.6 * (f["scale"] - 1.0)
            f["weight"] = min(cap, f["weight"] + 0.1)
    p["escalations"] += 1


def _choose_object(
    clean: np.ndarray,
    rng: np.random.Generator,
    hard: bool,
    donor: np.ndarray | None,
    tried: set[tuple[str, int]],
) -> tuple[dict[str, Any], tuple | None]:
    """Random object choice (route, segment, size, position) and the segmentation it used."""
    h, w = clean.shape[:2]
    if donor is not None and rng.random() < 0.4:
        k = float(rng.uniform(150, 500))
        seg = _segment(donor, k)
        cands = [c for c in _candidates(seg[0], seg[1]) if ("pasted", c["label"]) not in tried]
        choice = _choose(cands, rng, hard=False, donor=True)
        if choice is not None:
            size = float(rng.uniform(0.06, 0.25) if hard else rng.uniform(0.08, 0.35))
            pos = [float(rng.random()), float(rng.random())]
            return {"route": "pasted", "seg_k": k, "label": choice["label"], "size": size,
                    "pos": pos}, seg  # fmt: skip
    k = float(rng.uniform(150, 500))
    seg = _segment(clean, k)
    cands = [c for c in _candidates(seg[0], seg[1]) if ("segment", c["label"]) not in tried]
    choice = _choose(cands, rng, hard)
    if choice is not None:
        return {"route": "segment", "seg_k": k, "label": choice["label"]}, seg
    return {"route": "blob", "blob": _blob((h, w), rng)}, None


def synthesize_ghosting(
    clean: np.ndarray,
    rng: np.random.Generator,
    *,
    hard: bool = False,
    donor: np.ndarray | None = None,
) -> Sample:
    """Fuse 2-3 exposures of ``clean`` in which an object moves, without deghosting."""
    h, w = clean.shape[:2]
    frames = _draw_frames(rng, hard, max(h, w))
    need = MIN_FRACTION["hard" if hard else "normal"] * h * w
    statics: dict[str, np.ndarray] = {}
    tried: set[tuple[str, int]] = set()
    best = None
    for attempt in range(3):  # up to three objects, each with up to 3 (last: 5) escalations
        choice, seg = _choose_object(clean, rng, hard, donor, tried)
        tried.add((choice["route"], choice.get("label", -1)))
        p: dict[str, Any] = {"hard": bool(hard), **choice, **copy.deepcopy(frames)}
        p.update(escalations=0, object_attempt=attempt)
        obj = _build_object(clean, p, donor, seg)
        while True:
            key = repr([(f["ev"], f["gain"], f["weight"]) for f in p["frames"]])
            if key not in statics:
                statics[key] = _static(clean, p)
            sample = _render(clean, obj, p, statics[key])
            if best is None or sample.mask.sum() > best.mask.sum():
                best = sample
            if sample.mask.sum() >= need or p["escalations"] >= (5 if attempt == 2 else 3):
                break
            _escalate(p)
        if sample.mask.sum() >= need:
            return sample
    return best
