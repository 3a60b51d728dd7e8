"""Neural-network functions with PyTorch's signatures (`numpygpt.nn.functional`).

The ones a GPT spends its time in are fused `Function`s whose backward is
derived by hand and commented term by term: `layer_norm`, `gelu`, `linear`,
`embedding`, `dropout`. The losses, `cross_entropy` among them, are in
losses.py and re-exported here. `softmax` and `log_softmax` are Tensor methods
too, so their `Function`s live with the other Tensor ops in ops.py. Each fused
op has a twin composed from primitive ops in the tests, checked against it and
against finite differences. `relu` and `scaled_dot_product_attention` are
built from primitives; `pad` is a small `Function`, `one_hot` is not
differentiable. `erf` and `erfc` (on NumPy arrays, which have none) serve the
exact GELU.

Shape legend: N rows, V classes, C features; attention: L queries, S keys, E features.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from . import _checks, _parallel, fused, ops
from .autograd import Context, Function
from .losses import cross_entropy, mse_loss, nll_loss
from .random import dropout_keep_mask
from .tensor import Tensor

__all__ = ["cross_entropy", "dropout", "embedding", "erf", "erfc", "gelu", "layer_norm", "linear", "log_softmax",
           "mse_loss", "nll_loss", "one_hot", "pad", "relu", "scaled_dot_product_attention", "softmax"]

# ----------------------------------------------------------------------------- softmax family


def _implicit_dim(name: str, ndim: int) -> int:
    """PyTorch's deprecated choice when no dim is given: 0 for 0-, 1- and 3-d input, else 1."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  "Change the call to include dim=X as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None) -> Tensor:
    """Softmax along `dim`; every slice along `dim` sums to 1."""
    return input.softmax(_implicit_dim("softmax", input.ndim) if dim is None else dim)


def log_softmax(input: Tensor, dim: int | None = None) -> Tensor:
    """log(softmax(x)) along `dim`, computed stably in one pass."""
    return input.log_softmax(_implicit_dim("log_softmax", input.ndim) if dim is None else dim)


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
        xhat = np.subtract(x, _mean(x, axes), out=np.empty_like(x))   # (B, T, C) x - μ, the one new array
        var = _mean(np.square(xhat), axes)                             # (B, T, 1) biased
        rstd = 1 / np.sqrt(var + eps)                                  # (B, T, 1)
        xhat *= rstd                                                   # (B, T, C) x̂, in place
        need_grad = fused.recording(ctx)
        if need_grad:
            ctx.save_for_backward(xhat, rstd, w)
            ctx.axes, ctx.has_w, ctx.has_b = axes, w is not None, b is not None
        out = xhat.copy() if need_grad else xhat                       # backward keeps x̂; else reuse it
        if w is not None:
            out *= w
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
        prod = g * xhat                                                # g · x̂, then dx̂ · x̂: one buffer
        dw = prod.sum(axis=lead) if ctx.has_w and need_w else None
        dx = None
        if need_x:
            dxhat = g * w if w is not None else g.copy()               # (B, T, C), becomes dx in place
            if w is not None:
                prod *= w                                              # dx̂ · x̂ = g · w · x̂
            dx = dxhat
            dx -= _mean(dxhat, axes)                                   # - mean(dx̂)        (through μ)
            np.multiply(xhat, _mean(prod, axes), out=prod)
            dx -= prod                                                 # - x̂ · mean(dx̂ · x̂)  (through rstd)
            dx *= rstd
        return dx, dw, db


