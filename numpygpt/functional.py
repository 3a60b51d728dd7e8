"""Neural-network functions with PyTorch's signatures (`numpygpt.nn.functional`).

The ones a GPT spends its time in are fused `Function`s whose backward is
derived by hand and commented term by term: `cross_entropy`, `layer_norm`,
`gelu`, `linear`, `embedding`, `dropout`. `softmax` and `log_softmax` are
Tensor methods too, so their `Function`s live with the other Tensor ops in
ops.py. Each fused op has a twin composed from primitive ops in the tests,
checked against it and against finite differences. `relu` and `mse_loss` are
built from primitives. `erf` and `erfc` (on NumPy arrays, which have none)
serve the exact GELU.

Shape legend: N rows, V classes, C features.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from . import _checks, ops
from .autograd import Context, Function
from .random import dropout_keep_mask
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


# ----------------------------------------------------------------------------- the error function

# W. J. Cody, "Rational Chebyshev approximations for the error function" (Math. Comp., 1969),
# in its three intervals of |x|; each tuple is a polynomial's coefficients, highest power first.
_ERF_SMALL = 0.46875
# |x| ≤ 0.46875:      erf(x) = x · A(x²) / B(x²)
_ERF_A = (1.85777706184603153e-1, 3.16112374387056560e00, 1.13864154151050156e02,
          3.77485237685302021e02, 3.20937758913846947e03)
_ERF_B = (1.0, 2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
# 0.46875 < y ≤ 4:    erfc(y) = exp(-y²) · C(y) / D(y)
_ERFC_C = (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e00,
           6.61191906371416295e01, 2.98635138197400131e02, 8.81952221241769090e02,
           1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03)
_ERFC_D = (1.0, 1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
           1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
           3.43936767414372164e03, 1.23033935480374942e03)
# y > 4, z = 1/y²:    erfc(y) = exp(-y²) / y · (1/√π - z · P(z) / Q(z))
_ERFC_P = (1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1,
           1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4)
_ERFC_Q = (1.0, 2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
           6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 1 / math.sqrt(math.pi)


def _ratio(t: np.ndarray, num: tuple[float, ...], den: tuple[float, ...]) -> np.ndarray:
    """num(t) / den(t), both by Horner's rule (in place: no temporary per coefficient).
    Each den starts with 1, so q starts as t + den[1]."""
    p, q = t * num[0], t + den[1]
    p += num[1]
    for c in num[2:]:
        p *= t
        p += c
    for c in den[2:]:
        q *= t
        q += c
    p /= q
    return p


def _split(y: np.ndarray, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of y ≤ bound and of the rest (nan included). Integer indices gather
    and scatter several times faster than a boolean mask does."""
    inside = y <= bound
    return np.flatnonzero(inside), np.flatnonzero(~inside)


def _erfc_positive(y: np.ndarray) -> np.ndarray:
    """erfc(y) for y > 0.46875 (float64), the two outer intervals of Cody's approximation."""
    y = np.minimum(y, 30.0)                        # erfc(30) underflows to 0; inf gives 0, nan stays nan
    scaled = np.empty_like(y)                      # exp(y²) · erfc(y)
    mid, far = _split(y, 4.0)
    scaled[mid] = _ratio(y[mid], _ERFC_C, _ERFC_D)
    yf = y[far]
    z = 1 / (yf * yf)
    scaled[far] = (_INV_SQRT_PI - z * _ratio(z, _ERFC_P, _ERFC_Q)) / yf
    # exp(-y²) as exp(-r²) · exp(-(y - r)(y + r)), r = y rounded down to a 16th: r² is exact,
    # so the rounding error of y² (which exp would magnify by y²) never arises
    r = np.floor(y * 16) / 16
    return np.exp(-r * r) * np.exp(-(y - r) * (y + r)) * scaled


def _as_float64(x: Any) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """x flattened as float64, |x|, and the dtype to return (a float input keeps its own)."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    flat = x.astype(np.float64, copy=False).reshape(-1)
    return flat, np.abs(flat), dtype


def erf(x: np.ndarray) -> np.ndarray:
    """erf(x) = 2/√π ∫₀ˣ exp(-t²) dt, elementwise on a NumPy array (not a Tensor op).

    Cody's rational Chebyshev approximations, evaluated in float64 (within a few
    ulp of the exact value); a float32 input comes back as float32.
    """
    flat, y, dtype = _as_float64(x)
    out = np.empty_like(flat)
    small, rest = _split(y, _ERF_SMALL)
    xs = flat[small]
    out[small] = xs * _ratio(xs * xs, _ERF_A, _ERF_B)
    out[rest] = np.copysign(1 - _erfc_positive(y[rest]), flat[rest])
    return out.reshape(np.shape(x)).astype(dtype, copy=False)


def erfc(x: np.ndarray) -> np.ndarray:
    """erfc(x) = 1 - erf(x), computed without that subtraction, so that tiny values
    (erfc(10) ≈ 2e-45) keep all their digits."""
    flat, y, dtype = _as_float64(x)
    out = np.empty_like(flat)
    small, rest = _split(y, _ERF_SMALL)
    xs = flat[small]
    out[small] = 1 - xs * _ratio(xs * xs, _ERF_A, _ERF_B)
    tail = _erfc_positive(y[rest])
    out[rest] = np.where(flat[rest] < 0, 2 - tail, tail)        # erfc(-y) = 2 - erfc(y)
    return out.reshape(np.shape(x)).astype(dtype, copy=False)


# ----------------------------------------------------------------------------- activations

_GELU_C = math.sqrt(2 / math.pi)  # a Python float, so float32 stays float32
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


class GELU(Function):
    """GELU, exact form (PyTorch's default): y = x Φ(x), with Φ the standard normal CDF,
    Φ(x) = ½ (1 + erf(x/√2)) = ½ erfc(-x/√2)  (erfc keeps the left tail's digits).

    backward, with φ(x) = Φ'(x) = exp(-x²/2) / √(2π) the normal density:
      d/dx [x Φ(x)] = Φ(x)        (from the first x)
                    + x φ(x)      (through Φ)
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        cdf = (0.5 * erfc(x.astype(np.float64) * -_SQRT_HALF)).astype(x.dtype)  # Φ(x)
        ctx.save_for_backward(x, cdf)
        return x * cdf

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        x, cdf = ctx.saved_tensors
        pdf = np.exp(-0.5 * x * x) * _INV_SQRT_2PI                    # φ(x)
        return g * (cdf + x * pdf)                                     # Φ(x) + x φ(x)


class GELUTanh(Function):
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


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """GELU, as PyTorch: approximate='none' (the default) is the exact x Φ(x);
    'tanh' is ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))), GPT-2's form."""
    if approximate == "none":
        return GELU.apply(input)
    if approximate == "tanh":
        return GELUTanh.apply(input)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def relu(input: Tensor) -> Tensor:
    """max(x, 0); the gradient at 0 is 0, as PyTorch."""
    return ops.ReLU.apply(input)


class Dropout(Function):
    """y = x · m / (1 - p) with m ~ Bernoulli(1 - p) per element;  dx = g · m / (1 - p)"""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, p: float) -> np.ndarray:
        mask = dropout_keep_mask(x.shape, p).astype(x.dtype)      # PyTorch's bernoulli_(1 - p)
        mask *= 1 / (1 - p)
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        (mask,) = ctx.saved_tensors
        return g * mask


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (in training only).
    The mask is PyTorch's for the same seed (`numpygpt.random.set_dropout_stream` chooses
    between PyTorch 2's stream and the one older x86 releases used)."""
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
