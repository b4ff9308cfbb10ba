"""Three-stage training on a tiny random-init model and a tiny dataset: each stage trains only its
parameters, checkpoints resume exactly, the run ends in a bundle the SDK loads."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ipad_sdk import Detector
from ipad_sdk.model import TINY_BACKBONE
from tests.test_dataset import build_fake_dataset
from train.dataset import read_manifest
from train.evaluation import evaluation_metrics
from train.losses import dice_loss, focal_loss, ipad_loss, pixel_targets
from train.train import ABLATIONS, TrainConfig, Trainer, lr_factor


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return build_fake_dataset(tmp_path_factory.mktemp("data") / "ds", n_per_class=6, n_clean=8)


def _config(data, out, **changes) -> TrainConfig:
    base = {
        "data": str(data), "out": str(out), "backbone": TINY_BACKBONE, "image_size": 64,
        "batch_size": 4, "epochs": {"stage1": 1, "stage2": 1, "stage3": 1},
        "max_steps_per_epoch": 2, "prompts": {"n_ctx": 4, "n_deep": 2}, "device": "cpu",
    }  # fmt: skip
    return TrainConfig.from_dict({**base, **changes})


def _snapshot(trainer: Trainer) -> dict[str, torch.Tensor]:
    named = {}
    for prefix, module in (("model", trainer.model), ("heads", trainer.heads),
                           ("prompts", trainer.prompts)):  # fmt: skip
        for name, param in module.named_parameters():
            named[f"{prefix}.{name}"] = param.detach().clone()
    return named


@pytest.mark.parametrize("stage", ["stage1", "stage2", "stage3"])
def test_each_stage_trains_only_its_parameters(stage, tiny_data, tmp_path):
    trainer = Trainer(_config(tiny_data, tmp_path))
    trainer._freeze_for(stage)
    with torch.no_grad():
        trainer.model.set_anchors(trainer.prompts())
    before = _snapshot(trainer)
    optimizer = torch.optim.Adam(trainer.stage_parameters(stage), lr=1e-2)
    trainer.train_epoch(stage, 0, optimizer)
    after = _snapshot(trainer)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    expected_prefixes = {
        "stage1": ("model.adapters", "model.projectors", "heads."),
        "stage2": ("prompts.",),
        "stage3": ("model.adapters", "model.projectors"),
    }[stage]
    assert changed, "nothing trained"
    assert all(k.startswith(expected_prefixes) for k in changed), sorted(changed)[:5]
    trainable = {k for k in before if k.startswith(expected_prefixes)}
    assert len(changed) >= len(trainable) // 2  # most trainable tensors moved


def test_full_run_writes_log_checkpoint_and_bundle(tiny_data, tmp_path):
    best = Trainer(_config(tiny_data, tmp_path)).run()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(x["stage"], x["epoch"]) for x in lines] == [
        ("stage1", 0),
        ("stage2", 0),
        ("stage3", 0),
    ]
    for line in lines:
        assert set(line["val"]) >= {"image", "pixel", "per_class", "score", "accuracy"}
        assert line["train"]["steps"] == 2 and np.isfinite(line["train"]["loss"])
    assert best["stage"] == "stage3"
    test = json.loads((tmp_path / "test_metrics.json").read_text())["test"]
    assert set(test) >= {"image", "pixel", "per_class", "score"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a trained bundle must not warn
        det = Detector(tmp_path / "model.safetensors", device="cpu")
    assert det.config.trained and det.config.backbone == TINY_BACKBONE
    res = det.detect(np.zeros((40, 50, 3), np.uint8))
    assert res.heatmap.shape == (40, 50)

    # benchmarks/accuracy.py through the Detector agrees with the in-training test evaluation
    from benchmarks.accuracy import evaluate, to_markdown

    report = evaluate(str(tmp_path / "model.safetensors"), tiny_data, "test", eval_size=0)
    assert report["images"] == len([r for r in read_manifest(tiny_data) if r["split"] == "test"])
    assert report["image"]["auroc"] == pytest.approx(test["image"]["auroc"], abs=0.02)
    assert "| C-AUROC |" in to_markdown("t", report)


def test_resume_continues_exactly(tiny_data, tmp_path):
    cfg = _config(tiny_data, tmp_path / "a", epochs={"stage1": 2, "stage2": 1, "stage3": 1})
    full = Trainer(cfg)
    full.run()
    reference = full._trainable_state()

    part_cfg = _config(tiny_data, tmp_path / "b", epochs={"stage1": 2, "stage2": 1, "stage3": 1},
                       stages=["stage1"])  # fmt: skip
    Trainer(part_cfg).run()  # stops after stage 1 (checkpoint at stage1 epoch 1)
    resumed_cfg = _config(tiny_data, tmp_path / "b", epochs={"stage1": 2, "stage2": 1, "stage3": 1})
    resumed = Trainer(resumed_cfg)
    resumed.run(resume=True)
    state = resumed._trainable_state()
    for group in ("adapters", "projectors", "prompts"):
        for key, value in reference[group].items():
            torch.testing.assert_close(state[group][key], value, rtol=0, atol=0, msg=key)


def test_lr_factor_warmup_then_cosine():
    assert [lr_factor(s, 10, 2, "cosine") for s in (0, 1)] == [0.5, 1.0]
    assert lr_factor(2, 10, 2, "cosine") == pytest.approx(1.0)
    assert lr_factor(6, 10, 2, "cosine") == pytest.approx(0.5)  # half-way through the decay
    assert lr_factor(10, 10, 2, "cosine") == pytest.approx(0.0)
    assert lr_factor(5, 10, 2, "constant") == 1.0 and lr_factor(0, 10, 4, "constant") == 0.25
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig.from_dict({"data": "d", "out": "o", "schedule": "linear"})


class _Interrupted(Exception):
    pass


def test_resume_mid_stage_restores_the_schedule(tiny_data, tmp_path):
    epochs = {"stage1": 2, "stage2": 1, "stage3": 1}
    sched = {"schedule": "cosine", "warmup_steps": 1, "weight_decay": 0.01, "epochs": epochs}
    full = Trainer(_config(tiny_data, tmp_path / "a", **sched))
    full.run()

    class Dies(Trainer):
        def train_epoch(self, stage, epoch, optimizer, scheduler=None):
            if (stage, epoch) == ("stage1", 1):
                raise _Interrupted
            return super().train_epoch(stage, epoch, optimizer, scheduler)

    with pytest.raises(_Interrupted):
        Dies(_config(tiny_data, tmp_path / "b", **sched)).run()
    resumed = Trainer(_config(tiny_data, tmp_path / "b", **sched))
    resumed.run(resume=True)
    want, got = full._trainable_state(), resumed._trainable_state()
    for group in ("adapters", "projectors", "heads", "prompts"):
        for key, value in want[group].items():
            torch.testing.assert_close(got[group][key], value, rtol=0, atol=0, msg=key)
    records = [json.loads(line) for line in open(tmp_path / "a" / "metrics.jsonl")]
    lrs = [r["train"]["lr_end"] for r in records if r["stage"] == "stage1"]
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)  # cosine reached 0 at the end of the stage
    stage_tests = json.loads((tmp_path / "a" / "stage_test_metrics.json").read_text())
    assert sorted(stage_tests) == ["stage1", "stage2"]  # the final stage: test_metrics.json
    assert set(stage_tests["stage1"]) >= {"image", "pixel", "score"}


def test_ablations_apply(tiny_data, tmp_path):
    cfg = _config(tiny_data, tmp_path, **ABLATIONS["no_multigranularity"])
    assert Trainer(cfg).model.config.feature_layers == (4,)
    assert Trainer(_config(tiny_data, tmp_path, n_adapt=0)).model.adapters.__len__() == 0
    trainer = Trainer(_config(tiny_data, tmp_path / "s1", stages=["stage1"]))
    trainer.run()
    assert not (tmp_path / "s1" / "model.safetensors").exists()  # FC heads: no cosine bundle
    fixed = Trainer(_config(tiny_data, tmp_path / "fx", prompts={"learnable": False}))
    assert fixed.stage_parameters("stage2") == []
    with pytest.raises(ValueError, match="stages"):
        _config(tiny_data, tmp_path, stages=["stage4"])


def test_split_sizes(tiny_data):
    records = read_manifest(tiny_data)
    assert {r["split"] for r in records} == {"train", "val", "test"}


# -- losses and evaluation on hand-made cases ------------------------------------------------


def test_losses_on_hand_made_cases():
    probs = torch.zeros(1, 2, 2, 2)
    probs[0, 0] = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # clean everywhere but pixel (0,1)
    probs[0, 1] = 1.0 - probs[0, 0]
    mask = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    label = torch.tensor([1])
    assert pixel_targets(mask, label).tolist() == [[[0, 1], [0, 0]]]
    assert float(dice_loss(probs, mask)) == pytest.approx(0.0)
    assert float(focal_loss(probs, pixel_targets(mask, label))) == pytest.approx(0.0, abs=1e-5)
    half = torch.full((1, 2, 2, 2), 0.5)
    # focal at p_t = 0.5: 0.25 * ln 2 per pixel
    assert float(focal_loss(half, pixel_targets(mask, label))) == pytest.approx(0.25 * np.log(2))
    # dice with artifact prob 0.5 everywhere, one mask pixel: 1 - (2*0.5 + 1)/(2 + 1 + 1)
    assert float(dice_loss(half, mask)) == pytest.approx(1 - 2.0 / 4.0)
    logits = torch.tensor([[0.0, 0.0]])
    total, parts = ipad_loss(logits, half, label, mask, lambda_cls=4.0)
    expected = 4 * np.log(2) + (1 - 2.0 / 4.0) + 0.25 * np.log(2)
    assert float(total) == pytest.approx(expected, rel=1e-5)
    assert parts["ce"] == pytest.approx(np.log(2), rel=1e-5)


def test_evaluation_metrics_perfect_and_selection_score():
    labels = np.array([0, 1, 2, 3])
    probs = np.eye(4)[labels] * 0.9 + 0.025
    masks = np.zeros((4, 4, 4), bool)
    masks[1:, 1:3, 1:3] = True
    maps = masks.astype(np.float32)
    result = evaluation_metrics(probs, maps, labels, masks, ("clean", "ghosting", "flare", "moire"))
    assert result["image"]["auroc"] == 1.0 and result["pixel"]["aupro"] == pytest.approx(1.0)
    assert result["score"] == pytest.approx(1.0) and result["accuracy"] == 1.0


def test_model_card_is_built_from_the_run_and_reports(tiny_data, tmp_path):
    from benchmarks.accuracy import evaluate
    from train import model_card

    run = tmp_path / "run"
    Trainer(_config(tiny_data, run)).run()
    report = evaluate(str(run / "model.safetensors"), tiny_data, "test", eval_size=0)
    acc = tmp_path / "acc.json"
    acc.write_text(json.dumps(report))
    out = tmp_path / "CARD.md"
    argv = ["--run", str(run), "--files", str(run / "model.safetensors"), "--accuracy", str(acc),
            "--out", str(out)]  # fmt: skip
    assert model_card.main(argv) == 0
    card = out.read_text()
    assert f"| `run/model.safetensors` | {100 * report['image']['auroc']:.1f} |" in card
    assert "Trained from random initialisation" in card
    assert f"{(run / 'model.safetensors').stat().st_size:,}" in card
    for name in ("ghosting", "flare", "moire"):
        assert f"| {name} | {report['per_class'][name]['images']} |" in card
    assert "Measured on real captures" not in card  # only with --real


def test_model_card_tables_real_captures_and_the_global_baseline(tiny_data, tmp_path):
    from benchmarks.accuracy import evaluate
    from train import model_card

    run = tmp_path / "run"
    Trainer(_config(tiny_data, run)).run()
    report = evaluate(str(run / "model.safetensors"), tiny_data, "test", eval_size=0)
    acc, real, sanity = tmp_path / "acc.json", tmp_path / "real.json", tmp_path / "sanity.json"
    acc.write_text(json.dumps(report))
    fig = {"images": 4, "clean": 6, "model_auroc": 0.8125, "global_classifier_auroc": 0.5,
           "best_single_cue": {"cue": "brightness", "auroc": 0.625}}  # fmt: skip
    real.write_text(json.dumps({
        "model": "m.onnx", "data": "real-dev", "images": 10, "clean_flagged": 0.1,
        "counts": {"clean": 6, "flare": 2, "moire": 1, "ghosting": 1},
        "artifact_vs_clean": fig,
        "per_class": {"flare": fig | {"images": 2, "caught": 0.5, "class_prob_auroc": 0.75}},
    }))  # fmt: skip
    sanity.write_text(json.dumps({"split": "test", "images": 9, "auroc_artifact_vs_clean": 0.5}))
    out = tmp_path / "CARD.md"
    argv = ["--run", str(run), "--files", str(run / "model.safetensors"), "--accuracy", str(acc),
            "--real", str(real), "--sanity", str(sanity), "--out", str(out)]  # fmt: skip
    assert model_card.main(argv) == 0
    card = out.read_text()
    assert "## Measured on real captures" in card
    assert ("| `m.onnx` | any artifact vs clean | 4 vs 6 | **0.812** |  | 0.625 (brightness) | "
            "0.500 | 10.0 % of clean flagged |") in card  # fmt: skip
    assert "| `m.onnx` | flare vs clean | 2 vs 6 | **0.812** | 0.750 |" in card
    assert "50.0 % labelled flare" in card
    gap = 100 * (report["image"]["auroc"] - 0.5)
    assert f"model is {gap:.1f} points above it" in card


def test_training_report_tables_every_stage(tiny_data, tmp_path):
    from benchmarks import training_report

    run = tmp_path / "full"
    Trainer(_config(tiny_data, run)).run()
    out = tmp_path / "report"
    assert training_report.main([str(run), "--name", "t", "--out", str(out)]) == 0
    rows = json.loads((out / "t.json").read_text())
    assert [r["model"] for r in rows] == [
        "stage1 only (its last epoch)", "stage2 only (its last epoch)",
        "final: best stage3 epoch 0",
    ]  # fmt: skip
    assert [r["epochs"] for r in rows] == [1, 2, 3]
    final = json.loads((run / "test_metrics.json").read_text())["test"]
    assert f"| {100 * final['image']['auroc']:.1f} |" in (out / "t.md").read_text()
    assert (out / "t_curves.png").stat().st_size > 0


def test_calibrated_bundle_flags_at_most_the_chosen_share_of_clean_images(tiny_data, tmp_path):
    from train.calibrate import calibrate, write_calibrated

    run = tmp_path / "run"
    Trainer(_config(tiny_data, run)).run()
    report = calibrate(run / "model.safetensors", tiny_data, "val", image_fpr=0.25, pixel_fpr=0.1)
    # the trainer does the same at the end of a run when asked
    auto = tmp_path / "auto"
    Trainer(_config(tiny_data, auto, calibrate={"image_fpr": 0.25, "pixel_fpr": 0.1})).run()
    assert json.loads((auto / "calibration.json").read_text()) == report
    assert Detector(auto / "model.safetensors").config.image_threshold == report["image_threshold"]
    assert report["clean_images_flagged"] <= 0.25 and report["clean_pixels_in_mask"] <= 0.1
    out = write_calibrated(run / "model.safetensors", tmp_path / "cal.safetensors", report)
    det = Detector(out, device="cpu")
    assert det.config.image_threshold == pytest.approx(report["image_threshold"])
    assert det.config.pixel_threshold == pytest.approx(report["pixel_threshold"])
    clean = [tiny_data / r["image"] for r in read_manifest(tiny_data)
             if r["split"] == "val" and r["label"] == "clean"]  # fmt: skip
    flagged = [res.label != "clean" for res in det.detect_batch(clean)]
    assert np.mean(flagged) == pytest.approx(report["clean_images_flagged"])


def test_free_anchors_skip_stage2_and_become_the_bundles_anchors(tiny_data, tmp_path):
    """From scratch (conv stem, free anchors): stage II is skipped, stage III starts from the
    stage-I heads' class directions and learns the anchors, and the bundle holds exactly them."""
    cfg = _config(tiny_data, tmp_path, stem="conv", anchors="free", train_backbone=True,
                  weight_decay=0.1)  # fmt: skip
    trainer = Trainer(cfg)
    assert trainer.active_stages() == ["stage1", "stage3"]
    assert trainer.stage_parameters("stage2") == []
    assert any(p is trainer.free_anchors for p in trainer.stage_parameters("stage3"))
    trainer._start_alignment()
    heads = [torch.nn.functional.normalize(h.weight, dim=-1) for h in trainer.heads.values()]
    expected = torch.nn.functional.normalize(heads[0] + heads[1], dim=-1)
    torch.testing.assert_close(trainer.free_anchors.detach(), expected)

    best = trainer.run()
    assert best["stage"] == "stage3"
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["stage"] for x in lines] == ["stage1", "stage3"]
    learned = torch.nn.functional.normalize(trainer.free_anchors.detach(), dim=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(tmp_path / "model.safetensors", device="cpu")
    assert det.config.clip_config["stem"] == "conv"
    from ipad_sdk.model import load_bundle

    torch.testing.assert_close(load_bundle(tmp_path / "model.safetensors", "cpu").anchors, learned)


def test_weight_decay_spares_norms_biases_embeddings_and_anchors(tiny_data, tmp_path):
    trainer = Trainer(_config(tiny_data, tmp_path, anchors="free", train_backbone=True,
                              weight_decay=0.05))  # fmt: skip
    optimizer, _ = trainer.make_optimizer("stage3")
    decayed, spared = optimizer.param_groups
    assert decayed["weight_decay"] == 0.05 and spared["weight_decay"] == 0.0
    spared_ids = {id(p) for p in spared["params"]}
    visual = trainer.model.visual
    for param in (visual.class_embedding, visual.positional_embedding, trainer.free_anchors,
                  visual.ln_post.weight, trainer.model.adapters[0].norm.bias):  # fmt: skip
        assert id(param) in spared_ids
    assert all(p.ndim >= 2 for p in decayed["params"])
    assert id(trainer.model.adapters[0].fc.weight) in {id(p) for p in decayed["params"]}


def test_unknown_anchor_mode_is_refused(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="anchors"):
        _config(tiny_data, tmp_path, anchors="text")


def test_calibration_on_a_folder_of_clean_photos_sets_only_the_image_threshold(
    tiny_bundle, tmp_path
):
    from train import calibrate as cal

    folder = tmp_path / "clean"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (40 + 4 * i, 48, 3), dtype=np.uint8)).save(
            folder / f"{i}.png"
        )
    out = tmp_path / "cal.safetensors"
    assert cal.main([str(tiny_bundle), "--clean-images", str(folder), "--image-fpr", "0.25",
                     "--out", str(out)]) == 0  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before, after = Detector(tiny_bundle), Detector(out)
    scores = np.array([before.detect(p).artifact_score for p in sorted(folder.iterdir())])
    assert after.config.image_threshold == pytest.approx(cal.threshold_at_fpr(scores, 0.25))
    assert after.config.pixel_threshold == before.config.pixel_threshold
    assert np.mean([after.detect(p).is_artifact for p in sorted(folder.iterdir())]) <= 0.25
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no images"):
        cal.calibrate_on_clean_images(tiny_bundle, empty, 0.1)


