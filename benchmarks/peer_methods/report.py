"""The peer tables (paper Tables 1, 3, 4 analogs) from the finished runs: ``peers.json`` holds
every number, ``peers.md`` is rendered from it alone.

Per row and column: the mean over the finished seeds and the sample standard deviation (n - 1;
none with one seed), as percentages with one decimal in the markdown. ``None`` (rendered "n/a")
marks what a method cannot produce: the reconstruction baseline has no class output, so its
per-class C-AP and its 4-class accuracy are n/a.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ipad_sdk.fileio import atomic_write_bytes

ARTIFACTS = ("ghosting", "flare", "moire")
LABELS = {
    "ipad_full": "IPAD-CLIP (full)",
    "ipad_no_learnable_text": "w/o learnable text (LTE)",
    "ipad_no_object_context": "w/o object context (CLS)",
    "ipad_no_adapters": "w/o adapters (AD)",
    "ipad_no_multigranularity": "w/o multi-granularity (MG)",
    "ipad_stage1_only": "stage I only (w/o S-II-III)",
    "ipad_stages23_only": "stages II+III only (w/o S-I)",
    "unet": "U-Net (supervised CNN)",
    "freqnet": "FreqNet-like (FFT + CNN)",
    "recon": "Reconstruction (UniAD/Dinomaly-like, unsupervised)",
    "recon_default": "Reconstruction on the default model's features (label-trained)",
}
NO_CLASS_OUTPUT = frozenset({"recon", "recon_default"})
#: (column, eval section, metric key); "per_class" columns are filled per artifact class.
TABLE1 = [("C-AUROC", "image", "auroc"), ("C-AP", "image", "ap"), ("C-F1-max", "image", "f1_max"),
          ("S-AUROC", "pixel", "auroc"), ("S-AP", "pixel", "ap"), ("S-F1-max", "pixel", "f1_max"),
          ("S-AUPRO", "pixel", "aupro")]  # fmt: skip
RUN_KEYS = ("table", "method", "seed", "train_s", "eval_s", "params", "command", "eval")
TABLE4 = [("C-AP", "image", "ap"), ("S-AP", "pixel", "ap"), ("S-F1", "pixel", "f1_max")]

#: The paper's own numbers (Wang et al. 2026): its dataset (synthetic + real captures) and a frozen
#: pretrained CLIP ViT-L/14 at 518 px. Table 2 (ablations) has no AUPRO.
PAPER: dict[str, Any] = {
    "table1": {
        "columns": [c for c, _, _ in TABLE1],
        "rows": {
            "IPAD-CLIP": [82.31, 79.20, 77.12, 93.10, 41.66, 43.14, 82.87],
            "w/o LTE (Table 2)": [71.66, 70.37, 72.79, 87.76, 30.46, 31.82, None],
            "w/o CLS (Table 2)": [80.19, 78.06, 76.45, 91.37, 39.48, 37.85, None],
            "w/o AD (Table 2)": [67.01, 68.44, 69.47, 87.28, 29.64, 30.79, None],
            "w/o MG (Table 2)": [78.84, 74.23, 71.69, 88.42, 31.69, 34.72, None],
            "w/o S-II-III (Table 2)": [70.28, 70.96, 71.48, 86.59, 29.37, 31.01, None],
            "w/o S-I (Table 2)": [79.91, 76.14, 73.82, 88.17, 36.24, 35.53, None],
            "FreqNet": [73.21, 70.69, 72.14, 88.74, 29.96, 31.13, 72.37],
            "PSCCNet (supervised)": [65.07, 64.67, 66.21, 81.25, 23.48, 26.42, 63.47],
            "MVSS-Net (supervised)": [66.18, 64.74, 67.79, 80.03, 24.22, 25.76, 67.68],
            "UniAD": [66.71, 65.36, 68.23, 85.02, 27.76, 29.80, 69.70],
            "Dinomaly": [67.24, 65.82, 69.18, 89.36, 30.89, 32.04, 74.13],
        },
    },
    "table3": {
        "columns": [f"{a} {m}" for a in ARTIFACTS for m in ("C-AP", "S-F1")],
        "rows": {
            "IPAD-CLIP": [68.74, 35.98, 72.22, 34.64, 96.64, 58.80],
            "w/o LTE": [58.46, 25.79, 63.70, 23.49, 88.95, 46.18],
            "w/o CLS": [67.26, 31.82, 71.56, 29.88, 95.36, 51.85],
            "w/o AD": [58.94, 23.88, 59.21, 22.75, 87.17, 45.74],
            "w/o MG": [62.69, 25.97, 66.74, 24.49, 93.26, 53.70],
            "FreqNet": [57.05, 25.76, 60.96, 21.44, 85.06, 46.19],
            "PSCCNet (supervised)": [52.82, 20.74, 57.46, 20.11, 83.73, 38.41],
            "MVSS-Net (supervised)": [50.22, 21.34, 57.98, 20.80, 86.02, 35.14],
            "UniAD": [51.28, 23.13, 57.97, 20.44, 86.83, 45.83],
            "Dinomaly": [54.44, 25.94, 59.34, 22.97, 82.68, 47.21],
        },
    },
    "table4": {
        "columns": [f"{s} {c}" for s in ("synthetic", "real-captured") for c, _, _ in TABLE4],
        "rows": {
            "IPAD-CLIP": [86.65, 49.03, 48.74, 67.64, 26.20, 29.48],
            "FreqNet": [80.01, 42.40, 42.83, 58.26, 22.03, 24.19],
            "Dinomaly": [79.96, 40.24, 41.75, 51.29, 21.74, 22.31],
        },
    },
}


def collect_results(runs_dir: Path) -> list[dict[str, Any]]:
    """Every finished run record under ``runs_dir`` (``<table>/<method>/seed<k>.json``)."""
    return [json.loads(p.read_text()) for p in sorted(Path(runs_dir).glob("*/*/seed*.json"))]


def stats(values: Sequence[float | None]) -> dict[str, Any] | None:
    """``{"mean", "std", "n", "values"}``; std is the sample std (n - 1), ``None`` for one value;
    ``None`` when the metric does not exist for the method."""
    if not values or any(v is None for v in values):
        return None
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n, "values": list(values)}


def _columns(method: str, evaluation: dict[str, Any], table: str) -> dict[str, float | None]:
    """One run's numbers for the columns of ``table`` (fractions in [0, 1])."""
    if table == "table1":
        test = evaluation["test"]
        out = {col: test[sec][key] for col, sec, key in TABLE1}
        out["4-class acc"] = None if method in NO_CLASS_OUTPUT else test["accuracy"]
        return out
    if table == "table3":
        test = evaluation["test"]
        out = {}
        for name in ARTIFACTS:
            c_ap = test["per_class"][name]["ap"]
            out[f"{name} C-AP"] = None if method in NO_CLASS_OUTPUT else c_ap
            out[f"{name} S-F1"] = test["per_class_pixel"][name]["f1_max"]
        return out
    return {f"{fam} {col}": evaluation[f"test_{fam}"][sec][key]
            for fam in ("A", "B") for col, sec, key in TABLE4}  # fmt: skip


