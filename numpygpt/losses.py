"""Loss functions with PyTorch's signatures; `numpygpt.functional` re-exports them
(`F.cross_entropy`, `F.nll_loss`, `F.mse_loss`).

`cross_entropy` with integer targets, a GPT's loss, is one fused `Function`
(label smoothing included) whose backward is `probs - q`; `nll_loss` is a
small `Function` of its own. Cross-entropy against class probabilities and
`mse_loss` are composed from primitive ops, so their gradients come for free.

Differences from PyTorch: the class dim is the last one, (..., V) with targets
(...), as a GPT's logits come (PyTorch wants (N, V, d1, ...) with the class
second; for (N, V) and (V,) the two agree). No class `weight`, `size_average`
or `reduce`; pass `ignore_index`, `reduction` and `label_smoothing` by keyword.

Shape legend: N rows, V classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .autograd import Context, Function
from .tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _reduce_rows(losses: np.ndarray, reduction: str, n_valid: int) -> np.ndarray:
    """Per-row losses (N,) reduced: 'mean' over the n_valid counted rows (nan if none), 'sum', or 'none'."""
    if reduction == "none":
        return losses
    total = losses.sum(dtype=losses.dtype)
    if reduction == "sum":
        return np.asarray(total, dtype=losses.dtype)
    return np.asarray(total / n_valid if n_valid else np.nan, dtype=losses.dtype)


def _row_weights(g: np.ndarray, valid: np.ndarray, reduction: str, n_valid: int) -> np.ndarray:
    """d(reduced loss)/d(row loss) · g: 0 for ignored rows, g / n_valid for 'mean' (0 if no row counts)."""
    if reduction == "none":
        return g * valid                                               # (N,)
    scale = g / n_valid if reduction == "mean" and n_valid else g      # 0-d
    return valid * scale                                               # (N,)


class CrossEntropy(Function):
    """Per-row loss lᵢ = -Σⱼ qᵢⱼ log softmax(logitsᵢ)ⱼ = logsumexp(logitsᵢ) - Σⱼ qᵢⱼ logitsᵢⱼ,
    with the target distribution q = (1 - ε) onehot(tᵢ) + ε / V (ε the label smoothing; with
    ε = 0 this is -log softmax(logitsᵢ)[tᵢ]), then reduced (mean over the rows whose target is
    not `ignore_index`, or sum, or none).

    backward: ∂lᵢ/∂logitsᵢⱼ = softmaxᵢⱼ - qᵢⱼ, so
    dlogits = (probs - q) * (the weight each row has in the reduction),
    a weight that is 0 for ignored rows and g / n_valid for `mean`.

    The composed formulation, `nll_loss(log_softmax(x), t)`, makes several (N, V)
    arrays; for a GPT's N × 50,257 logits this one makes a single buffer and
    passes over it four times forward, once backward: forward leaves in it
    eᵢⱼ = exp(xᵢⱼ - maxⱼ xᵢⱼ) and keeps the row sums zᵢ (softmax = e / z,
    logsumexp = log z + max); backward turns it, in place, into
    eᵢⱼ · (wᵢ / zᵢ) - wᵢ qᵢⱼ, which is (probs - q) · w without a division pass.
    """

    @staticmethod
    def forward(ctx: Context, logits: np.ndarray, targets: np.ndarray, ignore_index: int, reduction: str,
                label_smoothing: float = 0.0) -> np.ndarray:
        n = logits.shape[0]                                            # logits (N, V), targets (N,)
        valid = targets != ignore_index                                # (N,)
        safe_t = np.where(valid, targets, 0)                           # (N,) any class for ignored rows
        e = logits - logits.max(axis=1, keepdims=True)                 # (N, V) shifted logits, the one buffer
        target_logit = e[np.arange(n), safe_t]                         # (N,) Σⱼ onehotⱼ xⱼ
        eps = label_smoothing
        if eps:                                                        # Σⱼ qⱼ xⱼ (the shift cancels: Σ q = 1)
            target_logit = (1 - eps) * target_logit + eps * e.mean(axis=1)
        np.exp(e, out=e)                                               # (N, V) in place
        z = e.sum(axis=1)                                              # (N,) softmax = e / z
        losses = np.where(valid, np.log(z) - target_logit, 0).astype(logits.dtype)  # (N,)
        ctx.save_for_backward(e, z, safe_t, valid)
        ctx.reduction, ctx.n_valid, ctx.eps = reduction, int(valid.sum()), eps
        return _reduce_rows(losses, reduction, ctx.n_valid)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        e, z, safe_t, valid = ctx.saved_tensors
        weight = _row_weights(g, valid, ctx.reduction, ctx.n_valid).astype(e.dtype, copy=False)  # (N,) wᵢ
        # the graph is freed after this call unless retained, so reuse the big buffer
        d = e if not ctx.graph_retained else np.empty_like(e)
        np.multiply(e, (weight / z)[:, None], out=d)                   # w · softmax, one pass
        d[np.arange(len(safe_t)), safe_t] -= (1 - ctx.eps) * weight    #  - w (1 - ε) onehot(t)
        if ctx.eps:
            d -= (ctx.eps / d.shape[1]) * weight[:, None]              #  - w ε / V
        return d, None


def _class_targets(name: str, input: Tensor, target: Any, ignore_index: int) -> np.ndarray:
    """Integer targets of shape input.shape[:-1], each a class id or `ignore_index`, flattened to (N,)."""
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name}: targets must be integer class ids of shape {tuple(input.shape[:-1])}, got dtype "
                        f"{t.dtype} and shape {t.shape}")
    if input.ndim < 1 or t.shape != input.shape[:-1]:
        raise ValueError(f"{name}: input of shape {tuple(input.shape)} needs targets of shape "
                         f"{tuple(input.shape[:-1])}, got {t.shape}")
    v = input.shape[-1]
    bad = (t != ignore_index) & ((t < 0) | (t >= v))
    if bad.any():
        raise IndexError(f"{name}: target {t[bad].flat[0]} is out of range for {v} classes "
                         f"({int(bad.sum())} bad targets)")
    return t.reshape(-1)


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(input: Tensor, target: Any, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits against integer class targets or class probabilities.

    Integer targets: logits (N, V) with targets (N,), as PyTorch; or (..., V) with (...)
    (the class dim last). Targets equal to `ignore_index` add nothing; 'mean' averages
    over the others (nan if there are none, with zero gradients, as PyTorch).
    Float targets of the logits' shape are class probabilities q (each row usually
    sums to 1): lᵢ = -Σⱼ qᵢⱼ log softmax(logitsᵢ)ⱼ, 'mean' over all rows; `ignore_index`
    does not apply, and q may require grad.
    `label_smoothing` ε in [0, 1] mixes the target with the uniform distribution:
    q ← (1 - ε) q + ε / V. Reduction 'mean', 'sum' or 'none'.
    """
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    t_dtype = target.dtype if isinstance(target, Tensor) else np.asarray(target).dtype
    if t_dtype.kind == "f" and np.shape(target.data if isinstance(target, Tensor) else target) == input.shape:
        return _cross_entropy_probs(input, target, reduction, label_smoothing)
    t = _class_targets("cross_entropy", input, target, ignore_index)
    flat = input.reshape(-1, input.shape[-1])
    out = CrossEntropy.apply(flat, t, ignore_index=ignore_index, reduction=reduction,
                             label_smoothing=float(label_smoothing))
    return out.reshape(input.shape[:-1]) if reduction == "none" else out


