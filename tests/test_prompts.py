"""train/prompts.py: learnable artifact-aware text prompts (paper Sec. 4.2) on tiny text towers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

import torch.nn.functional as F  # noqa: E402

from ipad_sdk.model import TINY_BACKBONE  # noqa: E402
from ipad_sdk.model.backbone import create_clip, import_open_clip  # noqa: E402
from train.prompts import PromptLearner  # noqa: E402

ATOL = 1e-5


@pytest.fixture(scope="module")
def tokenizer():
    return import_open_clip().get_tokenizer(TINY_BACKBONE)


@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(0)
    model, _ = create_clip(TINY_BACKBONE)
    return model.eval()


@pytest.fixture(scope="module")
def deep_clip():
    """A random-init CLIP with a 5-layer text tower (the tiny backbone has only 2)."""
    open_clip = import_open_clip()
    torch.manual_seed(1)
    model = open_clip.model.CLIP(
        embed_dim=48,
        vision_cfg={"image_size": 32, "layers": 1, "width": 32, "head_width": 32, "patch_size": 16},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 5},
    )
    return model.eval()


def encode_mean(model, tokenizer, texts: list[list[str]]) -> torch.Tensor:
    """Reference anchors from open_clip's own encode_text."""
    rows = []
    with torch.no_grad():
        for row in texts:
            feats = F.normalize(model.encode_text(tokenizer(row)), dim=-1)
            rows.append(F.normalize(feats.mean(0), dim=-1))
    return torch.stack(rows)


def test_shape_and_unit_norm(tiny_clip, tokenizer):
    learner = PromptLearner(tiny_clip, tokenizer)
    out = learner()
    assert out.shape == (4, 64)
    assert torch.allclose(out.norm(dim=-1), torch.ones(4), atol=1e-6)
    assert learner.deep_depth == 2  # clamped to the tiny tower's 2 text layers
    assert learner.tokens.shape[0] == 4 * len(learner.objects)
    assert learner.tokens.shape[1] < 77  # cut after the last EOT (causal mask)
    assert learner.anchors().shape == (4, 64) and not learner.anchors().requires_grad


def test_fixed_templates_equal_encode_text(tiny_clip, tokenizer):
    objects = ("building", "sky", "person")
    words = {"ghosting": "ghosting", "flare": "lens flare", "moire": "moire pattern"}
    learner = PromptLearner(tiny_clip, tokenizer, objects=objects, learnable=False)
    assert list(learner.parameters()) == [] and learner.state_dict() == {}
    texts = [[f"a photo of a {o}." for o in objects]]
    texts += [[f"a photo of a {o} with {words[c]}." for o in objects] for c in words]
    assert learner.prompts == texts
    expected = encode_mean(tiny_clip, tokenizer, texts)
    assert torch.allclose(learner(), expected, atol=ATOL)


def test_default_objects_fixed_templates(deep_clip, tokenizer):
    learner = PromptLearner(deep_clip, tokenizer, learnable=False)
    assert "a photo of an animal." in learner.prompts[0]
    expected = encode_mean(deep_clip, tokenizer, learner.prompts)
    assert torch.allclose(learner(), expected, atol=ATOL)


def test_context_set_to_words_equals_encode_text(deep_clip, tokenizer):
    objects = ("street", "screen")
    ctx_words = ["good clear photo", "bad blurry shot", "nice bright image", "old dark picture"]
    learner = PromptLearner(deep_clip, tokenizer, objects=objects, n_ctx=3, deep_depth=1)
    assert learner.deep_ctx is None and set(learner.state_dict()) == {"ctx"}
    with torch.no_grad():
        for k, words in enumerate(ctx_words):
            ids = tokenizer([words])[0]
            assert int(ids.argmax()) == 4  # [SOT] w1 w2 w3 [EOT]: three single tokens
            learner.ctx[k] = deep_clip.token_embedding(ids[1:4])
    texts = [[f"{ctx_words[0]} a photo of a {o}." for o in objects]]
    texts += [
        [f"{ctx_words[k]} a photo of a {o} with {a}." for o in objects]
        for k, a in enumerate(["ghosting", "lens flare", "moire pattern"], start=1)
    ]
    expected = encode_mean(deep_clip, tokenizer, texts)
    assert torch.allclose(learner(), expected, atol=ATOL)


