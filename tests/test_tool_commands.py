"""The tool subcommands of ``ipad`` (export, serve, ray) and the ``export/*.py`` scripts: options,
wiring and error paths. The exports themselves are tested in test_onnx_export, test_trt and
test_triton; the installed wheel in test_wheel."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ipad_sdk.cli import main
from ipad_sdk.integrations import commands
from ipad_sdk.integrations import ray as ipad_ray
from ipad_sdk.integrations import triton as ipad_triton

ROOT = Path(__file__).resolve().parents[1]


def _options(help_text: str) -> list[str]:
    return sorted(set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", help_text)))


@pytest.mark.parametrize(
    ("script", "command"),
    [("export_onnx.py", "onnx"), ("build_trt.py", "trt"), ("triton_repo.py", "triton-repo")],
)
def test_scripts_take_the_options_of_the_subcommands(script, command, tmp_path, capsys):
    """``python export/<script>`` runs from any folder (no sys.path edits needed: the package is
    installed) and has exactly the options of ``ipad export <command>``."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "export" / script), "--help"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with pytest.raises(SystemExit) as exit_info:
        main(["export", command, "--help"])
    assert exit_info.value.code == 0
    ipad_help = capsys.readouterr().out
    assert _options(done.stdout) == _options(ipad_help)
    assert len(_options(ipad_help)) >= 3


def test_export_errors_name_the_file(tmp_path, capsys):
    missing = tmp_path / "nowhere.safetensors"
    assert main(["export", "onnx", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ipad export: error:") and str(missing) in err
    assert main(["export", "triton-repo", str(tmp_path / "m.txt"), "--out", str(tmp_path)]) == 2
    assert "m.txt: expected an .onnx file" in capsys.readouterr().err


def test_export_options_are_checked_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "onnx", "bundle.safetensors", "--out", "x", "--batch", "0"])
    assert exit_info.value.code == 2
    assert "--batch: must be 'dynamic' or a positive integer, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "trt", "m.onnx", "--out", "m.plan", "--batch", "4:2:8"])
    assert "MIN <= OPT <= MAX" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export"])
    assert "required: format" in capsys.readouterr().err


def test_serve_passes_its_options_to_the_server(monkeypatch):
    calls = []
    monkeypatch.setattr(commands, "_require_pytriton", lambda: None)
    monkeypatch.setattr(ipad_triton, "serve", lambda model, **kw: calls.append((model, kw)))
    assert main(["serve", "-m", "m.onnx", "--http-port", "9000", "--grpc-port", "9001",
                 "--max-batch", "4", "--instances", "2", "--threads", "1", "--device", "cpu",
                 "--name", "det", "--tiling", "auto", "--host", "0.0.0.0"]) == 0  # fmt: skip
    assert calls == [("m.onnx", {
        "host": "0.0.0.0", "http_port": 9000, "grpc_port": 9001, "max_batch": 4,
        "instances": 2, "threads": 1, "device": "cpu", "name": "det", "tiling": "auto",
    })]  # fmt: skip


def test_serve_errors(monkeypatch, capsys):
    assert main(["serve", "--max-batch", "0"]) == 2
    assert "--max-batch and --instances must be >= 1" in capsys.readouterr().err
    if commands.importlib.util.find_spec("pytriton") is None:
        assert main(["serve"]) == 2
        assert "ipad serve needs PyTriton: pip install nvidia-pytriton" in capsys.readouterr().err


def test_query_passes_its_options_to_the_client_and_writes_like_ipad_detect(monkeypatch, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photos / name)
    calls = []

    def fake_query(files, url, protocol, model, batch_size):
        calls.append(([p.name for p in files], url, protocol, model, batch_size))
        return [({"source": str(f), "label": "clean"}, b"png") for f in files[:1]] + [
            ({"source": str(f), "error": "bad"}, b"") for f in files[1:]
        ]

    monkeypatch.setattr(ipad_triton, "query", fake_query)
    out = tmp_path / "out"
    assert main(["query", str(photos), "--url", "h:9", "--protocol", "grpc", "-m", "det",
                 "--batch-size", "3", "--out", str(out), "--save-masks"]) == 1  # fmt: skip
    assert calls == [(["a.png", "b.png"], "h:9", "grpc", "det", 3)]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r.get("error") for r in records] == [None, "bad"]
    assert (out / records[0]["mask"]).read_bytes() == b"png"
    assert main(["query", str(photos), "--batch-size", "0"]) == 2


