"""The GPU check's CPU-testable parts: the shell step runner (a failing or hanging step is
reported and the next one runs; results reach $OUT after every step), its time budget, the
parity verdict, the compiler probe and the roofline table."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest

from benchmarks import gpu_check as gc

ROOT = Path(__file__).resolve().parents[1]


def test_step_runner_survives_failing_and_hanging_steps(tmp_path):
    results, out = tmp_path / "results", tmp_path / "out"
    script = f"""
source {ROOT}/benchmarks/gpu_check_steps.sh
writes() {{ echo '{{"rows": 1}}' > "$RESULTS/gpu_first.json"; echo wrote; }}
export -f writes
step first 5 writes
step broken 5 false
step hangs 1 sleep 30
step last 5 ls "$OUT"
exit "$failed"
"""
    env = {"PATH": "/usr/bin:/bin", "RESULTS": str(results), "OUT": str(out)}
    done = subprocess.run(["bash", "-uo", "pipefail", "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = (results / "gpu_check_steps.txt").read_text().splitlines()
    assert [re.sub(r" \(\d+ s\)$", "", line) for line in lines] == [
        "first: ok", "broken: FAILED (exit 1)", "hangs: TIMED OUT after 1 s", "last: ok",
    ]  # fmt: skip
    # copied after each step: the last step already saw the earlier steps' files in $OUT
    seen = (results / "gpu_check_last.log").read_text().split()
    assert {"gpu_first.json", "gpu_check_broken.log", "gpu_check_hangs.log"} <= set(seen)
    assert (out / "gpu_check_steps.txt").read_text().splitlines() == lines
    assert (results / "gpu_check_first.log").read_text() == "wrote\n"


def test_gpu_check_script_has_no_set_e_and_fits_eight_minutes():
    text = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    assert not re.search(r"^\s*set -[a-z]*e", text, re.M)
    limits = [int(m) for m in re.findall(r"^step \S+ (\d+) ", text, re.M)]
    assert len(limits) == 6 and sum(limits) <= 8 * 60


def _parity_row(precision: str, d: float, labels: int = 16) -> dict:
    return {"precision": precision, "images": 16, "max_d_score": d / 2, "max_d_heatmap": d,
            "labels_equal": labels}  # fmt: skip


def test_parity_fails_beyond_the_tolerances_or_on_a_label():
    assert gc.parity_problems([_parity_row("fp32", 1.9e-3), _parity_row("fp16", 9e-3)]) == []
    assert gc.parity_problems([_parity_row("fp16", 1.1e-2)]) == [
        "cuda fp16: max |d| 1.10e-02 > 0.01"
    ]
    assert gc.parity_problems([_parity_row("fp32", 3e-3)]) == [
        "cuda fp32: max |d| 3.00e-03 > 0.002"
    ]
    assert gc.parity_problems([_parity_row("fp16", 0.0, labels=15)]) == [
        "cuda fp16: 1 labels differ"
    ]
    assert gc.parity_problems([_parity_row("fp16", math.nan)])  # NaN never passes


def test_compile_probe(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "no-such-compiler-here")
    assert "no C compiler (no-such-compiler-here)" in gc.compile_skip_reason()
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    assert "does not run" in gc.compile_skip_reason()


def test_roofline_share_uses_the_rows_precision_peak():
    row = {"model": "m", "batch": 8, "backend_run_img_s": 10.0, "speedup_vs_fp32": 1.0,
           "forward_img_s": 12.0, "forward_tflops": 33.45, "peak_mem_gib": 1.0}  # fmt: skip
    report = {
        "device": "NVIDIA H100 80GB HBM3", "torch": "2.11", "precision": "p",
        "peaks_tflops": gc.peaks_for("NVIDIA H100 80GB HBM3"),
        "rows": [row | {"precision": "fp32"}, row | {"precision": "fp16"},
                 {"model": "m", "precision": "fp16+compile", "batch": 16, "skipped": "no cc"}],
    }  # fmt: skip
    assert report["peaks_tflops"] == {"card": "H100", "fp16": 989.4, "fp32": 66.9}
    table = gc.to_markdown(report).splitlines()[-3:]
    assert "| 50 % |" in table[0]  # 33.45 / 66.9
    assert "| 3 % |" in table[1]  # 33.45 / 989.4
    assert "skipped: no cc" in table[2]
    assert gc.peaks_for("Some Future GPU") == {"card": None, "fp16": None, "fp32": None}


@pytest.mark.parametrize("step", ["parity", "stand-in", "throughput"])
def test_steps_without_a_gpu_exit_2(step, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gc.main([step]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out
