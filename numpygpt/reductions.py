"""Reductions, one `Function` each: sum, mean, var, max/min, logsumexp, cumsum.

Each combines the elements along `axis` (a tuple of dims, or None for all);
its backward puts the reduced axes back (as size 1) so the gradient
broadcasts against the input. Notation as in ops.py: `g` is dL/d(out).
"""

from __future__ import annotations

import numpy as np

from .autograd import Context, Function


def _count(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> int:
    """How many elements each output of a reduction over `axis` combines."""
    return int(np.prod(shape if axis is None else [shape[a] for a in axis]))


def _expand_reduced(g: np.ndarray, axis: tuple[int, ...] | None, keepdim: bool, shape: tuple[int, ...]) -> np.ndarray:
    """Put back the reduced axes of `g` (as size 1) so it broadcasts against the input."""
    if axis is not None and not keepdim:
        g = np.expand_dims(g, axis)
    return np.broadcast_to(g, shape)


class Sum(Function):
    """out = Σ_axis x;  dx = g broadcast back over the summed axes"""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: tuple[int, ...] | None, keepdim: bool) -> np.ndarray:
        ctx.shape, ctx.axis, ctx.keepdim = x.shape, axis, keepdim
        return np.asarray(x.sum(axis=axis, keepdims=keepdim))

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        return _expand_reduced(g, ctx.axis, ctx.keepdim, ctx.shape)


class Mean(Function):
    """out = (1/n) Σ_axis x;  dx = g / n broadcast back over the reduced axes"""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: tuple[int, ...] | None, keepdim: bool) -> np.ndarray:
        ctx.shape, ctx.axis, ctx.keepdim = x.shape, axis, keepdim
        ctx.n = _count(x.shape, axis)
        return np.asarray(x.mean(axis=axis, keepdims=keepdim))

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        return _expand_reduced(g / ctx.n, ctx.axis, ctx.keepdim, ctx.shape)


class Var(Function):
    """out = Σ (x - x̄)² / (n - c), with c = 1 unbiased (the default) or 0 biased;
    dx = g * 2 (x - x̄) / (n - c)   (the x̄ term's own gradient sums to zero)

    Where n - c ≤ 0 the divisor is 0 and the result nan, as PyTorch.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: tuple[int, ...] | None, keepdim: bool, correction: int) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):  # n - c = 0 gives nan, as it should
            centered = x - (x.mean(axis=axis, keepdims=True) if x.size else 0)
            ctx.denom = max(_count(x.shape, axis) - correction, 0)
            out = np.asarray((centered * centered).sum(axis=axis, keepdims=keepdim) / ctx.denom)
        ctx.save_for_backward(centered)
        ctx.axis, ctx.keepdim = axis, keepdim
        return out

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        (centered,) = ctx.saved_tensors
        if ctx.axis is not None and not ctx.keepdim:
            g = np.expand_dims(g, ctx.axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * centered * 2 / ctx.denom


class Max(Function):
    """out = max_axis x.

    Over one axis the gradient goes to the index that `argmax` picks (the
    first maximum), as `torch.max(x, dim)` does. Over all elements it is
    shared equally between tied maxima, as `torch.max(x)` does.
    """

    reduce, arg = staticmethod(np.max), staticmethod(np.argmax)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: int | None, keepdim: bool) -> np.ndarray:
        ctx.shape, ctx.axis, ctx.keepdim = x.shape, axis, keepdim
        if axis is None:
            out = ctx.fn.reduce(x)
            ctx.save_for_backward(x == out)
            return np.asarray(out)
        idx = np.expand_dims(ctx.fn.arg(x, axis=axis), axis)
        ctx.save_for_backward(idx)
        out = np.take_along_axis(x, idx, axis=axis)
        return out if keepdim else np.squeeze(out, axis)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        (saved,) = ctx.saved_tensors
        if ctx.axis is None:
            return g * saved / int(saved.sum())  # a Python int keeps g's dtype
        if not ctx.keepdim:
            g = np.expand_dims(g, ctx.axis)
        dx = np.zeros(ctx.shape, dtype=g.dtype)
        np.put_along_axis(dx, saved, g, axis=ctx.axis)
        return dx


class Min(Max):
    """out = min_axis x; the gradient goes where Max's would, to the (first) minimum."""

    reduce, arg = staticmethod(np.min), staticmethod(np.argmin)


class LogSumExp(Function):
    """out = m + ln Σ_axis exp(x - m), m = max_axis x (shifted: no overflow);
    dx = g * exp(x - out)   (= g * softmax(x) along the axes)"""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: tuple[int, ...], keepdim: bool) -> np.ndarray:
        m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
        m = np.where(np.isfinite(m), m, 0)  # all -inf (or an inf, or no element) along the axes: no shift
        with np.errstate(divide="ignore"):  # an all -inf slice: log 0 = -inf, as PyTorch
            out = m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(x, out)
        ctx.axis, ctx.keepdim = axis, keepdim
        return out if keepdim else np.squeeze(out, axis)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        x, out = ctx.saved_tensors
        with np.errstate(invalid="ignore"):
            weights = np.where(np.isneginf(out), 0, np.exp(x - out))  # an all -inf slice passes on 0
        return (g if ctx.keepdim else np.expand_dims(g, ctx.axis)) * weights


class CumSum(Function):
    """out_i = Σ_{j ≤ i} x_j along `axis`;  dx_j = Σ_{i ≥ j} g_i, a cumulative sum from the end"""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: int) -> np.ndarray:
        ctx.axis = axis
        return np.cumsum(x, axis=axis)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        return np.flip(np.cumsum(np.flip(g, ctx.axis), axis=ctx.axis), ctx.axis)
