"""How a tensor prints: `print(t)` and `repr(t)` give what PyTorch prints.

This is PyTorch's `torch/_tensor_str.py` rebuilt on NumPy, step for step:

- `_Formatter` looks at the values once and picks one format for all of them:
  integers as they are; floats in *int mode* (`1.`, `-3.`) when every value
  is a whole number, in *scientific mode* (`2.9802e-08`) when the nonzero
  finite values span more than a factor of 1000, exceed 1e8 or go below 1e-4,
  and otherwise in fixed point with `precision` (4) decimals. Every value is
  then padded to the widest one, so columns line up.
- Past `threshold` (1000) elements the tensor is *summarised*: each dim keeps
  `edgeitems` (3) entries at either end with `...` between them, and the
  format is chosen from those entries only.
- Rows wrap at `linewidth` (80) characters; nested dims get one more bracket
  and one more space of indent each, with a blank line between blocks of 3-D
  and higher tensors.
- Suffixes follow the values: `dtype=torch.float64` when the dtype is not
  the default of its kind (the default float dtype, int64, bool),
  `requires_grad=True` for a leaf that requires grad, and
  `grad_fn=<MeanBackward1>` for the result of an op, named as PyTorch names
  the backward node of the op it would have run (see `grad_fn_name`).

`set_printoptions` and `printoptions` change the options, as
`torch.set_printoptions` does. `Size` is a tensor's shape: a tuple that
prints as `torch.Size([2, 4, 50257])`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from typing import Any, Callable, Iterator

import numpy as np

from . import _checks

# ----------------------------------------------------------------------------- options


@dataclasses.dataclass
class PrintOptions:
    """The options `set_printoptions` changes, with PyTorch's defaults."""

    precision: int = 4          # digits after the point (fixed point) or of the mantissa (scientific)
    threshold: float = 1000     # more elements than this: summarise
    edgeitems: int = 3          # entries kept at each end of a summarised dim
    linewidth: int = 80         # characters per line before a row wraps
    sci_mode: bool | None = None  # None: chosen from the values; True/False: forced


PRINT_OPTS = PrintOptions()

_PROFILES: dict[str, tuple[int, float, int, int]] = {  # precision, threshold, edgeitems, linewidth
    "default": (4, 1000, 3, 80),
    "short": (2, 1000, 2, 80),
    "full": (4, math.inf, 3, 80),
}


def set_printoptions(precision: int | None = None, threshold: float | None = None, edgeitems: int | None = None,
                     linewidth: int | None = None, profile: str | None = None, sci_mode: bool | None = None) -> None:
    """Set how tensors print, as `torch.set_printoptions`.

    `profile` ("default", "short" or "full") first resets precision, threshold,
    edgeitems and linewidth; the other arguments then override it. As in
    PyTorch, `sci_mode` is always set: leaving it out restores automatic choice.
    Differs from PyTorch: an unknown profile raises ValueError (PyTorch ignores it).
    """
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(_PROFILES)}, got {profile!r}")
        PRINT_OPTS.precision, PRINT_OPTS.threshold, PRINT_OPTS.edgeitems, PRINT_OPTS.linewidth = _PROFILES[profile]
    if precision is not None:
        PRINT_OPTS.precision = precision
    if threshold is not None:
        PRINT_OPTS.threshold = threshold
    if edgeitems is not None:
        PRINT_OPTS.edgeitems = edgeitems
    if linewidth is not None:
        PRINT_OPTS.linewidth = linewidth
    PRINT_OPTS.sci_mode = sci_mode


def get_printoptions() -> dict[str, Any]:
    """The current options, as a dict `set_printoptions(**...)` accepts (as `torch.get_printoptions`)."""
    return dataclasses.asdict(PRINT_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs: Any) -> Iterator[None]:
    """Change the options inside a `with` block only (as `torch.printoptions`)."""
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


# ----------------------------------------------------------------------------- Size


