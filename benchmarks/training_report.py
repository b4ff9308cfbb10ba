"""Tables and curves of training runs (the CPU experiment and its ablations), from their logs.

    python benchmarks/training_report.py RUN_DIR... [--name NAME] [--out DIR]

For every run folder (``train/train.py`` output): the test-split metrics of its final model
(``test_metrics.json``, best validation epoch of the last stage) and of every earlier stage at its
last epoch (``stage_test_metrics.json``: "stage I only" is the full run's stage I, which is
exactly what a stage-I-only run with the same seed trains), the training time, and the validation
curves. Writes ``<name>.md``, ``<name>.json`` and ``<name>_curves.png``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make the repo importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
from pathlib import Path
from typing import Any

from ipad_sdk.fileio import atomic_write_bytes
from train.evaluation import TABLE1

CLASSES = ("ghosting", "flare", "moire")


def run_rows(run: Path) -> list[dict[str, Any]]:
    """One row per evaluated stage of ``run``: label, metrics, epochs and seconds spent."""
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    final = json.loads((run / "test_metrics.json").read_text())
    stage_tests = {}
    if (run / "stage_test_metrics.json").exists():
        stage_tests = json.loads((run / "stage_test_metrics.json").read_text())
    rows = []
    for stage, test in stage_tests.items():
        spent = [r for r in log if r["stage"] <= stage]  # stage1 < stage2 < stage3
        seconds = sum(r["seconds"] for r in spent)
        rows.append({"run": run.name, "model": f"{stage} only (its last epoch)", "test": test,
                     "epochs": len(spent), "seconds": seconds})  # fmt: skip
    best = final["best"]
    rows.append({"run": run.name, "model": f"final: best {best['stage']} epoch {best['epoch']}",
                 "test": final["test"], "epochs": len(log),
                 "seconds": sum(r["seconds"] for r in log)})  # fmt: skip
    return rows


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}"


def to_markdown(name: str, rows: list[dict[str, Any]]) -> str:
    head = (
        "| run | model | " + " | ".join(c for c, _, _ in TABLE1) + " | accuracy | epochs | time |"
    )
    lines = [f"# Training report: {name}", "", "Test split, values in %.", "", head,
             "|---" * (len(TABLE1) + 5) + "|"]  # fmt: skip
    for row in rows:
        test = row["test"]
        values = " | ".join(_pct(test[level][key]) for _, level, key in TABLE1)
        lines.append(f"| {row['run']} | {row['model']} | {values} | {_pct(test['accuracy'])} | "
                     f"{row['epochs']} | {row['seconds'] / 60:.0f} min |")  # fmt: skip
    lines += ["", "Per class, one-vs-clean C-AUROC / C-AP:", "",
              "| run | model | " + " | ".join(CLASSES) + " |",
              "|---" * (len(CLASSES) + 2) + "|"]  # fmt: skip
    for row in rows:
        per = row["test"]["per_class"]
        cells = " | ".join(f"{_pct(per[c]['auroc'])} / {_pct(per[c]['ap'])}" for c in CLASSES)
        lines.append(f"| {row['run']} | {row['model']} | {cells} |")
    return "\n".join(lines) + "\n"


def plot_curves(runs: list[Path], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for run in runs:
        log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        x = list(range(1, len(log) + 1))
        axes[0].plot(x, [r["train"]["ce"] for r in log], marker="o", label=run.name)
        axes[1].plot(x, [r["val"]["image"]["auroc"] for r in log], marker="o", label=run.name)
        axes[2].plot(x, [r["val"]["pixel"]["auroc"] for r in log], marker="o", label=run.name)
        for ax in axes:
            for i in range(1, len(log)):
                if log[i]["stage"] != log[i - 1]["stage"]:
                    ax.axvline(i + 0.5, color="grey", lw=0.5, ls=":")
    titles = ("train image CE", "validation C-AUROC", "validation S-AUROC")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch (all stages; dotted: stage change)")
        ax.grid(alpha=0.3)
    axes[1].axhline(0.5, color="k", lw=0.8)
    axes[2].axhline(0.5, color="k", lw=0.8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--name", default="cpu-experiment")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/training"))
    args = parser.parse_args(argv)
    rows = [row for run in args.runs for row in run_rows(run)]
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / f"{args.name}.json", json.dumps(rows, indent=1).encode())
    atomic_write_bytes(args.out / f"{args.name}.md", to_markdown(args.name, rows).encode())
    plot_curves(args.runs, args.out / f"{args.name}_curves.png")
    print(to_markdown(args.name, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
