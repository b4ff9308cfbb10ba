"""The default model's whole recipe in one command: photos -> native-resolution data -> training ->
ONNX export, every step resumable (a rerun continues where a killed run stopped).

    python train/recipe.py [--config train/configs/default-cpu.json] [--workers 2]
        [--clean ../shared/data/clean] [--flare-patterns ../shared/data/flare_patterns]

1. ``train/fetch_photos.py``: the Debian full-resolution photographs (SHA-256 checked).
2. ``train/make_dataset.py``: artifacts rendered at 1,024 px on the long side (the scale of real
   captures as users upload them) from those photos and ``--clean``, with hard negatives.
3. ``train/train.py --resume``: the config's stages (checkpoint after every epoch).
4. ``ipad export onnx``: FP32 and INT8 ONNX beside the bundle, with the parity check.

``train/configs/default-cpu.json`` is the 2-core CPU recipe (about 1.3 h of training after
about 11 min of data); ``train/configs/default-gpu.json`` is the same recipe on one CUDA GPU with
more epochs. The data settings below are part of the recipe, shared by both.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as `python train/recipe.py`: make `train` importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import time
from pathlib import Path

from train import fetch_photos, make_dataset
from train import train as trainer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
#: the dataset of the recipe (``--n-clean`` includes ``--hard-negatives`` of screens/fusions)
DATASET = {"n_per_class": 700, "n_clean": 1100, "hard_negatives": 0.3, "size": 1024, "seed": 0}


def dataset_argv(clean: list[str], out: str, workers: int, patterns: str | None) -> list[str]:
    """``make_dataset`` arguments of the recipe's dataset."""
    argv = [a for folder in clean for a in ("--clean", folder)]
    argv += ["--out", out, "--n-per-class", str(DATASET["n_per_class"]),
             "--n-clean", str(DATASET["n_clean"]), "--hard-negatives",
             str(DATASET["hard_negatives"]), "--size", str(DATASET["size"]),
             "--seed", str(DATASET["seed"]), "--workers", str(workers)]  # fmt: skip
    return argv + (["--flare-patterns", patterns] if patterns else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "train/configs/default-cpu.json"))
    parser.add_argument("--workers", type=int, default=2, help="data synthesis processes")
    parser.add_argument("--clean", default=str(SHARED / "clean"), help="extra clean photos")
    parser.add_argument("--photos", default="data/photos-debian", help="Debian photos folder")
    parser.add_argument("--flare-patterns", default=str(SHARED / "flare_patterns"))
    args = parser.parse_args(argv)
    cfg = trainer.TrainConfig.load(args.config)
    times: dict[str, float] = {}

    tic = time.perf_counter()
    if fetch_photos.main(["--out", args.photos]) != 0:
        return 1
    times["photos"] = time.perf_counter() - tic

    tic = time.perf_counter()
    clean = [args.photos] + ([args.clean] if Path(args.clean).is_dir() else [])
    patterns = args.flare_patterns if Path(args.flare_patterns).is_dir() else None
    if make_dataset.main(dataset_argv(clean, cfg.data, args.workers, patterns)) != 0:
        return 1
    times["data"] = time.perf_counter() - tic

    tic = time.perf_counter()
    trainer.Trainer(cfg).run(resume=True)
    times["train"] = time.perf_counter() - tic

    tic = time.perf_counter()
    from ipad_sdk.export import onnx as export_onnx

    bundle = Path(cfg.out) / "model.safetensors"
    exported = export_onnx.main([str(bundle), "--out", str(Path(cfg.out) / "onnx"), "--int8"])
    times["export"] = time.perf_counter() - tic
    print(json.dumps({"bundle": str(bundle), "seconds": times}))
    return exported


if __name__ == "__main__":
    raise SystemExit(main())
