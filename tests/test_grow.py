"""Growing a conv-stem model to a larger input (train/grow.py): every learned tensor carried over
exactly, the new stem front distilled to reproduce the old first stage, refusals, and a training
run that starts from a smaller model's bundle (grown once, cached for a resumed run)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip, load_bundle  # noqa: E402
from ipad_sdk.model.backbone import import_open_clip  # noqa: E402
from train import grow  # noqa: E402

#: TINY_BACKBONE with twice the token stride (one more stem stage), registered for these tests
TWIN = "IPAD-Tiny-ViT-32-test"


@pytest.fixture(scope="module")
def twin_backbone(tmp_path_factory):
    open_clip = import_open_clip()
    cfg = json.loads(json.dumps(open_clip.get_model_config(TINY_BACKBONE)))
    cfg["vision_cfg"]["patch_size"] = 2 * cfg["vision_cfg"]["patch_size"]
    folder = tmp_path_factory.mktemp("configs")
    (folder / f"{TWIN}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    return TWIN


def _pair(twin: str, small_size: int = 64):
    small = build_ipad_clip(TINY_BACKBONE, image_size=small_size, stem="conv", seed=1)
    large = build_ipad_clip(twin, image_size=2 * small_size, stem="conv", seed=2)
    return small.eval(), large


def _smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Natural-ish images: random colour fields at 1/8 scale, bicubic-upsampled, plus grain."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 3, size // 8, size // 8, generator=gen)
    fields = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return fields + 0.1 * torch.randn(n, 3, size, size, generator=gen)


def test_transplant_copies_everything_but_the_new_front(twin_backbone):
    small, large = _pair(twin_backbone)
    assert (grow.stem_stages(small), grow.stem_stages(large)) == (4, 5)
    assert grow.transplant(small, large) == 1
    theirs = large.state_dict()
    for key, value in small.state_dict().items():
        if key.startswith("visual.conv1."):
            index, _, rest = key[len("visual.conv1.") :].partition(".")
            if int(index) < 3:
                continue
            key = f"visual.conv1.{int(index) + 3}.{rest}"  # one stage (3 modules) further on
        torch.testing.assert_close(theirs[key], value, msg=key)
    # the ViT behind the stem is the same function: same tokens in, same outputs
    tokens = torch.randn(2, small.config.grid_size**2 + 1, small.config.width)
    torch.testing.assert_close(large.visual.transformer(tokens), small.visual.transformer(tokens))


def test_transplant_refuses_what_cannot_grow(twin_backbone):
    small, large = _pair(twin_backbone)
    with pytest.raises(ValueError, match="cannot grow"):
        grow.transplant(large, small)  # shrinking
    wrong_size = build_ipad_clip(twin_backbone, image_size=64, stem="conv")  # 2 x 2 tokens
    with pytest.raises(ValueError, match="cannot grow"):
        grow.transplant(small, wrong_size)
    patchify = build_ipad_clip(TINY_BACKBONE, image_size=64)
    with pytest.raises(ValueError, match="conv stem"):
        grow.transplant(patchify, large)


def test_distilled_front_reproduces_the_old_first_stage(twin_backbone):
    """On held-out images the grown front's output is much closer to the small stem's first stage
    on the half-size image than before distillation, and the whole models agree better."""
    torch.manual_seed(0)
    small, large = _pair(twin_backbone)
    extra = grow.transplant(small, large)
    train = [{"image": image} for image in _smooth_images(64, 128, seed=3)]
    probe = _smooth_images(8, 128, seed=4)
    front = large.visual.conv1[:6]
    teacher = small.visual.conv1[:3]

    def error() -> float:
        with torch.no_grad():
            return F.mse_loss(front.eval()(probe), teacher(grow._shrink(probe, 2))).item()

    before, agree_before = error(), grow.agreement(small, large, probe, extra)
    report = grow.distil_front(small, large, extra, train, steps=120, batch_size=8, seed=0)
    after = error()
    assert after < 0.25 * before, (before, after)
    assert report["explained_variance"] > 0.5
    assert grow.agreement(small, large, probe, extra) < agree_before


def test_training_from_a_smaller_bundle_grows_it_once(twin_backbone, tmp_path, monkeypatch):
    from tests.test_dataset import build_fake_dataset
    from tests.test_train import _config
    from train.train import Trainer

    data = build_fake_dataset(tmp_path / "ds", n_per_class=4, n_clean=4)
    small = Trainer(_config(data, tmp_path / "small", stem="conv", anchors="free",
                            train_backbone=True, stages=["stage1"]))  # fmt: skip
    bundle = tmp_path / "small.safetensors"
    from ipad_sdk.model import save_bundle

    save_bundle(small.model, bundle)
    settings = {"backbone": twin_backbone, "image_size": 128, "map_size": 64, "stem": "conv",
                "anchors": "free", "train_backbone": True, "stages": ["stage3"],
                "init": str(bundle), "grow_steps": 4}  # fmt: skip
    run = tmp_path / "large"
    large = Trainer(_config(data, run, **settings))
    report = json.loads((run / "grow.json").read_text())
    assert report["extra_stages"] == 1 and report["steps"] == 4
    grown = load_bundle(run / "grown.safetensors")
    for key, value in grown.state_dict().items():
        torch.testing.assert_close(large.model.state_dict()[key], value, msg=key)
    torch.testing.assert_close(large.free_anchors.detach(), small.model.anchors)
    assert tuple(large.train_set[0]["mask"].shape) == (64, 64)  # losses at map_size

    def no_second_growth(*args, **kwargs):
        raise AssertionError("grew again although grown.safetensors was there")

    monkeypatch.setattr(grow, "grow", no_second_growth)
    again = Trainer(_config(data, run, **settings))
    torch.testing.assert_close(again.model.visual.conv1[0].weight, grown.visual.conv1[0].weight)
    again.run()
    assert load_bundle(run / "model.safetensors").config.image_size == 128
    # a changed source model (same path, other weights) is grown anew, not taken from the cache
    with torch.no_grad():
        small.model.adapters[0].fc.weight.add_(1.0)
    save_bundle(small.model, bundle)
    with pytest.raises(AssertionError, match="grew again"):
        Trainer(_config(data, run, **settings))

    from train import model_card

    text = " ".join(model_card._grow_lines(run))
    assert "gained 1 stride-2 stages" in text and "distilled in 4 steps" in text
    assert model_card._grow_lines(tmp_path / "small") == []  # not grown: nothing to say
