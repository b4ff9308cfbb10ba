"""Atomic file writes: write beside the target under a temporary name, then rename over it.

Temporary files are created with ``open(..., "x")`` rather than ``tempfile.mkstemp`` so that they
(and the final files) get the usual umask permissions instead of mkstemp's owner-only 0600.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from .errors import ModelError

_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")
#: The longest file name (one path component) that Linux and macOS file systems take, in bytes.
NAME_MAX = 255
_TEMP_EXTRA = len("..") + 12 + len(".tmp")  # what temp_path_beside adds around a name


def fit_name(name: str, suffix: str = "", limit: int = NAME_MAX) -> str:
    """``name + suffix`` if it fits in ``limit`` bytes (as the file system stores it), else
    ``name`` cut at a character boundary plus ``~`` and 16 hex digits of its SHA-256, then
    ``suffix``: distinct names stay distinct, and the same name always gives the same result."""
    if len(os.fsencode(name + suffix)) <= limit:
        return name + suffix
    tail = f"~{hashlib.sha256(os.fsencode(name)).hexdigest()[:16]}{suffix}"
    budget, head = limit - len(os.fsencode(tail)), []
    for char in name:
        budget -= len(os.fsencode(char))
        if budget < 0:
            break
        head.append(char)
    return "".join(head) + tail


def output_path(folder: Path, key: str, suffix: str) -> Path:
    """Where the output of the input named ``key`` (a relative POSIX path) goes:
    ``folder/<key><suffix>``, its file name shortened by :func:`fit_name` when too long."""
    parent, _, name = key.rpartition("/")
    return folder / parent / fit_name(name, suffix)


def temp_path_beside(path: Path) -> Path:
    """A fresh hidden temporary name in ``path``'s folder (created, so it is reserved)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    name = fit_name(path.name, limit=NAME_MAX - _TEMP_EXTRA)
    while True:
        tmp = path.with_name(f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            with open(tmp, "xb"):
                return tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` and rename ``tmp`` onto ``path``; on any failure remove ``tmp``.

    A symbolic link is written through: the file it points to is replaced, keeping the link (a
    model in place, ``current.safetensors -> v3.safetensors``). An existing file keeps its
    permission bits; a hard link to it keeps the old contents (a rename cannot update both).
    """
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    tmp = temp_path_beside(target)
    try:
        write(tmp)
        if target.exists():
            shutil.copymode(target, tmp)
        os.replace(tmp, target)
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


_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))  # fmt: skip


def check_regular_file(path: str | os.PathLike[str], what: str = "model file") -> None:
    """Raise :class:`ModelError` unless ``path`` is (a link to) a regular file: reading a FIFO or a
    device would block or never end."""
    name = os.fspath(path)
    try:
        mode = os.stat(name).st_mode
    except FileNotFoundError:
        raise ModelError(f"{name}: {what} not found") from None
    except OSError as exc:
        raise ModelError(f"{name}: cannot open {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = next((k for test, k in _NOT_REGULAR if test(mode)), "not a regular file")
        raise ModelError(f"{name}: is {kind}, not a {what}")
