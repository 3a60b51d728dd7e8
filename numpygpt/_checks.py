"""Input checks shared by every entry point, so each rule is written once.

Each check returns the value in the form the caller works with (a Python int,
an int64 array) or raises an error that names the argument and what is wrong
with it. Three error classes subclass two built-in exceptions at once, as
NumPy's `AxisError` does, so that callers may catch either:

    NotAnIntegerError(TypeError, ValueError)   a count that is not an integer at all
    TokenIdError(IndexError, ValueError)       a token id outside [0, vocab_size)
    ShapeError(RuntimeError, ValueError)       shapes that do not fit together (PyTorch: RuntimeError)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class NotAnIntegerError(TypeError, ValueError):
    """An argument that must be a whole number is of another type (float, str, bool, ...)."""


class TokenIdError(IndexError, ValueError):
    """A token id outside the vocabulary."""


def is_integer(value: Any) -> bool:
    """True for Python and NumPy integers; False for bools, which Python counts as ints."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """True for Python and NumPy ints and floats; False for bools, which Python counts as ints."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def integer(value: Any, name: str, minimum: int = 1, allow_none: bool = False) -> int | None:
    """`value` as an int of at least `minimum` (None passes if `allow_none`).

    The message says what is needed: "max_length must be a positive integer,
    got 2.0"; "epoch must be a non-negative integer, got -1"; "top_k must be a
    positive integer or None, got 0". A value of the wrong type raises
    `NotAnIntegerError`, one below `minimum` ValueError.
    """
    if value is None and allow_none:
        return None
    wanted = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer >= {minimum}")
    wanted += " or None" if allow_none else ""
    if not is_integer(value):
        raise NotAnIntegerError(f"{name} must be {wanted}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def dims(dim: int | Sequence[int] | None, ndim: int) -> tuple[int, ...] | None:
    """Normalise a `dim` argument to a tuple of non-negative axes (or None for all)."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = []
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dim {d} is out of range for a tensor with {ndim} dims")
        out.append(int(d) % max(ndim, 1))
    return tuple(out) if ndim else None


def token_ids(ids: Any, vocab_size: int | None = None, what: str = "token ids",
              shape: str = "an array") -> np.ndarray:
    """`ids` (an ndarray, a nested list or a Tensor) as an int64 array of the same shape.

    Raises TypeError for ids that are not integers (with a hint when they are
    whole numbers stored as floats), ValueError for ragged lists, and
    `TokenIdError` naming the first id outside [0, vocab_size) and its
    position. Shape rules (a batch, a context length) belong to the caller,
    which knows them; `shape` only words the message for unreadable ids.
    """
    data = ids if isinstance(ids, np.ndarray) else getattr(ids, "data", ids)  # a Tensor's array
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError) as e:
        if "inhomogeneous" in str(e):  # NumPy's word for nested lists of unequal lengths
            raise ValueError(f"{what} must form {shape} of integers, but the rows have different lengths: "
                             f"{_short(ids)}") from None
        raise ValueError(f"{what} must form {shape} of integers; could not read them: {e}") from None
    if arr.size == 0 and not isinstance(data, np.ndarray):
        arr = arr.astype(np.int64)  # an empty list has no dtype: it is no ids
    if arr.dtype == object and arr.size and all(is_integer(v) for v in arr.flat):
        arr = _object_ints(arr, vocab_size)  # where Python ints too large for int64 end up
    if arr.dtype.kind not in "iu":
        hint = " (cast with .astype(np.int64))" if arr.dtype.kind == "f" and np.all(arr == np.round(arr)) else ""
        raise TypeError(f"{what} must be integers, got {type(ids).__name__} of dtype {arr.dtype}{hint}")
    if vocab_size is not None and arr.size:
        outside = (arr < 0) | (arr >= vocab_size)
        if outside.any():
            where = tuple(int(i) for i in np.argwhere(outside)[0])
            count = int(outside.sum())
            raise TokenIdError(f"token id {arr[where]} at position {_position(where)} is out of range "
                               f"[0, {vocab_size})" + (f" ({count} ids out of range in all)" if count > 1 else ""))
    return arr.astype(np.int64, copy=False)


def _short(value: Any) -> str:
    """`repr(value)`, cut to about 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _position(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else str(index)


def _object_ints(arr: np.ndarray, vocab_size: int | None) -> np.ndarray:
    """An object array of Python ints as int64, or `TokenIdError` for the first one int64 cannot hold."""
    try:
        return arr.astype(np.int64)
    except OverflowError:
        info = np.iinfo(np.int64)
        flat = arr.reshape(-1).tolist()
        i = next(i for i, v in enumerate(flat) if not info.min <= v <= info.max)
        where = np.unravel_index(i, arr.shape)
        limit = f"[0, {vocab_size})" if vocab_size is not None else "of int64"
        raise TokenIdError(f"token id {flat[i]} at position {_position(tuple(int(k) for k in where))} "
                           f"is out of range {limit}") from None


class ShapeError(RuntimeError, ValueError):
    """Shapes that do not fit together (broadcasting, matmul, cat, reshape, ...): PyTorch raises
    RuntimeError there, and code written for ValueError keeps working."""


class device:
    """A device, as `torch.device`: numpygpt has one, `device("cpu")` (also "cpu:0"). It compares
    equal to its name, so `x.device == "cpu"` holds; any other device is a RuntimeError."""

    type = "cpu"
    index = None

    def __init__(self, name: Any = "cpu", index: int | None = None) -> None:
        check_device(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, device) or (isinstance(other, str) and other in ("cpu", "cpu:0"))

    def __hash__(self) -> int:
        return hash("cpu")

    def __repr__(self) -> str:
        return "device(type='cpu')"

    def __str__(self) -> str:
        return "cpu"



def check_device(value: Any) -> str:
    """A `device=` argument: None or the one CPU device ("cpu", "cpu:0"); any other is a RuntimeError."""
    if value is None or isinstance(value, device) or str(value).split(":")[0] == "cpu":
        return "cpu"
    raise RuntimeError(f"numpygpt computes on the CPU only, got device={value!r}; use 'cpu'")


CPU = device()


def broadcast(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape `shapes` broadcast to, or `ShapeError` naming the op and the shapes."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        listed = ", ".join(str(tuple(s)) for s in shapes[:-1]) + f" and {tuple(shapes[-1])}"
        raise ShapeError(f"{op}: shapes {listed} cannot be broadcast together") from None


def matmul(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    """`ShapeError` unless shapes `a` and `b` can be matrix-multiplied (1-D operands allowed)."""
    a, b = tuple(a), tuple(b)
    if not a or not b:
        raise ShapeError(f"matmul: both operands need at least one dim, got shapes {a} and {b}")
    k_a, k_b = a[-1], (b[-2] if len(b) > 1 else b[0])
    if k_a != k_b:
        raise ShapeError(f"matmul: shapes {a} and {b} cannot be multiplied ({k_a} != {k_b})")
    try:
        np.broadcast_shapes(a[:-2], b[:-2])
    except ValueError:
        raise ShapeError(f"matmul: the batch dims of shapes {a} and {b} cannot be broadcast together") from None


def cat(shapes: Sequence[tuple[int, ...]], axis: int, op: str = "cat") -> None:
    """`ShapeError` unless `shapes` agree everywhere but along `axis` (everywhere for stack's axis=None)."""
    if not shapes:
        raise ValueError(f"{op}: expected a non-empty list of tensors")
    first = tuple(shapes[0])
    for shape in map(tuple, shapes[1:]):
        if len(shape) != len(first) or any(i != axis and m != n for i, (m, n) in enumerate(zip(shape, first))):
            where = "" if axis is None else f" outside dim {axis}"
            raise ShapeError(f"{op}: all tensors need the same shape{where}, got {first} and {shape}")


def mask(mask: np.ndarray, shape: tuple[int, ...], op: str) -> np.ndarray:
    """`mask` if it is a bool array that broadcasts to `shape` (without changing it)."""
    if mask.dtype != bool:
        raise TypeError(f"{op}: mask must be bool, got {mask.dtype}")
    try:
        fits = np.broadcast_shapes(mask.shape, shape) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(f"{op}: mask of shape {mask.shape} does not broadcast to {tuple(shape)}")
    return mask


def probabilities(probs: np.ndarray, op: str = "multinomial") -> np.ndarray:
    """`probs` if it is a 1-D or 2-D float array of finite, non-negative weights, none all 0 in a row."""
    if probs.ndim not in (1, 2) or probs.dtype.kind != "f":
        raise ValueError(f"{op}: expected a 1-D or 2-D float tensor of probabilities, got "
                         f"shape {probs.shape} and dtype {probs.dtype}")
    if probs.size and (not np.isfinite(probs).all() or probs.min() < 0 or (probs.sum(-1) == 0).any()):
        raise ValueError(f"{op}: probabilities must be finite, non-negative, and not all 0 in a row")
    return probs
