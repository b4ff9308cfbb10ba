"""Synthetic lens flare: glare, starburst streaks and ghost reflections added in linear light.

Physical model. A flare is stray light from a bright source, so it is *added* to the scene
irradiance: every component is rendered in linear light, added to the decoded photo and encoded
back to sRGB, clipping at white as a sensor does. Sizes are fractions of the image diagonal D,
amplitudes linear-light units (scene white = 1); "hard" ranges in brackets.

* Source: the brightest compact clipped region (0.7 luminance + 0.3 min channel, smoothed at 256 px,
  >= max(0.85, 99.5th percentile); regions over 3 % of the frame are penalised; the deepest point
  of the region; radius <= 0.012 D). Without one, or with probability 0.2, a source is placed: a
  sun in the upper third (40 %), a lamp (30 %), a headlight in the lower half (15 %) or a sun
  0.02-0.12 D outside the frame (15 %; no disc). A placed source is a 4-12x white disc of radius
  0.003-0.012 D (x0.6).
* Overall strength: log-uniform 0.6-2 [0.12-0.4]; it scales everything but the source disc.
* Glare: a Gaussian core (0.5-2, radius 1-1.8 source radii, >= 0.002 D), a halo
  ``a / (1 + (r/r_h)^2)^p`` (a 0.3-1.2; r_h 2-6 [1.5-3] source radii, >= 0.004-0.015 D
  [0.003-0.011 D]; p 0.9-1.4 [1.3-1.8]) and a wide glare with a 1/r^2 tail (0.01-0.08
  [0.003-0.015], radius 0.03-0.15 D [0.02-0.06 D], Gaussian envelope 0.3-0.9 D [0.15-0.4 D]),
  tinted by the source colour.
* Veiling haze (probability 0.25 [0.15]): a low-contrast wash of 0.005-0.03 [0.003-0.008] with
  a floor of 0.2-0.7 and a broad maximum (0.3-0.9 D) at the source.
* Starburst (probability 0.85 [0.4]): N aperture blades (5-9) give N rays for even N and 2N for odd
  N, randomly rotated, each with its own length (0.55-1.15 of 0.06-0.25 D [0.03-0.1 D]),
  strength (0.3-1.2 of 0.5-3) and width (0.0006-0.0015 D, >= 0.8 px, widening outwards): a
  Gaussian line with a soft skirt, fall-off ``(1 + r/r_src)^-(1..1.6)``, chromatic tips (red
  reaching 3-12 % further than blue); with probability 0.6 a corona of 40-140 faint fine rays.
* Ghosts: 3-9 [1-3] internal reflections imaging the aperture: discs, N-gons (the blade count,
  turned 180 degrees on the mirror side), rings (half of them partial arcs) and soft blobs, centred
  at ``S + t (C - S)`` on the line from the source S through the optical centre C, t in
  [-0.25, 2.3] (t > 1: mirror side). Radius 0.01-0.09 D (15 %: 0.1-0.2 D, 0.35x as bright),
  amplitude 0.02-0.2 [0.006-0.03], a coating tint, per-channel radius (1-6 %) and position
  (<= 1.5 %) offsets for colour fringes and rainbow rims, soft edges (3-30 % of the radius), maybe
  a brighter rim.
* Pattern route (probability 0.3 when ``patterns`` are given): one rendered flare image on black
  (linear, black level removed, borders feathered) is scaled to 0.3-0.9 [0.2-0.45] of the long
  side, rotated, maybe mirrored, tinted (0-70 % towards a coating colour), scaled by
  0.4-1.2 [0.15-0.45] x strength and added with its brightest point on the source; a pattern whose
  energy lies off that point (a ghost chain) is turned to run towards the optical centre.

Components are drawn at most 1024 px on the long side and bilinearly upsampled (they are smooth or
near pixel-sized there). Mask rule: the mask is :func:`visible_mask` (largest per-channel change
>= ``VISIBLE_DELTA``, gaps closed, holes filled), so every visibly changed pixel is inside it. If
the mask covers under 1 % [0.2 %] of the pixels, the flare is doubled up to 6 times
(``params["boost"]``), then redone once at a placed source (``params["attempt"]``). Every random
choice is in ``params``; the same input and seed give identical bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from .common import (
    VISIBLE_DELTA,
    Sample,
    change_delta,
    linear_to_srgb,
    srgb_to_linear,
    visible_mask,
)

RENDER_MAX = 1024  # longest side of the flare rendering
PATTERN_PROB = 0.3
PLACE_ANYWAY_PROB = 0.2
MIN_FRACTION = {False: 0.01, True: 0.002}
NIGHT_EXTENT = {False: (0.01, 0.15), True: (0.003, 0.02)}  # night route: visible share drawn
_LUT_N = 65536
_TO_LIN = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)  # uint8 -> linear
_TO_SRGB = np.round(linear_to_srgb(np.linspace(0.0, 1.0, _LUT_N)) * 255.0).astype(np.uint8)
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
_COATINGS = {  # typical anti-reflection coating residual colours (linear RGB, max 1)
    "green": (0.45, 1.0, 0.55),
    "cyan": (0.35, 0.85, 1.0),
    "blue": (0.35, 0.55, 1.0),
    "violet": (0.75, 0.45, 1.0),
    "magenta": (1.0, 0.45, 0.85),
    "amber": (1.0, 0.7, 0.3),
    "neutral": (1.0, 0.95, 0.9),
}
_SOURCE_COLOURS = {
    "sun": [(1.0, 0.93, 0.82), (1.0, 0.8, 0.55)],
    "lamp": [(1.0, 0.78, 0.5), (0.9, 0.95, 1.0), (1.0, 0.9, 0.75)],
    "headlight": [(0.88, 0.94, 1.0), (1.0, 0.88, 0.7)],
}


def _f(x: Any) -> float:
    return round(float(x), 6)


def _vec(x: Any) -> list[float]:
    return [_f(v) for v in np.ravel(x)]


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _find_source(clean: np.ndarray) -> dict[str, Any] | None:
    """The brightest compact near-clipped region (full-resolution coordinates), or None."""
    h, w = clean.shape[:2]
    f = min(1.0, 256.0 / max(h, w))
    hs, ws = max(1, round(h * f)), max(1, round(w * f))
    small = np.asarray(Image.fromarray(clean).resize((ws, hs), Image.BOX))
    lin = _TO_LIN[small]
    lum = 0.7 * (lin @ _LUMA) + 0.3 * lin.min(axis=2)  # light sources clip to near white
    sm = ndimage.gaussian_filter(lum, 1.0)
    bright = sm >= max(0.85, float(np.percentile(sm, 99.5)))
    if not bright.any():
        return None
    labels, n = ndimage.label(bright)
    idx = np.arange(1, n + 1)
    areas = ndimage.sum(np.ones_like(sm), labels, idx)
    sums = ndimage.sum(sm, labels, idx)
    compact = areas <= 0.03 * hs * ws  # prefer point-like sources over large white areas
    score = sums * np.where(compact, 1.0, 0.05)
    best = int(idx[np.argmax(score)])
    comp = labels == best
    # the deepest point of the region (the centre of a clipped lamp), brightness breaking ties
    depth = ndimage.distance_transform_edt(np.pad(comp, 1))[1:-1, 1:-1]
    peak = np.where(comp, depth + ndimage.gaussian_filter(lum, 2.0), -1.0)
    y, x = np.unravel_index(int(np.argmax(peak)), peak.shape)
    radius = min(np.sqrt(areas[best - 1] / np.pi), 0.012 * np.hypot(hs, ws)) / f
    yy, xx = np.ogrid[:hs, :ws]
    near = (yy - y) ** 2 + (xx - x) ** 2 <= (radius * f + 3) ** 2
    colour = lin[near].mean(axis=0)
    colour = 0.5 * colour / max(float(colour.max()), 1e-6) + 0.5
    return {
        "kind": "detected",
        "x": _f((x + 0.5) / f - 0.5),
        "y": _f((y + 0.5) / f - 0.5),
        "radius": _f(max(radius, 1.0)),
        "colour": _vec(colour),
        "area_fraction": _f(areas[best - 1] / (hs * ws)),
    }


def _place_source(
    rng: np.random.Generator, h: int, w: int, hard: bool, offframe: bool = True
) -> dict[str, Any]:
    diag = float(np.hypot(h, w))
    kinds = ["sun", "lamp", "headlight", "offframe_sun"]
    kind = kinds[int(rng.choice(4, p=[0.4, 0.3, 0.15, 0.15]))]
    if kind == "offframe_sun" and not offframe:
        kind = "sun"
    if kind == "offframe_sun":  # just outside one edge: no visible disc, glare and ghosts only
        side = int(rng.integers(4))
        out = rng.uniform(0.02, 0.12) * diag
        along = rng.uniform(0.1, 0.9)
        x, y = [(along * w, -out), (along * w, h + out), (-out, along * h), (w + out, along * h)][
            side
        ]
        radius, colours = rng.uniform(0.004, 0.012) * diag, _SOURCE_COLOURS["sun"]
    else:
        xr, yr, rr = {
            "sun": ((0.05, 0.95), (-0.02, 0.35), (0.004, 0.012)),
            "lamp": ((0.05, 0.95), (0.05, 0.7), (0.003, 0.01)),
            "headlight": ((0.1, 0.9), (0.5, 0.85), (0.004, 0.012)),
        }[kind]
        x, y = rng.uniform(*xr) * w, rng.uniform(*yr) * h
        radius, colours = rng.uniform(*rr) * diag, _SOURCE_COLOURS[kind]
    if hard:
        radius *= 0.6
    colour = colours[int(rng.integers(len(colours)))]
    return {
        "kind": kind,
        "x": _f(x),
        "y": _f(y),
        "radius": _f(max(radius, 0.8)),
        "colour": _vec(colour),
        "intensity": _f(rng.uniform(4.0, 12.0)),
    }


def _grid(
    shape: tuple[int, int], cx: float, cy: float, reach: float
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Offsets from (cx, cy) over the image part within ``reach`` of it, or None if empty."""
    h, w = shape
    x0, x1 = max(0, int(np.floor(cx - reach))), min(w, int(np.ceil(cx + reach)) + 1)
    y0, y1 = max(0, int(np.floor(cy - reach))), min(h, int(np.ceil(cy + reach)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    dx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx))[None, :]
    dy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy))[:, None]
    return (slice(y0, y1), slice(x0, x1)), dx, dy


