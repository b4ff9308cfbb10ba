"""Detection over files and folders with per-file error records and atomic outputs: ``ipad detect``.

Every input (an image file, or a sampled frame of a video, named ``clip.mp4#frame=N``) goes through
:meth:`Detector.stream <ipad_sdk.Detector.stream>` as a :class:`~ipad_sdk.io.Named` input: decoded
and preprocessed ahead in threads, one full-resolution image at a time per thread, so memory does
not grow with the batch size or the photos' sizes; a bad input comes back as a failure naming it.
Outputs are written by :mod:`ipad_sdk.outputs` (atomically: a temporary name, renamed into place).
With an output folder, each finished chunk's records are also appended (and fsynced) to a journal,
``<out>/.ipad-detect-journal.jsonl``; a run killed at any point can be continued with
``resume=True`` (``ipad detect --resume``), which skips the files the journal lists and ends with
the same ``results.<fmt>`` an uninterrupted run writes. The journal's first line holds the run's
settings (:func:`run_settings`: the model's SHA-256 among them); resuming with other settings is
refused. The journal is removed when the results file is in place. Every record states the run's
provenance (:data:`PROVENANCE_KEYS`, taken from the same settings) beside its thresholds and
timings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._version import __version__
from .colour import quantize8
from .detector import Detector
from .discover import IMAGE_SUFFIXES, discover
from .errors import InputError, IpadError
from .fileio import file_sha256, remove_stale_temp_files
from .io import Named, load_pixels
from .outputs import (
    PROVENANCE_KEYS,
    RecordWriter,
    check_out_dir,
    output_error,
    output_keys,
    render_png,
    write_output,
)
from .result import STAGES, Failure, Result
from .video import frame_source, is_video, iter_frames


@dataclass
class BatchSummary:
    """Counts of one batch run; ``failed`` lists ``(source, message)``; ``timings_ms`` sums the
    per-image milliseconds of each stage over the images that succeeded."""

    ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @property
    def total(self) -> int:
        return self.ok + len(self.failed)

    def timing_line(self) -> str:
        """Mean milliseconds per image of each stage, e.g. ``decode 3.1 ms, ... per image``."""
        means = ", ".join(f"{k} {v / max(self.ok, 1):.1f}" for k, v in self.timings_ms.items())
        return f"mean ms per image: {means}"


JOURNAL_NAME = ".ipad-detect-journal.jsonl"


class ResumeError(IpadError, ValueError):
    """A journal that belongs to another run (other model or output settings)."""


class Journal:
    """Append-only record of finished files (first line: the run's settings)."""

    def __init__(self, path: Path, settings: dict[str, Any], resume: bool) -> None:
        self.path = path
        self.done: dict[str, dict[str, Any]] = {}
        if resume and path.exists():
            lines = path.read_text(encoding="utf-8").split("\n")
            _check_same_settings(path, lines[0], settings)
            kept = 1
            for line in lines[1:]:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # the last line of a killed run may be partial
                    break
                self.done[record["source"]] = record
                kept += 1
            self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115
            self._fh.truncate(sum(len(x) + 1 for x in lines[:kept]))  # drop a partial line
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "w", encoding="utf-8")  # noqa: SIM115
            self._fh.write(json.dumps(settings) + "\n")
            self._sync()

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            self._fh.write(json.dumps(record) + "\n")
            self.done[record["source"]] = record
        self._sync()

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self, remove: bool) -> None:
        self._fh.close()
        if remove:
            self.path.unlink(missing_ok=True)


def _check_same_settings(path: Path, first_line: str, settings: dict[str, Any]) -> None:
    """Refuse to resume from a journal whose run used other settings, naming the differences."""
    try:
        used = json.loads(first_line)
    except json.JSONDecodeError:
        used = None
    if not isinstance(used, dict):
        raise ResumeError(f"{path}: not a journal of ipad detect; rerun without --resume")
    # the model is compared by its SHA-256: the same file by another path (a link, a copy) resumes
    keys = (used.keys() | settings.keys()) - {"model"}
    changed = sorted(k for k in keys if used.get(k) != settings.get(k))
    if changed:
        detail = "; ".join(f"{k} {used.get(k)!r}, now {settings.get(k)!r}" for k in changed)
        raise ResumeError(
            f"{path}: cannot resume: the interrupted run used other settings ({detail}); "
            "rerun without --resume to start over"
        )


