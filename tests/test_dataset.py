"""Dataset building and loading: determinism, resume, refusal, bad inputs, split leakage, loader.

The build pipeline is tested with a stand-in generator (a bright square, honest mask) so these tests
check the pipeline, not the synthesis; tests/test_synth_*.py check the real generators, and one
end-to-end test below runs them all.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import train.make_dataset as make_dataset
from ipad_sdk.metadata import DEFAULT_CLASSES
from train.dataset import IpadDataset, assign_splits, random_flip_crop, read_manifest, split_leaks
from train.synth.common import Sample, visible_mask
from train.synth.scenes import procedural_scene


def fake_synthesize(
    label, clean, rng, hard=False, partner=None, flare_patterns=(), *_, **__
):  # lamps, screens, wide_bands: ignored
    image = clean.copy()
    h, w = image.shape[:2]
    side = max(4, min(h, w) // (6 if hard else 3))
    y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
    image[y : y + side, x : x + side] = 255
    return Sample(image, clean, visible_mask(clean, image), label, {"square": [y, x, side]})


def build_fake_dataset(
    out: Path, n_per_class: int, n_clean: int, synthesize=fake_synthesize
) -> Path:
    """A 64 px dataset of 6 procedural scenes made with a stand-in generator (for module-scoped
    fixtures of the training and benchmark tests)."""
    patch = pytest.MonkeyPatch()
    patch.setattr(make_dataset, "synthesize", synthesize)
    try:
        argv = ["--clean", "procedural:6", "--out", str(out), "--n-per-class", str(n_per_class),
                "--n-clean", str(n_clean), "--size", "64", "--seed", "0", "--quiet"]  # fmt: skip
        assert make_dataset.main(argv) == 0
    finally:
        patch.undo()
    return out


@pytest.fixture
def fake_generators(monkeypatch):
    monkeypatch.setattr(make_dataset, "synthesize", fake_synthesize)


@pytest.fixture
def photo_dir(tmp_path) -> Path:
    folder = tmp_path / "clean"
    folder.mkdir()
    for i in range(5):
        scene = procedural_scene(48 + 8 * i, 64, np.random.default_rng(i))
        Image.fromarray(scene).save(folder / f"photo{i}.png")
    (folder / "SOURCES.md").write_text("# test photos\nprocedural, no licence needed\n")
    return folder


def _build(clean, out, *extra):
    argv = ["--clean", str(clean), "--out", str(out), "--n-per-class", "3", "--seed", "1",
            "--quiet", *extra]  # fmt: skip
    return make_dataset.main(argv)


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "build_log.json"
    }


def test_build_layout_and_records(fake_generators, photo_dir, tmp_path):
    out = tmp_path / "ds"
    assert _build(photo_dir, out) == 0
    records = read_manifest(out)
    assert len(records) == 4 + 3 * 3  # n_clean defaults to 1.5 x n_per_class
    assert [r["label"] for r in records].count("clean") == 4
    for rec in records:
        image = Image.open(out / rec["image"])
        mask = np.asarray(Image.open(out / rec["mask"]))
        assert image.format == "JPEG" and image.size == (rec["width"], rec["height"])
        assert mask.shape == (rec["height"], rec["width"]) and set(np.unique(mask)) <= {0, 255}
        assert (mask.any()) == (rec["label"] != "clean")
        assert rec["mask_fraction"] == pytest.approx((mask > 0).mean())
        assert set(rec["params"]["camera_finish"]) == {
            "gain",
            "offset",
            "gamma",
            "noise_sigma",
            "jpeg_quality",
        }
    assert "test photos" in (out / "SOURCES.md").read_text()
    assert not list(out.rglob("*.tmp"))


def test_build_is_deterministic_and_worker_independent(fake_generators, photo_dir, tmp_path):
    _build(photo_dir, tmp_path / "a")
    _build(photo_dir, tmp_path / "b", "--workers", "2")
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    _build(photo_dir, tmp_path / "c", "--seed", "2")
    assert _digests(tmp_path / "a") != _digests(tmp_path / "c")


def test_a_new_build_in_the_same_process_rereads_its_photos(fake_generators, tmp_path):
    """The worker's decoded-photo cache does not outlive a build: a later build in the same
    process reads its own files, even under the last build's names."""
    folders = {"a": tmp_path / "a", "b": tmp_path / "b"}
    for key, folder in folders.items():
        folder.mkdir()
        for i in range(5):
            scene = procedural_scene(40, 48, np.random.default_rng(i))
            Image.fromarray(scene if key == "a" else 255 - scene).save(folder / f"p{i}.png")
    _build(folders["a"], tmp_path / "ds-a", "--workers", "1")  # photos decoded in this process
    _build(folders["b"], tmp_path / "ds-b", "--workers", "1")
    first, second = _digests(tmp_path / "ds-a"), _digests(tmp_path / "ds-b")
    images = [k for k in first if k.startswith("images/")]
    assert len(images) == 13 and all(first[k] != second[k] for k in images)