def test_init_from_a_bundle_continues_that_model_in_stage3(tiny_data, tmp_path):
    """``init``: a run that starts at stage III from a finished bundle starts with exactly its
    network and anchors (not fresh random ones, not heads' directions); a bundle of another
    architecture is refused naming the field."""
    first = Trainer(_config(tiny_data, tmp_path / "a", stem="conv", anchors="free",
                            train_backbone=True, stages=["stage1", "stage3"]))  # fmt: skip
    first.run()
    from ipad_sdk.model import load_bundle

    bundle = tmp_path / "a" / "model.safetensors"
    start = load_bundle(bundle, "cpu")
    second = Trainer(_config(tiny_data, tmp_path / "b", stem="conv", anchors="free",
                             train_backbone=True, stages=["stage3"], init=str(bundle),
                             seed=5))  # fmt: skip
    for name, value in start.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], value, msg=name)
    torch.testing.assert_close(second.free_anchors.detach(), start.anchors)
    before = second.free_anchors.detach().clone()
    second.run()
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [x["stage"] for x in lines] == ["stage3"]
    after = load_bundle(tmp_path / "b" / "model.safetensors", "cpu").anchors
    assert not torch.allclose(after, before)  # trained on from the bundle's anchors
    # one stage-III step moves the anchors a little, not to the heads' (random) directions
    assert torch.nn.functional.cosine_similarity(after, before, dim=-1).min() > 0.9

    with pytest.raises(ValueError, match="init .*clip_config"):
        Trainer(_config(tiny_data, tmp_path / "c", anchors="free", init=str(bundle)))


