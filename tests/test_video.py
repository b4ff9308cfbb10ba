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
from ipad_sdk.batch import run_batch
from ipad_sdk.cli import main
from ipad_sdk.discover import discover
from ipad_sdk.errors import BackendUnavailable, InputError
from ipad_sdk.video import iter_frames

av = pytest.importorskip("av", reason="video tests need PyAV: pip install 'ipad-sdk[video]'")

FRAMES, WIDTH, HEIGHT = 8, 64, 48
CODECS = [c for c in ("mpeg4", "libx264") if c in av.codecs_available]


def write_video(path: Path, codec: str, frames: int = FRAMES) -> Path:
    """``frames`` frames of noise (large packets, so a cut lands mid-stream) as MP4 with the
    index in front (``faststart``: the declared frame count survives truncation)."""
    return _write_noise(path, "mp4", codec, frames, {"movflags": "faststart"})


def _write_noise(
    path: Path, fmt: str, codec: str, frames: int, options: dict[str, str] | None = None
) -> Path:
    """``frames`` frames of seeded noise encoded with ``codec`` into a ``fmt`` container."""
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
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


def write_matroska(path: Path, codec: str, frames: int = FRAMES) -> Path:
    """``frames`` frames of noise as Matroska (``.mkv``) or WebM: containers that declare no
    frame count, only their size (the Segment element's) and duration."""
    fmt = "webm" if path.suffix == ".webm" else "matroska"
    return _write_noise(path, fmt, codec, frames)


def whole_packets(path: Path, keep: int) -> int:
    """How many video packets of ``path`` lie entirely in its first ``keep`` bytes (their file
    positions, read by the demuxer from the whole file)."""
    with av.open(str(path)) as container:
        ends = [p.pos + p.size for p in container.demux(container.streams.video[0]) if p.size]
    assert len(ends) == FRAMES
    return sum(end <= keep for end in ends)


MATROSKA = [(s, c) for s, c in ((".mkv", "mpeg4"), (".webm", "libvpx"), (".webm", "libvpx-vp9"))
            if c in av.codecs_available]  # fmt: skip


@pytest.mark.parametrize(("suffix", "codec"), MATROSKA)
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_a_truncated_matroska_or_webm_ends_with_an_error(suffix, codec, keep, tmp_path):
    """No frame count is declared: the cut is seen from the segment size the header declares."""
    whole = write_matroska(tmp_path / f"whole{suffix}", codec)
    assert next(iter_frames(whole, 1, 10**8)).index == 0
    with av.open(str(whole)) as container:
        assert container.streams.video[0].frames == 0  # nothing to compare a frame count with
    data = whole.read_bytes()
    cut = int(len(data) * keep)
    video = tmp_path / f"clip{suffix}"
    video.write_bytes(data[:cut])
    frames = iter_frames(video, 1, 10**8)
    decoded = []
    with pytest.raises(InputError) as info:
        decoded.extend(frame.index for frame in frames)
    assert decoded == list(range(whole_packets(whole, cut)))  # every complete frame, in order
    assert str(info.value) == (
        f"{video}: truncated video: the file has {cut:,} of the {len(data):,} bytes its "
        f"container declares; {len(decoded)} frames decoded"
    )


@pytest.mark.parametrize(("suffix", "codec"), MATROSKA)
def test_a_whole_matroska_or_webm_has_no_error(suffix, codec, tmp_path):
    video = write_matroska(tmp_path / f"clip{suffix}", codec)
    video.write_bytes(video.read_bytes() + b"\0" * 64)  # trailing bytes past the segment: fine
    assert [f.index for f in iter_frames(video, 3, 10**8)] == [0, 3, 6]


def test_a_truncated_webm_gives_its_frames_then_one_error_record(tiny_bundle, tmp_path, capsys):
    whole = write_matroska(tmp_path / "whole.webm", MATROSKA[-1][1])
    video = tmp_path / "clip.webm"
    video.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    code, records, _ = detect([str(video)], tiny_bundle, capsys)
    frames, error = records[:-1], records[-1]
    assert code == 1
    assert [r["frame"] for r in frames] == list(range(whole_packets(whole, video.stat().st_size)))
    assert frames and all("error" not in r for r in frames)
    assert error["source"] == str(video) and error["error_type"] == "InputError"
    assert error["error"].startswith(f"{video}: truncated video: the file has ")


def test_a_segment_of_unknown_size_is_read_to_its_end(tmp_path):
    """A live recording declares no size: its frames are read, nothing can tell a cut."""
    video = write_matroska(tmp_path / "clip.mkv", "mpeg4")
    data = bytearray(video.read_bytes())
    at = data.index(b"\x18\x53\x80\x67") + 4
    assert data[at] == 0x01  # an 8-byte size: make it "unknown" (all value bits set)
    data[at : at + 8] = b"\x01" + b"\xff" * 7
    video.write_bytes(bytes(data))
    assert [f.index for f in iter_frames(video, 1, 10**8)] == list(range(FRAMES))


def test_a_video_where_an_image_is_expected_is_refused_by_name(tmp_path):
    """load_image / Detector.detect (and Ray, which reads files as images) refuse a video with a
    pointer to the frame sampler: by extension before reading it, by container for bytes."""
    from ipad_sdk import load_image

    mkv = write_matroska(tmp_path / "clip.mkv", "mpeg4")
    mp4 = write_video(tmp_path / "clip.mp4", CODECS[0])
    avi = tmp_path / "clip.avi"
    with av.open(str(avi), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        black = av.VideoFrame.from_ndarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8), format="rgb24")
        container.mux(stream.encode(black))
        container.mux(stream.encode())
    renamed = tmp_path / "still.png"
    renamed.write_bytes(mkv.read_bytes())  # a video under an image's name: its container tells
    cases = [(mkv, str(mkv)), (str(mp4), str(mp4)), (renamed, str(renamed))]
    cases += [(p.read_bytes(), f"<{p.stat().st_size} bytes>") for p in (mkv, mp4, avi)]
    for obj, name in cases:
        with pytest.raises(InputError) as info:
            load_image(obj)
        assert str(info.value) == (
            f"{name}: a video, not an image: sample its frames with "
            "`ipad detect --frame-stride N` (or ipad_sdk.video.iter_frames)"
        )
    with pytest.raises(InputError, match="file not found"):
        load_image(tmp_path / "missing.mp4")


def test_damage_the_decoder_detects_ends_the_video_with_an_error(tmp_path):
    """Zeroed bytes in an MPEG-4 Part 2 stream: FFmpeg would conceal them (8 smeared frames, no
    error); the frames before the damage come out, then a clear error."""
    whole = write_video(tmp_path / "whole.mp4", "mpeg4")
    assert [f.index for f in iter_frames(whole, 1, 10**8)] == list(range(FRAMES))
    data = whole.read_bytes()
    at = len(data) // 2
    video = tmp_path / "clip.mp4"
    video.write_bytes(data[:at] + bytes(600) + data[at + 600 :])
    decoded = []
    with pytest.raises(InputError, match=f"^{video}: corrupt video: ") as info:
        decoded.extend(f.index for f in iter_frames(video, 1, 10**8))
    assert decoded == list(range(whole_packets(whole, at)))  # the frames wholly before the damage
    assert "Invalid data" in str(info.value)