def _cross_entropy_probs(input: Tensor, target: Any, reduction: str, label_smoothing: float) -> Tensor:
    """-Σⱼ qⱼ log softmax(x)ⱼ per row, composed from log_softmax, mul and sum (not a hot path)."""
    q = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    if q.dtype != input.dtype:
        q = q.to(input.dtype)
    if label_smoothing:
        q = q * (1 - label_smoothing) + label_smoothing / input.shape[-1]
    losses = -(input.log_softmax(-1) * q).sum(-1)                    # (...)
    if reduction == "mean":
        return losses.mean()                                           # over the rows, as PyTorch
    return losses.sum() if reduction == "sum" else losses


class NLLLoss(Function):
    """Per-row loss lᵢ = -xᵢ[tᵢ] (x holds log-probabilities), reduced as cross-entropy is.

    backward: ∂lᵢ/∂xᵢⱼ = -[j = tᵢ], so dx is zero but for -(the row's weight in the
    reduction) at each (i, tᵢ) whose target is not ignored.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, targets: np.ndarray, ignore_index: int, reduction: str) -> np.ndarray:
        valid = targets != ignore_index                                # (N,)
        safe_t = np.where(valid, targets, 0)                           # (N,)
        losses = np.where(valid, -x[np.arange(x.shape[0]), safe_t], 0).astype(x.dtype)  # (N,)
        ctx.save_for_backward(safe_t, valid)
        ctx.shape, ctx.reduction, ctx.n_valid = x.shape, reduction, int(valid.sum())
        return _reduce_rows(losses, reduction, ctx.n_valid)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        safe_t, valid = ctx.saved_tensors
        weight = _row_weights(g, valid, ctx.reduction, ctx.n_valid)  # (N,)
        dx = np.zeros(ctx.shape, dtype=g.dtype)                        # (N, V)
        dx[np.arange(len(safe_t)), safe_t] = -weight
        return dx, None


def nll_loss(input: Tensor, target: Any, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -input[..., t] for log-probabilities input (..., V) and
    integer targets t (...), e.g. `nll_loss(x.log_softmax(-1), t)` is `cross_entropy(x, t)`.
    `ignore_index` and `reduction` as in `cross_entropy`."""
    _check_reduction("nll_loss", reduction)
    t = _class_targets("nll_loss", input, target, ignore_index)
    flat = input.reshape(-1, input.shape[-1])
    out = NLLLoss.apply(flat, t, ignore_index=ignore_index, reduction=reduction)
    return out.reshape(input.shape[:-1]) if reduction == "none" else out


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or none) of squared differences; built from primitives."""
    target = input._operand(target)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input of shape {tuple(input.shape)} and target of shape "
                         f"{tuple(target.shape)} differ")
    _check_reduction("mse_loss", reduction)
    sq = (input - target) ** 2
    if reduction == "mean":
        return sq.mean()
    return sq.sum() if reduction == "sum" else sq