def run_settings(
    detector: Detector, fmt: str, save_masks: bool, save_overlays: bool,
    save_heatmaps: bool = False, frame_stride: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """Everything that changes the outputs of a run: the model file (path and SHA-256), the SDK
    version, how it runs, the image limit, the thresholds, the tiling and the output options (the
    journal's first line; :data:`PROVENANCE_KEYS` of it go into every record)."""
    return {
        "model": os.path.abspath(detector.model_path),
        "model_sha256": file_sha256(detector.model_path),
        "sdk_version": __version__,
        "backend": detector.backend.name,
        "precision": detector.backend.precision,
        "device": detector.device,
        "input_format": detector.backend.input_format,
        "classes": list(detector.classes),
        "max_pixels": detector.max_pixels,
        "thresholds": detector.thresholds.to_dict(),
        "tiling": dataclasses.asdict(detector.tiling) if detector.tiling else None,
        "format": fmt,
        "masks": save_masks,
        "overlays": save_overlays,
        "heatmaps": save_heatmaps,
        "frame_stride": frame_stride,
    }


class _Named(NamedTuple):
    """One input of a run: an image file, a sampled video frame, or a video's error; ``last``
    marks its file's final input (for progress)."""

    source: str
    key: str
    last: bool
    data: Path | np.ndarray | InputError
    fields: dict[str, Any]
    decode_ms: float = 0.0


def _named_inputs(
    files: Sequence[Path], keys: Sequence[str], frame_stride: int, max_pixels: int
) -> Iterator[_Named]:
    """The inputs of ``files`` in order: each image, or each sampled frame of a video (then the
    video's error, if it has one)."""
    for path, key in zip(files, keys, strict=True):
        if is_video(path):
            yield from _video_inputs(path, key, frame_stride, max_pixels)
        else:
            yield _Named(str(path), key, True, path, {})


def _video_inputs(path: Path, key: str, stride: int, max_pixels: int) -> Iterator[_Named]:
    """The sampled frames of ``path`` (see :mod:`ipad_sdk.video`), then its error, if any."""
    video, frames = str(path), iter_frames(path, stride, max_pixels)
    held: _Named | None = None  # one frame held back: ``last`` is known only at the end
    while True:
        start = time.perf_counter()
        try:
            frame = next(frames)
        except StopIteration:
            break
        except InputError as exc:
            if held is not None:
                yield held
            yield _Named(video, key, True, exc, {"video": video})
            return
        if held is not None:
            yield held
        fields = {"video": video, "frame": frame.index, "timestamp": frame.timestamp}
        held = _Named(frame.source, frame_source(key, frame.index), False, frame.pixels,
                      fields, (time.perf_counter() - start) * 1000.0)  # fmt: skip
    if held is not None:
        yield held._replace(last=True)
    else:
        yield _Named(video, key, True, InputError(f"{video}: no frames decoded"),
                     {"video": video})  # fmt: skip


def _todo(
    items: Iterable[_Named], done: Container[str], progress: Callable[[int], object] | None
) -> Iterator[_Named]:
    """``items`` not in ``done``; each run of files finished before counts as progress once."""
    skipped = 0
    for item in items:
        if item.source in done:
            skipped += item.last
            continue
        if skipped and progress is not None:
            progress(skipped)
        skipped = 0
        yield item
    if skipped and progress is not None:
        progress(skipped)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process at ``arenas`` (``mallopt(M_ARENA_MAX)``).

    Each decode thread otherwise gets an arena of its own that keeps the freed buffers of the
    full-resolution photos it decoded. glibc has no Python binding for this knob, and the
    ``MALLOC_ARENA_MAX`` variable only works when set before the process starts, hence ctypes.

    Returns:
        Whether the cap was set (False off Linux or without glibc's ``mallopt``).
    """
    if sys.platform != "linux":
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(-8, arenas))  # -8: M_ARENA_MAX in glibc's malloc.h


def run_batch(
    detector: Detector,
    files: Sequence[Path],
    out_dir: Path | None,
    fmt: str = "jsonl",
    save_masks: bool = False,
    save_overlays: bool = False,
    progress: Callable[[int], object] | None = None,
    resume: bool = False,
    save_heatmaps: bool = False,
    frame_stride: int = 1,
    workers: int = 1,
) -> BatchSummary:
    """Detect on ``files`` in input order; a file that fails is recorded and the rest go on. A
    video gives one record per ``frame_stride``-th frame (:mod:`ipad_sdk.video`), then, if it is
    corrupt or truncated, one error record (source: the video). ``workers`` threads decode and
    preprocess ahead of the model (:meth:`Detector.stream <ipad_sdk.Detector.stream>`), each
    holding one full-resolution image at a time.

    With ``out_dir``: ``results.<fmt>``, ``masks/<key>.png`` (0/255), ``overlays/<key>.png`` and
    ``heatmaps/<key>.png`` (photo | colour-mapped heatmap | mask), where ``<key>`` is the file's
    path relative to the inputs' common folder (a file name too long for the file system is
    shortened, see :func:`~ipad_sdk.fileio.fit_name`; the record names the file written), plus the
    journal that ``resume`` continues from (files it lists are skipped). Without: records to stdout.
    ``progress(n)`` is called after every ``n`` files (skipped ones included). An output that
    cannot be written raises :class:`~ipad_sdk.errors.OutputError` naming it (the journal keeps
    the finished files), except where a file or folder is in the way of one file's output: that
    file's record gets the error and the run goes on.
    """
    kinds = tuple(k for k, wanted in (("mask", save_masks), ("overlay", save_overlays),
                                       ("heatmap", save_heatmaps)) if wanted)  # fmt: skip
    limit_malloc_arenas()
    if kinds and out_dir is None:
        raise ValueError("saving masks, overlays or heatmaps needs an output folder")
    if resume and out_dir is None:
        raise ValueError("resuming needs an output folder")
    settings = run_settings(detector, fmt, save_masks, save_overlays, save_heatmaps, frame_stride)
    if out_dir is None:
        try:
            return _run_to_stdout(detector, files, fmt, settings, progress, workers)
        except OSError as exc:  # inputs fail as InputErrors: this is the output side
            raise output_error(exc, "<stdout>") from exc
    check_out_dir(out_dir)
    try:
        return _run_to_folder(detector, files, out_dir, settings, kinds, progress, resume,
                              workers)  # fmt: skip
    except OSError as exc:
        raise output_error(
            exc, out_dir, "; the finished files are kept (fix the cause, then resume)"
        ) from exc


def _run_to_folder(
    detector: Detector,
    files: Sequence[Path],
    out_dir: Path,
    settings: dict[str, Any],
    kinds: tuple[str, ...],
    progress: Callable[[int], object] | None,
    resume: bool,
    workers: int,
) -> BatchSummary:
    journal = Journal(out_dir / JOURNAL_NAME, settings, resume)
    if resume:  # the interrupted run may have been killed in the middle of writing a file
        remove_stale_temp_files(out_dir)
    finished = False
    try:
        items = _named_inputs(files, output_keys(files), settings["frame_stride"],
                              detector.max_pixels)  # fmt: skip
        todo = _todo(items, journal.done, progress)
        records = _records(detector, todo, out_dir, kinds, workers)
        for chunk in _chunks(records, detector.batch_size):
            journal.append([record for _, record in chunk])  # fsynced once per batch
            if progress is not None:
                progress(sum(item.last for item, _ in chunk))
        by_file: dict[str, list[dict[str, Any]]] = {}
        for record in journal.done.values():
            by_file.setdefault(record.get("video", record["source"]), []).append(record)
        fmt = settings["format"]
        writer = RecordWriter(out_dir / f"results.{fmt}", fmt, detector.classes,
                              _provenance(settings))  # fmt: skip
        summary = BatchSummary()
        try:
            for path in files:
                for record in by_file[str(path)]:
                    writer.write(record)
                    _count(summary, record)
        except BaseException:
            writer.close(commit=False)
            raise
        writer.close(commit=True)
        finished = True
    finally:
        journal.close(remove=finished)
    return summary


def _provenance(settings: dict[str, Any]) -> dict[str, Any]:
    return {key: settings[key] for key in PROVENANCE_KEYS}


def _count(summary: BatchSummary, record: dict[str, Any]) -> None:
    if "error" in record:
        summary.failed.append((record["source"], record["error"]))
        return
    summary.ok += 1
    for stage, ms in record["timings_ms"].items():
        summary.timings_ms[stage] += ms


def _run_to_stdout(
    detector: Detector,
    files: Sequence[Path],
    fmt: str,
    settings: dict[str, Any],
    progress: Callable[[int], object] | None,
    workers: int,
) -> BatchSummary:
    writer = RecordWriter(None, fmt, detector.classes, _provenance(settings))
    summary = BatchSummary()
    items = _named_inputs(files, output_keys(files), settings["frame_stride"], detector.max_pixels)
    for chunk in _chunks(_records(detector, items, None, (), workers), detector.batch_size):
        for _, record in chunk:
            writer.write(record)
            _count(summary, record)
        if progress is not None:
            progress(sum(item.last for item, _ in chunk))
    return summary


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _records(
    detector: Detector, items: Iterable[_Named], out_dir: Path | None, kinds: tuple[str, ...],
    workers: int,
) -> Iterator[tuple[_Named, dict[str, Any]]]:  # fmt: skip
    """``(input, record)`` of every input, in order: each one through ``detector.stream`` (a
    video's error, already known, is recorded as it is), its outputs saved."""
    read: deque[_Named] = deque()  # the inputs given to the stream, whose results are due

    def inputs() -> Iterator[Named]:
        for item in items:
            read.append(item)
            if not isinstance(item.data, InputError):
                yield Named(item.source, item.data)

    for outcome in detector.stream(inputs(), workers=workers):
        while isinstance(known := read[0].data, InputError):
            item = read.popleft()
            yield item, _error_record(item, known)
        item = read.popleft()
        if isinstance(outcome, Failure):
            yield item, _error_record(item, outcome.error)
            continue
        result = _with_record_timings(outcome, item.decode_ms)
        yield item, _with_fields(_save_outputs(result, item, out_dir, kinds, detector), item.fields)
    for item in read:  # only known errors are left
        assert isinstance(item.data, InputError)  # the stream answered every other input
        yield item, _error_record(item, item.data)


def _error_record(item: _Named, error: Exception) -> dict[str, Any]:
    return Failure(item.source, error).to_dict() | item.fields


def _with_fields(record: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """``record`` with a frame's ``video``/``frame``/``timestamp`` right after its ``source``."""
    return {"source": record["source"], **fields} | record


def _with_record_timings(result: Result, decode_ms: float) -> Result:
    """``result`` with a video frame's own decode time added (``decode_ms``), and with the mask
    and regions of its record computed and counted as postprocessing."""
    start = time.perf_counter()
    _ = result.regions  # computes (and caches) the heatmap and mask on the way
    postprocess_ms = result.timings["postprocess"] + (time.perf_counter() - start) * 1000.0
    decode_ms += result.timings["decode"]
    return replace(result, timings=result.timings | {"decode": decode_ms,
                                                     "postprocess": postprocess_ms})  # fmt: skip


def _save_outputs(
    result: Result, item: _Named, out_dir: Path | None, kinds: tuple[str, ...], detector: Detector
) -> dict[str, Any]:
    """``result``'s record, its pictures written (overlays and heatmaps are drawn on the input,
    read again: the stream keeps no full-resolution image). An input that vanished or changed
    size since it was detected makes the record an ``InputError`` one."""
    record = result.to_dict()
    rgb: list[np.ndarray] = []

    def picture(kind: str) -> bytes:
        if kind != "mask" and not rgb:
            assert not isinstance(item.data, InputError)  # a result's input was read
            try:
                pixels = load_pixels(item.data, max_pixels=detector.max_pixels)
            except InputError as exc:
                raise InputError(f"{exc} (read again to draw its {kind})") from None
            if pixels.shape[:2] != result.image_size:
                raise InputError(
                    f"{result.source}: changed while it was processed: detected at "
                    f"{result.image_size[1]}x{result.image_size[0]}, now "
                    f"{pixels.shape[1]}x{pixels.shape[0]} when read again to draw its {kind}"
                )
            rgb.append(quantize8(pixels))
        return render_png(result, kind, rgb[0] if rgb else None)

    if out_dir is None:
        return record
    for kind in kinds:
        try:
            record |= write_output(out_dir, kind, item.key, partial(picture, kind))
        except InputError as exc:
            record |= {"error_type": "InputError", "error": str(exc)}
        if "error" in record:
            break
    return record


__all__ = ["IMAGE_SUFFIXES", "JOURNAL_NAME", "PROVENANCE_KEYS", "BatchSummary", "ResumeError",
           "discover", "run_batch", "run_settings"]  # fmt: skip
