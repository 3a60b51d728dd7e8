"""Parity with PyTorch, op by op: forward values and gradients.

Each test builds the same inputs in numpygpt and in PyTorch, runs the op in
both, compares the outputs, then back-propagates the same random upstream
gradient through both and compares the gradient of every input. Shapes are
drawn by hypothesis, with broadcasting and size-1 dims. Both float64 (relative
error <= 1e-10) and float32 (<= 1e-5) are checked, where `rel_err` is the
worst absolute difference over the larger of the two magnitudes. Where a
result is a sum or difference of terms much larger than itself (a broadcast
gradient summed back, softmax's gradient near a one-hot row, GELU's left
tail), the scale is the size of those terms instead: see `check`.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable, Sequence

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import numpygpt
import numpygpt.nn.functional as F
from conftest import arrays, broadcastable_pair, rel_err, seeds, shapes

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]


# ----------------------------------------------------------------------------- the comparison


def _upstream(shape: tuple[int, ...], dtype: Any, inputs: Sequence[np.ndarray]) -> np.ndarray:
    """A random upstream gradient, seeded by the inputs so hypothesis can replay it."""
    seed = zlib.crc32(b"".join(np.ascontiguousarray(a).tobytes() for a in inputs))
    return np.asarray(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)


def _err(a: np.ndarray, b: np.ndarray, floor: float = 0.0) -> float:
    """`rel_err`, with the scale raised to at least `floor`."""
    if floor <= 0.0:
        return rel_err(a, b)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)), floor)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


def _term_magnitudes(torch_fn: Callable[..., Any], arrays_: Sequence[np.ndarray],
                     g: np.ndarray) -> tuple[float, list[float]]:
    """For a sum of products (add, matmul, a broadcast gradient summed back, ...):
    the size of the terms before they are summed, from the same computation on
    |inputs| with upstream |g| in float64, where nothing can cancel."""
    xs = [torch.tensor(np.abs(a).astype(np.float64), requires_grad=True) for a in arrays_]
    out = torch_fn(*xs)
    out.backward(torch.from_numpy(np.asarray(np.abs(g), dtype=np.float64)))
    grads = [float(x.grad.abs().max()) if x.grad is not None and x.grad.numel() else 0.0 for x in xs]
    return float(out.detach().abs().max()) if out.numel() else 0.0, grads


def check(npg_fn: Callable[..., Any], torch_fn: Callable[..., Any], inputs: Sequence[np.ndarray],
          dtype: Any, scales: Callable[[np.ndarray], tuple[float, Sequence[float]]] | None = None,
          sums: bool = False) -> None:
    """Compare `npg_fn(*tensors)` with `torch_fn(*tensors)`: output, then each input's gradient.

    Every array in `inputs` becomes a leaf requiring grad, cast to `dtype`, in
    both libraries; anything not to be differentiated (indices, masks) is
    captured by the two functions themselves.

    Where a result is a difference of terms much larger than itself, rounding
    errors are only small relative to those terms, and the two libraries round
    differently (their sums run in different orders). `scales(g)`, given the
    upstream gradient, may return (a floor for the output's scale, a floor for
    each input gradient's scale); `sums=True` takes the floors from
    `_term_magnitudes`, for ops that are sums of products.
    """
    dtype = np.dtype(dtype)
    tol = TOL[dtype]
    arrays_ = [np.asarray(a, dtype=dtype) for a in inputs]
    xs = [numpygpt.tensor(a, requires_grad=True) for a in arrays_]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays_]

    out = npg_fn(*xs)
    ref = torch_fn(*ts)
    assert isinstance(out, numpygpt.Tensor)
    assert out.shape == tuple(ref.shape), f"shape {out.shape}, torch {tuple(ref.shape)}"
    assert out.dtype == dtype, f"output dtype {out.dtype}, inputs {dtype}"
    g = _upstream(out.shape, dtype, arrays_)
    out_floor, grad_floors = scales(g.astype(np.float64)) if scales else (0.0, [0.0] * len(xs))
    if sums:
        out_floor, grad_floors = _term_magnitudes(torch_fn, arrays_, g)
    err = _err(out.data, ref.detach().numpy(), out_floor)
    assert err <= tol, f"forward: rel err {err:.3g} > {tol:g}"

    out.backward(g)
    ref.backward(torch.from_numpy(g))
    for i, (x, t) in enumerate(zip(xs, ts)):
        expected = t.grad.numpy() if t.grad is not None else np.zeros(x.shape, dtype)
        assert x.grad is not None, f"input {i}: no gradient"
        assert x.grad.shape == x.shape, f"input {i}: grad shape {x.grad.shape}, input shape {x.shape}"
        assert x.grad.dtype == dtype, f"input {i}: grad dtype {x.grad.dtype}, input {dtype}"
        err = _err(x.grad, expected, grad_floors[i])
        assert err <= tol, f"input {i} (shape {x.shape}): grad rel err {err:.3g} > {tol:g}"


@st.composite
def _operand_of(draw: Any, out: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to `out`: a trailing part of it with some sides set to 1."""
    rank = draw(st.integers(0, len(out)))
    tail = out[len(out) - rank:]
    ones = draw(st.lists(st.booleans(), min_size=rank, max_size=rank))
    return tuple(1 if one else n for n, one in zip(tail, ones))


# ----------------------------------------------------------------------------- arithmetic

BINARY = {
    "add": (lambda a, b: a + b),
    "sub": (lambda a, b: a - b),
    "mul": (lambda a, b: a * b),
    "div": (lambda a, b: a / b),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(BINARY))
@given(pair=broadcastable_pair(), data=st.data())
def test_binary_broadcast(op: str, dtype: Any, pair: Any, data: Any) -> None:
    a = data.draw(arrays(pair[0]))
    b = data.draw(arrays(pair[1], min_abs=0.5))  # a divisor well away from 0
    check(BINARY[op], BINARY[op], [a, b], dtype, sums=True)  # a broadcast operand's gradient is a sum


SCALAR_OPS = {
    "x+c": lambda x: x + 1.5, "c+x": lambda x: 1.5 + x,
    "x-c": lambda x: x - 1.5, "c-x": lambda x: 1.5 - x,
    "x*c": lambda x: x * -2.5, "c*x": lambda x: -2.5 * x,
    "x/c": lambda x: x / 3.0, "c/x": lambda x: 3.0 / x,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(SCALAR_OPS))
@given(x=arrays(shapes(), min_abs=0.5))
def test_scalar_operand(op: str, dtype: Any, x: np.ndarray) -> None:
    check(SCALAR_OPS[op], SCALAR_OPS[op], [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("exponent", [2, 3, 0.5, -1.5, 1 / 3, 1.0])
@given(data=st.data())
def test_pow_scalar_exponent(exponent: float, dtype: Any, data: Any) -> None:
    integer = float(exponent).is_integer() and exponent > 0
    # integer powers take any sign; fractional and negative ones a base away from 0
    x = data.draw(arrays(shapes(), low=-2.0 if integer else 0.3, high=2.0))
    check(lambda t: t**exponent, lambda t: t**exponent, [x], dtype)
    check(lambda t: t.pow(exponent), lambda t: t.pow(exponent), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(pair=broadcastable_pair(), data=st.data())
def test_pow_tensor_exponent(dtype: Any, pair: Any, data: Any) -> None:
    base = data.draw(arrays(pair[0], low=0.3, high=2.0))
    exponent = data.draw(arrays(pair[1], low=-2.0, high=2.0))
    a, b = base.astype(np.float64), exponent.astype(np.float64)

    def scales(g: np.ndarray) -> tuple[float, list[float]]:
        # the terms each broadcast operand's gradient sums: g·b·a^(b-1) and g·a^b·ln a
        da = numpygpt.unbroadcast(np.abs(g * b * a ** (b - 1)), a.shape)
        db = numpygpt.unbroadcast(np.abs(g * a**b * np.log(a)), b.shape)
        return 0.0, [float(da.max()), float(db.max())]

    check(lambda x, y: x**y, lambda x, y: x**y, [base, exponent], dtype, scales)


@pytest.mark.parametrize("dtype", DTYPES)
@given(x=arrays(shapes(), low=-2.0, high=2.0))
def test_scalar_base_tensor_exponent(dtype: Any, x: np.ndarray) -> None:
    check(lambda t: 2.5**t, lambda t: 2.5**t, [x], dtype)


# ----------------------------------------------------------------------------- elementwise functions

UNARY = {
    # name: (numpygpt, torch, array options keeping the input in the domain)
    "neg": (lambda x: -x, lambda x: -x, {}),
    "exp": (lambda x: x.exp(), torch.exp, {}),
    "log": (lambda x: x.log(), torch.log, {"low": 0.1, "high": 3.0}),
    "sqrt": (lambda x: x.sqrt(), torch.sqrt, {"low": 0.1, "high": 3.0}),
    "tanh": (lambda x: x.tanh(), torch.tanh, {"low": -3.0, "high": 3.0}),
    "abs": (lambda x: x.abs(), torch.abs, {"min_abs": 0.05}),
    "relu": (lambda x: x.relu(), torch.relu, {"min_abs": 0.05}),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(UNARY))
@given(data=st.data())
def test_unary(name: str, dtype: Any, data: Any) -> None:
    npg_fn, torch_fn, options = UNARY[name]
    x = data.draw(arrays(shapes(), **options))
    check(npg_fn, torch_fn, [x], dtype)


# ----------------------------------------------------------------------------- reductions


@st.composite
def _reduce_dims(draw: Any, ndim: int) -> int | tuple[int, ...] | None:
    """None, one dim (maybe negative) or a tuple of distinct dims."""
    kind = draw(st.sampled_from(["none", "one", "tuple"]))
    if kind == "none":
        return None
    if kind == "one":
        return draw(st.integers(-ndim, ndim - 1))
    picked = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(d - ndim if draw(st.booleans()) else d for d in picked)


def _reduced_count(shape: tuple[int, ...], dim: Any) -> int:
    if dim is None:
        return int(np.prod(shape))
    dims = (dim,) if isinstance(dim, int) else dim
    return int(np.prod([shape[d] for d in dims]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sum", "mean"])
@given(shape=shapes(min_dims=1), keepdim=st.booleans(), data=st.data())
def test_sum_mean(name: str, dtype: Any, shape: tuple[int, ...], keepdim: bool, data: Any) -> None:
    x = data.draw(arrays(shape))
    dim = data.draw(_reduce_dims(len(shape)))
    if dim is None:
        check(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x], dtype, sums=True)
    else:
        check(lambda t: getattr(t, name)(dim=dim, keepdim=keepdim),
              lambda t: getattr(t, name)(dim=dim, keepdim=keepdim), [x], dtype, sums=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("unbiased", [True, False])
@given(shape=shapes(min_dims=1), keepdim=st.booleans(), data=st.data())
def test_var(unbiased: bool, dtype: Any, shape: tuple[int, ...], keepdim: bool, data: Any) -> None:
    x = data.draw(arrays(shape))
    dim = data.draw(_reduce_dims(len(shape)))
    assume(_reduced_count(shape, dim) >= 2)  # n - 1 = 0 would divide by zero
    if dim is None:
        check(lambda t: t.var(unbiased=unbiased), lambda t: t.var(correction=int(unbiased)), [x], dtype)
    else:
        check(lambda t: t.var(dim=dim, keepdim=keepdim, unbiased=unbiased),
              lambda t: t.var(dim=dim, keepdim=keepdim, correction=int(unbiased)), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes(min_dims=1), keepdim=st.booleans(), data=st.data())
def test_max_dim(dtype: Any, shape: tuple[int, ...], keepdim: bool, data: Any) -> None:
    x = data.draw(arrays(shape, distinct=True))  # no ties: the gradient's target is unambiguous
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    check(lambda t: t.max(dim, keepdim=keepdim)[0], lambda t: t.max(dim, keepdim=keepdim)[0], [x], dtype)

    values, indices = numpygpt.tensor(x.astype(dtype)).max(dim=dim, keepdim=keepdim)
    ref = torch.tensor(x.astype(dtype)).max(dim=dim, keepdim=keepdim)
    assert np.array_equal(values.data, ref.values.numpy())
    assert np.array_equal(indices.data, ref.indices.numpy())
    assert indices.dtype.kind == "i"


@pytest.mark.parametrize("dtype", DTYPES)
@given(x=arrays(shapes(), distinct=True))
def test_max_all(dtype: Any, x: np.ndarray) -> None:
    check(lambda t: t.max(), lambda t: t.max(), [x], dtype)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes(), data=st.data())
def test_reshape_view(dtype: Any, shape: tuple[int, ...], data: Any) -> None:
    x = data.draw(arrays(shape))
    new = list(data.draw(st.permutations(shape)))
    new.insert(data.draw(st.integers(0, len(new))), 1)
    if new and data.draw(st.booleans()):
        new[data.draw(st.integers(0, len(new) - 1))] = -1
    new_shape = tuple(new)
    check(lambda t: t.reshape(new_shape), lambda t: t.reshape(new_shape), [x], dtype)
    check(lambda t: t.view(*new_shape), lambda t: t.view(*new_shape), [x], dtype)
    check(lambda t: t.reshape(-1), lambda t: t.reshape(-1), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes(min_dims=1), data=st.data())
def test_transpose_permute_contiguous(dtype: Any, shape: tuple[int, ...], data: Any) -> None:
    x = data.draw(arrays(shape))
    n = len(shape)
    d0, d1 = data.draw(st.integers(-n, n - 1)), data.draw(st.integers(-n, n - 1))
    perm = tuple(data.draw(st.permutations(range(n))))
    check(lambda t: t.transpose(d0, d1), lambda t: t.transpose(d0, d1), [x], dtype)
    check(lambda t: t.permute(*perm), lambda t: t.permute(*perm), [x], dtype)
    check(lambda t: t.permute(perm).contiguous().reshape(-1),
          lambda t: t.permute(perm).contiguous().reshape(-1), [x], dtype)
    check(lambda t: t.transpose(d0, d1).contiguous(), lambda t: t.transpose(d0, d1).contiguous(), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes(), data=st.data())
def test_unsqueeze_squeeze(dtype: Any, shape: tuple[int, ...], data: Any) -> None:
    x = data.draw(arrays(shape))
    n = len(shape)
    u = data.draw(st.integers(-n - 1, n))
    check(lambda t: t.unsqueeze(u), lambda t: t.unsqueeze(u), [x], dtype)
    check(lambda t: t.squeeze(), lambda t: t.squeeze(), [x], dtype)
    if n:
        s = data.draw(st.integers(-n, n - 1))  # a no-op when that dim is not 1, as in torch
        check(lambda t: t.squeeze(s), lambda t: t.squeeze(s), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes(min_dims=1), data=st.data())
def test_flatten(dtype: Any, shape: tuple[int, ...], data: Any) -> None:
    x = data.draw(arrays(shape))
    n = len(shape)
    start = data.draw(st.integers(0, n - 1))
    end = data.draw(st.integers(start, n - 1))
    start_arg = start - n if data.draw(st.booleans()) else start
    end_arg = end - n if data.draw(st.booleans()) else end
    check(lambda t: t.flatten(), lambda t: t.flatten(), [x], dtype)
    check(lambda t: t.flatten(start_arg, end_arg), lambda t: t.flatten(start_arg, end_arg), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes(max_dims=3), data=st.data())
def test_expand(dtype: Any, shape: tuple[int, ...], data: Any) -> None:
    x = data.draw(arrays(shape))
    lead = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2)))
    own = tuple(data.draw(st.integers(1, 3)) if n == 1 else data.draw(st.sampled_from([n, -1])) for n in shape)
    target = lead + own
    check(lambda t: t.expand(target), lambda t: t.expand(target), [x], dtype, sums=True)
    if target:  # torch's varargs form needs at least one size
        check(lambda t: t.expand(*target), lambda t: t.expand(*target), [x], dtype, sums=True)


# ----------------------------------------------------------------------------- indexing


def _to_torch_index(index: Any) -> Any:
    if isinstance(index, tuple):
        return tuple(_to_torch_index(i) for i in index)
    if isinstance(index, np.ndarray):
        return torch.from_numpy(index)
    return index


@st.composite
def _slice_for(draw: Any, n: int) -> slice:
    start = draw(st.none() | st.integers(-n, n))
    stop = draw(st.none() | st.integers(-n, n))
    step = draw(st.none() | st.integers(1, 3))  # torch has no negative steps
    return slice(start, stop, step)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes(min_dims=1), data=st.data())
def test_getitem_slices_and_ints(dtype: Any, shape: tuple[int, ...], data: Any) -> None:
    x = data.draw(arrays(shape))
    parts = []
    for n in shape[: data.draw(st.integers(1, len(shape)))]:
        parts.append(data.draw(st.integers(-n, n - 1)) if data.draw(st.booleans()) else data.draw(_slice_for(n)))
    index = tuple(parts)
    # numpy keeps a 0-size slice; make sure the selection is not empty so the comparison means something
    assume(np.empty(shape)[index].size > 0)
    check(lambda t: t[index], lambda t: t[index], [x], dtype)
    if len(index) == 1:  # a bare int or slice, not wrapped in a tuple
        check(lambda t: t[index[0]], lambda t: t[index[0]], [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", ["rows", "last", "pair", "slice_then_array", "int_then_array", "list"])
@given(shape=shapes(min_dims=2, max_dims=3), data=st.data())
def test_getitem_integer_arrays(form: str, dtype: Any, shape: tuple[int, ...], data: Any) -> None:
    x = data.draw(arrays(shape))
    rng = np.random.default_rng(data.draw(seeds()))
    k = data.draw(st.integers(1, 6))  # more picks than the dim has: repeats are certain
    idx0 = rng.integers(-shape[0], shape[0], size=k)
    idx1 = rng.integers(0, shape[1], size=k)
    idx_last = rng.integers(0, shape[-1], size=(2, k))
    index = {
        "rows": idx0,
        "last": (Ellipsis, idx_last),
        "pair": (idx0, idx1),
        "slice_then_array": (slice(None), idx1),
        "int_then_array": (0, idx1),
    }.get(form)
    if form == "list":  # a Python list of ints indexes like an integer array
        picks = idx0.tolist()
        check(lambda t: t[picks], lambda t: t[picks], [x], dtype, sums=True)
        return
    check(lambda t: t[index], lambda t: t[_to_torch_index(index)], [x], dtype, sums=True)


# ----------------------------------------------------------------------------- masking and where


def _softmax_scales(x: np.ndarray, dim: int, log: bool = False):
    """The magnitudes softmax's rounding errors scale with (see `check`).

    softmax's backward, out ⊙ (g - Σ g·out), cancels terms of size |g| where one
    probability is near 1. log_softmax's output, x - max - log Σ exp(x - max),
    cancels terms of size |x|, and its backward, g - softmax·Σ g, terms of size n·|g|.
    """
    n = x.shape[dim] if x.ndim else 1
    x_max = float(np.max(np.abs(x), initial=0.0))

    def scales(g: np.ndarray) -> tuple[float, list[float]]:
        g_max = float(np.max(np.abs(g), initial=0.0))
        return (x_max, [n * g_max]) if log else (0.0, [g_max])

    return scales


@pytest.mark.parametrize("dtype", DTYPES)
@given(b=st.integers(1, 3), h=st.integers(1, 2), t=st.integers(1, 6), data=st.data())
def test_causal_masked_fill_then_softmax(dtype: Any, b: int, h: int, t: int, data: Any) -> None:
    """The attention pattern: scores above the diagonal set to -inf, then softmax over keys."""
    scores = data.draw(arrays((b, h, t, t), low=-4.0, high=4.0))
    mask = np.triu(np.ones((t, t), dtype=bool), k=1)
    scales = _softmax_scales(scores, -1)
    check(lambda s: s.masked_fill(mask, -np.inf).softmax(dim=-1),
          lambda s: s.masked_fill(torch.from_numpy(mask), -torch.inf).softmax(dim=-1), [scores], dtype, scales)
    check(lambda s: F.softmax(s.masked_fill(mask, float("-inf")), dim=-1),
          lambda s: TF.softmax(s.masked_fill(torch.from_numpy(mask), float("-inf")), dim=-1), [scores], dtype,
          scales)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes(), value=st.floats(-5, 5), data=st.data())
def test_masked_fill_broadcast_mask(dtype: Any, shape: tuple[int, ...], value: float, data: Any) -> None:
    x = data.draw(arrays(shape))
    mask_shape = data.draw(_operand_of(shape))
    mask = np.asarray(np.random.default_rng(data.draw(seeds())).random(mask_shape) < 0.5)
    check(lambda t: t.masked_fill(mask, value),
          lambda t: t.masked_fill(torch.from_numpy(mask), value), [x], dtype)
    check(lambda t: t.masked_fill(numpygpt.tensor(mask), value),  # a bool Tensor as the mask
          lambda t: t.masked_fill(torch.from_numpy(mask), value), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(out=shapes(), data=st.data())
def test_where(dtype: Any, out: tuple[int, ...], data: Any) -> None:
    cond_shape, a_shape, b_shape = (data.draw(_operand_of(out)) for _ in range(3))
    assume(np.broadcast_shapes(cond_shape, a_shape, b_shape) == out)
    cond = np.asarray(np.random.default_rng(data.draw(seeds())).random(cond_shape) < 0.5)
    a, b = data.draw(arrays(a_shape)), data.draw(arrays(b_shape))
    tcond = torch.from_numpy(cond)
    check(lambda x, y: numpygpt.where(cond, x, y), lambda x, y: torch.where(tcond, x, y), [a, b], dtype, sums=True)
    check(lambda x, y: numpygpt.where(numpygpt.tensor(cond), x, y), lambda x, y: torch.where(tcond, x, y),
          [a, b], dtype, sums=True)
    # a Python number on either side
    check(lambda x: numpygpt.where(cond, x, 0.5), lambda x: torch.where(tcond, x, 0.5), [a], dtype, sums=True)
    check(lambda y: numpygpt.where(cond, -1.5, y), lambda y: torch.where(tcond, -1.5, y), [b], dtype, sums=True)


# ----------------------------------------------------------------------------- matmul, cat, stack


@pytest.mark.parametrize("dtype", DTYPES)
@given(batch=broadcastable_pair(max_dims=2, max_side=3), m=st.integers(1, 4), k=st.integers(1, 4),
       n=st.integers(1, 4), vec=st.sampled_from(["none", "left", "right", "both"]), data=st.data())
def test_matmul(dtype: Any, batch: Any, m: int, k: int, n: int, vec: str, data: Any) -> None:
    a_shape = (k,) if vec in ("left", "both") else batch[0] + (m, k)
    b_shape = (k,) if vec in ("right", "both") else batch[1] + (k, n)
    a, b = data.draw(arrays(a_shape)), data.draw(arrays(b_shape))
    check(lambda x, y: x @ y, lambda x, y: x @ y, [a, b], dtype, sums=True)
    check(lambda x, y: numpygpt.matmul(x, y), lambda x, y: torch.matmul(x, y), [a, b], dtype, sums=True)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes(min_dims=1, max_dims=3), count=st.integers(1, 3), data=st.data())
def test_cat(dtype: Any, shape: tuple[int, ...], count: int, data: Any) -> None:
    n = len(shape)
    dim = data.draw(st.integers(-n, n - 1))
    parts = []
    for _ in range(count):
        s = list(shape)
        s[dim] = data.draw(st.integers(1, 3))
        parts.append(data.draw(arrays(tuple(s))))
    check(lambda *ts: numpygpt.cat(list(ts), dim=dim), lambda *ts: torch.cat(ts, dim=dim), parts, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes(max_dims=3), count=st.integers(1, 3), data=st.data())
def test_stack(dtype: Any, shape: tuple[int, ...], count: int, data: Any) -> None:
    n = len(shape)
    dim = data.draw(st.integers(-n - 1, n))
    parts = [data.draw(arrays(shape)) for _ in range(count)]
    check(lambda *ts: numpygpt.stack(list(ts), dim=dim), lambda *ts: torch.stack(ts, dim=dim), parts, dtype)


# ----------------------------------------------------------------------------- functional


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(shape=shapes(min_dims=1), data=st.data())
def test_softmax_family(name: str, dtype: Any, shape: tuple[int, ...], data: Any) -> None:
    x = data.draw(arrays(shape, low=-10.0, high=10.0))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    scales = _softmax_scales(x, dim, log=name == "log_softmax")
    check(lambda t: getattr(F, name)(t, dim=dim), lambda t: getattr(TF, name)(t, dim=dim), [x], dtype, scales)
    check(lambda t: getattr(t, name)(dim), lambda t: getattr(t, name)(dim), [x], dtype, scales)


@pytest.mark.parametrize("dtype", DTYPES)
@given(x=arrays(shapes(), low=-6.0, high=6.0))
def test_gelu_tanh(dtype: Any, x: np.ndarray) -> None:
    def scales(g: np.ndarray) -> tuple[float, list[float]]:
        # y = ½x(1 + tanh u) cancels for x ≲ -3, where tanh u ≈ -1: rounding is
        # relative to ½|x| (the output) and to |g| (the gradient's ½(1 + tanh u) term)
        return float(np.max(np.abs(x), initial=0.0)), [float(np.max(np.abs(g), initial=0.0))]

    check(lambda t: F.gelu(t, approximate="tanh"), lambda t: TF.gelu(t, approximate="tanh"), [x], dtype, scales)


@pytest.mark.parametrize("dtype", DTYPES)
@given(x=arrays(shapes(), low=-6.0, high=6.0))
def test_gelu_exact(dtype: Any, x: np.ndarray) -> None:
    def scales(g: np.ndarray) -> tuple[float, list[float]]:
        # PyTorch computes ½x(1 + erf(x/√2)), which cancels for x ≲ -3 (numpygpt uses
        # erfc instead): rounding is relative to ½|x| and to |g| (the gradient's Φ(x) term)
        return float(np.max(np.abs(x), initial=0.0)), [float(np.max(np.abs(g), initial=0.0))]

    check(F.gelu, TF.gelu, [x], dtype, scales)
    check(lambda t: F.gelu(t, approximate="none"), lambda t: TF.gelu(t, approximate="none"), [x], dtype, scales)


@pytest.mark.parametrize("dtype", DTYPES)
@given(x=arrays(shapes(), min_abs=0.05))
def test_functional_relu(dtype: Any, x: np.ndarray) -> None:
    check(F.relu, TF.relu, [x], dtype)


def _layer_norm_scales(x: np.ndarray, norm_shape: tuple[int, ...], w: np.ndarray | None, eps: float):
    """The magnitudes LayerNorm's rounding errors scale with (see `check`).

    x - mean(x) is only accurate to eps·|x|, so x̂ is accurate to eps·|x|·rstd
    and the output relative to |x|·rstd·|w|, not to the (possibly much smaller)
    |x̂|·|w|. dx is a projection, rstd·(dx̂ - mean(dx̂) - x̂·mean(dx̂·x̂)), whose
    terms, of size rstd·|g·w|, can be much larger than their sum (for two
    elements the sum is nearly 0), and carry x̂'s error.
    """
    axes = tuple(range(x.ndim - len(norm_shape), x.ndim))
    rstd = float(np.max(1 / np.sqrt(x.var(axis=axes) + eps)))
    n = int(np.prod(norm_shape))
    w_max = float(np.max(np.abs(w))) if w is not None else 1.0

    def scales(g: np.ndarray) -> tuple[float, list[float]]:
        g_max = float(np.max(np.abs(g), initial=0.0))
        x_max = float(np.max(np.abs(x), initial=0.0))
        rows = g.size // n
        out = x_max * rstd * w_max
        dx = rstd * g_max * w_max * max(1.0, x_max * rstd)
        return out, [dx, rows * g_max * x_max * rstd, rows * g_max]

    return scales


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes(min_dims=1), data=st.data())
def test_layer_norm(dtype: Any, shape: tuple[int, ...], data: Any) -> None:
    n_norm = data.draw(st.integers(1, min(2, len(shape))))
    norm_shape = shape[len(shape) - n_norm:]
    scale = data.draw(st.sampled_from([0.1, 1.0, 10.0]))
    offset = data.draw(st.sampled_from([-3.0, 0.0, 5.0]))
    x = (data.draw(arrays(shape)) * scale + offset).astype(dtype)
    w, b = data.draw(arrays(norm_shape)), data.draw(arrays(norm_shape))
    check(lambda t, wt, bt: F.layer_norm(t, norm_shape, wt, bt),
          lambda t, wt, bt: TF.layer_norm(t, norm_shape, wt, bt, eps=1e-5), [x, w, b], dtype,
          _layer_norm_scales(x.astype(np.float64), norm_shape, w, 1e-5))
    check(lambda t: F.layer_norm(t, norm_shape, eps=1e-3),
          lambda t: TF.layer_norm(t, norm_shape, eps=1e-3), [x], dtype,
          _layer_norm_scales(x.astype(np.float64), norm_shape, None, 1e-3))


@pytest.mark.parametrize("dtype", DTYPES)
@given(lead=shapes(max_dims=3), n_in=st.integers(1, 5), n_out=st.integers(1, 5), bias=st.booleans(),
       data=st.data())
def test_linear(dtype: Any, lead: tuple[int, ...], n_in: int, n_out: int, bias: bool, data: Any) -> None:
    x = data.draw(arrays(lead + (n_in,)))
    w = data.draw(arrays((n_out, n_in)))
    if bias:
        b = data.draw(arrays((n_out,)))
        check(F.linear, TF.linear, [x, w, b], dtype, sums=True)
    else:
        check(F.linear, TF.linear, [x, w], dtype, sums=True)


@pytest.mark.parametrize("dtype", DTYPES)
@given(num=st.integers(1, 6), dim=st.integers(1, 4), ids_shape=shapes(max_dims=3, max_side=5), data=st.data())
def test_embedding(dtype: Any, num: int, dim: int, ids_shape: tuple[int, ...], data: Any) -> None:
    weight = data.draw(arrays((num, dim)))
    ids = np.random.default_rng(data.draw(seeds())).integers(0, num, size=ids_shape)  # repeats likely
    check(lambda w: F.embedding(ids, w), lambda w: TF.embedding(torch.from_numpy(ids), w), [weight], dtype,
          sums=True)


@pytest.mark.parametrize("dtype", DTYPES)
@given(x=arrays(shapes()))
def test_dropout_identity_cases(dtype: Any, x: np.ndarray) -> None:
    """p=0 in training, and any p outside training, leave the input as it is."""
    check(lambda t: F.dropout(t, p=0.0, training=True), lambda t: TF.dropout(t, p=0.0, training=True), [x], dtype)
    check(lambda t: F.dropout(t, p=0.5, training=False), lambda t: TF.dropout(t, p=0.5, training=False),
          [x], dtype)


def _cross_entropy_scales(logits: np.ndarray, targets: np.ndarray, reduction: str, ignore_index: int = -100):
    """The magnitudes cross-entropy's rounding errors scale with (see `check`).

    Each row's loss, logsumexp(x) - x[t], cancels terms of size |x| where the
    target's probability is near 1, and so does its gradient,
    (softmax - onehot(t)) times the row's weight in the reduction.
    """
    n_valid = max(int(np.sum(targets != ignore_index)), 1)
    x_max = float(np.max(np.abs(logits), initial=0.0))

    def scales(g: np.ndarray) -> tuple[float, list[float]]:
        g_max = float(np.max(np.abs(g), initial=0.0))
        if reduction == "mean":
            return x_max, [g_max / n_valid]
        return (x_max * n_valid if reduction == "sum" else x_max), [g_max]

    return scales


@st.composite
def _targets(draw: Any, shape: tuple[int, ...], v: int, ignore_index: int | None) -> np.ndarray:
    """Class ids in [0, v), some set to `ignore_index` (never all of them)."""
    rng = np.random.default_rng(draw(seeds()))
    t = rng.integers(0, v, size=shape)
    if ignore_index is not None:
        t = np.where(rng.random(shape) < 0.3, ignore_index, t)
        keep = int(rng.integers(t.size))
        t.flat[keep] = (ignore_index + 1) % v if t.flat[keep] == ignore_index else t.flat[keep]
    return t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(n=st.integers(1, 6), v=st.integers(1, 7), ignore=st.sampled_from([None, -100, 2]), data=st.data())
def test_cross_entropy_rows(reduction: str, dtype: Any, n: int, v: int, ignore: int | None, data: Any) -> None:
    logits = data.draw(arrays((n, v), low=-5.0, high=5.0))
    targets = data.draw(_targets((n,), v, ignore))
    kw = {} if ignore is None else {"ignore_index": ignore}
    check(lambda t: F.cross_entropy(t, targets, reduction=reduction, **kw),
          lambda t: TF.cross_entropy(t, torch.from_numpy(targets), reduction=reduction, **kw), [logits], dtype,
          _cross_entropy_scales(logits, targets, reduction, **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(v=st.integers(1, 7), data=st.data())
def test_cross_entropy_single_row(reduction: str, dtype: Any, v: int, data: Any) -> None:
    """Logits (V,) with a 0-d target, as torch accepts them."""
    logits = data.draw(arrays((v,), low=-5.0, high=5.0))
    target = np.asarray(data.draw(st.integers(0, v - 1)))
    check(lambda t: F.cross_entropy(t, target, reduction=reduction),
          lambda t: TF.cross_entropy(t, torch.from_numpy(target), reduction=reduction), [logits], dtype,
          _cross_entropy_scales(logits, target, reduction))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(b=st.integers(1, 3), t=st.integers(1, 4), v=st.integers(1, 7), ignore=st.booleans(), data=st.data())
def test_cross_entropy_sequence(reduction: str, dtype: Any, b: int, t: int, v: int, ignore: bool,
                                data: Any) -> None:
    """GPT-shaped logits (B, T, V) with targets (B, T) against torch on (B*T, V) and (B*T,)."""
    logits = data.draw(arrays((b, t, v), low=-5.0, high=5.0))
    targets = data.draw(_targets((b, t), v, -100 if ignore else None))

    def reference(x: Any) -> Any:
        out = TF.cross_entropy(x.flatten(0, 1), torch.from_numpy(targets).flatten(), reduction=reduction)
        return out.reshape(b, t) if reduction == "none" else out

    scales = _cross_entropy_scales(logits, targets, reduction)
    check(lambda x: F.cross_entropy(x, targets, reduction=reduction), reference, [logits], dtype, scales)
    check(lambda x: F.cross_entropy(x, numpygpt.tensor(targets), reduction=reduction), reference, [logits], dtype,
          scales)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(shape=shapes(), data=st.data())
def test_mse_loss(reduction: str, dtype: Any, shape: tuple[int, ...], data: Any) -> None:
    x, y = data.draw(arrays(shape)), data.draw(arrays(shape))
    # both input and target differentiable
    check(lambda a, b: F.mse_loss(a, b, reduction=reduction),
          lambda a, b: TF.mse_loss(a, b, reduction=reduction), [x, y], dtype)
    # a plain array as the target
    check(lambda a: F.mse_loss(a, y.astype(dtype), reduction=reduction),
          lambda a: TF.mse_loss(a, torch.from_numpy(y.astype(dtype)), reduction=reduction), [x], dtype)
