"""Ray Data integration: batch detection over many images on a Ray cluster.

Library use, on any Ray Dataset of paths, encoded bytes (``read_binary_files``) or decoded images
(``read_images``)::

    import ray
    from ipad_sdk.integrations.ray import DetectBatch

    ds = ray.data.read_binary_files("photos/", include_paths=True)
    rows = ds.map_batches(DetectBatch, fn_constructor_kwargs={"model": "model.onnx"},
                          batch_size=8, compute=ray.data.ActorPoolStrategy(size=2), num_cpus=0.5)

Each actor loads the Detector once (any backend; pass ``num_gpus=1`` to ``map_batches`` for GPU
actors). A bad input becomes an error row (``error_type``, ``error`` naming the file), never a
failed job. On 2-CPU machines give actors fractional CPUs (``num_cpus=0.5``): whole-CPU actors can
starve Ray's own read tasks and stall the job.

Command line: ``ipad ray`` (also ``python -m ipad_sdk.integrations.ray``, the same options), with
the same outputs and output-error handling as ``ipad detect`` (exit 2 with a message naming the
path)::

    ipad ray PATHS... --out DIR [--model M] [--address local|auto|URL] [--actors 2]
        [--batch-size 8] [--format jsonl|parquet] [--save-masks] [--device auto] [--tiling off]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..detector import Detector
from ..errors import BackendUnavailable
from ..io import Named
from ..outputs import mask_png

#: Columns of every output batch (Arrow needs the same ones, nullable, in every batch).
SCALAR_COLUMNS = ("source", "label", "is_artifact", "artifact_score", "width", "height",
                  "mask_fraction", "error_type", "error")  # fmt: skip


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BackendUnavailable(
            "the Ray integration needs Ray Data: pip install 'ipad-sdk[ray]'"
        ) from None
    return ray


class DetectBatch:
    """A callable class for ``ray.data.Dataset.map_batches``: one Detector per actor.

    Input batches (dict of numpy columns) hold ``path`` (files read by the actor), or ``bytes``
    (encoded images) or ``image`` (decoded arrays), with ``path`` naming them when present.
    Output: the columns of :data:`SCALAR_COLUMNS`, ``score_<class>`` per class, and ``mask_png``
    (PNG bytes of the mask, when ``masks``), plus any ``index`` column passed through.
    """

    def __init__(
        self, model: str | None = None, device: str = "auto", masks: bool = False,
        batch_size: int = 8, **detector_kwargs: Any,
    ) -> None:  # fmt: skip
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the untrained-model warning, once per actor
            self.detector = Detector(model, device=device, batch_size=batch_size,
                                     **detector_kwargs)  # fmt: skip
        self.masks = masks

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        column = next((c for c in ("bytes", "image", "path") if c in batch), None)
        if column is None:
            raise ValueError(f"batch needs a 'path', 'bytes' or 'image' column, has {list(batch)}")
        items = list(batch[column])
        names = [str(p) for p in batch["path"]] if "path" in batch else [None] * len(items)
        classes = self.detector.classes
        out: dict[str, list] = {c: [] for c in (*SCALAR_COLUMNS, *(f"score_{k}" for k in classes))}
        if self.masks:
            out["mask_png"] = []
        if "index" in batch:
            out["index"] = [int(i) for i in batch["index"]]
        inputs = [_as_input(item, column, name) for item, name in zip(items, names, strict=True)]
        for result in self.detector.stream(inputs):
            row = result.to_dict()  # named by its input: a failure's message too
            if result.ok:
                scores = row.pop("scores")
                row |= {f"score_{k}": scores[k] for k in classes}
            if self.masks:
                out["mask_png"].append(mask_png(result.mask) if result.ok else None)
            for key in out:
                if key not in ("mask_png", "index"):
                    out[key].append(row.get(key))
        return out


def _as_input(item: Any, column: str, name: str | None) -> str | bytes | np.ndarray | Named:
    """The Detector's input for one cell of ``column``, named ``name`` (its path) when known."""
    if column == "path":
        return str(item)
    data = bytes(item) if column == "bytes" else np.asarray(item)
    return data if name is None else Named(name, data)