class Size(tuple):
    """A tensor's shape: a tuple of ints that prints as `torch.Size([2, 4])`, as PyTorch's.

    Slicing it, adding a tuple to it and repeating it give a Size again;
    `numel()` is the number of elements a tensor of this shape holds.
    """

    __slots__ = ()

    def __new__(cls, sizes: Any = ()) -> Size:
        if type(sizes) is tuple:  # an ndarray's shape: already Python ints (the fast path of Tensor.shape)
            return tuple.__new__(cls, sizes)
        return tuple.__new__(cls, (_as_size(s) for s in sizes))

    def __repr__(self) -> str:
        return f"torch.Size([{', '.join(map(str, self))}])"

    __str__ = __repr__

    def numel(self) -> int:
        """The product of the sizes (1 for the shape of a 0-d tensor)."""
        return math.prod(self)

    def __getitem__(self, index: Any) -> Any:
        item = tuple.__getitem__(self, index)
        return Size(item) if isinstance(index, slice) else item

    def __add__(self, other: Any) -> Size:
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple(self) + tuple(other))

    def __radd__(self, other: Any) -> Size:
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple(other) + tuple(self))

    def __mul__(self, n: Any) -> Size:
        return Size(tuple(self) * n)

    __rmul__ = __mul__

    def __reduce__(self) -> tuple[Any, ...]:
        return (Size, (tuple(self),))


# A Size from an ndarray's shape (already a tuple of Python ints), skipping the checks: `Tensor.shape`.
size_of: Callable[[tuple[int, ...]], Size] = functools.partial(tuple.__new__, Size)


def _as_size(s: Any) -> int:
    if not _checks.is_integer(s):
        raise TypeError(f"Size: sizes must be ints, got {type(s).__name__}")
    return int(s)


# ----------------------------------------------------------------------------- the formatter


class _Formatter:
    """One format for every value of a tensor, chosen from the values (PyTorch's `_Formatter`).

    Only the nonzero finite values decide the mode and the width: zeros, nan
    and inf print in whatever format the others chose.
    """

    def __init__(self, values: np.ndarray):
        self.floating = values.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        flat = values.reshape(-1)
        if not self.floating:  # ints and bools print as Python prints them
            for v in flat.tolist():
                self.max_width = max(self.max_width, len(f"{v}"))
            return
        finite = flat[np.isfinite(flat) & (flat != 0)]
        if finite.size == 0:
            return
        magnitude = np.abs(finite).astype(np.float64)
        lo, hi = magnitude.min(), magnitude.max()
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        if PRINT_OPTS.sci_mode is None:
            self.sci_mode = bool(hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4)
        else:
            self.sci_mode = PRINT_OPTS.sci_mode
        p = PRINT_OPTS.precision
        vals = finite.tolist()
        if self.sci_mode:
            width = max(len(f"{v:.{p}e}") for v in vals)
        elif self.int_mode:
            width = max(len(f"{v:.0f}") for v in vals) + 1  # + 1 for the point that marks a float: "3."
        else:
            width = max(len(f"{v:.{p}f}") for v in vals)
        self.max_width = max(self.max_width, width)

    def width(self) -> int:
        return self.max_width

    def format(self, value: Any) -> str:
        """One value as text, right-aligned to the common width."""
        if self.floating:
            p = PRINT_OPTS.precision
            if self.sci_mode:
                text = f"{value:{self.max_width}.{p}e}"
            elif self.int_mode:
                text = f"{value:.0f}"
                if not (math.isinf(value) or math.isnan(value)):
                    text += "."
            else:
                text = f"{value:.{p}f}"
        else:
            text = f"{value}"
        return (self.max_width - len(text)) * " " + text


Formatters = tuple[_Formatter, "_Formatter | None"]  # (real, imag); imag only for complex tensors


def _format_value(value: Any, fmt: Formatters) -> str:
    """A real value with the one formatter, or a complex one as `real+imagj` (PyTorch's layout)."""
    real_fmt, imag_fmt = fmt
    if imag_fmt is None:
        return real_fmt.format(value)
    real = real_fmt.format(value.real)
    imag = (imag_fmt.format(value.imag) + "j").lstrip()
    return real + imag if imag[0] in "+-" else real + "+" + imag


