"""Moire: aliasing between a display's sub-pixel lattice and the camera's sensor lattice.

Photos of screens are rare in our data, so this module builds them: ``content`` shown on a
simulated display, placed into the ``clean`` photo and imaged by a simulated camera.

Display route (~70 %): physical model
-------------------------------------
1. **Display.** ``content`` (cropped to the panel's aspect) is the frame buffer of an
   ``Nx x Ny`` display. Each pixel emits through sub-pixels with a black matrix: an RGB/BGR
   *stripe* (70 %; vertical, or horizontal for a rotated panel; lit fraction 55-90 % across,
   60-92 % along) or a diamond *PenTile* layout (30 %; a small green square per pixel, large
   red/blue diamonds on a checkerboard). Emission is linear light whose local mean is the frame
   buffer times a gain (0.5-0.95) and a slight white-point tint.
2. **Geometry.** A 3-D panel (yaw +-35, pitch +-25, roll +-12 deg), pinhole-projected to a
   perspective quad: at a random place (45-90 % of the photo height, hard 22-40 %; a dark or
   silver bezel 75 % of the time; a faint glass reflection), over a bright screen-like rectangle
   found by :func:`detect_screen`, or filling the whole frame (30 %: a photo of a monitor,
   +-10/8/4 deg). The display pitch varies across the quad, so the beats curve.
3. **Camera.** Sensor pitch ``p_s`` (sensor px per display px): log-uniform in 1.6-2.8 (55 %),
   1.0-1.6 (30 %) or 0.6-1.0 (15 %); near 2 the lattice beats against the CFA's red/blue
   sub-lattice. Only the quad's bounding box is rendered, at ``S`` = 3 (``p_s`` < 1.5) or 2
   supersamples per sensor px, in row bands; each supersample integrates the sub-pixel pattern
   exactly over its footprint (box-filtered pulse trains), so the render itself does not alias.
   Lens blur (Gaussian, sigma 0.25-0.55 sensor px) times the pixel aperture (box, fill factor
   0.6-1.0) is one kernel applied with stride ``S``: area sampling on the sensor lattice, not an
   antialiasing resize, so frequencies above Nyquist fold back as beats. A Bayer CFA (random
   phase) is demosaicked bilinearly (hand-written convolution: no demosaicing library is a
   dependency), which turns the folded frequencies into colour bands; the ISP then smooths
   chroma (70 %, sigma 0.4-1.2 px) and downscales by ``k`` in {1, 1.5, 2, 3} (antialiased
   bicubic; ``k`` is lowered when the render would exceed 5 M supersamples). The output pitch is
   ``p = p_s / k`` output px per display px.
4. **Reference** (alias-free): the same geometry, frame buffer, lens, sampling and downscale, but
   each display pixel emits its sub-pixels' mean (same brightness) and there is no CFA. CFA,
   demosaic and chroma smoothing are linear, so they are applied to the sub-pixel residual
   (moire render - reference render) only: the content's own edges gain no demosaic zipper.
   Screen, bezel and reflection are composited into the scene in linear light identically for
   both, so outside the screen the photo is unchanged.
5. **Strength** (Eq. 1): ``I = Igt*(1-M) + ((1-phi)*Igt + phi*N)*M`` with Igt the reference, N
   the camera render and M the screen coverage (hard: times a Gaussian blob, radius 15-40 % of
   the screen, so subtle moire is local). Normal: phi ~ U(0.55, 1), raised until the median beat
   contrast on the screen is >= 1.8 x ``CONTRAST_RMS``; if even phi = 1 cannot reach it, the
   display/camera is redrawn (at most 4 attempts, retries from the strongest pitch range).
   Hard: phi puts the strongest 2 % of the photo at 1.1-1.6 x ``CONTRAST_RMS``, raised x1.5 until
   the mask holds >= 0.5 % of the pixels.

Grating route (~30 %)
---------------------
The reference scene (the display with its content, as above) blended by Eq. 1 with N = reference
times 2-3 sinusoidal gratings (carrier 0.3-0.8 cycles/px, point-sampled so it aliases too) whose
frequencies differ slightly: beats of period 10-40 px (hard 5-14 px), amplitude 0.15-0.45, in the
display's coordinates (curved by the perspective) plus smooth warps and a quadratic term; the
beat's phase is shifted per colour channel by 0.6-2.1 rad (rainbow bands). M = the screen times a
random linear ramp (hard: and the blob); phi as above.

Wide bands (``wide_bands``, default 0: off)
------------------------------------------
That share of the items takes the grating route with beat periods log-uniform in
``WIDE_PERIODS`` (30-160 output px) whatever ``hard`` is: the broad, curved rainbow bands of a
screen shot at a pitch close to the sensor's, the commonest moire of the real screen photos we
compared with, and wide enough to survive the model's 4x downscale (the routes above draw finer
beats, which it mostly erases).
The mask rule's box scales with the period (``_mask_box``) so that the bands count.

Mask rule
---------
``d = image - reference`` per channel, high-passed (minus its 15 px box mean: periods up to ~40 px
count; wide bands: a box of period / 2.5 px); its energy summed over channels and averaged over
the same box gives the local RMS contrast. Screen pixels (coverage >= 0.5) with RMS >=
``CONTRAST_RMS`` = VISIBLE_DELTA / (2 sqrt 2) ~ 2.1 levels (a sinusoid of that RMS swings
VISIBLE_DELTA peak to peak) are closed (5x5), hole-filled and clipped to the screen, then united
with :func:`common.visible_mask`, so every pixel changed by >= VISIBLE_DELTA is in the mask.

Cost (one core, measured): 768x512 ~0.27 s mean (hard ~0.15 s, 0.8 s max with a redraw);
4096x2731 ~1-5 s for a placed screen, ~8-11 s when the screen fills the frame (k = 1, S = 2:
~45 M supersamples; on boxes over 1.5 M px a 384 px central probe rejects weak draws first).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.special import erf

from .common import (
    VISIBLE_DELTA,
    Sample,
    close_square,
    fill_holes,
    linear_to_srgb,
    srgb_to_linear,
    to_uint8,
    visible_mask,
)
from .scenes import ui_content

#: Local RMS contrast (8-bit levels) of the high-passed difference that counts as visible pattern.
CONTRAST_RMS = VISIBLE_DELTA / (2.0 * math.sqrt(2.0))
_F32 = np.float32
_ASPECTS = (16 / 9, 16 / 10, 4 / 3, 3 / 2, 9 / 16, 3 / 4, 2 / 3)
_MAX_SUPERSAMPLES = 5_000_000  # cap on the ISP downscale k's render cost (supersamples)
_PROBE, _PROBE_SIDE = 1_500_000, 384  # boxes above this area are probed on a central window
_BAND_SAMPLES = 1_200_000  # supersamples per row band (keeps temporaries cache-friendly)
_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(_F32)  # uint8 sRGB -> linear
_TO_SRGB8 = to_uint8(linear_to_srgb(np.arange(65536) / 65535.0))  # 16-bit linear -> uint8 sRGB


#: default share of screens that fill the whole frame (a photo of a monitor or TV)
FULL_FRAME_P = 0.3
#: beat periods (output px) of the wide-band variant (log-uniform)
WIDE_PERIODS = (30.0, 160.0)
_MASK_BOX = 15  # the mask rule's box (px) for the fine patterns


def _mask_box(period: float | None) -> int:
    """The mask rule's box (px): 15, or period / 2.5 for wide bands (periods up to ~2.5 x box
    survive its high pass)."""
    return _MASK_BOX if period is None else max(_MASK_BOX, math.ceil(period / 2.5))


def _linear(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float32 linear light (lookup table)."""
    return _TO_LINEAR[image]


