"""Atomic file writes: write beside the target under a temporary name, then rename over it.

Temporary files are created with ``open(..., "x")`` rather than ``tempfile.mkstemp`` so that they
(and the final files) get the usual umask permissions instead of mkstemp's owner-only 0600.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


def temp_path_beside(path: Path) -> Path:
    """A fresh hidden temporary name in ``path``'s folder (created, so it is reserved)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            with open(tmp, "xb"):
                return tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` and rename ``tmp`` onto ``path``; on any failure remove ``tmp``."""
    tmp = temp_path_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left under ``folder`` (names made
    by :func:`temp_path_beside`); returns them. Only for folders no other writer is using."""
    stale = [p for p in folder.rglob(".*.tmp") if p.is_file() and _TEMP_NAME.match(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's contents, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
