"""The IPAD-CLIP network: shapes on several open_clip ViTs, the adapter formula, the anchor head,
and equivalence with open_clip's own forward when the adapters are switched off."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from scipy.special import erf  # noqa: E402

from ipad_sdk.errors import ModelError  # noqa: E402
from ipad_sdk.model import (  # noqa: E402
    TINY_BACKBONE,
    IpadClip,
    ResidualAdapter,
    build_ipad_clip,
    cosine_logits,
)


def _images(model: IpadClip, batch: int = 2, seed: int = 0) -> torch.Tensor:
    size = model.config.image_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _randomize_trainables(model: IpadClip, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (model.adapters, model.projectors):
            for param in module.parameters():
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2 + (param.ndim == 1))


@pytest.mark.parametrize(
    ("backbone", "image_size", "layers", "grid"),
    [
        (TINY_BACKBONE, 64, (1, 2, 3, 4), 4),
        ("ViT-B-16", 32, (3, 6, 9, 12), 2),
        ("ViT-B-32", 64, (3, 6, 9, 12), 2),
        pytest.param("ViT-L-14", 28, (6, 12, 18, 24), 2, marks=pytest.mark.slow),
    ],
)
def test_shapes_on_several_vits(backbone, image_size, layers, grid):
    model = build_ipad_clip(backbone, image_size=image_size)
    cfg = model.config
    assert cfg.feature_layers == layers
    assert cfg.n_adapt == min(6, cfg.depth) and len(model.adapters) == cfg.n_adapt
    assert cfg.grid_size == grid
    with torch.no_grad():
        glob, patches = model.encode(_images(model, 2))
        class_probs, pixel_probs = model(_images(model, 2))
    assert glob.shape == (2, cfg.embed_dim)
    assert patches.shape == (2, grid * grid, cfg.embed_dim)
    assert class_probs.shape == (2, 4)
    assert pixel_probs.shape == (2, 4, image_size, image_size)
    torch.testing.assert_close(class_probs.sum(-1), torch.ones(2))
    torch.testing.assert_close(pixel_probs.sum(1), torch.ones(2, image_size, image_size))


def test_paper_layout_on_vit_l14_at_518_is_configured_not_built():
    from ipad_sdk.model.backbone import clip_config_for

    cfg = clip_config_for("ViT-L-14", 518)
    assert cfg["vision_cfg"]["image_size"] == 518 and 518 % cfg["vision_cfg"]["patch_size"] == 0
    assert 518 // 14 == 37


def test_backbone_frozen_and_trainables_train():
    model = build_ipad_clip(TINY_BACKBONE).train()
    assert not any(p.requires_grad for p in model.visual.parameters())
    assert all(p.requires_grad for p in model.adapters.parameters())
    assert all(p.requires_grad for p in model.projectors.parameters())
    assert "anchors" not in dict(model.named_parameters())
    class_probs, pixel_probs = model(_images(model))
    (class_probs[:, 0].sum() + pixel_probs[:, 1].mean()).backward()
    assert all(p.grad is None for p in model.visual.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.adapters.parameters())


def test_adapter_matches_hand_computation():
    adapter = ResidualAdapter(width=8, beta=0.1, act="gelu")
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        adapter.fc.weight.copy_(torch.randn(8, 8, generator=gen))
        adapter.norm.weight.copy_(torch.rand(8, generator=gen) + 0.5)
        adapter.norm.bias.copy_(torch.randn(8, generator=gen))
    x = torch.randn(2, 5, 8, generator=gen)
    with torch.no_grad():
        got = adapter(x).numpy()

    xs = x.numpy().astype(np.float64)
    w = adapter.fc.weight.detach().numpy().astype(np.float64)
    h = xs @ w.T
    h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))  # exact GELU
    mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
    gamma = adapter.norm.weight.detach().numpy()
    beta_ln = adapter.norm.bias.detach().numpy()
    normed = (h - mu) / np.sqrt(var + 1e-5) * gamma + beta_ln
    expected = 0.1 * normed + 0.9 * xs
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("act", ["relu", "quick_gelu"])
def test_adapter_activations(act):
    adapter = ResidualAdapter(width=4, beta=1.0, act=act)
    x = torch.randn(3, 4)
    h = adapter.fc(x)
    ref = torch.relu(h) if act == "relu" else h * torch.sigmoid(1.702 * h)
    torch.testing.assert_close(adapter(x), adapter.norm(ref))


def test_without_adapters_global_feature_equals_open_clip_forward():
    model = build_ipad_clip(TINY_BACKBONE, beta=0.0)  # beta=0: adapters are the identity
    _randomize_trainables(model)  # adapter weights do not matter when beta=0
    images = _images(model, 3)
    with torch.no_grad():
        glob, patches = model.encode(images)
        reference = model.visual(images)  # open_clip's own forward: pooled, projected embedding
        inter = model.visual.forward_intermediates(
            images, indices=[i - 1 for i in model.config.feature_layers], intermediates_only=True,
            output_fmt="NLC",
        )["image_intermediates"]  # fmt: skip
    torch.testing.assert_close(glob, reference, rtol=1e-5, atol=1e-5)
    expected = 0
    for proj, tokens in zip(model.projectors, inter, strict=True):
        expected = expected + model.visual.ln_post(tokens) @ proj.weight.t() + proj.bias
    torch.testing.assert_close(patches, expected, rtol=1e-5, atol=1e-5)


def test_projectors_start_as_clip_projection():
    model = build_ipad_clip(TINY_BACKBONE)
    for proj in model.projectors:
        torch.testing.assert_close(proj.weight, model.visual.proj.t())
        assert torch.count_nonzero(proj.bias) == 0


def test_adapters_change_the_features():
    model = build_ipad_clip(TINY_BACKBONE)
    images = _images(model)
    with torch.no_grad():
        glob, _ = model.encode(images)
        assert not torch.allclose(glob, model.visual(images), atol=1e-3)


def test_anchor_head_matches_hand_computation():
    model = build_ipad_clip(TINY_BACKBONE, tau=0.5)
    _randomize_trainables(model)
    images = _images(model, 2)
    with torch.no_grad():
        glob, patches = model.encode(images)
        class_probs, pixel_probs = model(images)
    anchors = model.anchors.numpy().astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(anchors, axis=1), 1.0, atol=1e-6)

    def softmax_cos(feat: np.ndarray) -> np.ndarray:
        cos = feat @ anchors.T / np.linalg.norm(feat, axis=-1, keepdims=True)
        e = np.exp(cos / 0.5 - (cos / 0.5).max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    expected_class = softmax_cos(glob.numpy().astype(np.float64))
    np.testing.assert_allclose(class_probs.numpy(), expected_class, atol=1e-5)
    grid = model.config.grid_size
    patch_probs = softmax_cos(patches.numpy().astype(np.float64))  # [B, N, K+1]
    patch_probs = patch_probs.transpose(0, 2, 1).reshape(2, 4, grid, grid)
    # bilinear upsampling (align_corners=False: source x = (x + 0.5) / scale - 0.5, clamped),
    # written as one interpolation matrix per axis
    size = model.config.image_size
    src = np.clip((np.arange(size) + 0.5) * grid / size - 0.5, 0, grid - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, grid - 1)
    interp = np.zeros((size, grid))
    interp[np.arange(size), lo] += 1 - (src - lo)
    interp[np.arange(size), hi] += src - lo
    expected_pixels = np.einsum("yi,bkij,xj->bkyx", interp, patch_probs, interp)
    np.testing.assert_allclose(pixel_probs.numpy(), expected_pixels, atol=1e-5)


def test_cosine_logits_scale_invariant():
    anchors = torch.nn.functional.normalize(torch.randn(4, 6), dim=-1)
    feats = torch.randn(3, 6)
    torch.testing.assert_close(
        cosine_logits(feats, anchors, 0.1), cosine_logits(7 * feats, anchors, 0.1)
    )


def test_set_anchors_normalises_and_checks_shape():
    model = build_ipad_clip(TINY_BACKBONE)
    model.set_anchors(torch.full((4, model.config.embed_dim), 3.0))
    torch.testing.assert_close(model.anchors.norm(dim=-1), torch.ones(4))
    with pytest.raises(ValueError, match="anchors must have shape"):
        model.set_anchors(torch.ones(3, model.config.embed_dim))


def test_custom_classes_and_layers():
    model = build_ipad_clip(
        TINY_BACKBONE, classes=("clean", "flare"), feature_layers=(2, 4), n_adapt=1
    )
    assert len(model.projectors) == 2 and len(model.adapters) == 1
    with torch.no_grad():
        class_probs, pixel_probs = model(_images(model))
    assert class_probs.shape == (2, 2) and pixel_probs.shape[1] == 2


def test_wrong_input_shape_is_refused():
    model = build_ipad_clip(TINY_BACKBONE)
    with pytest.raises(ValueError, match=r"expected images \[B,3,64,64\]"):
        model(torch.zeros(1, 3, 32, 32))


def test_seeded_build_is_deterministic():
    a, b = build_ipad_clip(TINY_BACKBONE, seed=5), build_ipad_clip(TINY_BACKBONE, seed=5)
    c = build_ipad_clip(TINY_BACKBONE, seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize(
    ("backbone", "match"),
    [("RN50", "only open_clip's own ViT"), ("no-such-model", "unknown open_clip model")],
)
def test_unsupported_backbones(backbone, match):
    with pytest.raises(ModelError, match=match):
        build_ipad_clip(backbone)


def test_image_size_must_be_multiple_of_patch():
    with pytest.raises(ModelError, match="not a multiple of patch size"):
        build_ipad_clip(TINY_BACKBONE, image_size=70)


def test_pretrained_from_local_checkpoint_with_resized_positions(tmp_path):
    """A local CLIP checkpoint loads (as users do with downloaded weights), and a different input
    size resizes the positional embedding once at build time."""
    source = open_clip.create_model(TINY_BACKBONE, pretrained=None)
    ckpt = tmp_path / "tiny-clip.pt"
    torch.save(source.state_dict(), ckpt)

    same = build_ipad_clip(TINY_BACKBONE, pretrained=ckpt)
    for key, value in source.visual.state_dict().items():
        assert torch.equal(same.visual.state_dict()[key], value), key

    bigger = build_ipad_clip(TINY_BACKBONE, pretrained=ckpt, image_size=96)
    assert bigger.config.image_size == 96 and bigger.config.grid_size == 6
    assert bigger.visual.positional_embedding.shape == (1 + 36, 64)
    torch.testing.assert_close(bigger.visual.conv1.weight, source.visual.conv1.weight)
    with torch.no_grad():
        _, pixel_probs = bigger(_images(bigger, 1))
    assert pixel_probs.shape == (1, 4, 96, 96)


def test_unknown_pretrained_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="neither a local checkpoint file nor an open_clip tag"):
        build_ipad_clip(TINY_BACKBONE, pretrained=str(tmp_path / "missing.pt"))
