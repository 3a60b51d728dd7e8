"""`Tensor`: a NumPy array that remembers how it was made, and the factories that make one.

A Tensor is a thin layer over the ops: each method checks its arguments and
applies one `Function` from ops.py (`x.exp()` is `ops.Exp.apply(x)`). An op on
a tensor that requires a gradient records a node; `loss.backward()` hands the
walk over those nodes to the engine, `autograd.backward` (autograd.py).

Differences from PyTorch, on purpose:
- `.data` is the NumPy array itself and `.grad` is an ndarray (or None), not a Tensor.
- No in-place ops on tensors that are part of a graph; write to `.data` under
  `no_grad()` (optimisers do) instead.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any, Iterable, Sequence

import numpy as np

from . import _checks, autograd, ops
from .random import Generator, default_generator

# ----------------------------------------------------------------------------- default dtype

_default_dtype = np.dtype(np.float32)


def set_default_dtype(dtype: Any) -> None:
    """Set the float dtype for tensors made from Python floats and for new parameters."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"default dtype must be float32 or float64, got {dtype}")
    _default_dtype = dtype


def get_default_dtype() -> np.dtype:
    """The float dtype new tensors get from Python floats (float32 unless changed)."""
    return _default_dtype


def _as_array(data: Any, dtype: Any = None) -> np.ndarray:
    """Convert data to an ndarray the way `torch.tensor` would pick a dtype:
    Python floats take the default dtype, ndarrays and NumPy scalars keep theirs."""
    if isinstance(data, Tensor):
        data = data.data
    try:
        arr = np.asarray(data, dtype=dtype)
    except ValueError as e:
        if "inhomogeneous" in str(e):
            raise ValueError("cannot make a tensor from nested sequences of unequal lengths") from None
        raise
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"cannot make a tensor from {type(data).__name__} data of dtype {arr.dtype}; "
                        "tensors hold numbers")
    if dtype is not None:
        return arr
    if arr.dtype.kind == "f" and not isinstance(data, (np.ndarray, np.generic)):
        arr = arr.astype(_default_dtype)
    return arr


# ----------------------------------------------------------------------------- Tensor

MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _shape(size: tuple[Any, ...]) -> tuple[int, ...]:
    """Sizes given either as separate arguments, `f(2, 3)`, or as one sequence, `f((2, 3))`."""
    return tuple(size[0]) if len(size) == 1 and not isinstance(size[0], (int, np.integer)) else tuple(size)


