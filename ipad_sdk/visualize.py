"""Pictures of results: mask overlays with labelled regions, and heatmap panels (numpy + pillow
only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .regions import Region

CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "clean": (40, 200, 80),
    "ghosting": (230, 40, 230),
    "flare": (255, 150, 0),
    "moire": (0, 200, 255),
}
_FALLBACK_COLOR = (255, 40, 40)

#: Anchor colours of matplotlib's "inferno" map at 0, 1/8, ..., 1 (perceptually uniform, readable
#: in grey): a fixed table interpolated to 256 entries, so pictures need no matplotlib at run time.
_INFERNO_ANCHORS = np.array(
    [(0, 0, 4), (33, 12, 74), (87, 16, 110), (138, 34, 106), (188, 55, 84),
     (228, 90, 49), (249, 142, 9), (249, 203, 53), (252, 255, 164)],
    dtype=np.float64,
)  # fmt: skip
HEATMAP_LUT = np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_INFERNO_ANCHORS)), channel)
     for channel in _INFERNO_ANCHORS.T],
    axis=-1,
).round().astype(np.uint8)  # fmt: skip


def _color(label: str) -> tuple[int, int, int]:
    return CLASS_COLORS.get(label, _FALLBACK_COLOR)


def _label_box(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, color: tuple[int, int, int]
) -> None:
    """``text`` in ``color`` on a black box with its top-left corner at ``xy``."""
    left, top, right, bottom = draw.textbbox(xy, text)
    draw.rectangle((left - 3, top - 3, right + 3, bottom + 3), fill=(0, 0, 0))
    draw.text(xy, text, fill=color)


def draw_overlay(
    rgb: np.ndarray,
    heatmap: np.ndarray,
    mask: np.ndarray,
    label: str,
    alpha: float = 0.5,
    regions: Sequence[Region] = (),
) -> Image.Image:
    """Draw a result on its image.

    Tints the masked pixels in the label's colour (stronger where the heatmap is higher),
    outlines the mask, boxes each region in its class colour with its class and peak score, and
    writes the label in the top-left corner.

    Args:
        rgb: The image, ``HxWx3`` uint8.
        heatmap: Per-pixel artifact probability, ``[H, W]`` in [0, 1].
        mask: bool ``[H, W]`` artifact mask.
        label: The image's label (picks the colour).
        alpha: Opacity of the tint, 0 to 1.
        regions: Regions to box and label.

    Returns:
        The overlay, an RGB image of the input's size.
    """
    color = np.asarray(_color(label), dtype=np.float32)
    weight = (alpha * mask * (0.5 + 0.5 * heatmap))[:, :, None]
    out = rgb.astype(np.float32) * (1.0 - weight) + color * weight
    mask_img = Image.fromarray(mask.astype(np.uint8) * 255)
    # Mask outline = mask minus its 3x3 erosion (Pillow's MinFilter is a grey-level erosion).
    eroded = np.asarray(mask_img.filter(ImageFilter.MinFilter(3))) > 0
    out[mask & ~eroded] = color
    image = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for region in regions:
        left, top, right, bottom = region.bbox
        box_color = _color(region.label)
        draw.rectangle((left, top, right - 1, bottom - 1), outline=box_color)
        text = f"{region.label} {region.peak:.2f}"
        height = draw.textbbox((0, 0), text)[3]
        _label_box(draw, (left + 3, max(top - height - 5, 3)), text, box_color)  # above the box
    _label_box(draw, (4, 4), label, _color(label))
    return image


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """Colour-map a heatmap (inferno: black at 0, yellow at 1).

    Args:
        heatmap: Values in [0, 1], any 2-D shape ``HxW``.

    Returns:
        ``HxWx3`` uint8 colours from ``HEATMAP_LUT``.
    """
    colours: np.ndarray = HEATMAP_LUT[np.clip(np.rint(heatmap * 255), 0, 255).astype(np.uint8)]
    return colours


def heatmap_panel(
    rgb: np.ndarray, heatmap: np.ndarray, mask: np.ndarray, label: str
) -> Image.Image:
    """Put the photo, its colour-mapped heatmap and its mask side by side (4-pixel gaps).

    The view ``ipad detect --save-heatmaps`` writes.

    Args:
        rgb: The image, ``HxWx3`` uint8.
        heatmap: Per-pixel artifact probability, ``[H, W]`` in [0, 1].
        mask: bool ``[H, W]`` artifact mask, drawn in the label's colour.
        label: The image's label.

    Returns:
        An RGB image ``(3 * W + 8) x H``.
    """
    height, width = mask.shape
    mask_rgb = np.zeros((height, width, 3), dtype=np.uint8)
    mask_rgb[mask] = _color(label)
    panel = Image.new("RGB", (3 * width + 8, height), (255, 255, 255))
    for i, part in enumerate((rgb, colorize(heatmap), mask_rgb)):
        panel.paste(Image.fromarray(part), (i * (width + 4), 0))
    return panel
