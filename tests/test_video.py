"""Video input (extra ``video``, PyAV): videos written here, sampled by ``ipad detect``."""

from __future__ import annotations

import csv
import json
import math
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ipad_sdk import Detector
from ipad_sdk.batch import discover, run_batch
from ipad_sdk.cli import main
from ipad_sdk.errors import BackendUnavailable, InputError
from ipad_sdk.video import iter_frames

av = pytest.importorskip("av", reason="video tests need PyAV: pip install 'ipad-sdk[video]'")

FRAMES, WIDTH, HEIGHT = 8, 64, 48
CODECS = [c for c in ("mpeg4", "libx264") if c in av.codecs_available]


def write_video(path: Path, codec: str, frames: int = FRAMES) -> Path:
    """``frames`` frames of noise (large packets, so a cut lands mid-stream) as MP4 with the
    index in front (``faststart``: the declared frame count survives truncation)."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream(codec, rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(frames):
            rgb = np.random.default_rng(i).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return path


def stream_times(path: Path) -> list[float]:
    """Presentation times of the video's packets, sorted: pts * time_base, read by the demuxer."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.pts is not None]
        return [float(t * stream.time_base) for t in sorted(pts)]


def detect(paths: list[str], tiny_bundle: Path, capsys, *flags: str) -> tuple[int, list, str]:
    """``ipad detect`` on ``paths``: exit code, the records on stdout, stderr."""
    code = main(["detect", *paths, "-m", str(tiny_bundle), "--device", "cpu", "-q", *flags])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("stride", [1, 3])
def test_one_record_per_sampled_frame_with_its_timestamp(
    codec, stride, tiny_bundle, tmp_path, capsys
):
    video = write_video(tmp_path / "clip.mp4", codec)
    out = tmp_path / "out"
    code, _, _ = detect([str(video)], tiny_bundle, capsys, "--frame-stride", str(stride),
                     "-o", str(out), "--save-masks")  # fmt: skip
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert code == 0
    assert len(records) == math.ceil(FRAMES / stride)
    indices = list(range(0, FRAMES, stride))
    assert [r["frame"] for r in records] == indices
    assert [r["source"] for r in records] == [f"{video}#frame={i}" for i in indices]
    times = [r["timestamp"] for r in records]
    assert times == sorted(set(times))
    assert times == stream_times(video)[::stride]
    assert all(r["video"] == str(video) and "error" not in r for r in records)
    masks = sorted(p.name for p in (out / "masks").iterdir())
    assert masks == sorted(f"clip.mp4#frame={i}.png" for i in indices)


def test_a_truncated_video_gives_its_decoded_frames_then_one_error(tiny_bundle, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4", CODECS[0])
    data = video.read_bytes()
    video.write_bytes(data[: len(data) * 2 // 3])
    code, records, _ = detect([str(video)], tiny_bundle, capsys)
    frames, (error,) = records[:-1], records[-1:]
    assert code == 1
    assert 0 < len(frames) < FRAMES
    assert [r["frame"] for r in frames] == list(range(len(frames)))
    assert all("error" not in r for r in frames)
    assert error["source"] == str(video) and error["error_type"] == "InputError"
    assert error["error"].startswith(f"{video}: ")


def test_a_corrupt_video_is_one_error_record(tiny_bundle, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0\0\0\x18ftypmp42" + bytes(range(256)) * 8)
    code, records, _ = detect([str(video)], tiny_bundle, capsys)
    assert code == 1
    assert len(records) == 1
    assert records[0]["source"] == str(video) and "cannot open video" in records[0]["error"]


def test_the_decode_is_bounded_by_the_packet_limit(tmp_path, monkeypatch):
    video = write_video(tmp_path / "clip.mp4", "mpeg4")  # one packet per frame, no reordering
    monkeypatch.setattr("ipad_sdk.video._packet_limit", lambda name: 3)
    frames = iter_frames(video, 1, 10**8)
    assert [next(frames).index for _ in range(3)] == [0, 1, 2]
    with pytest.raises(InputError, match="corrupt video: more packets than bytes"):
        next(frames)


def untimed(folder: Path) -> dict[str, object]:
    """Every file under ``folder``: the rows of ``results.csv`` without their timings (which
    differ from run to run), the bytes of the others."""
    outputs: dict[str, object] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name == "results.csv":
            with open(path, newline="", encoding="utf-8") as fh:
                outputs[path.name] = [r | {"timings_ms": ""} for r in csv.DictReader(fh)]
        else:
            outputs[path.relative_to(folder).as_posix()] = path.read_bytes()
    return outputs


def test_resume_in_the_middle_of_a_video_gives_the_uninterrupted_outputs(tiny_bundle, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(tiny_bundle, device="cpu", batch_size=1)
    files = [write_video(tmp_path / "clip.mp4", CODECS[0])]
    reference, out = tmp_path / "reference", tmp_path / "out"
    run_batch(det, files, reference, "csv", save_masks=True, frame_stride=2)
    original, calls = det.backend.run, []  # the network: one frame per batch

    def stop_at_the_third_frame(batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(batch)

    det.backend.run = stop_at_the_third_frame
    with pytest.raises(KeyboardInterrupt):
        run_batch(det, files, out, "csv", save_masks=True, frame_stride=2)
    calls.clear()
    det.backend.run = lambda batch: calls.append(len(batch)) or original(batch)
    summary = run_batch(det, files, out, "csv", save_masks=True, frame_stride=2, resume=True)
    assert sum(calls) == 2  # frames 4 and 6; frames 0 and 2 come from the journal
    assert summary.ok == 4 and not summary.failed
    assert untimed(out) == untimed(reference)
    rows = untimed(out)["results.csv"]
    assert [(r["video"], r["frame"]) for r in rows] == [
        (str(files[0]), str(i)) for i in (0, 2, 4, 6)
    ]


def test_videos_are_found_in_folders(tmp_path):
    for name in ("a.MP4", "b.mov", "c.mkv", "d.avi", "e.webm", "f.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in discover([tmp_path])] == ["a.MP4", "b.mov", "c.mkv", "d.avi", "e.webm"]


def test_missing_extra_is_named(tmp_path, monkeypatch, tiny_bundle, capsys):
    video = write_video(tmp_path / "clip.mp4", CODECS[0])
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install 'ipad-sdk\[video\]'"):
        next(iter_frames(video, 1, 10**8))
    code, records, err = detect([str(video)], tiny_bundle, capsys)
    assert code == 2 and records == []
    assert "pip install 'ipad-sdk[video]'" in err


def test_frame_stride_below_one_is_a_usage_error(tmp_path, tiny_bundle, capsys):
    code, _, _ = detect([str(tmp_path)], tiny_bundle, capsys, "--frame-stride", "0")
    assert code == 2