def test_model_card_lists_every_earlier_phase_latest_first(tmp_path):
    from train import model_card

    def phase(name, init=None, hours=None):
        folder = tmp_path / name
        folder.mkdir()
        cfg = {"data": f"data/{name}", "stages": ["stage3"], "epochs": {"stage3": 2}}
        (folder / "config.json").write_text(json.dumps(cfg | ({"init": init} if init else {})))
        if hours is not None:
            (folder / "metrics.jsonl").write_text(json.dumps({"seconds": hours * 3600}) + "\n")
        return f"{folder}/model.safetensors"

    first = phase("one")  # no metrics.jsonl: no time
    second = phase("two", init=first, hours=0.5)
    lines = model_card._init_lines({"init": second})
    assert lines[1].startswith(f"It started from the model of a previous phase, `{second}`")
    assert lines[3:] == [
        f"- config `{tmp_path / 'two' / 'config.json'}` on `data/two`, epochs stage3 2, 0.50 h",
        f"- config `{tmp_path / 'one' / 'config.json'}` on `data/one`, epochs stage3 2; "
        "from random initialisation",
    ]
    assert model_card._init_lines({}) == []
    loop = phase("loop", init=str(tmp_path / "loop" / "model.safetensors"))
    assert len(model_card._init_lines({"init": loop})) == 4  # a cycle is listed once
    missing = model_card._init_lines({"init": str(tmp_path / "gone" / "model.safetensors")})
    assert missing[-1].endswith("(its run folder's config is not at hand)")


