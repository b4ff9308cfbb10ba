"""Peers on the same data: the paper's Tables 1, 3 and 4 reproduced side by side.

    python benchmarks/peers.py                      # every run (resumable), then the tables
    python benchmarks/peers.py --report-only        # the tables from the finished runs
    python benchmarks/peers.py --tables table1 --methods unet --seeds 0     # one row's run
    python benchmarks/peers.py --paper --pretrained ViT-L-14.pt --data data/ipad-3k   # GPU

Methods: IPAD-CLIP (``train/train.py``) full and its 6 ablations, a U-Net, a FreqNet-like
detector and a reconstruction anomaly baseline (``benchmarks/peer_methods/``), all on the same fixed
subsets, input size and number of passes, 3 seeds each, scored by the same metric code
(``train.evaluation``). Each (table, method, seed) run writes
``RUNS/<budget>/<table>/<method>/seed<k>.json`` atomically when it finishes; a rerun skips it.
The dataset is built with ``train/make_dataset.py`` when ``--data`` is missing. Writes
``benchmarks/results/peers.json`` and ``peers.md`` (``peers-paper.*`` with ``--paper``).
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make `train` and `benchmarks` importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
from tqdm import tqdm

from benchmarks.peer_methods.report import collect_results, write_report
from benchmarks.peer_methods.runs import (
    CPU_BUDGET,
    METHODS,
    TABLE4_METHODS,
    TABLES,
    Budget,
    chance_levels,
    paper_budget,
    run_one,
    subsets,
)
from ipad_sdk.fileio import atomic_write_bytes
from train.dataset import read_manifest

ROOT = Path(__file__).resolve().parents[1]
#: How data/ipad-11k-224 was made (its dataset.json): 2,400 per artifact class, 3,600 clean.
DATASET_ARGS = ["--n-per-class", "2400", "--n-clean", "3600", "--size", "224", "--seed", "0"]


def build_dataset(data: Path, clean: Path, flare_patterns: Path) -> None:
    """Make the dataset with ``train/make_dataset.py`` (about 4 min on 2 cores)."""
    cmd = [sys.executable, str(ROOT / "train" / "make_dataset.py"), "--clean", str(clean),
           "--out", str(data), *DATASET_ARGS, "--workers", "2",
           "--flare-patterns", str(flare_patterns)]  # fmt: skip
    print("building the dataset:", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def planned(tables: list[str], methods: list[str], seeds: list[int]) -> list[tuple[str, str, int]]:
    """Every (table, method, seed), seed-major so that every row gets seed 0 first."""
    return [(table, method, seed) for seed in seeds for table in tables for method in methods
            if table == "table1" or method in TABLE4_METHODS]  # fmt: skip


def command_for(table: str, method: str, seed: int, args: argparse.Namespace) -> str:
    """The command that reproduces one run (delete its JSON first, or use a fresh ``--runs``)."""
    parts = ["python", "benchmarks/peers.py", "--tables", table, "--methods", method,
             "--seeds", str(seed), "--data", str(args.data)]  # fmt: skip
    if args.paper:
        parts += ["--paper", "--pretrained", str(args.pretrained)]
    return shlex.join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/ipad-11k-224"))
    parser.add_argument("--clean", type=Path, default=ROOT.parent / "shared/data/clean")
    parser.add_argument("--flare-patterns", type=Path,
                        default=ROOT.parent / "shared/data/flare_patterns")  # fmt: skip
    parser.add_argument("--runs", type=Path, default=Path("runs/peers"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--paper", action="store_true", help="the paper's setting (GPU, pretrained ViT-L/14)"
    )
    parser.add_argument("--pretrained", help="local open_clip ViT-L-14 checkpoint (--paper)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if args.paper and not args.pretrained:
        parser.error("--paper needs --pretrained FILE (a local ViT-L-14 checkpoint)")
    budget: Budget = paper_budget(args.pretrained) if args.paper else CPU_BUDGET
    runs_dir = args.runs / budget.name
    failed: list[str] = []
    if not args.report_only:
        todo = [(t, m, s) for t, m, s in planned(args.tables, args.methods, args.seeds)
                if not (runs_dir / t / m / f"seed{s}.json").exists()]  # fmt: skip
        if todo and not (args.data / "manifest.jsonl").is_file():
            build_dataset(args.data, args.clean, args.flare_patterns)
        if budget.threads:
            torch.set_num_threads(budget.threads)
        tic = time.perf_counter()
        for table, method, seed in tqdm(todo, desc="peer runs", unit="run"):
            path = runs_dir / table / method / f"seed{seed}.json"
            command = command_for(table, method, seed, args)
            try:
                record = run_one(table, method, seed, budget, args.data,
                                 path.with_suffix(""), command)  # fmt: skip
            except Exception:  # one broken run must not lose the others; reported at the end
                failed.append(f"{table}/{method}/seed{seed}")
                traceback.print_exc()
                continue
            atomic_write_bytes(path, json.dumps(record, default=float).encode())
            tqdm.write(f"{table}/{method}/seed{seed}: train {record['train_s']:.0f} s, "
                       f"eval {record['eval_s']:.0f} s")  # fmt: skip
        print(f"{len(todo) - len(failed)} runs in {time.perf_counter() - tic:.0f} s", flush=True)
    suffix = "" if budget.name == "cpu" else f"-{budget.name}"
    results = collect_results(runs_dir)
    build_log = args.data / "build_log.json"
    build_s = json.loads(build_log.read_text())["seconds"] if build_log.is_file() else None
    chance = None
    if (args.data / "manifest.jsonl").is_file():
        records = read_manifest(args.data)
        chance = chance_levels(records, subsets(records, budget))
    write_report(results, args.out / f"peers{suffix}.json", args.out / f"peers{suffix}.md",
                 args.out / f"peers{suffix}_reading.md", build_s, chance)  # fmt: skip
    if failed:
        print("failed runs:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
