"""Procedural clean scenes and screen content, made from a seed with no external files.

For tests and for users without photos: outdoor-like scenes (sky gradient, textured ground,
buildings with windows, trees, an optional sun) and UI-like screen content (windows, text lines,
buttons, picture tiles) to show on a simulated display.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

WORDS = (
    "image quality artifact detection report camera sensor pipeline lens flare ghosting moire "
    "frame exposure window settings preview export render status review update display"
).split()


def fractal_noise(
    height: int, width: int, rng: np.random.Generator, octaves: int = 5
) -> np.ndarray:
    """Smooth multi-scale noise in [0, 1], float32 ``HxW``."""
    out = np.zeros((height, width), np.float32)
    amplitude, total = 1.0, 0.0
    for octave in range(octaves):
        sigma = max(height, width) / (4.0 * 2**octave)
        layer = ndimage.gaussian_filter(
            rng.standard_normal((height, width)).astype(np.float32), sigma
        )
        layer /= layer.std() + 1e-6
        out += amplitude * layer
        total += amplitude
        amplitude *= 0.55
    out /= total
    return (out - out.min()) / (out.max() - out.min() + 1e-6)


def _color(
    rng: np.random.Generator, base: tuple[int, int, int], spread: int
) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in base)


def procedural_scene(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """An outdoor-like RGB uint8 scene."""
    horizon = int(height * rng.uniform(0.35, 0.65))
    top = np.array(_color(rng, (70, 120, 200), 30), np.float32)
    low = np.array(_color(rng, (190, 210, 235), 25), np.float32)
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    img = (top * (1 - t) + low * t) * np.ones((1, width, 1), np.float32)
    clouds = fractal_noise(height, width, rng, 4)[:, :, None]
    img = img + (np.clip(clouds - 0.55, 0, 1) * 1.6 * (255 - img)) * (t < 0.7)
    ground_base = np.array(_color(rng, (90, 110, 60), 35), np.float32)
    texture = fractal_noise(height, width, rng, 6)[:, :, None]
    ground = ground_base * (0.6 + 0.8 * texture)
    img[horizon:] = ground[horizon:]
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 6))):  # buildings with windows
        bw = int(width * rng.uniform(0.08, 0.22))
        bh = int(height * rng.uniform(0.15, 0.45))
        x0 = int(rng.integers(0, max(1, width - bw)))
        y1 = horizon + int(rng.integers(0, max(1, height // 20)))
        wall = _color(rng, (150, 140, 130), 60)
        draw.rectangle((x0, y1 - bh, x0 + bw, y1), fill=wall)
        step = max(6, bw // 6)
        for wy in range(y1 - bh + step // 2, y1 - step, step):
            for wx in range(x0 + step // 3, x0 + bw - step // 2, step):
                glass = _color(rng, (60, 80, 110), 25)
                draw.rectangle((wx, wy, wx + step // 2, wy + step // 2), fill=glass)
    for _ in range(int(rng.integers(2, 8))):  # trees
        r = int(min(height, width) * rng.uniform(0.03, 0.09))
        cx = int(rng.integers(0, width))
        cy = horizon + int(rng.integers(-r, max(1, height - horizon - r)))
        draw.rectangle(
            (cx - r // 6, cy, cx + r // 6, cy + 2 * r), fill=_color(rng, (80, 60, 40), 15)
        )
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_color(rng, (50, 100, 45), 25))
    if rng.random() < 0.4:  # a sun in the sky
        r = int(min(height, width) * rng.uniform(0.015, 0.04))
        cx, cy = int(rng.integers(r, width - r)), int(rng.integers(r, max(r + 1, horizon - r)))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 252, 235))
    canvas = canvas.filter(ImageFilter.GaussianBlur(0.6))
    out = np.asarray(canvas).astype(np.float32) + rng.normal(0, 1.5, (height, width, 3))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def ui_content(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """UI-like screen content: a window with a title bar, text lines, buttons and picture tiles."""
    dark = rng.random() < 0.3
    bg = _color(rng, (35, 38, 45) if dark else (245, 246, 248), 8)
    fg = (220, 220, 225) if dark else (25, 25, 30)
    canvas = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(canvas)
    bar = max(8, height // 14)
    draw.rectangle((0, 0, width, bar), fill=_color(rng, (60, 90, 160), 40))
    x, y = width // 20, bar + height // 25
    line = max(8, height // 28)
    col_right = int(width * rng.uniform(0.55, 0.7))
    while y < height - 2 * line:
        if rng.random() < 0.12:  # a button row
            for bx in range(x, col_right - 60, int(width * 0.16)):
                draw.rounded_rectangle((bx, y, bx + width // 8, y + line), radius=3,
                                       fill=_color(rng, (70, 130, 220), 30))  # fmt: skip
            y += int(1.8 * line)
            continue
        text = " ".join(WORDS[int(i)] for i in rng.integers(0, len(WORDS), 12))
        draw.text((x, y), text[: max(10, (col_right - x) // 6)], fill=fg)
        y += int(1.4 * line)
    for _ in range(int(rng.integers(1, 4))):  # picture tiles on the right
        tw, th = int(width * rng.uniform(0.15, 0.28)), int(height * rng.uniform(0.15, 0.3))
        tx = int(rng.integers(col_right + 5, max(col_right + 6, width - tw)))
        ty = int(rng.integers(bar + 5, max(bar + 6, height - th)))
        tile = procedural_scene(max(th, 8), max(tw, 8), rng)
        canvas.paste(Image.fromarray(tile), (tx, ty))
    return np.asarray(canvas)
