"""TensorRT: a real FP16 engine built ahead of time for SM86 (RTX 3090) with TensorRT for RTX from
the tiny model's FP16 ONNX, its sidecar metadata and layer precisions, and the runtime backend's
checks and error paths. Running the engine needs a GPU: that test is marked and skips here."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

trt = pytest.importorskip("tensorrt_rtx")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxslim")
pytest.importorskip("cuda.bindings")

from ipad_sdk import Detector, ModelError  # noqa: E402
from ipad_sdk.backends import trt_backend  # noqa: E402
from ipad_sdk.backends.trt_backend import (  # noqa: E402
    TensorRTBackend,
    batch_chunks,
    binding_problems,
    cuda_device_index,
)
from ipad_sdk.errors import BackendUnavailable  # noqa: E402
from ipad_sdk.export import onnx as ex  # noqa: E402
from ipad_sdk.export import trt as bt  # noqa: E402
from ipad_sdk.metadata import read_bundle_config, read_engine_metadata  # noqa: E402
from tests.fake_cudart import FakeCudart  # noqa: E402


def _gpu_visible() -> bool:
    from cuda.bindings import runtime

    err, count = runtime.cudaGetDeviceCount()
    return err == runtime.cudaError_t.cudaSuccess and count > 0


@pytest.fixture(scope="module")
def onnx_files(tiny_bundle: Path, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("trt_onnx")
    return {
        "fp16": ex.export_onnx(tiny_bundle, out / "m.fp16.onnx", fp16=True),
        "fp32": ex.export_onnx(tiny_bundle, out / "m.onnx"),
        "b2": ex.export_onnx(tiny_bundle, out / "m.b2.fp16.onnx", fp16=True, batch=2),
    }


@pytest.fixture(scope="module")
def engine(onnx_files, tmp_path_factory) -> tuple[Path, dict]:
    plan = tmp_path_factory.mktemp("trt") / "tiny.plan"
    sidecar = bt.build_engine(onnx_files["fp16"], plan, sm="86", batch=(1, 4, 8), progress=False)
    return plan, sidecar


def _copy(plan: Path, dest: Path) -> Path:
    shutil.copy(plan, dest)
    shutil.copy(str(plan) + ".json", str(dest) + ".json")
    return dest


# -- building -------------------------------------------------------------------------------------
def test_engine_and_sidecar(engine, tiny_bundle, onnx_files):
    plan, sidecar = engine
    assert plan.stat().st_size > 0
    assert json.loads(Path(str(plan) + ".json").read_text()) == sidecar
    config, meta = read_engine_metadata(plan)
    assert config == read_bundle_config(tiny_bundle)
    assert meta["format"] == "ipad-engine" and meta["precision"] == "fp16"
    assert meta["source_sha256"] == ex.file_sha256(tiny_bundle)
    info = meta["tensorrt"]
    assert info["flavour"] == "tensorrt-rtx" and info["version"] == trt.__version__
    assert info["target_sm"] == "86" and info["strongly_typed"] is True
    assert info["profile"] == {"min": 1, "opt": 4, "max": 8}
    assert info["plan_bytes"] == plan.stat().st_size
    assert info["plan_sha256"] == ex.file_sha256(plan)
    assert info["source_onnx_sha256"] == ex.file_sha256(onnx_files["fp16"])
    assert info["io"] == {
        "images": {"mode": "input", "dtype": "FLOAT", "shape": [-1, 3, 64, 64]},
        "class_probs": {"mode": "output", "dtype": "FLOAT", "shape": [-1, 4]},
        "pixel_probs": {"mode": "output", "dtype": "FLOAT", "shape": [-1, 4, 64, 64]},
    }


def test_fp16_network_keeps_norms_softmax_and_head_in_fp32(engine, onnx_files):
    _, sidecar = engine
    precisions = sidecar["tensorrt"]["network_precisions"]
    proto = onnx.load(str(onnx_files["fp16"]))
    n_matmul = sum(node.op_type == "MatMul" for node in proto.graph.node)
    n_layernorm = sum(node.op_type == "LayerNormalization" for node in proto.graph.node)
    assert precisions["matmul"] == {"HALF": n_matmul - 2, "FLOAT": 2}  # the cosine head: FP32
    assert precisions["layernorm"] == {"FLOAT": n_layernorm}
    assert precisions["softmax"] == {"FLOAT": 4 + 2}  # 4 attention blocks + 2 head softmaxes
    assert precisions["reduce (L2 norm)"] == {"FLOAT": 2}
    assert bt.precision_problems(precisions, "fp16") == []


def test_precision_check_flags_an_fp32_network(onnx_files):
    trt_mod, _ = bt.import_tensorrt("rtx")
    builder = trt_mod.Builder(trt_mod.Logger(trt_mod.Logger.ERROR))
    network, _parser = bt.parse_network(trt_mod, builder, str(onnx_files["fp32"]), True)
    precisions = bt.network_precisions(trt_mod, network)
    assert "HALF" not in precisions["matmul"]
    assert any("no FP16 matmul" in p for p in bt.precision_problems(precisions, "fp16"))
    assert bt.precision_problems({"softmax": {"HALF": 3}}, "fp32") == [
        "softmax layers not in FP32: {'HALF': 3}"
    ]


def test_parse_batch():
    assert bt.parse_batch("1:8:32") == (1, 8, 32)
    assert bt.parse_batch("4") == (4, 4, 4)
    for bad in ("0:1:2", "8:4:16", "1:2", "x", ""):
        with pytest.raises(ValueError, match="--batch"):
            bt.parse_batch(bad)


def test_build_errors_are_clear(onnx_files, tmp_path, tiny_bundle):
    with pytest.raises(bt.BuildError, match="name the target"):
        bt.build_engine(onnx_files["fp16"], tmp_path / "a.plan", progress=False)
    with pytest.raises(bt.BuildError, match="cannot target SM90"):
        bt.build_engine(onnx_files["fp16"], tmp_path / "a.plan", sm="90", progress=False)
    with pytest.raises(bt.BuildError, match="--fp16-flag needs full TensorRT"):
        bt.build_engine(onnx_files["fp32"], tmp_path / "a.plan", sm="86", fp16_flag=True)
    with pytest.raises(bt.BuildError, match="fixed at 2; use --batch 2"):
        bt.build_engine(onnx_files["b2"], tmp_path / "a.plan", sm="86", progress=False)
    assert not (tmp_path / "a.plan").exists()
    # a parser failure names the node
    proto = onnx.load(str(onnx_files["fp32"]))
    x = onnx.helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, 64, 64])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    node = onnx.helper.make_node("Unique", ["images"], ["y"], name="the_bad_node")
    graph = onnx.helper.make_graph([node], "g", [x], [y])
    bad = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    bad.metadata_props.extend(proto.metadata_props)
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    with pytest.raises(bt.BuildError, match="the_bad_node"):
        bt.build_engine(tmp_path / "bad.onnx", tmp_path / "b.plan", sm="86", progress=False)


def _full_tensorrt(version: str) -> SimpleNamespace:
    """A stand-in for the ``tensorrt`` module of full TensorRT ``version``: only its version and,
    before 11, the FP16 builder flag (TensorRT 11 removed it)."""
    flags = {"FP16": 0, "OBEY_PRECISION_CONSTRAINTS": 1} if version.startswith("10.") else {}
    return SimpleNamespace(__version__=version, BuilderFlag=SimpleNamespace(**flags))


def test_build_routes_of_full_tensorrt_10_and_11():
    trt10, trt11 = _full_tensorrt("10.16.0"), _full_tensorrt("11.4.0")
    route = bt.build_route(trt10, "tensorrt", sm=None, fp16_flag=True, onnx_precision="fp32")
    assert route == bt.Route(strongly_typed=False, precision="fp16")  # not the ONNX's "fp32"
    for module in (trt10, trt11):
        route = bt.build_route(module, "tensorrt", sm=None, fp16_flag=False, onnx_precision="fp16")
        assert route == bt.Route(strongly_typed=True, precision="fp16")
    with pytest.raises(bt.BuildError, match="TensorRT 11.4.0 removed BuilderFlag.FP16"):
        bt.build_route(trt11, "tensorrt", sm=None, fp16_flag=True, onnx_precision="fp32")
    with pytest.raises(bt.BuildError, match="9.3.0 is not supported: .* TensorRT 10 and 11"):
        bt.build_route(_full_tensorrt("9.3.0"), "tensorrt", sm=None, fp16_flag=False,
                       onnx_precision="fp16")  # fmt: skip


def test_fp16_flag_on_tensorrt_11_is_a_clear_error(onnx_files, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", _full_tensorrt("11.4.0"))
    code = bt.main([str(onnx_files["fp32"]), "--out", str(tmp_path / "e.plan"), "--flavour",
                    "full", "--fp16-flag", "--quiet"])  # fmt: skip
    assert code == 2
    assert "removed BuilderFlag.FP16" in capsys.readouterr().out
    assert not (tmp_path / "e.plan").exists()


def test_builder_config_asks_for_detailed_profiling(onnx_files):
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    route = bt.Route(strongly_typed=True, precision="fp16")
    config = bt.builder_config(trt, builder, route, sm="86", size=64, batch=(1, 4, 8),
                               workspace_gib=None)  # fmt: skip
    assert config.profiling_verbosity == trt.ProfilingVerbosity.DETAILED
    assert config.num_compute_capabilities == 1


def test_build_script(onnx_files, tmp_path, capsys):
    code = bt.main([str(onnx_files["fp16"]), "--out", str(tmp_path / "e.plan"), "--sm", "86",
                    "--batch", "2", "--quiet"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "target SM 86" in out and "layernorm" in out
    assert read_engine_metadata(tmp_path / "e.plan")[1]["tensorrt"]["profile"]["max"] == 2
    assert bt.main([str(onnx_files["fp16"]), "--out", str(tmp_path / "f.plan"), "--quiet"]) == 2


def test_ipad_export_trt_builds_an_sm86_plan(onnx_files, tiny_bundle, tmp_path, capsys):
    from ipad_sdk.cli import main

    plan = tmp_path / "cli.plan"
    assert main(["export", "trt", str(onnx_files["fp16"]), "--out", str(plan), "--sm", "86",
                 "--batch", "1:2:4", "--quiet"]) == 0  # fmt: skip
    assert f"wrote {plan}" in capsys.readouterr().out
    config, meta = read_engine_metadata(plan)
    info = meta["tensorrt"]
    assert (info["flavour"], info["target_sm"]) == ("tensorrt-rtx", "86")
    assert info["profile"] == {"min": 1, "opt": 2, "max": 4}
    assert meta["precision"] == "fp16" and config == read_bundle_config(tiny_bundle)
    assert main(["export", "trt", str(onnx_files["fp16"]), "--out", str(plan), "--quiet"]) == 2
    assert "ipad export: error: TensorRT for RTX builds ahead of time" in capsys.readouterr().err


# -- loading --------------------------------------------------------------------------------------
@pytest.mark.skipif(_gpu_visible(), reason="checks the no-GPU error; a GPU is visible")
def test_loading_without_a_gpu_says_so(engine):
    plan, _ = engine
    with pytest.raises(BackendUnavailable, match="no usable NVIDIA GPU"):
        Detector(plan)
    with pytest.raises(ValueError, match="runs on an NVIDIA GPU"):
        Detector(plan, device="cpu")


def test_broken_plans_and_sidecars_say_rebuild(engine, tmp_path):
    plan, _ = engine
    data = plan.read_bytes()
    truncated = _copy(plan, tmp_path / "truncated.plan")
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated.plan: the plan is .* bytes .* rebuild"):
        Detector(truncated)
    flipped = _copy(plan, tmp_path / "flipped.plan")
    flipped.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    with pytest.raises(ModelError, match="SHA-256 does not match"):
        Detector(flipped)
    lonely = tmp_path / "lonely.plan"
    shutil.copy(plan, lonely)
    with pytest.raises(ModelError, match="sidecar .* is missing"):
        Detector(lonely)
    other_version = _copy(plan, tmp_path / "other.plan")
    meta = json.loads(Path(str(other_version) + ".json").read_text())
    meta["tensorrt"]["version"] = "0.9.0"
    Path(str(other_version) + ".json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="built with tensorrt-rtx 0.9.0 .* rebuild the engine"):
        Detector(other_version)
    foreign = _copy(plan, tmp_path / "foreign.plan")
    Path(str(foreign) + ".json").write_text(json.dumps({"hello": "world"}))
    with pytest.raises(ModelError, match="not an ipad-sdk engine sidecar"):
        Detector(foreign)
    garbled = _copy(plan, tmp_path / "garbled.plan")
    Path(str(garbled) + ".json").write_text("{not json")
    with pytest.raises(ModelError, match="engine metadata is not valid JSON"):
        Detector(garbled)


@pytest.mark.parametrize(
    ("sm", "fix"),
    [((9, 0), "no SM90 target .* full TensorRT .* --flavour full"), ((8, 9), "--sm 89")],
)
def test_gpu_of_another_architecture_names_the_fix(engine, monkeypatch, sm, fix):
    """An SM86 plan on an H100 (SM90, no TensorRT-for-RTX target) or an RTX 4090 (SM89)."""
    plan, _ = engine
    monkeypatch.setattr(trt_backend, "_import_cudart", lambda: FakeCudart(sm=sm))
    with pytest.raises(
        ModelError, match=f"built for SM86, but cuda:0 .* is SM{sm[0]}{sm[1]};.* {fix}"
    ):
        Detector(plan)


def test_backend_choice(engine, tiny_bundle):
    plan, _ = engine
    with pytest.raises(ValueError, match="is a tensorrt model; backend='torch'"):
        Detector(plan, backend="torch")
    with pytest.raises(ValueError, match="backend must be"):
        Detector(tiny_bundle, backend="tensorflow")
    with pytest.raises(ValueError, match="providers/threads apply to .onnx"):
        Detector(plan, threads=2)


def test_batch_chunks_and_devices():
    assert [(s.start, s.stop) for s in batch_chunks(10, 4)] == [(0, 4), (4, 8), (8, 10)]
    assert [(s.start, s.stop) for s in batch_chunks(3, 8)] == [(0, 3)]
    assert list(batch_chunks(0, 8)) == []
    with pytest.raises(ValueError):
        list(batch_chunks(3, 0))
    assert [cuda_device_index(d) for d in ("auto", "cuda", "cuda:2")] == [0, 0, 2]
    with pytest.raises(ValueError, match="runs on an NVIDIA GPU"):
        cuda_device_index("cpu")


def test_binding_problems(engine):
    plan, sidecar = engine
    config, _ = read_engine_metadata(plan)
    io = sidecar["tensorrt"]["io"]
    assert binding_problems(io, io, config) == []
    wrong = json.loads(json.dumps(io))
    wrong["pixel_probs"]["dtype"] = "HALF"
    wrong["images"]["shape"] = [-1, 3, 32, 32]
    problems = binding_problems(wrong, io, config)
    assert problems == [
        "images: shape [-1, 3, 32, 32] but the config needs [B,*[3, 64, 64]]",
        "pixel_probs: dtype HALF but the sidecar says FLOAT",
    ]
    assert "expected" in binding_problems({"x": io["images"]}, io, config)[0]


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_visible(), reason="needs an NVIDIA GPU with a driver (none visible)")
def test_engine_matches_onnx_runtime_on_a_gpu(tmp_path, onnx_files, rgb_image):
    from cuda.bindings import runtime

    props = runtime.cudaGetDeviceProperties(0)[1]
    sm = f"{props.major}{props.minor}"
    if not hasattr(trt.ComputeCapability, f"SM{sm}"):  # e.g. Hopper: full TensorRT's territory
        pytest.skip(f"TensorRT for RTX {trt.__version__} has no SM{sm} target")
    plan = tmp_path / "local.plan"
    bt.build_engine(onnx_files["fp16"], plan, sm=sm, batch=(1, 4, 8), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_trt, on_ort = Detector(plan), Detector(onnx_files["fp32"], device="cpu")
    images = [rgb_image] * 11  # > profile max: split into 8 + 3
    for got, want in zip(on_trt.detect_batch(images), on_ort.detect_batch(images), strict=True):
        assert got.label == want.label
        np.testing.assert_allclose(got.heatmap, want.heatmap, atol=1e-2)
    assert isinstance(on_trt.backend, TensorRTBackend)


def test_ipad_info_reads_the_sidecar(engine, capsys, tmp_path):
    from ipad_sdk.cli import main

    plan, _ = engine
    assert main(["info", str(plan)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["runtime"] == "tensorrt" and info["tensorrt"]["target_sm"] == "86"
    lonely = tmp_path / "x.plan"
    shutil.copy(plan, lonely)
    assert main(["info", str(lonely)]) == 2
    assert "sidecar" in capsys.readouterr().err