def test_python_m_entry_points_take_the_ipad_subcommands_options(capsys):
    """``python -m ipad_sdk.integrations.triton|ray`` parse with the ``ipad`` definitions."""
    import argparse

    for add in (commands.add_serve_arguments, commands.add_query_arguments,
                commands.add_ray_arguments):  # fmt: skip
        ipad_parser = argparse.ArgumentParser()
        add(ipad_parser)
        seen = {}

        def capture(args, seen=seen):
            seen["args"] = args
            return 0

        name = add.__name__.removeprefix("add_").removesuffix("_arguments")
        argv = {"serve": ["serve"], "query": ["query", "x.png"], "ray": ["x.png", "--out", "o"]}
        module = ipad_ray if name == "ray" else ipad_triton
        original = {"serve": commands.run_serve, "query": commands.run_query,
                    "ray": commands.run_ray}[name]  # fmt: skip
        setattr(commands, original.__name__, capture)
        try:
            assert module.main(argv[name]) == 0
        finally:
            setattr(commands, original.__name__, original)
        expected = vars(ipad_parser.parse_args(argv[name][1:] if name != "ray" else argv[name]))
        assert {k: v for k, v in vars(seen["args"]).items() if k not in ("run", "command")} == (
            expected
        )
    assert ipad_triton.main(["serve", "--max-batch", "0"]) == 2
    assert "--max-batch and --instances must be >= 1" in capsys.readouterr().err
    assert ipad_ray.main(["x.png", "--out", "o", "--actors", "0"]) == 2
    assert "--actors and --batch-size must be >= 1" in capsys.readouterr().err


def test_ray_runs_the_ray_integration(tiny_bundle, tmp_path, monkeypatch):
    """``ipad ray`` passes its options to Ray Data's detection and writes what it returns."""
    photos = []
    for i in range(2):
        photos.append(tmp_path / "photos" / f"{i}.png")
        photos[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((20, 30, 3), 80 * i, np.uint8)).save(photos[-1])
    batch = ipad_ray.DetectBatch(str(tiny_bundle), device="cpu", masks=True)
    columns = batch({"path": np.array([str(p) for p in photos]), "index": np.arange(2)})
    rows = [dict(zip(columns, v, strict=True)) for v in zip(*columns.values(), strict=True)]
    started, calls = [], []
    fake_ray = types.SimpleNamespace(init=lambda **kw: started.append(kw), shutdown=lambda: None)
    monkeypatch.setattr(ipad_ray, "_import_ray", lambda: fake_ray)
    monkeypatch.setattr(ipad_ray, "detect_files",
                        lambda *args, **kw: calls.append((args, kw)) or rows)  # fmt: skip
    out = tmp_path / "out"
    assert main(["ray", str(tmp_path / "photos"), "--out", str(out), "-m", str(tiny_bundle),
                 "--actors", "3", "--batch-size", "5", "--save-masks", "--device", "cpu",
                 "--tiling", "auto", "--address", "auto"]) == 0  # fmt: skip
    assert started[0]["address"] == "auto"
    assert calls == [((photos, str(tiny_bundle), 3, 5, True, "cpu"), {"tiling": "auto"})]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == [str(p) for p in photos]
    assert all((out / r["mask"]).is_file() for r in records)


def test_ray_refuses_an_out_file_before_starting_ray(tmp_path, monkeypatch, capsys):
    def no_ray():
        raise AssertionError("Ray started before the output folder was checked")

    monkeypatch.setattr(ipad_ray, "_import_ray", no_ray)
    out = tmp_path / "out"
    out.write_text("a file")
    assert main(["ray", str(tmp_path), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"ipad ray: error: {out}")
