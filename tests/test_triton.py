"""Triton Inference Server, for real: the PyTriton server (``python -m ipad_sdk.integrations.triton
serve``) and the repository written by ``export/triton_repo.py`` served by the ``tritonserver``
binary of the nvidia-pytriton wheel, both started here on loopback and queried over HTTP and gRPC
with encoded images; records, scores and mask PNGs must equal the local Detector's (via the local
``ipad detect`` code), a bad image is an error record in its batch, and the servers stop with no
process left.

PyTriton pins numpy<2, so servers and clients run in their own venv (``IPAD_TRITON_PYTHON``, default
``.venv-triton/bin/python``); those tests skip without it. The wheel ships only Triton's Python
backend, so the repository's network model (``onnxruntime_onnx``) is served by a stand-in: a
Python-backend model that runs the same ``.onnx`` on ONNX Runtime with the generated config's
inputs, outputs and batching. The Python-backend model (``<name>_detect``) is served as written.
Repository structure is checked with Triton's own protobuf schema (``model_config_pb2``) for an
ONNX model and for a TensorRT plan (a real TensorRT-for-RTX engine whose sidecar is relabelled as
full TensorRT, since Triton refuses RTX plans: the structure is what is checked there).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ipad_sdk import Detector, ModelError
from ipad_sdk.batch import PROVENANCE_KEYS, run_batch
from ipad_sdk.discover import discover
from ipad_sdk.integrations.triton import detect_bytes, encode, python_library_env
from ipad_sdk.metadata import read_bundle_config

ROOT = Path(__file__).resolve().parents[1]
TRITON_PYTHON = Path(os.environ.get("IPAD_TRITON_PYTHON", ROOT / ".venv-triton/bin/python"))
BUILD_HINT = (
    "python3 -m venv .venv-triton && .venv-triton/bin/pip install nvidia-pytriton onnxruntime -e ."
)
needs_triton = pytest.mark.skipif(
    not TRITON_PYTHON.exists(),
    reason=f"no Triton venv at {TRITON_PYTHON} (set IPAD_TRITON_PYTHON or run: {BUILD_HINT})",
)

#: A network model for the wheel's tritonserver, which has no onnxruntime backend: the same .onnx
#: on ONNX Runtime in a Python-backend model (one thread, like the local Detector below).
STAND_IN = """
from pathlib import Path
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        path = Path(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        responses = []
        for request in requests:
            images = pb_utils.get_input_tensor_by_name(request, "images").as_numpy()
            outs = self.session.run(["class_probs", "pixel_probs"], {"images": images})
            tensors = [pb_utils.Tensor(n, o) for n, o in zip(["class_probs", "pixel_probs"], outs)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
"""

#: Run in the Triton venv: where the wheel's server, Python backend, stub and libraries are.
WHEEL_PATHS = """
import json, sys
from pytriton.utils.distribution import get_libs_path, get_root_module_path, get_stub_path
from ipad_sdk.integrations.triton import python_library_env
server = get_root_module_path() / "tritonserver"
print(json.dumps({"server": str(server), "libs": str(get_libs_path()),
                  "stub": str(get_stub_path(f"{sys.version_info[0]}.{sys.version_info[1]}")),
                  "libpython": python_library_env({}).get("LD_LIBRARY_PATH", "")}))
"""

#: Run in the Triton venv: each config.pbtxt parsed with Triton's schema, as a dict.
PARSE_CONFIGS = """
import json, sys
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2
out = {}
for path in sys.argv[1:]:
    config = text_format.Parse(open(path).read(), model_config_pb2.ModelConfig())
    out[path] = json_format.MessageToDict(config, preserving_proto_field_name=True)
print(json.dumps(out))
"""


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_onnx(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxslim")
    from ipad_sdk.export.onnx import export_onnx

    return export_onnx(tiny_bundle, tmp_path_factory.mktemp("triton_onnx") / "tiny.onnx")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PNG, JPEG, grayscale, a BMP that ends in NUL bytes, an empty file and a corrupt one."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(root / "a.png")
    Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).save(root / "b.jpg")
    Image.fromarray(rng.integers(0, 256, (5, 3, 3), dtype=np.uint8)).save(root / "c.bmp")
    Image.fromarray(rng.integers(0, 256, (33, 20), dtype=np.uint8)).save(root / "gray.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage, not an image")
    (root / "empty.png").write_bytes(b"")
    assert (root / "c.bmp").read_bytes().endswith(b"\x00")  # numpy's S dtype would drop it
    return root


@pytest.fixture(scope="module")
def local(tiny_onnx: Path, photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ipad detect --save-masks`` on the photos with the local Detector (ONNX Runtime)."""
    out = tmp_path_factory.mktemp("local")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrained-model warning
        detector = Detector(tiny_onnx, device="cpu", threads=1)
    run_batch(detector, discover([photos]), out, "jsonl", save_masks=True)
    return out


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _triton_env() -> dict[str, str]:
    """The environment of every process in the Triton venv: this checkout's ipad_sdk first."""
    return os.environ | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


class Server:
    """A server process (own process group) with its HTTP and gRPC addresses."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, ports: list[int]) -> None:
        self.http, self.grpc = (f"127.0.0.1:{p}" for p in ports)
        self.log = log
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )

    def ready(self) -> bool:
        for path in ("health/ready", "models/ipad_detect/ready"):
            try:
                with urllib.request.urlopen(f"http://{self.http}/v2/{path}", timeout=2) as r:
                    if r.status != 200:
                        return False
            except (urllib.error.URLError, OSError):
                return False
        return True

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"server did not come up; log:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        """SIGTERM, then check that the whole process group (server, stubs) is gone."""
        group = self.proc.pid  # start_new_session: the group id is the leader's pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(group):
            os.killpg(group, signal.SIGKILL)
            pytest.fail(f"processes of the server's group {group} outlived it (killed)")


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def pytriton_server(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory):
    ports = _free_ports(2)
    argv = [str(TRITON_PYTHON), "-m", "ipad_sdk.integrations.triton", "serve", "--model",
            str(tiny_onnx), "--http-port", str(ports[0]), "--grpc-port", str(ports[1]),
            "--max-batch", "4", "--threads", "1"]  # fmt: skip
    server = Server(argv, _triton_env(), tmp_path_factory.mktemp("pytriton") / "log", ports)
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def repo_server(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory):
    """The repository written by triton_repo, served by the wheel's tritonserver."""
    from ipad_sdk.export.triton_repo import write_repository

    tmp = tmp_path_factory.mktemp("repo_server")
    repo = tmp / "repo"
    write_repository(tiny_onnx, repo, max_batch=4, python_instances=1)
    config = repo / "ipad" / "config.pbtxt"
    text = config.read_text()
    assert 'platform: "onnxruntime_onnx"' in text
    config.write_text(text.replace('platform: "onnxruntime_onnx"', 'backend: "python"'))
    (repo / "ipad" / "1" / "model.py").write_text(STAND_IN)
    wheel = json.loads(_run_triton_python(["-c", WHEEL_PATHS]))
    backends = tmp / "backends"
    shutil.copytree(Path(wheel["server"], "backends"), backends)
    shutil.copy(wheel["stub"], backends / "python")
    env = _triton_env() | {
        "PATH": f"{TRITON_PYTHON.parent}{os.pathsep}{os.environ['PATH']}",  # the stub's Python
        "LD_LIBRARY_PATH": os.pathsep.join(p for p in (wheel["libpython"], wheel["libs"]) if p),
    }
    ports = _free_ports(2)
    argv = [str(Path(wheel["server"], "bin", "tritonserver")), "--model-repository", str(repo),
            "--backend-directory", str(backends), "--http-address", "127.0.0.1",
            "--http-port", str(ports[0]), "--grpc-address", "127.0.0.1",
            "--grpc-port", str(ports[1]), "--allow-metrics", "false",
            "--exit-timeout-secs", "10"]  # fmt: skip
    server = Server(argv, env, tmp / "log", ports)
    server.wait_ready()
    yield server
    server.stop()


def _run_triton_python(args: list[str]) -> str:
    done = subprocess.run([str(TRITON_PYTHON), *args], env=_triton_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    # 1: some images failed (query); a crash also exits with 1, but with a traceback
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stdout


def _query(server: Server, protocol: str, photos: Path, out: Path) -> list[dict]:
    url = server.http if protocol == "http" else server.grpc
    _run_triton_python(["-m", "ipad_sdk.integrations.triton", "query", str(photos), "--url", url,
                        "--protocol", protocol, "--out", str(out), "--save-masks",
                        "--batch-size", "3"])  # fmt: skip
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _assert_same_as_local(local: Path, remote: Path, got: list[dict]) -> None:
    want = [json.loads(x) for x in (local / "results.jsonl").read_text().splitlines()]
    assert [r["source"] for r in got] == [r["source"] for r in want]
    for a, b in zip(want, got, strict=True):
        # the CLI's records also state their provenance; the Triton client does not yet (issue 19)
        assert a.keys() - set(PROVENANCE_KEYS) == b.keys(), a["source"]
        if "error" in a:
            assert (b["error_type"], b["error"]) == (a["error_type"], a["error"])
            continue
        assert (b["label"], b["width"], b["height"], b["mask"]) == (
            a["label"], a["width"], a["height"], a["mask"])  # fmt: skip
        assert b["artifact_score"] == pytest.approx(a["artifact_score"], abs=1e-6)
        for k, v in a["scores"].items():
            assert b["scores"][k] == pytest.approx(v, abs=1e-6)
        assert b["mask_fraction"] == pytest.approx(a["mask_fraction"], abs=1e-9)
        assert (remote / b["mask"]).read_bytes() == (local / a["mask"]).read_bytes()
    errors = {Path(r["source"]).name: r["error"] for r in got if "error" in r}
    assert set(errors) == {"broken.png", "empty.png"}
    assert "cannot read image header" in errors["broken.png"]
    assert "file is empty" in errors["empty.png"]


# -- served for real ------------------------------------------------------------------------------
@needs_triton
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_pytriton_server_matches_local_detector(pytriton_server, local, photos, tmp_path, protocol):
    got = _query(pytriton_server, protocol, photos, tmp_path)
    _assert_same_as_local(local, tmp_path, got)
    assert pytriton_server.ready()  # the corrupt image in the first batch hurt nothing else


@needs_triton
def test_ipad_serve_is_the_pytriton_server(tiny_onnx, local, photos, tmp_path):
    """``ipad serve`` (the console script of the Triton venv) serves like the module's command and
    stops on SIGTERM with its whole process group."""
    ports = _free_ports(2)
    argv = [str(TRITON_PYTHON.parent / "ipad"), "serve", "--model", str(tiny_onnx),
            "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--max-batch", "4",
            "--threads", "1"]  # fmt: skip
    server = Server(argv, _triton_env(), tmp_path / "log", ports)
    try:
        server.wait_ready()
        got = _query(server, "http", photos, tmp_path / "out")
    finally:
        server.stop()
    _assert_same_as_local(local, tmp_path / "out", got)


@needs_triton
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_repository_served_by_tritonserver(repo_server, local, photos, tmp_path, protocol):
    got = _query(repo_server, protocol, photos, tmp_path)
    _assert_same_as_local(local, tmp_path, got)
    assert repo_server.ready()


# -- repository structure -------------------------------------------------------------------------
def _tensor(name: str, data_type: str, dims: list[int]) -> dict:
    return {"name": name, "data_type": data_type, "dims": [str(d) for d in dims]}


def _network_config(config, platform: str, max_batch: int, preferred: list[int], kind: str) -> dict:
    size, classes = config.image_size, config.num_classes
    return {
        "name": "ipad", "platform": platform, "max_batch_size": max_batch,
        "input": [_tensor("images", "TYPE_FP32", [3, size, size])],
        "output": [_tensor("class_probs", "TYPE_FP32", [classes]),
                   _tensor("pixel_probs", "TYPE_FP32", [classes, size, size])],
        "dynamic_batching": {"preferred_batch_size": preferred,
                             "max_queue_delay_microseconds": "2000"},
        "instance_group": [{"count": 1, "kind": kind}],
    }  # fmt: skip


def _detect_config(max_batch: int, instances: int) -> dict:
    return {
        "name": "ipad_detect", "backend": "python", "max_batch_size": max_batch,
        "input": [_tensor("image", "TYPE_STRING", [1])],
        "output": [_tensor("result", "TYPE_STRING", [1]), _tensor("mask_png", "TYPE_STRING", [1])],
        "dynamic_batching": {"max_queue_delay_microseconds": "2000"},
        "instance_group": [{"count": instances, "kind": "KIND_CPU"}],
        "parameters": {"core_model": {"string_value": "ipad"},
                       "core_max_batch": {"string_value": str(max_batch)}},
    }  # fmt: skip


@pytest.fixture(scope="module")
def engines(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real engine (TensorRT for RTX, SM86, profile 1:4:8), and a copy whose sidecar is
    relabelled as a full TensorRT build: Triton refuses RTX plans; the structure is tested."""
    pytest.importorskip("tensorrt_rtx")
    pytest.importorskip("onnxslim")
    from ipad_sdk.export.onnx import export_onnx
    from ipad_sdk.export.trt import build_engine

    tmp = tmp_path_factory.mktemp("triton_plan")
    fp16 = export_onnx(tiny_bundle, tmp / "tiny.fp16.onnx", fp16=True)
    rtx = tmp / "rtx.plan"
    build_engine(fp16, rtx, sm="86", batch=(1, 4, 8), progress=False)
    full = tmp / "full.plan"
    shutil.copy(rtx, full)
    sidecar = json.loads(Path(f"{rtx}.json").read_text())
    sidecar["tensorrt"] |= {"flavour": "tensorrt", "version": "10.99.0", "target_sm": "local"}
    Path(f"{full}.json").write_text(json.dumps(sidecar))
    return {"rtx": rtx, "full": full}


@needs_triton
def test_repository_structure(tiny_onnx, engines, tiny_bundle, tmp_path):
    from ipad_sdk.export.triton_repo import BLS_SOURCE, write_repository
    from ipad_sdk.integrations.triton import read_model_metadata

    config = read_bundle_config(tiny_bundle)
    plan = engines["full"]
    write_repository(tiny_onnx, tmp_path / "onnx", max_batch=4, python_instances=1)
    write_repository(plan, tmp_path / "plan")
    write_repository(plan, tmp_path / "plan2", max_batch=2, python_instances=3)
    want = {
        "onnx": (_network_config(config, "onnxruntime_onnx", 4, [2, 4], "KIND_CPU"),
                 _detect_config(4, 1), tiny_onnx),
        "plan": (_network_config(config, "tensorrt_plan", 8, [4, 8], "KIND_GPU"),
                 _detect_config(8, 2), plan),
        "plan2": (_network_config(config, "tensorrt_plan", 2, [2], "KIND_GPU"),
                  _detect_config(2, 3), plan),
    }  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(want)  # no temporary folders
    paths = [str(tmp_path / r / m / "config.pbtxt") for r in want for m in ("ipad", "ipad_detect")]
    parsed = json.loads(_run_triton_python(["-c", PARSE_CONFIGS, *paths]))
    for repo, (network, detect, model) in want.items():
        root = tmp_path / repo
        assert parsed[str(root / "ipad/config.pbtxt")] == network, repo
        assert parsed[str(root / "ipad_detect/config.pbtxt")] == detect, repo
        assert (root / f"ipad/1/model{model.suffix}").read_bytes() == model.read_bytes()
        assert (root / "ipad_detect/1/model.py").read_bytes() == BLS_SOURCE.read_bytes()
        assert read_model_metadata(root / "ipad_detect/1/ipad_model.json") == (config, "float")
        assert sorted(p.name for p in root.rglob("*") if p.is_file()) == sorted(
            ["config.pbtxt", "config.pbtxt", f"model{model.suffix}", "model.py", "ipad_model.json"]
        )


# -- checks and errors (no Triton needed) ---------------------------------------------------------
def test_bad_models_are_refused_naming_the_file(tiny_onnx, tiny_bundle, tmp_path):
    import onnx

    from ipad_sdk.export.triton_repo import write_repository

    out = tmp_path / "repo"
    cases = {"missing.onnx": "missing.onnx: model file not found"}
    (tmp_path / "bad.onnx").write_bytes(b"garbage, not protobuf")
    cases["bad.onnx"] = "bad.onnx: not a readable ONNX file"
    proto = onnx.load(str(tiny_onnx))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    onnx.save(proto, str(tmp_path / "fixed.onnx"))
    cases["fixed.onnx"] = "fixed.onnx: the batch is fixed at 2"
    proto = onnx.load(str(tiny_onnx))
    for entry in proto.metadata_props:
        if entry.key == "input_format":
            entry.value = "uint8"
    onnx.save(proto, str(tmp_path / "u8meta.onnx"))
    cases["u8meta.onnx"] = r"u8meta.onnx: input 'images' is TYPE_FP32 \[3, 64, 64\], .*UINT8"
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "foreign.onnx"))
    proto = onnx.load(str(tiny_onnx))
    onnx.external_data_helper.set_external_data(proto.graph.initializer[0], "weights.bin")
    onnx.save(proto, str(tmp_path / "external.onnx"))
    cases["external.onnx"] = "external.onnx: weights in external files"
    cases["foreign.onnx"] = "foreign.onnx: not an ipad-sdk ipad-onnx file"
    for name, message in cases.items():
        with pytest.raises(ModelError, match=message):
            write_repository(tmp_path / name, out)
    with pytest.raises(ModelError, match=r"tiny.safetensors: expected an .onnx .* '.safetensors'"):
        write_repository(tiny_bundle, out)
    assert not out.exists()


def test_bad_plans_and_options_are_refused(engines, tmp_path):
    from ipad_sdk.export.triton_repo import main, write_repository

    out = tmp_path / "repo"
    with pytest.raises(ModelError, match=r"rtx.plan: built with tensorrt-rtx .*--flavour full"):
        write_repository(engines["rtx"], out)
    with pytest.raises(ValueError, match="full.plan: a TensorRT plan runs on a GPU only"):
        write_repository(engines["full"], out, kind="cpu")
    with pytest.raises(ValueError, match=r"--max-batch 9 must be 1..8 \(the engine profile's"):
        write_repository(engines["full"], out, max_batch=9)
    garbled = tmp_path / "garbled.plan"
    shutil.copy(engines["full"], garbled)
    Path(f"{garbled}.json").write_text("{not json")
    with pytest.raises(ModelError, match="garbled.plan.json: engine metadata is not valid JSON"):
        write_repository(garbled, out)
    lonely = tmp_path / "lonely.plan"
    shutil.copy(engines["full"], lonely)
    with pytest.raises(ModelError, match="sidecar .*lonely.plan.json is missing"):
        write_repository(lonely, out)
    assert not out.exists()
    assert main([str(engines["rtx"]), "--out", str(out)]) == 2


def test_writing_is_atomic_and_refuses_a_non_empty_folder(tiny_onnx, tmp_path, monkeypatch, capsys):
    from ipad_sdk.export import triton_repo

    out = tmp_path / "repo"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert triton_repo.main([str(tiny_onnx), "--out", str(out)]) == 2
    assert "repo: not empty; pass --force to replace it" in capsys.readouterr().out
    assert (out / "keep.txt").read_text() == "mine"

    def broken_copy(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(triton_repo.shutil, "copyfile", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        triton_repo.write_repository(tiny_onnx, out, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no temporary folder left
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    monkeypatch.undo()
    assert triton_repo.main([str(tiny_onnx), "--out", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ipad", "ipad_detect"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_ipad_export_triton_repo(tiny_onnx, tmp_path, capsys):
    from ipad_sdk.cli import main

    out = tmp_path / "repo"
    assert main(["export", "triton-repo", str(tiny_onnx), "--out", str(out), "--name", "m",
                 "--max-batch", "4"]) == 0  # fmt: skip
    assert f"wrote {out}: m (onnxruntime_onnx) and m_detect" in capsys.readouterr().out
    assert "max_batch_size: 4" in (out / "m" / "config.pbtxt").read_text()
    assert (out / "m" / "1" / "model.onnx").read_bytes() == tiny_onnx.read_bytes()
    assert main(["export", "triton-repo", str(tiny_onnx), "--out", str(out)]) == 2
    assert "ipad export: error: " in capsys.readouterr().err
    assert main(["export", "triton-repo", str(tiny_onnx), "--out", str(out), "--name", "a b",
                 "--force"]) == 2  # fmt: skip
    assert "--name must be letters, digits" in capsys.readouterr().err


def test_detect_bytes_is_the_detector(detector, tiny_bundle):
    """The code both servers run (decode, preprocess, network, Result, encoding), in-process."""
    rng = np.random.default_rng(1)
    blobs = []
    for shape in [(40, 70, 3), (64, 64, 3), (9, 130, 3)]:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    blobs.insert(1, b"not an image at all")
    backend = detector.backend
    items = detect_bytes(blobs, detector.config, backend.input_format, backend.run, max_batch=2)
    assert [item.ok for item in items] == [True, False, True, True]
    assert str(items[1].error) == "<19 bytes>: not an image (format not recognised)"
    want = detector.detect_batch([blobs[0], *blobs[2:]], batch_size=1)
    columns = encode(items)
    assert columns["result"].shape == columns["mask_png"].shape == (4, 1)
    assert columns["mask_png"][1, 0] == b"" and json.loads(columns["result"][1, 0]) == {
        "source": None, "error_type": "InputError", "error": str(items[1].error)}  # fmt: skip
    for i, ref in zip([0, 2, 3], want, strict=True):
        record = json.loads(columns["result"][i, 0])
        assert record["label"] == ref.label
        for k, v in ref.scores.items():
            assert record["scores"][k] == pytest.approx(v, abs=1e-6)
        mask = np.asarray(Image.open(io.BytesIO(columns["mask_png"][i, 0])))
        np.testing.assert_array_equal(mask, ref.mask.astype(np.uint8) * 255)


def test_python_library_env_puts_this_libpython_first(monkeypatch, tmp_path):
    import sysconfig

    (tmp_path / "libpython3.11.so.1.0").write_bytes(b"")
    monkeypatch.setattr(sysconfig, "get_config_var", lambda key: str(tmp_path))
    env = python_library_env({"LD_LIBRARY_PATH": "/other", "X": "1"})
    assert env == {"LD_LIBRARY_PATH": f"{tmp_path}{os.pathsep}/other", "X": "1"}
    assert python_library_env({})["LD_LIBRARY_PATH"] == str(tmp_path)
    monkeypatch.setattr(sysconfig, "get_config_var", lambda key: str(tmp_path / "none"))
    assert python_library_env({"X": "1"}) == {"X": "1"}
