"""The functions of the torch namespace: `numpygpt.tanh(x)` is `x.tanh()`, and so on.

With these (and the factories of tensor.py) code written for PyTorch runs with
`import numpygpt as torch`. Each function forwards to the Tensor method of the
same name, so the gradient is that method's. Differences from PyTorch:
- dtypes are NumPy's: `float32 = np.float32`, `long = np.int64`, `bool = np.bool_`;
- `device=` is accepted, and must be "cpu";
- `max(a, b)` / `min(a, b)` with two tensors (elementwise) are not provided.
"""

from __future__ import annotations

import builtins
import contextlib
import math
from typing import Any, Sequence

import numpy as np

from . import _checks
from .autograd import _state, is_grad_enabled
from .random import Generator, default_generator
from .tensor import Tensor, _leaf, _shape, get_default_dtype, tensor

pi, inf, nan = math.pi, math.inf, math.nan
float32, float64, int64, long = np.float32, np.float64, np.int64, np.int64
float, double, int32 = np.float32, np.float64, np.int32  # noqa: A001 (torch.float is float32)

Dim = int | Sequence[int] | None


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else tensor(x)


# ----------------------------------------------------------------------------- elementwise


def tanh(input: Any) -> Tensor:
    return _t(input).tanh()


def sigmoid(input: Any) -> Tensor:
    return _t(input).sigmoid()


def sqrt(input: Any) -> Tensor:
    return _t(input).sqrt()


def exp(input: Any) -> Tensor:
    return _t(input).exp()


def log(input: Any) -> Tensor:
    return _t(input).log()


def abs(input: Any) -> Tensor:  # noqa: A001
    return _t(input).abs()


def pow(input: Any, exponent: Any) -> Tensor:  # noqa: A001
    """input ** exponent; `input` may be a number when `exponent` is a tensor."""
    return input**exponent if isinstance(input, Tensor) else _t(exponent).__rpow__(input)


