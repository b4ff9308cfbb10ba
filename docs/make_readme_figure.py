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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--image", default=str(ROOT / "examples" / "kodim03.jpg"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "readme_detection.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = Detector(_model_path(args.model, Path(tmp)), device="cpu")
        result = detector.detect(args.image)
    rgb = load_image(args.image)
    state = "trained" if detector.config.trained else "UNTRAINED (output carries no meaning)"
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.9), constrained_layout=True)
    axes[0].imshow(rgb)
    axes[0].set_title(f"input: {Path(args.image).name}")
    shown = axes[1].imshow(result.heatmap, cmap="inferno", vmin=0, vmax=1)
    axes[1].set_title("per-pixel artifact probability (heatmap)")
    fig.colorbar(shown, ax=axes[1], fraction=0.035)
    axes[2].imshow(result.overlay(rgb))
    scores = ", ".join(f"{k} {v:.2f}" for k, v in result.scores.items())
    axes[2].set_title(f"label: {result.label}  ({scores})", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    cfg = detector.config
    fig.suptitle(f"ipad detect with {cfg.backbone} @ {cfg.image_size}px, {state}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
