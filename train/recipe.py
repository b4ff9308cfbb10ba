"""The default model's whole recipe in one command: photos -> native-resolution data -> training ->
ONNX export, for each phase, every step resumable (a rerun continues where a killed run stopped).

    python train/recipe.py [--gpu] [--config CONFIG ...] [--workers 2]
        [--clean ../shared/data/clean] [--flare-patterns ../shared/data/flare_patterns]

1. ``train/fetch_photos.py``: the Debian full-resolution photographs (SHA-256 checked).
2. per phase, ``train/make_dataset.py``: artifacts rendered at 1,024 px on the long side (the
   scale of real captures as users upload them) from those photos and ``--clean``, with hard
   negatives (the second phase: and night scenes; the third: and frame-filling screens, half of
   their moire in wide low-frequency bands);
3. ``train/train.py --resume``: the config's stages (checkpoint after every epoch);
4. ``ipad export onnx``: FP32 and INT8 ONNX beside the bundle, with the parity check.

The phases (``PHASES``): ``train/configs/default-cpu.json`` trains from random init (about 1.3 h
on 2 CPU cores after about 11 min of data); ``train/configs/default-cpu-night.json`` starts from
its model and trains on in stage III on data with night scenes (0.63 h after 30 min of data);
``train/configs/default-cpu-bands.json`` starts from that one and trains on in stage III on more
data with frame-filling moire screens, half of them wide rainbow bands (0.28 h after 20 min of
data). ``--gpu`` runs the same phases on one CUDA GPU (``GPU_PHASES``: the same data, epochs and
seeds, with bf16 autocast and 8 loader workers). ``--config`` runs only the given configs
(experiments, each on the data it was measured on:
``train/configs/default-cpu-screens.json``, the third phase before the wide bands;
``train/configs/hires-cpu.json``, which grows that model to 1,024-px input with ``train/grow.py``
and trains on; ``train/configs/native-crops-cpu.json``, the third phase with native-scale windows;
``train/configs/one-phase-cpu.json``, random init straight on the third phase's data;
``train/configs/bands-bf16-cpu.json``, the third phase with bf16 autocast on the CPU; and
``train/configs/fast-cpu.json`` then ``train/configs/fast-cpu-bands.json``, two phases in bf16 to
fit 2 h; ``train/configs/night-bf16-cpu.json``, the second phase in bf16 after that first one; and
``train/configs/bf16-cpu.json``, ``train/configs/bf16-cpu-night.json`` and
``train/configs/bf16-cpu-bands.json``, the three phases in bf16, 2.13 h measured).
The data settings below are part of the recipe.
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
#: the second phase's dataset: the same, with 35 % of every class's items relit as night scenes
NIGHT_DATASET = DATASET | {"night": 0.35}
#: the night data grown by 200 items per class (same seed, so every photo stays in the split it
#: had in the earlier phases), with 65 % of the moire items and their hard negatives
#: frame-filling screens (photos of monitors and TVs, as users' moire mostly is)
SCREENS_DATASET = NIGHT_DATASET | {"n_per_class": 900, "n_clean": 1400, "screens": 0.65}
#: the third phase's dataset: the same with half of the moire items drawn as wide low-frequency
#: rainbow bands (every other item identical), the commonest moire of real screen photos
BANDS_DATASET = SCREENS_DATASET | {"wide_bands": 0.5}
#: the default model's phases: (config, its dataset); a phase starts from the one before
#: (its config's ``init``)
PHASES = (("train/configs/default-cpu.json", DATASET),
          ("train/configs/default-cpu-night.json", NIGHT_DATASET),
          ("train/configs/default-cpu-bands.json", BANDS_DATASET))  # fmt: skip
#: the same phases on one CUDA GPU (``--gpu``): each config is its CPU phase's with ``device``
#: cuda, bf16 autocast and 8 loader workers, in its own run folder
GPU_PHASES = (("train/configs/default-gpu.json", DATASET),
              ("train/configs/default-gpu-night.json", NIGHT_DATASET),
              ("train/configs/default-gpu-bands.json", BANDS_DATASET))  # fmt: skip
#: configs that are not phases of the default model, each with the dataset it trains on
EXPERIMENTS = (("train/configs/default-cpu-screens.json", SCREENS_DATASET),
               ("train/configs/hires-cpu.json", SCREENS_DATASET),
               ("train/configs/native-crops-cpu.json", BANDS_DATASET),
               ("train/configs/one-phase-cpu.json", BANDS_DATASET),
               ("train/configs/bands-bf16-cpu.json", BANDS_DATASET),
               ("train/configs/fast-cpu.json", DATASET),
               ("train/configs/fast-cpu-bands.json", BANDS_DATASET),
               ("train/configs/night-bf16-cpu.json", NIGHT_DATASET),
               ("train/configs/bf16-cpu.json", DATASET),
               ("train/configs/bf16-cpu-night.json", NIGHT_DATASET),
               ("train/configs/bf16-cpu-bands.json", BANDS_DATASET))  # fmt: skip


def dataset_argv(
    clean: list[str], out: str, workers: int, patterns: str | None, dataset: dict = DATASET
) -> list[str]:
    """``make_dataset`` arguments of a recipe dataset."""
    argv = [a for folder in clean for a in ("--clean", folder)]
    argv += ["--out", out, "--n-per-class", str(dataset["n_per_class"]),
             "--n-clean", str(dataset["n_clean"]), "--hard-negatives",
             str(dataset["hard_negatives"]), "--size", str(dataset["size"]),
             "--seed", str(dataset["seed"]), "--workers", str(workers)]  # fmt: skip
    if dataset.get("night"):
        argv += ["--night", str(dataset["night"])]
    if dataset.get("screens") is not None:
        argv += ["--screens", str(dataset["screens"])]
    if dataset.get("wide_bands"):
        argv += ["--wide-bands", str(dataset["wide_bands"])]
    return argv + (["--flare-patterns", patterns] if patterns else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append",
                        help="run only this config (repeatable; default: every phase)")  # fmt: skip
    parser.add_argument("--gpu", action="store_true",
                        help="the phases on one CUDA GPU (GPU_PHASES)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="data synthesis processes")
    parser.add_argument("--clean", default=str(SHARED / "clean"), help="extra clean photos")
    parser.add_argument("--photos", default="data/photos-debian", help="Debian photos folder")
    parser.add_argument("--flare-patterns", default=str(SHARED / "flare_patterns"))
    args = parser.parse_args(argv)
    known = {str(ROOT / path): dataset for path, dataset in PHASES + GPU_PHASES + EXPERIMENTS}
    phases = GPU_PHASES if args.gpu else PHASES
    configs = args.config or [str(ROOT / path) for path, _ in phases]
    times: dict[str, float] = {}

    tic = time.perf_counter()
    if fetch_photos.main(["--out", args.photos]) != 0:
        return 1
    times["photos"] = time.perf_counter() - tic
    clean = [args.photos] + ([args.clean] if Path(args.clean).is_dir() else [])
    patterns = args.flare_patterns if Path(args.flare_patterns).is_dir() else None
    exported = 0
    for config in configs:
        cfg = trainer.TrainConfig.load(config)
        dataset = known.get(str(Path(config).resolve()), DATASET)
        name = Path(config).stem
        tic = time.perf_counter()
        argv_data = dataset_argv(clean, cfg.data, args.workers, patterns, dataset)
        if make_dataset.main(argv_data) != 0:
            return 1
        times[f"{name}/data"] = time.perf_counter() - tic

        tic = time.perf_counter()
        trainer.Trainer(cfg).run(resume=True)
        times[f"{name}/train"] = time.perf_counter() - tic

        tic = time.perf_counter()
        from ipad_sdk.export import onnx as export_onnx

        bundle = Path(cfg.out) / "model.safetensors"
        exported = export_onnx.main([str(bundle), "--out", str(Path(cfg.out) / "onnx"), "--int8"])
        times[f"{name}/export"] = time.perf_counter() - tic
        if exported != 0:
            return exported
    print(json.dumps({"bundle": str(bundle), "seconds": times}))
    return exported


if __name__ == "__main__":
    raise SystemExit(main())
