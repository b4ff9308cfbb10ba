"""The outputs of every front end (``ipad detect``, Ray, the Triton client): one results writer, one
mask encoder, one way to name and write per-input pictures.

Every file is written to a temporary name in its final folder and renamed into place, so an
interrupted run never leaves a half-written file under a final name. A file or folder in the way of
one input's picture makes that input's record an ``OutputError``; any other write error (disk full,
read-only folder) stops the run as an :class:`~ipad_sdk.errors.OutputError` naming the path.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .errors import OutputError
from .fileio import atomic_write, atomic_write_bytes, output_path, temp_path_beside

if TYPE_CHECKING:
    from .result import Result

#: The picture kinds a run can save per input, each under ``<out>/<kind>s/<key>.png``.
PICTURES = ("mask", "overlay", "heatmap")
#: The settings every ``ipad detect`` record states: which model file, SDK and runtime made it, and
#: how it tiled (its thresholds and timings are the record's own fields).
PROVENANCE_KEYS = ("model_sha256", "sdk_version", "backend", "precision", "tiling")
#: The columns of the CSV results of ``ipad detect`` (``score_<class>`` for each class).
RECORD_COLUMNS = ("source", "label", "is_artifact", "artifact_score", "*scores", "width", "height",
                  "video", "frame", "timestamp", "mask_fraction", "regions", "thresholds",
                  "timings_ms", "mask", "overlay", "heatmap", "error_type", "error",
                  *PROVENANCE_KEYS)  # fmt: skip
FORMATS = ("jsonl", "csv", "parquet")


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def mask_png(mask: np.ndarray) -> bytes:
    """A boolean mask as the PNG every front end writes: 8-bit gray, 0 or 255."""
    return png_bytes(Image.fromarray(mask.astype(np.uint8) * 255))


def render_png(result: Result, kind: str, rgb: np.ndarray | None = None) -> bytes:
    """The ``kind`` picture of ``result`` as PNG: ``mask``; ``overlay`` (mask tinted and regions
    boxed on ``rgb``, the 8-bit image); ``heatmap`` (``rgb`` | colour-mapped heatmap | mask)."""
    if kind == "mask":
        return mask_png(result.mask)
    if rgb is None:
        raise ValueError(f"a {kind} picture needs the image")
    if kind == "overlay":
        return png_bytes(result.overlay(rgb))
    if kind == "heatmap":
        from .visualize import heatmap_panel

        return png_bytes(heatmap_panel(rgb, result.heatmap, result.mask, result.label))
    raise ValueError(f"picture kind must be one of {PICTURES}, got {kind!r}")


def output_keys(files: Sequence[Path]) -> list[str]:
    """Unique relative names for ``files``: their paths relative to their common folder."""
    if not files:
        return []
    absolute = [os.path.abspath(f) for f in files]
    common = os.path.commonpath([os.path.dirname(a) for a in absolute])
    return [Path(os.path.relpath(a, common)).as_posix() for a in absolute]


#: Errors that concern one output file only (something in the way of its name): recorded for its
#: input, the run goes on. Every other write error (disk full, read-only, ...) stops the run.
_ONE_FILE_ERRNOS = frozenset({errno.EISDIR, errno.ENOTDIR, errno.EEXIST})


def write_output(out_dir: Path, kind: str, key: str, data: Callable[[], bytes]) -> dict[str, str]:
    """Write the ``kind`` output (``mask``, ``overlay``, ``heatmap``) of the input ``key``
    atomically as ``out_dir/<kind>s/<key>.png`` (a name too long for the file system is
    shortened, see :func:`~ipad_sdk.fileio.fit_name`): the record field naming it (relative to
    ``out_dir``), or, where a file or folder is in the way of this one name, the
    ``error_type``/``error`` fields of an ``OutputError`` record. Any other write error (disk
    full, read-only, ...) raises ``OSError``."""
    path = output_path(out_dir / f"{kind}s", key, ".png")
    try:
        atomic_write_bytes(path, data())
    except OSError as exc:
        if exc.errno not in _ONE_FILE_ERRNOS:
            raise
        where = exc.filename2 or exc.filename or path
        return {
            "error_type": "OutputError",
            "error": f"{where}: cannot write {kind}: {exc.strerror}",
        }
    return {kind: path.relative_to(out_dir).as_posix()}


def check_out_dir(out_dir: Path) -> None:
    """Refuse an output folder that is a file before any work is done."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: the output folder is a file; name a folder")


