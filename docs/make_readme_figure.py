"""Make the README's detection figure: input | artifact heatmap | mask overlay.

    python docs/make_readme_figure.py [--model M] [--image examples/kodim03.jpg]

Uses the embedded default model when the package ships one, else an untrained tiny bundle made on
the spot (and says so in the figure title). Needs the `torch` and `dev` extras (matplotlib).
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ipad_sdk import Detector, ModelError, load_image  # noqa: E402
from ipad_sdk.detector import default_model_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _model_path(requested: str | None, tmp: Path) -> Path:
    if requested:
        return Path(requested)
    try:
        return default_model_path()
    except ModelError:
        from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip, save_bundle

        model = build_ipad_clip(TINY_BACKBONE, description="untrained tiny demo bundle")
        return save_bundle(model, tmp / "untrained-tiny.safetensors")


def _test_examples(data: Path, per_class: int = 1, seed: int = 0) -> list[tuple[Path, Path, str]]:
    """(image, mask, label) of test-split items of every class of a dataset made by
    train/make_dataset.py, picked at random with ``seed``."""
    import json
    import random

    records = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    rng = random.Random(seed)
    picked = []
    for label in ("clean", "flare", "moire", "ghosting"):
        pool = [
            r for r in records if r["split"] == "test" and r["label"] == label and not r["hard"]
        ]
        for rec in rng.sample(pool, min(per_class, len(pool))):
            picked.append((data / rec["image"], data / rec["mask"], label))
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--image", default=str(ROOT / "examples" / "kodim03.jpg"))
    parser.add_argument(
        "--data", type=Path, help="also show test-split examples of every class of this dataset"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "readme_detection.png"))
    args = parser.parse_args()
    rows: list[tuple[Path, Path | None, str | None]] = [(Path(args.image), None, None)]
    if args.data is not None:
        rows += _test_examples(args.data)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = Detector(_model_path(args.model, Path(tmp)), device="cpu")
        results = detector.detect_batch([image for image, _, _ in rows])
    state = "trained" if detector.config.trained else "UNTRAINED (output carries no meaning)"
    columns = 4 if args.data is not None else 3
    fig, grid = plt.subplots(len(rows), columns, figsize=(4.2 * columns, 3.3 * len(rows)),
                             constrained_layout=True, squeeze=False)  # fmt: skip
    for axes, (image, mask, truth), result in zip(grid, rows, results, strict=True):
        rgb = load_image(image)
        axes[0].imshow(rgb)
        axes[0].set_title(f"input: {image.name}" + (f" (truth: {truth})" if truth else ""))
        shown = axes[1].imshow(result.heatmap, cmap="inferno", vmin=0, vmax=1)
        axes[1].set_title("artifact probability (heatmap)")
        fig.colorbar(shown, ax=axes[1], fraction=0.035)
        axes[2].imshow(result.overlay(rgb))
        scores = ", ".join(f"{k} {v:.2f}" for k, v in result.scores.items())
        axes[2].set_title(f"label: {result.label}\n({scores})", fontsize=8)
        if columns == 4:
            if mask is not None:
                axes[3].imshow(load_image(mask)[..., 0] > 127, cmap="gray")
            axes[3].set_title("ground-truth mask" if mask is not None else "(real photo)")
        for ax in axes:
            ax.set_axis_off()
    cfg = detector.config
    fig.suptitle(f"ipad detect with {cfg.backbone} @ {cfg.image_size}px, {state}; thresholds: "
                 f"image {cfg.image_threshold:.2f}, pixel {cfg.pixel_threshold:.2f}")  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=70)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