def test_deep_prompts_replace_positions_1_to_J(deep_clip, tokenizer):
    L, J, depth = 5, 2, 4
    learner = PromptLearner(
        deep_clip, tokenizer, objects=("car", "room"), n_ctx=L, n_deep=J, deep_depth=depth
    )
    assert learner.deep_ctx.shape == (depth - 1, J, 32)
    blocks = deep_clip.transformer.resblocks
    assert deep_clip.transformer.batch_first
    inputs, outputs = {}, {}
    handles = []
    for h, blk in enumerate(blocks):
        handles.append(blk.register_forward_pre_hook(lambda m, a, h=h: inputs.__setitem__(h, a[0])))
        handles.append(blk.register_forward_hook(lambda m, a, o, h=h: outputs.__setitem__(h, o)))
    try:
        with torch.no_grad():
            learner()
    finally:
        for handle in handles:
            handle.remove()
    n_prompts = 4 * 2
    n = learner.tokens.shape[1]
    # Layer 0: the input-level learnable words (+ positional embedding) at 1..L.
    ctx = learner.ctx[learner.cls_index]
    pos = deep_clip.positional_embedding[:n]
    assert torch.equal(inputs[0][:, 1 : 1 + L], ctx + pos[1 : 1 + L])
    frozen = learner.token_embeds + pos
    assert torch.equal(inputs[0][:, 0], frozen[:, 0])
    assert torch.equal(inputs[0][:, 1 + L :], frozen[:, 1 + L :])
    for h in range(1, len(blocks)):
        x, prev = inputs[h], outputs[h - 1]
        if h < depth:
            g = learner.deep_ctx[h - 1].expand(n_prompts, J, -1)
            assert torch.equal(x[:, 1 : 1 + J], g)
            assert not torch.allclose(prev[:, 1 : 1 + J], g)  # o_h discarded
            assert torch.equal(x[:, 0], prev[:, 0])
            assert torch.equal(x[:, 1 + J :], prev[:, 1 + J :])  # rest untouched
        else:
            assert torch.equal(x, prev)  # no deep prompts past deep_depth


def test_gradients_only_to_prompts(deep_clip, tokenizer):
    learner = PromptLearner(deep_clip, tokenizer, objects=("sky",), n_ctx=4, n_deep=2)
    assert set(learner.state_dict()) == {"ctx", "deep_ctx"}
    assert {n for n, _ in learner.named_parameters()} == {"ctx", "deep_ctx"}
    assert learner.deep_ctx.shape[0] == 4  # deep_depth 9 clamped to 5 layers: g_1..g_4
    text_params = [
        *deep_clip.token_embedding.parameters(),
        deep_clip.positional_embedding,
        *deep_clip.transformer.parameters(),
        *deep_clip.ln_final.parameters(),
        deep_clip.text_projection,
    ]
    assert not any(p.requires_grad for p in text_params)
    target = F.normalize(torch.randn(4, 48, generator=torch.Generator().manual_seed(0)), dim=-1)
    loss = -(learner() * target).sum()
    loss.backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(learner.ctx.grad[k].abs().sum() > 0 for k in range(4))
    assert learner.deep_ctx.grad is not None
    assert all(learner.deep_ctx.grad[i].abs().sum() > 0 for i in range(4))
    assert all(p.grad is None for p in text_params)


def test_no_object_context(tiny_clip, tokenizer):
    learner = PromptLearner(tiny_clip, tokenizer, use_objects=False, n_ctx=4, n_deep=2)
    assert learner.objects == (None,) and learner.tokens.shape[0] == 4
    decoded = [tokenizer.decode(t.tolist()) for t in learner.tokens]
    assert decoded[0].startswith("<start_of_text>x x x x a photo . <end_of_text>")
    assert "x x x x a photo with lens flare ." in decoded[2]
    for text in decoded:
        assert " of " not in text and not any(f" {o} " in text for o in ("sky", "building"))
    assert learner().shape == (4, 64)


def test_artifact_words_change_anchors(tiny_clip, tokenizer):
    base = PromptLearner(tiny_clip, tokenizer, learnable=False)()
    other = PromptLearner(
        tiny_clip, tokenizer, learnable=False, artifact_words={"flare": "sun glare"}
    )()
    assert torch.allclose(base[[0, 1, 3]], other[[0, 1, 3]], atol=ATOL)
    assert not torch.allclose(base[2], other[2], atol=1e-3)


def test_classes_and_words(tiny_clip, tokenizer):
    learner = PromptLearner(
        tiny_clip, tokenizer, classes=("clean", "motion_blur"), objects=("sky",), learnable=False
    )
    assert learner.prompts == [["a photo of a sky."], ["a photo of a sky with motion blur."]]
    assert learner().shape == (2, 64)


def test_n_deep_must_be_below_n_ctx(tiny_clip, tokenizer):
    with pytest.raises(ValueError, match="n_deep"):
        PromptLearner(tiny_clip, tokenizer, n_ctx=4, n_deep=4)
    with pytest.raises(ValueError, match="n_deep"):
        PromptLearner(tiny_clip, tokenizer, n_ctx=3, n_deep=5)
    # without deep prompts any J is fine
    PromptLearner(tiny_clip, tokenizer, n_ctx=3, n_deep=5, deep_depth=1)


def test_sequence_first_transformer(deep_clip, tokenizer):
    """The same weights with a sequence-first (LND) text transformer give the same anchors."""
    import copy

    from open_clip.transformer import Transformer

    lnd = copy.deepcopy(deep_clip)
    lnd.transformer = Transformer(32, 5, 2, batch_first=False)
    lnd.transformer.load_state_dict(deep_clip.transformer.state_dict())
    kwargs = {"objects": ("car", "sky"), "n_ctx": 5, "n_deep": 3, "deep_depth": 4}
    a = PromptLearner(deep_clip, tokenizer, **kwargs)
    b = PromptLearner(lnd, tokenizer, **kwargs)
    b.load_state_dict(a.state_dict())
    assert torch.allclose(a(), b(), atol=ATOL)
    fixed = PromptLearner(lnd, tokenizer, objects=("car", "sky"), learnable=False)
    assert torch.allclose(fixed(), encode_mean(lnd, tokenizer, fixed.prompts), atol=ATOL)