def _add_glare(acc: np.ndarray, sx: float, sy: float, g: dict[str, Any], px: float) -> None:
    """Core + halo + wide 1/r^2 glare (+ veiling haze) over the whole frame; px = pixels per D."""
    h, w, _ = acc.shape
    dx = np.arange(w, dtype=np.float32)[None, :] - np.float32(sx)
    dy = np.arange(h, dtype=np.float32)[:, None] - np.float32(sy)
    r2 = dx * dx + dy * dy
    rc, rh, rw = (max(g[k] * px, 0.5) for k in ("core_radius", "halo_radius", "wide_radius"))
    core = g["core"] * np.exp(-r2 / np.float32(2 * rc * rc))
    halo = g["halo"] * (1 + r2 / np.float32(rh * rh)) ** np.float32(-g["halo_power"])
    env = np.exp(-r2 / np.float32(2 * (g["wide_extent"] * px) ** 2))
    wide = g["wide"] * env / (1 + r2 / np.float32(rw * rw))
    haze = None
    if g.get("haze"):
        hz = g["haze"]
        haze = hz["amount"] * (
            hz["floor"] + (1 - hz["floor"]) * np.exp(-r2 / np.float32(2 * (hz["extent"] * px) ** 2))
        )
    for c in range(3):
        acc[..., c] += core * g["core_colour"][c] + (halo + wide) * g["colour"][c]
        if haze is not None:
            acc[..., c] += haze * g["haze"]["colour"][c]


