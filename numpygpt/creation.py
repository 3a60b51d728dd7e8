"""Creation ops: the functions that make a new leaf tensor (`tensor`, `zeros`, `randn`, ...).

Each takes PyTorch's arguments (`dtype=`, `requires_grad=`, `device=`, and
`generator=` for the random ones) and returns a leaf: a tensor with no graph
behind it, whose `.grad` a backward pass fills. Floats take the default dtype
(float32 unless `set_default_dtype` changed it); the random ones draw
PyTorch's numbers for the same seed (random.py).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _arguments, _checks
from .random import Generator, default_generator
from ._arguments import sizes
from .tensor import Tensor, get_default_dtype


def _leaf(data: np.ndarray, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A factory's new tensor; `device` may be given, as "cpu", the only one."""
    _checks.check_device(device)
    return Tensor(data, requires_grad=requires_grad)


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None) -> Tensor:
    """A new leaf tensor holding a copy of `data` (Python floats take the default dtype)."""
    return _leaf(np.array(_arguments.as_array(data.data if isinstance(data, Tensor) else data, dtype, get_default_dtype()), copy=True), requires_grad, device)


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    return _leaf(np.zeros(sizes(size), dtype=dtype or get_default_dtype()), requires_grad, device)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    return _leaf(np.ones(sizes(size), dtype=dtype or get_default_dtype()), requires_grad, device)


def full(size: Sequence[int], fill_value: float, dtype: Any = None, requires_grad: bool = False,
         device: Any = None) -> Tensor:
    return _leaf(np.full(tuple(size), fill_value, dtype=dtype or get_default_dtype()), requires_grad, device)


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    """start, start + step, ... below end (int64 for integer arguments, else the default dtype)."""
    data = np.arange(start, end, step) if end is not None else np.arange(start)
    return _leaf(data.astype(dtype or (get_default_dtype() if data.dtype.kind == "f" else data.dtype)), requires_grad, device)


def randn(*size: Any, dtype: Any = None, requires_grad: bool = False, generator: Generator | None = None,
          device: Any = None) -> Tensor:
    """Standard normal samples, PyTorch's numbers for the same seed (see random.py)."""
    data = (generator or default_generator).normal(sizes(size), dtype=dtype or get_default_dtype())
    return _leaf(data, requires_grad, device)


def rand(*size: Any, dtype: Any = None, requires_grad: bool = False, generator: Generator | None = None,
         device: Any = None) -> Tensor:
    """Uniform [0, 1) samples, PyTorch's numbers for the same seed."""
    data = (generator or default_generator).uniform(sizes(size), dtype=dtype or get_default_dtype())
    return _leaf(data, requires_grad, device)


def randint(low: int, high: int | None = None, size: Sequence[int] | None = None, *,
            generator: Generator | None = None, dtype: Any = np.int64, device: Any = None) -> Tensor:
    """Integers in [low, high) of shape `size`, as `torch.randint` (also `randint(high, size)`)."""
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    if size is None or high is None:
        raise TypeError("randint needs high and size: randint(low, high, size) or randint(high, size)")
    low = _checks.integer(low, "randint: low", minimum=-(2**63))
    high = _checks.integer(high, "randint: high", minimum=-(2**63))
    data = (generator or default_generator).randint(low, high, sizes((size,)))
    return _leaf(data.astype(dtype, copy=False), device=device)


def randperm(n: int, *, generator: Generator | None = None) -> Tensor:
    """A random permutation of 0 .. n-1 (int64), as `torch.randperm`."""
    return Tensor((generator or default_generator).randperm(n))




def empty(*size: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A new tensor of `size`; numpygpt fills it with zeros (PyTorch leaves it uninitialised)."""
    return _leaf(np.zeros(sizes(size), dtype=dtype or get_default_dtype()), requires_grad, device)


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
    step = (end - start) / np.asarray(max(steps - 1, 1), dtype)
    i = np.arange(steps)
    half = max(steps // 2, 1)  # one step: just the start
    data = np.where(i < half, start + step * i.astype(dtype), end - step * (steps - 1 - i).astype(dtype))
    return _leaf(data.astype(dtype), requires_grad, device)