def clamp(input: Any, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
    return _t(input).clamp(min, max)


clip = clamp


def softmax(input: Any, dim: int) -> Tensor:
    return _t(input).softmax(dim)


def log_softmax(input: Any, dim: int) -> Tensor:
    return _t(input).log_softmax(dim)


# ----------------------------------------------------------------------------- reductions


def sum(input: Any, dim: Dim = None, keepdim: bool = False) -> Tensor:  # noqa: A001
    return _t(input).sum(dim, keepdim)


def mean(input: Any, dim: Dim = None, keepdim: bool = False) -> Tensor:
    return _t(input).mean(dim, keepdim)


def var(input: Any, dim: Dim = None, keepdim: bool = False, unbiased: bool = True, *,
        correction: int | None = None) -> Tensor:
    return _t(input).var(dim, keepdim, unbiased, correction=correction)


def std(input: Any, dim: Dim = None, keepdim: bool = False, unbiased: bool = True, *,
        correction: int | None = None) -> Tensor:
    return _t(input).std(dim, keepdim, unbiased, correction=correction)


def max(input: Any, dim: int | None = None, keepdim: bool = False):  # noqa: A001
    """The largest element, or `(values, indices)` along `dim` (not the elementwise max of two tensors)."""
    if isinstance(dim, Tensor):
        raise NotImplementedError("max(a, b) of two tensors is not provided; use where(a >= b, a, b)")
    return _t(input).max(dim, keepdim)


def min(input: Any, dim: int | None = None, keepdim: bool = False):  # noqa: A001
    """The smallest element, or `(values, indices)` along `dim` (not the elementwise min of two tensors)."""
    if isinstance(dim, Tensor):
        raise NotImplementedError("min(a, b) of two tensors is not provided; use where(a <= b, a, b)")
    return _t(input).min(dim, keepdim)


def argmax(input: Any, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return _t(input).argmax(dim, keepdim)


def argmin(input: Any, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return _t(input).argmin(dim, keepdim)


def topk(input: Any, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    return _t(input).topk(k, dim, largest, sorted)


# ----------------------------------------------------------------------------- masks of a matrix


def triu(input: Any, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (on and above `diagonal`), the rest 0."""
    x = _t(input)
    return x.masked_fill(~np.triu(np.ones(x.shape[-2:], dtype=np.bool_), diagonal), 0)


def tril(input: Any, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (on and below `diagonal`), the rest 0."""
    x = _t(input)
    return x.masked_fill(~np.tril(np.ones(x.shape[-2:], dtype=np.bool_), diagonal), 0)


# ----------------------------------------------------------------------------- factories


def empty(*size: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A new tensor of `size`; numpygpt fills it with zeros (PyTorch leaves it uninitialised)."""
    return _leaf(np.zeros(_shape(size), dtype=dtype or get_default_dtype()), requires_grad, device)


def zeros_like(input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    return _leaf(np.zeros(input.shape, dtype=dtype or input.dtype), requires_grad, device)


def ones_like(input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    return _leaf(np.ones(input.shape, dtype=dtype or input.dtype), requires_grad, device)


def full_like(input: Tensor, fill_value: Any, dtype: Any = None, requires_grad: bool = False,
              device: Any = None) -> Tensor:
    return _leaf(np.full(input.shape, fill_value, dtype=dtype or input.dtype), requires_grad, device)


def empty_like(input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    return zeros_like(input, dtype, requires_grad, device)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    return _leaf(np.eye(n, m, dtype=dtype or get_default_dtype()), requires_grad, device)


def linspace(start: float, end: float, steps: int, dtype: Any = None, requires_grad: bool = False,
             device: Any = None) -> Tensor:
    """`steps` evenly spaced values from start to end, as PyTorch computes them: from the start for
    the first half, back from the end for the second, in the tensor's dtype (so both ends are exact;
    a few values may differ from PyTorch's vectorised kernel by one rounding)."""
    steps = _checks.integer(steps, "linspace: steps", minimum=0)
    dtype = np.dtype(dtype or get_default_dtype())
    start, end = np.asarray(start, dtype), np.asarray(end, dtype)
    step = (end - start) / np.asarray(builtins.max(steps - 1, 1), dtype)
    i = np.arange(steps)
    half = builtins.max(steps // 2, 1)  # one step: just the start
    data = np.where(i < half, start + step * i.astype(dtype), end - step * (steps - 1 - i).astype(dtype))
    return _leaf(data.astype(dtype), requires_grad, device)


# ----------------------------------------------------------------------------- grad mode


class set_grad_enabled(contextlib.ContextDecorator):
    """Turn graph recording on or off: at once when called, and back as it was when used in `with`."""

    def __init__(self, mode: Any) -> None:
        self.prev = is_grad_enabled()
        self.mode = builtins.bool(mode)
        _state.grad_enabled = self.mode

    def __enter__(self) -> None:
        _state.grad_enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        _state.grad_enabled = self.prev


class inference_mode(contextlib.ContextDecorator):
    """`no_grad()` under PyTorch's other name (numpygpt has no separate inference mode);
    `inference_mode(False)` leaves grad mode as it is."""

    def __new__(cls, mode: Any = True):
        self = super().__new__(cls)
        self.mode = True if callable(mode) else mode
        return self(mode) if callable(mode) else self  # `@inference_mode` as well as `@inference_mode()`

    def __enter__(self) -> None:
        self.prev = is_grad_enabled()
        if self.mode:
            _state.grad_enabled = False

    def __exit__(self, *exc: Any) -> None:
        _state.grad_enabled = self.prev


# ----------------------------------------------------------------------------- sampling


def multinomial(input: Any, num_samples: int, replacement: bool = False, *,
                generator: Generator | None = None) -> Tensor:
    """Indices drawn from the rows of `input` (unnormalised probabilities), as `torch.multinomial`.

    One sample, or several without replacement, as PyTorch draws them: the largest
    p / q with q ~ Exp(1). Several samples with replacement are not implemented."""
    probs = _checks.probabilities(np.asarray(input.data if isinstance(input, Tensor) else input))
    if replacement and num_samples > 1:
        raise NotImplementedError("multinomial: several samples with replacement are not implemented")
    return Tensor((generator or default_generator).multinomial(probs, num_samples))


bool = np.bool_  # noqa: A001 (torch.bool; last, as it hides Python's bool in this module)
