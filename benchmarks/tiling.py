"""Whole-image vs native-resolution tiled inference on high-resolution data, side by side.

    python benchmarks/tiling.py [--model M] [--data data/ipad-hires-test] [--eval-size 1024]
        [--variants off scale=0.5 auto ...] [--out benchmarks/results]

The data is a high-resolution synthetic test set (2048 px long side, about 2.8 MP)::

    python train/make_dataset.py --clean ../shared/data/clean --out data/ipad-hires-test \\
        --n-per-class 200 --n-clean 200 --size 2048 --splits test \\
        --flare-patterns ../shared/data/flare_patterns

Each variant is one ``Detector(tiling=...)`` run through ``benchmarks/accuracy.py``'s evaluation
(the same metric code as every accuracy table); maps and masks are compared at ``--eval-size`` on
the long side. Reports Table 1's metrics, per-class S-F1/S-AUPRO, seconds per image and the ratio
to the whole-image run, and draws whole vs tiled maps for one image per artifact class. Writes
``tiling.json``, ``tiling.md`` and ``tiling_examples.jpg``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `train` importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import dataclasses
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.accuracy import evaluate
from ipad_sdk import Detector
from ipad_sdk.fileio import atomic_write_bytes
from ipad_sdk.tiling import TilingSpec
from train.dataset import read_manifest
from train.evaluation import TABLE1

DEFAULT_VARIANTS = (
    "off",
    "scale=0.25,image_rule=global", "scale=0.25", "scale=0.25,image_rule=max",
    "scale=0.5,image_rule=global", "scale=0.5", "scale=0.5,image_rule=max",
    "auto",
)  # fmt: skip


def run_variants(
    model: str, data: Path, variants: list[str], eval_size: int
) -> list[dict[str, Any]]:
    """Evaluate every tiling variant on the test split; one report per variant."""
    rows = []
    for spec in variants:
        print(f"tiling: {spec}", flush=True)
        report = evaluate(model, data, "test", eval_size, "cpu", tiling=spec)
        parsed = TilingSpec.parse(spec)
        report["tiling_spec"] = None if parsed is None else dataclasses.asdict(parsed)
        report["seconds_per_image"] = report["seconds"] / report["images"]
        rows.append(report)
    base = rows[0]["seconds_per_image"]
    for row in rows:
        row["time_ratio"] = row["seconds_per_image"] / base
    return rows


def to_markdown(rows: list[dict[str, Any]], machine: str) -> str:
    first = rows[0]
    head = " | ".join(h for h, _, _ in TABLE1)
    classes = list(first["per_class"])
    lines = [
        "# Native-resolution tiling vs whole-image inference",
        "",
        f"Model `{first['model']}` ({first['backbone']} @ {first['image_size']} px) on "
        f"`{first['data']}` (test split, {first['images']} images, 2048 px long side); maps and "
        f"masks compared at {first['eval_size']} px on the long side. {machine}. Values in %; "
        "time is seconds per image including decoding, and its ratio to `off` measured in the "
        "same run. `image_rule` changes only the C- metrics.",
        "",
        f"| tiling | {head} | s/img | time × |",
        "|---|" + "---|" * (len(TABLE1) + 2),
    ]
    for row in rows:
        vals = " | ".join(f"{100 * row[g][k]:.2f}" for _, g, k in TABLE1)
        lines.append(f"| `{row['tiling']}` | {vals} | {row['seconds_per_image']:.2f} | "
                     f"{row['time_ratio']:.1f} |")  # fmt: skip
    lines += ["", "Per class (class images + clean images): S-F1 / S-AUPRO / C-AUROC.", "",
              "| tiling | " + " | ".join(classes) + " |",
              "|---|" + "---|" * len(classes)]  # fmt: skip
    for row in rows:
        cells = []
        for name in classes:
            pc = row["per_class"][name]
            cells.append(f"{100 * pc['pixel']['f1_max']:.1f} / {100 * pc['pixel']['aupro']:.1f}"
                         f" / {100 * pc['image']['auroc']:.1f}")  # fmt: skip
        lines.append(f"| `{row['tiling']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def example_sheet(model: str, data: Path, tiled: str, out: Path) -> None:
    """One row per artifact class: photo, ground truth, whole-image heatmap, tiled heatmap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in read_manifest(data) if r["split"] == "test" and r["label"] != "clean"]
    picks = [next(r for r in records if r["label"] == c) for c in ("ghosting", "flare", "moire")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole, tiles = Detector(model, device="cpu"), Detector(model, device="cpu", tiling=tiled)
    fig, axes = plt.subplots(len(picks), 4, figsize=(16, 3.4 * len(picks)))
    for row, rec in zip(axes, picks, strict=True):
        path = str(data / rec["image"])
        panels = [
            (np.asarray(Image.open(path).convert("RGB")), f"{rec['label']} ({rec['id']})", None),
            (np.asarray(Image.open(data / rec["mask"])), "ground truth", "gray"),
            (whole.detect(path).heatmap, "whole image (tiling off)", "magma"),
            (tiles.detect(path).heatmap, f"tiled ({tiled})", "magma"),
        ]
        for ax, (img, title, cmap) in zip(row, panels, strict=True):
            ax.imshow(img, cmap=cmap, vmin=0 if cmap else None, vmax=1 if cmap == "magma" else None)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="jpg", dpi=70)
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ipad_sdk/weights/ipad-default.onnx")
    parser.add_argument("--data", type=Path, default=Path("data/ipad-hires-test"))
    parser.add_argument("--eval-size", type=int, default=1024)
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--example", default="scale=0.5", help="tiling drawn in the figure")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if not (args.data / "manifest.jsonl").exists():
        parser.error(f"{args.data}: no dataset (see this script's docstring to build it)")
    if args.variants[0] != "off":
        args.variants.insert(0, "off")  # the baseline every ratio refers to
    for spec in args.variants:
        TilingSpec.parse(spec)  # fail on a bad spec before the long runs
    rows = run_variants(args.model, args.data, args.variants, args.eval_size)
    machine = f"CPU, {os.cpu_count()} cores, ONNX Runtime" if args.model.endswith(".onnx") else (
        f"CPU, {os.cpu_count()} cores, PyTorch")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine, "rows": rows}
    atomic_write_bytes(args.out / "tiling.json", json.dumps(payload, indent=1).encode())
    markdown = to_markdown(rows, machine)
    atomic_write_bytes(args.out / "tiling.md", markdown.encode())
    example_sheet(args.model, args.data, args.example, args.out / "tiling_examples.jpg")
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
