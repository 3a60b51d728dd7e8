"""Mistakes people make when they write a GPT-2, each injectable into a numpygpt run.

    with numpygpt.bugs.inject(model, "ln_unbiased"):      # the model now has that bug
        rec = numpygpt.reference.record(model, ids, targets)
    numpygpt.bugs.diagnose(model, ids, targets, theirs)   # which bugs explain their recording

Each `Bug` has a short `name`, a `description` as a person would say it, the
recorded tensor where it first shows in a GPTModel (`shows_at`, a name from
`numpygpt.reference.record`), and a `patch` function whose docstring (`why`)
says why it is a mistake. The buggy formulas sit next to the right ones: a
buggy forward is installed on a module instance (an instance attribute that
hides the class's `forward`), a hook rewrites a module's input, or a weight or
buffer is swapped; `inject` undoes it exactly on exit.

`diagnose` takes a clean numpygpt model holding the same weights as another
implementation, the same ids and targets, and that implementation's
recording under numpygpt's names. It finds the first tensor where the two
disagree, then re-records numpygpt with each bug that could first show there
injected, and keeps the bugs under which numpygpt agrees with the other
recording at that tensor and at `logits`; the fewer later tensors that still
disagree, and the smaller the largest error, the better the fit.

Some of these mistakes are small: eps outside the square root moves LayerNorm's
output by about 5e-6 relative, within the float32 tolerance of
`numpygpt.compare`. Record both sides in float64 to tell every bug apart.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from . import functional as F
from . import nn, reference
from .compare import Row, compare
from .model import GELU, GPTModel, LayerNorm, MultiHeadAttention, TransformerBlock
from .module import Module
from .tensor import Tensor

__all__ = ["BUGS", "Bug", "describe", "diagnose", "fingerprint", "get", "inject", "record_with"]

Undo = Callable[[], None]
_MISSING = object()


@dataclass(frozen=True)
class Bug:
    """One mistake of the catalogue: `patch(model)` gives the model the mistake and returns
    the function that takes it away again. `shows_at` is the first tensor it changes, in
    forward order. `needs` names what the model must have for the mistake to exist at all
    ("tied" embeddings, "dropout" with drop_rate > 0). `match`, for a mistake whose effect is
    random (dropout), tells how well another recording fits it without re-recording."""

    name: str
    description: str
    shows_at: str
    patch: Callable[[GPTModel], Undo]
    needs: str = ""
    match: Callable[..., float | None] | None = None

    @property
    def why(self) -> str:
        """What the mistake is and why it is one (the patch function's docstring)."""
        return inspect.getdoc(self.patch) or ""

    def applies(self, model: GPTModel) -> bool:
        """Whether the mistake can exist in `model` (a tied head, dropout with p > 0)."""
        if self.needs == "tied":
            return model.out_head.weight is model.tok_emb.weight
        if self.needs == "dropout":
            return any(m.p > 0 for m in _modules(model, nn.Dropout))
        return True

    def __repr__(self) -> str:
        return f"Bug({self.name!r}: {self.description})"


BUGS: dict[str, Bug] = {}


def _bug(name: str, description: str, shows_at: str, needs: str = "",
         match: Callable[..., float | None] | None = None) -> Callable[[Callable[[GPTModel], Undo]], Any]:
    def register(patch: Callable[[GPTModel], Undo]) -> Callable[[GPTModel], Undo]:
        BUGS[name] = Bug(name, description, shows_at, patch, needs, match)
        return patch
    return register


def get(bug: str | Bug) -> Bug:
    """The catalogue's bug of that name (a Bug is returned as it is)."""
    if isinstance(bug, Bug):
        return bug
    if bug not in BUGS:
        raise KeyError(f"unknown bug {bug!r}; the catalogue has {', '.join(BUGS)}")
    return BUGS[bug]


def describe(bug: str | Bug) -> str:
    """The bug's description, as `compare` prints it after "looks like: "."""
    return get(bug).description


# ----------------------------------------------------------------------------- patching, and undoing it


def _modules(model: Module, cls: type) -> list[Any]:
    return [m for _, m in model.named_modules() if isinstance(m, cls)]


def _set_forward(modules: list[Module], forward: Callable[..., Any]) -> Undo:
    """Install `forward(module, *args)` as each module's own forward (an instance attribute)."""
    saved = [(m, m.__dict__.get("forward", _MISSING)) for m in modules]
    for m in modules:
        m.__dict__["forward"] = functools.partial(forward, m)

    def undo() -> None:
        for m, previous in saved:
            if previous is _MISSING:
                del m.__dict__["forward"]
            else:
                m.__dict__["forward"] = previous
    return undo


def _set_attribute(objects: list[Any], name: str, value: Callable[[Any], Any]) -> Undo:
    """Set `obj.name = value(obj)` on each object; the undo puts the very same values back."""
    saved = [(obj, getattr(obj, name)) for obj in objects]
    for obj in objects:
        setattr(obj, name, value(obj))

    def undo() -> None:
        for obj, previous in saved:
            setattr(obj, name, previous)
    return undo


# ----------------------------------------------------------------------------- LayerNorm


def _layer_norm_unbiased(ln: LayerNorm, x: Tensor) -> Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=True)        # bug: ÷ (n − 1); right: unbiased=False, ÷ n
    return ln.scale * (x - mean) / (var + ln.eps).sqrt() + ln.shift