def test_every_set_option_counts(monkeypatch, tmp_path):
    """``--set a=1 --set b=2`` applies both (argparse's plain nargs would keep only the last)."""
    import train.train as trainer

    seen = {}

    class Stop(Exception):
        pass

    def load(path, overrides):
        seen.update(overrides)
        raise Stop

    monkeypatch.setattr(trainer.TrainConfig, "load", staticmethod(load))
    with pytest.raises(Stop):
        trainer.main(["--config", "c.json", "--set", "seed=3", "--set", "out=runs/x", "lr=0.1"])
    assert seen["seed"] == 3 and seen["out"] == "runs/x" and seen["lr"] == 0.1


def test_model_card_data_line_names_each_data_option_it_was_built_with(tmp_path):
    from train import model_card

    dataset = {"builder": 2, "photos": {"a.jpg": "x", "b.jpg": "y"}, "n_clean": 14,
               "n_per_class": 9, "size": 1024, "hard_fraction": 0.3}  # fmt: skip
    sizes = {"train": 40, "val": 6, "test": 5}
    plain = " ".join(model_card._data_lines(tmp_path, dataset, sizes))
    assert "night" not in plain and "frame-filling" not in plain and "bands" not in plain
    assert "2 clean photos" in plain and "14 clean + 9 per artifact" in plain
    full = dataset | {"night": 0.35, "screens": 0.65, "wide_bands": 0.5}
    text = " ".join(model_card._data_lines(tmp_path, full, sizes))
    assert "35 % of every class's images relit" in text
    assert "65 % of the moire images (and of their hard negatives) frame-filling" in text
    assert "50 % of the moire images wide low-frequency rainbow bands" in text
    assert text.endswith("40 train / 6 val / 5 test.")


