"""Neural-network functions with PyTorch's signatures (`numpygpt.nn.functional`).

The ones a GPT spends its time in are fused `Function`s whose backward is
derived by hand and commented term by term: `cross_entropy`, `layer_norm`,
`gelu`, `linear`, `embedding`, `dropout`. `softmax` and `log_softmax` are
Tensor methods too, so their `Function`s live with the other Tensor ops in
ops.py. Each fused op has a twin composed from primitive ops in the tests,
checked against it and against finite differences. `relu` and `mse_loss` are
built from primitives.

Shape legend: N rows, V classes, C features.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from . import _checks, ops
from .autograd import Context, Function
from .random import default_generator
from .tensor import Tensor

# ----------------------------------------------------------------------------- softmax family


def softmax(input: Tensor, dim: int) -> Tensor:
    """Softmax along `dim`; every slice along `dim` sums to 1."""
    return input.softmax(dim)


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """log(softmax(x)) along `dim`, computed stably in one pass."""
    return input.log_softmax(dim)


class CrossEntropy(Function):
    """Per-row loss lᵢ = -log softmax(logitsᵢ)[tᵢ] = logsumexp(logitsᵢ) - logitsᵢ[tᵢ],
    then reduced (mean over the rows whose target is not `ignore_index`, or sum, or none).

    backward: ∂lᵢ/∂logitsᵢⱼ = softmaxᵢⱼ - [j = tᵢ], so
    dlogits = (probs - onehot(t)) * (the weight each row has in the reduction),
    a weight that is 0 for ignored rows and g / n_valid for `mean`.
    """

    @staticmethod
    def forward(ctx: Context, logits: np.ndarray, targets: np.ndarray, ignore_index: int, reduction: str) -> np.ndarray:
        n = logits.shape[0]                                            # logits (N, V), targets (N,)
        valid = targets != ignore_index                                # (N,)
        safe_t = np.where(valid, targets, 0)                           # (N,) any class for ignored rows
        rows = np.arange(n)
        probs = logits - logits.max(axis=1, keepdims=True)             # (N, V) shifted logits
        target_logit = probs[rows, safe_t]                             # (N,)
        np.exp(probs, out=probs)                                       # (N, V) in place: one big buffer
        z = probs.sum(axis=1)                                          # (N,)
        probs /= z[:, None]                                            # (N, V) softmax
        losses = np.where(valid, np.log(z) - target_logit, 0).astype(logits.dtype)  # (N,)
        ctx.save_for_backward(probs, safe_t, valid)
        ctx.reduction, ctx.n_valid = reduction, int(valid.sum())
        if reduction == "none":
            return losses
        total = losses.sum(dtype=logits.dtype)
        return np.asarray(total / ctx.n_valid if reduction == "mean" else total, dtype=logits.dtype)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        probs, safe_t, valid = ctx.saved_tensors
        # the graph is freed after this call unless retained, so reuse the big buffer
        d = probs if not ctx.graph_retained else probs.copy()
        d[np.arange(len(safe_t)), safe_t] -= 1                         # probs - onehot(t)
        if ctx.reduction == "none":
            weight = g * valid                                         # (N,)
        else:
            scale = g / ctx.n_valid if ctx.reduction == "mean" else g  # 0-d
            weight = valid * scale                                     # (N,)
        d *= weight[:, None].astype(d.dtype, copy=False)
        return d, None


def cross_entropy(input: Tensor, target: Any, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Cross-entropy of logits against integer class targets.

    Shapes: logits (N, V) with targets (N,), as PyTorch; or (..., V) with (...)
    (the class dim last, as a GPT's logits come, where PyTorch would want it
    second). Targets equal to `ignore_index` add nothing. Reduction 'mean'
    (over the non-ignored targets), 'sum' or 'none'.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class ids, got dtype {t.dtype}")
    if input.ndim < 1 or t.shape != input.shape[:-1]:
        raise ValueError(f"cross_entropy: logits of shape {input.shape} need targets of shape "
                         f"{input.shape[:-1]}, got {t.shape}")
    v = input.shape[-1]
    bad = (t != ignore_index) & ((t < 0) | (t >= v))
    if bad.any():
        raise ValueError(f"cross_entropy: target {t[bad].flat[0]} is out of range for {v} classes "
                         f"({int(bad.sum())} bad targets)")
    flat = input.reshape(-1, v)
    out = CrossEntropy.apply(flat, t.reshape(-1), ignore_index=ignore_index, reduction=reduction)
    return out.reshape(t.shape) if reduction == "none" else out


# ----------------------------------------------------------------------------- layer norm


class LayerNorm(Function):
    """y = x̂ · w + b with x̂ = (x - μ) · rstd, μ = mean(x), rstd = 1 / √(var(x) + eps),
    over the trailing normalised axes (biased variance, as GPT-2).

    backward, per row of n normalised elements:
      db = Σ_rows g                       (bias: every row adds g)
      dw = Σ_rows g · x̂                   (weight: y was w · x̂)
      dx̂ = g · w
      dx = rstd · (dx̂ - mean(dx̂) - x̂ · mean(dx̂ · x̂))
           ^ direct term  ^ through μ   ^ through rstd (var)
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, w: np.ndarray | None, b: np.ndarray | None,
                axes: tuple[int, ...], eps: float) -> np.ndarray:
        mean = x.mean(axis=axes, keepdims=True)                        # (B, T, 1)
        xc = x - mean                                                  # (B, T, C)
        var = (xc * xc).mean(axis=axes, keepdims=True)                 # (B, T, 1) biased
        rstd = 1 / np.sqrt(var + eps)                                  # (B, T, 1)
        xhat = xc * rstd                                               # (B, T, C) reuses nothing saved
        ctx.save_for_backward(xhat, rstd, w)
        ctx.axes, ctx.has_w, ctx.has_b = axes, w is not None, b is not None
        out = xhat * w if w is not None else xhat.copy()
        if b is not None:
            out += b
        return out

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        xhat, rstd, w = ctx.saved_tensors
        axes = ctx.axes
        lead = tuple(range(g.ndim - len(axes)))                        # the row axes
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        db = g.sum(axis=lead) if ctx.has_b and need_b else None
        dw = (g * xhat).sum(axis=lead) if ctx.has_w and need_w else None
        dx = None
        if need_x:
            dxhat = g * w if w is not None else g
            dx = dxhat - dxhat.mean(axis=axes, keepdims=True)
            dx -= xhat * (dxhat * xhat).mean(axis=axes, keepdims=True)
            dx *= rstd
        return dx, dw, db


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing `normalized_shape` dims to mean 0 and variance 1
    (biased), then scale by `weight` and shift by `bias`."""
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if input.shape[input.ndim - len(shape):] != shape or len(shape) > input.ndim:
        raise ValueError(f"layer_norm: input of shape {input.shape} does not end in normalized_shape {shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != shape:
            raise ValueError(f"layer_norm: {name} has shape {p.shape}, expected {shape}")
    axes = tuple(range(input.ndim - len(shape), input.ndim))
    return LayerNorm.apply(input, weight, bias, axes=axes, eps=eps)


# ----------------------------------------------------------------------------- activations

_GELU_C = math.sqrt(2 / math.pi)  # a Python float, so float32 stays float32


class GELU(Function):
    """GELU, tanh form: y = ½ x (1 + tanh u),  u = √(2/π) (x + 0.044715 x³).

    backward, with t = tanh u:
      dy/dx = ½ (1 + t)                                   (from the first x)
            + ½ x (1 - t²) · √(2/π) (1 + 3 · 0.044715 x²)  (through tanh)
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        t = np.tanh(_GELU_C * (x + 0.044715 * x * x * x))
        ctx.save_for_backward(x, t)
        return 0.5 * x * (1 + t)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        x, t = ctx.saved_tensors
        x2 = x * x
        dydx = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * (_GELU_C * (1 + 3 * 0.044715 * x2))
        return g * dydx


