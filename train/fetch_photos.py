"""Fetch full-resolution clean photographs from Debian wallpaper packages.

    python train/fetch_photos.py --out data/photos-debian

Downloads the package versions named in ``train/photos/debian_photos.json`` with ``apt-get
download`` (Debian's own client: no other host is contacted), unpacks them with ``dpkg-deb``, keeps
only the listed photographs (illustrations and renders are left out; so is lomiri's
``sunset_by_Aitzol_Berasategi``, which shows real flare, and plasma-workspace-wallpapers, kept for
independent evaluation), checks each file's SHA-256 against the list and writes ``SOURCES.md``
with authors and licences. A rerun skips files already present with the right digest. The output
folder is a data folder: never commit it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

LIST = Path(__file__).parent / "photos" / "debian_photos.json"


def load_list(path: Path = LIST) -> list[dict[str, Any]]:
    """The committed photo list: package, version, path in the package, sha256, licence, author."""
    entries = json.loads(path.read_text())
    for entry in entries:
        missing = {"package", "version", "path", "sha256", "licence", "author"} - set(entry)
        if missing:
            raise ValueError(f"{path}: entry {entry.get('path')!r} lacks {sorted(missing)}")
    return entries


def output_name(entry: dict[str, Any]) -> str:
    """The file name a photo gets in the output folder (package-prefixed, so names never clash)."""
    return f"{entry['package']}__{Path(entry['path']).name}"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unpack(package: str, version: str, work: Path) -> Path:
    """Download ``package=version`` into ``work`` and unpack it; returns the unpacked root."""
    subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=work, check=True)
    debs = sorted(work.glob(f"{package}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download {package}={version} left no .deb in {work}")
    root = work / package
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
    return root


def write_sources(entries: list[dict[str, Any]], out: Path) -> None:
    lines = [
        "# Sources of these photos",
        "",
        "Full-resolution photographs from Debian packages, fetched by `train/fetch_photos.py`.",
        "Licences and authors as stated in each package's `debian/copyright`.",
        "",
        "| file | package (version) | author | licence |",
        "|---|---|---|---|",
    ]
    for e in entries:
        package = f"{e['package']} ({e['version']})"
        lines.append(f"| {output_name(e)} | {package} | {e['author']} | {e['licence']} |")
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")


def fetch(out: Path, entries: list[dict[str, Any]]) -> list[str]:
    """Fetch every listed photo into ``out``; returns the names of those whose digest failed."""
    out.mkdir(parents=True, exist_ok=True)
    todo = [e for e in entries if not _present(out / output_name(e), e["sha256"])]
    bad: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ipad-photos-") as tmp:
        packages = sorted({(e["package"], e["version"]) for e in todo})
        roots = {pkg: _unpack(pkg, ver, Path(tmp)) for pkg, ver in packages}
        for e in todo:
            src = roots[e["package"]] / e["path"]
            if not src.is_file() or sha256(src) != e["sha256"]:
                bad.append(output_name(e))
                continue
            dst = out / output_name(e)
            tmp_dst = dst.with_name(f".{dst.name}.tmp")
            shutil.copyfile(src, tmp_dst)
            tmp_dst.replace(dst)
    write_sources(entries, out)
    return bad


def _present(path: Path, digest: str) -> bool:
    return path.is_file() and sha256(path) == digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default="data/photos-debian", help="output folder (ignored by git)"
    )
    parser.add_argument("--list", default=str(LIST), help="photo list (JSON)")
    args = parser.parse_args(argv)
    entries = load_list(Path(args.list))
    bad = fetch(Path(args.out), entries)
    for name in bad:
        print(f"fetch_photos: {name}: missing or SHA-256 mismatch; not kept", file=sys.stderr)
    print(f"fetch_photos: {len(entries) - len(bad)} of {len(entries)} photos in {args.out}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