def _add_disc(acc: np.ndarray, sx: float, sy: float, radius: float, level: float, col) -> None:
    """The placed light source itself: a saturated disc with an anti-aliased edge."""
    grid = _grid(acc.shape[:2], sx, sy, radius + 3)
    if grid is None:
        return
    sl, dx, dy = grid
    disc = level * np.clip(radius + 0.5 - np.sqrt(dx * dx + dy * dy), 0, 1)
    for c in range(3):
        acc[sl + (c,)] += disc * col[c]


def _add_rays(acc: np.ndarray, sx: float, sy: float, rays: dict[str, Any], px: float) -> None:
    """Starburst streaks (main set and optional fine corona): each pixel takes its nearest ray."""
    sets = [rays["main"]] + ([rays["corona"]] if rays.get("corona") else [])
    reach = 1.3 * px * max(max(s["lengths"]) for s in sets)
    grid = _grid(acc.shape[:2], sx, sy, reach)
    if grid is None:
        return
    sl, dx, dy = grid
    r = np.sqrt(dx * dx + dy * dy)
    phi = np.arctan2(dy, dx)
    r0 = max(rays["r0"] * px, 1.0)
    for s in sets:
        n = len(s["lengths"])
        step = 2 * np.pi / n
        k = np.mod(np.round((phi - s["rotation"]) / step).astype(np.int64), n)
        theta = (s["rotation"] + np.arange(n) * step + np.asarray(s["jitter"])).astype(np.float32)
        dphi = phi - theta[k]
        length = (np.asarray(s["lengths"], np.float32) * px)[k]
        along = np.maximum(r * np.cos(dphi), 0)
        perp = r * np.abs(np.sin(dphi))
        width = np.maximum(np.asarray(s["widths"], np.float32) * px, 0.8)[k]
        width = width * (1 + 0.6 * along / length)
        q = (perp / width) ** 2  # a sharp line plus a softer, wider skirt
        base = np.asarray(s["amps"], np.float32)[k] * (np.exp(-0.5 * q) + 0.12 * np.exp(-q / 32))
        base *= (1 + along / r0) ** np.float32(-rays["falloff"])
        base[np.cos(dphi) <= 0] = 0
        for c in range(3):
            tip = np.exp(-((along / (length * rays["chroma"][c])) ** 2))
            acc[sl + (c,)] += base * tip * rays["colour"][c]


