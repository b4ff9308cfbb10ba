"""Contact sheet of a dataset for a person to eyeball: per class, image | mask overlay pairs.

python train/preview.py DATASET --out sheet.png|sheet.jpg [--per-class 4] [--split train] [--seed 0]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as `python train/preview.py`: make `train` importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ipad_sdk.fileio import atomic_write
from ipad_sdk.visualize import draw_overlay
from train.dataset import read_manifest

TILE = 256  # long side of each picture in the sheet


def _tile(image: Image.Image) -> Image.Image:
    scale = TILE / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def contact_sheet(root: Path, per_class: int = 4, split: str | None = None, seed: int = 0):
    """A PIL image: one row per sampled item, ``image | mask overlay``, labelled with the id."""
    records = [r for r in read_manifest(root) if split is None or r["split"] == split]
    labels = sorted({r["label"] for r in records}, key=lambda x: (x != "clean", x))
    rng = np.random.default_rng(seed)
    chosen = []
    for label in labels:
        pool = [r for r in records if r["label"] == label]
        picks = rng.choice(len(pool), size=min(per_class, len(pool)), replace=False)
        chosen += [pool[int(i)] for i in sorted(picks)]
    cols = 2 * min(4, max(1, len(chosen)))  # pairs per row: 4
    pairs_per_row = cols // 2
    rows = (len(chosen) + pairs_per_row - 1) // pairs_per_row
    sheet = Image.new("RGB", (cols * (TILE + 4), rows * (TILE + 18)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for n, rec in enumerate(chosen):
        rgb = np.asarray(Image.open(root / rec["image"]).convert("RGB"))
        mask = np.asarray(Image.open(root / rec["mask"]).convert("L")) > 127
        overlay = draw_overlay(rgb, mask.astype(np.float32), mask, rec["label"])
        r, c = divmod(n, pairs_per_row)
        x, y = 2 * c * (TILE + 4), r * (TILE + 18)
        sheet.paste(_tile(Image.fromarray(rgb)), (x, y + 16))
        sheet.paste(_tile(overlay), (x + TILE + 4, y + 16))
        hard = " hard" if rec.get("hard") else ""
        draw.text((x + 2, y + 2), f"{rec['id']} ({rec['split']}{hard}) {rec['mask_fraction']:.1%}",
                  fill=(230, 230, 230))  # fmt: skip
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sheet = contact_sheet(args.dataset, args.per_class, args.split, args.seed)
    fmt = "JPEG" if args.out.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    atomic_write(args.out, lambda tmp: sheet.save(tmp, format=fmt, quality=88))
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