def gelu(input: Tensor, approximate: str = "tanh") -> Tensor:
    """GELU in its tanh form (GPT-2's). PyTorch's default is the exact erf form;
    only `approximate='tanh'` is offered here."""
    if approximate != "tanh":
        raise ValueError(f"gelu: only approximate='tanh' (GPT-2's form) is implemented, got {approximate!r}")
    return GELU.apply(input)


def relu(input: Tensor) -> Tensor:
    """max(x, 0); the gradient at 0 is 0, as PyTorch."""
    return ops.ReLU.apply(input)


class Dropout(Function):
    """y = x · m / (1 - p) with m ~ Bernoulli(1 - p) per element;  dx = g · m / (1 - p)"""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, p: float) -> np.ndarray:
        keep = default_generator().random(x.shape, dtype=np.float32) >= p
        mask = keep.astype(x.dtype)
        mask *= 1 / (1 - p)
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        (mask,) = ctx.saved_tensors
        return g * mask


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (in training only).
    The mask comes from numpygpt's generator (`manual_seed`), not PyTorch's."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    return Dropout.apply(input, p=p)


# ----------------------------------------------------------------------------- linear and embedding


class Linear(Function):
    """y = x Wᵀ + b with W of shape (out, in), as PyTorch.

    backward, flattening the leading dims into rows (x2: (N, in), g2: (N, out)):
      dx = g W            (N, out) @ (out, in)
      dW = g2ᵀ x2         (out, N) @ (N, in): one BLAS call for the whole batch
      db = Σ_rows g2
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        ctx.save_for_backward(x, w)
        x2 = x.reshape(-1, x.shape[-1])                                # (N, in) one GEMM for all rows
        out = x2 @ w.T                                                 # (N, out)
        if b is not None:
            out += b
        return out.reshape(*x.shape[:-1], w.shape[0])                  # (..., out)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        x, w = ctx.saved_tensors
        g2 = g.reshape(-1, g.shape[-1])                                # (N, out)
        dx = (g2 @ w).reshape(x.shape) if ctx.needs_input_grad[0] else None   # (..., in)
        dw = g2.T @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None  # (out, in)
        db = g2.sum(axis=0) if ctx.needs_input_grad[2] else None       # (out,)
        return dx, dw, db


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, weight of shape (out_features, in_features)."""
    if weight.ndim != 2 or input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {input.shape} cannot multiply weight of shape "
                         f"{weight.shape} (expected input (..., {weight.shape[-1]}))")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"linear: bias has shape {bias.shape}, expected {weight.shape[:1]}")
    return Linear.apply(input, weight, bias)