def test_resume_makes_only_missing_items(fake_generators, photo_dir, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    _build(photo_dir, out)
    before = _digests(out)
    for item in ("flare_00001", "clean_00003"):
        (out / "items" / f"{item}.json").unlink()
        (out / "images" / f"{item}.jpg").unlink()
    (out / "manifest.jsonl").unlink()
    made = []
    original = make_dataset.make_item
    monkeypatch.setattr(
        make_dataset, "make_item", lambda spec: made.append(spec.id) or original(spec)
    )
    _build(photo_dir, out)
    assert sorted(made) == ["clean_00003", "flare_00001"]
    assert _digests(out) == before


def test_refuses_a_different_dataset_or_foreign_folder(fake_generators, photo_dir, tmp_path):
    out = tmp_path / "ds"
    _build(photo_dir, out)
    with pytest.raises(SystemExit, match="different dataset"):
        _build(photo_dir, out, "--size", "64")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not empty"):
        _build(photo_dir, foreign)


def test_missing_flare_pattern_folder_is_a_usage_error(photo_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _build(photo_dir, tmp_path / "ds", "--flare-patterns", str(tmp_path / "nope"))
    assert "--flare-patterns" in capsys.readouterr().err


def test_unreadable_inputs_are_reported_and_skipped(fake_generators, photo_dir, tmp_path, capsys):
    good = (photo_dir / "photo0.png").read_bytes()
    (photo_dir / "broken.png").write_bytes(good[: len(good) // 2])
    (photo_dir / "empty.jpg").write_bytes(b"")
    out = tmp_path / "ds"
    assert _build(photo_dir, out) == 0
    said = capsys.readouterr().out
    assert "broken.png" in said and "empty.jpg" in said
    log = json.loads((out / "build_log.json").read_text())
    assert sorted(s["name"] for s in log["skipped_inputs"]) == ["broken.png", "empty.jpg"]
    assert {r["source_photo"] for r in read_manifest(out)} <= {f"photo{i}.png" for i in range(5)}


def test_splits_by_source_photo(fake_generators, photo_dir, tmp_path):
    out = tmp_path / "ds"
    _build(photo_dir, out, "--n-per-class", "8")
    records = read_manifest(out)
    assert split_leaks(records) == {}
    assert {r["split"] for r in records} == {"train", "val", "test"}
    # the partner photo (screen content / ghost donor) comes from the same split
    splits = {r["source_photo"]: r["split"] for r in records}
    for rec in records:
        if rec["label"] != "clean":
            assert splits.get(rec["params"]["partner"], rec["split"]) == rec["split"]


def test_assign_splits_fractions_and_stability():
    names = [f"p{i}" for i in range(100)]
    splits = assign_splits(names, seed=3)
    counts = {s: list(splits.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 70, "val": 15, "test": 15}
    assert assign_splits(list(reversed(names)), seed=3) == splits
    assert assign_splits(names, seed=4) != splits


def test_loader_shapes_and_balancing(fake_generators, photo_dir, tmp_path, config):
    out = tmp_path / "ds"
    _build(photo_dir, out, "--n-per-class", "6")
    ds = IpadDataset(out, "train", config, augment=random_flip_crop)
    assert len(ds) > 0 and len(ds) == sum(ds.class_counts().values())
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == np.float32
    assert item["mask"].shape == (32, 32) and set(np.unique(item["mask"])) <= {0.0, 1.0}
    assert 0 <= item["label"] < len(DEFAULT_CLASSES)
    weights = ds.balanced_weights()
    totals = {}
    for rec, wgt in zip(ds.records, weights, strict=True):
        totals[rec["label"]] = totals.get(rec["label"], 0.0) + wgt
    assert np.allclose(list(totals.values()), 1.0)
    for index in range(len(ds)):
        rec, got = ds.records[index], ds[index]
        assert (got["mask"].sum() > 0) == (rec["label"] != "clean") or rec["mask_fraction"] < 0.01
    with pytest.raises(ValueError, match="split"):
        IpadDataset(out, "training", config)


def test_augmentation_changes_per_epoch_and_is_reproducible(
    fake_generators, photo_dir, tmp_path, config
):
    out = tmp_path / "ds"
    _build(photo_dir, out, "--n-per-class", "6")
    ds = IpadDataset(out, "train", config, augment=random_flip_crop, seed=1)
    first = [ds[i]["image"] for i in range(len(ds))]
    ds.set_epoch(1)
    second = [ds[i]["image"] for i in range(len(ds))]
    assert any(not np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    ds.set_epoch(0)
    assert all(np.array_equal(a, ds[i]["image"]) for i, a in enumerate(first))


def test_procedural_inputs_and_size(fake_generators, tmp_path):
    out = tmp_path / "ds"
    assert _build("procedural:3", out, "--size", "80") == 0
    records = read_manifest(out)
    assert all(max(r["width"], r["height"]) == 80 for r in records)
    assert "Procedural scenes" in (out / "SOURCES.md").read_text()


def test_end_to_end_with_real_generators(tmp_path, config):
    """All three real generators through the pipeline, on procedural scenes."""
    out = tmp_path / "ds"
    argv = ["--clean", "procedural:3", "--out", str(out), "--n-per-class", "2", "--n-clean", "1",
            "--size", "128", "--seed", "0", "--quiet"]  # fmt: skip
    assert make_dataset.main(argv) == 0
    records = read_manifest(out)
    assert sorted({r["label"] for r in records}) == sorted(DEFAULT_CLASSES)
    for rec in records:
        mask = np.asarray(Image.open(out / rec["mask"])) > 0
        assert mask.any() == (rec["label"] != "clean"), rec["id"]
        assert rec["params"]["synthesis"] or rec["label"] == "clean"
    json.dumps(records)  # every parameter is JSON


def test_a_failing_item_is_recorded_and_retried(fake_generators, photo_dir, tmp_path, monkeypatch):
    def flaky(
        label, clean, rng, hard=False, partner=None, flare_patterns=(), *_, **__
    ):  # lamps, screens, wide_bands: ignored
        if label == "moire":
            raise RuntimeError("generator bug")
        return fake_synthesize(label, clean, rng, hard, partner, flare_patterns)

    out = tmp_path / "ds"
    monkeypatch.setattr(make_dataset, "synthesize", flaky)
    assert _build(photo_dir, out) == 1
    log = json.loads((out / "build_log.json").read_text())
    assert sorted(log["failures"]) == [f"moire_{k:05d}" for k in range(3)]
    assert "RuntimeError: generator bug" in log["failures"]["moire_00000"]
    assert not (out / "manifest.jsonl").exists()
    monkeypatch.setattr(make_dataset, "synthesize", fake_synthesize)
    assert _build(photo_dir, out) == 0
    assert len(read_manifest(out)) == 13


def test_splits_option_makes_the_same_items_of_those_splits_only(
    fake_generators, photo_dir, tmp_path
):
    _build(photo_dir, tmp_path / "all")
    _build(photo_dir, tmp_path / "test", "--splits", "test")
    full = {r["id"]: r for r in read_manifest(tmp_path / "all")}
    subset = read_manifest(tmp_path / "test")
    assert subset and {r["split"] for r in subset} == {"test"}
    assert [r["id"] for r in subset] == [i for i, r in full.items() if r["split"] == "test"]
    for rec in subset:  # identical items: same seeds, same pixels
        for key in ("image", "mask"):
            a = (tmp_path / "all" / rec[key]).read_bytes()
            assert (tmp_path / "test" / rec[key]).read_bytes() == a
    with pytest.raises(SystemExit):
        _build(photo_dir, tmp_path / "bad", "--splits", "holdout")


def test_several_clean_folders_are_pooled_and_names_must_not_repeat(
    fake_generators, photo_dir, tmp_path
):
    second = tmp_path / "more"
    second.mkdir()
    for i in range(2):
        scene = procedural_scene(40, 56, np.random.default_rng(10 + i))
        Image.fromarray(scene).save(second / f"extra{i}.png")
    out = tmp_path / "ds"
    assert _build(photo_dir, out, "--clean", str(second)) == 0
    photos = {r["source_photo"] for r in read_manifest(out)}
    assert {"extra0.png", "extra1.png"} & photos and {"photo0.png"} & photos
    identity = json.loads((out / "dataset.json").read_text())
    assert len(identity["photos"]) == 7
    sources = (out / "SOURCES.md").read_text()
    assert "test photos" in sources and "no SOURCES.md found beside" in sources
    with pytest.raises(SystemExit, match="names seen before"):
        _build(photo_dir, tmp_path / "dup", "--clean", str(photo_dir))


def test_hard_negatives_are_clean_references_of_screens_and_fusions(photo_dir, tmp_path):
    calls = []

    def reference_differs(
        label, clean, rng, hard=False, partner=None, flare_patterns=(), *_, **__
    ):  # lamps, screens, wide_bands: ignored
        calls.append(label)
        sample = fake_synthesize(label, clean, rng, hard, partner, flare_patterns)
        reference = clean.copy()
        reference[:4] = 7  # a reference that is not the plain photo, to see which one is kept
        return Sample(sample.image, reference, sample.mask, label, {"fake": True})

    patch = pytest.MonkeyPatch()
    patch.setattr(make_dataset, "synthesize", reference_differs)
    try:
        out = tmp_path / "ds"
        assert _build(photo_dir, out, "--n-clean", "12", "--hard-negatives", "0.5") == 0
    finally:
        patch.undo()
    clean = [r for r in read_manifest(out) if r["label"] == "clean"]
    hard = [r for r in clean if r["hard"]]
    assert 0 < len(hard) < len(clean)
    for rec in hard:
        assert rec["params"]["synthesis"]["hard_negative_of"] in make_dataset.HARD_NEGATIVE_SOURCES
        assert rec["mask_fraction"] == 0.0
        image = np.asarray(Image.open(out / rec["image"]).convert("L"), np.float32)
        assert abs(image[:4].mean() - 7) < abs(image[4:].mean() - 7)  # the reference was kept
    for rec in clean:
        if not rec["hard"]:
            assert rec["params"]["synthesis"] == {}
    # one synthesis per artifact item and per hard negative, none for plain clean items
    assert len(calls) == 3 * 3 + len(hard)


def test_hard_negatives_off_leaves_the_item_plan_unchanged(photo_dir):
    photos = {p.name: str(p) for p in sorted(photo_dir.glob("*.png"))}
    base = dict(clean=(str(photo_dir),), out="x", photos=photos, n_per_class=3, n_clean=6,
                seed=1, size=None, hard_fraction=0.3, flare_patterns=())  # fmt: skip
    plain = make_dataset.plan_items(make_dataset.Settings(**base))
    assert all(not s.hard for s in plain if s.label == "clean")
    with_negatives = make_dataset.plan_items(make_dataset.Settings(**base, hard_negatives=0.5))
    artifacts = [s for s in plain if s.label != "clean"]
    assert artifacts == [s for s in with_negatives if s.label != "clean"]
    assert "hard_negatives" not in make_dataset.Settings(**base).identity()


def test_screens_share_sets_frame_filling_moire_and_unset_keeps_the_default(photo_dir, tmp_path):
    photos = {p.name: str(p) for p in sorted(photo_dir.glob("*.png"))}
    base = dict(clean=(str(photo_dir),), out="x", photos=photos, n_per_class=3, n_clean=6,
                seed=1, size=None, hard_fraction=0.3, flare_patterns=())  # fmt: skip
    assert "screens" not in make_dataset.Settings(**base).identity()
    assert make_dataset.Settings(**base, screens=0.0).identity()["screens"] == 0.0
    placements = {}
    for share in ("1", "0"):
        out = tmp_path / f"screens{share}"
        assert _build(photo_dir, out, "--n-clean", "0", "--screens", share) == 0
        placements[share] = [r["params"]["synthesis"]["placement"]
                             for r in read_manifest(out) if r["label"] == "moire"]  # fmt: skip
    assert len(placements["1"]) == 3 and set(placements["1"]) == {"full_frame"}
    assert len(placements["0"]) == 3 and "full_frame" not in placements["0"]
    with pytest.raises(SystemExit):
        _build(photo_dir, tmp_path / "bad", "--screens", "1.5")


def test_night_share_relights_items_of_every_class_and_off_changes_nothing(photo_dir, tmp_path):
    photos = {p.name: str(p) for p in sorted(photo_dir.glob("*.png"))}
    base = dict(clean=(str(photo_dir),), out="x", photos=photos, n_per_class=3, n_clean=6,
                seed=1, size=None, hard_fraction=0.3, flare_patterns=())  # fmt: skip
    plain = make_dataset.plan_items(make_dataset.Settings(**base))
    assert not any(s.night for s in plain)
    assert "night" not in make_dataset.Settings(**base).identity()
    assert make_dataset.Settings(**base, night=0.5).identity()["night"] == 0.5

    planned = make_dataset.plan_items(
        make_dataset.Settings(**base | {"n_per_class": 4, "n_clean": 8}, night=0.5)
    )
    out = tmp_path / "ds"
    assert _build(photo_dir, out, "--n-per-class", "4", "--n-clean", "8", "--seed", "1",
                  "--night", "0.5") == 0  # fmt: skip
    records = read_manifest(out)
    night = [r for r in records if "night" in r["params"]["synthesis"]]
    assert {r["id"] for r in night} == {s.id for s in planned if s.night}
    assert {r["label"] for r in night} == {s.label for s in planned if s.night}
    assert len({r["label"] for r in night}) >= 3  # drawn for every class, clean included
    for rec in night:
        assert rec["params"]["synthesis"]["night"]["lamps"]
        if rec["label"] == "flare":
            assert rec["params"]["synthesis"]["route"] == "night"
    day = [r for r in records if "night" not in r["params"]["synthesis"]]
    assert day and all(r["params"]["synthesis"].get("route") != "night" for r in day)


def test_wide_bands_reach_moire_items_only_and_change_no_other_item(photo_dir, tmp_path):
    """``--wide-bands F`` reaches the moire generator for moire items only (not for hard negatives
    made from a moire reference), is part of the identity, and leaves every other item
    byte-identical; the generators are stand-ins behind the real dispatch (``synthesize``)."""
    import train.synth.flare
    import train.synth.ghosting
    import train.synth.moire

    def stand_in(label):
        def generator(clean, rng, hard=False, wide_bands=0.0, **_):
            sample = fake_synthesize(label, clean, rng, hard)
            params = {"wide_bands": wide_bands} if label == "moire" else {}
            return Sample(sample.image, clean, sample.mask, label, params)

        return generator

    patch = pytest.MonkeyPatch()
    for module, name in ((train.synth.flare, "flare"), (train.synth.ghosting, "ghosting"),
                         (train.synth.moire, "moire")):  # fmt: skip
        patch.setattr(module, f"synthesize_{name}", stand_in(name))
    try:
        extra = ("--n-clean", "8", "--hard-negatives", "0.5")
        assert _build(photo_dir, tmp_path / "plain", *extra) == 0
        assert _build(photo_dir, tmp_path / "wide", *extra, "--wide-bands", "0.5") == 0
        with pytest.raises(SystemExit):
            _build(photo_dir, tmp_path / "bad", "--wide-bands", "2")
    finally:
        patch.undo()
    identity = json.loads((tmp_path / "wide" / "dataset.json").read_text())
    assert identity["wide_bands"] == 0.5
    assert "wide_bands" not in json.loads((tmp_path / "plain" / "dataset.json").read_text())
    records = read_manifest(tmp_path / "wide")
    moire = {r["id"] for r in records if r["label"] == "moire"}
    negatives = [r for r in records if r["hard"] and r["label"] == "clean"]
    assert len(moire) == 3 and negatives
    for rec in records:
        if rec["label"] == "moire":
            assert rec["params"]["synthesis"]["wide_bands"] == 0.5
    of_moire = [r for r in negatives if r["params"]["synthesis"]["hard_negative_of"] == "moire"]
    assert of_moire
    for rec in of_moire:
        assert rec["params"]["synthesis"]["synthesis"]["wide_bands"] == 0.0
    plain, wide = _digests(tmp_path / "plain"), _digests(tmp_path / "wide")
    assert plain.keys() == wide.keys()
    differ = {k for k in plain if plain[k] != wide[k]}
    assert differ - {"dataset.json", "manifest.jsonl"} == {f"items/{i}.json" for i in moire}


def test_native_crop_is_a_1_to_2x_window_holding_an_artifact_pixel():
    from train.dataset import native_crop

    h, w, side = 300, 700, 64
    image = np.stack(np.mgrid[0:h, 0:w], axis=-1)  # each pixel holds its (row, column)
    mask = np.zeros((h, w), bool)
    mask[250:256, 600:605] = True  # a small artifact near a corner
    sides = set()
    for seed in range(60):
        crop, window = native_crop(image, mask, np.random.default_rng(seed), side)
        assert crop.shape[:2] == window.shape and window.shape[0] == window.shape[1]
        assert side <= window.shape[0] <= 2 * side
        assert window.any(), seed  # the artifact is in the window
        sides.add(window.shape[0])
        n = window.shape[0]  # a 1:1 window: contiguous rows, columns contiguous or mirrored
        assert set(np.diff(crop[:, 0, 0])) == {1} and len(set(crop[:, :, 0].T.ravel())) == n
        assert set(np.diff(crop[0, :, 1])) in ({1}, {-1})
        assert np.array_equal(window, mask[crop[..., 0], crop[..., 1]])  # the mask moved with it
    assert len(sides) > 10  # sizes spread over the range
    clean = np.zeros((h, w), bool)
    crop, window = native_crop(image, clean, np.random.default_rng(0), side)
    assert not window.any() and side <= window.shape[0] <= 2 * side
    small = np.zeros((40, 50, 3), np.uint8)
    crop, _ = native_crop(small, np.zeros((40, 50), bool), np.random.default_rng(0), side)
    assert crop.shape == (40, 40, 3)  # clipped to the image


def test_training_augment_mixes_native_windows_with_the_basic_crop():
    from train.dataset import training_augment

    assert training_augment(0.0, 64) is random_flip_crop
    with pytest.raises(ValueError, match="native_share"):
        training_augment(1.5, 64)
    image = np.zeros((400, 600, 3), np.uint8)
    mask = np.zeros((400, 600), bool)
    mixed = training_augment(0.5, 64)
    native = 0
    for seed in range(200):
        crop, _ = mixed(image, mask, np.random.default_rng(seed))
        if crop.shape[0] <= 128:  # random_flip_crop keeps >= 80 % per side: >= 320 rows
            native += 1
            assert crop.shape[0] == crop.shape[1] >= 64
        else:
            assert crop.shape[0] >= 320 and crop.shape[1] >= 480
    assert 70 <= native <= 130  # about half (binomial, n=200: +-4 sd)