def _layer_norm_eps_outside(ln: LayerNorm, x: Tensor) -> Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    norm_x = (x - mean) / (var.sqrt() + ln.eps)             # bug; right: (x - mean) / (var + eps).sqrt()
    return ln.scale * norm_x + ln.shift


@_bug("ln_unbiased", "LayerNorm with the unbiased (n − 1) variance", "trf_blocks.0.norm1")
def _ln_unbiased(model: GPTModel) -> Undo:
    """LayerNorm divides by n: it normalises the row it has, it does not estimate a population's
    variance. `torch.var` and `Tensor.var` default to the unbiased ÷ (n − 1), so writing
    `x.var(dim=-1)` shrinks every normalised row by √((n − 1) / n)."""
    return _set_forward(_modules(model, LayerNorm), _layer_norm_unbiased)


@_bug("ln_eps_outside", "LayerNorm's eps outside the square root: (x − mean) / (sqrt(var) + eps)",
      "trf_blocks.0.norm1")
def _ln_eps_outside(model: GPTModel) -> Undo:
    """GPT-2 (and torch.nn.LayerNorm) add eps to the variance, inside the square root. Adding it
    to the standard deviation changes the output by eps · (1/std − 1/(2 var)) relative, 5e-6 at
    unit variance: within float32's tolerance, plain in float64, large for rows of small variance."""
    return _set_forward(_modules(model, LayerNorm), _layer_norm_eps_outside)


# ----------------------------------------------------------------------------- attention
# The seed's attention forward, step by step; a bug replaces one step.


def _heads(att: MultiHeadAttention, y: Tensor) -> Tensor:
    b, num_tokens, _ = y.shape
    return y.view(b, num_tokens, att.num_heads, att.head_dim).transpose(1, 2)  # (B, nh, T, hs)


