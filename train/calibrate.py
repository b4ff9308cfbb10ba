"""Set a bundle's decision thresholds on validation data at chosen false-positive rates.

    python train/calibrate.py MODEL.safetensors --data DATASET [--split val] [--image-fpr 0.05]
        [--pixel-fpr 0.01] --out CALIBRATED.safetensors
    python train/calibrate.py MODEL.safetensors --clean-images DIR [--image-fpr 0.1]
        --out CALIBRATED.safetensors

``--clean-images DIR`` sets only the image threshold, on a folder of clean photos (real captures,
say), and keeps the model's pixel threshold (a folder has no masks).

A quality gate is judged by its false alarms, so the thresholds are operating points on the clean
data: ``image_threshold`` is the artifact score at which at most ``image_fpr`` of the clean
validation images are labelled an artifact; ``pixel_threshold`` the heatmap value at which at most
``pixel_fpr`` of the clean pixels (every pixel outside the artifact masks) enter the mask. Each sits
midway between neighbouring scores, never on one (see
:func:`ipad_sdk.thresholds.threshold_at_fpr`).
The new bundle holds the same weights with these thresholds in its config; the achieved rates on
the split are printed and returned.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as `python train/calibrate.py`: make `train` importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ipad_sdk import Detector
from ipad_sdk.thresholds import threshold_at_fpr
from train.dataset import read_manifest


def calibrate(
    model: str | os.PathLike[str], data: Path, split: str = "val", image_fpr: float = 0.05,
    pixel_fpr: float = 0.01, device: str = "cpu",
) -> dict[str, Any]:  # fmt: skip
    """Thresholds at the given clean false-positive rates, and the rates they achieve."""
    records = [r for r in read_manifest(data) if r["split"] == split]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = Detector(model, device=device)
    size = detector.config.image_size
    scores, labels, clean_pixels, artifact_pixels = [], [], [], []
    results = detector.iter_detect(str(data / r["image"]) for r in records)
    for rec, res in zip(records, results, strict=True):
        heatmap = 1.0 - res.pixel_probs[0]  # at network resolution
        mask = Image.open(data / rec["mask"]).convert("L").resize((size, size), Image.NEAREST)
        inside = np.asarray(mask) > 127
        scores.append(res.artifact_score)
        labels.append(rec["label"] != "clean")
        clean_pixels.append(heatmap[~inside])
        artifact_pixels.append(heatmap[inside])
    scores_arr, artifact = np.asarray(scores), np.asarray(labels)
    image_t = threshold_at_fpr(scores_arr[~artifact], image_fpr)
    clean_px, artifact_px = np.concatenate(clean_pixels), np.concatenate(artifact_pixels)
    pixel_t = threshold_at_fpr(clean_px, pixel_fpr)
    return {
        "split": split, "images": len(records), "image_threshold": image_t,
        "pixel_threshold": pixel_t,
        "clean_images_flagged": float((scores_arr[~artifact] >= image_t).mean()),
        "artifact_images_flagged": float((scores_arr[artifact] >= image_t).mean()),
        "clean_pixels_in_mask": float((clean_px >= pixel_t).mean()),
        "artifact_pixels_in_mask": float((artifact_px >= pixel_t).mean()),
    }  # fmt: skip


def calibrate_on_clean_images(
    model: str | os.PathLike[str], folder: Path, image_fpr: float, device: str = "cpu"
) -> dict[str, Any]:
    """The image threshold at ``image_fpr`` on a folder of clean photos (the model's pixel
    threshold is kept), and the share of them it flags."""
    from ipad_sdk.calibrate import score_files
    from ipad_sdk.discover import discover

    paths = discover([folder])
    if not paths:
        raise SystemExit(f"calibrate: {folder}: no images")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = Detector(model, device=device)
    scored = score_files(detector, paths)  # the scoring of `ipad calibrate`
    for failure in scored.failed:
        print(f"calibrate: skipped: {failure.error}", file=sys.stderr)
    scores = scored.scores
    image_t = threshold_at_fpr(scores, image_fpr)
    return {
        "split": f"clean photos in {folder}", "images": len(paths), "image_threshold": image_t,
        "pixel_threshold": detector.config.pixel_threshold,
        "clean_images_flagged": float((scores >= image_t).mean()),
    }  # fmt: skip


def write_calibrated(model: Path, out: Path, report: dict[str, Any]) -> Path:
    """Save ``model``'s weights with the calibrated thresholds in its config."""
    from ipad_sdk.model import load_bundle, save_bundle

    net = load_bundle(model, "cpu")
    config = net.config.replace(
        image_threshold=report["image_threshold"], pixel_threshold=report["pixel_threshold"]
    )
    return save_bundle(net, out, config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model bundle (.safetensors)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="dataset (manifest) to calibrate on")
    source.add_argument("--clean-images", type=Path, help="folder of clean photos (image only)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--image-fpr", type=float, default=0.05)
    parser.add_argument("--pixel-fpr", type=float, default=0.01)
    parser.add_argument("--out", type=Path, required=True, help="calibrated bundle to write")
    args = parser.parse_args(argv)
    if args.clean_images:
        report = calibrate_on_clean_images(args.model, args.clean_images, args.image_fpr)
    else:
        report = calibrate(args.model, args.data, args.split, args.image_fpr, args.pixel_fpr)
    write_calibrated(args.model, args.out, report)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