class Embedding(Function):
    """y = W[ids]: row ids[i] of W for each id.

    backward: each id's row of dW receives the gradient of every position that
    looked it up; repeated ids add up (`np.add.at`).
    """

    @staticmethod
    def forward(ctx: Context, w: np.ndarray, ids: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(ids)
        ctx.shape = w.shape
        return w[ids]                                                  # (..., C)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        (ids,) = ctx.saved_tensors
        # zeros written in one pass: np.zeros would hand back lazily zeroed pages, and
        # scattering a few rows into them faults pages in all over the table (4x slower)
        dw = np.empty(ctx.shape, dtype=g.dtype)                        # (num, C)
        dw.fill(0)
        np.add.at(dw, ids.reshape(-1), g.reshape(-1, ctx.shape[1]))
        return dw


def embedding(input: Any, weight: Tensor) -> Tensor:
    """Rows of `weight` (num_embeddings, dim) picked by integer ids of any shape."""
    ids = _checks.token_ids(input, weight.shape[0])
    return Embedding.apply(weight, ids=ids)


# ----------------------------------------------------------------------------- losses


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or none) of squared differences; built from primitives."""
    target = input._operand(target)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input of shape {input.shape} and target of shape {target.shape} differ")
    sq = (input - target) ** 2
    if reduction == "mean":
        return sq.mean()
    if reduction == "sum":
        return sq.sum()
    if reduction == "none":
        return sq
    raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
