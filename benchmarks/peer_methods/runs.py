"""One peer run: train ``method`` with ``seed`` under a :class:`Budget` on a table's training
subset, evaluate it on the table's test subsets with the SDK's metric code, and return the record.

IPAD-CLIP rows go through ``train.train.Trainer`` itself (the same stages, loss, optimiser,
schedule, ablation overrides of ``train.train.ABLATIONS``); only the datasets are swapped for the
fixed subsets. The supervised baselines get the same loss (``ipad_loss``), optimiser, schedule,
class-balanced sampling and augmentation for ``3 x epochs_per_stage`` epochs (as many passes over
the subset as the full IPAD-CLIP run's three stages). The reconstruction baseline trains on clean
training images only, with the same number of passes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from ipad_sdk.detector import default_model_path
from ipad_sdk.metadata import DEFAULT_CLASSES, ModelConfig
from ipad_sdk.model import IpadClip, build_ipad_clip, load_bundle, model_config
from ipad_sdk.model.backbone import clip_config_for
from train.dataset import random_flip_crop, read_manifest
from train.evaluation import evaluation_metrics, pixel_metrics
from train.losses import ipad_loss
from train.train import ABLATIONS, TrainConfig, Trainer, lr_factor

from .data import SubsetDataset, in_family, stratified
from .models import FreqNet, Reconstructor, UNet, anomaly_contract, contract, cosine_distance

#: IPAD-CLIP rows: method name -> ``train.train.ABLATIONS`` key.
IPAD_METHODS = {
    "ipad_full": "none",
    "ipad_no_learnable_text": "no_learnable_text",
    "ipad_no_object_context": "no_object_context",
    "ipad_no_adapters": "no_adapters",
    "ipad_no_multigranularity": "no_multigranularity",
    "ipad_stage1_only": "stage1_only",
    "ipad_stages23_only": "stages23_only",
}
#: ``recon``: random-init frozen backbone (CPU budget) or pretrained CLIP (``--paper``);
#: ``recon_default``: the shipped default model's ViT, whose features were trained with labels.
RECON_METHODS = ("recon", "recon_default")
METHODS = (*IPAD_METHODS, "unet", "freqnet", *RECON_METHODS)
#: Trained on family A for Table 4 (the reconstruction baselines never see artifacts: their
#: Table 1 runs are evaluated on the family test sets instead).
TABLE4_METHODS = ("ipad_full", "unet", "freqnet")
TABLES = ("table1", "table4")
LAMBDA_CLS = 4.0

Predict = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Budget:
    """The shared setting of every run: backbone, input size, optimisation and subset sizes
    (images per class; ``None`` = the whole split)."""

    name: str
    backbone: str
    pretrained: str | None
    image_size: int
    train_backbone: bool
    batch_size: int
    lr: float
    weight_decay: float
    schedule: str
    warmup_steps: int
    epochs_per_stage: int
    n_train: int | None
    n_val: int | None
    n_test: int | None
    device: str
    workers: int
    cache: bool
    threads: int | None
    prompts: dict[str, int] = field(default_factory=dict)

    @property
    def passes(self) -> int:
        """Epochs of the baselines: as many passes as IPAD-CLIP's three stages together."""
        return 3 * self.epochs_per_stage


#: What runs here: 1 CPU thread (2 shared cores), sized so that all 39 runs take about 75 min.
CPU_BUDGET = Budget(
    name="cpu", backbone="IPAD-Small-ViT-16", pretrained=None, image_size=112,
    train_backbone=True, batch_size=16, lr=5e-4, weight_decay=0.05, schedule="cosine",
    warmup_steps=10, epochs_per_stage=1, n_train=400, n_val=50, n_test=200, device="cpu",
    workers=0, cache=True, threads=1, prompts={"n_ctx": 8, "n_deep": 4, "deep_depth": 9},
)  # fmt: skip


def paper_budget(pretrained: str) -> Budget:
    """The paper's configuration (Sec. 5.1): frozen pretrained ViT-L/14 (a local open_clip
    checkpoint file) at 518 px, batch 8, Adam 1e-3, 20 epochs per stage, whole splits, GPU."""
    return Budget(
        name="paper", backbone="ViT-L-14", pretrained=pretrained, image_size=518,
        train_backbone=False, batch_size=8, lr=1e-3, weight_decay=0.0, schedule="constant",
        warmup_steps=0, epochs_per_stage=20, n_train=None, n_val=None, n_test=None,
        device="cuda", workers=4, cache=False, threads=None,
        prompts={"n_ctx": 12, "n_deep": 4, "deep_depth": 9},
    )  # fmt: skip


