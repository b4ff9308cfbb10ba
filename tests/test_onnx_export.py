"""ONNX export (FP32/FP16/INT8, float or uint8 input) and the ONNX Runtime backend, tiny model:
export -> full checker -> no text ops -> TensorRT op list -> ORT parity with PyTorch -> Detector."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxslim")
torch = pytest.importorskip("torch")

from ipad_sdk import Detector, ModelError  # noqa: E402
from ipad_sdk.backends import onnx_backend  # noqa: E402
from ipad_sdk.backends.onnx_backend import (  # noqa: E402
    OnnxBackend,
    choose_providers,
    graph_precision,
    tensorrt_cache_dir,
)
from ipad_sdk.export import onnx as ex  # noqa: E402
from ipad_sdk.metadata import ModelConfig, read_bundle_config  # noqa: E402
from ipad_sdk.model import load_bundle  # noqa: E402
from ipad_sdk.preprocess import preprocess_batch  # noqa: E402


@pytest.fixture(scope="module")
def exports(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("onnx")
    files = {
        "fp32": ex.export_onnx(tiny_bundle, out / "m.onnx"),
        "fp16": ex.export_onnx(tiny_bundle, out / "m.fp16.onnx", fp16=True),
        "u8": ex.export_onnx(tiny_bundle, out / "m.u8.onnx", uint8_input=True),
        "b2": ex.export_onnx(tiny_bundle, out / "m.b2.onnx", batch=2),
    }
    files["int8"] = ex.quantize_int8(files["fp32"], out / "m.int8.onnx")
    return files


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """Random noise plus structured images, resized to the tiny model's 64 px."""
    rgbs, _ = ex.verification_inputs(read_bundle_config_tiny(), n_random=3, seed=5)
    yy, xx = np.mgrid[0:64, 0:64]
    ramp = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)
    return np.concatenate([rgbs, ramp[None], 255 - ramp[None]])


def read_bundle_config_tiny():
    from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip

    return build_ipad_clip(TINY_BACKBONE, seed=0).config