def _add_ghost(acc: np.ndarray, gh: dict[str, Any], src: tuple[float, float], px: float) -> None:
    h, w, _ = acc.shape
    sx, sy = src
    ax, ay = (w - 1) / 2 - sx, (h - 1) / 2 - sy  # source -> optical centre
    radius = gh["radius"] * px
    soft = max(gh["softness"] * radius, 0.7)
    for c in range(3):
        t = gh["t"] * (1 + gh["shift"] * (c - 1))
        cx, cy = sx + t * ax, sy + t * ay
        rad = radius * (1 + gh["chroma"] * (c - 1))
        grid = _grid((h, w), cx, cy, rad + 4 * soft + 2)
        if grid is None:
            continue
        sl, dx, dy = grid
        rr = np.sqrt(dx * dx + dy * dy)
        if gh["shape"] == "polygon":
            n = gh["sides"]
            ang = np.mod(np.arctan2(dy, dx) - gh["rotation"], 2 * np.pi / n) - np.pi / n
            rr = rr * np.cos(ang) / np.cos(np.pi / n)
        rho = (rr - rad) / soft
        if gh["shape"] == "ring":
            prof = np.exp(-0.5 * rho**2)
            if gh["arc"] is not None:  # only part of the ring catches the light
                a = np.arctan2(dy, dx) - gh["arc"]
                prof *= (0.5 + 0.5 * np.cos(a)) ** 3
        elif gh["shape"] == "blob":
            prof = np.exp(-0.5 * (rr / (0.6 * rad)) ** 2)
        else:  # disc / polygon: soft-edged fill, an optional bright rim, a gentle gradient
            prof = 1 / (1 + np.exp(np.clip(rho * 2.5, -30, 30)))
            prof = prof * (1 + gh["gradient"] * (dx * ax + dy * ay) / (rad * np.hypot(ax, ay) + 1))
            prof += gh["rim"] * np.exp(-0.5 * (rho / 0.6) ** 2)
        acc[sl + (c,)] += gh["amp"] * gh["tint"][c] * np.maximum(prof, 0)