class Tensor:
    """An ndarray plus the graph that produced it.

    `Tensor(data)` wraps without copying; `numpygpt.tensor(data)` copies, as
    `torch.tensor` does.
    """

    # NumPy defers to our reflected operators: `np.float64(2) * t` calls t.__rmul__.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        self.data: np.ndarray = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"only floating point tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self._ctx = None  # the node that made this tensor; None for leaves

    @classmethod
    def _wrap(cls, data: np.ndarray, requires_grad: bool = False) -> Tensor:
        """Fast constructor for op outputs: no conversion, no checks."""
        t = cls.__new__(cls)
        t.data, t.requires_grad, t.grad, t._ctx = data, requires_grad, None, None
        return t

    # -- properties ------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        """The node that produced this tensor (None for leaves)."""
        return self._ctx

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ""
        if self.dtype not in (_default_dtype, np.int64, np.bool_):
            extra += f", dtype={self.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn={self._ctx!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # -- conversion ------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied), as `torch.Tensor.numpy`."""
        return self.data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def item(self) -> Any:
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"only floating point tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in `.grad` after backward (for study)."""
        if self._ctx is not None:
            self._ctx.retained_output = self

    def to(self, dtype: Any) -> Tensor:
        """Cast to `dtype`; differentiable (the gradient is cast back)."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        return ops.Cast.apply(self, dtype=dtype)

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def long(self) -> Tensor:
        return Tensor._wrap(self.data.astype(np.int64))

    def bool(self) -> Tensor:
        return Tensor._wrap(self.data.astype(bool))

    # -- the backward engine -----------------------------------------------------------
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` (the engine: `autograd.backward`).

        `grad` is d(L)/d(self); it may be omitted for a one-element tensor (it is 1).
        The saved arrays of the graph are freed as the walk passes them, unless
        `retain_graph=True`; a second backward through a freed graph raises.
        """
        autograd.backward(self, grad, retain_graph)

    # -- arithmetic ------------------------------------------------------------------------
    def _operand(self, other: Any) -> Tensor:
        """Wrap a non-tensor operand. Python and NumPy scalars take this tensor's
        float dtype, so `x32 * np.float64(2)` stays float32 (PyTorch's rule)."""
        if isinstance(other, Tensor):
            return other
        if self.data.dtype.kind == "f" and np.ndim(other) == 0 and not isinstance(other, (bool, np.bool_)):
            return Tensor._wrap(np.asarray(other, dtype=self.data.dtype))
        return Tensor._wrap(_as_array(other))

    def _binary(self, fn: type, a: Any, b: Any, name: str) -> Tensor:
        if a.dtype != b.dtype and a.dtype.kind == b.dtype.kind == "f" and (a.ndim == 0) != (b.ndim == 0):
            # PyTorch's rule: a 0-d float tensor takes the float dtype of the other operand
            a, b = (a.to(b.dtype), b) if a.ndim == 0 else (a, b.to(a.dtype))
        try:
            return fn.apply(a, b)
        except ValueError:
            _check_broadcast(name, a.shape, b.shape)
            raise

    def __add__(self, other: Any) -> Tensor:
        return self._binary(ops.Add, self, self._operand(other), "add")

    def __radd__(self, other: Any) -> Tensor:
        return self._binary(ops.Add, self._operand(other), self, "add")

    def __sub__(self, other: Any) -> Tensor:
        return self._binary(ops.Sub, self, self._operand(other), "sub")

    def __rsub__(self, other: Any) -> Tensor:
        return self._binary(ops.Sub, self._operand(other), self, "sub")

    def __mul__(self, other: Any) -> Tensor:
        return self._binary(ops.Mul, self, self._operand(other), "mul")

    def __rmul__(self, other: Any) -> Tensor:
        return self._binary(ops.Mul, self._operand(other), self, "mul")

    def __truediv__(self, other: Any) -> Tensor:
        return self._binary(ops.Div, self, self._operand(other), "div")

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._binary(ops.Div, self._operand(other), self, "div")

    def __pow__(self, exponent: Any) -> Tensor:
        if isinstance(exponent, Tensor):
            return self._binary(ops.Pow, self, exponent, "pow")
        if np.ndim(exponent) == 0:  # a plain number stays a constant, not a graph input
            return ops.Pow.apply(self, exponent.item() if isinstance(exponent, np.generic) else exponent)
        return self._binary(ops.Pow, self, self._operand(exponent), "pow")

    def __rpow__(self, base: Any) -> Tensor:
        return self._binary(ops.Pow, self._operand(base), self, "pow")

    def __neg__(self) -> Tensor:
        return ops.Neg.apply(self)

    def __matmul__(self, other: Any) -> Tensor:
        return matmul(self, self._operand(other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return matmul(self._operand(other), self)

    # comparisons give bool tensors outside the graph
    def _compare(self, other: Any, fn: Any) -> Tensor:
        return Tensor._wrap(fn(self.data, self._operand(other).data))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, np.less)

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, np.less_equal)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater_equal)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.data)

    # -- elementwise functions -----------------------------------------------------------------
    def exp(self) -> Tensor:
        return ops.Exp.apply(self)

    def log(self) -> Tensor:
        return ops.Log.apply(self)

    def sqrt(self) -> Tensor:
        return ops.Sqrt.apply(self)

    def tanh(self) -> Tensor:
        return ops.Tanh.apply(self)

    def abs(self) -> Tensor:
        return ops.Abs.apply(self)

    def relu(self) -> Tensor:
        return ops.ReLU.apply(self)

    def pow(self, exponent: Any) -> Tensor:
        return self**exponent

    def softmax(self, dim: int) -> Tensor:
        (axis,) = _checks.dims(dim, self.ndim) or (0,)
        return ops.Softmax.apply(self, axis=axis)

    def log_softmax(self, dim: int) -> Tensor:
        (axis,) = _checks.dims(dim, self.ndim) or (0,)
        return ops.LogSoftmax.apply(self, axis=axis)

    # -- reductions ------------------------------------------------------------------------
    def sum(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return ops.Sum.apply(self, axis=_checks.dims(dim, self.ndim), keepdim=keepdim)

    def mean(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return ops.Mean.apply(self, axis=_checks.dims(dim, self.ndim), keepdim=keepdim)

    def var(self, dim: int | Sequence[int] | None = None, keepdim: bool = False, unbiased: bool = True) -> Tensor:
        """Variance; `unbiased=True` (PyTorch's default) divides by n - 1, False by n."""
        return ops.Var.apply(self, axis=_checks.dims(dim, self.ndim), keepdim=keepdim, correction=int(unbiased))

    def max(self, dim: int | None = None, keepdim: bool = False):
        """`max()` is the largest element; `max(dim)` returns `(values, indices)`, as PyTorch."""
        if dim is None:
            return ops.Max.apply(self, axis=None, keepdim=False)
        (axis,) = _checks.dims(dim, self.ndim) or (0,)
        values = ops.Max.apply(self, axis=axis, keepdim=keepdim)
        return MaxResult(values, Tensor._wrap(np.argmax(self.data, axis=axis, keepdims=keepdim)))

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        if dim is None:
            return Tensor._wrap(np.asarray(np.argmax(self.data)))
        return Tensor._wrap(np.argmax(self.data, axis=dim, keepdims=keepdim))

    # -- shape ---------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        shape = _shape(shape)
        try:
            return ops.Reshape.apply(self, shape=shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {self.shape} "
                             f"({self.data.size} elements) into {shape}") from None

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        start, end = _checks.dims((start_dim, end_dim), self.ndim)
        shape = self.shape[:start] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        dims = list(range(self.ndim))
        d0, d1 = _checks.dims((dim0, dim1), self.ndim)
        dims[d0], dims[d1] = dims[d1], dims[d0]
        return ops.Permute.apply(self, dims=tuple(dims))

    def permute(self, *dims: Any) -> Tensor:
        dims = _shape(dims)
        norm = _checks.dims(dims, self.ndim) or ()
        if sorted(norm) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not a permutation of the {self.ndim} dims of shape {self.shape}")
        return ops.Permute.apply(self, dims=norm)

    @property
    def T(self) -> Tensor:
        return ops.Permute.apply(self, dims=tuple(reversed(range(self.ndim))))

    def contiguous(self) -> Tensor:
        return ops.Contiguous.apply(self)

    def unsqueeze(self, dim: int) -> Tensor:
        if not -self.ndim - 1 <= dim <= self.ndim:
            raise IndexError(f"unsqueeze: dim {dim} is out of range for a tensor with {self.ndim} dims")
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim: int | None = None) -> Tensor:
        """Drop size-1 dims (all of them, or `dim` if it has size 1; otherwise a no-op, as PyTorch)."""
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        (d,) = _checks.dims(dim, self.ndim) or (None,)
        if d is None or self.shape[d] != 1:
            return self
        return self.reshape(self.shape[:d] + self.shape[d + 1:])

    def expand(self, *shape: Any) -> Tensor:
        """Broadcast to `shape` (-1 keeps a dim); the gradient sums back."""
        shape = _shape(shape)
        lead = len(shape) - self.ndim
        full = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
        try:
            np.broadcast_shapes(self.shape, full)
        except ValueError:
            raise ValueError(f"expand: a tensor of shape {self.shape} cannot expand to {shape}") from None
        return ops.Expand.apply(self, shape=full)

    # -- indexing -----------------------------------------------------------------------
    def __getitem__(self, index: Any) -> Tensor:
        index = _index_arrays(index)
        try:
            return ops.GetItem.apply(self, index=index)
        except IndexError as e:
            raise IndexError(f"index {index!r} is invalid for a tensor of shape {self.shape}: {e}") from None

    def masked_fill(self, mask: Any, value: float) -> Tensor:
        """`value` where `mask` is True; mask must broadcast to this tensor's shape."""
        mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
        if mask.dtype != bool:
            raise TypeError(f"masked_fill: mask must be bool, got {mask.dtype}")
        try:
            fits = np.broadcast_shapes(mask.shape, self.shape) == self.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to {self.shape}")
        return ops.MaskedFill.apply(self, mask, value)


def _index_arrays(index: Any) -> Any:
    """Replace Tensors in an index by their arrays (indices are never differentiated)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    if isinstance(index, tuple):
        return tuple(_index_arrays(i) for i in index)
    return index


def _check_broadcast(op: str, a: tuple[int, ...], b: tuple[int, ...]) -> None:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        raise ValueError(f"{op}: shapes {a} and {b} cannot be broadcast together") from None


# ----------------------------------------------------------------------------- functions on tensors


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with NumPy/PyTorch semantics: batched, batch dims broadcast,
    1-D operands lifted to a row (left) or column (right) and dropped again."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least one dim, got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied ({k_a} != {k_b})")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: the batch dims of shapes {a.shape} and {b.shape} "
                         f"cannot be broadcast together") from None
    if a.ndim == 1 and b.ndim == 1:  # a dot product: (1, k) @ (k, 1), then 0-d
        return matmul(a.unsqueeze(0), b.unsqueeze(-1)).reshape(())
    if a.ndim == 1:
        return matmul(a.unsqueeze(0), b).squeeze(-2)
    if b.ndim == 1:
        return matmul(a, b.unsqueeze(-1)).squeeze(-1)
    return ops.MatMul.apply(a, b)


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """A new leaf tensor holding a copy of `data` (Python floats take the default dtype)."""
    arr = _as_array(data, dtype)
    return Tensor(np.array(arr, copy=True), requires_grad=requires_grad)


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape(size), dtype=dtype or _default_dtype), requires_grad=requires_grad)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape(size), dtype=dtype or _default_dtype), requires_grad=requires_grad)


def full(size: Sequence[int], fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.full(tuple(size), fill_value, dtype=dtype or _default_dtype), requires_grad=requires_grad)


def arange(start: int, end: int | None = None, step: int = 1, dtype: Any = None) -> Tensor:
    return Tensor(np.arange(start, end, step) if end is not None else np.arange(start), dtype=dtype)


def randn(*size: Any, dtype: Any = None, requires_grad: bool = False, generator: Generator | None = None) -> Tensor:
    """Standard normal samples, PyTorch's numbers for the same seed (see random.py)."""
    data = (generator or default_generator).normal(_shape(size), dtype=dtype or _default_dtype)
    return Tensor(data, requires_grad=requires_grad)


def rand(*size: Any, dtype: Any = None, requires_grad: bool = False, generator: Generator | None = None) -> Tensor:
    """Uniform [0, 1) samples, PyTorch's numbers for the same seed."""
    data = (generator or default_generator).uniform(_shape(size), dtype=dtype or _default_dtype)
    return Tensor(data, requires_grad=requires_grad)


def randint(low: int, high: int | None = None, size: Sequence[int] | None = None, *,
            generator: Generator | None = None, dtype: Any = np.int64) -> Tensor:
    """Integers in [low, high) of shape `size`, as `torch.randint` (also `randint(high, size)`)."""
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    if size is None or high is None:
        raise TypeError("randint needs high and size: randint(low, high, size) or randint(high, size)")
    low = _checks.integer(low, "randint: low", minimum=-(2**63))
    high = _checks.integer(high, "randint: high", minimum=-(2**63))
    data = (generator or default_generator).randint(low, high, _shape((size,)))
    return Tensor(data.astype(dtype, copy=False))


def multinomial(input: Any, num_samples: int, replacement: bool = False, *,
                generator: Generator | None = None) -> Tensor:
    """Indices drawn from the rows of `input` (unnormalised probabilities), as `torch.multinomial`.

    One sample, or several without replacement, as PyTorch draws them: the largest
    p / q with q ~ Exp(1). Several samples with replacement are not implemented."""
    probs = np.asarray(input.data if isinstance(input, Tensor) else input)
    if probs.ndim not in (1, 2) or probs.dtype.kind != "f":
        raise ValueError(f"multinomial: expected a 1-D or 2-D float tensor of probabilities, got "
                         f"shape {probs.shape} and dtype {probs.dtype}")
    if probs.size and (not np.isfinite(probs).all() or probs.min() < 0 or (probs.sum(-1) == 0).any()):
        raise ValueError("multinomial: probabilities must be finite, non-negative, and not all 0 in a row")
    if replacement and num_samples > 1:
        raise NotImplementedError("multinomial: several samples with replacement are not implemented")
    return Tensor((generator or default_generator).multinomial(probs, num_samples))


def randperm(n: int, *, generator: Generator | None = None) -> Tensor:
    """A random permutation of 0 .. n-1 (int64), as `torch.randperm`."""
    return Tensor((generator or default_generator).randperm(n))


def cat(tensors: Iterable[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along an existing dim, as `torch.cat`."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    (axis,) = _checks.dims(dim, tensors[0].ndim) or (0,)
    for t in tensors[1:]:
        if t.ndim != tensors[0].ndim or any(
                i != axis and m != n for i, (m, n) in enumerate(zip(t.shape, tensors[0].shape))):
            raise ValueError(f"cat: shapes {tensors[0].shape} and {t.shape} differ outside dim {dim}")
    return ops.Cat.apply(*tensors, axis=axis)


def stack(tensors: Iterable[Tensor], dim: int = 0) -> Tensor:
    """Stack along a new dim, as `torch.stack`."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: all tensors need the same shape, got {tensors[0].shape} and {t.shape}")
    axis = dim % (tensors[0].ndim + 1)
    return ops.Stack.apply(*tensors, axis=axis)


def where(condition: Any, input: Any, other: Any) -> Tensor:
    """`input` where `condition` else `other`, with broadcasting, as `torch.where`."""
    cond = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    like = input if isinstance(input, Tensor) else other if isinstance(other, Tensor) else Tensor(input)
    a, b = like._operand(input), like._operand(other)
    try:
        np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: shapes {cond.shape}, {a.shape} and {b.shape} cannot be broadcast together") from None
    return ops.Where.apply(cond, a, b)
