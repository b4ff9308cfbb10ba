"""Accuracy of a model on a dataset split: the paper's Table 1 (C-/S- metrics) and Table 3 (per
class C-AP and S-F1), through the SDK's Detector exactly as users run it.

    python benchmarks/accuracy.py --model M --data D [--split test] [--name NAME]
        [--eval-size 256] [--device cpu] [--tiling off] [--out benchmarks/results]

C- (image) metrics score ``artifact_score = 1 - P(clean)`` against artifact/clean; per class, the
images of class k plus the clean images, scored by P(k). S- (pixel) metrics compare the heatmap with
the ground-truth mask over all images of the split (clean images give negatives only), per class on
class-k plus clean images. Maps and masks are compared at ``--eval-size`` on the long side
(heatmap bilinear, mask nearest) to bound memory; 0 evaluates at each image's own size.
Writes ``accuracy_<name>.json`` and ``.md``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make `train` importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from ipad_sdk import Detector
from ipad_sdk.fileio import atomic_write_bytes
from train import evaluation
from train.dataset import read_manifest
from train.evaluation import TABLE1


def _resize_pair(heatmap: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    if not size:
        return heatmap, mask
    h, w = mask.shape
    scale = size / max(h, w)
    target = (max(1, round(w * scale)), max(1, round(h * scale)))
    small_map = np.asarray(Image.fromarray(heatmap, mode="F").resize(target, Image.BILINEAR))
    small_mask = np.asarray(Image.fromarray(mask).resize(target, Image.NEAREST))
    return small_map.astype(np.float32), small_mask.astype(bool)


def evaluate(
    model: str, data: Path, split: str = "test", eval_size: int = 256, device: str = "cpu",
    batch_size: int = 8, tiling: str = "off",
) -> dict[str, Any]:  # fmt: skip
    """Run the Detector (with ``tiling``) over the split and compute every metric."""
    records = [r for r in read_manifest(data) if r["split"] == split]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = Detector(model, device=device, batch_size=batch_size, tiling=tiling)
    classes = detector.classes
    probs, maps, masks, labels = [], [], [], []
    tic = time.perf_counter()
    results = detector.iter_detect(str(data / r["image"]) for r in records)
    for rec, res in tqdm(zip(records, results, strict=True), total=len(records), unit="img"):
        mask = np.asarray(Image.open(data / rec["mask"]).convert("L")) > 127
        heatmap, mask = _resize_pair(res.heatmap, mask, eval_size)
        probs.append([res.scores[c] for c in classes])
        maps.append(heatmap)
        masks.append(mask)
        labels.append(classes.index(rec["label"]))
    seconds = time.perf_counter() - tic
    probs_arr, labels_arr = np.asarray(probs), np.asarray(labels)
    report: dict[str, Any] = {
        "model": str(model), "data": str(data), "split": split, "images": len(records),
        "eval_size": eval_size, "seconds": seconds, "tiling": tiling,
        "backbone": detector.config.backbone,
        "image_size": detector.config.image_size,
        "image": evaluation.image_metrics(1.0 - probs_arr[:, 0], (labels_arr != 0).astype(int)),
        "pixel": evaluation.pixel_metrics(maps, masks),
        "per_class": {},
    }  # fmt: skip
    per_class_image = evaluation.per_class_image_metrics(probs_arr, labels_arr, classes)
    for k, name in enumerate(classes[1:], start=1):
        keep = [i for i, lab in enumerate(labels) if lab in (0, k)]
        pixel = evaluation.pixel_metrics([maps[i] for i in keep], [masks[i] for i in keep])
        report["per_class"][name] = {"image": per_class_image[name], "pixel": pixel,
                                     "images": int((labels_arr == k).sum())}  # fmt: skip
    return report


def to_markdown(name: str, report: dict[str, Any]) -> str:
    head = " | ".join(h for h, _, _ in TABLE1)
    row = " | ".join(f"{100 * report[g][k]:.2f}" for _, g, k in TABLE1)
    lines = [
        f"# Accuracy: {name}",
        "",
        f"Model `{report['model']}` ({report['backbone']} @ {report['image_size']} px) on "
        f"`{report['data']}` split `{report['split']}` ({report['images']} images), maps at "
        f"{report['eval_size'] or 'native'} px; {report['seconds']:.0f} s. Values in %.",
        "",
        f"| {head} |",
        "|" + "---|" * len(TABLE1),
        f"| {row} |",
        "",
        "Per class (Table 3): C-AP one-vs-clean, S-F1 on the class's images plus the clean ones.",
        "",
        "| class | images | C-AP | C-AUROC | S-F1 | S-AUPRO |",
        "|---|---|---|---|---|---|",
    ]
    for cls, vals in report["per_class"].items():
        lines.append(
            f"| {cls} | {vals['images']} | {100 * vals['image']['ap']:.2f} | "
            f"{100 * vals['image']['auroc']:.2f} | {100 * vals['pixel']['f1_max']:.2f} | "
            f"{100 * vals['pixel']['aupro']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--name", help="name of the result files (default: the model's stem)")
    parser.add_argument("--eval-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiling", default="off", help="the Detector's tiling (off, auto, spec)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    name = args.name or Path(args.model).parent.name or Path(args.model).stem
    report = evaluate(args.model, args.data, args.split, args.eval_size, args.device,
                      tiling=args.tiling)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / f"accuracy_{name}.json", json.dumps(report, indent=1).encode())
    markdown = to_markdown(name, report)
    atomic_write_bytes(args.out / f"accuracy_{name}.md", markdown.encode())
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