def _physical_params(
    rng: np.random.Generator, hard: bool, source: dict[str, Any], strength: float, diag: float
) -> dict[str, Any]:
    src_r = source["radius"]  # in full-res pixels; converted to D units by the caller
    col = np.asarray(source["colour"])
    halo_tint = col * np.array([rng.uniform(0.85, 1.0), 1.0, rng.uniform(0.85, 1.15)])
    halo_tint = halo_tint / halo_tint.max()
    hr = (1.5, 3.0) if hard else (2.0, 6.0)  # halo radius in source radii
    g: dict[str, Any] = {
        "core": _f(rng.uniform(0.5, 2.0) * strength),
        "core_radius": _f(max(src_r * rng.uniform(1.0, 1.8), diag * rng.uniform(0.002, 0.004))),
        "core_colour": _vec(col),
        "halo": _f(rng.uniform(0.3, 1.2) * strength),
        "halo_radius": _f(
            max(src_r * rng.uniform(*hr), diag * rng.uniform(0.004, 0.015) * hr[0] / 2)
        ),
        "halo_power": _f(rng.uniform(1.3, 1.8) if hard else rng.uniform(0.9, 1.4)),
        "wide": _f((rng.uniform(0.003, 0.015) if hard else rng.uniform(0.01, 0.08)) * strength),
        "wide_radius": _f(rng.uniform(0.02, 0.06) if hard else rng.uniform(0.03, 0.15)),
        "wide_extent": _f(rng.uniform(0.15, 0.4) if hard else rng.uniform(0.3, 0.9)),
        "colour": _vec(halo_tint),
        "haze": None,
    }
    if rng.random() < (0.15 if hard else 0.25):
        g["haze"] = {
            "amount": _f(rng.uniform(0.003, 0.008) if hard else rng.uniform(0.005, 0.03)),
            "floor": _f(rng.uniform(0.2, 0.7)),
            "extent": _f(rng.uniform(0.3, 0.9)),
            "colour": _vec(halo_tint),
        }
    blades = int(rng.choice([5, 6, 7, 8, 9], p=[0.15, 0.3, 0.2, 0.15, 0.2]))
    blade_rot = float(rng.uniform(0, 2 * np.pi))
    rays = None
    if rng.random() < (0.4 if hard else 0.85):
        n = 2 * blades if blades % 2 else blades
        length = rng.uniform(0.03, 0.1) if hard else rng.uniform(0.06, 0.25)
        amp = rng.uniform(0.5, 3.0) * strength
        width = rng.uniform(0.0006, 0.0015)
        main = {
            "rotation": _f(blade_rot),
            "jitter": _vec(rng.normal(0, 0.015, n)),
            "lengths": _vec(length * rng.uniform(0.55, 1.15, n)),
            "widths": _vec(width * rng.uniform(0.7, 1.3, n)),
            "amps": _vec(amp * rng.uniform(0.3, 1.2, n)),
        }
        corona = None
        if rng.random() < 0.6:
            m = int(rng.integers(40, 140))
            corona = {
                "rotation": _f(rng.uniform(0, 2 * np.pi)),
                "jitter": _vec(rng.uniform(-0.4, 0.4, m) * 2 * np.pi / m),
                "lengths": _vec(length * rng.uniform(0.15, 0.6, m)),
                "widths": _vec(width * rng.uniform(0.4, 0.8, m)),
                "amps": _vec(amp * 0.3 * rng.exponential(1.0, m)),
            }
        cs = rng.uniform(0.03, 0.12)
        rays = {
            "blades": blades,
            "count": n,
            "main": main,
            "corona": corona,
            "falloff": _f(rng.uniform(1.0, 1.6)),
            "r0": _f(src_r),
            "chroma": _vec([1 + cs, 1.0, 1 - cs]),
            "colour": _vec(0.5 * col + 0.5),
        }
    coating = list(_COATINGS)[int(rng.integers(len(_COATINGS)))]
    n_ghosts = int(rng.integers(1, 4) if hard else rng.integers(3, 10))
    ghosts = []
    for _ in range(n_ghosts):
        shape = ["disc", "polygon", "ring", "blob"][int(rng.choice(4, p=[0.3, 0.35, 0.15, 0.2]))]
        t = float(rng.uniform(-0.25, 2.3))
        big = rng.random() < 0.15
        radius = rng.uniform(0.1, 0.2) if big else _loguniform(rng, 0.01, 0.09)
        amp = _loguniform(rng, 0.006, 0.03) if hard else _loguniform(rng, 0.02, 0.2)
        if big:
            amp *= 0.35
        own = np.asarray(_COATINGS[list(_COATINGS)[int(rng.integers(len(_COATINGS)))]])
        tint = np.asarray(_COATINGS[coating]) * (0.6 + 0.4 * own) * rng.uniform(0.85, 1.15, 3)
        ghosts.append(
            {
                "shape": shape,
                "t": _f(t),
                "radius": _f(radius),
                "amp": _f(amp * (1.0 if hard else min(strength, 1.5))),
                "tint": _vec(tint / tint.max()),
                "chroma": _f(rng.uniform(0.01, 0.06) * rng.choice([-1, 1])),
                "shift": _f(rng.uniform(0.0, 0.015) * rng.choice([-1, 1])),
                "softness": _f(rng.uniform(0.03, 0.3)),
                "rim": _f(rng.uniform(0.0, 0.8) if rng.random() < 0.4 else 0.0),
                "gradient": _f(rng.uniform(-0.4, 0.4)),
                "sides": blades,
                "rotation": _f(blade_rot + (np.pi if t > 1 else 0.0)),
                "arc": _f(rng.uniform(0, 2 * np.pi)) if rng.random() < 0.5 else None,
            }
        )
    return {"glare": g, "rays": rays, "coating": coating, "ghosts": ghosts}


def _render_physical(
    acc: np.ndarray, p: dict[str, Any], src: tuple[float, float], px: float, diag_full: float
) -> None:
    g = dict(p["glare"])
    for k in ("core_radius", "halo_radius"):  # source-relative radii are in full-res pixels
        g[k] = g[k] / diag_full
    _add_glare(acc, *src, g, px)
    if p["rays"] is not None:
        rays = dict(p["rays"], r0=p["rays"]["r0"] / diag_full)
        _add_rays(acc, *src, rays, px)
    for gh in p["ghosts"]:
        _add_ghost(acc, gh, src, px)


