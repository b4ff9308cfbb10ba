"""Finding the inputs of a run: files named on the command line, and the image and video files
below folders."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from .outputs import PICTURES
from .video import VIDEO_SUFFIXES

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pbm"}
)
_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


def discover(
    paths: Sequence[str | os.PathLike[str]], exclude: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Files named in ``paths`` (always kept, whatever their suffix) plus, for each folder, the
    image and video files below it (see :func:`_image_files`; below ``exclude``, the output folder,
    the run's own picture folders ``masks/``, ``overlays/`` and ``heatmaps/`` are never searched,
    while an input folder inside it is). A file reached twice (also through another spelling of its
    path or a symlinked folder) is kept once, at its first place."""
    out = Path(exclude).resolve() if exclude is not None else None
    skip = frozenset(out / f"{kind}s" for kind in PICTURES) if out is not None else frozenset()
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(_image_files(path, skip))
        else:
            found.append(path)  # a missing file becomes a recorded failure, not a crash
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _image_files(folder: Path, skip: frozenset[Path]) -> Iterator[Path]:
    """Image and video files below ``folder`` by suffix, sorted, hidden entries skipped, not
    below a folder of ``skip``. Symlinked folders are followed, each real folder searched once (a
    link back up, a loop, ends there)."""
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        try:
            info = os.stat(root)
        except OSError:  # removed since it was listed
            dirs[:] = []
            continue
        where = (info.st_dev, info.st_ino)
        real = Path(root).resolve()
        if where in seen or any(real.is_relative_to(picture) for picture in skip):
            dirs[:] = []
            continue
        seen.add(where)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in _SUFFIXES:
                yield Path(root, name)


__all__ = ["IMAGE_SUFFIXES", "discover"]
