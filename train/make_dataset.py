"""Build an IPAD dataset (clean + synthetic ghosting / flare / moire) from a folder of clean photos.

    python train/make_dataset.py --clean DIR [--clean DIR ...] --out DIR --n-per-class N --seed S
        [--n-clean N] [--size PX] [--workers W] [--flare-patterns DIR] [--hard-fraction F]
        [--hard-negatives F] [--night F] [--screens F] [--wide-bands F] [--splits test,...]

``--clean procedural:N`` uses N procedural scenes instead of photos (no files needed); several
``--clean`` folders are pooled (photo names must not repeat). ``--hard-negatives F`` makes that
share of the clean items from the artifact-free reference of a moire or ghosting synthesis: a
screen showing content without moire, a static multi-frame fusion without ghosts. Every item is
made from its own seed, so the build is deterministic whatever the worker count, and resumable: a
rerun skips finished items (``items/<id>.json``), and refuses an output folder that holds a
dataset built with other settings. ``--splits`` makes only the items of those splits (the same
items, ids and seeds as in the full build: e.g. a high-resolution test set). Unreadable inputs are
reported and skipped. Layout: see ``train/dataset.py``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as `python train/make_dataset.py`: make `train` importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import hashlib
import io
import json
import multiprocessing
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ipad_sdk import InputError, load_image
from ipad_sdk.fileio import atomic_write_bytes
from train.dataset import DATASET_FORMAT, DATASET_VERSION, assign_splits
from train.synth import ARTIFACT_CLASSES, synthesize
from train.synth.common import camera_finish
from train.synth.night import night_scene
from train.synth.scenes import procedural_scene

BUILDER_VERSION = 2  # 2: exposure gain and black level in the camera finish
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
PROCEDURAL = "procedural:"
#: generators whose artifact-free reference is itself a hard negative (flare's is the plain photo)
HARD_NEGATIVE_SOURCES = ("moire", "ghosting")


@dataclass(frozen=True)
class ItemSpec:
    """One dataset item to make; everything random about it derives from ``seed``."""

    id: str
    label: str
    photo: str
    partner: str  # another photo of the same split (moire screen content, ghosting donor)
    split: str
    hard: bool
    seed: tuple[int, ...]
    night: bool = False  # relit as a night scene with lamps before synthesis


@dataclass(frozen=True)
class Settings:
    clean: tuple[str, ...]
    out: str
    photos: dict[str, str | None]  # name -> path (None: procedural)
    n_per_class: int
    n_clean: int
    seed: int
    size: int | None
    hard_fraction: float
    flare_patterns: tuple[str, ...]
    splits: tuple[str, ...] | None = None  # None: every split
    hard_negatives: float = 0.0  # share of clean items that are an artifact's clean reference
    night: float = 0.0  # share of the items of every class relit as night scenes
    screens: float | None = None  # moire's share of frame-filling screens (None: its default)
    wide_bands: float = 0.0  # moire items' share of wide low-frequency bands

    def identity(self) -> dict[str, Any]:
        """What defines the dataset (a rerun with the same identity resumes it)."""
        return {
            "format": DATASET_FORMAT, "version": DATASET_VERSION, "builder": BUILDER_VERSION,
            "seed": self.seed, "n_per_class": self.n_per_class, "n_clean": self.n_clean,
            "size": self.size, "hard_fraction": self.hard_fraction,
            "photos": {name: _digest(path) for name, path in sorted(self.photos.items())},
            "flare_patterns": [_digest(p) for p in self.flare_patterns],
        } | ({"splits": list(self.splits)} if self.splits else {}) | (
            {"hard_negatives": self.hard_negatives} if self.hard_negatives else {}
        ) | ({"night": self.night} if self.night else {}) | (
            {"screens": self.screens} if self.screens is not None else {}
        ) | ({"wide_bands": self.wide_bands} if self.wide_bands else {})  # fmt: skip


def _digest(path: str | None) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path else "procedural"


def find_all_photos(
    cleans: tuple[str, ...],
) -> tuple[dict[str, str | None], list[tuple[str, str]]]:
    """:func:`find_photos` over several sources, pooled; a name found twice is an error."""
    photos: dict[str, str | None] = {}
    skipped: list[tuple[str, str]] = []
    for clean in cleans:
        found, bad = find_photos(clean)
        clash = sorted(set(found) & set(photos))
        if clash:
            raise SystemExit(f"make_dataset: --clean {clean}: names seen before: {clash[:5]}")
        photos.update(found)
        skipped += bad
    return photos, skipped


def find_photos(clean: str) -> tuple[dict[str, str | None], list[tuple[str, str]]]:
    """Readable input photos by name, and the skipped ones with their errors."""
    if clean.startswith(PROCEDURAL):
        count = int(clean[len(PROCEDURAL) :])
        return {f"procedural_{i:04d}": None for i in range(count)}, []
    root = Path(clean)
    if not root.is_dir():
        raise SystemExit(f"make_dataset: --clean {clean}: not a folder")
    photos: dict[str, str | None] = {}
    skipped: list[tuple[str, str]] = []
    for path in sorted(root.iterdir()):
        if path.suffix.lower() not in PHOTO_SUFFIXES or path.name.startswith("."):
            continue
        try:
            load_image(path)
        except InputError as exc:
            skipped.append((path.name, str(exc)))
            continue
        photos[path.name] = str(path)
    return photos, skipped


def plan_items(settings: Settings) -> list[ItemSpec]:
    """Every item of the dataset, in manifest order."""
    splits = assign_splits(list(settings.photos), settings.seed)
    by_split: dict[str, list[str]] = {}
    for name, split in sorted(splits.items()):
        by_split.setdefault(split, []).append(name)
    names = sorted(settings.photos)
    items: list[ItemSpec] = []
    for label_index, label in enumerate(("clean", *ARTIFACT_CLASSES)):
        count = settings.n_clean if label == "clean" else settings.n_per_class
        rng = np.random.default_rng([settings.seed, label_index])
        order = np.concatenate(
            [rng.permutation(len(names)) for _ in range(count // len(names) + 1)]
        )
        for k in range(count):
            photo = names[int(order[k])]
            split = splits[photo]
            peers = by_split[split]
            partner = peers[int(rng.integers(len(peers)))]
            share = settings.hard_fraction if label != "clean" else settings.hard_negatives
            # clean items draw only when hard negatives are on: older builds' streams stay the same
            draws = label != "clean" or share > 0
            hard = draws and bool(rng.random() < share)
            # drawn only when night scenes are on, so older builds' streams stay the same
            night = settings.night > 0 and bool(rng.random() < settings.night)
            items.append(
                ItemSpec(f"{label}_{k:05d}", label, photo, partner, split, hard,
                         (settings.seed, label_index, k), night)
            )  # fmt: skip
    if settings.splits:
        items = [item for item in items if item.split in settings.splits]
    return items


# -- worker side ------------------------------------------------------------------------------
_SETTINGS: Settings | None = None


def _init_worker(settings: Settings) -> None:
    global _SETTINGS
    _SETTINGS = settings
    _photo.cache_clear()  # another build in this process may name other files alike


@lru_cache(maxsize=16)
def _photo(name: str) -> np.ndarray:
    path = _SETTINGS.photos[name]
    if path is None:  # procedural scene, seeded by its name
        index = int(name.rsplit("_", 1)[1])
        return procedural_scene(384, 512, np.random.default_rng([_SETTINGS.seed, 99, index]))
    return load_image(path)


@lru_cache(maxsize=1)
def _flare_patterns() -> tuple[np.ndarray, ...]:
    return tuple(load_image(p) for p in _SETTINGS.flare_patterns)


def base_variant(photo: np.ndarray, rng: np.random.Generator, size: int | None) -> np.ndarray:
    """The random crop (50-100 % of the area, same aspect) and flip that every item starts from,
    clean or not; resized (Lanczos) to ``size`` on the long side when given."""
    h, w = photo.shape[:2]
    scale = float(np.sqrt(rng.uniform(0.5, 1.0)))
    ch, cw = max(16, int(h * scale)), max(16, int(w * scale))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = photo[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if size is not None:
        factor = size / max(ch, cw)
        target = (max(1, round(cw * factor)), max(1, round(ch * factor)))
        return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(target, Image.LANCZOS))
    return np.ascontiguousarray(crop)


def make_item_safely(spec: ItemSpec) -> tuple[str, str | None]:
    """:func:`make_item`, turning an exception into ``(id, error)`` so that the build goes on."""
    try:
        make_item(spec)
        return spec.id, None
    except Exception as exc:  # noqa: BLE001 - recorded per item, the build reports them all
        return spec.id, f"{type(exc).__name__}: {exc}"


def make_item(spec: ItemSpec) -> dict[str, Any]:
    """Synthesise, finish and write one item; returns its manifest record."""
    settings = _SETTINGS
    out = Path(settings.out)
    rng = np.random.default_rng(spec.seed)
    base = base_variant(_photo(spec.photo), rng, settings.size)
    night: dict[str, Any] = {}
    if spec.night:
        base, night = night_scene(base, rng)
    lamps = night.get("lamps", ())
    if spec.label == "clean" and spec.hard:  # hard negative: an artifact's clean reference
        partner = base_variant(_photo(spec.partner), rng, settings.size)
        source = HARD_NEGATIVE_SOURCES[int(rng.integers(len(HARD_NEGATIVE_SOURCES)))]
        sample = synthesize(
            source, base, rng, False, partner, _flare_patterns(), screens=settings.screens
        )
        image, mask = sample.reference, np.zeros(base.shape[:2], bool)
        params = {"hard_negative_of": source, "synthesis": sample.params}
    elif spec.label == "clean":
        image, mask, params = base, np.zeros(base.shape[:2], bool), {}
    else:
        partner = base_variant(_photo(spec.partner), rng, settings.size)
        sample = synthesize(
            spec.label,
            base,
            rng,
            spec.hard,
            partner,
            _flare_patterns(),
            lamps,
            screens=settings.screens,
            wide_bands=settings.wide_bands,
        )
        image, mask, params = sample.image, sample.mask, sample.params
    if night:
        params = params | {"night": night}
    jpeg, finish = camera_finish(image, rng)
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG")
    record = {
        "id": spec.id, "image": f"images/{spec.id}.jpg", "mask": f"masks/{spec.id}.png",
        "label": spec.label, "source": "synthetic" if spec.label != "clean" else "real",
        "source_photo": spec.photo, "split": spec.split, "hard": spec.hard,
        "width": int(image.shape[1]), "height": int(image.shape[0]),
        "mask_fraction": float(mask.mean()),
        "params": {"synthesis": params, "camera_finish": finish, "partner": spec.partner},
    }  # fmt: skip
    atomic_write_bytes(out / record["image"], jpeg)
    atomic_write_bytes(out / record["mask"], buf.getvalue())
    atomic_write_bytes(out / "items" / f"{spec.id}.json", json.dumps(record).encode())
    return record


# -- driver -----------------------------------------------------------------------------------
def _check_or_claim(out: Path, identity: dict[str, Any]) -> None:
    marker = out / "dataset.json"
    if marker.exists():
        existing = json.loads(marker.read_text())
        if existing != identity:
            changed = sorted(k for k in identity if existing.get(k) != identity[k])
            raise SystemExit(
                f"make_dataset: {out} holds a different dataset (differs in {changed}); "
                "refusing to overwrite it: choose another --out or delete it"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"make_dataset: {out} is not empty and holds no dataset; refusing")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(marker, json.dumps(identity, indent=1, sort_keys=True).encode())


def _write_sources(settings: Settings, out: Path) -> None:
    text = [
        "# Sources of this dataset",
        "",
        "Synthetic artifacts (ghosting, lens flare, moire) rendered by ipad-sdk's train/synth on",
        f"crops of the photos in {', '.join(f'`{c}`' for c in settings.clean)}. Their licences",
        "and attributions follow and apply to every image made from them.",
        "",
    ]
    for clean in settings.clean:
        if clean.startswith(PROCEDURAL):
            text.append("Procedural scenes made by train/synth/scenes.py: no third-party content.")
            continue
        for candidate in (Path(clean) / "SOURCES.md", Path(clean).parent / "SOURCES.md"):
            if candidate.is_file():
                text.append(candidate.read_text())
                break
        else:
            text.append(f"(no SOURCES.md found beside {clean}: add their attribution here)")
    atomic_write_bytes(out / "SOURCES.md", "\n".join(text).encode())


def build(settings: Settings, workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Make every missing item, then the manifest; returns a summary."""
    out = Path(settings.out)
    _check_or_claim(out, settings.identity())
    items = plan_items(settings)
    todo = [s for s in items if not (out / "items" / f"{s.id}.json").exists()]
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), initial=len(items) - len(todo), unit="img")
    failures: dict[str, str] = {}
    if workers > 1 and todo:
        with multiprocessing.get_context("fork").Pool(
            workers, initializer=_init_worker, initargs=(settings,)
        ) as pool:
            for item_id, error in pool.imap_unordered(make_item_safely, todo, chunksize=4):
                if error is not None:
                    failures[item_id] = error
                if bar is not None:
                    bar.update(1)
    else:
        _init_worker(settings)
        for spec in todo:
            item_id, error = make_item_safely(spec)
            if error is not None:
                failures[item_id] = error
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - start
    if failures:  # no manifest for an incomplete dataset; a rerun retries just these items
        return {"items": len(items), "made": len(todo) - len(failures), "seconds": elapsed,
                "failures": failures}  # fmt: skip
    lines = [(out / "items" / f"{s.id}.json").read_text().strip() for s in items]
    atomic_write_bytes(out / "manifest.jsonl", ("\n".join(lines) + "\n").encode())
    _write_sources(settings, out)
    counts: dict[str, int] = {}
    for spec in items:
        counts[f"{spec.label}/{spec.split}"] = counts.get(f"{spec.label}/{spec.split}", 0) + 1
    return {"items": len(items), "made": len(todo), "seconds": elapsed, "counts": counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", required=True, action="append",
                        help="folder of clean photos or procedural:N (repeat to pool)")  # fmt: skip
    parser.add_argument("--out", required=True)
    parser.add_argument("--n-per-class", type=int, required=True, help="images per artifact class")
    parser.add_argument("--n-clean", type=int, help="clean images (default 1.5 x --n-per-class)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, help="long side of the output images (<= 4096)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--hard-fraction", type=float, default=0.3)
    parser.add_argument("--hard-negatives", type=float, default=0.0,
                        help="share of clean items that are an artifact's reference")  # fmt: skip
    parser.add_argument("--night", type=float, default=0.0,
                        help="share of every class's items relit as night scenes")  # fmt: skip
    parser.add_argument("--screens", type=float,
                        help="moire items' (and their hard negatives') share of frame-filling "
                             "screens (default: the generator's 0.3)")  # fmt: skip
    parser.add_argument("--wide-bands", type=float, default=0.0,
                        help="share of moire items drawn as wide low-frequency rainbow bands "
                             "(hard negatives are unchanged)")  # fmt: skip
    parser.add_argument("--flare-patterns", help="folder of flare renders on black (second route)")
    parser.add_argument("--splits", help="comma-separated splits to make (default: all)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    splits = tuple(args.splits.split(",")) if args.splits else None
    if splits and not set(splits) <= {"train", "val", "test"}:
        parser.error(f"--splits must name train, val or test, got {args.splits!r}")
    if args.size is not None and not 32 <= args.size <= 4096:
        parser.error("--size must be in 32..4096")
    if not 0.0 <= args.hard_negatives <= 1.0:
        parser.error("--hard-negatives must be in 0..1")
    if not 0.0 <= args.night <= 1.0:
        parser.error("--night must be in 0..1")
    if args.screens is not None and not 0.0 <= args.screens <= 1.0:
        parser.error("--screens must be in 0..1")
    if not 0.0 <= args.wide_bands <= 1.0:
        parser.error("--wide-bands must be in 0..1")
    photos, skipped = find_all_photos(tuple(args.clean))
    for _, error in skipped:
        print(f"make_dataset: skipping unreadable input {error}")
    if len(photos) < 3:
        parser.error(f"need at least 3 readable photos, found {len(photos)}")
    patterns: tuple[str, ...] = ()
    if args.flare_patterns:
        if not Path(args.flare_patterns).is_dir():
            parser.error(f"--flare-patterns {args.flare_patterns!r} is not a folder")
        patterns = tuple(
            str(p) for p in sorted(Path(args.flare_patterns).iterdir())
            if p.suffix.lower() in PHOTO_SUFFIXES
        )  # fmt: skip
    settings = Settings(
        clean=tuple(args.clean), out=args.out, photos=photos, n_per_class=args.n_per_class,
        n_clean=args.n_clean if args.n_clean is not None else (3 * args.n_per_class) // 2,
        seed=args.seed, size=args.size, hard_fraction=args.hard_fraction, flare_patterns=patterns,
        splits=splits, hard_negatives=args.hard_negatives, night=args.night,
        screens=args.screens, wide_bands=args.wide_bands,
    )  # fmt: skip
    summary = build(settings, args.workers, progress=not args.quiet)
    summary["skipped_inputs"] = [{"name": n, "error": e} for n, e in skipped]
    atomic_write_bytes(Path(args.out) / "build_log.json", json.dumps(summary, indent=1).encode())
    for item_id, error in summary.get("failures", {}).items():
        print(f"make_dataset: item {item_id} failed: {error}")
    if not args.quiet:
        print(json.dumps({k: v for k, v in summary.items() if k not in ("counts", "failures")}))
    if summary.get("failures"):
        print("make_dataset: no manifest written; rerun the same command to retry failed items")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