def _project(att: MultiHeadAttention, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    keys, queries, values = att.W_key(x), att.W_query(x), att.W_value(x)      # (B, T, C)
    return _heads(att, queries), _heads(att, keys), _heads(att, values)       # (B, nh, T, hs)


def _causal(att: MultiHeadAttention, num_tokens: int) -> np.ndarray:
    return att.mask.data[:num_tokens, :num_tokens].astype(bool)               # True: a future token


def _scores(att: MultiHeadAttention, queries: Tensor, keys: Tensor) -> Tensor:
    attn_scores = queries @ keys.transpose(2, 3)                              # (B, nh, T, T)
    attn_scores = attn_scores.masked_fill(_causal(att, queries.shape[2]), -np.inf)
    return attn_scores / keys.shape[-1] ** 0.5                                # scaled by 1/√hs


def _softmax(attn_scores: Tensor) -> Tensor:
    return F.softmax(attn_scores, dim=-1)                                     # each query's row sums to 1


def _attention(att: MultiHeadAttention, x: Tensor, kv_cache: Any = None, *,
               project: Callable[..., tuple[Tensor, Tensor, Tensor]] = _project,
               score: Callable[..., Tensor] = _scores, normalise: Callable[[Tensor], Tensor] = _softmax) -> Tensor:
    """MultiHeadAttention.forward (without the KV cache) with each step a function a bug replaces."""
    if kv_cache is not None:
        raise NotImplementedError("an attention bug is injected for whole-sequence runs, not with a KV cache")
    b, num_tokens, _ = x.shape
    queries, keys, values = project(att, x)                                   # (B, nh, T, hs)
    attn_scores = score(att, queries, keys)                                   # (B, nh, T, T)
    attn_weights = att.dropout(normalise(attn_scores))                        # (B, nh, T, T)
    context_vec = (attn_weights @ values).transpose(1, 2)                     # (B, T, nh, hs)
    context_vec = context_vec.contiguous().view(b, num_tokens, att.d_out)     # (B, T, C)
    if att.observer is not None:
        att.observer(queries=queries, keys=keys, values=values, attn_scores=attn_scores,
                     attn_weights=attn_weights, context_vec=context_vec)
    return att.out_proj(context_vec)


def _attention_with(model: GPTModel, **step: Callable[..., Any]) -> Undo:
    return _set_forward(_modules(model, MultiHeadAttention), functools.partial(_attention, **step))


def _scores_unscaled(att: MultiHeadAttention, queries: Tensor, keys: Tensor) -> Tensor:
    attn_scores = queries @ keys.transpose(2, 3)
    return attn_scores.masked_fill(_causal(att, queries.shape[2]), -np.inf)  # bug: no / √hs


def _scores_by_emb_dim(att: MultiHeadAttention, queries: Tensor, keys: Tensor) -> Tensor:
    attn_scores = queries @ keys.transpose(2, 3)
    attn_scores = attn_scores.masked_fill(_causal(att, queries.shape[2]), -np.inf)
    return attn_scores / att.d_out ** 0.5                                     # bug: √C; right: √hs


def _scores_masked_with_zero(att: MultiHeadAttention, queries: Tensor, keys: Tensor) -> Tensor:
    attn_scores = queries @ keys.transpose(2, 3)
    attn_scores = attn_scores.masked_fill(_causal(att, queries.shape[2]), 0.0)  # bug: 0; right: -inf
    return attn_scores / keys.shape[-1] ** 0.5


def _softmax_over_queries(attn_scores: Tensor) -> Tensor:
    return F.softmax(attn_scores, dim=-2)                                     # bug: columns sum to 1


def _project_k_q_v(att: MultiHeadAttention, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    keys, queries, values = att.W_key(x), att.W_query(x), att.W_value(x)
    return _heads(att, keys), _heads(att, queries), _heads(att, values)       # bug: keys where queries go


def _project_heads_by_view(att: MultiHeadAttention, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    b, num_tokens, _ = x.shape
    keys, queries, values = att.W_key(x), att.W_query(x), att.W_value(x)
    shape = (b, att.num_heads, num_tokens, att.head_dim)                      # bug: view straight to (B, nh, T, hs)
    return queries.view(*shape), keys.view(*shape), values.view(*shape)      # right: view(B, T, nh, hs).transpose(1, 2)


@_bug("no_scale", "attention scores not scaled by 1/sqrt(head size)", "trf_blocks.0.att.attn_scores")
def _no_scale(model: GPTModel) -> Undo:
    """The dot product of two hs-long vectors spreads like √hs; without dividing by √hs the softmax
    saturates towards one-hot rows and its gradients vanish ("Attention Is All You Need", 3.2.1)."""
    return _attention_with(model, score=_scores_unscaled)


@_bug("scale_emb_dim", "attention scores scaled by 1/sqrt(emb_dim) instead of 1/sqrt(head size)",
      "trf_blocks.0.att.attn_scores")
def _scale_emb_dim(model: GPTModel) -> Undo:
    """The dot products are over one head's hs = C / nh features, so the scale is 1/√hs;
    1/√C (the model's width) flattens every softmax by a further factor √nh."""
    return _attention_with(model, score=_scores_by_emb_dim)


@_bug("mask_off_by_one", "causal mask off by one (each token also sees the next one: triu(k=2))",
      "trf_blocks.0.att.attn_scores")
def _mask_off_by_one(model: GPTModel) -> Undo:
    """The mask marks what a token must not see: every later position, triu(ones, k=1).
    With k=2 token i also sees token i + 1, the very token it is trained to predict, so the
    training loss falls fast and generation (which has no next token) is poor."""
    def off_by_one(att: MultiHeadAttention) -> Tensor:
        n = att.mask.shape[0]
        return Tensor(np.triu(np.ones((n, n), dtype=att.mask.dtype), k=2))  # right: k=1
    return _set_attribute(_modules(model, MultiHeadAttention), "mask", off_by_one)


@_bug("mask_missing", "causal mask missing (every token sees the whole sequence)", "trf_blocks.0.att.attn_scores")
def _mask_missing(model: GPTModel) -> Undo:
    """Without the causal mask every token attends to the tokens after it, the answers it is
    trained to predict: a model that cannot generate, with a training loss that looks great."""
    def nothing_masked(att: MultiHeadAttention) -> Tensor:
        return Tensor(np.zeros(att.mask.shape, dtype=att.mask.dtype))
    return _set_attribute(_modules(model, MultiHeadAttention), "mask", nothing_masked)


@_bug("mask_zero", "masked scores filled with 0 instead of −inf", "trf_blocks.0.att.attn_scores")
def _mask_zero(model: GPTModel) -> Undo:
    """A masked score must become -inf so that softmax gives it weight exp(-inf) = 0. A score of
    0 still gets exp(0) = 1 before normalising, as much as a typical visible score: the future leaks in."""
    return _attention_with(model, score=_scores_masked_with_zero)


@_bug("softmax_dim", "softmax over the wrong axis (dim=-2)", "trf_blocks.0.att.attn_weights")
def _softmax_dim(model: GPTModel) -> Undo:
    """Each query's weights over the keys must sum to 1: softmax along the last axis (keys).
    dim=-2 normalises each key's column over the queries instead, and a row's weights no
    longer form an average."""
    return _attention_with(model, normalise=_softmax_over_queries)


@_bug("qk_swapped", "q, k, v split in the wrong order (queries and keys swapped)", "trf_blocks.0.att.queries")
def _qk_swapped(model: GPTModel) -> Undo:
    """Splitting a fused qkv projection as `k, q, v` where the weights hold q, k, v (Hugging
    Face's c_attn is q, k, v) makes the scores k·qᵀ: the transposed score matrix, masked as
    if it were the right one."""
    return _attention_with(model, project=_project_k_q_v)


@_bug("heads_view", "heads split with view(B, nh, T, hs) instead of view(B, T, nh, hs).transpose(1, 2)",
      "trf_blocks.0.att.queries")
def _heads_view(model: GPTModel) -> Undo:
    """A projection is (B, T, C) with each token's C features laid out head by head. Viewing it
    straight as (B, nh, T, hs) cuts the memory in the wrong places: a "head" then holds
    pieces of several tokens. The shapes are right, so nothing complains."""
    return _attention_with(model, project=_project_heads_by_view)


@_bug("c_proj_not_transposed", "Hugging Face's Conv1D weight not transposed (attention's c_proj = out_proj)",
      "trf_blocks.0.att.out_proj")
def _c_proj_not_transposed(model: GPTModel) -> Undo:
    """Hugging Face's GPT-2 stores its projections as Conv1D, weight (in, out), where a Linear
    has (out, in): each must be transposed. mlp.c_fc and mlp.c_proj (C × 4C) fail with a shape
    error when it is forgotten; attention's c_proj is C × C and loads silently, transposed (as
    do c_attn's three C × C pieces when it is split along its last axis)."""
    weights = [att.out_proj.weight for att in _modules(model, MultiHeadAttention)]
    return _set_attribute(weights, "data", lambda w: np.ascontiguousarray(w.data.T))


# ----------------------------------------------------------------------------- the rest of the model


def _gelu_exact(gelu: GELU, x: Tensor) -> Tensor:
    return F.gelu(x, approximate="none")            # bug: x·Φ(x); right: approximate="tanh" for GPT-2


@_bug("gelu_erf", "exact (erf) GELU where GPT-2 uses the tanh approximation", "trf_blocks.0.ff.layers.1")
def _gelu_erf(model: GPTModel) -> Undo:
    """GPT-2 was trained with GELU's tanh approximation, ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))).
    `torch.nn.GELU()` is the exact x·Φ(x) unless given approximate="tanh"; the two differ by
    up to 4.7e-4 (near x = ±2.7), a small error that every block adds to."""
    return _set_forward(_modules(model, GELU), _gelu_exact)


@_bug("positions_from_1", "positions starting at 1 instead of 0", "pos_emb")
def _positions_from_1(model: GPTModel) -> Undo:
    """The first token is at position 0: `arange(T)`, not `arange(1, T + 1)`. Starting at 1
    gives every token the next position's embedding, and a full context indexes past the table."""
    def shifted(module: Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        (positions,) = args
        return (positions + 1,)                     # bug: arange(1, T + 1); right: arange(T)
    return model.pos_emb.register_forward_pre_hook(shifted).remove


def _head_without_gradient(head: nn.Linear, x: Tensor) -> Tensor:
    return F.linear(x, head.weight.detach())        # bug; right: F.linear(x, head.weight)


@_bug("tied_grad_once", "the tied output head's gradient not added to the token embedding's", "tok_emb.weight.grad",
      needs="tied")
def _tied_grad_once(model: GPTModel) -> Undo:
    """With tied weights the head uses tok_emb.weight, so that matrix's gradient is the sum of
    the embedding lookup's and the head's. Copying the matrix into the head (or detaching it)
    keeps the forward identical but drops the head's share, which reaches every row of the
    matrix where the lookup's reaches only the rows of the ids in the batch."""
    return _set_forward([model.out_head], _head_without_gradient)


def _dropout_pattern(model: GPTModel, ours: Mapping[str, np.ndarray], theirs: Mapping[str, np.ndarray],
                     name: str, rtol: float | None, atol: float | None) -> float | None:
    """How well `theirs[name]` is `ours[name]` with dropout applied: zeros, and the rest scaled
    by 1/(1 - p). The masks are random, so this is checked instead of re-recording."""
    p = model.cfg["drop_rate"]
    a, b = np.asarray(ours[name]), np.asarray(theirs[name])
    if p <= 0 or a.shape != b.shape or not np.any((b == 0) & (a != 0)):
        return None
    row = compare({name: np.where(b == 0, 0, a / (1 - p))}, {name: b}, rtol, atol).rows[0]
    return row.max_rel if row.ok else None


@_bug("dropout_in_eval", "dropout left on in eval mode", "drop_emb", needs="dropout", match=_dropout_pattern)
def _dropout_in_eval(model: GPTModel) -> Undo:
    """Dropout is for training; `model.eval()` turns it into the identity. A dropout written
    as `F.dropout(x, p)` (training=True by default) or a flag that eval() does not reach keeps
    zeroing activations at inference, so outputs are noisy and differ run to run."""
    return _set_attribute(_modules(model, nn.Dropout), "training", lambda m: True)


def _block_post_norm(block: TransformerBlock, x: Tensor, kv_cache: Any = None) -> Tensor:
    x = block.norm1(x + block.drop_shortcut(block.att(x, kv_cache)))  # bug; right: x + drop(att(norm1(x)))
    x = block.norm2(x + block.drop_shortcut(block.ff(x)))             # bug; right: x + drop(ff(norm2(x)))
    return x


@_bug("post_norm", "LayerNorm after the shortcut (post-LN, the 2017 Transformer's) where GPT-2 normalises first",
      "trf_blocks.0.norm1")
def _post_norm(model: GPTModel) -> Undo:
    """GPT-2 normalises each sub-layer's input and adds its output to the untouched shortcut
    (pre-LN). Normalising after the addition is the original Transformer's order: the
    attention then sees un-normalised input, and deep stacks train less stably."""
    return _set_forward(_modules(model, TransformerBlock), _block_post_norm)


def _identity(module: Module, x: Tensor) -> Tensor:
    return x                                        # bug: no normalisation; right: final_norm(x)


@_bug("no_final_norm", "the final LayerNorm (ln_f) left out before the output head", "final_norm")
def _no_final_norm(model: GPTModel) -> Undo:
    """GPT-2's pre-LN blocks leave the residual stream un-normalised, so one last LayerNorm
    (ln_f) comes before the head. Without it the logits take the stream's growing scale."""
    return _set_forward([model.final_norm], _identity)


# ----------------------------------------------------------------------------- using the catalogue


@contextlib.contextmanager
def inject(model: GPTModel, bug: str | Bug) -> Iterator[Bug]:
    """Give `model` the bug inside the with-block; on exit the model is exactly as it was."""
    bug = get(bug)
    if not bug.applies(model):
        need = {"tied": "tied embeddings (tie_embeddings=True)", "dropout": "dropout (drop_rate > 0)"}[bug.needs]
        raise ValueError(f"{bug.name}: this model cannot have the bug; it needs {need}")
    undo = bug.patch(model)
    try:
        yield bug
    finally:
        undo()


def record_with(model: GPTModel, bug: str | Bug | None, idx: Any, targets: Any = None) -> dict[str, np.ndarray]:
    """`numpygpt.reference.record` of the model with the bug injected (None: the clean model)."""
    if bug is None:
        return reference.record(model, idx, targets)
    with inject(model, bug):
        return reference.record(model, idx, targets)


@contextlib.contextmanager
def _evaluating(model: Module) -> Iterator[None]:
    """Eval mode inside the block (deterministic dropout); each module's mode is restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


@contextlib.contextmanager
def _grads_kept(model: Module) -> Iterator[None]:
    """The parameters' .grad as they were before the block (recordings overwrite them)."""
    grads = [(p, p.grad) for p in model.parameters()]
    try:
        yield
    finally:
        for p, g in grads:
            p.grad = g


def fingerprint(model: GPTModel, bug: str | Bug, idx: Any, targets: Any = None) -> Row | None:
    """The first tensor (in forward order) where the bug makes the model diverge from the clean one."""
    with _evaluating(model), _grads_kept(model):
        clean = reference.record(model, idx, targets)
        return compare(clean, record_with(model, bug, idx, targets)).first


def _may_explain(bug: Bug, order: list[str], theirs: Mapping[str, np.ndarray], first: str) -> bool:
    """Whether the bug can explain a first divergence at `first`: it first changes its `shows_at`,
    so that must be `first`, or come before it and be a tensor `theirs` does not hold (a PyTorch
    recording made with module hooks has no `attn_scores`). The others are not re-recorded."""
    if bug.shows_at not in order:
        return False
    shows, diverges = order.index(bug.shows_at), order.index(first)
    return shows == diverges or (shows < diverges and bug.shows_at not in theirs)


def _fit(bug: Bug, model: GPTModel, idx: Any, targets: Any, ours: Mapping[str, np.ndarray],
         theirs: Mapping[str, np.ndarray], first: str, rtol: float | None,
         atol: float | None) -> tuple[int, float] | None:
    """How well the bug explains `theirs`: None if numpygpt with the bug disagrees at `first` or at
    `logits`, else (tensors after `first` that still disagree, largest relative error). A first
    divergence before the loss is checked on a forward-only run: cheaper, and a second mistake
    of theirs in the backward pass does not hide the first."""
    if bug.match is not None:
        error = bug.match(model, ours, theirs, first, rtol, atol)
        return None if error is None else (0, error)
    buggy = record_with(model, bug, idx, targets if first == "loss" or first.endswith(".grad") else None)
    names = list(ours)
    later = [k for k in names[names.index(first):] if k in buggy]
    result = compare({k: buggy[k] for k in later}, theirs, rtol, atol)
    rows = {r.name: r for r in result.rows}
    if first not in rows or not rows[first].ok or ("logits" in rows and not rows["logits"].ok):
        return None
    return sum(not r.ok for r in result.rows), max(r.max_rel for r in result.rows)


def diagnose(model: GPTModel, idx: Any, targets: Any, theirs: Mapping[str, np.ndarray], first: Any = None,
             rtol: float | None = None, atol: float | None = None) -> list[Bug]:
    """The catalogue's bugs that explain where `theirs` departs from numpygpt, best first.

    `model` is a clean numpygpt model with the other implementation's weights; `idx` and
    `targets` (None for a forward-only recording) are what the other recording ran on;
    `theirs` is name -> array under numpygpt's names. `first` is the first divergent tensor's
    name (or compare's Row) when already known. Returns [] when nothing diverges or no bug
    fits. The model runs in eval mode; its modes and .grad are left as they were.
    """
    with _evaluating(model), _grads_kept(model):
        ours = reference.record(model, idx, targets)
        if first is None:
            row = compare(ours, theirs, rtol, atol).first
            if row is None:
                return []
            first = row.name
        first = getattr(first, "name", first)
        if first not in ours:
            raise ValueError(f"diagnose: {first!r} is not a tensor of numpygpt's recording")
        fits = []
        for bug in BUGS.values():
            if bug.applies(model) and _may_explain(bug, list(ours), theirs, first):
                fit = _fit(bug, model, idx, targets, ours, theirs, first, rtol, atol)
                if fit is not None:
                    fits.append((fit, bug))
    return [bug for _, bug in sorted(fits, key=lambda f: f[0])]
