"""Average finished runs that share a starting point into one model ("model soup").

    python train/soup.py RUN RUN [RUN ...] --out runs/NAME

Runs that start from the same weights and differ only in their seed (data order, augmentation) end
in the same basin, where the uniform average of their weights is often about as good as the best of
them (Wortsman et al. 2022, "Model soups"), at the cost of one model; measured on the default
recipe's seeds, it scored between them (``docs/training/training.md``). Every floating tensor is
averaged (BatchNorm running statistics included, the usual approximation); integer counters come
from the first run; the anchors are re-normalised. The runs must have the same config but for their
descriptions and thresholds, which are then set afresh on the first run's validation data at the
first run's false-positive rates (``calibrate`` of its ``config.json``), as training does. Writes
``model.safetensors``, ``calibration.json`` and ``soup.json`` (the runs and their SHA-256) to
``--out``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as `python train/soup.py`: make `train` importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from ipad_sdk.fileio import atomic_write_bytes, file_sha256
from ipad_sdk.model import IpadClip, load_bundle, save_bundle

#: config fields that may differ between the runs of a soup (set again by :func:`soup`)
_OWN = ("description", "image_threshold", "pixel_threshold")


def average(models: list[IpadClip]) -> IpadClip:
    """The first model holding the uniform average of every floating tensor of ``models``."""
    if len(models) < 2:
        raise ValueError(f"a soup needs at least two models, got {len(models)}")
    first = models[0]
    keep = first.config.to_dict()
    for other in models[1:]:
        theirs = other.config.to_dict()
        diff = sorted(k for k in keep.keys() | theirs.keys()
                      if k not in _OWN and keep.get(k) != theirs.get(k))  # fmt: skip
        if diff:
            raise ValueError(f"the runs' configs differ in {', '.join(diff)}")
    states = [m.state_dict() for m in models]
    mean = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            mean[key] = torch.stack([s[key].float() for s in states]).mean(0).to(value.dtype)
        else:
            mean[key] = value
    first.load_state_dict(mean, strict=True)
    first.set_anchors(first.anchors)  # the mean of unit vectors is shorter than one
    return first


def soup(runs: list[Path], out: Path) -> dict[str, Any]:
    """Average ``runs``' bundles, calibrate as the first run was, write everything to ``out``."""
    from train.calibrate import calibrate, write_calibrated

    bundles = [run / "model.safetensors" for run in runs]
    model = average([load_bundle(b) for b in bundles])
    names = ", ".join(str(r) for r in runs)
    config = model.config.replace(description=f"uniform average (model soup) of {names}")
    out.mkdir(parents=True, exist_ok=True)
    bundle = save_bundle(model, out / "model.safetensors", config)
    cfg = json.loads((runs[0] / "config.json").read_text())
    report = calibrate(bundle, Path(cfg["data"]), "val", **(cfg.get("calibrate") or {}))
    write_calibrated(bundle, bundle, report)
    atomic_write_bytes(out / "calibration.json", json.dumps(report, indent=1).encode())
    ingredients = [{"run": str(r), "sha256": file_sha256(b)}
                   for r, b in zip(runs, bundles, strict=True)]  # fmt: skip
    record = {"runs": ingredients, "data": cfg["data"], "calibration": report}
    atomic_write_bytes(out / "soup.json", json.dumps(record, indent=1).encode())
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders with model.safetensors")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write")
    args = parser.parse_args(argv)
    print(json.dumps(soup(args.runs, args.out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