def subsets(records: Sequence[dict[str, Any]], budget: Budget) -> dict[str, list[str]]:
    """Every fixed id list: training/validation subsets per table, the clean training images of
    the reconstruction baseline, the Table 1 test subset and the two family test subsets."""
    clean_n = None if budget.n_train is None else 4 * budget.n_train
    return {
        "train/table1": stratified(records, "train", budget.n_train),
        "train/table4": stratified(records, "train", budget.n_train, in_family("A")),
        "train/clean": stratified(records, "train", clean_n, lambda r: r["label"] == "clean"),
        "val/table1": stratified(records, "val", budget.n_val),
        "val/table4": stratified(records, "val", budget.n_val, in_family("A")),
        "test": stratified(records, "test", budget.n_test),
        "test_A": stratified(records, "test", budget.n_test, in_family("A")),
        "test_B": stratified(records, "test", budget.n_test, in_family("B")),
    }


def chance_levels(records: Sequence[dict[str, Any]], ids: dict[str, list[str]]) -> dict[str, Any]:
    """What a constant score gets on each test subset: C-AP = the artifact share ``p`` of the
    images, C-F1-max = ``2p / (1 + p)`` (everything flagged), S-AP ~ the artifact share ``q`` of
    the pixels (mean ``mask_fraction`` of the manifest, at the stored image size) and S-F1 ~
    ``2q / (1 + q)``; for ``test`` also per class (the class's and the clean images)."""
    by_id = {r["id"]: r for r in records}

    def levels(chosen: list[dict[str, Any]]) -> dict[str, float]:
        share = sum(r["label"] != "clean" for r in chosen) / len(chosen)
        pixels = sum(r["mask_fraction"] for r in chosen) / len(chosen)
        return {"C-AP": share, "C-F1-max": 2 * share / (1 + share), "S-AP": pixels,
                "S-F1": 2 * pixels / (1 + pixels)}  # fmt: skip

    out: dict[str, Any] = {}
    for name in ("test", "test_A", "test_B"):
        out[name] = levels([by_id[i] for i in ids[name]])
    test = [by_id[i] for i in ids["test"]]
    out["per_class"] = {c: levels([r for r in test if r["label"] in (c, "clean")])
                        for c in DEFAULT_CLASSES[1:]}  # fmt: skip
    return out


def eval_sets(table: str, method: str) -> tuple[str, ...]:
    """The test subsets a run is evaluated on."""
    if table == "table4":
        return ("test_A", "test_B")
    if method in (*TABLE4_METHODS, *RECON_METHODS):
        return ("test", "test_A", "test_B")
    return ("test",)


def preprocessing_config(budget: Budget) -> ModelConfig:
    """The input size, normalisation and classes every method's data uses (the IPAD model's)."""
    clip_config = clip_config_for(budget.backbone, budget.image_size)
    return model_config(budget.backbone, clip_config, classes=DEFAULT_CLASSES)


def count(params: Iterable[nn.Parameter]) -> int:
    """Number of distinct parameter elements."""
    seen = {id(p): p for p in params}
    return int(sum(p.numel() for p in seen.values()))


# -- IPAD-CLIP ------------------------------------------------------------------------------------
class PeerTrainer(Trainer):
    """``Trainer`` on fixed subsets."""

    def __init__(self, cfg: TrainConfig, ids: dict[str, Sequence[str]], cache: bool) -> None:
        super().__init__(cfg)
        config = self.model.config
        self.train_set = SubsetDataset(
            cfg.data, "train", config, ids["train"], random_flip_crop, cfg.seed, cache
        )
        self.val_set = SubsetDataset(cfg.data, "val", config, ids["val"], cache=cache)
        self.test_set = SubsetDataset(cfg.data, "test", config, ids["test"], cache=cache)