def test_native_crops_setting_reaches_the_training_items_only(tiny_data, tmp_path):
    """``native_crops=1``: the training set's augmentation returns square native-scale windows of
    image_size to twice that (here 64-128 px of a 400x600 image); 0 keeps the basic crop (>= 80 %
    per side); validation and test items are never augmented."""
    from train.dataset import random_flip_crop

    plain = Trainer(_config(tiny_data, tmp_path / "a"))
    native = Trainer(_config(tiny_data, tmp_path / "b", native_crops=1.0))
    assert plain.train_set.augment is random_flip_crop
    image, mask = np.zeros((400, 600, 3), np.uint8), np.zeros((400, 600), bool)
    for seed in range(20):
        crop, window = native.train_set.augment(image, mask, np.random.default_rng(seed))
        assert crop.shape[0] == crop.shape[1] == window.shape[0] and 64 <= crop.shape[0] <= 128
    for trainer in (plain, native):
        assert trainer.val_set.augment is None and trainer.test_set.augment is None
    with pytest.raises(ValueError, match="native_share"):
        Trainer(_config(tiny_data, tmp_path / "c", native_crops=2.0))


@pytest.mark.parametrize("amp_cpu", [False, True])
def test_amp_cpu_runs_the_forward_pass_in_bfloat16_and_keeps_float32_weights(
    amp_cpu, tiny_data, tmp_path
):
    trainer = Trainer(_config(tiny_data, tmp_path, amp_cpu=amp_cpu))
    trainer._freeze_for("stage1")
    seen = []
    predict = trainer.predict

    def recording(stage, images):
        logits, probs = predict(stage, images)
        seen.append(logits.dtype)
        return logits, probs

    trainer.predict = recording
    before = _snapshot(trainer)
    optimizer = torch.optim.Adam(trainer.stage_parameters("stage1"), lr=1e-2)
    result = trainer.train_epoch("stage1", 0, optimizer)
    assert result["steps"] == 2 and np.isfinite(result["loss"])
    assert seen == [torch.bfloat16 if amp_cpu else torch.float32] * 2
    after = _snapshot(trainer)
    assert all(v.dtype == torch.float32 for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)