def _torch_probs(bundle: Path, rgbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model = load_bundle(bundle, "cpu")
    with torch.inference_mode():
        out = model(torch.from_numpy(preprocess_batch(list(rgbs), model.config)))
    return out[0].numpy(), out[1].numpy()


def _node_input_types(proto) -> dict[str, int]:
    """Element type of every tensor in the graph (after shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(proto)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    types |= {v.name: v.type.tensor_type.elem_type for v in inferred.graph.input}
    types |= {i.name: i.data_type for i in inferred.graph.initializer}
    return types


# -- the files ------------------------------------------------------------------------------------
def test_every_export_passes_the_full_checker(exports):
    for path in exports.values():
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def test_metadata_makes_the_onnx_file_self_describing(exports, tiny_bundle):
    meta = {e.key: e.value for e in onnx.load(str(exports["fp16"])).metadata_props}
    assert meta["format"] == "ipad-onnx" and meta["format_version"] == "1"
    assert meta["precision"] == "fp16" and meta["input_format"] == "float"
    assert meta["source_sha256"] == ex.file_sha256(tiny_bundle)
    assert ModelConfig.from_json(meta["ipad_config"]) == read_bundle_config(tiny_bundle)
    u8 = {e.key: e.value for e in onnx.load(str(exports["u8"])).metadata_props}
    assert u8["input_format"] == "uint8"
    i8 = {e.key: e.value for e in onnx.load(str(exports["int8"])).metadata_props}
    assert i8["precision"] == "int8"


def test_io_signature(exports):
    proto = onnx.load(str(exports["fp32"]))
    (inp,) = proto.graph.input
    assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 64, 64]
    assert [o.name for o in proto.graph.output] == ["class_probs", "pixel_probs"]
    fixed = onnx.load(str(exports["b2"])).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in fixed] == [2, 3, 64, 64]
    u8 = onnx.load(str(exports["u8"])).graph.input[0]
    assert u8.type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_no_text_encoder_in_the_graph(exports, tiny_bundle):
    config = read_bundle_config(tiny_bundle)
    for key in ("fp32", "fp16"):
        proto = onnx.load(str(exports[key]))
        assert ex.text_encoder_traces(proto, config) == []
        # no more weights than the vision side plus the K+1 anchors (the tiny text tower alone
        # would add 3 M token-embedding values); identical initializers are stored once
        model = load_bundle(tiny_bundle, "cpu")
        vision = sum(p.numel() for p in model.parameters()) + model.anchors.numel()
        stored = sum(int(np.prod(i.dims)) for i in proto.graph.initializer)
        assert 0.9 * vision < stored < 1.05 * vision
    # the check does fire on a text-encoder weight
    proto = onnx.load(str(exports["fp32"]))
    vocab = config.clip_config.get("text_cfg", {}).get("vocab_size", 49408)
    table = onnx.helper.make_tensor(
        "token_embedding", onnx.TensorProto.FLOAT, [vocab, 1], [0.0] * vocab
    )
    proto.graph.initializer.append(table)
    assert ex.text_encoder_traces(proto, config) == [f"initializer token_embedding [{vocab}, 1]"]


def test_every_op_is_on_the_tensorrt_list(exports):
    listed = ex.supported_ops()
    assert {"LayerNormalization", "MatMul", "Softmax", "Resize", "Cast"} <= listed
    assert not {"Unique", "StringNormalizer", "SequenceAt"} & listed
    for key in ("fp32", "fp16", "u8", "b2"):
        proto = onnx.load(str(exports[key]))
        assert ex.unsupported_ops(proto) == []
        assert "LayerNormalization" in ex.graph_ops(proto)  # opset 17: one op, not decomposed
        assert not {"Attention", "MultiHeadAttention"} & ex.graph_ops(proto)
    proto = onnx.load(str(exports["fp32"]))
    proto.graph.node[0].op_type = "Unique"
    assert ex.unsupported_ops(proto) == ["Unique"]


def test_fp16_graph_keeps_norms_softmax_and_head_in_fp32(exports):
    proto = onnx.load(str(exports["fp16"]))
    types = _node_input_types(proto)
    fp32, fp16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    checked = 0
    for node in proto.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax", "ReduceL2"):
            assert types[node.input[0]] == fp32, node.name
            checked += 1
        if node.op_type == "MatMul" and node.input[1] in {i.name for i in proto.graph.initializer}:
            weight_type = types[node.input[1]]
            assert weight_type in (fp16, fp32)
    assert checked >= 3 * 4  # 2 LN + softmax per block at least
    matmul_weights = [types[n.input[1]] for n in proto.graph.node if n.op_type == "MatMul"
                      and n.input[1] in {i.name for i in proto.graph.initializer}]  # fmt: skip
    assert matmul_weights.count(fp32) == 2  # only the anchors (image and patch head) stay FP32


# -- parity ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "limit"), [("fp32", 1e-4), ("fp16", 1e-2), ("u8", 1e-4)])
def test_onnx_runtime_matches_pytorch(exports, tiny_bundle, photos, key, limit):
    ref_cls, ref_pix = _torch_probs(tiny_bundle, photos)
    backend = OnnxBackend(exports[key], device="cpu")
    got_cls, got_pix = backend.run(
        preprocess_batch(list(photos), backend.config, backend.input_format)
    )
    assert got_cls.shape == ref_cls.shape and got_pix.shape == ref_pix.shape
    assert np.abs(got_cls - ref_cls).max() <= limit
    assert np.abs(got_pix - ref_pix).max() <= limit
    assert (got_cls.argmax(1) == ref_cls.argmax(1)).all()


def test_compare_with_torch_reports_the_differences(exports, tiny_bundle, photos):
    report = ex.compare_with_torch(tiny_bundle, exports["fp16"], photos)
    assert report["images"] == len(photos) and report["argmax_agree"] == len(photos)
    assert 0 < report["max_abs_class_prob"] <= 1e-2  # FP16 differs, a little


def test_int8_is_close_and_smaller(exports, tiny_bundle, photos):
    ref_cls, _ = _torch_probs(tiny_bundle, photos)
    backend = OnnxBackend(exports["int8"], device="cpu")
    got_cls, _ = backend.run(preprocess_batch(list(photos), backend.config))
    assert np.abs(got_cls - ref_cls).max() < 0.1
    assert exports["int8"].stat().st_size < exports["fp32"].stat().st_size


def test_int8_outputs_do_not_depend_on_the_other_images_of_a_batch(exports, photos):
    # dynamic INT8 quantisation scales activations over the whole input tensor
    backend = OnnxBackend(exports["int8"], device="cpu")
    batch = preprocess_batch(list(photos), backend.config)
    together_cls, together_px = backend.run(batch)
    for i in range(len(batch)):
        alone_cls, alone_px = backend.run(batch[i : i + 1])
        np.testing.assert_array_equal(together_cls[i], alone_cls[0])
        np.testing.assert_array_equal(together_px[i], alone_px[0])


def test_detector_on_onnx_gives_the_bundles_answers(exports, tiny_bundle, rgb_image, photos):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # untrained-model warning
        on_bundle = Detector(tiny_bundle, device="cpu")
        on_onnx = Detector(exports["fp32"], device="cpu")
        on_u8 = Detector(exports["u8"], device="cpu")
    assert on_onnx.backend.name == "onnxruntime" and on_onnx.config == on_bundle.config
    images = [rgb_image, *photos]
    for want, got, got_u8 in zip(on_bundle.detect_batch(images), on_onnx.detect_batch(images),
                                 on_u8.detect_batch(images), strict=True):  # fmt: skip
        assert got.label == want.label == got_u8.label
        np.testing.assert_allclose(list(got.scores.values()), list(want.scores.values()), atol=1e-4)
        np.testing.assert_allclose(got.heatmap, want.heatmap, atol=1e-4)
        assert (got.mask == want.mask).mean() > 0.999


def test_fixed_batch_graph_splits_and_pads(exports, tiny_bundle, photos):
    ref_cls, ref_pix = _torch_probs(tiny_bundle, photos[:5])
    backend = OnnxBackend(exports["b2"], device="cpu")
    assert backend.batch == 2
    got_cls, got_pix = backend.run(preprocess_batch(list(photos[:5]), backend.config))
    assert got_cls.shape[0] == 5
    assert np.abs(got_cls - ref_cls).max() <= 1e-4 and np.abs(got_pix - ref_pix).max() <= 1e-4


# -- providers and bad files ----------------------------------------------------------------------
def test_provider_order():
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cpu", available) == ["CPUExecutionProvider"]
    cache = str(tensorrt_cache_dir())
    assert choose_providers("auto", available) == [
        ("TensorrtExecutionProvider", {"device_id": 0, "trt_engine_cache_enable": True,
                                       "trt_engine_cache_path": cache,
                                       "trt_timing_cache_enable": True,
                                       "trt_timing_cache_path": cache}),
        ("CUDAExecutionProvider", {"device_id": 0}),
        "CPUExecutionProvider",
    ]  # fmt: skip
    assert choose_providers("cuda:1", available)[1] == ("CUDAExecutionProvider", {"device_id": 1})
    assert choose_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    from ipad_sdk.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="no GPU provider"):
        choose_providers("cuda", ["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="device"):
        choose_providers("tpu", available)


def test_silent_cpu_fallback_is_warned_about(exports):
    with pytest.warns(RuntimeWarning, match="could not start"):
        backend = OnnxBackend(
            exports["fp32"], providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
        )
    assert backend.providers == ["CPUExecutionProvider"] and backend.device == "cpu"


def test_tensorrt_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("IPAD_ORT_TRT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tensorrt_cache_dir() == tmp_path / "ipad-sdk" / "ort-tensorrt"
    monkeypatch.setenv("IPAD_ORT_TRT_CACHE", str(tmp_path / "here"))
    assert tensorrt_cache_dir() == tmp_path / "here"


def test_gpu_options_survive_a_tensorrt_provider_that_fails_to_load(exports, monkeypatch):
    """onnxruntime-gpu, when the TensorRT provider cannot load, retries with CUDA + CPU and drops
    their options (onnxruntime#17394): cuda:1 would silently run on device 0."""
    trt, cuda, cpu = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"

    class RetryingSession:  # the real CPU session, reporting what onnxruntime-gpu would
        def __init__(self, name, options, providers):
            self.session = ort.InferenceSession(name, options, providers=[cpu])
            names = [p if isinstance(p, str) else p[0] for p in providers]
            asked = {p[0]: p[1] for p in providers if not isinstance(p, str)}
            self.providers = [p for p in names if p != trt]
            dropped = trt in names
            self.options = {p: {"device_id": "0" if dropped else str(asked[p]["device_id"])}
                            for p in self.providers if p != cpu}  # fmt: skip

        def get_providers(self):
            return self.providers

        def get_provider_options(self):
            return self.options

        def __getattr__(self, name):
            return getattr(self.session, name)

    fake = SimpleNamespace(
        InferenceSession=RetryingSession, SessionOptions=ort.SessionOptions,
        GraphOptimizationLevel=ort.GraphOptimizationLevel,
        get_available_providers=lambda: [trt, cuda, cpu],
    )  # fmt: skip
    monkeypatch.setattr(onnx_backend, "_import_ort", lambda: fake)
    with pytest.warns(RuntimeWarning, match="could not start \\['TensorrtExecutionProvider'\\]"):
        backend = OnnxBackend(exports["fp32"], device="cuda:1")
    assert backend.providers == [cuda, cpu] and backend._device_id == 1


def test_threads_option(exports):
    backend = OnnxBackend(exports["fp32"], device="cpu", threads=1)
    assert backend.session.get_session_options().intra_op_num_threads == 1


def test_corrupt_and_foreign_onnx_files_give_clear_errors(exports, tmp_path):
    data = exports["fp32"].read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match="truncated.onnx: ONNX Runtime cannot load"):
        Detector(truncated)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all" * 10)
    with pytest.raises(ModelError, match="garbage.onnx"):
        Detector(garbage)
    # a valid ONNX model that is not ours
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(onnx.helper.make_model(graph), str(foreign))
    with pytest.raises(ModelError, match="foreign.onnx: not an ipad-sdk ipad-onnx file"):
        Detector(foreign)


def test_metadata_that_disagrees_with_the_graph_is_refused(exports, tmp_path):
    proto = onnx.load(str(exports["fp32"]))
    for entry in proto.metadata_props:
        if entry.key == "input_format":
            entry.value = "uint8"
    lying = tmp_path / "lying.onnx"
    onnx.save(proto, str(lying))
    with pytest.raises(ModelError, match="lying.onnx: input is tensor\\(float\\)"):
        OnnxBackend(lying, device="cpu")
    for entry in proto.metadata_props:
        if entry.key == "format_version":
            entry.value = "99"
    newer = tmp_path / "newer.onnx"
    onnx.save(proto, str(newer))
    with pytest.raises(ModelError, match="format version '99'"):
        OnnxBackend(newer, device="cpu")


@pytest.mark.parametrize(
    ("key", "claimed", "weights"),
    [("fp16", "fp32", "fp16"), ("fp32", "fp16", "fp32"), ("int8", "fp32", "int8"),
     ("u8", "int8", "fp32")],
)  # fmt: skip
def test_a_precision_the_weights_contradict_is_refused_at_load(
    exports, tmp_path, key, claimed, weights
):
    proto = onnx.load(str(exports[key]))
    for entry in proto.metadata_props:
        if entry.key == "precision":
            entry.value = claimed
    relabelled = tmp_path / f"{key}-as-{claimed}.onnx"
    onnx.save(proto, str(relabelled))
    with pytest.raises(
        ModelError,
        match=f"{key}-as-{claimed}.onnx: metadata 'precision' is '{claimed}', but the graph's "
        f"weights are {weights}",
    ):
        OnnxBackend(relabelled, device="cpu")


@pytest.mark.parametrize("key", ["fp32", "fp16", "u8", "b2", "int8"])
def test_graph_precision_of_every_export(exports, key):
    precision = {p.key: p.value for p in onnx.load(str(exports[key])).metadata_props}["precision"]
    assert graph_precision(str(exports[key])) == precision


def test_class_names_that_do_not_match_the_graph_are_refused_at_load(exports, tmp_path):
    proto = onnx.load(str(exports["fp32"]))
    for entry in proto.metadata_props:
        if entry.key == "ipad_config":
            config = json.loads(entry.value)
            entry.value = json.dumps(config | {"classes": ["clean", "ghosting", "flare"]})
    three = tmp_path / "three.onnx"
    onnx.save(proto, str(three))
    with pytest.raises(ModelError, match="three.onnx: output 'class_probs' has 4 classes"):
        OnnxBackend(three, device="cpu")


def test_export_refuses_old_opsets(tiny_bundle, tmp_path):
    with pytest.raises(ValueError, match="opset"):
        ex.export_onnx(tiny_bundle, tmp_path / "m.onnx", opset=13)


def test_export_script_end_to_end(tiny_bundle, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(photos / "a.png")
    (photos / "notes.txt").write_text("not an image")
    code = ex.main([str(tiny_bundle), "--out", str(tmp_path / "out"), "--fp16", "--int8",
                    "--verify-images", str(photos)])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "out" / "tiny.verify.json").read_text())
    assert set(report) == {"fp32", "fp16", "int8"}
    assert all(r["passed"] for r in report.values())
    assert report["fp32"]["images"] == 3  # 2 random + 1 photo
    assert "fp16" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "tiny.fp16.onnx", "tiny.int8.onnx", "tiny.onnx", "tiny.verify.json"
    ]  # fmt: skip


def test_ipad_info_reads_onnx_metadata(exports, capsys):
    from ipad_sdk.cli import main

    assert main(["info", str(exports["fp16"])]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["runtime"] == "onnxruntime" and info["precision"] == "fp16"
    assert info["config"]["image_size"] == 64 and info["format"] == "ipad-onnx"