def _mean(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """x.mean(axis=axes, keepdims=True) without np.mean's Python wrapper (~3 µs a call, which a
    decoding step pays ~50 times a token). The same bits: the same pairwise sum, and a division
    by the count that is exact either way (np.mean divides in float64 and rounds to float32,
    which for one division gives the correctly rounded float32 quotient this computes)."""
    total = x.sum(axis=axes, keepdims=True)
    total /= math.prod(x.shape[a] for a in axes)
    return total


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing `normalized_shape` dims to mean 0 and variance 1
    (biased), then scale by `weight` and shift by `bias`."""
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if input.shape[input.ndim - len(shape):] != shape or len(shape) > input.ndim:
        raise ValueError(f"layer_norm: input of shape {tuple(input.shape)} does not end in normalized_shape {shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != shape:
            raise ValueError(f"layer_norm: {name} has shape {tuple(p.shape)}, expected {shape}")
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

    Computed as the same function written with the logistic σ(z) = 1 / (1 + e⁻ᶻ):
    ½ (1 + tanh u) = σ(2u), so y = x · s with s = σ(2u) = 1 / (1 + e^(-2u)).
    One exp where the seed's formula has a tanh (NumPy's exp is 2x faster than its
    tanh in float32 and 4x in float64), and no 1 + tanh u cancelling to nothing for
    large negative x. It works `_GELU_CHUNK` numbers at a time, so the passes over
    each chunk stay in the core's cache, the chunks dealt out to threads in turn
    (`_parallel`: each number is computed as it would be in one thread).

    backward, with ds/du = 2 s (1 - s):
      dy/dx = s + x · 2 s (1 - s) · √(2/π) (1 + 3 · 0.044715 x²)
    which is the tanh form's ½ (1 + t) + ½ x (1 - t²) · du/dx with t = tanh u = 2s - 1.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        x = x if x.flags.c_contiguous else x.copy(order="C")           # the chunks are runs of memory
        out = np.empty_like(x)

        def run(chunks: list[tuple[np.ndarray, ...]]) -> None:
            for xc, oc in chunks:
                _gelu_tanh_kernel(xc, oc, oc)                          # σ(2u), then y, in the output

        _in_turns(run, list(_chunks(x, out)))
        if fused.recording(ctx):
            ctx.save_for_backward(x)  # x only: backward recomputes σ(2u), one exp, instead of keeping it
        return out

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        (x,) = ctx.saved_tensors
        dydx = np.empty_like(x)

        def run(chunks: list[tuple[np.ndarray, ...]]) -> None:
            s, term = (np.empty(min(x.size, _GELU_CHUNK), dtype=x.dtype) for _ in range(2))
            for xc, dc in chunks:
                n = xc.size
                _gelu_tanh_kernel(xc, s[:n])                           # s = σ(2u) again, the same bits
                _gelu_tanh_grad_kernel(xc, s[:n], dc, term[:n])

        _in_turns(run, list(_chunks(x, dydx)))
        if g.shape != dydx.shape:                                      # g may keep a broadcast shape
            return g * dydx
        dydx *= g
        return dydx


_GELU_CHUNK = 2**16                 # numbers per chunk: a few arrays of it fit in a core's L2 cache
_GELU_A = -2 * _GELU_C              # -2u = x (A + B x²)
_GELU_B = -2 * _GELU_C * 0.044715


def _chunks(*arrays: np.ndarray):
    """Matching 1-D chunks of _GELU_CHUNK numbers of equally shaped C-contiguous arrays."""
    flat = [a.reshape(-1) for a in arrays]
    for lo in range(0, arrays[0].size, _GELU_CHUNK):
        yield tuple(a[lo:lo + _GELU_CHUNK] for a in flat)


def _in_turns(run: Callable[[list[Any]], None], chunks: list[Any]) -> None:
    """`run(chunks)`, the chunks dealt out in turn to up to `_parallel.num_threads()` calls in threads."""
    if len(chunks) == 1:                           # a decoding step's few thousand numbers: no threads
        return run(chunks)
    runs = min(len(chunks), _parallel.num_threads())
    _parallel.map_in_threads(lambda k: run(chunks[k::runs]), range(runs))


def _gelu_tanh_kernel(x: np.ndarray, s: np.ndarray, out: np.ndarray | None = None) -> None:
    """s = σ(2u) and, if `out` is given, out = x · s = GELU(x), in place (out may be s itself:
    then s ends as y). The same operations with or without grad, so the same bits either way."""
    np.multiply(x, x, out=s)
    s *= _GELU_B
    s += _GELU_A
    s *= x                                                             # -2u = -2√(2/π) (x + 0.044715 x³)
    with np.errstate(over="ignore"):      # e^(-2u) = inf for very negative x: s = 0 and y = -0, the limit
        np.exp(s, out=s)
    s += 1                                                             # 1 + e^(-2u)
    np.divide(1, s, out=s)                                             # s = σ(2u)
    if out is not None:
        np.multiply(x, s, out=out)                                     # y = x · s


def _gelu_tanh_grad_kernel(x: np.ndarray, s: np.ndarray, dx: np.ndarray, term: np.ndarray) -> None:
    """dx = dy/dx = s + x · 2 s (1 - s) · √(2/π) (1 + 3 · 0.044715 x²), in place; `term` is scratch."""
    np.multiply(x, x, out=dx)
    dx *= 6 * _GELU_C * 0.044715
    dx += 2 * _GELU_C                                                  # 2 du/dx
    np.subtract(1, s, out=term)
    term *= s
    term *= x                                                          # x s (1 - s)
    dx *= term                                                         # x · 2 s (1 - s) du/dx  (through s)
    dx += s                                                            # + s                    (from the first x)


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
        raise ValueError(f"linear: input of shape {tuple(input.shape)} cannot multiply weight of shape "
                         f"{tuple(weight.shape)} (expected input (..., {weight.shape[-1]}))")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"linear: bias has shape {tuple(bias.shape)}, expected {tuple(weight.shape[:1])}")
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


# ----------------------------------------------------------------------------- one-hot and padding


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """int64 tensor of shape (..., num_classes), 1 at each id's position and 0 elsewhere
    (num_classes=-1: one more than the largest id). Not differentiable."""
    ids = np.asarray(tensor.data if isinstance(tensor, Tensor) else tensor)
    if ids.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        if ids.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(ids.max()) + 1
    if ids.size and ids.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if ids.size and ids.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    out = np.zeros((*ids.shape, num_classes), dtype=np.int64)
    np.put_along_axis(out, ids[..., None].astype(np.int64), 1, axis=-1)
    return Tensor(out)


class Pad(Function):
    """out = x with `value` added before and after each dim (negative widths crop instead).

    backward: every element of x sits at one place in out (or was cropped away), so
    dx = the slice of g where x's elements went (0 for cropped ones).
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, widths: tuple[tuple[int, int], ...], value: float) -> np.ndarray:
        # x's elements that survive the crop, and where they land in out, per dim
        src = tuple(slice(max(0, -lo), n - max(0, -hi)) for n, (lo, hi) in zip(x.shape, widths))
        dst = tuple(slice(max(0, lo), max(0, lo) + s.stop - s.start) for s, (lo, _) in zip(src, widths))
        shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, widths))
        out = np.full(shape, value, dtype=x.dtype)
        out[dst] = x[src]
        ctx.src, ctx.dst, ctx.shape = src, dst, x.shape
        return out

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        dx = np.zeros(ctx.shape, dtype=g.dtype)
        dx[ctx.src] = g[ctx.dst]
        return dx


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad with `value` (default 0). `pad` lists (before, after) widths from the last dim
    backwards, as PyTorch: (left, right) pads the last dim, (left, right, top, bottom) the
    last two. Negative widths crop. Only mode='constant' (PyTorch also has reflect,
    replicate and circular)."""
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is implemented, got {mode!r}")
    if not all(_checks.is_integer(p) for p in pad):
        raise TypeError(f"pad: widths must be integers, got {tuple(pad)}")
    pad = [int(p) for p in pad]
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input dimension "
                           f"but got padding length {len(pad)} and input of dimension {input.ndim}")
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]   # last dim first
    widths = ((0, 0),) * (input.ndim - len(pairs)) + tuple(reversed(pairs))
    for d, (n, (lo, hi)) in enumerate(zip(input.shape, widths)):
        if n + lo + hi < 0:
            raise RuntimeError(f"pad: dim {d} of size {n} with widths ({lo}, {hi}) "
                               f"would have negative size {n + lo + hi}")
    return Pad.apply(input, widths=widths, value=0.0 if value is None else value)


# ----------------------------------------------------------------------------- attention


def causal_mask(context_length: int, dtype: Any = np.float32) -> np.ndarray:
    """triu(ones(T, T), 1), the seed's mask, as a read-only view that costs O(T) memory, not O(T²).

    Row i is 1 at columns j > i: the window line[T-1-i : 2T-1-i] of line = T zeros then T-1 ones.
    The windows of `line`, last first, are exactly those rows, so no (T, T) array is ever made
    (a model with a context of 50,000 would otherwise spend 10 GB per block on its mask).
    """
    T = context_length
    line = np.concatenate([np.zeros(T, dtype=dtype), np.ones(max(T - 1, 0), dtype=dtype)])
    return np.lib.stride_tricks.sliding_window_view(line, T)[::-1]


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """softmax(q kᵀ · scale + mask) v, as PyTorch's math reference, composed from matmul,
    masked_fill, softmax and dropout, so its backward is theirs.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); scale defaults
    to 1/√E. `attn_mask`: bool, True where a query may attend (the opposite of
    masked_fill's convention), or float, added to the scores; `is_causal` lets query i
    attend keys 0..i (no attn_mask then). A query that may attend no key gets zeros, as
    PyTorch's. Dropout applies whenever dropout_p > 0 (pass 0 in eval, as with PyTorch).
    No `enable_gqa`.
    """
    if is_causal and attn_mask is not None:
        raise RuntimeError("scaled_dot_product_attention: explicit attn_mask should not be set when is_causal=True")
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2 or key.shape[-2] != value.shape[-2] \
            or query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"scaled_dot_product_attention: query {tuple(query.shape)}, key {tuple(key.shape)} "
                           f"and value {tuple(value.shape)} need shapes (..., L, E), (..., S, E) and (..., S, Ev)")
    L, S = query.shape[-2], key.shape[-2]
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale                   # (..., L, S)
    if is_causal:
        attn_mask = np.tril(np.ones((L, S), dtype=bool))               # (L, S) keep i ≥ j
    if attn_mask is not None:
        mask = attn_mask.data if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
        if mask.dtype == bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            bias = attn_mask if isinstance(attn_mask, Tensor) else Tensor(mask)
            scores = scores + bias.to(scores.dtype)                    # (..., L, S)
    blocked = np.isneginf(scores.data).all(axis=-1, keepdims=True)     # (..., L, 1) rows with no key
    if blocked.any():                                                  # PyTorch's safe softmax: zeros there
        scores = scores.masked_fill(np.broadcast_to(blocked, scores.shape), 0.0)
    weights = scores.softmax(-1)                                       # (..., L, S)
    if blocked.any():
        weights = weights.masked_fill(np.broadcast_to(blocked, weights.shape), 0.0)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, training=True)
    return weights @ value                                             # (..., L, Ev)
