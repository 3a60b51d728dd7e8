"""`Tensor`: a NumPy array that remembers how it was made.

A Tensor is a thin layer over the ops: each method checks its arguments and
applies one `Function` from ops.py (`x.exp()` is `ops.Exp.apply(x)`). An op on
a tensor that requires a gradient records a node; `loss.backward()` hands the
walk over those nodes to the engine, `autograd.backward` (autograd.py).

Differences from PyTorch, on purpose:
- `.data` is the NumPy array itself (`x.numpy()` too); `.grad` is a Tensor, as PyTorch's.
- In-place ops (`x.add_(y)`, `x[i] = v`, `x += y`) write into the array and
  are recorded in the graph, as PyTorch; a view (a slice, a reshape) shares its
  base's array but not its graph, so under autograd modify the base, not a view.
- One device, the CPU: `device=` and `.to()` accept "cpu" only; `.device` is `device(type='cpu')`.
- dtypes are NumPy's (`x.dtype` is `np.dtype("float32")`). As PyTorch: integers
  meeting floats, and integer division, give the default float dtype; ints in
  an index apply before integer arrays; shape mismatches raise `ShapeError`, a
  RuntimeError that is also a ValueError.
"""

from __future__ import annotations

from collections import namedtuple
from functools import partialmethod
from typing import Any, Callable, Sequence

import numpy as np

from . import _arguments, _checks, _printing, autograd, ops, reductions

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


# ----------------------------------------------------------------------------- Tensor

MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _inplace_form(name: str) -> Callable[..., Tensor]:
    """The method `x.<name>_(...)`: `x.<name>(...)` written into x itself (see `Tensor._inplace`)."""

    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return self._inplace(f"{name}_", lambda x: getattr(x, name)(*args, **kwargs), *args, *kwargs.values())

    method.__name__ = method.__qualname__ = f"{name}_"
    method.__doc__ = f"In place: `x.{name}_(...)` writes `x.{name}(...)` into x and returns x."
    return method