def detect_files(
    files: Sequence[Path], model: str | None = None, actors: int = 2, batch_size: int = 8,
    masks: bool = False, device: str = "auto", cpus_per_actor: float = 0.5, tiling: str = "off",
) -> list[dict[str, Any]]:  # fmt: skip
    """Rows for ``files`` in input order, detected by ``actors`` Ray actors (Ray must be up),
    each a Detector with ``tiling``."""
    ray = _import_ray()
    items = [{"index": i, "path": str(f)} for i, f in enumerate(files)]
    # one block per batch, so that every actor gets work (a few large blocks would not spread)
    ds = ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // batch_size)))
    rows = ds.map_batches(
        DetectBatch, fn_constructor_kwargs={"model": model, "device": device, "masks": masks,
                                            "batch_size": batch_size, "tiling": tiling},
        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
    ).take_all()  # fmt: skip
    return sorted(rows, key=lambda r: r["index"])


def write_outputs(
    rows: list[dict[str, Any]], files: Sequence[Path], out: Path, fmt: str, classes: Sequence[str]
) -> None:
    """``results.<fmt>`` and ``masks/<key>.png`` under ``out`` like ``ipad detect``, atomically:
    a file or folder in the way of one mask makes that row an ``OutputError`` record; any other
    write error (disk full, read-only, ``out`` a file) raises
    :class:`~ipad_sdk.errors.OutputError` naming the path."""
    from ..outputs import check_out_dir, output_error

    check_out_dir(out)
    try:
        _write_outputs(rows, files, out, fmt, classes)
    except OSError as exc:
        raise output_error(exc, out) from exc


def _write_outputs(
    rows: list[dict[str, Any]], files: Sequence[Path], out: Path, fmt: str, classes: Sequence[str]
) -> None:
    from ..outputs import output_keys, write_output, write_records

    out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    for row, key in zip(rows, output_keys(files), strict=True):
        record: dict[str, Any] = {k: row.get(k) for k in SCALAR_COLUMNS if row.get(k) is not None}
        if "error" not in record:
            record["scores"] = {k: row[f"score_{k}"] for k in classes}
            if row.get("mask_png") is not None:
                record |= write_output(out, "mask", key, partial(bytes, row["mask_png"]))
        records.append(record)
    # parquet: every column in every row (nullable), whatever the row's outcome
    write_records(out / f"results.{fmt}", records, fmt, classes,
                  columns=(*SCALAR_COLUMNS, "mask", "*scores"))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``python -m ipad_sdk.integrations.ray``: ``ipad ray`` (the same options)."""
    from .commands import add_ray_arguments, module_main, run_ray

    return module_main("ipad detect on a Ray cluster", {"": ("", add_ray_arguments, run_ray)}, argv)


def run(args: argparse.Namespace) -> int:
    """Run ``ipad ray`` with ``args`` (of
    :func:`~ipad_sdk.integrations.commands.add_ray_arguments`)."""
    from ..discover import discover
    from ..outputs import check_out_dir

    check_out_dir(args.out)  # before any work
    ray = _import_ray()
    files = discover(args.paths, exclude=args.out)
    ray.init(address=None if args.address == "local" else args.address,
             include_dashboard=False, log_to_driver=False)  # fmt: skip
    try:
        rows = detect_files(files, args.model, args.actors, args.batch_size, args.save_masks,
                            args.device, tiling=args.tiling)  # fmt: skip
    finally:
        ray.shutdown()
    classes = [c[len("score_") :] for c in rows[0] if c.startswith("score_")] if rows else []
    write_outputs(rows, files, args.out, args.format, classes)
    failed = [r for r in rows if r.get("error")]
    print(f"{len(rows) - len(failed)}/{len(rows)} images ok, {len(failed)} failed -> {args.out}")
    return 1 if failed else 0


__all__ = ["DetectBatch", "detect_files", "write_outputs"]

if __name__ == "__main__":
    raise SystemExit(main())
