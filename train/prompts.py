"""Learnable artifact-aware text prompts of IPAD-CLIP (paper Sec. 4.2, Eqs. 2-6).

:class:`PromptLearner` turns a frozen open_clip CLIP text tower into the ``[K+1, D]`` matrix of
L2-normalised text anchors ``E_0..E_K`` that :meth:`ipad_sdk.model.IpadClip.set_anchors` takes
(row 0 the clean anchor ``E_N``, row k the anchor ``E_A^k`` of artifact class k).

Prompts (Eqs. 2-3), one per class k and object o::

    clean     k = 0:   [N_1 .. N_L]     [cls_o] .                  T_N
    artifact  k >= 1:  [A^k_1 .. A^k_L] [cls_o] [artifact_k] .     T_A^k

``[cls_o]`` is the object context ``"a photo of a {object}"`` (just ``"a photo"`` with
``use_objects=False``) and ``[artifact_k]`` the artifact words, ``"with lens flare"``. CoOp-style:
the template ``"X X ... X a photo of a building with lens flare."`` (L placeholders) is tokenized
once, embedded with CLIP's frozen token embedding, and the placeholder positions ``1..L`` (right
after the start-of-text token) are replaced by learnable word vectors: one set ``N`` for the clean
prompt and one set ``A^k`` per artifact class, each shared by all objects (init N(0, 0.02^2)).
They are the rows of the parameter ``ctx [K+1, L, W]`` (row 0 = ``N``).

Deep prompts (Eqs. 4-6): the input of text layer 0 already carries the input-level learnable words
(plus positional embedding) at positions ``1..L``. Before each of the text layers
``h = 1 .. deep_depth-1`` the token positions ``1..J`` (right after the start-of-text token) are
overwritten by ``J`` fresh learnable vectors ``g_h`` (one set per layer, shared by all prompts,
init N(0, 0.02^2), no positional embedding added): the previous layer's outputs at those positions
(``o_h``) are discarded. They are the rows of the parameter ``deep_ctx [deep_depth-1, J, W]``
(row ``h-1`` = ``g_h``). ``J < L`` is required, so the replacement stays inside the learnable
prefix and never touches the object/artifact words. ``deep_depth`` is clamped to the number of
text layers; ``deep_depth <= 1`` or ``n_deep = 0`` switches deep prompts off.

Anchors: ``E_k = normalize(mean_o normalize(f(T_k,o)))`` -- the mean over object contexts of the
L2-normalised per-object text features, normalised again.

``learnable=False`` is the "no learnable text" ablation: the zero-shot CLIP anchors of the fixed
templates ``"a photo of a {object}."`` / ``"a photo of a {object} with {artifact}."``, with no deep
prompts and nothing trainable.

The text tower runs here, mirroring ``CLIP.encode_text`` (token embedding + positional embedding
-> resblocks with the causal mask -> ln_final -> pooled at the EOT token -> text projection); with
nothing replaced it equals ``encode_text`` of the same strings. With a causal mask and EOT pooling
the sequence is cut after the last EOT position (the EOT outputs cannot depend on later tokens),
which saves most of the 77-token context. The CLIP text tower is frozen (``requires_grad_(False)``
on its parameters -- this changes the passed model) and is *not* a submodule: ``state_dict()``
holds only ``ctx`` and ``deep_ctx``, and ``learner.to(device)`` moves the prompts and the cached
token buffers but not the CLIP model, which the caller moves itself. The frozen token embeddings
of the templates are cached at construction: build the learner after loading the CLIP weights.
One forward encodes all ``(K+1) x n_objects`` prompts as one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ipad_sdk.metadata import DEFAULT_CLASSES

ARTIFACT_WORDS = {"ghosting": "ghosting", "flare": "lens flare", "moire": "moire pattern"}
# Where the artifacts occur: moving subjects (ghosting), light sources and sky (flare), displays
# (moire), plus generic contexts.
OBJECTS = (
    "scene",
    "person",
    "animal",
    "car",
    "building",
    "street",
    "sky",
    "landscape",
    "room",
    "screen",
)
PLACEHOLDER = "X"
INIT_STD = 0.02


def _object_context(obj: str | None) -> str:
    if not obj:
        return "a photo"
    article = "an" if obj[0].lower() in "aeiou" else "a"
    return f"a photo of {article} {obj}"


def prompt_texts(
    classes: Sequence[str],
    artifact_words: dict[str, str],
    objects: Sequence[str | None],
    n_placeholders: int = 0,
) -> list[list[str]]:
    """The prompt strings, ``[K+1][n_objects]``, with ``n_placeholders`` leading ``X`` words."""
    prefix = " ".join([PLACEHOLDER] * n_placeholders)
    out = []
    for k, name in enumerate(classes):
        row = []
        for obj in objects:
            text = _object_context(obj)
            if k > 0:
                text += f" with {artifact_words[name]}"
            row.append(f"{prefix} {text}." if prefix else f"{text}.")
        out.append(row)
    return out


def _is_causal(mask: torch.Tensor | None) -> bool:
    if mask is None or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    upper = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    if mask.dtype == torch.bool:  # True = masked
        return bool(torch.equal(mask, upper))
    return bool(torch.equal(torch.isneginf(mask), upper) and (mask[~upper] == 0).all())


class PromptLearner(nn.Module):
    """Learnable artifact-aware text anchors over a frozen open_clip CLIP text tower.

    ``forward()`` returns the ``[K+1, D]`` L2-normalised anchors (see the module docstring for
    the prompt layout and where the deep prompts go). ``classes[0]`` is the clean class.
    ``artifact_words`` maps artifact class names to the words after "with" (default
    :data:`ARTIFACT_WORDS`; a class not in it uses its own name). ``tokenizer`` is the model's
    open_clip tokenizer (``open_clip.get_tokenizer(name)``); ``None`` uses ``open_clip.tokenize``.
    """

    def __init__(
        self,
        clip_model: Any,
        tokenizer: Callable[..., torch.Tensor] | None,
        classes: Sequence[str] = DEFAULT_CLASSES,
        artifact_words: dict[str, str] | None = None,
        objects: Sequence[str] = OBJECTS,
        n_ctx: int = 12,
        deep_depth: int = 9,
        n_deep: int = 4,
        learnable: bool = True,
        use_objects: bool = True,
    ) -> None:
        super().__init__()
        for attr in ("token_embedding", "positional_embedding", "transformer", "ln_final"):
            if not hasattr(clip_model, attr):
                raise TypeError(
                    f"{type(clip_model).__name__} has no {attr}: only open_clip's CLIP "
                    "(built-in text tower) is supported, not CustomTextCLIP/HF text towers"
                )
        classes = tuple(classes)
        if len(classes) < 2:
            raise ValueError("need the clean class and at least one artifact class")
        words = {**ARTIFACT_WORDS, **(artifact_words or {})}
        words = {c: words.get(c, c.replace("_", " ")) for c in classes[1:]}
        objs: tuple[str | None, ...] = tuple(objects) if use_objects else (None,)
        if not objs:
            raise ValueError("objects must not be empty (use use_objects=False instead)")
        n_layers = len(clip_model.transformer.resblocks)
        if learnable:
            if n_ctx < 1:
                raise ValueError(f"n_ctx must be >= 1, got {n_ctx}")
            deep_depth = max(0, min(int(deep_depth), n_layers))
            if deep_depth <= 1 or n_deep <= 0:
                deep_depth, n_deep = 0, 0
            elif n_deep >= n_ctx:
                raise ValueError(
                    f"n_deep (J={n_deep}) must be < n_ctx (L={n_ctx}): the deep prompts replace "
                    "positions 1..J, which must stay inside the learnable prefix"
                )
        else:
            n_ctx, deep_depth, n_deep = 0, 0, 0

        # A plain reference, not a registered submodule (keeps state_dict() to the prompts).
        object.__setattr__(self, "clip_model", clip_model)
        for module in (
            clip_model.token_embedding,
            clip_model.transformer,
            clip_model.ln_final,
            *([clip_model.text_projection] if clip_model.text_projection is not None else []),
        ):
            module.requires_grad_(False)
        clip_model.positional_embedding.requires_grad_(False)

        self.classes = classes
        self.artifact_words = words
        self.objects = objs
        self.learnable = learnable
        self.use_objects = use_objects
        self.n_ctx, self.deep_depth, self.n_deep = n_ctx, deep_depth, n_deep
        self.n_layers = n_layers
        self.prompts = prompt_texts(classes, words, objs, n_ctx)

        if tokenizer is None:
            import open_clip

            def tokenizer(texts: list[str]) -> torch.Tensor:
                return open_clip.tokenize(texts, context_length=clip_model.context_length)

        flat = [t for row in self.prompts for t in row]
        tokens = tokenizer(flat).long()
        context = clip_model.positional_embedding.shape[0]
        if tokens.shape[1] != context:
            raise ValueError(f"tokenizer context {tokens.shape[1]} != text tower's {context}")

        self.pool_type = getattr(clip_model, "text_pool_type", "argmax")
        self.eos_id = getattr(clip_model, "text_eos_id", None)
        self.causal = _is_causal(clip_model.attn_mask)
        # With a causal mask the EOT outputs never see later positions: drop them.
        seq_len = context
        if self.causal and self.pool_type in ("argmax", "eos"):
            if self.pool_type == "argmax":
                last = int(tokens.argmax(dim=-1).max())
            else:
                last = int((tokens == self.eos_id).int().argmax(dim=-1).max())
            seq_len = last + 1
        tokens = tokens[:, :seq_len]

        # The learnable prefix sits right after the start-of-text token (position 1..L).
        self.ctx_start = 1
        if n_ctx:
            placeholder = tokenizer([PLACEHOLDER])[0]
            ph_id = int(placeholder[self.ctx_start])
            span = tokens[:, self.ctx_start : self.ctx_start + n_ctx]
            if span.shape[1] != n_ctx or not bool((span == ph_id).all()):
                raise ValueError(
                    f"the tokenizer does not map '{PLACEHOLDER}' to one token after a start "
                    "token: cannot place the learnable words"
                )

        emb = clip_model.token_embedding
        with torch.no_grad():
            tokens = tokens.to(emb.weight.device)
            embeds = emb(tokens)
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("token_embeds", embeds, persistent=False)
        # Which ctx row (class) each prompt uses: [K+1 * n_objects].
        cls_index = torch.arange(len(classes)).repeat_interleave(len(objs))
        self.register_buffer("cls_index", cls_index.to(tokens.device), persistent=False)

        width = embeds.shape[-1]
        dev = embeds.device
        self.ctx: nn.Parameter | None = None
        self.deep_ctx: nn.Parameter | None = None
        if n_ctx:
            self.ctx = nn.Parameter(torch.randn(len(classes), n_ctx, width, device=dev) * INIT_STD)
        if deep_depth:
            self.deep_ctx = nn.Parameter(
                torch.randn(deep_depth - 1, n_deep, width, device=dev) * INIT_STD
            )

    def input_embeddings(self) -> torch.Tensor:
        """Token embeddings ``[P, V', W]`` of all prompts with the learnable words in place
        (``P = (K+1) x n_objects``, class-major; no positional embedding yet)."""
        x = self.token_embeds
        if self.ctx is None:
            return x
        s, e = self.ctx_start, self.ctx_start + self.n_ctx
        ctx = self.ctx.to(x.dtype)[self.cls_index]
        return torch.cat([x[:, :s], ctx, x[:, e:]], dim=1)

    def encode_prompts(self) -> torch.Tensor:
        """Un-normalised text features ``[P, D]`` of all prompts (class-major)."""
        model = self.clip_model
        transformer = model.transformer
        cast = transformer.get_cast_dtype()
        x = self.input_embeddings().to(cast)
        n = x.shape[1]
        x = x + model.positional_embedding[:n].to(cast)
        mask = model.attn_mask
        if mask is not None:
            mask = mask[:n, :n]
        batch_first = getattr(transformer, "batch_first", True)
        seq_dim = 1 if batch_first else 0
        if not batch_first:
            x = x.transpose(0, 1)
        s = self.ctx_start
        for h, block in enumerate(transformer.resblocks):
            if self.deep_ctx is not None and 1 <= h < self.deep_depth:
                g = self.deep_ctx[h - 1].to(x.dtype)  # [J, W]
                g = g.unsqueeze(0 if batch_first else 1)
                g = g.expand(*(x.shape[:seq_dim] + (self.n_deep,) + x.shape[seq_dim + 1 :]))
                head = x.narrow(seq_dim, 0, s)
                tail = x.narrow(seq_dim, s + self.n_deep, n - s - self.n_deep)
                x = torch.cat([head, g, tail], dim=seq_dim)
            if getattr(transformer, "grad_checkpointing", False) and self.training:
                x = checkpoint(block, x, None, None, mask, use_reentrant=False)
            else:
                x = block(x, attn_mask=mask)
        if not batch_first:
            x = x.transpose(0, 1)
        x = model.ln_final(x)

        from open_clip.transformer import text_global_pool

        x = text_global_pool(x, self.tokens, self.pool_type, eos_token_id=self.eos_id)
        proj = model.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        return x

    def forward(self) -> torch.Tensor:
        """The ``[K+1, D]`` L2-normalised text anchors ``E_0..E_K``."""
        feats = F.normalize(self.encode_prompts().float(), dim=-1)
        feats = feats.view(len(self.classes), len(self.objects), -1).mean(dim=1)
        return F.normalize(feats, dim=-1)

    @torch.no_grad()
    def anchors(self) -> torch.Tensor:
        """``forward()`` detached, for :meth:`IpadClip.set_anchors`."""
        return self.forward().detach()

    def extra_repr(self) -> str:
        return (
            f"classes={self.classes}, n_objects={len(self.objects)}, n_ctx={self.n_ctx}, "
            f"deep_depth={self.deep_depth}, n_deep={self.n_deep}, learnable={self.learnable}"
        )
