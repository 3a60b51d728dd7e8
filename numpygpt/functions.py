"""The functions of the torch namespace: `numpygpt.tanh(x)` is `x.tanh()`, and so on.

With these (and the factories of creation.py) code written for PyTorch runs with
`import numpygpt as torch`. Each function forwards to the Tensor method of the
same name, so the gradient is that method's. Differences from PyTorch:
- dtypes are NumPy's: `float32 = np.float32`, `long = np.int64`, `bool = np.bool_`;
- `device=` is accepted, and must be "cpu";
"""

from __future__ import annotations

import builtins
import contextlib
import math
from typing import Any, Iterable, Sequence

import numpy as np

from . import _arguments, _checks, ops
from .autograd import _state, is_grad_enabled
from .creation import tensor
from .random import Generator, default_generator
from .tensor import Tensor

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


def max(input: Any, dim: Any = None, keepdim: bool = False):  # noqa: A001
    """The largest element, `(values, indices)` along `dim`, or with a tensor `max(a, b)` the elementwise maximum."""
    return _t(input).max(dim, keepdim)


def min(input: Any, dim: Any = None, keepdim: bool = False):  # noqa: A001
    """The smallest element, `(values, indices)` along `dim`, or with a tensor `min(a, b)` the elementwise minimum."""
    return _t(input).min(dim, keepdim)


def maximum(input: Any, other: Any) -> Tensor:
    return _t(input).maximum(other)


def minimum(input: Any, other: Any) -> Tensor:
    return _t(input).minimum(other)


def bincount(input: Any, weights: Any = None, minlength: int = 0) -> Tensor:
    """How often each value 0, 1, ... occurs in a 1-D int tensor (summing `weights` if given)."""
    x = _t(input)
    if x.ndim != 1 or x.dtype.kind not in "iu" or (x.data.size and x.data.min() < 0):
        raise RuntimeError(f"bincount: expects a 1-D tensor of non-negative ints, got shape {x.shape} dtype {x.dtype}")
    w = None if weights is None else _t(weights).data
    return Tensor._wrap(np.bincount(x.data, w, _checks.integer(minlength, "bincount: minlength", minimum=0)))


def isnan(input: Any) -> Tensor:
    return Tensor._wrap(np.isnan(_t(input).data))


def isinf(input: Any) -> Tensor:
    return Tensor._wrap(np.isinf(_t(input).data))


def isfinite(input: Any) -> Tensor:
    return Tensor._wrap(np.isfinite(_t(input).data))


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


# ----------------------------------------------------------------------------- joining


def cat(tensors: Iterable[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along an existing dim, as `torch.cat`."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    (axis,) = _checks.dims(dim, tensors[0].ndim if tensors else 1) or (0,)
    _checks.cat([t.shape for t in tensors], axis)
    return ops.Cat.apply(*tensors, axis=axis)


def stack(tensors: Iterable[Tensor], dim: int = 0) -> Tensor:
    """Stack along a new dim, as `torch.stack`."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    _checks.cat([t.shape for t in tensors], None, "stack")
    (axis,) = _checks.dims(dim, tensors[0].ndim + 1)  # IndexError past the new dim, as PyTorch
    return ops.Stack.apply(*tensors, axis=axis)


def where(condition: Any, input: Any, other: Any) -> Tensor:
    """`input` where `condition` else `other`, with broadcasting, as `torch.where`."""
    cond = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    like = input if isinstance(input, Tensor) else other if isinstance(other, Tensor) else Tensor(input)
    a, b = like._operand(input), like._operand(other)
    if a.dtype != b.dtype:
        a, b = _arguments.promote(a, b)
    _checks.broadcast("where", cond.shape, a.shape, b.shape)
    return ops.Where.apply(cond, a, b)


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