# ----------------------------------------------------------------------------- the layout


def _summarized(a: np.ndarray) -> np.ndarray:
    """The entries a summarised print shows: `edgeitems` at each end of every long dim.

    Mirrors PyTorch's `get_summarized_data`, including its edge cases with
    `edgeitems=0`: a 1-D tensor keeps every value, a higher one none.
    """
    e = PRINT_OPTS.edgeitems
    if a.ndim <= 1 and not e:
        return a
    if not e:
        return a[(slice(0, 0),) * a.ndim]
    for axis, n in enumerate(a.shape):
        if n > 2 * e:
            a = np.take(a, list(range(e)) + list(range(n - e, n)), axis=axis)
    return a


def _vector_str(a: np.ndarray, indent: int, summarize: bool, fmt: Formatters) -> str:
    """A 1-D tensor: values joined by ", ", wrapped to `linewidth`."""
    real_fmt, imag_fmt = fmt
    element_length = real_fmt.width() + 2  # the value, a comma and a space
    if imag_fmt is not None:
        element_length += imag_fmt.width() + 1  # and the imaginary part with its "j"
    per_line = max(1, math.floor((PRINT_OPTS.linewidth - indent) / element_length))
    e = PRINT_OPTS.edgeitems
    if summarize and not e:
        data = ["..."]
    elif summarize and a.shape[0] > 2 * e:
        data = ([_format_value(v, fmt) for v in a[:e].tolist()] + [" ..."]
                + [_format_value(v, fmt) for v in a[-e:].tolist()])
    else:
        data = [_format_value(v, fmt) for v in a.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _nested_str(a: np.ndarray, indent: int, summarize: bool, fmt: Formatters) -> str:
    """Any dim: brackets around the rows (or blocks), one more space of indent per level,
    and dim - 1 newlines between neighbours, so 3-D blocks are separated by a blank line."""
    if a.ndim == 0:
        return _format_value(a.item(), fmt)
    if a.ndim == 1:
        return _vector_str(a, indent, summarize, fmt)
    n, e = a.shape[0], PRINT_OPTS.edgeitems
    rows: list[int | None] = list(range(n))
    if summarize and n > 2 * e:
        rows = list(range(e)) + [None] + list(range(n - e, n))
    parts = ["..." if i is None else _nested_str(a[i], indent + 1, summarize, fmt) for i in rows]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def _values_str(a: np.ndarray, indent: int) -> str:
    """The bracketed values of a nonempty array, `indent` columns in (PyTorch's `_tensor_str`)."""
    summarize = a.size > PRINT_OPTS.threshold
    shown = _summarized if summarize else (lambda x: x)
    if a.dtype.kind == "c":
        fmt: Formatters = (_Formatter(shown(a.real)), _Formatter(shown(a.imag)))
    else:
        fmt = (_Formatter(shown(a)), None)
    return _nested_str(a, indent, summarize, fmt)


def _add_suffixes(text: str, suffixes: list[str], indent: int) -> str:
    """Append `, suffix` for each suffix, starting a new line where it would pass `linewidth`.

    The length of the last line is counted as PyTorch counts it (two more than
    its characters when there is only one line), so the wrapping matches.
    """
    parts = [text]
    last_line_len = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > PRINT_OPTS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line_len += len(suffix) + 2
    parts.append(")")
    return "".join(parts)


def dtype_name(dtype: np.dtype) -> str:
    """The dtype as PyTorch names it: `torch.float64`, `torch.int32`, `torch.bool`."""
    return "torch." + np.dtype(dtype).name


def tensor_repr(t: Any, default_dtype: Any = np.float32) -> str:
    """`repr(t)` as PyTorch writes it: `tensor(values, suffixes)` (PyTorch's `_str_intern`).

    `default_dtype` is the default float dtype (`numpygpt.get_default_dtype()`),
    the one that needs no `dtype=` suffix."""
    prefix = "tensor("
    indent = len(prefix)
    a: np.ndarray = t.data
    default = np.dtype(default_dtype)
    default_complex = np.dtype(np.complex128 if default == np.float64 else np.complex64)
    suffixes = []
    if a.size == 0:
        if a.ndim != 1:
            suffixes.append(f"size={tuple(a.shape)}")
        if a.dtype != default:  # no values show what kind of number it holds
            suffixes.append(f"dtype={dtype_name(a.dtype)}")
        body = "[]"
    else:
        if not PRINT_OPTS.edgeitems:
            suffixes.append(f"size={tuple(a.shape)}")
        if a.dtype not in (default, default_complex, np.dtype(np.int64), np.dtype(np.bool_)):
            suffixes.append(f"dtype={dtype_name(a.dtype)}")
        body = _values_str(a, indent)
    if getattr(t, "grad_fn", None) is not None:
        suffixes.append(f"grad_fn=<{grad_fn_name(t)}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + body, suffixes, indent)


def tensor_format(t: Any, format_spec: str) -> str:
    """`format(t, spec)` and `f"{t}"` as PyTorch's `Tensor.__format__`: a 0-d tensor formats
    as its Python number (`f"{loss}"` gives `0.0002017411752603948`), any other as `str(t)`."""
    if t.data.ndim == 0 and type(t).__name__ == "Tensor":  # PyTorch: plain tensors only, not Parameters
        return t.data.item().__format__(format_spec)
    return object.__format__(t, format_spec)


# ----------------------------------------------------------------------------- grad_fn names

# numpygpt Function -> the class name of PyTorch's backward node for the same op.
_BACKWARD_NAMES: dict[str, str] = {
    "Add": "AddBackward0", "Sub": "SubBackward0", "Mul": "MulBackward0", "Div": "DivBackward0",
    "Neg": "NegBackward0", "Exp": "ExpBackward0", "Log": "LogBackward0", "Sqrt": "SqrtBackward0",
    "Tanh": "TanhBackward0", "Abs": "AbsBackward0", "ReLU": "ReluBackward0", "Cast": "ToCopyBackward0",
    "Softmax": "SoftmaxBackward0", "LogSoftmax": "LogSoftmaxBackward0", "Var": "VarBackward0",
    "Expand": "ExpandBackward0", "Contiguous": "CloneBackward0", "MaskedFill": "MaskedFillBackward0",
    "Where": "WhereBackward0", "Cat": "CatBackward0", "Stack": "StackBackward0",
    "CrossEntropy": "NllLossBackward0",            # F.cross_entropy ends in nll_loss
    "LayerNorm": "NativeLayerNormBackward0", "GELU": "GeluBackward0", "GELUTanh": "GeluBackward0",
    "Dropout": "MulBackward0",                     # PyTorch's dropout multiplies by a scaled mask
    "Embedding": "EmbeddingBackward0", "Sigmoid": "SigmoidBackward0",
}


_FREED = object()


def _reduction(all_name: str, dim_name: str) -> Callable[[Any, Any], str]:
    """Sum, Mean, Max: PyTorch has one node for a reduction over everything and another over dims."""
    def name(ctx: Any, out: Any) -> str:
        axis = getattr(ctx, "axis", _FREED)  # freed after backward: then judge by the 0-d result
        over_all = out.ndim == 0 if axis is _FREED else axis is None
        return all_name if over_all else dim_name
    return name


def _pow_name(ctx: Any, out: Any) -> str:
    """x ** 2: PowBackward0; x ** y: PowBackward1; 2 ** x: PowBackward2."""
    base, exponent = (tuple(ctx.needs_input_grad) + (False, False))[:2]
    if base and exponent:
        return "PowBackward1"
    return "PowBackward2" if exponent else "PowBackward0"


def _matmul_name(ctx: Any, out: Any) -> str:
    """2-D @ 2-D is one `mm`; batched products end in an `_unsafe_view` of a `bmm`."""
    return "MmBackward0" if out.ndim == 2 else "UnsafeViewBackward0"


def _linear_name(ctx: Any, out: Any) -> str:
    """F.linear: addmm (bias) or mm on 2-D input; on 3-D and higher the result is a view of it."""
    has_bias = len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]
    if out.ndim == 2:
        return "AddmmBackward0" if has_bias else "MmBackward0"
    if out.ndim == 1 and not has_bias:
        return "SqueezeBackward4"
    return "ViewBackward0" if has_bias else "UnsafeViewBackward0"


def _reshape_name(ctx: Any, out: Any) -> str:
    """view/reshape/flatten, unsqueeze and squeeze are one Reshape here: tell them apart by the shapes.

    A vector operand of matmul was lifted to a matrix and dropped again: that
    is PyTorch's `dot` or `mv` (a row vector on the left: a squeeze)."""
    before, after = getattr(ctx, "shape", None), out.shape
    if before is None:
        return "ViewBackward0"
    parent = ctx.parents[0] if getattr(ctx, "parents", ()) else None
    if getattr(parent, "fn", None) is not None and parent.fn.__name__ == "MatMul" and len(before) == 2:
        if after == ():
            return "DotBackward0"
        return "MvBackward0" if before[1] == 1 else "SqueezeBackward4"
    ones_before, ones_after = before.count(1), after.count(1)
    rest_before = tuple(n for n in before if n != 1)
    if rest_before == tuple(n for n in after if n != 1):
        if len(after) == len(before) + 1 and ones_after == ones_before + 1:
            return "UnsqueezeBackward0"
        if len(after) < len(before):
            return "SqueezeBackward0" if ones_after == 0 and ones_before > 1 else "SqueezeBackward1"
    return "ViewBackward0"


def _permute_name(ctx: Any, out: Any) -> str:
    """transpose(d0, d1) swaps two dims (TransposeBackward0); any other order is a permute."""
    order = getattr(ctx, "inverse", None)
    if order is not None and sum(i != d for i, d in enumerate(order)) == 2:
        return "TransposeBackward0"
    return "PermuteBackward0"


def _getitem_name(ctx: Any, out: Any) -> str:
    """x[i] selects, x[a:b] slices, x[None] unsqueezes, x[ids] and x[mask] index;
    with several, PyTorch applies them in turn and the last one names the node."""
    index = getattr(ctx, "index", None)
    items = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, (np.ndarray, list)) for i in items):
        return "IndexBackward0"
    last = "SliceBackward0"
    for i in items:
        if isinstance(i, (int, np.integer)):
            last = "SelectBackward0"
        elif i is None:
            last = "UnsqueezeBackward0"
        elif isinstance(i, slice) and i != slice(None):
            last = "SliceBackward0"
    return last


_NAME_RULES: dict[str, Callable[[Any, Any], str]] = {
    "Sum": _reduction("SumBackward0", "SumBackward1"),
    "Mean": _reduction("MeanBackward0", "MeanBackward1"),
    "Max": _reduction("MaxBackward1", "MaxBackward0"),
    "Pow": _pow_name, "MatMul": _matmul_name, "Linear": _linear_name,
    "Reshape": _reshape_name, "Permute": _permute_name, "GetItem": _getitem_name,
}


def grad_fn_name(t: Any) -> str:
    """The name PyTorch gives the backward node of the op that made `t`, e.g. `MeanBackward1`.

    A fixed table where one numpygpt Function is one PyTorch op, and a rule
    where PyTorch picks among several nodes (a reduction over all dims or
    some, `mm` or batched matmul, view or squeeze). The rules read what the
    node still holds; after `backward()` has freed it, they judge by the
    result's shape alone. Any other Function prints as `<Name>Backward0`.
    """
    ctx = t.grad_fn
    name = ctx.fn.__name__
    rule = _NAME_RULES.get(name)
    if rule is not None:
        return rule(ctx, t.data)
    return _BACKWARD_NAMES.get(name, f"{name}Backward0")
