"""Pictures of results: mask overlays (numpy + pillow only)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "clean": (40, 200, 80),
    "ghosting": (230, 40, 230),
    "flare": (255, 150, 0),
    "moire": (0, 200, 255),
}
_FALLBACK_COLOR = (255, 40, 40)


def draw_overlay(
    rgb: np.ndarray, heatmap: np.ndarray, mask: np.ndarray, label: str, alpha: float = 0.5
) -> Image.Image:
    """Tint the masked pixels in the label's colour (stronger where the heatmap is higher),
    outline the mask, and write the label in the top-left corner."""
    color = np.asarray(CLASS_COLORS.get(label, _FALLBACK_COLOR), dtype=np.float32)
    weight = (alpha * mask * (0.5 + 0.5 * heatmap))[:, :, None]
    out = rgb.astype(np.float32) * (1.0 - weight) + color * weight
    mask_img = Image.fromarray(mask.astype(np.uint8) * 255)
    # Mask outline = mask minus its 3x3 erosion (Pillow's MinFilter is a grey-level erosion).
    eroded = np.asarray(mask_img.filter(ImageFilter.MinFilter(3))) > 0
    out[mask & ~eroded] = color
    image = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    text_box = draw.textbbox((4, 4), label)
    left, top, right, bottom = text_box
    draw.rectangle((left - 3, top - 3, right + 3, bottom + 3), fill=(0, 0, 0))
    draw.text((4, 4), label, fill=tuple(int(c) for c in color))
    return image
