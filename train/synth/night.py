"""Night scenes: a daylight photo relit as a street-lit night shot with visible lamps.

Most real lens-flare complaints are night shots (street lamps, headlights, traffic lights: 8 of
the 10 flare photos of ``real-dev``), and the clean night shots of the same streets are the hard
negatives: a lamp is not a flare, its veiling glow is. Our source photos are daylight, so the
dataset builder relights a share of the items of *every* class, clean included (night is never a
shortcut to a label), and the flare generator then flares some of the lamps.

Model, in linear light (sizes are fractions of the image diagonal D):

* Illumination = ambient (0.005-0.04, moonlight blue or sodium-sky orange) + 1-6 lamps' light
  pools (Gaussian, sigma 0.06-0.3 D, power 0.3-1.5, the lamp's colour); the photo's linear values
  are its reflectance, so the scene shows where the lamps light it.
* A night-mode exposure maps the 99th percentile of the lit scene's luminance to 0.04-0.2.
* Each lamp is drawn as a clipped disc (radius 0.0015-0.006 D, 3-10x white, colour halfway to
  white) with the tight bloom every real lens has (a Gaussian of 1-2 disc radii, 0.2-0.8): the
  appearance of a clean lamp. The flare generator adds the glare, streaks and ghosts around it.

Every random choice is returned in ``params``; the same input and seed give identical bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import linear_to_srgb, srgb_to_linear

_TO_LIN = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
_AMBIENT_TINTS = ((0.7, 0.82, 1.0), (1.0, 0.78, 0.55))  # moonlit sky, sodium-lit overcast
_LAMP_COLOURS = (
    (1.0, 0.62, 0.28),  # low-pressure sodium
    (1.0, 0.8, 0.55),  # warm white
    (0.88, 0.95, 1.0),  # LED / headlight
    (0.35, 1.0, 0.55),  # traffic green
    (1.0, 0.3, 0.15),  # traffic red / tail light
    (1.0, 0.6, 0.12),  # amber signal
)
_LAMP_P = (0.25, 0.25, 0.3, 0.07, 0.08, 0.05)


def _f(x: Any) -> float:
    return float(np.float32(x))


def _lamp(rng: np.random.Generator, h: int, w: int, diag: float) -> dict[str, Any]:
    colour = np.asarray(_LAMP_COLOURS[int(rng.choice(len(_LAMP_COLOURS), p=_LAMP_P))])
    return {
        "kind": "lamp",
        "x": _f(rng.uniform(0.05, 0.95) * w),
        "y": _f(rng.uniform(0.05, 0.75) * h),
        "radius": _f(max(rng.uniform(0.0015, 0.006) * diag, 1.0)),
        "colour": [_f(c) for c in 0.5 * colour + 0.5],  # the clipped core reads nearly white
        "light": [_f(c) for c in colour],
        "intensity": _f(rng.uniform(3.0, 10.0)),
        "pool_sigma": _f(rng.uniform(0.06, 0.3)),
        "pool_power": _f(rng.uniform(0.3, 1.5)),
        "bloom": _f(rng.uniform(0.2, 0.8)),
        "bloom_radius": _f(rng.uniform(1.0, 2.0)),
    }


def night_scene(photo: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """``photo`` (HxWx3 uint8 RGB) relit as a night shot with clean lamps; the image and its
    parameters (``params["lamps"]`` are the light sources, in pixel coordinates)."""
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got {photo.shape} {photo.dtype}")
    h, w = photo.shape[:2]
    diag = float(np.hypot(h, w))
    tint = np.asarray(_AMBIENT_TINTS[int(rng.integers(len(_AMBIENT_TINTS)))], np.float32)
    ambient = _f(np.exp(rng.uniform(np.log(0.005), np.log(0.04))))
    lamps = [_lamp(rng, h, w, diag) for _ in range(int(rng.integers(1, 7)))]
    exposure_p99 = _f(rng.uniform(0.04, 0.2))

    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    illum = np.empty((h, w, 3), np.float32)
    illum[:] = ambient * tint
    sources = np.zeros((h, w, 3), np.float32)
    for lamp in lamps:
        r2 = (xs - lamp["x"]) ** 2 + (ys - lamp["y"]) ** 2
        pool = lamp["pool_power"] * np.exp(-r2 / np.float32(2 * (lamp["pool_sigma"] * diag) ** 2))
        disc = np.clip(lamp["radius"] + 0.5 - np.sqrt(r2), 0, 1) * lamp["intensity"]
        sigma = lamp["bloom_radius"] * lamp["radius"]
        bloom = lamp["bloom"] * np.exp(-r2 / np.float32(2 * sigma * sigma))
        for c in range(3):
            illum[..., c] += pool * lamp["light"][c]
            sources[..., c] += disc * lamp["colour"][c] + bloom * lamp["light"][c]
    lit = _TO_LIN[photo] * illum
    gain = exposure_p99 / max(float(np.percentile(lit @ _LUMA, 99)), 1e-4)
    lit = lit * np.float32(gain) + sources
    image = np.round(linear_to_srgb(np.clip(lit, 0.0, 1.0)) * 255.0).astype(np.uint8)
    params = {
        "ambient": ambient,
        "ambient_tint": [_f(c) for c in tint],
        "exposure_p99": exposure_p99,
        "gain": _f(gain),
        "lamps": lamps,
    }
    return image, params
