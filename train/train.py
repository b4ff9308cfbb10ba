"""Three-stage IPAD-CLIP training (paper Sec. 4.4) ending in an inference bundle.

    python train/train.py --config train/configs/tiny-cpu.json [--ablation NAME] [--set key=value]
        [--resume]

Stage I (vision adapt): adapters + projectors + an FC classification head on the global feature and
an FC segmentation head on the patch features. Stage II (text prompts): only the learnable prompts;
predictions are cosine similarities against the prompt embeddings (Eq. 12). Stage III (alignment):
adapters + projectors against the frozen stage-II anchors. Loss everywhere: ``lambda*CE + Dice +
Focal``. With ``anchors="free"`` (for backbones trained from scratch, where a random text tower
carries no meaning) stage II is skipped and stage III learns the anchor matrix itself, starting
from the stage-I heads. AdamW (no decay on norms, biases, embeddings and anchors), validation
after every epoch (image AUROC/AP/F1 and pixel AUROC/AP/F1/AUPRO), ``metrics.jsonl``, a
checkpoint after every epoch (``--resume`` continues where it stopped), the best final-stage epoch
kept, at the end the anchors folded into ``model.safetensors``, and the best weights evaluated on
the test split (``test_metrics.json``).
The text encoder is used here only: the bundle holds a constant anchor matrix.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as `python train/train.py`: make `train` importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import copy
import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from ipad_sdk.fileio import atomic_write_bytes
from ipad_sdk.metadata import DEFAULT_CLASSES
from ipad_sdk.model import IpadClip, model_config, save_bundle
from ipad_sdk.model.backbone import create_clip, import_open_clip
from ipad_sdk.model.network import random_anchors
from train.dataset import IpadDataset, training_augment
from train.evaluation import evaluation_metrics
from train.losses import ipad_loss
from train.prompts import PromptLearner

STAGES = ("stage1", "stage2", "stage3")

#: The paper's ablations (Table 2) as config overrides.
ABLATIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "no_learnable_text": {"prompts": {"learnable": False}},
    "no_object_context": {"prompts": {"use_objects": False}},
    "no_adapters": {"n_adapt": 0},
    "no_multigranularity": {"feature_layers": "last"},
    "stage1_only": {"stages": ["stage1"]},
    "stages23_only": {"stages": ["stage2", "stage3"]},
}


@dataclass
class TrainConfig:
    """Every setting of a training run (JSON/YAML file, ``--set`` overrides)."""

    data: str
    out: str
    backbone: str = "ViT-L-14"
    pretrained: str | None = None
    image_size: int | None = None
    stem: str = "patch"  # "conv": convolutional stem instead of the patchify conv (from scratch)
    anchors: str = "prompts"  # "free": stage III learns the anchors directly (no stage II)
    #: a finished bundle (model.safetensors) to start from instead of random init: its network
    #: and anchors (free anchors start from them); it must have this run's architecture, or the
    #: same one at a smaller input with a shallower conv stem (then grown: ``train/grow.py``)
    init: str | None = None
    grow_steps: int = 300  # distillation steps of a grown stem's new front (train/grow.py)
    #: side of the pixel maps the losses and validation metrics use (default: image_size); the
    #: maps are the patch grid upsampled, so a large input needs no larger loss maps
    map_size: int | None = None
    #: share of training items seen as a native-scale window (``train.dataset.native_crop``:
    #: 1:1 to 1:2 pixels, holding a mask pixel) instead of the whole image shrunk
    native_crops: float = 0.0
    n_adapt: int = 6
    feature_layers: list[int] | str | None = None  # None: 4 evenly spaced; "last": last block
    beta: float = 0.1
    tau: float = 0.07
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0  # AdamW's decoupled decay; 0 is plain Adam (the paper)
    schedule: str = "constant"  # or "cosine": linear warm-up, then cosine decay to 0, per stage
    warmup_steps: int = 0
    epochs: dict[str, int] = field(default_factory=lambda: {s: 20 for s in STAGES})
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    lambda_cls: float = 4.0
    prompts: dict[str, Any] = field(default_factory=dict)
    train_backbone: bool = False  # unfreeze the ViT too (random-init experiments only)
    balanced: bool = True
    #: thresholds at clean false-positive rates on val, e.g. {"image_fpr": 0.05, "pixel_fpr": 0.01}
    calibrate: dict[str, float] | None = None
    max_steps_per_epoch: int | None = None
    stage_test: bool = True  # test metrics of every non-final stage (stage_test_metrics.json)
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA
    #: bf16 autocast on the CPU too: on CPUs with AMX (Sapphire Rapids and later) the default
    #: recipe's phases took 0.46x-0.7x the float32 time here with one loader worker; from random
    #: init it scored lower on one run (``docs/training/training.md``)
    amp_cpu: bool = False
    workers: int = 0
    seed: int = 0
    description: str = ""

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        text = Path(path).read_text()
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        return cls.from_dict(_merge(data, overrides or {}))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        cfg = cls(**data)
        bad = [s for s in cfg.stages if s not in STAGES]
        if bad or not cfg.stages:
            raise ValueError(f"stages must be a non-empty subset of {STAGES}, got {cfg.stages}")
        if cfg.anchors not in ("prompts", "free"):
            raise ValueError(f"anchors must be 'prompts' or 'free', got {cfg.anchors!r}")
        if cfg.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {cfg.schedule!r}")
        return cfg


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base learning rate at optimiser ``step`` of a stage of ``total`` steps:
    linear warm-up over ``warmup`` steps, then constant or cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


class Trainer:
    """Builds the network, prompts, heads and data of one run and trains it stage by stage."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.device = _resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        clip_model, clip_config = create_clip(
            cfg.backbone, cfg.pretrained, cfg.image_size, stem=cfg.stem
        )
        layers = cfg.feature_layers
        if layers == "last":
            layers = [clip_config["vision_cfg"]["layers"]]
        config = model_config(
            cfg.backbone, clip_config, cfg.n_adapt, layers, beta=cfg.beta, tau=cfg.tau,
            classes=DEFAULT_CLASSES, trained=True,
            description=cfg.description or f"IPAD-CLIP on {cfg.backbone}, data {cfg.data}",
        )  # fmt: skip
        self.model = IpadClip(clip_model.visual, config).to(self.device)
        if cfg.train_backbone:
            self.model.visual.requires_grad_(True)
        tokenizer = import_open_clip().get_tokenizer(cfg.backbone)
        self.prompts = PromptLearner(
            clip_model.to(self.device), tokenizer, classes=config.classes, **cfg.prompts
        ).to(self.device)
        dim, k = config.embed_dim, config.num_classes
        self.heads = nn.ModuleDict({"cls": nn.Linear(dim, k), "seg": nn.Linear(dim, k)})
        self.heads.to(self.device)
        self.free_anchors = nn.Parameter(random_anchors(k, dim, cfg.seed).to(self.device))
        augment = training_augment(cfg.native_crops, config.image_size)
        self.train_set = IpadDataset(cfg.data, "train", config, augment=augment,
                                     seed=cfg.seed, mask_size=cfg.map_size)  # fmt: skip
        self.val_set = IpadDataset(cfg.data, "val", config, mask_size=cfg.map_size)
        self.test_set = IpadDataset(cfg.data, "test", config, mask_size=cfg.map_size)
        if cfg.init:
            self._init_from_bundle(cfg.init)
        self.log_path = self.out / "metrics.jsonl"

    @torch.no_grad()
    def _init_from_bundle(self, path: str) -> None:
        """Start from a finished model: the network's weights and anchors (and the free anchors).
        A model of the same architecture at a smaller input is grown first (``train/grow.py``:
        its stem deepened, the new front distilled on training images, cached in the run)."""
        from ipad_sdk.model.bundle import load_bundle

        start = load_bundle(path)
        ours, theirs = self.model.config, start.config
        if ours.image_size != theirs.image_size:
            start = self._grown(start, path)
            theirs = start.config
        for key in ("backbone", "clip_config", "n_adapt", "feature_layers", "classes"):
            if getattr(ours, key) != getattr(theirs, key):
                raise ValueError(
                    f"init {path}: its {key} {getattr(theirs, key)!r} differs from this run's "
                    f"{getattr(ours, key)!r}"
                )
        self.model.load_state_dict(start.state_dict(), strict=True)
        self.free_anchors.copy_(start.anchors.to(self.device))

    def _grown(self, small: IpadClip, path: str) -> IpadClip:
        """``small`` grown to this run's input (``train/grow.py``), cached as
        ``grown.safetensors`` in the run folder (with ``grow.json`` naming the source file and
        its SHA-256) so a resumed run does not distil again; another source is grown anew."""
        from ipad_sdk.fileio import file_sha256
        from ipad_sdk.model.bundle import load_bundle
        from train.grow import grow

        cached, report_path = self.out / "grown.safetensors", self.out / "grow.json"
        source = {"from": path, "from_sha256": file_sha256(path)}
        if cached.is_file() and report_path.is_file():
            done = json.loads(report_path.read_text())
            if {k: done.get(k) for k in source} == source:
                return load_bundle(cached)
        large = copy.deepcopy(self.model).cpu()
        with torch.enable_grad():
            report = grow(small, large, self.train_set, steps=self.cfg.grow_steps,
                          batch_size=8, seed=self.cfg.seed)  # fmt: skip
        self.out.mkdir(parents=True, exist_ok=True)
        save_bundle(large, cached)
        atomic_write_bytes(report_path, json.dumps(report | source).encode())
        return large

    # -- what each stage trains and how it predicts ------------------------------------------------
    def stage_parameters(self, stage: str) -> list[nn.Parameter]:
        vision = list(self.model.adapters.parameters()) + list(self.model.projectors.parameters())
        if self.cfg.train_backbone:
            vision += list(self.model.visual.parameters())
        if stage == "stage1":
            return vision + list(self.heads.parameters())
        if stage == "stage2":
            if self.cfg.anchors == "free":
                return []
            return list(self.prompts.parameters())  # the learner holds only prompt vectors
        return vision + ([self.free_anchors] if self.cfg.anchors == "free" else [])

    def predict(self, stage: str, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image logits ``[B,K+1]`` and pixel probabilities ``[B,K+1,S,S]`` for ``stage``."""
        model = self.model
        if stage == "stage1":
            global_feature, patches = model.encode(images)
            patch_probs = model.to_grid(self.heads["seg"](patches)).softmax(dim=1)
            return self.heads["cls"](global_feature), model.upsample(patch_probs, self.cfg.map_size)
        anchors = self.prompts() if stage == "stage2" else None  # stage3: the frozen buffer,
        if stage == "stage3" and self.cfg.anchors == "free":  # or the anchors being learned
            anchors = self.free_anchors
        image_logits, patch_logits = model.logits(images, anchors)
        return image_logits, model.upsample(patch_logits.softmax(dim=1), self.cfg.map_size)

    # -- loops ------------------------------------------------------------------------------------
    def _loader(self, stage: str, epoch: int) -> DataLoader:
        draw = STAGES.index(stage) * 100 + epoch
        gen = torch.Generator().manual_seed(self.cfg.seed * 1000 + draw)
        self.train_set.set_epoch(draw)
        if self.cfg.balanced:
            weights = torch.as_tensor(self.train_set.balanced_weights())
            sampler = WeightedRandomSampler(weights, len(self.train_set), generator=gen)
            return DataLoader(self.train_set, self.cfg.batch_size, sampler=sampler,
                              num_workers=self.cfg.workers)  # fmt: skip
        return DataLoader(self.train_set, self.cfg.batch_size, shuffle=True, generator=gen,
                          num_workers=self.cfg.workers)  # fmt: skip

    def _autocast(self):
        if self.cfg.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if self.cfg.amp_cpu and self.device.type == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()

    def steps_per_epoch(self) -> int:
        batches = math.ceil(len(self.train_set) / self.cfg.batch_size)
        return min(self.cfg.max_steps_per_epoch or batches, batches)

    def make_optimizer(self, stage: str) -> tuple[torch.optim.Optimizer, Any]:
        """AdamW on ``stage``'s parameters and its per-step learning-rate schedule. As open_clip's
        trainer does, norms, biases, embeddings and the anchors get no weight decay."""
        visual = self.model.visual
        exempt = {id(visual.class_embedding), id(visual.positional_embedding),
                  id(self.free_anchors)}  # fmt: skip
        params = self.stage_parameters(stage)
        decay = [p for p in params if p.ndim >= 2 and id(p) not in exempt]
        no_decay = [p for p in params if p.ndim < 2 or id(p) in exempt]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.cfg.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}], lr=self.cfg.lr,
        )  # fmt: skip
        total = self.cfg.epochs[stage] * self.steps_per_epoch()
        cfg = self.cfg
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, total, cfg.warmup_steps, cfg.schedule)
        )
        return optimizer, scheduler

    def train_epoch(
        self, stage: str, epoch: int, optimizer: torch.optim.Optimizer, scheduler: Any = None
    ) -> dict[str, float]:
        from tqdm import tqdm

        self.model.train()
        totals: dict[str, float] = {}
        steps = 0
        loader = self._loader(stage, epoch)
        limit = self.cfg.max_steps_per_epoch or len(loader)
        for batch in tqdm(loader, total=min(limit, len(loader)), desc=f"{stage} epoch {epoch}",
                          unit="batch", leave=False):  # fmt: skip
            if steps >= limit:
                break
            images = batch["image"].to(self.device)
            labels = batch["label"].to(self.device)
            masks = batch["mask"].to(self.device)
            with self._autocast():
                image_logits, pixel_probs = self.predict(stage, images)
            loss, parts = ipad_loss(image_logits, pixel_probs, labels, masks, self.cfg.lambda_cls)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value
            steps += 1
        lr = optimizer.param_groups[0]["lr"]
        return {key: value / max(steps, 1) for key, value in totals.items()} | {
            "steps": steps,
            "lr_end": lr,
        }

    @torch.no_grad()
    def evaluate(self, stage: str, dataset: IpadDataset | None = None) -> dict[str, Any]:
        """Image and pixel metrics of ``stage``'s predictions on ``dataset`` (default: val)."""
        dataset = dataset or self.val_set
        self.model.eval()
        probs, maps, labels, masks = [], [], [], []
        for batch in DataLoader(dataset, self.cfg.batch_size, num_workers=self.cfg.workers):
            with self._autocast():
                image_logits, pixel_probs = self.predict(stage, batch["image"].to(self.device))
            probs.append(image_logits.float().softmax(-1).cpu().numpy())
            maps.append((1.0 - pixel_probs[:, 0]).float().cpu().numpy())
            labels.append(batch["label"].numpy())
            masks.append(batch["mask"].numpy() > 0.5)
        return evaluation_metrics(
            np.concatenate(probs), np.concatenate(maps), np.concatenate(labels),
            np.concatenate(masks), self.model.config.classes,
        )  # fmt: skip

    # -- checkpoints ----------------------------------------------------------------------------
    def _trainable_state(self) -> dict[str, Any]:
        state = {
            "adapters": self.model.adapters.state_dict(),
            "projectors": self.model.projectors.state_dict(),
            "anchors": self.model.anchors.detach().cpu(),
            "heads": self.heads.state_dict(),
            "prompts": self.prompts.state_dict(),
            "free_anchors": self.free_anchors.detach().cpu(),
        }
        if self.cfg.train_backbone:
            state["visual"] = self.model.visual.state_dict()
        return state

    def _load_trainable_state(self, state: dict[str, Any]) -> None:
        self.model.adapters.load_state_dict(state["adapters"])
        self.model.projectors.load_state_dict(state["projectors"])
        self.model.set_anchors(state["anchors"].to(self.device))
        self.heads.load_state_dict(state["heads"])
        self.prompts.load_state_dict(state["prompts"])
        if "free_anchors" in state:  # checkpoints from before free anchors have none
            with torch.no_grad():
                self.free_anchors.copy_(state["free_anchors"].to(self.device))
        if "visual" in state:
            self.model.visual.load_state_dict(state["visual"])

    def _save_checkpoint(
        self, stage: str, epoch: int, optimizer, scheduler, best: dict[str, Any]
    ) -> None:
        payload = {
            "stage": stage, "epoch": epoch, "state": self._trainable_state(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "best": best, "config": asdict(self.cfg),
        }  # fmt: skip
        tmp = self.out / ".checkpoint.pt.tmp"
        torch.save(payload, tmp)
        tmp.replace(self.out / "checkpoint.pt")

    def active_stages(self) -> list[str]:
        """The configured stages that train something (stage II needs learnable prompts); the last
        is the one the run ends with."""
        return [s for s in self.cfg.stages if s != "stage2" or self.stage_parameters("stage2")]

    def run(self, resume: bool = False) -> dict[str, Any]:
        """Train every configured stage; returns the best final-stage validation metrics."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(asdict(self.cfg), indent=1))
        stages = self.active_stages()
        final = stages[-1]
        best: dict[str, Any] = {"score": -1.0}
        start_stage, start_epoch, opt_state, sched_state = 0, 0, None, None
        ckpt_path = self.out / "checkpoint.pt"
        if resume and ckpt_path.exists():
            ckpt = torch.load(ckpt_path, map_location=self.device, weights_only=True)
            self._load_trainable_state(ckpt["state"])
            best = ckpt["best"]
            start_stage = stages.index(ckpt["stage"])
            start_epoch = ckpt["epoch"] + 1
            opt_state, sched_state = ckpt["optimizer"], ckpt.get("scheduler")
            if start_epoch >= self.cfg.epochs[ckpt["stage"]]:
                start_stage, start_epoch, opt_state, sched_state = start_stage + 1, 0, None, None
        for stage in stages[start_stage:]:
            self._freeze_for(stage)
            # a run that starts at stage III from ``init`` keeps that model's anchors
            if (
                stage == "stage3"
                and start_epoch == 0
                and not (self.cfg.init and stage == stages[0])
            ):
                self._start_alignment()
            optimizer, scheduler = self.make_optimizer(stage)
            if opt_state is not None:
                optimizer.load_state_dict(opt_state)
                if sched_state is not None:
                    scheduler.load_state_dict(sched_state)
                opt_state = sched_state = None
            for epoch in range(start_epoch, self.cfg.epochs[stage]):
                tic = time.perf_counter()
                train_stats = self.train_epoch(stage, epoch, optimizer, scheduler)
                val = self.evaluate(stage)
                record = {"stage": stage, "epoch": epoch, "train": train_stats, "val": val,
                          "seconds": time.perf_counter() - tic}  # fmt: skip
                with open(self.log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
                if stage == final and val["score"] > best["score"]:
                    best = {"score": val["score"], "stage": stage, "epoch": epoch, "val": val}
                    torch.save(self._trainable_state(), self.out / "best.pt")
                self._save_checkpoint(stage, epoch, optimizer, scheduler, best)
            if self.cfg.stage_test and stage != final and self.cfg.epochs[stage] > 0:
                # what this stage alone achieved (its last epoch), for ablation tables; the
                # test split never selects anything
                self._record_stage_test(stage)
            start_epoch = 0
        self._finish(final)
        test = self.evaluate(final, self.test_set)
        (self.out / "test_metrics.json").write_text(json.dumps({"best": best, "test": test}))
        return best

    def _record_stage_test(self, stage: str) -> None:
        """Add ``stage``'s test metrics (its last epoch) to ``stage_test_metrics.json``."""
        path = self.out / "stage_test_metrics.json"
        done = json.loads(path.read_text()) if path.exists() else {}
        done[stage] = self.evaluate(stage, self.test_set)
        atomic_write_bytes(path, json.dumps(done).encode())

    @torch.no_grad()
    def _start_alignment(self) -> None:
        """Stage III's anchors: the stage-II prompts' embeddings, or (free anchors) the mean of
        the stage-I image and patch heads' unit class directions, so that the cosine head starts
        where the FC heads ended."""
        if self.cfg.anchors == "prompts":
            self.model.set_anchors(self.prompts())
            return
        directions = sum(F.normalize(head.weight, dim=-1) for head in self.heads.values())
        self.free_anchors.copy_(F.normalize(directions, dim=-1))

    def _freeze_for(self, stage: str) -> None:
        trainable = {id(p) for p in self.stage_parameters(stage)}
        for module in (self.model, self.heads, self.prompts):
            for param in module.parameters():
                param.requires_grad_(id(param) in trainable)

    def _finish(self, final: str) -> None:
        """Load the best final-stage weights; fold the anchors into ``model.safetensors``."""
        best_path = self.out / "best.pt"
        if best_path.exists():
            self._load_trainable_state(torch.load(best_path, map_location=self.device,
                                                  weights_only=True))  # fmt: skip
        if final == "stage1":  # the FC heads cannot become a cosine head: no bundle
            return
        if final == "stage2":
            with torch.no_grad():
                self.model.set_anchors(self.prompts())
        if final == "stage3" and self.cfg.anchors == "free":
            self.model.set_anchors(self.free_anchors.detach())
        bundle = save_bundle(self.model, self.out / "model.safetensors")
        if self.cfg.calibrate:
            from train.calibrate import calibrate, write_calibrated

            device = "cuda" if self.device.type == "cuda" else "cpu"
            report = calibrate(bundle, Path(self.cfg.data), "val", device=device,
                               **self.cfg.calibrate)  # fmt: skip
            write_calibrated(bundle, bundle, report)
            atomic_write_bytes(self.out / "calibration.json", json.dumps(report).encode())


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON or YAML training config")
    parser.add_argument("--ablation", choices=sorted(ABLATIONS), default="none")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. out=runs/x epochs.stage1=2 "
                             "(repeatable: every --set counts)")  # fmt: skip
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    overrides = _merge(ABLATIONS[args.ablation], _parse_set(args.set))
    cfg = TrainConfig.load(args.config, overrides)
    best = Trainer(cfg).run(resume=args.resume)
    print(json.dumps({"out": cfg.out, "best": best}, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
