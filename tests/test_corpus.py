"""The bad-input corpus (benchmarks/corpus.py): every case gives a clear SDK error naming the
input and matching the case's pattern, or a correct result; never another exception, a hang or a
silent wrong answer. Model cases damage files the repository's own exporters write."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageFile

from benchmarks import corpus as mc
from ipad_sdk.errors import InputError
from ipad_sdk.io import load_image

#: Cases that show a real SDK bug today: strict xfails, so a fix makes them fail until removed.
KNOWN_BUGS = {
    "truncated-jpeg-half-scan-plus-eoi": (
        "KNOWN LIMITATION: a JPEG whose scan data ends early but has an EOI marker is accepted; "
        "libjpeg "
        "fills the missing blocks with gray (128) and only warns, so load_image returns made-up "
        "pixels instead of an InputError"
    ),
    "video-mkv-unknown-size-truncated": (
        "KNOWN LIMITATION: a Matroska/WebM segment of unknown size (a live recording) declares "
        "neither its frames nor its size: a cut after a whole frame ends like the real end"
    ),
    "video-webm-zeroed-middle": (
        "KNOWN LIMITATION: FFmpeg's Matroska demuxer resyncs past damaged bytes and only logs it; "
        "the frames after the damage up to the next cluster are lost without an error (and VP8/VP9 "
        "decoders can't detect damage: WebM has no checksums to tell)"
    ),
}


def _available(case: mc.Case) -> str:
    """Why ``case`` cannot run here ('' when it can)."""
    if missing := mc.missing_modules(case):
        return f"needs {', '.join(missing)}"
    if case.needs == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "needs a CUDA device"
    return ""


def _params(kinds: tuple[str, ...]) -> list:
    params = []
    for case in mc.all_cases():
        if case.kind not in kinds:
            continue
        marks = []
        if case.name in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[case.name]))
        if reason := _available(case):
            marks.append(pytest.mark.skip(reason=reason))
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


@pytest.fixture(scope="session")
def image_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    mc.build_cases([*mc.image_cases(), *mc.video_cases(), *mc.memory_cases()], root)
    return root


@pytest.fixture(scope="session")
def model_corpus(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model and metadata cases built from the tiny bundle, its ONNX export and (if possible) an
    SM86 plan."""
    pytest.importorskip("onnxslim")
    sources = mc.sources_from_bundle(tiny_bundle, tmp_path_factory.mktemp("sources"))
    root = tmp_path_factory.mktemp("model_corpus")
    mc.build_cases([*mc.model_cases(), *mc.metadata_cases()], root, sources)
    return root


def _check(case: mc.Case, obj, expected) -> None:
    outcome = mc.evaluate(case, obj, expected)
    assert not outcome.wrong, f"{outcome.status}: {outcome.detail} ({outcome.seconds:.2f} s)"
    assert outcome.status == ("clear error" if case.expect == "error" else "correct result")


@pytest.mark.parametrize("case", _params(("image",)))
def test_image_case(case: mc.Case, image_corpus: Path):
    _check(case, *mc.case_input(case, image_corpus))


@pytest.mark.parametrize("case", _params(("video",)))
def test_video_case(case: mc.Case, image_corpus: Path):
    _check(case, *mc.case_input(case, image_corpus))


@pytest.mark.parametrize("case", _params(("memory",)))
def test_memory_case(case: mc.Case):
    _check(case, *case.make())


@pytest.mark.parametrize("case", _params(("model",)))
def test_model_case(case: mc.Case, model_corpus: Path):
    _check(case, *mc.case_input(case, model_corpus))


@pytest.mark.parametrize("case", mc.output_cases(), ids=lambda c: c.name)
def test_output_case(case: mc.OutputCase, tiny_bundle: Path, tmp_path: Path):
    """``ipad detect`` ends every output case in a clear outcome (see ``mc.OUTPUT_EXITS``)."""
    outcome = mc.run_output_case(case, tmp_path, tiny_bundle)
    assert not outcome.wrong, f"{outcome.status}: {outcome.detail}"


def test_the_output_judge_flags_wrong_outcomes(tmp_path: Path):
    """A traceback, a wrong exit, a left temporary file and an unnamed path are all caught."""
    out = tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    stop = mc.OutputCase("t", "stop")
    message = f"ipad detect: error: {out}: cannot write output: File too large"
    assert mc._output_problem(stop, 2, message, out) == ""
    assert mc._output_problem(stop, 2, "Traceback (most recent call last):", out)
    assert mc._output_problem(stop, 1, message, out).startswith("exit 1")
    assert mc._output_problem(stop, 2, "error: cannot write", out).startswith("the mes")
    (out / "masks" / ".a.png.png.0123.tmp").write_bytes(b"half")
    assert mc._output_problem(stop, 2, message, out).startswith("temporary files")


def test_the_evaluator_flags_wrong_outcomes():
    """The judge itself: a wrong exception type, a missing name and a wrong pixel are caught."""
    ok = mc.Case("t", "t", "ok", kind="memory")
    err = mc.Case("t", "t", "error", "NaN", kind="memory")
    assert mc.evaluate(ok, np.zeros((2, 2, 3), np.uint8), np.ones((2, 2, 3), np.uint8)).wrong
    assert mc.evaluate(err, np.zeros((2, 2, 3), np.uint8), None).status.startswith("WRONG: no")
    assert mc.evaluate(err, np.zeros((2, 2, 3), np.int64), None).status.startswith("WRONG: mes")
    assert mc.evaluate(err, np.full((2, 2), np.nan), None).status == "clear error"


@pytest.mark.parametrize(
    "case", [c for c in mc.image_cases() if c.cls == "decompression-bomb"], ids=lambda c: c.name
)
def test_bombs_are_refused_from_the_header(case: mc.Case, image_corpus: Path, monkeypatch):
    """Refused before any pixel is decoded (``load`` would allocate gigabytes), and fast."""

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    path = image_corpus / case.file
    for obj in (path, path.read_bytes()):
        start = time.perf_counter()
        with pytest.raises(InputError, match="decompression bomb"):
            load_image(obj)
        assert time.perf_counter() - start < 0.5


def test_manifest(image_corpus: Path):
    manifest = json.loads((image_corpus / "manifest.json").read_text())
    entries = manifest["cases"]
    names = [e["name"] for e in entries]
    built = [c for c in (*mc.image_cases(), *mc.video_cases()) if not mc.missing_modules(c)]
    assert len(names) == len(set(names)) == len(built) + len(mc.memory_cases())
    for entry in entries:
        assert {"name", "class", "expect", "match", "note"} <= set(entry)
        assert entry["expect"] in ("error", "ok")
        assert bool(entry["match"]) == (entry["expect"] == "error")
    assert len(manifest["classes"]) >= 20
    assert all(entry.get("expected") for entry in entries if entry["class"] == "exif-orientation")


def test_make_corpus_script(tmp_path: Path):
    script = Path(mc.__file__)
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path), "--images-only"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "cases in" in done.stdout
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (tmp_path / manifest["cases"][0]["file"]).is_file()


@pytest.mark.parametrize("hw", [(1, 1), (1, 100_000), (100_000, 1), (3, 5)])
def test_detect_on_extreme_sizes(detector, hw):
    """The detector itself (not only load_image) on the extreme but valid sizes."""
    image = mc.pattern(*hw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = detector.detect(image)
    assert mc.check_result(result, hw) == ""