def train_ipad(
    method: str, seed: int, budget: Budget, data: Path, out: Path, ids: dict[str, Sequence[str]]
) -> tuple[Predict, dict[str, int]]:
    """Run ``train.train``'s three-stage training with ``method``'s ablation."""
    base = {
        "data": str(data), "out": str(out), "backbone": budget.backbone,
        "pretrained": budget.pretrained, "image_size": budget.image_size,
        "train_backbone": budget.train_backbone, "batch_size": budget.batch_size, "lr": budget.lr,
        "weight_decay": budget.weight_decay, "schedule": budget.schedule,
        "warmup_steps": budget.warmup_steps,
        "epochs": {s: budget.epochs_per_stage for s in ("stage1", "stage2", "stage3")},
        "prompts": budget.prompts, "device": budget.device, "workers": budget.workers,
        "seed": seed, "lambda_cls": LAMBDA_CLS, "stage_test": False,  # per-stage tests: not tabled
        "description": f"peers benchmark {method} (budget {budget.name})",
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    base_path = out / "peer-config.json"
    base_path.write_text(json.dumps(base, indent=1))
    cfg = TrainConfig.load(base_path, ABLATIONS[IPAD_METHODS[method]])
    trainer = PeerTrainer(cfg, ids, budget.cache)
    trainer.run()
    (out / "checkpoint.pt").unlink(missing_ok=True)  # resumability is per run here
    final = trainer.active_stages()[-1]
    trainer.model.eval()
    trainer.heads.eval()

    def predict(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return contract(*trainer.predict(final, images))

    trainable = [p for s in trainer.cfg.stages for p in trainer.stage_parameters(s)]
    inference = list(trainer.model.parameters())
    if final == "stage1":
        inference += list(trainer.heads.parameters())
    return predict, {"inference": count(inference), "trainable": count(trainable)}


# -- supervised baselines -------------------------------------------------------------------------
def optimise(
    module: nn.Module,
    dataset: SubsetDataset,
    budget: Budget,
    seed: int,
    loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    desc: str,
) -> None:
    """AdamW + ``train.train``'s schedule over ``budget.passes`` class-balanced epochs."""
    steps = math.ceil(len(dataset) / budget.batch_size)
    total = budget.passes * steps
    optimizer = torch.optim.AdamW(
        [p for p in module.parameters() if p.requires_grad],
        lr=budget.lr,
        weight_decay=budget.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, budget.warmup_steps, budget.schedule)
    )
    weights = torch.as_tensor(dataset.balanced_weights())
    module.train()
    for epoch in range(budget.passes):
        dataset.set_epoch(epoch)
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        sampler = WeightedRandomSampler(weights, len(dataset), generator=gen)
        loader = DataLoader(dataset, budget.batch_size, sampler=sampler,
                            num_workers=budget.workers)  # fmt: skip
        for batch in tqdm(loader, desc=f"{desc} epoch {epoch}", leave=False, unit="batch"):
            loss = loss_fn(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    module.eval()


def train_supervised(
    method: str, seed: int, budget: Budget, dataset: SubsetDataset
) -> tuple[Predict, dict[str, int]]:
    """Train the U-Net or the FreqNet-like detector with ``ipad_loss``."""
    torch.manual_seed(seed)
    k = len(DEFAULT_CLASSES)
    model = (UNet(k) if method == "unet" else FreqNet(k)).to(budget.device)

    def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits, probs = model(batch["image"].to(budget.device))
        labels, masks = batch["label"].to(budget.device), batch["mask"].to(budget.device)
        return ipad_loss(logits, probs, labels, masks, LAMBDA_CLS)[0]

    optimise(model, dataset, budget, seed, loss_fn, method)

    def predict(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return contract(*model(images))

    n = count(model.parameters())
    return predict, {"inference": n, "trainable": n}


# -- reconstruction baseline ----------------------------------------------------------------------
def default_backbone(image_size: int) -> IpadClip:
    """The shipped default model (``ipad-default.safetensors``: ViT + adapters) at
    ``image_size``, its positional embeddings resized bicubically."""
    source = load_bundle(default_model_path())
    cfg = source.config
    target = build_ipad_clip(cfg.backbone, image_size=image_size, n_adapt=cfg.n_adapt,
                             feature_layers=cfg.feature_layers, beta=cfg.beta,
                             stem=cfg.clip_config.get("stem", "patch"))  # fmt: skip
    state = source.state_dict()
    pos = state["visual.positional_embedding"]
    old, new = cfg.grid_size, target.config.grid_size
    grid = pos[1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    state["visual.positional_embedding"] = torch.cat([pos[:1], grid.flatten(2)[0].t()])
    target.load_state_dict(state)
    return target


def patch_features(model: IpadClip, images: torch.Tensor) -> torch.Tensor:
    """Layer-normalised patch tokens ``[B,G,N,W]`` of the ViT blocks ``config.feature_layers``
    (after the model's adapters, as :meth:`IpadClip.encode` takes them)."""
    _, taken = model.block_features(images)
    return torch.stack([F.layer_norm(t[:, 1:], t.shape[-1:]) for t in taken], dim=1)


def train_recon(
    method: str, seed: int, budget: Budget, dataset: SubsetDataset
) -> tuple[Predict, dict[str, int]]:
    """A frozen backbone (``recon``: ``budget``'s, random init without ``budget.pretrained``;
    ``recon_default``: :func:`default_backbone`) + a :class:`Reconstructor` trained on clean
    images with the cosine-distance loss."""
    if method == "recon_default":
        backbone = default_backbone(budget.image_size)
    else:
        backbone = build_ipad_clip(budget.backbone, pretrained=budget.pretrained,
                                   image_size=budget.image_size, n_adapt=0, seed=seed)  # fmt: skip
    backbone.to(budget.device).eval()
    config = backbone.config
    torch.manual_seed(seed)
    recon = Reconstructor(config.width, len(config.feature_layers), config.grid_size**2)
    recon.to(budget.device)

    def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            feats = patch_features(backbone, batch["image"].to(budget.device))
        return cosine_distance(feats, recon(feats)).mean()

    optimise(recon, dataset, budget, seed, loss_fn, "recon")

    def predict(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = patch_features(backbone, images)
        distance = cosine_distance(feats, recon(feats))
        return anomaly_contract(distance, config.grid_size, config.image_size, config.num_classes)

    trainable = count(recon.parameters())
    return predict, {"inference": trainable + count(backbone.parameters()), "trainable": trainable}


# -- evaluation -----------------------------------------------------------------------------------
@torch.no_grad()
def collect(
    predict: Predict, dataset: SubsetDataset, batch_size: int, device: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Class probabilities, artifact maps ``1 - P_pixel(clean)``, labels and bool masks."""
    probs, maps, labels, masks = [], [], [], []
    for batch in DataLoader(dataset, batch_size):
        class_probs, pixel_probs = predict(batch["image"].to(device))
        probs.append(class_probs.float().cpu().numpy())
        maps.append((1.0 - pixel_probs[:, 0]).float().cpu().numpy())
        labels.append(batch["label"].numpy())
        masks.append(batch["mask"].numpy() > 0.5)
    return (np.concatenate(probs), np.concatenate(maps), np.concatenate(labels),
            np.concatenate(masks))  # fmt: skip


def score(
    class_probs: np.ndarray, maps: np.ndarray, labels: np.ndarray, masks: np.ndarray
) -> dict[str, Any]:
    """``train.train.evaluation_metrics`` plus per-class pixel metrics (class-k + clean images)."""
    result = evaluation_metrics(class_probs, maps, labels, masks, DEFAULT_CLASSES)
    result["per_class_pixel"] = {}
    for k, name in enumerate(DEFAULT_CLASSES[1:], start=1):
        keep = (labels == k) | (labels == 0)
        if (labels == k).any():
            result["per_class_pixel"][name] = pixel_metrics(maps[keep], masks[keep])
    return result


def run_one(
    table: str, method: str, seed: int, budget: Budget, data: Path, out: Path, command: str
) -> dict[str, Any]:
    """Train and evaluate one (table, method, seed); the record written as the run's JSON."""
    records = read_manifest(data)
    ids = subsets(records, budget)
    config = preprocessing_config(budget)
    tic = time.perf_counter()
    if method in IPAD_METHODS:
        run_ids = {"train": ids[f"train/{table}"], "val": ids[f"val/{table}"],
                   "test": ids[eval_sets(table, method)[0]]}  # fmt: skip
        predict, params = train_ipad(method, seed, budget, data, out, run_ids)
        train_size = len(run_ids["train"])
    else:
        key = "train/clean" if method in RECON_METHODS else f"train/{table}"
        train_set = SubsetDataset(data, "train", config, ids[key], augment=random_flip_crop,
                                  seed=seed, cache=budget.cache)  # fmt: skip
        train_size = len(train_set)
        if method in RECON_METHODS:
            predict, params = train_recon(method, seed, budget, train_set)
        else:
            predict, params = train_supervised(method, seed, budget, train_set)
    train_s = time.perf_counter() - tic
    tic = time.perf_counter()
    evaluation = {}
    for name in eval_sets(table, method):
        test_set = SubsetDataset(data, "test", config, ids[name], cache=budget.cache)
        evaluation[name] = score(*collect(predict, test_set, 2 * budget.batch_size, budget.device))
        evaluation[name]["n_images"] = len(test_set)
    return {
        "table": table, "method": method, "seed": seed, "budget": asdict(budget),
        "params": params, "train_images": train_size, "train_s": train_s,
        "eval_s": time.perf_counter() - tic, "threads": torch.get_num_threads(),
        "command": command, "eval": evaluation,
    }  # fmt: skip
