"""The wheel as a user gets it: built from the checkout's sources, installed into a fresh virtual
environment outside the checkout, then ``ipad export onnx`` on the embedded default model and
``ipad export trt`` building an SM86 plan from its FP16 ONNX (TensorRT for RTX builds ahead of
time without a GPU; skipped with the reason where it is not installed).

The fresh environment sees this one's site-packages (a ``.pth`` line, appended after its own) for
torch, onnx and ONNX Runtime, so nothing is downloaded; ipad_sdk itself comes from the wheel only
(checked).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from ipad_sdk.fileio import file_sha256

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxslim")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _setuptools_major() -> int:
    try:
        return int(version("setuptools").split(".")[0])
    except PackageNotFoundError:
        return 0


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built (offline, with this environment's setuptools) from a copy of the sources
    so that the build leaves nothing in the checkout."""
    if _setuptools_major() < 69:
        pytest.skip("building the wheel offline needs setuptools >= 69 (pyproject's build backend)")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "ipad_sdk", src / "ipad_sdk",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--wheel-dir", str(dist), str(src)], cwd=dist)  # fmt: skip
    (built,) = dist.glob("ipad_sdk-*.whl")
    return built


def test_the_wheel_holds_the_package_and_its_export_tools_only(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"ipad_sdk"}
    needed = ["export/onnx.py", "export/trt.py", "export/triton_repo.py",
              "export/onnx_tensorrt_ops.json", "integrations/commands.py",
              "weights/ipad-default.safetensors"]  # fmt: skip
    assert [n for n in needed if f"ipad_sdk/{n}" not in names] == []
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "ipad = ipad_sdk.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_exports_the_default_model(wheel: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", purelib], cwd=tmp_path).stdout.strip())
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "test-env-packages.pth").write_text("".join(f"{p}\n" for p in sorted(here)))
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
          "--no-index", str(wheel)], cwd=tmp_path)  # fmt: skip
    where = _run([str(python), "-c", "import ipad_sdk.detector as d; print(d.__file__); "
                  "print(d.default_model_path())"], cwd=tmp_path).stdout.split()  # fmt: skip
    package, model = Path(where[0]), Path(where[1])
    assert package.is_relative_to(site) and model.is_relative_to(site)
    assert model.name == "ipad-default.safetensors"

    out = tmp_path / "exported"
    done = _run([str(venv / "bin" / "ipad"), "export", "onnx", str(model), "--out", str(out),
                 "--fp16"], cwd=tmp_path)  # fmt: skip
    assert "-> ok" in done.stdout
    report = json.loads((out / "ipad-default.verify.json").read_text())
    assert report["fp32"]["passed"] is True and report["fp32"]["unsupported_ops"] == []
    info = json.loads(_run([str(venv / "bin" / "ipad"), "info", str(out / "ipad-default.onnx")],
                           cwd=tmp_path).stdout)  # fmt: skip
    assert info["runtime"] == "onnxruntime" and info["precision"] == "fp32"

    if importlib.util.find_spec("tensorrt_rtx") is None:
        pytest.skip("TensorRT for RTX (the `trt` extra) is not installed: no SM86 plan build")
    plan = tmp_path / "ipad-default.plan"
    fp16 = out / "ipad-default.fp16.onnx"
    _run([str(venv / "bin" / "ipad"), "export", "trt", str(fp16), "--out", str(plan), "--sm", "86",
          "--batch", "1:1:2"], cwd=tmp_path, timeout=900)  # fmt: skip
    sidecar = json.loads(Path(f"{plan}.json").read_text())
    assert plan.stat().st_size == sidecar["tensorrt"]["plan_bytes"] > 0
    assert sidecar["tensorrt"]["target_sm"] == "86" and sidecar["precision"] == "fp16"
    assert sidecar["source_sha256"] == file_sha256(model)