def _srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear light -> uint8 sRGB through a 16-bit lookup table (error < 0.06 levels)."""
    idx = linear * _F32(65535.0)
    idx += _F32(0.5)
    np.clip(idx, 0, 65535, out=idx)
    return _TO_SRGB8[idx.astype(np.uint16)]


# ----------------------------------------------------------------------------- geometry


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 H with dst ~ H @ src for four point pairs (x, y)."""
    rows, rhs = [], []
    for (x, y), (X, Y) in zip(src, dst, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -X * x, -X * y])
        rows.append([0, 0, 0, x, y, 1, -Y * x, -Y * y])
        rhs += [X, Y]
    h = np.linalg.solve(np.array(rows, float), np.array(rhs, float))
    return np.append(h, 1.0).reshape(3, 3)


def _inside_convex(quad: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Which points (N x 2) lie inside the convex quad (4 x 2, any winding)."""
    signs = []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        signs.append((b[0] - a[0]) * (pts[:, 1] - a[1]) - (b[1] - a[1]) * (pts[:, 0] - a[0]))
    s = np.stack(signs)
    return np.all(s >= 0, axis=0) | np.all(s <= 0, axis=0)


def _panel_quad(
    rng: np.random.Generator, h: int, w: int, aspect: float, full: bool, hard: bool
) -> tuple[np.ndarray, dict[str, float]]:
    """Corners (TL, TR, BR, BL as x, y) of a tilted rectangular panel seen by a pinhole camera."""
    lim = (10.0, 8.0, 4.0) if full else (35.0, 25.0, 12.0)
    yaw, pitch, roll = (float(rng.uniform(-a, a)) for a in lim)
    cy, sy = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    cp, sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
    cr, sr = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    rot = (
        np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    )
    corners = np.array([[-aspect, -1, 0], [aspect, -1, 0], [aspect, 1, 0], [-aspect, 1, 0.0]])
    cam = corners @ rot.T + np.array([0.0, 0.0, 4.0])
    proj = 4.0 * cam[:, :2] / cam[:, 2:3]  # focal length = distance: about unit scale
    proj -= proj.mean(axis=0)
    if full:  # grow until the quad covers the frame, then a little more
        img = np.array([[0, 0], [w, 0], [w, h], [0, h]], float) - [w / 2, h / 2]
        scale = max(w, h) / 4.0
        while not _inside_convex(proj * scale, img).all():
            scale *= 1.05
        scale *= float(rng.uniform(1.02, 1.3))
        centre = np.array([w / 2, h / 2]) + rng.uniform(-0.03, 0.03, 2) * [w, h]
    else:
        lo, hi = (0.22, 0.4) if hard else (0.45, 0.9)
        span = proj.max(axis=0) - proj.min(axis=0)
        target = float(rng.uniform(lo, hi))
        scale = min(target * h / span[1], 0.95 * w / span[0])
        half = span * scale / 2
        centre = np.array(
            [rng.uniform(min(half[0], w / 2), max(w - half[0], w / 2)),
             rng.uniform(min(half[1], h / 2), max(h - half[1], h / 2))]
        )  # fmt: skip
    return proj * scale + centre, {"yaw": yaw, "pitch": pitch, "roll": roll}


def detect_screen(image: np.ndarray) -> dict[str, Any] | None:
    """A bright, low-texture, roughly rectangular region (a screen, window or sign), or None.

    Threshold luma at max(160, 80th percentile) on a <= 512 px copy, keep pixels whose 7x7 local
    std is < 6 levels, open, label; a region qualifies with 1-60 % of the area, extent >= 0.75,
    solidity >= 0.9, axis ratio <= 3.5 and touching at most one image border. Returns the largest
    one's corners (TL, TR, BR, BL as x, y in full-resolution pixels) and its shape statistics.
    """
    from skimage import measure

    h, w = image.shape[:2]
    f = min(1.0, 512.0 / max(h, w))
    small = image
    if f < 1.0:
        small = np.asarray(
            Image.fromarray(image).resize((max(8, round(w * f)), max(8, round(h * f))), Image.BOX)
        )
    sh, sw = small.shape[:2]
    luma = small.astype(_F32) @ np.array([0.299, 0.587, 0.114], _F32)
    mean = ndimage.uniform_filter(luma, 7)
    std = np.sqrt(np.maximum(ndimage.uniform_filter(luma * luma, 7) - mean * mean, 0))
    cand = (luma >= max(160.0, float(np.percentile(luma, 80)))) & (std < 6.0)
    cand = ndimage.binary_opening(cand, np.ones((3, 3), bool))
    best = None
    for reg in measure.regionprops(measure.label(cand, connectivity=1)):
        r0, c0, r1, c1 = reg.bbox
        borders = (r0 == 0) + (c0 == 0) + (r1 == sh) + (c1 == sw)
        frac = reg.area / (sh * sw)
        ratio = reg.axis_major_length / max(reg.axis_minor_length, 1e-6)
        if not (0.01 <= frac <= 0.6 and reg.extent >= 0.75 and reg.solidity >= 0.9):
            continue
        if borders > 1 or ratio > 3.5 or min(r1 - r0, c1 - c0) < 6:
            continue
        if best is None or reg.area > best.area:
            best = reg
    if best is None:
        return None
    pts = best.coords[:, ::-1].astype(float) + 0.5  # (x, y) pixel centres
    centre = pts.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov((pts - centre).T))
    a, b = (pts - centre) @ vecs[:, 1], (pts - centre) @ vecs[:, 0]
    idx = [np.argmax(a + b), np.argmax(a - b), np.argmax(-a - b), np.argmax(-a + b)]
    corners = pts[idx] + 0.5 * np.sign(pts[idx] - centre)  # to the pixel's outer corner
    ang = np.arctan2(corners[:, 1] - centre[1], corners[:, 0] - centre[0])
    corners = corners[np.argsort(ang)]  # clockwise in image coords, starting near -135 deg (TL)
    start = int(np.argmin(corners.sum(axis=1)))
    corners = np.roll(corners, -start, axis=0)
    x, y = corners[:, 0], corners[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    e = np.roll(corners, -1, axis=0) - corners  # edge vectors
    turns = e[:, 0] * np.roll(e, -1, axis=0)[:, 1] - e[:, 1] * np.roll(e, -1, axis=0)[:, 0]
    if area < 0.6 * best.area or not ((turns > 0).all() or (turns < 0).all()):
        return None  # degenerate or non-convex corner fit
    corners = corners / f
    return {
        "corners": corners.round(2).tolist(),
        "area_frac": round(float(best.area / (sh * sw)), 4),
        "extent": round(float(best.extent), 3),
        "solidity": round(float(best.solidity), 3),
    }


# ----------------------------------------------------------------------------- rendering


def _pulse(x: np.ndarray, w: np.ndarray, period: float, start: float, length: float) -> np.ndarray:
    """A periodic pulse train (1 on [start, start+length) mod period) box-filtered with width w.

    Exact integral through the train's cumulative function, so sampling it does not alias.
    """
    a = x - (0.5 * w + start)
    b = a + w
    fa = np.floor(a * _F32(1.0 / period))
    fb = np.floor(b * _F32(1.0 / period))
    ca = np.clip(a - fa * _F32(period), 0, length)
    cb = np.clip(b - fb * _F32(period), 0, length)
    return ((fb - fa) * _F32(length) + cb - ca) / w


def _step(x: np.ndarray, w: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Box-filtered indicator of lo <= x < hi (coverage)."""
    return np.clip((x - lo) / w + 0.5, 0, 1) * np.clip((hi - x) / w + 0.5, 0, 1)


def _sensor_kernel(s: int, sigma: float, fill: float) -> tuple[np.ndarray, int]:
    """Lens Gaussian (sigma, sensor px) * pixel aperture box (fill) as taps on the S-grid.

    Returns the taps for supersample offsets -g .. S-1+g relative to a pixel's first one, and g.
    """
    g = int(math.ceil(3.0 * sigma * s + 0.5 * (1 - fill) * s))
    t = np.arange(-g, s + g) + 0.5 - s / 2
    half, sd = fill * s / 2, max(sigma * s, 1e-3) * math.sqrt(2)
    k = erf((t + half) / sd) - erf((t - half) / sd)
    return (k / k.sum()).astype(_F32), g


def _reduce(a: np.ndarray, k: np.ndarray, s: int, n_rows: int, n_cols: int) -> np.ndarray:
    """Apply taps ``k`` with stride ``s`` along both axes of a supersampled band."""
    cols = k[0] * a[:, 0 : n_cols * s : s]
    for i in range(1, len(k)):
        cols += k[i] * a[:, i : i + n_cols * s : s]
    out = k[0] * cols[0 : n_rows * s : s]
    for i in range(1, len(k)):
        out += k[i] * cols[i : i + n_rows * s : s]
    return out


def _display_pattern(
    u: np.ndarray, v: np.ndarray, wu: np.ndarray, wv: np.ndarray, disp: dict[str, Any]
) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    """Per-channel mean-normalised sub-pixel emission and the (col, row) of the owning pixel."""
    if disp["layout"] == "stripe":
        if disp["axis"] == "v":  # stripes run along u: swap roles
            u, v, wu, wv = v, u, wv, wu
        fu, fv = disp["fill_u"], disp["fill_v"]
        rows = _pulse(v, wv, 1.0, (1 - fv) / 2, fv) * _F32(1.0 / fv)
        pats = []
        for slot in disp["order"]:  # channel c sits in third `slot` of the pixel
            col = _pulse(u, wu, 1.0, slot / 3 + (1 - fu) / 6, fu / 3) * _F32(3.0 / fu)
            pats.append(col * rows)
        iu, iv = np.floor(u), np.floor(v)
        own = (iu, iv) if disp["axis"] == "u" else (iv, iu)
        return pats, [own, own, own]
    d, hg = disp["diamond"], disp["green"]
    s_, t_ = u + v, u - v
    ws = np.sqrt(wu * wu + wv * wv)
    pats, owners = [], []
    for c, off in ((0, 0.0), (2, 1.0)):  # red diamonds at i+j even, blue at i+j odd
        p = _pulse(s_, ws, 2.0, off - d, 2 * d) * _pulse(t_, ws, 2.0, off - d, 2 * d)
        pats.append((c, p * _F32(1.0 / (d * d))))
        s0 = 2 * np.floor((s_ - off + 1) / 2) + off
        t0 = 2 * np.floor((t_ - off + 1) / 2) + off
        owners.append((c, ((s0 + t0) / 2, (s0 - t0) / 2)))
    g = _pulse(u, wu, 1.0, 0.5 - hg, 2 * hg) * _pulse(v, wv, 1.0, 0.5 - hg, 2 * hg)
    pats.append((1, g * _F32(1.0 / (4 * hg * hg))))
    owners.append((1, (np.floor(u), np.floor(v))))
    return [p for _, p in sorted(pats, key=lambda x: x[0])], [
        o for _, o in sorted(owners, key=lambda x: x[0])
    ]


def _render_screen(
    hinv: np.ndarray,
    fb: np.ndarray,
    box: tuple[int, int, int, int],
    s: int,
    kern: np.ndarray,
    g: int,
    bezel: float,
    disp: dict[str, Any] | None,
) -> dict[str, np.ndarray]:
    """Sensor-resolution renders over ``box`` (r0, r1, c0, c1) of the display ``fb`` (Ny x Nx x 3,
    linear, gain applied) seen through ``hinv`` (photo -> display coordinates).

    Returns premultiplied emission ``E`` (moire, None if ``disp`` is None), ``Eref`` (alias-free),
    and coverages ``alpha`` (active area) and ``outer`` (active area + bezel), all float32.
    """
    r0, r1, c0, c1 = box
    ny, nx = fb.shape[:2]
    planes = [np.ascontiguousarray(fb[..., c]).ravel() for c in range(3)]
    wcols = (c1 - c0) * s + 2 * g
    band = max(1, min(r1 - r0, _BAND_SAMPLES // (wcols * s * s) + 1))
    xs = ((np.arange(c0 * s - g, c1 * s + g) + 0.5) / s).astype(_F32)[None, :]
    h = hinv.astype(_F32)
    keys = ["Eref", "alpha", "outer"] + (["E"] if disp is not None else [])
    out = {k: np.zeros((r1 - r0, c1 - c0, 3 if k.startswith("E") else 1), _F32) for k in keys}
    for b0 in range(r0, r1, band):
        b1 = min(r1, b0 + band)
        ys = ((np.arange(b0 * s - g, b1 * s + g) + 0.5) / s).astype(_F32)[:, None]
        den = h[2, 0] * xs + h[2, 1] * ys + h[2, 2]
        with np.errstate(divide="ignore", invalid="ignore"):  # near the plane's vanishing line
            u = np.clip((h[0, 0] * xs + h[0, 1] * ys + h[0, 2]) / den, -nx - 8, 2 * nx + 8)
            v = np.clip((h[1, 0] * xs + h[1, 1] * ys + h[1, 2]) / den, -ny - 8, 2 * ny + 8)
        # Supersample footprint in display pixels (|grad| / S), from the band's middle row.
        ym = _F32((b0 + b1) / 2)
        dm = h[2, 0] * xs + h[2, 1] * ym + h[2, 2]
        um = (h[0, 0] * xs + h[0, 1] * ym + h[0, 2]) / dm
        vm = (h[1, 0] * xs + h[1, 1] * ym + h[1, 2]) / dm
        wu = np.hypot(h[0, 0] - um * h[2, 0], h[0, 1] - um * h[2, 1]) / (dm * s) + _F32(1e-4)
        wv = np.hypot(h[1, 0] - vm * h[2, 0], h[1, 1] - vm * h[2, 1]) / (dm * s) + _F32(1e-4)
        alpha = _step(u, wu, 0.0, nx) * _step(v, wv, 0.0, ny)
        outer = _step(u, wu, -bezel, nx + bezel) * _step(v, wv, -bezel, ny + bezel)
        idx = np.clip(v, 0, ny - 1).astype(np.int32) * nx + np.clip(u, 0, nx - 1).astype(np.int32)
        res = {"alpha": [alpha], "outer": [outer], "Eref": [], "E": []}
        if disp is not None:
            pats, owners = _display_pattern(u, v, wu, wv, disp)
        for c in range(3):
            f_ref = planes[c].take(idx) * alpha
            res["Eref"].append(f_ref)
            if disp is not None:
                ou, ov = owners[c]
                own = np.clip(ov, 0, ny - 1).astype(np.int32) * nx
                own += np.clip(ou, 0, nx - 1).astype(np.int32)
                res["E"].append(planes[c].take(own) * alpha * pats[c])
        n = b1 - b0
        for k in keys:
            for c, arr in enumerate(res[k]):
                out[k][b0 - r0 : b1 - r0, :, c] = _reduce(arr, kern, s, n, c1 - c0)
    out["alpha"], out["outer"] = out["alpha"][..., 0], out["outer"][..., 0]
    return out


def _resize(a: np.ndarray, size: tuple[int, int], box: tuple[float, ...]) -> np.ndarray:
    """Antialiased bicubic resize of a float image (per channel) from source ``box`` to ``size``."""
    planes = a[..., None] if a.ndim == 2 else a
    out = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(planes[..., c])).resize(size, Image.BICUBIC, box)
        )
        for c in range(planes.shape[2])
    ]
    return out[0] if a.ndim == 2 else np.stack(out, axis=2)


