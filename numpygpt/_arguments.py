"""A Tensor method's PyTorch-style arguments in NumPy terms.

tensor.py keeps each method short by handing the bookkeeping of its arguments
here: PyTorch's indexing rule as NumPy indices, the pieces of `split`, the
shapes `repeat` goes through, the order `topk` picks, the index `gather`
takes, the dtype `to(...)` asks for. Each raises, as the input checks in
_checks.py do, an error that names the argument.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _checks


def index_steps(index: Any) -> tuple[Any, ...]:
    """PyTorch's indexing rule as one NumPy index, or two applied one after the other.

    NumPy counts an int beside an integer array as one more array index and
    broadcasts them together, so `x[0, :, [0, 1]]` of a (2, 3, 4) array has
    shape (2, 3). PyTorch applies the ints first, as plain indexing, then the
    arrays: (3, 2). So when both are present the ints go in a first step and
    the rest in a second.
    """
    items = index if isinstance(index, tuple) else (index,)
    ints = [_checks.is_integer(i) for i in items]
    if not any(ints) or not any(isinstance(i, np.ndarray) and i.dtype != bool for i in items):
        return (index,)
    first: list[Any] = []
    second: list[Any] = []
    for item, is_int in zip(items, ints):
        if is_int:
            first.append(item)
        elif item is None or item is Ellipsis:
            first.append(item)
            second.append(Ellipsis if item is Ellipsis else slice(None))
        else:  # a slice or an array: kept for the second step (a bool mask spans its ndim dims)
            first.extend([slice(None)] * (item.ndim if isinstance(item, np.ndarray) and item.dtype == bool else 1))
            second.append(item)
    return tuple(first), tuple(second)


def split_bounds(split_size: int | Sequence[int], n: int) -> list[tuple[int, int]]:
    """(start, stop) of each piece of `split`: pieces of `split_size` (the last one may be
    smaller), or of each size listed, which must add up to `n`."""
    if _checks.is_integer(split_size):
        size = _checks.integer(split_size, "split: split_size")
        sizes = [size] * (n // size) + ([n % size] if n % size or n == 0 else [])
    else:
        sizes = [_checks.integer(s, "split: each size", minimum=0) for s in split_size]
        if sum(sizes) != n:
            raise _checks.ShapeError(f"split: sizes {list(sizes)} add up to {sum(sizes)}, not the dim's size {n}")
    stops = np.cumsum(sizes).tolist()
    return [(stop - size, stop) for size, stop in zip(sizes, stops)]


def to_dtype(args: Sequence[Any], dtype: Any, device_: Any) -> np.dtype | None:
    """The dtype `Tensor.to(*args, dtype=, device=)` asks for (None: keep it), after checking
    that any device named (a string among `args`, or `device_`) is the CPU."""
    _checks.check_device(device_)
    for arg in args:
        if isinstance(arg, _checks.device) or (
                isinstance(arg, str) and arg.split(":")[0] in ("cpu", "cuda", "mps", "xpu", "meta")):
            _checks.check_device(arg)
        else:  # a dtype, or a tensor whose dtype to take
            dtype = arg if isinstance(arg, (type, np.dtype, str)) else arg.dtype
    return None if dtype is None else np.dtype(dtype)


def topk_indices(data: np.ndarray, k: int, axis: int, largest: bool) -> np.ndarray:
    """Indices of the k largest (or smallest) entries along `axis`, in order; ties to the lower index."""
    if not _checks.is_integer(k) or not 0 <= k <= data.shape[axis]:
        raise RuntimeError(f"topk: k = {k!r} is out of range for a dim of size {data.shape[axis]}")
    order = np.argsort(-data if largest else data, axis=axis, kind="stable")
    return np.take(order, np.arange(k), axis=axis)


def repeat_shapes(sizes: tuple[int, ...], shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """`repeat(*sizes)` as reshape, expand, reshape: (1, n0, 1, n1, ...), (r0, n0, r1, n1, ...), (r0 n0, r1 n1, ...)."""
    if len(sizes) < len(shape):
        raise RuntimeError(f"repeat: {len(sizes)} sizes for a tensor with {len(shape)} dims; give at least one per dim")
    shape = (1,) * (len(sizes) - len(shape)) + tuple(shape)
    spread = tuple(m for n in shape for m in (1, n))
    tiled = tuple(m for r, n in zip(sizes, shape) for m in (r, n))
    return spread, tiled, tuple(r * n for r, n in zip(sizes, shape))


def index_arrays(index: Any) -> Any:
    """An index with each Tensor replaced by its array and each list by an array (indices are never
    differentiated)."""
    if isinstance(index, tuple):
        return tuple(index_arrays(i) for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    data = getattr(index, "data", None)
    return data if isinstance(data, np.ndarray) else index  # a Tensor's array (an ndarray's .data is a buffer)


def gather_index(index: Any, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """`gather`'s index as an int64 array: as many dims as the input, none larger outside `axis`."""
    index = _checks.token_ids(index, what="gather: index")
    if index.ndim != len(shape) or any(m > n for i, (m, n) in enumerate(zip(index.shape, shape)) if i != axis):
        raise _checks.ShapeError(f"gather: index of shape {index.shape} does not fit a tensor of shape {tuple(shape)} "
                         f"(same number of dims, none larger outside dim {axis})")
    return index


def as_array(data: Any, dtype: Any, default_dtype: np.dtype) -> np.ndarray:
    """Convert data to an ndarray the way `torch.tensor` would pick a dtype:
    Python floats take `default_dtype`, ndarrays and NumPy scalars keep theirs."""
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
        arr = arr.astype(default_dtype)
    return arr


def sizes(size: tuple[Any, ...]) -> tuple[int, ...]:
    """Sizes given either as separate arguments, `f(2, 3)`, or as one sequence, `f((2, 3))`."""
    return tuple(size[0]) if len(size) == 1 and not isinstance(size[0], (int, np.integer)) else tuple(size)


def promote(a: Any, b: Any) -> tuple[Any, Any]:
    """PyTorch's type promotion for two operands of different dtypes: an integer (or bool) one
    takes the other's float dtype, and a 0-d float one the float dtype of the other."""
    fa, fb = a.dtype.kind == "f", b.dtype.kind == "f"
    if fa != fb:
        return (a, b.to(a.dtype)) if fa else (a.to(b.dtype), b)
    if fa and (a.ndim == 0) != (b.ndim == 0):
        return (a.to(b.dtype), b) if a.ndim == 0 else (a, b.to(a.dtype))
    return a, b
