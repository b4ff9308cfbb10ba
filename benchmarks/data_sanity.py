"""Data sanity: can a detector that sees only GLOBAL image statistics tell synthetic artifact images
from clean ones? If it can, the synthesis leaks a global cue (tone, noise, JPEG, size) that a model
could learn instead of the artifacts. Target: AUROC <= 0.65.

    python benchmarks/data_sanity.py DATASET [--split test] [--name NAME] [--out benchmarks/results]
        [--sheet]

Features per image (hand-crafted, global): 16-bin histograms per RGB channel, mean/std per channel,
the radial power spectrum of the luminance in 12 log-spaced bands (centre 256x256 crop at native
resolution), JPEG traces (8x8 blockiness ratio, fraction of near-zero high-frequency DCT
coefficients), image width, height and aspect. Classifier: gradient-boosted trees, 5-fold
cross-validation grouped by source photo (no photo in train and test folds). A large artifact
(a flare lifting half the frame, a screen filling it) changes global statistics by itself, so the
per-class figures are also given on the artifact images whose mask covers < 10 % of the frame: a
global cue unrelated to the artifact would show there too. ``--split`` restricts it to one split
(the baseline a model's figures on that split are compared with). Writes
``data_sanity[_NAME].json`` and ``.md`` (and a per-type check sheet with ``--sheet``).
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make `train` importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.fft import dctn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from tqdm import tqdm

from train.dataset import read_manifest

TARGET_AUROC = 0.65
SMALL_MASK = 0.10


def global_features(rgb: np.ndarray) -> np.ndarray:
    """The global statistics of one image (see module docstring)."""
    x = rgb.astype(np.float32)
    feats: list[float] = []
    for c in range(3):
        hist, _ = np.histogram(x[:, :, c], bins=16, range=(0, 256))
        feats += list(hist / hist.sum())
        feats += [float(x[:, :, c].mean()) / 255, float(x[:, :, c].std()) / 255]
    luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
    h, w = luma.shape
    s = min(256, h, w)
    crop = luma[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    power = np.abs(np.fft.fftshift(np.fft.fft2(crop - crop.mean()))) ** 2
    yy, xx = np.indices(power.shape)
    radius = np.hypot(yy - s / 2, xx - s / 2) / (s / 2)
    edges = np.geomspace(0.02, 1.0, 13)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        band = power[(radius >= lo) & (radius < hi)]
        feats.append(float(np.log1p(band.mean())) if band.size else 0.0)
    # JPEG traces on the luminance: blockiness at 8-px boundaries vs elsewhere
    dx = np.abs(np.diff(luma, axis=1))
    boundary = dx[:, 7::8].mean() if dx.shape[1] > 8 else 0.0
    feats.append(float(boundary / (dx.mean() + 1e-6)))
    hb, wb = (h // 8) * 8, (w // 8) * 8
    blocks = luma[:hb, :wb].reshape(hb // 8, 8, wb // 8, 8).transpose(0, 2, 1, 3)
    coeffs = dctn(blocks - 128, axes=(2, 3), norm="ortho")
    high = coeffs[:, :, 4:, 4:]
    feats.append(float((np.abs(high) < 0.5).mean()) if high.size else 0.0)
    feats += [w / 1000.0, h / 1000.0, w / h]
    return np.asarray(feats, np.float32)


def cross_validated_auroc(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int = 0
) -> float:
    """AUROC of out-of-fold predictions (5 folds grouped by source photo)."""
    scores = np.zeros(len(labels), np.float64)
    folds = GroupKFold(n_splits=min(5, len(np.unique(groups))))
    for train_idx, test_idx in folds.split(features, labels, groups):
        clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
        clf.fit(features[train_idx], labels[train_idx])
        scores[test_idx] = clf.predict_proba(features[test_idx])[:, 1]
    return float(roc_auc_score(labels, scores))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--sheet", action="store_true", help="also write a per-type check sheet")
    parser.add_argument("--split", help="only this split's images (default: all)")
    parser.add_argument("--name", help="report name suffix (data_sanity_NAME.json)")
    args = parser.parse_args(argv)
    records = [r for r in read_manifest(args.dataset) if args.split in (None, r["split"])]
    if not records:
        parser.error(f"{args.dataset}: no images in split {args.split!r}")
    feats = np.stack([
        global_features(np.asarray(Image.open(args.dataset / r["image"]).convert("RGB")))
        for r in tqdm(records, unit="img", desc="features")
    ])  # fmt: skip
    labels = np.array([r["label"] for r in records])
    groups = np.array([r["source_photo"] for r in records])
    small = np.array([r["mask_fraction"] < SMALL_MASK for r in records])
    artifact = labels != "clean"
    result = {
        "dataset": str(args.dataset),
        "split": args.split or "all",
        "images": len(records),
        "features": int(feats.shape[1]),
        "target_auroc_max": TARGET_AUROC,
        "auroc_artifact_vs_clean": cross_validated_auroc(feats, artifact.astype(int), groups),
        "auroc_per_class_vs_clean": {},
        "auroc_small_artifacts_vs_clean": {},
        "small_mask_fraction": SMALL_MASK,
    }
    for cls in sorted(set(labels) - {"clean"}):
        subsets = {
            "auroc_per_class_vs_clean": labels == cls,
            "auroc_small_artifacts_vs_clean": (labels == cls) & small,
        }
        for key, subset in subsets.items():
            keep = subset | ~artifact
            result[key][cls] = {
                "auroc": cross_validated_auroc(
                    feats[keep], (labels[keep] == cls).astype(int), groups[keep]
                ),
                "images": int(subset.sum()),
            }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "data_sanity" + (f"_{args.name}" if args.name else "")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    ok = lambda v: "ok" if v <= TARGET_AUROC else "ABOVE TARGET"  # noqa: E731
    lines = [
        "# Data sanity: global-statistics detector (should fail)",
        "",
        f"Dataset `{args.dataset}` (split {args.split or 'all'}), {len(records)} images, "
        f"{feats.shape[1]} global features, "
        "gradient-boosted trees, 5-fold CV grouped by source photo. Target AUROC <= "
        f"{TARGET_AUROC}.",
        "",
        "| task | artifact images | AUROC | |",
        "|---|---|---|---|",
        f"| any artifact vs clean | {int(artifact.sum())} | "
        f"{result['auroc_artifact_vs_clean']:.3f} | {ok(result['auroc_artifact_vs_clean'])} |",
    ]
    for key, what in (("auroc_per_class_vs_clean", "{} vs clean"),
                      ("auroc_small_artifacts_vs_clean", "{} (mask < 10 %) vs clean")):  # fmt: skip
        for cls, value in result[key].items():
            lines.append(f"| {what.format(cls)} | {value['images']} | {value['auroc']:.3f} | "
                         f"{ok(value['auroc'])} |")  # fmt: skip
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.sheet:
        from train.preview import contact_sheet

        sheet = contact_sheet(args.dataset, per_class=6, seed=1)
        sheet.save(args.out / "data_sanity_sheet.jpg", quality=85)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