def _chroma_smooth(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """ISP false-colour suppression: Gaussian blur of the colour differences, luma kept."""
    if sigma <= 0:
        return rgb
    y = 0.25 * rgb[..., 0] + 0.5 * rgb[..., 1] + 0.25 * rgb[..., 2]
    cr = ndimage.gaussian_filter(rgb[..., 0] - y, sigma, truncate=3.0)
    cb = ndimage.gaussian_filter(rgb[..., 2] - y, sigma, truncate=3.0)
    return np.stack([y + cr, y - 0.5 * (cr + cb), y + cb], axis=2)


def _tent(x: np.ndarray) -> np.ndarray:
    k = np.array([0.5, 1.0, 0.5], _F32)
    return ndimage.correlate1d(ndimage.correlate1d(x, k, 0, mode="mirror"), k, 1, mode="mirror")


def _cross(x: np.ndarray) -> np.ndarray:
    k = np.array([0.25, 0.0, 0.25], _F32)
    return (
        ndimage.correlate1d(x, k, 0, mode="mirror")
        + ndimage.correlate1d(x, k, 1, mode="mirror")
        + x
    )


def _bayer_demosaic(rgb: np.ndarray, phase: tuple[int, int], origin: tuple[int, int]) -> np.ndarray:
    """Mosaic ``rgb`` with an RGGB CFA shifted by ``phase`` (global pixel parity, ``origin`` =
    the crop's top-left) and demosaic bilinearly by convolution.

    Hand-written: no demosaicing library (colour-demosaicing, OpenCV) is a project dependency.
    """
    ry, rx = (origin[0] + phase[0]) % 2, (origin[1] + phase[1]) % 2  # first red site
    # The kernels' weights over each channel's sites sum to 1 at every pixel (mirror borders
    # included), so the normalised convolution needs no division.
    out = np.empty_like(rgb)
    for c, sites in ((0, [(ry, rx)]), (1, [(ry, 1 - rx), (1 - ry, rx)]), (2, [(1 - ry, 1 - rx)])):
        sampled = np.zeros(rgb.shape[:2], _F32)
        for y, x in sites:
            sampled[y::2, x::2] = rgb[y::2, x::2, c]
        # green: cross [[0,1,0],[1,4,1],[0,1,0]] / 4; red, blue: [1,2,1] x [1,2,1] / 4
        out[..., c] = _cross(sampled) if c == 1 else _tent(sampled)
    return out


# ----------------------------------------------------------------------------- mask


def _local_rms(image: np.ndarray, reference: np.ndarray, size: int = 15) -> np.ndarray:
    """Local RMS (8-bit levels) of the high-passed difference, channels summed in energy.

    High pass: minus a ``size`` px box mean (periods up to ~2.5 ``size`` count); RMS over the
    same box.
    """
    d = image.astype(_F32) - reference.astype(_F32)
    energy = np.zeros(d.shape[:2], _F32)
    for c in range(3):
        dc = np.ascontiguousarray(d[..., c])
        energy += (dc - ndimage.uniform_filter(dc, size)) ** 2
    return np.sqrt(np.maximum(ndimage.uniform_filter(energy, size), 0))


def _half(x: np.ndarray) -> np.ndarray:
    """2x2 block means (drops periods below ~4 px: the resolved pixel lattice)."""
    h2, w2 = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    return 0.25 * (x[0:h2:2, 0:w2:2] + x[1:h2:2, 0:w2:2] + x[0:h2:2, 1:w2:2] + x[1:h2:2, 1:w2:2])


def _moire_mask(
    reference: np.ndarray,
    image: np.ndarray,
    screen: np.ndarray,
    box: tuple[int, int, int, int],
    size: int = _MASK_BOX,
) -> np.ndarray:
    """The mask (see module docstring) with the high-pass and RMS box ``size``, full-size bool."""
    hh, ww = image.shape[:2]
    m = 8  # > visible_mask's closing so cropping does not change it
    r0, r1, c0, c1 = (
        max(0, box[0] - m),
        min(hh, box[1] + m),
        max(0, box[2] - m),
        min(ww, box[3] + m),
    )
    ref, img = reference[r0:r1, c0:c1], image[r0:r1, c0:c1]
    rms = _local_rms(img, ref, size)
    scr = screen[r0:r1, c0:c1]
    pat = (rms >= CONTRAST_RMS) & scr
    if pat.any():
        pat = close_square(pat, 5) | pat
        pat = fill_holes(pat) & scr
    full = np.zeros((hh, ww), bool)
    full[r0:r1, c0:c1] = pat | visible_mask(ref, img)
    return full


# ----------------------------------------------------------------------------- main


def _rgb(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 (grey is repeated, alpha dropped)."""
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] < 3:
        image = np.repeat(image[..., :1], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def _content_image(
    rng: np.random.Generator, clean: np.ndarray, content: np.ndarray | None, full: bool
) -> tuple[np.ndarray, str]:
    if content is not None:
        return content, "given"
    if rng.random() < 0.5:
        h, w = clean.shape[:2]
        if full:
            return clean, "clean"
        ch, cw = int(h * rng.uniform(0.5, 1.0)), int(w * rng.uniform(0.5, 1.0))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return clean[y : y + ch, x : x + cw], "clean_crop"
    long = int(rng.integers(360, 900))
    aspect = float(rng.choice(_ASPECTS))
    hh, ww = (long, int(long * aspect)) if aspect < 1 else (int(long / aspect), long)
    return ui_content(hh, ww, rng), "ui"


def _frame_buffer(
    content: np.ndarray, nx: int, ny: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[int]]:
    """Crop ``content`` to the display aspect and resize it to nx x ny (sRGB uint8)."""
    h, w = content.shape[:2]
    if w / h > nx / ny:
        cw, ch = max(1, round(h * nx / ny)), h
    else:
        cw, ch = w, max(1, round(w * ny / nx))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = Image.fromarray(content[y : y + ch, x : x + cw])
    res = Image.LANCZOS if cw > nx else Image.BILINEAR
    return np.asarray(crop.resize((nx, ny), res)), [x, y, cw, ch]


def _draw_display(rng: np.random.Generator, retry: bool) -> dict[str, Any]:
    """Random display layout and camera; a retry draws from the strongest-moire pitch range."""
    # Sensor px per display px; beats are strongest near 2 (the CFA's red/blue lattice period).
    lo, hi = [(1.6, 2.8), (1.0, 1.6), (0.6, 1.0)][int(rng.choice(3, p=[0.55, 0.3, 0.15]))]
    if retry:
        lo, hi = 1.6, 2.8
    pitch = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))  # sensor px per display px
    if rng.random() < 0.7:
        disp = {
            "layout": "stripe",
            "axis": "u" if rng.random() < 0.8 else "v",
            "order": [0, 1, 2] if rng.random() < 0.8 else [2, 1, 0],
            "fill_u": float(rng.uniform(0.55, 0.9)),
            "fill_v": float(rng.uniform(0.6, 0.92)),
        }
    else:
        disp = {
            "layout": "pentile",
            "diamond": float(rng.uniform(0.28, 0.4)),
            "green": float(rng.uniform(0.12, 0.2)),
        }
    cam = {
        "sensor_pitch": pitch,
        "isp_scale": float(rng.choice([1.0, 1.5, 2.0, 3.0], p=[0.3, 0.25, 0.25, 0.2])),
        "supersample": 3 if pitch < 1.5 else 2,
        "lens_sigma": float(rng.uniform(0.25, 0.4 if retry else 0.55)),
        "fill_factor": float(rng.uniform(0.6, 1.0)),
        "bayer_phase": [int(rng.integers(0, 2)), int(rng.integers(0, 2))],
        "chroma_sigma": float(rng.uniform(0.4, 1.2)) if rng.random() < 0.7 else 0.0,
    }
    return {"display": disp, "camera": cam}


def _gratings(
    rng: np.random.Generator,
    u: np.ndarray,
    v: np.ndarray,
    pitch: float,
    hard: bool,
    wide: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Procedural interference pattern (H x W x 3, mean ~1) in display coordinates; ``wide``:
    beat periods from :data:`WIDE_PERIODS`."""
    f0 = float(rng.uniform(0.3, 0.8))  # carrier, cycles per output pixel (point-sampled: aliases)
    if wide:  # beat, output pixels
        period = float(np.exp(rng.uniform(*np.log(WIDE_PERIODS))))
    else:
        period = float(rng.uniform(5, 14) if hard else rng.uniform(10, 40))
    theta = float(rng.uniform(0, math.pi))
    n = 3 if rng.random() < 0.4 else 2
    k0 = f0 * pitch  # cycles per display pixel
    rel = 1.0 / (f0 * period)
    split = float(rng.uniform(0, 2 * math.pi))
    ang = [theta, theta + rel * math.sin(split)]
    mag = [k0, k0 * (1 + rel * math.cos(split))]
    if n == 3:
        ang.append(theta + float(rng.uniform(-0.15, 0.15)))
        mag.append(k0 * float(rng.uniform(0.95, 1.05)))
    scale = float(max(np.ptp(u), np.ptp(v), 1.0))
    un, vn = (u - u.mean()) / scale, (v - v.mean()) / scale
    warp_a = rng.uniform(0.3, 2.5, 2)
    warp_k = rng.uniform(0.5, 2.0, (2, 2))
    warp_p = rng.uniform(0, 2 * math.pi, 2)
    quad = float(rng.uniform(-1.5, 1.5)) * 2 * math.pi
    warp = sum(
        warp_a[i] * np.sin(2 * math.pi * (warp_k[i, 0] * un + warp_k[i, 1] * vn) + warp_p[i])
        for i in range(2)
    ) + quad * (un * un + vn * vn)
    amp = rng.uniform(0.15, 0.45, n)  # beat amplitudes (second beat: grating 0 vs 2)
    fine = float(rng.uniform(0.05, 0.25))  # the carriers themselves, partly aliased
    chroma = float(rng.uniform(0.6, 2.1))
    phase0 = rng.uniform(0, 2 * math.pi, n)
    phases = []
    for i in range(n):
        ph = 2 * math.pi * mag[i] * (u * math.cos(ang[i]) + v * math.sin(ang[i])) + phase0[i]
        phases.append(ph + warp * (1.0 if i == 0 else 0.3))
    carrier = fine * np.cos(phases[0]) * np.cos(phases[1])
    pat = np.empty(u.shape + (3,), _F32)
    for c in range(3):
        beat = amp[0] * np.cos(phases[0] - phases[1] + (c - 1) * chroma)
        if n == 3:
            beat += amp[2] * np.cos(phases[0] - phases[2] - (c - 1) * chroma)
        pat[..., c] = 1 + beat + carrier
    params = {
        "carrier": f0,
        "beat_period": period,
        "angle": theta,
        "n_gratings": n,
        "amplitudes": amp.round(4).tolist(),
        "carrier_amplitude": fine,
        "chroma_shift": chroma,
        "warp_amp": warp_a.round(4).tolist(),
        "quadratic": quad,
    }
    return pat, params


def _camera_render(
    clean: np.ndarray,
    box: tuple[int, int, int, int],
    hinv: np.ndarray,
    fb: np.ndarray,
    cam: dict[str, Any],
    disp: dict[str, Any] | None,
    bezel: float,
    scene: dict[str, float],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The camera's view of the display over output ``box``: the scene behind it (``base``,
    linear, bezel and reflection included) and the renders of :func:`_render_screen` after CFA,
    demosaic, chroma smoothing and the ISP downscale, at output resolution."""
    r0, r1, c0, c1 = box
    k, s = cam["isp_scale"], cam["supersample"]
    # Render on the sensor lattice (k x finer than the output when the ISP downscales).
    sbox = (math.floor(r0 * k) - 2, math.ceil(r1 * k) + 2, math.floor(c0 * k) - 2,
            math.ceil(c1 * k) + 2) if k > 1 else box  # fmt: skip
    kern, g = _sensor_kernel(s, cam["lens_sigma"], cam["fill_factor"])
    rend = _render_screen(hinv @ np.diag([1 / k, 1 / k, 1.0]), fb, sbox, s, kern, g, bezel, disp)
    if disp is not None:  # CFA + demosaic (+ chroma smoothing) are linear: apply them to the
        # sub-pixel residual only, so the content's own edges gain no demosaic zipper that the
        # CFA-free reference lacks, and image - reference is the moire alone.
        res = _bayer_demosaic(rend["E"] - rend["Eref"], tuple(cam["bayer_phase"]), sbox[::2])
        rend["E"] = rend["Eref"] + _chroma_smooth(res, cam["chroma_sigma"])
    if k > 1:  # ISP downscale (antialiased) from the sensor lattice to the output
        src_box = (c0 * k - sbox[2], r0 * k - sbox[0], c1 * k - sbox[2], r1 * k - sbox[0])
        rend = {n: _resize(a, (c1 - c0, r1 - r0), src_box) for n, a in rend.items()}
    alpha, outer = rend["alpha"][..., None], rend["outer"][..., None]
    base = _linear(clean[r0:r1, c0:c1]) * (1 - outer)
    base += scene["bezel_linear"] * (outer - alpha)
    if scene["reflection"] > 0:  # a linear glare ramp across the glass
        hh, ww = clean.shape[:2]
        yy, xx = np.mgrid[r0:r1, c0:c1].astype(_F32)
        d = scene["reflection_dir"]
        ramp = (xx - ww / 2) * math.cos(d) + (yy - hh / 2) * math.sin(d)
        ramp = 0.5 + ramp / float(np.hypot(ww, hh))
        base += (scene["reflection"] * ramp)[..., None] * alpha
    return base, rend


def _beat_level(
    full_lin: np.ndarray, ref_lin: np.ndarray, alpha: np.ndarray, q: float, size: int = _MASK_BOX
) -> float:
    """Quantile ``q`` over the screen of the beat contrast (local RMS, 8-bit levels) between two
    linear renders, on 2x2 block means (the resolved pixel lattice dropped); ``size`` is the mask
    rule's box at full resolution."""
    inside = _half(alpha) >= 0.999
    if not inside.any():
        return 0.0
    rms = _local_rms(_srgb8(_half(full_lin)), _srgb8(_half(ref_lin)), (size + 1) // 2)
    return float(np.quantile(rms[inside], q))


def synthesize_moire(
    clean: np.ndarray,
    rng: np.random.Generator,
    *,
    hard: bool = False,
    content: np.ndarray | None = None,
    full_frame: float = FULL_FRAME_P,
    wide_bands: float = 0.0,
) -> Sample:
    """A photo of a screen showing ``content`` with moire, and its alias-free reference; the
    screen fills the frame with probability ``full_frame``, the moire is wide bands with
    probability ``wide_bands`` (0 draws nothing, so other items are unchanged).

    See the module docstring for the model, parameter ranges and the mask rule.
    """
    clean = _rgb(clean)
    content = None if content is None else _rgb(content)
    hh, ww = clean.shape[:2]
    wide = wide_bands > 0 and rng.random() < wide_bands
    route = "display" if rng.random() < 0.7 and not wide else "grating"
    full = rng.random() < full_frame
    params: dict[str, Any] = {"route": route, "hard": hard} | ({"bands": "wide"} if wide else {})
    found = None if full else detect_screen(clean)
    if full:
        want = ww / hh * float(rng.uniform(0.8, 1.25))  # a display shaped like the frame
        aspect = min(_ASPECTS, key=lambda a: abs(math.log(a / want)))
        quad, pose = _panel_quad(rng, hh, ww, aspect, True, hard)
        placement = "full_frame"
    elif found is not None:
        quad, pose, placement = np.array(found["corners"]), {}, "detected"
        params["detected"] = found
    else:
        aspect = float(rng.choice(_ASPECTS))
        quad, pose = _panel_quad(rng, hh, ww, aspect, False, hard)
        placement = "random"
    if placement != "detected":
        pose["aspect"] = aspect
    params.update(placement=placement, pose=pose, quad=np.round(quad, 2).tolist())
    src, src_kind = _content_image(rng, clean, content, full)
    params["content"] = src_kind
    # Scene lighting shared by image and reference.
    tint = float(rng.uniform(-0.03, 0.08))
    gain = float(rng.uniform(0.5, 0.95))
    has_bezel = placement == "random" and rng.random() < 0.75
    bezel_frac = float(rng.uniform(0.012, 0.05)) if has_bezel else 0.0
    bezel_lin = float(rng.uniform(0.004, 0.03) if rng.random() < 0.75 else rng.uniform(0.15, 0.4))
    refl = float(rng.uniform(0.0, 0.05)) if rng.random() < 0.5 else 0.0
    refl_dir = float(rng.uniform(0, 2 * math.pi))
    params["scene"] = {
        "gain": gain,
        "tint": tint,
        "bezel_frac": bezel_frac,
        "bezel_linear": bezel_lin,
        "reflection": refl,
        "reflection_dir": refl_dir,
    }
    edge_w = np.hypot(*(quad[1] - quad[0])) + np.hypot(*(quad[2] - quad[3]))
    edge_h = np.hypot(*(quad[3] - quad[0])) + np.hypot(*(quad[2] - quad[1]))
    min_frac = 0.005 if hard else 0.02
    attempts: list[dict[str, Any]] = []
    for attempt in range(4):
        draw = _draw_display(rng, attempt > 0)
        cam, disp = draw["camera"], draw["display"]
        if attempt == 3:  # last resort: a sharp lens
            cam["lens_sigma"] = 0.25
        k = cam["isp_scale"] if route == "display" else 1.0
        qlo, qhi = np.clip(quad.min(axis=0), 0, [ww, hh]), np.clip(quad.max(axis=0), 0, [ww, hh])
        area = float(np.prod(qhi - qlo))
        while k > 1 and area * (k * cam["supersample"]) ** 2 > _MAX_SUPERSAMPLES:
            k -= 0.5  # keep the sensor-resolution render affordable on big photos
        if area * cam["supersample"] ** 2 > 4 * _MAX_SUPERSAMPLES:
            cam["supersample"] = 2  # big photos: the exact footprint integral makes S = 2 enough
        cam["isp_scale"] = k
        p = cam["pitch"] = cam["sensor_pitch"] / k  # output px per display px
        nx, ny = max(4, round(edge_w / 2 / p)), max(4, round(edge_h / 2 / p))
        fb_srgb, crop = _frame_buffer(src, nx, ny, rng)
        white = np.array([1 - tint, 1.0, 1 + tint], _F32) * _F32(gain)
        fb = _linear(fb_srgb) * white
        hinv = np.linalg.inv(_homography(np.array([[0, 0], [nx, 0], [nx, ny], [0, ny]]), quad))
        bezel = bezel_frac * min(nx, ny)
        # Bounding box of the quad (with bezel) plus the kernel's reach, clipped to the photo.
        ring = np.array([[-bezel, -bezel], [nx + bezel, -bezel], [nx + bezel, ny + bezel],
                         [-bezel, ny + bezel]])  # fmt: skip
        ph = np.c_[ring, np.ones(4)] @ np.linalg.inv(hinv).T
        pts = ph[:, :2] / ph[:, 2:]
        box = (
            max(0, int(math.floor(pts[:, 1].min())) - 2),
            min(hh, int(math.ceil(pts[:, 1].max())) + 2),
            max(0, int(math.floor(pts[:, 0].min())) - 2),
            min(ww, int(math.ceil(pts[:, 0].max())) + 2),
        )
        r0, r1, c0, c1 = box
        render = dict(clean=clean, hinv=hinv, fb=fb, cam=cam, bezel=bezel, scene=params["scene"])
        render["disp"] = disp if route == "display" else None
        if route == "display" and not hard and attempt < 3 and (r1 - r0) * (c1 - c0) > _PROBE:
            # Big photo: judge the beats on a central window before paying for the full render.
            cy, cx = np.clip(quad.mean(axis=0)[::-1], [r0, c0], [r1, c1]).astype(int)
            half = _PROBE_SIDE // 2
            pr0, pc0 = (
                max(r0, min(cy - half, r1 - 2 * half)),
                max(c0, min(cx - half, c1 - 2 * half)),
            )
            probe = (pr0, min(r1, pr0 + 2 * half), pc0, min(c1, pc0 + 2 * half))
            base, rend = _camera_render(box=probe, **render)
            level = _beat_level(base + rend["E"], base + rend["Eref"], rend["alpha"], 0.5)
            if level < 1.8 * CONTRAST_RMS:
                attempts.append({"level": level, "probe": probe, "display": disp, "camera": cam})
                continue
        base, rend = _camera_render(box=box, **render)
        alpha = rend["alpha"][..., None]
        ref_lin = base + rend["Eref"]
        info: dict[str, Any] = {"display": disp, "camera": cam, "frame_buffer": [nx, ny],
                                "content_crop": crop}  # fmt: skip
        if route == "grating" or hard:  # display coordinates of the output pixel centres
            ys, xs = np.mgrid[r0:r1, c0:c1].astype(_F32) + _F32(0.5)
            den = hinv[2, 0] * xs + hinv[2, 1] * ys + hinv[2, 2]
            with np.errstate(divide="ignore", invalid="ignore"):
                u = (hinv[0, 0] * xs + hinv[0, 1] * ys + hinv[0, 2]) / den
                v = (hinv[1, 0] * xs + hinv[1, 1] * ys + hinv[1, 2]) / den
            u = np.clip(np.nan_to_num(u), -nx - 8, 2 * nx + 8).astype(_F32)
            v = np.clip(np.nan_to_num(v), -ny - 8, 2 * ny + 8).astype(_F32)
        if route == "display":  # N of Eq. 1: the raw camera render; M: the screen
            full_lin = base + rend["E"]
        else:  # N: reference times the gratings; M: the screen times a smooth ramp
            pat, gp = _gratings(rng, u, v, p, hard, wide)
            env_dir = float(rng.uniform(0, 2 * math.pi))
            env_lo = float(rng.uniform(0.0, 1.0))
            un = (u / nx - 0.5) * math.cos(env_dir) + (v / ny - 0.5) * math.sin(env_dir)
            m = (alpha[..., 0] * np.clip(env_lo + (1 - env_lo) * (0.5 + un), 0, 1))[..., None]
            full_lin = ref_lin * (1 - m) + np.clip(ref_lin * pat, 0, 1) * m
            info.update(grating=gp, envelope={"dir": env_dir, "low": env_lo})
        size = _mask_box(info["grating"]["beat_period"] if wide else None)
        if hard:  # subtle moire is local: M also holds a smooth blob on the screen
            cu, cv = (float(x) for x in rng.uniform(0.2, 0.8, 2))
            rad = float(rng.uniform(0.15, 0.4))
            blob = np.exp(-((u / nx - cu) ** 2 + (v / ny - cv) ** 2) / (2 * rad * rad))
            full_lin = ref_lin + blob[..., None] * (full_lin - ref_lin)
            info["blob"] = {"centre": [cu, cv], "radius": rad}
        ref_crop = _srgb8(ref_lin)
        screen = np.zeros((hh, ww), bool)
        screen[r0:r1, c0:c1] = rend["alpha"] >= 0.5
        scr_frac = float(screen.mean())
        if hard:  # scale phi so that the pattern is just above the contrast threshold
            q = float(np.clip(1 - 0.02 / max(scr_frac, 1e-6), 0.5, 0.97))
            level = _beat_level(full_lin, ref_lin, rend["alpha"], q, size)
            phi = float(rng.uniform(1.1, 1.6)) * CONTRAST_RMS / max(level, 1e-6)
        else:  # clearly visible beats: half the screen at >= 1.8x the threshold, if possible
            level = _beat_level(full_lin, ref_lin, rend["alpha"], 0.5, size)
            phi = max(float(rng.uniform(0.55, 1.0)), 1.8 * CONTRAST_RMS / max(level, 1e-6))
        phi = float(np.clip(phi, 0.05, 1.0))
        reference = clean.copy()
        reference[r0:r1, c0:c1] = ref_crop
        for _ in range(4):  # hard: raise phi until the pattern is visible somewhere
            image = clean.copy()
            image[r0:r1, c0:c1] = _srgb8(ref_lin + phi * (full_lin - ref_lin))
            mask = _moire_mask(reference, image, screen, box, size)
            frac = float(mask.mean())
            if not hard or frac >= min_frac or phi >= 1.0:
                break
            phi = min(1.0, 1.5 * phi)
        attempts.append({"mask_frac": round(frac, 4), "strength": phi, "level": level, **info})
        ok = frac >= min_frac or (frac >= 0.5 * scr_frac and scr_frac < 2 * min_frac)
        if not hard:
            ok = ok and level >= 1.8 * CONTRAST_RMS
        if ok:
            break
    params.update(attempts[-1])
    params["attempts"] = len(attempts)
    params["rejected"] = [
        {"level": round(a["level"], 2), "camera": a["camera"], "display": a["display"]}
        for a in attempts[:-1]
    ]
    params["screen_frac"] = round(scr_frac, 4)
    params["mask_threshold_rms"] = CONTRAST_RMS
    return Sample(image=image, reference=reference, mask=mask, label="moire", params=params)
