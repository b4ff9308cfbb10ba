"""benchmarks/throughput.py on the tiny model: one row per backend x batch, the baseline first."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxslim")

from benchmarks import throughput  # noqa: E402
from ipad_sdk.export.onnx import export_onnx  # noqa: E402


def test_report_rows_and_ratios(tiny_bundle, tmp_path):
    onnx_dir = tmp_path / "onnx"
    export_onnx(tiny_bundle, onnx_dir / f"{tiny_bundle.stem}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        photos = tmp_path / "photos"
        photos.mkdir()
        for i in range(3):
            Image.fromarray(np.full((40 + i, 60, 3), 60 * i, np.uint8)).save(photos / f"{i}.png")
        argv = [str(tiny_bundle), "--onnx", str(onnx_dir), "--batch", "1", "3",
                "--repeats", "2", "--threads", "1", "--out", str(tmp_path),
                "--e2e", str(photos)]  # fmt: skip
        code = throughput.main(argv)
    assert code == 0
    report = json.loads((tmp_path / "throughput_tiny.json").read_text())
    rows = report["rows"]
    assert [(r["backend"], r["batch"]) for r in rows] == [
        ("pytorch eager fp32", 1), ("onnxruntime fp32", 1),
        ("pytorch eager fp32", 3), ("onnxruntime fp32", 3),
    ]  # fmt: skip
    for row in rows:
        assert row["images_per_s"] == pytest.approx(row["batch"] / row["latency_ms_p50"] * 1e3)
        assert row["latency_ms_p95"] >= row["latency_ms_p50"] > 0
    memory = report["peak_rss_mib"]
    assert report["memory_batch"] == 3
    assert list(memory) == ["pytorch eager fp32", "onnxruntime fp32"]
    # the tiny model's weights are ~1 MiB; opening it and running 3 images grows RSS by more
    # than nothing and far less than a GiB
    assert all(0 < v < 1024 for v in memory.values())
    assert rows[0]["speedup_vs_baseline"] == 1.0
    assert rows[1]["speedup_vs_baseline"] == pytest.approx(
        rows[1]["images_per_s"] / rows[0]["images_per_s"]
    )
    assert "| onnxruntime fp32 | 3 |" in (tmp_path / "throughput_tiny.md").read_text()
    e2e = report["e2e"]
    assert [(r["backend"], r["mode"]) for r in e2e] == [
        ("pytorch eager fp32", "iter_detect"), ("pytorch eager fp32", "stream (2 decode threads)"),
        ("onnxruntime fp32", "iter_detect"), ("onnxruntime fp32", "stream (2 decode threads)"),
    ]  # fmt: skip
    assert all(r["images"] == 3 and r["batch"] == 3 and r["images_per_s"] > 0 for r in e2e)