def _row(method: str, runs: list[dict[str, Any]], table: str, note: str = "") -> dict[str, Any]:
    runs = sorted(runs, key=lambda r: r["seed"])
    per_run = [_columns(method, r["eval"], table) for r in runs]
    return {
        "method": method,
        "label": LABELS[method] + note,
        "seeds": [r["seed"] for r in runs],
        "metrics": {col: stats([p[col] for p in per_run]) for col in per_run[0]},
    }


def aggregate(
    results: Sequence[dict[str, Any]],
    dataset_build_s: float | None = None,
    chance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The three tables, the per-method cost and every run's numbers, from the run records
    (``dataset_build_s``: how long the dataset took to build, from its ``build_log.json``;
    ``chance``: a constant score's levels per test subset, see ``runs.chance_levels``)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in results:
        groups.setdefault((rec["table"], rec["method"]), []).append(rec)
    order = [m for m in LABELS if ("table1", m) in groups]
    table4 = [_row(m, groups[("table4", m)], "table4", " - trained on family A")
              for m in LABELS if ("table4", m) in groups]  # fmt: skip
    table4 += [_row(m, groups[("table1", m)], "table4", " - clean images only")
               for m in sorted(NO_CLASS_OUTPUT) if ("table1", m) in groups]  # fmt: skip
    table4 += [_row(m, groups[("table1", m)], "table4", " - reference: trained on A + B")
               for m in LABELS if ("table4", m) in groups and ("table1", m) in groups]  # fmt: skip
    cost = []
    keys = sorted(groups, key=lambda key: (key[0], list(LABELS).index(key[1])))
    for table, method in keys:
        runs = groups[(table, method)]
        first = min(runs, key=lambda r: r["seed"])
        cost.append({
            "table": table, "method": method, "seeds": sorted(r["seed"] for r in runs),
            "params": first["params"], "train_images": first["train_images"],
            "train_s": stats([r["train_s"] for r in runs]),
            "eval_s": stats([r["eval_s"] for r in runs]), "command": first["command"],
        })  # fmt: skip
    return {
        "budget": results[0]["budget"] if results else None,
        "total_seconds": sum(r["train_s"] + r["eval_s"] for r in results),
        "dataset_build_s": dataset_build_s,
        "chance": chance,
        "n_runs": len(results),
        "table1": [_row(m, groups[("table1", m)], "table1") for m in order],
        "table3": [_row(m, groups[("table1", m)], "table3") for m in order],
        "table4": table4,
        "cost": cost,
        "paper": PAPER,
        "runs": [{k: r[k] for k in RUN_KEYS} for r in results],
    }


def cell(stat: dict[str, Any] | None, scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` (one seed: the mean alone), or ``n/a``."""
    if stat is None:
        return "n/a"
    text = f"{scale * stat['mean']:.{digits}f}"
    if stat["std"] is not None:
        text += f" ± {scale * stat['std']:.{digits}f}"
    return text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _ours(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(no finished runs)"]
    columns = list(rows[0]["metrics"])
    body = [[r["label"], str(len(r["seeds"]))] + [cell(r["metrics"][c]) for c in columns]
            for r in rows]  # fmt: skip
    return _table(["method", "seeds", *columns], body)


def _paper(table: str) -> list[str]:
    spec = PAPER[table]
    body = [[name] + ["—" if v is None else f"{v:.2f}" for v in values]
            for name, values in spec["rows"].items()]  # fmt: skip
    return _table(["paper's method", *spec["columns"]], body)


def _class_chance(chance: dict[str, Any] | None) -> list[str]:
    if not chance:
        return []
    levels = "; ".join(f"{name}: C-AP {100 * c['C-AP']:.1f}, S-F1 ~{100 * c['S-F1']:.1f}"
                       for name, c in chance["per_class"].items())  # fmt: skip
    return [f"Chance levels (a constant score): {levels}.", ""]


PAPER_NOTE = ("*The paper's own numbers, for context only: a different dataset (its synthetic + "
              "real-captured set) and backbone (frozen pretrained CLIP ViT-L/14 at 518 px, 20 "
              "epochs per stage, GPU). Not comparable number for number with ours.*")  # fmt: skip


def render(agg: dict[str, Any], reading: str = "") -> str:
    """The markdown report; every number comes from ``agg`` (see :func:`aggregate`)."""
    b = agg["budget"] or {}
    lines = ["# Peers on the same data: paper Tables 1, 3 and 4 side by side", "",
             "Made by `python benchmarks/peers.py` (methods: `benchmarks/peer_methods/`); every "
             "number below is in `peers.json`. Metrics in %, mean ± sample std over the finished "
             "seeds (the `seeds` column; one seed: no ± part).", "", "## Setting", ""]  # fmt: skip
    if b:
        lines += [
            f"- Backbone of the IPAD-CLIP rows and of the reconstruction baseline: "
            f"`{b['backbone']}` (pretrained: `{b['pretrained']}`; backbone trained: "
            f"{b['train_backbone']}), input {b['image_size']} px for every method.",
            "- Reconstruction baseline: its backbone is frozen, so without pretrained weights it "
            "is the random-init backbone (seeded per run). The shipped default model's ViT "
            "(`ipad-default.safetensors`, same architecture, trained ~1 h at 224 px with artifact "
            "labels and masks on this train split) would make the baseline supervised, so it is "
            "a separate, labelled row (*on the default model's features*; its ViT + adapters, "
            "positional embeddings resized to the input size).",
            f"- Training subset: {b['n_train']} images per class (clean, ghosting, flare, moiré) "
            f"of the train split; validation {b['n_val']} per class; test {b['n_test']} per class "
            f"(Table 1/3). Same subsets, seeds 0-2, for every method.",
            f"- Budget: IPAD-CLIP {b['epochs_per_stage']} epoch per stage (3 passes over the "
            f"subset for the full model); baselines {3 * b['epochs_per_stage']} epochs (the same "
            f"3 passes); batch {b['batch_size']}, AdamW lr {b['lr']}, weight decay "
            f"{b['weight_decay']}, {b['schedule']} schedule, {b['warmup_steps']} warm-up steps, "
            f"`lambda*CE + Dice + Focal` with lambda 4 for every supervised method.",
            f"- {agg['n_runs']} runs, {agg['total_seconds'] / 60:.1f} min of training + "
            f"evaluation in one process on {b['threads']} CPU thread(s).",
        ]  # fmt: skip
    if agg.get("dataset_build_s") is not None:
        lines.append(f"- Building the dataset first (only when absent; `train/make_dataset.py`, "
                     f"2 workers) took {agg['dataset_build_s'] / 60:.1f} min.")  # fmt: skip
    if agg.get("chance"):
        c = agg["chance"]
        where = (("test", "test subset"), ("test_A", "family-A test"), ("test_B", "family-B test"))
        levels = "; ".join(f"{label}: C-AP {100 * c[k]['C-AP']:.1f}, C-F1-max "
                           f"{100 * c[k]['C-F1-max']:.1f}, S-AP ~{100 * c[k]['S-AP']:.1f}"
                           for k, label in where)  # fmt: skip
        lines.append(f"- Chance levels (a constant score; any AUROC: 50.0): {levels}.")
    incomplete = [f"{r['label']} ({len(r['seeds'])})" for t in ("table1", "table4")
                  for r in agg[t] if len(r["seeds"]) < 3]  # fmt: skip
    lines += ["- Rows with fewer than 3 seeds: " + (", ".join(incomplete) or "none") + ".", ""]
    lines += ["## Table 1 analog: classification (C-) and segmentation (S-) on the test subset",
              "", *_ours(agg["table1"]), "",
              "C- metrics score `1 - P(clean)` against artifact/clean (so the reconstruction "
              "baseline has them); the 4-class accuracy needs a class output.", "",
              PAPER_NOTE, "", *_paper("table1"), "",
              "## Table 3 analog: per class", "",
              "C-AP: `P(class)` on the class's test images (positives) and the clean ones; S-F1: "
              "pixel F1-max of `1 - P(clean)` on the class's and the clean test images. The "
              "reconstruction baseline has no class output: its C-AP is n/a.", "",
              *_class_chance(agg.get("chance")), *_ours(agg["table3"]), "", PAPER_NOTE, "",
              *_paper("table3"), "",
              "## Table 4 analog: train on one generator family, test on the other", "",
              "No real captures exist here, so the held-out domain is a held-out generator family "
              "(routes in each record's `params.synthesis.route`): **A** = moiré `grating` "
              "(interference gratings, paper Eq. 1) + flare `physical` (analytic lens model) + "
              "ghosting `segment`/`blob` (an object of the same photo moved); **B** = moiré "
              "`display` (display sub-pixels resampled at the sensor, CFA, demosaic) + flare "
              "`pattern` (rendered flare images) + ghosting `pasted` (an object from another "
              "photo). Trained on clean + A (same subset size), tested on clean + A "
              "(in-family, like the paper's *synthetic* column) and on clean + B (held out, like "
              "its *real-captured* column); both test sets share the clean images. The "
              "reconstruction baseline never sees artifacts, so its row is its Table 1 runs on "
              "these test sets; the *reference* rows are the Table 1 runs (trained on A + B).",
              "", *_ours(agg["table4"]), "", PAPER_NOTE, "", *_paper("table4"), "",
              "## Cost and commands", "",
              "Parameters: `inference` = what predicts at test time (for the reconstruction "
              "baseline the frozen backbone included), `trainable` = what any stage trains "
              "(IPAD-CLIP: also the prompts and FC heads; the frozen text tower is not counted). "
              "Training time includes IPAD-CLIP's per-epoch validation passes. A command reruns "
              "one seed (`--seeds 0 1 2` for all); a finished run is skipped, so delete its JSON "
              "under `runs/peers/` or pass a fresh `--runs`.", ""]  # fmt: skip
    body = [[c["table"], LABELS[c["method"]], ",".join(map(str, c["seeds"])),
             f"{c['params']['inference']:,}", f"{c['params']['trainable']:,}",
             str(c["train_images"]), cell(c["train_s"], 1.0, 0), cell(c["eval_s"], 1.0, 0),
             f"`{c['command']}`"] for c in agg["cost"]]  # fmt: skip
    lines += _table(["table", "method", "seeds", "params (inference)", "params (trainable)",
                     "train images", "train s", "eval s", "command"], body)  # fmt: skip
    lines += ["", "## The paper's configuration (GPU; documented, not run here)", "",
              "`python benchmarks/peers.py --paper --pretrained ViT-L-14.pt --data DATA` runs the "
              "same rows with a frozen pretrained open_clip ViT-L/14 loaded from a local file, "
              "518 px input, batch 8, Adam 1e-3 (constant), 20 epochs per IPAD-CLIP stage and 60 "
              "for the baselines, on the whole train/val/test splits of `DATA` (use a dataset made "
              "at native size, not the 224 px one), on CUDA; the reconstruction baseline then "
              "reconstructs the pretrained ViT's features, as Dinomaly does with its pretrained "
              "encoder. It writes `runs/peers/paper/` and `peers-paper.{json,md}`."]  # fmt: skip
    if reading:
        lines += ["", "## Reading", "", reading.strip()]
    return "\n".join(lines) + "\n"


def write_report(
    results: Sequence[dict[str, Any]],
    json_path: Path,
    md_path: Path,
    reading_path: Path | None,
    dataset_build_s: float | None = None,
    chance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Aggregate, write ``json_path`` and the markdown rendered from it (plus the hand-written
    reading at ``reading_path`` when it exists); both atomically."""
    agg = aggregate(results, dataset_build_s, chance)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(json_path, json.dumps(agg, indent=1, default=float).encode())
    reading = reading_path.read_text() if reading_path and reading_path.is_file() else ""
    atomic_write_bytes(md_path, render(json.loads(json_path.read_text()), reading).encode())
    return agg