class Tensor:
    """An ndarray plus the graph that produced it.

    `Tensor(data)` wraps without copying; `numpygpt.tensor(data)` copies, as
    `torch.tensor` does.
    """

    # NumPy defers to our reflected operators: `np.float64(2) * t` calls t.__rmul__.
    __array_ufunc__ = None
    __array_priority__ = 1000
    _hooks: dict | None = None  # a leaf's `register_hook` functions (a non-leaf's live on its node)

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        self.data: np.ndarray = _arguments.as_array(data.data if isinstance(data, Tensor) else data, dtype, _default_dtype)
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"only floating point tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self._grad: Tensor | None = None
        self._ctx = None  # the node that made this tensor; None for leaves
        self._version = autograd.VersionCounter()  # in-place modifications of `data`

    @classmethod
    def _wrap(cls, data: np.ndarray, requires_grad: bool = False) -> Tensor:
        """Fast constructor for op outputs: no conversion, no checks (a NumPy scalar becomes 0-d)."""
        t = cls.__new__(cls)
        t.data = data if type(data) is np.ndarray else np.asarray(data)
        t.requires_grad, t._grad, t._ctx, t._version = requires_grad, None, None, autograd.VersionCounter()
        return t

    @property
    def grad(self) -> Tensor | None:
        """dL/d(this tensor) after `backward()`, a Tensor of this shape (None before): filled for
        leaves that require grad, and for other tensors that called `retain_grad()`."""
        return self._grad

    @grad.setter
    def grad(self, value: Any) -> None:
        if value is not None:
            value = value if isinstance(value, Tensor) else Tensor._wrap(np.asarray(value))
            if value.shape != self.shape:
                raise _checks.ShapeError(f"assigned grad has shape {value.shape}, the tensor {self.shape}")
        self._grad = value

    # -- properties ------------------------------------------------------------------
    @property
    def shape(self) -> _printing.Size:
        """The sizes of the dims, as a `Size` (a tuple that prints as `torch.Size([2, 3])`)."""
        return _printing.size_of(self.data.shape)

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

    def size(self, dim: int | None = None) -> _printing.Size | int:
        """The shape as a `Size`, or the size of one dim as an int, as `torch.Tensor.size`."""
        return _printing.size_of(self.data.shape) if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        """What PyTorch prints for this tensor: values, layout and suffixes (see _printing.py)."""
        return _printing.tensor_repr(self, get_default_dtype())

    def __format__(self, spec: str) -> str:  # f"{t.mean()}" of a one-element tensor prints its value
        return _printing.tensor_format(self, spec)

    __str__ = __repr__

    # -- conversion ------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied), as `torch.Tensor.numpy`."""
        return self.data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def item(self) -> Any:
        if self.data.size != 1:
            raise _checks.ShapeError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def tolist(self) -> Any:
        return self.data.tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph (an in-place change to either shows in both)."""
        t = Tensor._wrap(self.data)
        t._version = self._version
        return t

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"only floating point tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = requires_grad
        return self

    def register_hook(self, hook: Callable[[Tensor], Any]) -> autograd.RemovableHandle:
        """`hook(grad)` each time this tensor's gradient is computed in backward; a tensor it returns
        replaces the gradient. `.remove()` on the returned handle unregisters it, as PyTorch."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: this tensor does not require grad, so no gradient reaches it")
        if self._ctx is None:
            self._hooks = self._hooks or {}
            return autograd.RemovableHandle(self._hooks, hook)
        self._ctx.hooks = self._ctx.hooks or {}
        return autograd.RemovableHandle(self._ctx.hooks, hook)

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in `.grad` after backward (for study)."""
        if self._ctx is not None:
            self._ctx.retained_output = self

    @property
    def device(self) -> _checks.device:
        """`device(type='cpu')`, the one device numpygpt computes on (it equals "cpu")."""
        return _checks.CPU

    def cpu(self) -> Tensor:
        return self

    def to(self, *args: Any, dtype: Any = None, device: Any = None) -> Tensor:
        """Cast to a dtype (`to(np.float64)`, `to(tensor)`); differentiable. The device must be "cpu"."""
        dtype = _arguments.to_dtype(args, dtype, device)
        return self if dtype is None or dtype == self.dtype else ops.Cast.apply(self, dtype=dtype)

    def clone(self) -> Tensor:
        """A copy of the data that stays in the graph (the gradient passes through unchanged)."""
        return ops.Cast.apply(self, dtype=self.dtype)  # astype always copies

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
        return Tensor._wrap(_arguments.as_array(other, None, _default_dtype))

    def _binary(self, fn: type, a: Any, b: Any, name: str) -> Tensor:
        if a.dtype != b.dtype:
            a, b = _arguments.promote(a, b)
        if fn is ops.Div and a.dtype.kind in "biu":  # integer division gives the default float dtype
            a, b = a.to(_default_dtype), b.to(_default_dtype)
        try:
            return fn.apply(a, b)
        except ValueError:
            _checks.broadcast(name, a.shape, b.shape)
            raise

    def _floating(self) -> Tensor:
        """This tensor, or for an integer one its cast to the default dtype (`tensor(2).exp()`)."""
        return self if self.data.dtype.kind in "fc" else self.to(_default_dtype)

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
            exponent = exponent.item() if isinstance(exponent, np.generic) else exponent
            return ops.Pow.apply(self._floating() if isinstance(exponent, float) else self, exponent)
        return self._binary(ops.Pow, self, self._operand(exponent), "pow")

    def __rpow__(self, base: Any) -> Tensor:
        return self._binary(ops.Pow, self._operand(base), self, "pow")

    def __neg__(self) -> Tensor:
        return ops.Neg.apply(self)

    def add(self, other: Any, alpha: float = 1) -> Tensor:
        """self + alpha * other"""
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other: Any, alpha: float = 1) -> Tensor:
        """self - alpha * other"""
        return self - (other if alpha == 1 else other * alpha)

    def __matmul__(self, other: Any) -> Tensor:
        return matmul(self, self._operand(other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return matmul(self._operand(other), self)

    mul, div, neg, matmul = __mul__, __truediv__, __neg__, __matmul__  # x.mul(y) is x * y, ...

    # comparisons give bool tensors outside the graph
    def _compare(self, other: Any, fn: Any) -> Tensor:
        if other is None:  # `idx_next == eos_id` with no eos_id: False, as PyTorch
            return NotImplemented
        return Tensor._wrap(fn(self.data, self._operand(other).data))

    __eq__ = partialmethod(_compare, fn=np.equal)  # type: ignore[assignment]
    __ne__ = partialmethod(_compare, fn=np.not_equal)  # type: ignore[assignment]
    __lt__ = partialmethod(_compare, fn=np.less)
    __le__ = partialmethod(_compare, fn=np.less_equal)
    __gt__ = partialmethod(_compare, fn=np.greater)
    __ge__ = partialmethod(_compare, fn=np.greater_equal)

    __hash__ = object.__hash__

    def any(self) -> Tensor:
        """Whether any element is nonzero (a 0-d bool tensor)."""
        return Tensor._wrap(np.asarray(self.data.any()))

    def all(self) -> Tensor:
        return Tensor._wrap(np.asarray(self.data.all()))

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise _checks.ShapeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.data)

    # -- elementwise functions -----------------------------------------------------------------
    def _float_op(self, op: str) -> Tensor:
        """`ops.<op>` applied to this tensor, cast first to the default dtype if it holds integers.
        (Named, not referenced: ops.py is still loading while this class is built.)"""
        return getattr(ops, op).apply(self._floating())

    exp = partialmethod(_float_op, "Exp")          # eˣ
    log = partialmethod(_float_op, "Log")          # ln x
    sqrt = partialmethod(_float_op, "Sqrt")        # √x
    tanh = partialmethod(_float_op, "Tanh")
    sigmoid = partialmethod(_float_op, "Sigmoid")  # 1 / (1 + e⁻ˣ)
    sin = partialmethod(_float_op, "Sin")
    cos = partialmethod(_float_op, "Cos")

    def rsqrt(self) -> Tensor:
        """1 / √x"""
        return self._floating() ** -0.5

    def square(self) -> Tensor:
        return self * self

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:
        """Values limited to [min, max] (numbers); the gradient is 1 inside, bounds included, 0 outside."""
        if min is None and max is None:
            raise RuntimeError("clamp: at least one of min and max must be given")
        return ops.Clamp.apply(self, min, max)

    clip = clamp

    def abs(self) -> Tensor:
        return ops.Abs.apply(self)

    def relu(self) -> Tensor:
        return ops.ReLU.apply(self)

    def pow(self, exponent: Any) -> Tensor:
        return self**exponent

    def softmax(self, dim: int) -> Tensor:
        (axis,) = _checks.dims(dim, self.ndim) or (0,)
        return ops.Softmax.apply(self._floating(), axis=axis)

    def log_softmax(self, dim: int) -> Tensor:
        (axis,) = _checks.dims(dim, self.ndim) or (0,)
        return ops.LogSoftmax.apply(self._floating(), axis=axis)

    def logsumexp(self, dim: int | Sequence[int], keepdim: bool = False) -> Tensor:
        """ln Σ exp(x) over `dim`, computed without overflow."""
        return reductions.LogSumExp.apply(self._floating(), axis=_checks.dims(dim, self.ndim), keepdim=keepdim)

    def cumsum(self, dim: int) -> Tensor:
        x = self.reshape(1) if self.ndim == 0 else self
        out = reductions.CumSum.apply(x, axis=_checks.dims(dim, x.ndim)[0])
        return out if self.ndim else out.reshape(())

    # -- reductions ------------------------------------------------------------------------
    def sum(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return reductions.Sum.apply(self, axis=_checks.dims(dim, self.ndim), keepdim=keepdim)

    def mean(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return reductions.Mean.apply(self, axis=_checks.dims(dim, self.ndim), keepdim=keepdim)

    def var(self, dim: int | Sequence[int] | None = None, keepdim: bool = False, unbiased: bool = True, *,
            correction: int | None = None) -> Tensor:
        """Σ (x - x̄)² / (n - correction): n - 1 by default, n if `unbiased=False`; nan if n ≤ correction."""
        correction = int(unbiased) if correction is None else correction
        return reductions.Var.apply(self._floating(), axis=_checks.dims(dim, self.ndim), keepdim=keepdim,
                             correction=correction)

    def std(self, dim: int | Sequence[int] | None = None, keepdim: bool = False, unbiased: bool = True, *,
            correction: int | None = None) -> Tensor:
        """√var (same arguments as `var`)."""
        return self.var(dim, keepdim, unbiased, correction=correction).sqrt()

    def _extremum(self, op: str, dim: Any = None, keepdim: bool = False):
        """`max()` / `min()`: the largest / smallest element; `max(dim)`: `(values, indices)`;
        `max(other)` with a tensor: the elementwise `maximum` (as PyTorch)."""
        if isinstance(dim, Tensor):
            return self._binary(getattr(ops, op + "imum"), self, dim, op.lower() + "imum")
        fn = getattr(reductions, op)
        if dim is None:
            return fn.apply(self, axis=None, keepdim=False)
        (axis,) = _checks.dims(dim, self.ndim) or (0,)
        values = fn.apply(self, axis=axis, keepdim=keepdim)
        return MaxResult(values, Tensor._wrap(fn.arg(self.data, axis=axis, keepdims=keepdim)))

    def _arg(self, op: str, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """`argmax()` / `argmin()`: where the largest / smallest element is (the first, if tied)."""
        return Tensor(getattr(reductions, op).arg(self.data, axis=dim, keepdims=keepdim))

    max, argmax = partialmethod(_extremum, "Max"), partialmethod(_arg, "Max")
    min, argmin = partialmethod(_extremum, "Min"), partialmethod(_arg, "Min")

    def maximum(self, other: Any) -> Tensor:
        return self._binary(ops.Maximum, self, self._operand(other), "maximum")

    def minimum(self, other: Any) -> Tensor:
        return self._binary(ops.Minimum, self, self._operand(other), "minimum")

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        """(values, indices) of the k largest (smallest) along `dim`, in order; ties: lower index first."""
        (axis,) = _checks.dims(dim, self.ndim) or (0,)
        indices = _arguments.topk_indices(self.data, k, axis, largest)
        return MaxResult(self.gather(axis, indices), Tensor._wrap(indices))

    # -- shape ---------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        shape = _arguments.sizes(shape)
        try:
            return ops.Reshape.apply(self, shape=shape)
        except ValueError:
            raise _checks.ShapeError(f"reshape: cannot reshape a tensor of shape {self.shape} "
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
        dims = _arguments.sizes(dims)
        norm = _checks.dims(dims, self.ndim) or ()
        if sorted(norm) != list(range(self.ndim)):
            raise _checks.ShapeError(f"permute: {dims} is not a permutation of the {self.ndim} dims of shape {self.shape}")
        return ops.Permute.apply(self, dims=norm)

    @property
    def T(self) -> Tensor:
        return ops.Permute.apply(self, dims=tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> Tensor:
        """The last two dims swapped (a batch of matrices transposed; IndexError below 2 dims)."""
        return self.transpose(-2, -1)

    def t(self) -> Tensor:
        """The transpose of a matrix (a tensor of at most 2 dims)."""
        if self.ndim > 2:
            raise RuntimeError(f"t(): expects a tensor with at most 2 dims, got shape {self.shape}")
        return self.T

    def flip(self, *dims: Any) -> Tensor:
        """The order of `dims` reversed; a view (the gradient is flipped back)."""
        flipped = _checks.dims(_arguments.sizes(dims), self.ndim) or ()
        return ops.GetItem.apply(self, index=tuple(slice(None, None, -1 if i in flipped else 1)
                                                   for i in range(self.ndim)))

    def split(self, split_size: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
        """Pieces of `split_size` along `dim` (the last may be smaller), or of the sizes listed."""
        (axis,) = _checks.dims(dim, self.ndim) or (0,)
        bounds = _arguments.split_bounds(split_size, self.shape[axis])
        return tuple(ops.GetItem.apply(self, index=(slice(None),) * axis + (slice(a, b),)) for a, b in bounds)

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        """At most `chunks` equal pieces along `dim` (the last may be smaller), as PyTorch."""
        (axis,) = _checks.dims(dim, self.ndim) or (0,)
        return self.split(max(-(-self.shape[axis] // _checks.integer(chunks, "chunk: chunks")), 1), dim)

    def repeat(self, *sizes: Any) -> Tensor:
        """Tiled `sizes` times along each dim (`np.tile`): reshape, expand, reshape; the gradient sums back."""
        spread, tiled, out = _arguments.repeat_shapes(_arguments.sizes(sizes), self.shape)
        return self.reshape(spread).expand(tiled).reshape(out)

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
        shape = _arguments.sizes(shape)
        lead = len(shape) - self.ndim
        full = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
        _checks.broadcast(f"expand (to {shape})", self.shape, full)
        return ops.Expand.apply(self, shape=full)

    # -- indexing -----------------------------------------------------------------------
    def __getitem__(self, index: Any) -> Tensor:
        index = _arguments.index_arrays(index)
        try:
            out = self
            for step in _arguments.index_steps(index):  # ints first, then arrays, as PyTorch
                out = ops.GetItem.apply(out, index=step)
            return out
        except IndexError as e:
            raise IndexError(f"index {index!r} is invalid for a tensor of shape {self.shape}: {e}") from None

    def masked_fill(self, mask: Any, value: float) -> Tensor:
        """`value` where `mask` is True; mask must broadcast to this tensor's shape."""
        mask = _checks.mask(np.asarray(mask.data if isinstance(mask, Tensor) else mask), self.shape, "masked_fill")
        return ops.MaskedFill.apply(self, mask, value)

    def gather(self, dim: int, index: Any) -> Tensor:
        """out[i][j] = self[index[i][j]][j] for dim 0, self[i][index[i][j]] for dim 1, ... (as `torch.gather`)."""
        (axis,) = _checks.dims(dim, self.ndim) or (0,)
        return ops.Gather.apply(self, axis, _arguments.gather_index(index, self.shape, axis))


    # -- in-place ops ---------------------------------------------------------------------
    def _inplace(self, name: str, op: Callable[[Tensor], Tensor], *operands: Any) -> Tensor:
        """Write `op(self)` into this tensor's own array and return self, as PyTorch's `x.add_(y)`.

        The graph records the op as usual and this tensor becomes its output; a
        leaf that requires grad is refused, as PyTorch does. When a graph is
        recorded the op reads a copy of the old values, so its own backward has
        them; any earlier node that kept this array sees the version counter
        move, and its backward raises rather than use the new values.
        """
        grads = self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in operands)
        record = grads and autograd.is_grad_enabled()
        if record and self.requires_grad and self._ctx is None:
            raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place "
                               "operation; do it under numpygpt.no_grad(), or on a clone()")
        old = self
        if record:
            old = Tensor._wrap(self.data.copy(), self.requires_grad)
            old._ctx = self._ctx
        out = op(old)
        if out.shape != self.shape:
            raise _checks.ShapeError(f"{name}: the result has shape {out.shape}, which cannot be written "
                                     f"into this tensor of shape {self.shape}")
        if out.dtype != self.dtype:
            if not np.can_cast(out.dtype, self.dtype, casting="same_kind"):
                raise RuntimeError(f"{name}: result type {out.dtype} can't be cast to the desired output type "
                                   f"{self.dtype}")
            out = out.to(self.dtype)
        if not self.data.flags.writeable:
            raise RuntimeError(f"{name}: this tensor's data is read-only (a broadcast view, such as "
                               "expand()'s); clone() it first")
        np.copyto(self.data, out.data)
        self._version.value += 1
        if out._ctx is not None:
            self._ctx, self.requires_grad = out._ctx, True
        return self

    add_, sub_, mul_, div_, pow_, neg_ = map(_inplace_form, ("add", "sub", "mul", "div", "pow", "neg"))
    exp_, log_, sqrt_, rsqrt_, square_ = map(_inplace_form, ("exp", "log", "sqrt", "rsqrt", "square"))
    tanh_, sigmoid_, relu_, sin_, cos_, abs_ = map(_inplace_form, ("tanh", "sigmoid", "relu", "sin", "cos", "abs"))
    clamp_, clip_, masked_fill_ = map(_inplace_form, ("clamp", "clip", "masked_fill"))
    __iadd__, __isub__, __imul__, __itruediv__ = add_, sub_, mul_, div_  # `x += y` is in place, as PyTorch

    def fill_(self, value: Any) -> Tensor:
        """Every element set to `value` (a number or a one-element tensor); in place."""
        value = value.item() if isinstance(value, Tensor) else value
        return self._inplace("fill_", lambda x: x.masked_fill(np.True_, value))

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def copy_(self, src: Any) -> Tensor:
        """`src`'s values (broadcast to this shape, cast to this dtype) written in; the gradient goes to src."""
        src = self._operand(src)
        return self._inplace("copy_", lambda x: ops.Where.apply(np.True_, src.to(x.dtype), x), src)

    def __setitem__(self, index: Any, value: Any) -> None:
        """`x[index] = value`, in place, as PyTorch (value broadcast to the indexed shape)."""
        index, value = _arguments.index_arrays(index), self._operand(value)
        self._inplace("__setitem__", lambda x: ops.IndexPut.apply(x, value.to(x.dtype), index=index), value)


# ----------------------------------------------------------------------------- functions on tensors


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with NumPy/PyTorch semantics: batched, batch dims broadcast,
    1-D operands lifted to a row (left) or column (right) and dropped again."""
    _checks.matmul(a.shape, b.shape)
    if a.ndim == 1 and b.ndim == 1:  # a dot product: (1, k) @ (k, 1), then 0-d
        return matmul(a.unsqueeze(0), b.unsqueeze(-1)).reshape(())
    if a.ndim == 1:
        return matmul(a.unsqueeze(0), b).squeeze(-2)
    if b.ndim == 1:
        return matmul(a, b.unsqueeze(-1)).squeeze(-1)
    return ops.MatMul.apply(a, b)
