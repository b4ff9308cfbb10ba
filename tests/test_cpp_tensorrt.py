"""cpp_example/tools/ipad_detect.cpp (the TensorRT program) compiles warning-free against the real
TensorRT public headers of 10.16 and 11.1 (vendored in cpp_example/third_party/tensorrt/) and
the CUDA 13.0 runtime headers of the nvidia-cuda-runtime and nvidia-cuda-crt wheels (the `dev`
extra). Syntax only: linking needs TensorRT's libraries and running it a GPU."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "cpp_example"
TENSORRT = SOURCE / "third_party" / "tensorrt"
VERSIONS = {"10.16": (10, 16), "11.1": (11, 1)}
FLAGS = ["-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror"]

pytestmark = pytest.mark.skipif(not shutil.which("c++"), reason="needs a C++ compiler (c++)")


def _cuda_include() -> Path:
    """The include folder of the nvidia-cuda-runtime 13 wheel (crt/ comes from nvidia-cuda-crt)."""
    for entry in map(Path, sys.path):
        include = entry / "nvidia" / "cu13" / "include"
        if (include / "cuda_runtime_api.h").is_file():
            if not (include / "crt" / "host_defines.h").is_file():
                pytest.skip(f"{include} has no crt/: pip install 'nvidia-cuda-crt==13.0.*'")
            return include
    pytest.skip("no CUDA 13 runtime headers: pip install -e '.[dev]' (nvidia-cuda-runtime)")


def _compile(version: str, source: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        "c++", *FLAGS, *extra,
        "-isystem", str(TENSORRT / version),  # their own deprecation warnings are not ours
        "-isystem", str(_cuda_include()),
        "-I", str(SOURCE / "src"),
        str(source),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True)


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_vendored_headers_are_that_release(version):
    text = (TENSORRT / version / "NvInferVersion.h").read_text()
    major = int(re.search(r"#define TRT_MAJOR_ENTERPRISE (\d+)", text)[1])
    minor = int(re.search(r"#define TRT_MINOR_ENTERPRISE (\d+)", text)[1])
    assert (major, minor) == VERSIONS[version]
    assert (TENSORRT / "LICENSE").read_text().lstrip().startswith("Apache License")


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_ipad_detect_compiles_against_tensorrt(version):
    result = _compile(version, SOURCE / "tools" / "ipad_detect.cpp")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not even a note


def test_ipad_detect_rtx_branch_compiles():
    """The TensorRT-for-RTX branch of ipad_detect's version macros (RTX's NvInferVersion.h defines
    TRT_MAJOR_RTX etc.; its headers are not vendored, the API used is the same)."""
    rtx = ["-DTRT_MAJOR_RTX=1", "-DTRT_MINOR_RTX=7", "-DTRT_PATCH_RTX=1"]
    result = _compile("11.1", SOURCE / "tools" / "ipad_detect.cpp", *rtx)
    assert result.returncode == 0, result.stderr
    result = _compile("11.1", SOURCE / "tools" / "ipad_detect.cpp", *rtx[:1])
    assert "TRT_MINOR_RTX" in result.stderr  # the branch was taken: it needs all three


# IGpuAllocator::allocate, deprecated since TensorRT 10.0 (superseded by allocateAsync).
DEPRECATED_CALL = "void* probe(nvinfer1::IGpuAllocator& a) { return a.allocate(1, 1, 0); }"


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_the_check_sees_our_deprecated_calls(version, tmp_path):
    """-isystem silences warnings inside the TensorRT headers, not those of our calls into them."""
    probe = tmp_path / "probe.cpp"
    probe.write_text(f"#include <NvInfer.h>\n{DEPRECATED_CALL}\n")
    result = _compile(version, probe)
    assert result.returncode != 0
    assert "allocate" in result.stderr, result.stderr
    assert "[-Werror=deprecated-declarations]" in result.stderr, result.stderr
    probe.write_text("#include <NvInfer.h>\nint probe() { return 0; }\n")
    assert _compile(version, probe).returncode == 0  # the headers themselves pass the same flags
