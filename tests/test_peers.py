"""The peer baselines of ``benchmarks/peer_methods`` (paper Tables 1, 3, 4 analogs): shapes, one
optimisation step lowers the loss, the SDK's output contract, the metric code they share, the
generator families, a tiny end-to-end run, and the report rendering against a hand-made JSON."""

from __future__ import annotations

import dataclasses
import json
import statistics

import numpy as np
import pytest
import torch

from benchmarks.peer_methods.data import family, stratified
from benchmarks.peer_methods.models import (
    FreqNet,
    Reconstructor,
    UNet,
    anomaly_contract,
    contract,
    cosine_distance,
)
from benchmarks.peer_methods.report import cell, render, stats, write_report
from benchmarks.peer_methods.runs import (
    CPU_BUDGET,
    chance_levels,
    default_backbone,
    patch_features,
    run_one,
    score,
)
from ipad_sdk.detector import default_model_path
from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip, load_bundle
from tests.test_dataset import build_fake_dataset, fake_synthesize
from train.evaluation import evaluation_metrics
from train.losses import ipad_loss

K = 4  # clean + 3 artifacts
ROUTES = {"ghosting": ("segment", "pasted"), "flare": ("physical", "pattern"),
          "moire": ("grating", "display")}  # fmt: skip


def _batch(size: int = 32, n: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, size, size, generator=gen)
    labels = torch.arange(n) % K
    masks = torch.zeros(n, size, size)
    masks[labels > 0, size // 4 : size // 2, size // 4 : size // 2] = 1.0
    return images, labels, masks


def _tiny_backbone(size: int = 64):
    return build_ipad_clip(TINY_BACKBONE, image_size=size, n_adapt=0, seed=0).eval()


def _recon_outputs(backbone, recon, images):
    distance = cosine_distance(feats := patch_features(backbone, images), recon(feats))
    cfg = backbone.config
    return anomaly_contract(distance, cfg.grid_size, cfg.image_size, cfg.num_classes)


@pytest.mark.parametrize("cls", [UNet, FreqNet])
def test_supervised_shapes_and_a_step_lowers_the_loss(cls):
    torch.manual_seed(0)
    model = cls(K)
    images, labels, masks = _batch()
    logits, probs = model(images)
    assert logits.shape == (4, K) and probs.shape == (4, K, 32, 32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = ipad_loss(*model(images), labels, masks)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_reconstructor_shapes_and_a_step_lowers_the_loss():
    backbone = _tiny_backbone()
    images = _batch(64)[0]
    with torch.no_grad():
        feats = patch_features(backbone, images)
    groups, grid = len(backbone.config.feature_layers), backbone.config.grid_size
    assert feats.shape == (4, groups, grid * grid, backbone.config.width)
    torch.manual_seed(0)
    recon = Reconstructor(backbone.config.width, groups, grid * grid, dropout=0.0)
    assert recon(feats).shape == feats.shape
    optimizer = torch.optim.Adam(recon.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss = cosine_distance(feats, recon(feats)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def _check_contract(class_probs: torch.Tensor, pixel_probs: torch.Tensor, size: int) -> None:
    assert class_probs.shape == (4, K) and pixel_probs.shape == (4, K, size, size)
    assert class_probs.dtype == pixel_probs.dtype == torch.float32
    for p, dim in ((class_probs, 1), (pixel_probs, 1)):
        assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0
        torch.testing.assert_close(p.sum(dim), torch.ones_like(p.sum(dim)))


def test_every_method_has_the_sdk_contract_and_the_same_metric_code_scores_it():
    images, labels, masks = _batch(64)
    sdk_model = _tiny_backbone()
    backbone = _tiny_backbone()
    groups, grid = len(backbone.config.feature_layers), backbone.config.grid_size
    recon = Reconstructor(backbone.config.width, groups, grid * grid).eval()
    with torch.no_grad():
        outputs = {
            "sdk": sdk_model(images),
            "unet": contract(*UNet(K).eval()(images)),
            "freqnet": contract(*FreqNet(K).eval()(images)),
            "recon": _recon_outputs(backbone, recon, images),
        }
    for class_probs, pixel_probs in outputs.values():
        _check_contract(class_probs, pixel_probs, 64)
        maps = (1.0 - pixel_probs[:, 0]).numpy()
        args = (class_probs.numpy(), maps, labels.numpy(), masks.numpy() > 0.5)
        result = score(*args)
        assert result["image"] == evaluation_metrics(*args, ("clean", "ghosting", "flare",
                                                             "moire"))["image"]  # fmt: skip
        assert set(result["per_class_pixel"]) == {"ghosting", "flare", "moire"}
    # no class output: the artifact classes share the anomaly equally
    recon_probs = outputs["recon"][0]
    torch.testing.assert_close(recon_probs[:, 1], recon_probs[:, 3])


def test_families_split_every_route_and_subsets_are_stratified():
    records = []
    for i in range(40):
        label = ("clean", "ghosting", "flare", "moire")[i % 4]
        route = None if label == "clean" else ROUTES[label][(i // 4) % 2]
        records.append({"id": f"{label}_{i:02d}", "label": label, "split": "train",
                        "params": {"synthesis": {"route": route} if route else {}}})  # fmt: skip
    assert [family(r) for r in records[:8]] == [None, "A", "A", "A", None, "B", "B", "B"]
    ids = stratified(records, "train", 3)
    assert len(ids) == 12 and ids == stratified(records, "train", 3)
    only_a = stratified(records, "train", None, lambda r: family(r) in (None, "A"))
    assert {family(r) for r in records if r["id"] in only_a} == {None, "A"}
    assert set(stratified(records, "train", 2)) <= set(ids)  # smaller subsets nest
    with pytest.raises(ValueError, match="no family"):
        family({"id": "x", "label": "moire", "params": {"synthesis": {"route": "other"}}})


def _routed_synthesize(
    label, clean, rng, hard=False, partner=None, flare_patterns=(), *_, **__
):  # lamps, screens, wide_bands: ignored
    sample = fake_synthesize(label, clean, rng, hard, partner, flare_patterns)
    sample.params["route"] = ROUTES[label][int(rng.integers(0, 2))]
    return sample


@pytest.fixture(scope="module")
def routed_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("peers") / "ds"
    return build_fake_dataset(out, n_per_class=8, n_clean=8, synthesize=_routed_synthesize)


@pytest.mark.parametrize(("table", "method"), [("table1", "ipad_full"), ("table4", "unet"),
                                               ("table1", "recon")])  # fmt: skip
def test_a_tiny_run_end_to_end(routed_data, tmp_path, table, method):
    budget = dataclasses.replace(
        CPU_BUDGET, backbone=TINY_BACKBONE, image_size=64, batch_size=4, n_train=2, n_val=1,
        n_test=2, prompts={"n_ctx": 4, "n_deep": 2},
    )  # fmt: skip
    record = run_one(table, method, 0, budget, routed_data, tmp_path / "run", "cmd")
    expected = {"table1": {"test", "test_A", "test_B"}, "table4": {"test_A", "test_B"}}[table]
    assert set(record["eval"]) == expected
    assert record["params"]["trainable"] > 0 and record["train_s"] > 0
    json.dumps(record, default=float)  # the run JSON


def _eval(v: float) -> dict:
    names = ("ghosting", "flare", "moire")
    return {
        "image": {"auroc": v, "ap": v + 0.01, "f1_max": v + 0.02},
        "pixel": {"auroc": v + 0.03, "ap": v - 0.1, "f1_max": v - 0.05, "aupro": v - 0.2},
        "per_class": {n: {"ap": v + 0.001 * i} for i, n in enumerate(names)},
        "per_class_pixel": {n: {"f1_max": v - 0.001 * i} for i, n in enumerate(names)},
        "accuracy": v / 2,
    }


def _run(table: str, method: str, seed: int, v: float) -> dict:
    sets = ("test_A", "test_B") if table == "table4" else ("test", "test_A", "test_B")
    return {"table": table, "method": method, "seed": seed,
            "budget": dataclasses.asdict(CPU_BUDGET), "params": {"inference": 10, "trainable": 5},
            "train_images": 8, "train_s": 60.0 + seed,
            "eval_s": 5.0, "command": f"cmd {method} {seed}",
            "eval": {s: _eval(v + (0.05 if s == "test_B" else 0.0)) for s in sets}}  # fmt: skip


def test_report_numbers_come_from_the_json(tmp_path):
    runs = [_run("table1", "ipad_full", s, v) for s, v in enumerate((0.61, 0.66, 0.70))]
    runs += [_run("table1", "recon", s, v) for s, v in enumerate((0.52, 0.58))]
    runs += [_run("table4", "unet", 0, 0.55)]
    agg = write_report(runs, tmp_path / "p.json", tmp_path / "p.md", None)
    md = (tmp_path / "p.md").read_text()
    saved = json.loads((tmp_path / "p.json").read_text())
    full = saved["table1"][0]["metrics"]["C-AUROC"]
    assert full["mean"] == pytest.approx(statistics.mean([0.61, 0.66, 0.70]))
    assert full["std"] == pytest.approx(statistics.stdev([0.61, 0.66, 0.70]))
    assert "| IPAD-CLIP (full) | 3 | 65.7 ± 4.5 |" in md
    # every mean ± std of the markdown is the JSON's
    for table in ("table1", "table3", "table4"):
        for row in saved[table]:
            for stat in row["metrics"].values():
                assert stat is None or cell(stat) in md
    recon = saved["table1"][1]["metrics"]
    assert recon["4-class acc"] is None and recon["C-AUROC"]["n"] == 2
    assert all(saved["table3"][1]["metrics"][f"{n} C-AP"] is None
               for n in ("ghosting", "flare", "moire"))  # fmt: skip
    assert "n/a" in md
    unet = next(r for r in saved["table4"] if r["method"] == "unet")
    assert unet["metrics"]["B C-AP"] == {"mean": pytest.approx(0.61), "std": None, "n": 1,
                                         "values": [pytest.approx(0.61)]}  # fmt: skip
    assert "| U-Net (supervised CNN) - trained on family A | 1 | 56.0 | 45.0 | 50.0 | 61.0 |" in md
    assert "Rows with fewer than 3 seeds: Reconstruction" in md and "U-Net" in md
    assert agg["n_runs"] == 6 and saved["paper"]["table1"]["rows"]["IPAD-CLIP"][0] == 82.31
    assert render(saved) == md


def test_stats_and_cells():
    assert stats([]) is None and stats([0.5, None]) is None
    assert stats([0.25]) == {"mean": 0.25, "std": None, "n": 1, "values": [0.25]}
    assert cell(stats([0.1, 0.3])) == "20.0 ± 14.1"
    assert cell(None) == "n/a" and cell(stats([61.4]), 1.0, 0) == "61"
    assert np.isclose(stats([1.0, 2.0, 4.0])["std"], np.std([1.0, 2.0, 4.0], ddof=1))


def test_default_backbone_is_the_shipped_model_resized():
    shipped = load_bundle(default_model_path())
    size = shipped.config.image_size
    images = _batch(size, 2)[0]
    with torch.no_grad():
        torch.testing.assert_close(default_backbone(size)(images), shipped(images))
        small = default_backbone(112)
        feats = patch_features(small, images[:, :, :112, :112])
    assert small.config.image_size == 112
    assert feats.shape == (2, len(shipped.config.feature_layers), 49, shipped.config.width)


def _script():
    import benchmarks.peers as script  # the one command (its methods: benchmarks/peer_methods)

    return script


def test_the_command_plans_seed_major_and_skips_finished_runs(tmp_path):
    script = _script()
    plan = script.planned(["table1", "table4"], ["ipad_full", "recon"], [0, 1])
    per_seed = (("table1", "ipad_full"), ("table1", "recon"), ("table4", "ipad_full"))
    assert plan == [(t, m, s) for s in (0, 1) for t, m in per_seed]
    done = tmp_path / "runs" / "cpu" / "table1" / "unet" / "seed0.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps(_run("table1", "unet", 0, 0.6)))
    argv = ["--tables", "table1", "--methods", "unet", "--seeds", "0", "--data", "missing",
            "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]  # fmt: skip
    assert script.main(argv) == 0  # nothing left to train: the finished run is skipped
    saved = json.loads((tmp_path / "out" / "peers.json").read_text())
    assert saved["n_runs"] == 1 and saved["table1"][0]["method"] == "unet"


def test_chance_levels_are_the_artifact_shares():
    records = [{"id": str(i), "label": "clean" if i < 1 else "flare", "mask_fraction": 0.1 * i}
               for i in range(4)]  # fmt: skip
    ids = {name: ["0", "1", "2", "3"] for name in ("test", "test_A", "test_B")}
    chance = chance_levels(records, ids)
    levels = chance["test"]
    assert levels["C-AP"] == 0.75 and levels["C-F1-max"] == pytest.approx(1.5 / 1.75)
    assert levels["S-AP"] == pytest.approx(0.15) and levels["S-F1"] == pytest.approx(0.3 / 1.15)
    assert chance["per_class"]["flare"] == levels and chance["per_class"]["moire"]["C-AP"] == 0.0