def _prepare_pattern(pattern: np.ndarray) -> dict[str, Any]:
    """Linear-light pattern with its black level removed and borders feathered; its brightest
    point (the anchor) and the direction from it to the energy centroid (a ghost chain's axis)."""
    lin = _TO_LIN[np.asarray(pattern, np.uint8)[..., :3]]
    # the median is the background (black, or a render's veil), which would show as a box
    lin = np.maximum(lin - np.median(lin.reshape(-1, 3), axis=0).astype(np.float32), 0)
    ph, pw = lin.shape[:2]
    ey = (np.arange(ph, dtype=np.float32) - (ph - 1) / 2) / (ph / 2)
    ex = (np.arange(pw, dtype=np.float32) - (pw - 1) / 2) / (pw / 2)
    rho = np.sqrt(ey[:, None] ** 2 + ex[None, :] ** 2)  # elliptical feathering, no corners
    lin *= (0.5 + 0.5 * np.cos(np.pi * np.clip((rho - 0.55) / 0.45, 0, 1)))[..., None]
    lum = ndimage.gaussian_filter(lin @ _LUMA, max(1.0, max(ph, pw) / 50))
    ay, ax = np.unravel_index(int(np.argmax(lum)), lum.shape)
    yy, xx = np.mgrid[:ph, :pw]
    total = max(float(lum.sum()), 1e-9)
    vx = float((lum * xx).sum()) / total - ax
    vy = float((lum * yy).sum()) / total - ay
    axis = bool(np.hypot(vx, vy) > 0.05 * max(ph, pw))
    return {"lin": lin, "anchor": (int(ax), int(ay)), "axis": (vx, vy) if axis else None}


def _render_pattern(
    acc: np.ndarray,
    pat: dict[str, Any],
    rng: np.random.Generator,
    src: tuple[float, float],
    hard: bool,
    strength: float,
) -> dict[str, Any]:
    """Add one prepared flare render with its brightest point on the source (a ghost chain laid
    along the line from the source through the centre)."""
    h, w, _ = acc.shape
    lin, (ax, ay) = pat["lin"], pat["anchor"]
    ph, pw = lin.shape[:2]
    rel = rng.uniform(0.2, 0.45) if hard else rng.uniform(0.3, 0.9)
    s = rel * max(h, w) / max(ph, pw)
    angle = float(rng.uniform(0, 2 * np.pi))
    flip = bool(rng.random() < 0.5)
    jitter = float(rng.normal(0, 0.2))
    if pat["axis"] is not None:
        vx, vy = pat["axis"]
        to_centre = np.arctan2((h - 1) / 2 - src[1], (w - 1) / 2 - src[0])
        angle = float(to_centre - np.arctan2(vy, -vx if flip else vx) + jitter)
    tint_name = list(_COATINGS)[int(rng.integers(len(_COATINGS)))]
    mix = float(rng.uniform(0.0, 0.7))
    gain = (rng.uniform(0.15, 0.45) if hard else rng.uniform(0.4, 1.2)) * strength
    fx = -1.0 if flip else 1.0
    ca, sa = np.cos(angle), np.sin(angle)
    a, b, d, e = fx * ca / s, fx * sa / s, -sa / s, ca / s
    sx, sy = src
    data = (a, b, ax - a * sx - b * sy, d, e, ay - d * sx - e * sy)
    tint = np.asarray(_COATINGS[tint_name], np.float32)
    plum = lin @ _LUMA
    for c in range(3):
        chan = (1 - mix) * lin[..., c] + mix * plum * tint[c] * 1.5
        img = Image.fromarray(np.ascontiguousarray(chan, np.float32), mode="F")
        warped = img.transform((w, h), Image.AFFINE, data, resample=Image.BILINEAR)
        acc[..., c] += np.float32(gain) * np.asarray(warped, np.float32)
    return {
        "anchor": [int(ax), int(ay)],
        "scale_of_long_side": _f(rel),
        "rotation": _f(angle),
        "aligned_to_axis": pat["axis"] is not None,
        "flip": flip,
        "tint": tint_name,
        "tint_mix": _f(mix),
        "gain": _f(gain),
    }