def output_error(exc: OSError, default: str | os.PathLike[str], advice: str = "") -> OutputError:
    """``exc``, raised while writing outputs, as an :class:`~ipad_sdk.errors.OutputError` naming
    the path it concerns (``default`` when it names none), then ``advice``."""
    where = exc.filename2 or exc.filename or default
    return OutputError(f"{where}: cannot write output: {exc.strerror or exc}{advice}")


class RecordWriter:
    """Writes one record per input to ``path`` (atomically: a temporary file renamed on
    ``close(commit=True)``), or to stdout when ``path`` is None. ``fmt``: ``jsonl`` (each record
    as is), ``csv`` or ``parquet`` (flat: ``scores`` as ``score_<class>`` columns, lists and
    objects as JSON text in CSV; ``columns``, default :data:`RECORD_COLUMNS`, where ``*scores``
    stands for the score columns). ``provenance`` is added to every record."""

    def __init__(
        self,
        path: Path | None,
        fmt: str,
        classes: Sequence[str],
        provenance: dict[str, Any] | None = None,
        columns: Sequence[str] = RECORD_COLUMNS,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
        if fmt == "parquet" and path is None:
            raise ValueError("parquet results need a file")
        self.fmt, self.path = fmt, path
        self._tmp: Path | None = None  # the file being written, renamed to ``path`` at close
        self.provenance = provenance or {}
        scores = [f"score_{c}" for c in classes]
        self._columns = [n for c in columns for n in (scores if c == "*scores" else [c])]
        self._rows: list[dict[str, Any]] = []  # parquet: written at close
        self._fh: IO[str] | io.TextIOBase | None = None  # None: parquet, written at close
        if path is None:
            self._fh = _StdoutProxy()
        elif fmt != "parquet":
            self._tmp = temp_path_beside(path)
            # a file name that is not UTF-8 (legal on Linux) is written as its bytes
            self._fh = open(  # noqa: SIM115
                self._tmp, "w", newline="", encoding="utf-8", errors="surrogateescape"
            )
        self._csv = None
        if fmt == "csv" and self._fh is not None:
            self._csv = csv.DictWriter(self._fh, fieldnames=self._columns, extrasaction="ignore")
            self._csv.writeheader()

    def write(self, record: dict[str, Any]) -> None:
        record = record | self.provenance
        if self._fh is None:  # parquet: a row, written at close
            self._rows.append({c: _flat(record).get(c) for c in self._columns})
            return
        if self._csv is not None:
            self._csv.writerow({k: _csv_cell(v) for k, v in _flat(record).items()})
        else:
            self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def close(self, commit: bool) -> None:
        """Close; rename into place when ``commit`` (the temporary file never stays behind)."""
        if self.path is None:
            return
        if self.fmt == "parquet":
            if commit:
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pylist(self._rows)
                atomic_write(self.path, lambda tmp: pq.write_table(table, tmp))
            return
        if self._fh is None or self._tmp is None:  # opened for every other format
            return
        try:
            self._fh.close()
            if commit:
                os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its ``scores`` as ``score_<class>`` columns (CSV and Parquet)."""
    flat = {k: v for k, v in record.items() if k != "scores"}
    flat.update({f"score_{k}": v for k, v in record.get("scores", {}).items()})
    return flat


def write_records(
    path: Path | None, records: Sequence[dict[str, Any]], fmt: str, classes: Sequence[str],
    **options: Any,
) -> None:  # fmt: skip
    """All of ``records`` through one :class:`RecordWriter` (``options``: its own)."""
    writer = RecordWriter(path, fmt, classes, **options)
    try:
        for record in records:
            writer.write(record)
    except BaseException:
        writer.close(commit=False)
        raise
    writer.close(commit=True)


#: First characters that make a spreadsheet read a cell as a formula (or split it).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """``value`` (a list or object as JSON text), with a ``'`` in front when it is text a
    spreadsheet would run as a formula (file names such as ``=HYPERLINK(...)``), as
    spreadsheet-safe CSV writers do."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


class _StdoutProxy(io.TextIOBase):
    """stdout looked up at each write (so tests capturing ``sys.stdout`` see the records)."""

    def write(self, text: str) -> int:
        import sys

        return sys.stdout.write(text)

    def flush(self) -> None:
        import sys

        sys.stdout.flush()


__all__ = ["PICTURES", "PROVENANCE_KEYS", "RECORD_COLUMNS", "RecordWriter", "check_out_dir",
           "mask_png", "output_error", "output_keys", "png_bytes", "render_png", "write_output",
           "write_records"]  # fmt: skip