def _upsample(flare: np.ndarray, h: int, w: int) -> np.ndarray:
    if flare.shape[:2] == (h, w):
        return flare
    out = np.empty((h, w, 3), np.float32)
    for c in range(3):
        img = Image.fromarray(np.ascontiguousarray(flare[..., c]), mode="F")
        out[..., c] = np.asarray(img.resize((w, h), Image.BILINEAR))
    return out


def _composite(clean: np.ndarray, flare: np.ndarray, gain: float) -> np.ndarray:
    """sRGB(linear(clean) + gain * flare), clipped at white, in row blocks."""
    out = np.empty_like(clean)
    g = np.float32(gain * (_LUT_N - 1))
    step = max(1, (1 << 20) // max(1, clean.shape[1]))
    for y in range(0, clean.shape[0], step):
        lin = _TO_LIN[clean[y : y + step]] * np.float32(_LUT_N - 1)
        lin += flare[y : y + step] * g
        np.minimum(lin, _LUT_N - 1, out=lin)
        lin += 0.5
        out[y : y + step] = _TO_SRGB[lin.astype(np.int32)]
    return out


def _render_flare(
    shape: tuple[int, int],
    rng: np.random.Generator,
    hard: bool,
    source: dict[str, Any],
    placed: bool,
    pat: dict[str, Any] | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The flare in linear light at render resolution, and its parameters."""
    h, w = shape
    diag = float(np.hypot(h, w))
    scale = min(1.0, RENDER_MAX / max(h, w))
    hr, wr = max(1, round(h * scale)), max(1, round(w * scale))
    px = float(np.hypot(hr, wr))  # render pixels per image diagonal
    strength = _loguniform(rng, 0.12, 0.4) if hard else _loguniform(rng, 0.6, 2.0)
    src = ((source["x"] + 0.5) * wr / w - 0.5, (source["y"] + 0.5) * hr / h - 0.5)
    acc = np.zeros((hr, wr, 3), np.float32)
    params: dict[str, Any] = {"strength": _f(strength), "render_size": [wr, hr]}
    if placed and source["kind"] != "offframe_sun":
        _add_disc(acc, *src, source["radius"] * scale, source["intensity"], source["colour"])
    if pat is not None:
        params["pattern"] = {"index": pat["index"]} | _render_pattern(
            acc, pat, rng, src, hard, strength
        )
        if placed:  # a little glow so the placed source blooms like the pattern's own core
            glow = {
                "core": 1.0 * strength,
                "core_radius": source["radius"] * 1.5 / diag,
                "core_colour": source["colour"],
                "halo": 0.4 * strength,
                "halo_radius": source["radius"] * 3 / diag,
                "halo_power": 1.3,
                "wide": 0.0,
                "wide_radius": 0.05,
                "wide_extent": 0.5,
                "colour": source["colour"],
            }
            _add_glare(acc, *src, glow, px)
    else:
        phys = _physical_params(rng, hard, source, strength, diag)
        params.update(phys)
        _render_physical(acc, phys, src, px, diag)
    return acc, params


def _visible_composite(
    clean: np.ndarray, flare: np.ndarray, hard: bool, boost: float = 1.0
) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """The composite with the flare (times ``boost``) doubled up to 6 times until its mask
    reaches the minimum fraction; the image, mask, boost and whether it got there."""
    for _ in range(7):
        image = _composite(clean, flare, boost)
        mask = visible_mask(clean, image)
        if mask.mean() >= MIN_FRACTION[hard]:
            return image, mask, boost, True
        boost *= 2.0
    return image, mask, boost / 2.0, False


def _gain_for_extent(clean: np.ndarray, flare: np.ndarray, target: float) -> float:
    """The flare gain whose visibly changed share of the frame is ``target`` (bisection in log
    gain on copies of at most 256 px). On a dark scene the glare's far tail, however faint in
    linear light, is visible everywhere; real night glows are local, so their extent is drawn."""
    h, w = clean.shape[:2]
    f = min(1.0, 256.0 / max(h, w))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    small = np.asarray(Image.fromarray(clean).resize(size, Image.BOX))
    flare_small = np.stack(
        [np.asarray(Image.fromarray(np.ascontiguousarray(flare[..., c])).resize(size, Image.BOX))
         for c in range(3)], axis=-1,
    )  # fmt: skip
    lo, hi = np.log(1e-4), np.log(8.0)
    for _ in range(12):
        mid = (lo + hi) / 2
        changed = change_delta(small, _composite(small, flare_small, float(np.exp(mid))))
        if (changed >= VISIBLE_DELTA).mean() < target:
            lo = mid
        else:
            hi = mid
    return float(np.exp((lo + hi) / 2))


def _flare_lamps(
    clean: np.ndarray, rng: np.random.Generator, hard: bool, lamps: Sequence[dict[str, Any]]
) -> Sample:
    """Night route: the physical flare around 1-3 of the scene's lamps (brightest first; the lamps
    are already in ``clean``), with a steeper halo (power 1.6-2.4), a glare envelope cut to
    15-40 %, no veiling haze and at most 2 faint ghosts, so that the glow stays local as it does
    at night; the gain is then set so that the visible share of the frame is a drawn
    ``NIGHT_EXTENT``."""
    h, w = clean.shape[:2]
    diag = float(np.hypot(h, w))
    scale = min(1.0, RENDER_MAX / max(h, w))
    hr, wr = max(1, round(h * scale)), max(1, round(w * scale))
    px = float(np.hypot(hr, wr))
    order = sorted(lamps, key=lambda lamp: -lamp["intensity"] * lamp["radius"])
    chosen = order[: int(rng.integers(1, min(3, len(order)) + 1))]
    acc = np.zeros((hr, wr, 3), np.float32)
    renders = []
    for lamp in chosen:
        strength = _loguniform(rng, 0.12, 0.4) if hard else _loguniform(rng, 0.6, 2.0)
        phys = _physical_params(rng, hard, lamp, strength, diag)
        glare = phys["glare"]
        glare["halo_power"] = _f(rng.uniform(1.6, 2.4))
        glare["wide_extent"] = _f(glare["wide_extent"] * rng.uniform(0.15, 0.4))
        glare["haze"] = None
        ghosts = phys["ghosts"][: int(rng.integers(0, 3))]  # a lamp's ghosts are faint
        phys["ghosts"] = [gh | {"amp": _f(gh["amp"] * 0.3)} for gh in ghosts]
        src = ((lamp["x"] + 0.5) * wr / w - 0.5, (lamp["y"] + 0.5) * hr / h - 0.5)
        _render_physical(acc, phys, src, px, diag)
        renders.append({"strength": _f(strength), **phys})
    flare = _upsample(acc, h, w)
    target = _f(rng.uniform(*NIGHT_EXTENT[hard]))
    gain = _gain_for_extent(clean, flare, target)
    image, mask, boost, _ = _visible_composite(clean, flare, hard, gain)
    params = {"route": "night", "hard": hard, "sources": chosen, "renders": renders,
              "render_size": [wr, hr], "target_fraction": target, "boost": _f(boost),
              "mask_fraction": _f(mask.mean())}  # fmt: skip
    return Sample(image=image, reference=clean, mask=mask, label="flare", params=params)


def synthesize_flare(
    clean: np.ndarray,
    rng: np.random.Generator,
    *,
    hard: bool = False,
    patterns: Sequence[np.ndarray] | None = None,
    lamps: Sequence[dict[str, Any]] | None = None,
) -> Sample:
    """Add a lens flare to ``clean`` (HxWx3 uint8 RGB); see the module docstring. ``lamps`` (a
    night scene's light sources, :func:`train.synth.night.night_scene`) take the night route."""
    clean = np.ascontiguousarray(clean)
    if clean.ndim != 3 or clean.shape[2] != 3 or clean.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got {clean.shape} {clean.dtype}")
    if lamps:
        return _flare_lamps(clean, rng, hard, lamps)
    h, w = clean.shape[:2]
    pat = None
    if patterns and rng.random() < PATTERN_PROB:
        index = int(rng.integers(len(patterns)))
        pat = _prepare_pattern(patterns[index]) | {"index": index}
    found = _find_source(clean)
    placed = found is None or bool(rng.random() < PLACE_ANYWAY_PROB)
    # a centred pattern (a starburst) needs its source in the frame; a ghost chain does not
    offframe_ok = pat is None or pat["axis"] is not None
    attempt = 0
    for attempt in range(2):  # noqa: B007  (a flare lost in clipped white is redone elsewhere)
        source = _place_source(rng, h, w, hard, offframe_ok) if placed else found
        assert source is not None
        acc, render = _render_flare((h, w), rng, hard, source, placed, pat)
        image, mask, boost, visible = _visible_composite(clean, _upsample(acc, h, w), hard)
        if visible:
            break
        placed, offframe_ok = True, False
    params: dict[str, Any] = {
        "route": "physical" if pat is None else "pattern",
        "hard": hard,
        "source": source,
        "detected_source": found,
        "attempt": attempt,
        **render,
        "boost": boost,
        "mask_fraction": _f(mask.mean()),
    }
    return Sample(image=image, reference=clean, mask=mask, label="flare", params=params)
