"""Every differentiable op against finite differences (`numpygpt.gradcheck`, float64),
over hypothesis-drawn shapes of rank 0 to 4 with size-1 and broadcast dims.

Also: each fused functional op against a twin composed from primitive Tensor
ops (forward and gradients agree to 1e-10 in float64), and dtype preservation
(float32 in, float32 out, float32 gradients all the way down to the leaves).
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

import numpy as np
import pytest
from conftest import arrays, broadcastable_pair, leaf, rel_err, seeds, shapes
from hypothesis import assume, given
from hypothesis import strategies as st

import numpygpt
import numpygpt.nn.functional as F
from numpygpt import Function, gradcheck


def check(fn: Callable[..., numpygpt.Tensor], *arrays_: np.ndarray, **kwargs: Any) -> None:
    """gradcheck `fn` on float64 leaves holding `arrays_`."""
    leaves = [leaf(a, dtype=np.float64) for a in arrays_]
    assert gradcheck(fn, leaves, **kwargs) is True


def rng_of(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- arithmetic

BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
}


@pytest.mark.parametrize("name", list(BINARY))
@given(data=st.data(), pair=broadcastable_pair())
def test_binary_tensor_tensor_broadcast(name: str, data: st.DataObject, pair: tuple) -> None:
    op = BINARY[name]
    min_abs = 0.5 if name == "div" else 0.0
    a = data.draw(arrays(pair[0], min_abs=min_abs))
    b = data.draw(arrays(pair[1], min_abs=min_abs))
    out_shape = np.broadcast_shapes(a.shape, b.shape)
    assert op(leaf(a), leaf(b)).shape == out_shape
    check(lambda x, y: op(x, y), a, b)
    check(lambda x, y: op(y, x), a, b)  # the other operand order


SCALARS = st.sampled_from([
    2.5, -1.5, 3, 0.75,
    np.float64(1.25), np.float32(-0.5), np.int64(2), np.float64(-3.0),
])


@pytest.mark.parametrize("name", list(BINARY))
@given(x=arrays(shapes(), min_abs=0.5), scalar=SCALARS)
def test_binary_tensor_scalar_both_orders(name: str, x: np.ndarray, scalar: Any) -> None:
    op = BINARY[name]
    check(lambda t: op(t, scalar), x)
    check(lambda t: op(scalar, t), x)  # reflected: __radd__, __rsub__, __rmul__, __rtruediv__
    expect = op(x, float(scalar))
    assert rel_err(op(leaf(x), scalar), expect) <= 1e-15
    assert rel_err(op(scalar, leaf(x)), op(float(scalar), x)) <= 1e-15


def _uniform(seed: int, shape: tuple, low: float = -2.0, high: float = 2.0, min_abs: float = 0.0) -> np.ndarray:
    """A float64 array like `arrays` draws, for tests that already hold a seed."""
    rng = rng_of(seed)
    x = rng.uniform(low, high, shape)
    if min_abs:
        x = np.where(np.abs(x) < min_abs, np.sign(x + 1e-300) * min_abs + x, x)
    return np.asarray(x)


@pytest.mark.parametrize("exponent", [2, 3, -1, 0, 1, -2, np.float64(2.0), np.int64(3)])
@given(x=arrays(shapes(), min_abs=0.5))
def test_pow_scalar_exponent(exponent: Any, x: np.ndarray) -> None:
    check(lambda t: t ** exponent, x)
    check(lambda t: t.pow(exponent), x)


@pytest.mark.parametrize("exponent", [0.5, -0.5, 1.5, 2.5, np.float64(-1.5)])
@given(x=arrays(shapes(), low=0.5, high=3.0))
def test_pow_fractional_exponent_positive_base(exponent: Any, x: np.ndarray) -> None:
    check(lambda t: t ** exponent, x)


@given(data=st.data(), pair=broadcastable_pair())
def test_pow_tensor_exponent(data: st.DataObject, pair: tuple) -> None:
    base = data.draw(arrays(pair[0], low=0.5, high=2.5))
    exponent = data.draw(arrays(pair[1], low=-2.0, high=2.0))
    check(lambda a, b: a ** b, base, exponent)
    check(lambda b: 1.7 ** b, exponent)  # __rpow__: scalar base, tensor exponent
    check(lambda b: np.float64(0.6) ** b, exponent)


# ----------------------------------------------------------------------------- elementwise

UNARY = {
    "neg": (lambda t: -t, {}),
    "exp": (lambda t: t.exp(), {}),
    "log": (lambda t: t.log(), {"low": 0.3, "high": 3.0}),
    "sqrt": (lambda t: t.sqrt(), {"low": 0.3, "high": 3.0}),
    "tanh": (lambda t: t.tanh(), {}),
    "abs": (lambda t: t.abs(), {"min_abs": 0.1}),
    "relu": (lambda t: t.relu(), {"min_abs": 0.1}),
    "F.relu": (lambda t: F.relu(t), {"min_abs": 0.1}),
    "F.gelu": (lambda t: F.gelu(t, approximate="tanh"), {"low": -4.0, "high": 4.0}),
    "F.gelu exact": (lambda t: F.gelu(t), {"low": -4.0, "high": 4.0}),
}


@pytest.mark.parametrize("name", list(UNARY))
@given(data=st.data(), shape=shapes())
def test_unary(name: str, data: st.DataObject, shape: tuple) -> None:
    fn, bounds = UNARY[name]
    check(fn, data.draw(arrays(shape, **bounds)))


def test_abs_and_relu_gradient_at_zero_is_zero() -> None:
    x = leaf(np.array([-1.0, 0.0, 2.0]))
    (x.abs() + x.relu()).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 2.0])


# ----------------------------------------------------------------------------- reductions


@st.composite
def shape_and_dim(draw: Any, max_dims: int = 4, max_side: int = 4) -> tuple[tuple, Any]:
    """A shape and a `dim` argument for it: None, one (possibly negative) dim, or a tuple of distinct dims."""
    shape = draw(shapes(max_dims=max_dims, max_side=max_side))
    n = len(shape)
    if n == 0:
        return shape, draw(st.sampled_from([None, 0, -1]))
    one = st.integers(-n, n - 1)
    many = st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n).flatmap(
        lambda ds: st.tuples(*[st.sampled_from([d, d - n]) for d in ds]))
    return shape, draw(st.one_of(st.none(), one, many))


def reduced_count(shape: tuple, dim: Any) -> int:
    if dim is None or not shape:
        return int(np.prod(shape))
    dims = (dim,) if isinstance(dim, int) else dim
    return int(np.prod([shape[d] for d in dims]))


@pytest.mark.parametrize("name", ["sum", "mean", "var_unbiased", "var_biased"])
@given(data=st.data(), sd=shape_and_dim(), keepdim=st.booleans())
def test_reductions(name: str, data: st.DataObject, sd: tuple, keepdim: bool) -> None:
    shape, dim = sd
    x = data.draw(arrays(shape))
    axis = None if dim is None or not shape else (dim if isinstance(dim, tuple) else (dim,))
    if name == "sum":
        fn, expect = (lambda t: t.sum(dim, keepdim=keepdim)), x.sum(axis=axis, keepdims=keepdim)
    elif name == "mean":
        fn, expect = (lambda t: t.mean(dim, keepdim=keepdim)), x.mean(axis=axis, keepdims=keepdim)
    else:
        unbiased = name == "var_unbiased"
        assume(reduced_count(shape, dim) >= 2 or not unbiased)
        fn = lambda t: t.var(dim, keepdim=keepdim, unbiased=unbiased)  # noqa: E731
        expect = x.var(axis=axis, keepdims=keepdim, ddof=int(unbiased))
    out = fn(leaf(x))
    assert out.shape == np.shape(expect)
    assert rel_err(out, expect) <= 1e-12
    check(fn, x)


def test_var_defaults_to_unbiased() -> None:
    x = np.array([1.0, 2.0, 4.0])
    assert leaf(x).var().item() == pytest.approx(np.var(x, ddof=1))
    assert leaf(x).var(unbiased=False).item() == pytest.approx(np.var(x))


@given(x=arrays(shapes(), distinct=True))
def test_max_all(x: np.ndarray) -> None:
    out = leaf(x).max()
    assert out.shape == () and out.item() == x.max()
    check(lambda t: t.max(), x)


def test_max_all_shares_gradient_between_ties() -> None:
    x = leaf(np.array([1.0, 3.0, 3.0, 0.0]))
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.5, 0.5, 0.0])


@given(data=st.data(), shape=shapes(min_dims=1), keepdim=st.booleans())
def test_max_dim(data: st.DataObject, shape: tuple, keepdim: bool) -> None:
    x = data.draw(arrays(shape, distinct=True))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    values, indices = leaf(x).max(dim, keepdim=keepdim)
    np.testing.assert_array_equal(values.data, x.max(axis=dim, keepdims=keepdim))
    np.testing.assert_array_equal(indices.data, x.argmax(axis=dim, keepdims=keepdim))
    check(lambda t: t.max(dim, keepdim=keepdim)[0], x)
    check(lambda t: t.max(dim=dim, keepdim=keepdim).values, x)


def test_max_dim_ties_go_to_first_index() -> None:
    x = leaf(np.array([[2.0, 5.0, 5.0], [1.0, 1.0, 0.0]]))
    values, indices = x.max(1)
    np.testing.assert_array_equal(indices.data, [1, 0])
    values.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 1, 0], [1, 0, 0]])


# ----------------------------------------------------------------------------- shape ops


@st.composite
def reshape_target(draw: Any, shape: tuple) -> tuple:
    """Another shape with the same number of elements (maybe with one -1)."""
    n = int(np.prod(shape))
    factors = [p for p in range(2, n + 1) for _ in range(_multiplicity(n, p))]
    factors = draw(st.permutations(factors))
    k = draw(st.integers(0, 4))
    target = [1] * max(k, 1)
    for f in factors:
        target[draw(st.integers(0, len(target) - 1))] *= f
    target = [int(t) for t in target]
    if k == 0 and n == 1:
        target = []
    if target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return tuple(target)


def _multiplicity(n: int, p: int) -> int:
    if any(p % q == 0 for q in range(2, p)):
        return 0
    m = 0
    while n % p == 0:
        n //= p
        m += 1
    return m


@given(data=st.data(), x=arrays(shapes()))
def test_reshape_and_view(data: st.DataObject, x: np.ndarray) -> None:
    target = data.draw(reshape_target(x.shape))
    assert leaf(x).reshape(target).shape == x.reshape(target).shape
    check(lambda t: t.reshape(target), x)
    check(lambda t: t.view(*target) if target else t.view(()), x)


@given(data=st.data(), x=arrays(shapes(min_dims=1)))
def test_transpose_permute_contiguous(data: st.DataObject, x: np.ndarray) -> None:
    n = x.ndim
    d0, d1 = data.draw(st.integers(-n, n - 1)), data.draw(st.integers(-n, n - 1))
    perm = data.draw(st.permutations(range(n)))
    np.testing.assert_array_equal(leaf(x).transpose(d0, d1).data, np.swapaxes(x, d0, d1))
    np.testing.assert_array_equal(leaf(x).permute(*perm).data, np.transpose(x, perm))
    check(lambda t: t.transpose(d0, d1), x)
    check(lambda t: t.permute(perm), x)
    check(lambda t: t.permute(*perm).contiguous() * 2.0, x)
    check(lambda t: t.T, x)
    assert leaf(x).permute(*perm).contiguous().data.flags.c_contiguous


@given(data=st.data(), x=arrays(shapes(max_dims=3)))
def test_unsqueeze_squeeze_flatten(data: st.DataObject, x: np.ndarray) -> None:
    n = x.ndim
    u = data.draw(st.integers(-n - 1, n))
    assert leaf(x).unsqueeze(u).shape == np.expand_dims(x, u).shape
    check(lambda t: t.unsqueeze(u), x)
    check(lambda t: t.squeeze(), x)
    assert leaf(x).squeeze().shape == np.squeeze(x).shape
    if n:
        d = data.draw(st.integers(-n, n - 1))
        expect = np.squeeze(x, d).shape if x.shape[d] == 1 else x.shape
        assert leaf(x).squeeze(d).shape == expect
        check(lambda t: t.squeeze(d), x)
        start = data.draw(st.integers(0, n - 1))
        end = data.draw(st.integers(start, n - 1))
        start, end = start - n * data.draw(st.booleans()), end - n * data.draw(st.booleans())
        s, e = start % n, end % n
        expect = x.shape[:s] + (int(np.prod(x.shape[s:e + 1])),) + x.shape[e + 1:]
        assert leaf(x).flatten(start, end).shape == expect
        check(lambda t: t.flatten(start, end), x)
    check(lambda t: t.flatten(), x)
    assert leaf(x).flatten().shape == (x.size,)


@given(data=st.data(), pair=broadcastable_pair())
def test_expand(data: st.DataObject, pair: tuple) -> None:
    x = data.draw(arrays(pair[0]))
    full = np.broadcast_shapes(*pair)
    target = list(full)
    lead = len(target) - x.ndim
    expect = list(full)
    for i in range(lead, len(target)):  # -1 keeps that dim of x, as PyTorch
        if data.draw(st.booleans()):
            target[i], expect[i] = -1, x.shape[i - lead]
    assert leaf(x).expand(*target).shape == tuple(expect)
    check(lambda t: t.expand(target), x)


# ----------------------------------------------------------------------------- indexing


@st.composite
def basic_index(draw: Any, shape: tuple) -> Any:
    """Ints, slices (negative steps included), None and Ellipsis."""
    per_dim: list[Any] = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "full"]))
        if kind == "int":
            per_dim.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            bound = st.none() | st.integers(-n - 1, n + 1)
            per_dim.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, -1, -2, -3]))))
        else:
            per_dim.append(slice(None))
    front = draw(st.integers(0, len(shape)))
    if draw(st.booleans()):  # Ellipsis stands for the dims between a front and a back part
        back = draw(st.integers(0, len(shape) - front))
        items = per_dim[:front] + [Ellipsis] + per_dim[len(shape) - back:]
    else:  # the dims left out at the end are taken whole
        items = per_dim[:front]
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return tuple(items)


@given(data=st.data(), x=arrays(shapes()))
def test_getitem_basic(data: st.DataObject, x: np.ndarray) -> None:
    index = data.draw(basic_index(x.shape))
    np.testing.assert_array_equal(leaf(x)[index].data, x[index])
    check(lambda t: t[index], x)


@given(data=st.data(), x=arrays(shapes(min_dims=1)))
def test_getitem_integer_arrays_with_repeats(data: st.DataObject, x: np.ndarray) -> None:
    rng = rng_of(data.draw(seeds()))
    n0 = x.shape[0]
    idx = rng.integers(-n0, n0, size=data.draw(st.sampled_from([(3,), (2, 3), (5,)])))
    idx[..., 0] = idx[..., -1]  # at least one repeat
    cases: list[Any] = [idx, idx.tolist(), numpygpt.tensor(idx), (idx, Ellipsis), (None, idx), (idx, None),
                        (Ellipsis, idx if x.ndim == 1 else idx % x.shape[-1])]
    if x.ndim >= 2:
        n1 = x.shape[1]
        idx1 = rng.integers(0, n1, size=idx.shape[-1:])  # broadcasts against idx
        cases += [(slice(None), rng.integers(0, n1, size=4)), (idx, idx1), (idx, slice(None, None, -1))]
    for index in cases:
        expect = x[tuple(i.data if isinstance(i, numpygpt.Tensor) else i for i in index)] \
            if isinstance(index, tuple) else x[np.asarray(index.data if isinstance(index, numpygpt.Tensor) else index)]
        np.testing.assert_array_equal(leaf(x)[index].data, expect)
        check(lambda t: t[index], x)


def test_getitem_repeated_ids_accumulate() -> None:
    x = leaf(np.arange(4.0))
    x[np.array([1, 1, 3, 1])].sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 3.0, 0.0, 1.0])


@given(data=st.data(), x=arrays(shapes(min_dims=1)))
def test_getitem_boolean_masks(data: st.DataObject, x: np.ndarray) -> None:
    rng = rng_of(data.draw(seeds()))
    full = rng.random(x.shape) < 0.5
    rows = rng.random(x.shape[:1]) < 0.5
    for mask in (full, rows, numpygpt.tensor(full), (rows, Ellipsis)):
        m = mask.data if isinstance(mask, numpygpt.Tensor) else mask
        np.testing.assert_array_equal(leaf(x)[mask].data, x[m])
        check(lambda t: t[mask], x)
    check(lambda t: t[leaf(x) > 0], x)


@given(data=st.data(), shape=shapes())
def test_masked_fill(data: st.DataObject, shape: tuple) -> None:
    x = data.draw(arrays(shape))
    rank = data.draw(st.integers(0, len(shape)))
    mshape = tuple(1 if data.draw(st.booleans()) else n for n in shape[len(shape) - rank:])
    mask = rng_of(data.draw(seeds())).random(mshape) < 0.5
    value = data.draw(st.sampled_from([0.0, -3.5, 1e4]))
    np.testing.assert_array_equal(leaf(x).masked_fill(mask, value).data, np.where(mask, value, x))
    check(lambda t: t.masked_fill(mask, value), x)
    check(lambda t: t.masked_fill(numpygpt.tensor(mask), value), x)


@given(x=arrays(shapes(min_dims=2, max_dims=2, min_side=2)))
def test_causal_mask_minus_inf_then_softmax(x: np.ndarray) -> None:
    t = x.shape[-1]
    mask = np.triu(np.ones((x.shape[0], t), dtype=bool), k=1)
    mask[:, 0] = False  # every row keeps one position
    fn = lambda a: F.softmax(a.masked_fill(mask, float("-inf")), dim=-1)  # noqa: E731
    out = fn(leaf(x))
    assert np.all(out.data[mask] == 0) and np.allclose(out.data.sum(-1), 1)
    check(fn, x)


@given(data=st.data())
def test_where(data: st.DataObject) -> None:
    pair_a = data.draw(broadcastable_pair(max_dims=3))
    cshape, ashape = pair_a
    bshape = data.draw(st.sampled_from([ashape, cshape, np.broadcast_shapes(*pair_a)]))
    cond = rng_of(data.draw(seeds())).random(cshape) < 0.5
    a, b = data.draw(arrays(ashape)), data.draw(arrays(bshape))
    np.testing.assert_array_equal(numpygpt.where(cond, leaf(a), leaf(b)).data, np.where(cond, a, b))
    check(lambda s, t: numpygpt.where(cond, s, t), a, b)
    check(lambda s: numpygpt.where(numpygpt.tensor(cond), s, 0.5), a)
    check(lambda t: numpygpt.where(cond, -1.0, t), b)


# ----------------------------------------------------------------------------- matmul


@given(data=st.data(), n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4))
def test_matmul(data: st.DataObject, n: int, k: int, m: int) -> None:
    batch_a, batch_b = data.draw(broadcastable_pair(max_dims=2, max_side=3))
    cases = [
        ((k,), (k,)), ((k,), (k, m)), ((n, k), (k,)), ((n, k), (k, m)),
        (batch_a + (n, k), batch_b + (k, m)),            # broadcast batch dims
        (batch_a + (n, k), (k, m)), ((n, k), batch_b + (k, m)),
        ((k,), batch_b + (k, m)), (batch_a + (n, k), (k,)),
    ]
    for sa, sb in cases:
        a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
        expect = np.matmul(a, b)
        out = leaf(a) @ leaf(b)
        assert out.shape == expect.shape, (sa, sb)
        assert rel_err(out, expect) <= 1e-13
        check(lambda x, y: x @ y, a, b)
        check(lambda x, y: numpygpt.matmul(x, y), a, b)


@given(a=arrays((2, 1, 3, 4)), b=arrays((5, 4, 2)), c=arrays((2, 3, 4)), w=arrays((4, 3)))
def test_matmul_named_cases(a: np.ndarray, b: np.ndarray, c: np.ndarray, w: np.ndarray) -> None:
    assert (leaf(a) @ leaf(b)).shape == (2, 5, 3, 2)
    check(lambda x, y: x @ y, a, b)
    assert (leaf(c) @ leaf(w)).shape == (2, 3, 3)      # (B, T, C) @ (C, D)
    check(lambda x, y: x @ y, c, w)
    check(lambda x: x @ w, c)                          # ndarray operand
    check(lambda y: c @ y, w)                          # __rmatmul__


# ----------------------------------------------------------------------------- cat, stack, casts


@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3), count=st.integers(1, 3))
def test_cat(data: st.DataObject, shape: tuple, count: int) -> None:
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    xs = []
    for _ in range(count):
        s = list(shape)
        s[dim] = data.draw(st.integers(1, 3))
        xs.append(data.draw(arrays(tuple(s))))
    np.testing.assert_array_equal(numpygpt.cat([leaf(x) for x in xs], dim=dim).data, np.concatenate(xs, axis=dim))
    check(lambda *ts: numpygpt.cat(list(ts), dim=dim), *xs)


@given(data=st.data(), shape=shapes(max_dims=3), count=st.integers(1, 3))
def test_stack(data: st.DataObject, shape: tuple, count: int) -> None:
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    xs = [data.draw(arrays(shape)) for _ in range(count)]
    np.testing.assert_array_equal(numpygpt.stack([leaf(x) for x in xs], dim=dim).data, np.stack(xs, axis=dim))
    check(lambda *ts: numpygpt.stack(ts, dim=dim), *xs)


@given(x=arrays(shapes()))
def test_to_dtype_chains(x: np.ndarray) -> None:
    check(lambda t: t.to(np.float64) * 2.0, x)
    check(lambda t: t.to("float64").double(), x)
    # a float32 round trip: gradients still flow, rounded to float32's precision
    check(lambda t: (t.float() * 3.0).double().exp(), x, eps=1e-3, atol=1e-3, rtol=1e-2)
    t = leaf(x)
    y = t.float().to(np.float64).float().double()
    assert y.dtype == np.float64
    y.backward(np.full(x.shape, 2.0))
    assert t.grad.dtype == np.float64
    np.testing.assert_array_equal(t.grad, np.full(x.shape, 2.0))


# ----------------------------------------------------------------------------- functional ops


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "Tensor.softmax", "Tensor.log_softmax"])
@given(data=st.data(), x=arrays(shapes(min_dims=1), low=-4.0, high=4.0))
def test_softmax_family(name: str, data: st.DataObject, x: np.ndarray) -> None:
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    fn = {
        "softmax": lambda t: F.softmax(t, dim),
        "log_softmax": lambda t: F.log_softmax(t, dim=dim),
        "Tensor.softmax": lambda t: t.softmax(dim),
        "Tensor.log_softmax": lambda t: t.log_softmax(dim),
    }[name]
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    p = e / e.sum(axis=dim, keepdims=True)
    assert rel_err(fn(leaf(x)), p if "log" not in name else np.log(p)) <= 1e-12
    check(fn, x)


def test_softmax_is_stable_for_huge_logits() -> None:
    x = leaf(np.array([[1000.0, 0.0, -1000.0]]))
    out = F.softmax(x, -1)
    np.testing.assert_allclose(out.data, [[1.0, 0.0, 0.0]])
    assert np.all(np.isfinite(F.log_softmax(x, -1).data))


@given(data=st.data(), lead=shapes(max_dims=2, max_side=3), norm=shapes(min_dims=1, max_dims=2, max_side=4),
       affine=st.sampled_from(["both", "weight", "bias", "none"]))
def test_layer_norm(data: st.DataObject, lead: tuple, norm: tuple, affine: str) -> None:
    x = data.draw(arrays(lead + norm, low=-3.0, high=3.0))
    w = data.draw(arrays(norm, low=0.5, high=1.5))
    b = data.draw(arrays(norm))
    normalized = norm[0] if len(norm) == 1 and data.draw(st.booleans()) else norm
    use_w, use_b = affine in ("both", "weight"), affine in ("both", "bias")
    arrays_ = [x] + ([w] if use_w else []) + ([b] if use_b else [])

    def fn(*ts: numpygpt.Tensor) -> numpygpt.Tensor:
        it = iter(ts[1:])
        return F.layer_norm(ts[0], normalized, next(it) if use_w else None, next(it) if use_b else None)

    axes = tuple(range(len(lead), x.ndim))
    expect = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5)
    expect = expect * (w if use_w else 1.0) + (b if use_b else 0.0)
    assert rel_err(fn(*[leaf(a) for a in arrays_]), expect) <= 1e-12
    check(fn, *arrays_)


@given(data=st.data(), lead=shapes(max_dims=2, max_side=3), n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       bias=st.booleans())
def test_linear(data: st.DataObject, lead: tuple, n_in: int, n_out: int, bias: bool) -> None:
    x = data.draw(arrays(lead + (n_in,)))              # 1-D to 3-D input
    w = data.draw(arrays((n_out, n_in)))
    b = data.draw(arrays((n_out,)))
    if bias:
        assert rel_err(F.linear(leaf(x), leaf(w), leaf(b)), x @ w.T + b) <= 1e-13
        check(lambda s, t, u: F.linear(s, t, u), x, w, b)
    else:
        assert rel_err(F.linear(leaf(x), leaf(w)), x @ w.T) <= 1e-13
        check(lambda s, t: F.linear(s, t), x, w)
    check(lambda s: F.linear(s, numpygpt.tensor(w)), x)  # only the input needs a gradient
    check(lambda t: F.linear(numpygpt.tensor(x), t), w)  # only the weight does


@given(data=st.data(), ids_shape=shapes(min_dims=1, max_dims=3), num=st.integers(1, 5), dim=st.integers(1, 4))
def test_embedding(data: st.DataObject, ids_shape: tuple, num: int, dim: int) -> None:
    w = data.draw(arrays((num, dim)))
    ids = rng_of(data.draw(seeds())).integers(0, num, size=ids_shape)
    ids.flat[0] = ids.flat[-1]  # a repeated id when there is more than one
    np.testing.assert_array_equal(F.embedding(ids, leaf(w)).data, w[ids])
    check(lambda t: F.embedding(ids, t), w)
    check(lambda t: F.embedding(numpygpt.tensor(ids), t), w)


def test_embedding_repeated_ids_sum() -> None:
    w = leaf(np.zeros((3, 2)))
    F.embedding(np.array([[2, 2], [0, 2]]), w).sum().backward()
    np.testing.assert_array_equal(w.grad, [[1, 1], [0, 0], [3, 3]])


@given(x=arrays(shapes()), p=st.floats(0.05, 0.95), seed=st.integers(0, 1000))
def test_dropout(x: np.ndarray, p: float, seed: int) -> None:
    def fn(t: numpygpt.Tensor) -> numpygpt.Tensor:
        numpygpt.manual_seed(seed)  # the same mask on every call
        return F.dropout(t, p)

    out = fn(leaf(x)).data
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / (1 - p), rtol=1e-12)
    check(fn, x)
    np.testing.assert_array_equal(F.dropout(leaf(x), p, training=False).data, x)


@st.composite
def ce_case(draw: Any) -> tuple:
    lead = draw(st.sampled_from([(), (1,), (2,), (3,), (1, 1), (2, 3), (3, 2)]))
    lead = lead or (draw(st.integers(1, 4)),)
    v = draw(st.integers(1, 5))
    logits = draw(arrays(lead + (v,), low=-3.0, high=3.0))
    ignore_index = draw(st.sampled_from([-100, -1, v + 2]))
    rng = rng_of(draw(seeds()))
    t = rng.integers(0, v, size=lead)
    ignored = rng.random(lead) < 0.3
    ignored.flat[draw(st.integers(0, ignored.size - 1))] = False  # at least one row counts
    t = np.where(ignored, ignore_index, t)
    return logits, t, ignore_index


def ce_reference(x: np.ndarray, t: np.ndarray, ignore_index: int, reduction: str) -> np.ndarray:
    lse = np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1)) + x.max(-1)
    valid = t != ignore_index
    picked = np.take_along_axis(x, np.where(valid, t, 0)[..., None], -1)[..., 0]
    losses = np.where(valid, lse - picked, 0.0)
    return {"none": losses, "sum": losses.sum(), "mean": losses.sum() / valid.sum()}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(case=ce_case())
def test_cross_entropy(reduction: str, case: tuple) -> None:
    x, t, ignore_index = case
    fn = lambda s: F.cross_entropy(s, t, ignore_index=ignore_index, reduction=reduction)  # noqa: E731
    out = fn(leaf(x))
    expect = ce_reference(x, t, ignore_index, reduction)
    assert out.shape == np.shape(expect)
    assert rel_err(out, expect) <= 1e-12
    check(fn, x)
    if ignore_index == -100 and reduction == "mean":
        check(lambda s: F.cross_entropy(s, numpygpt.tensor(t)), x)


@given(data=st.data(), shape=shapes())
def test_mse_loss(data: st.DataObject, shape: tuple) -> None:
    x, y = data.draw(arrays(shape)), data.draw(arrays(shape))
    for reduction, expect in (("mean", ((x - y) ** 2).mean()), ("sum", ((x - y) ** 2).sum()), ("none", (x - y) ** 2)):
        assert rel_err(F.mse_loss(leaf(x), leaf(y), reduction=reduction), expect) <= 1e-13
        check(lambda s, t: F.mse_loss(s, t, reduction=reduction), x, y)
        check(lambda s: F.mse_loss(s, y, reduction=reduction), x)


# ----------------------------------------------------------------------------- fused vs composed twins

GELU_C = math.sqrt(2.0 / math.pi)


def softmax_composed(x: numpygpt.Tensor, dim: int) -> numpygpt.Tensor:
    e = (x - x.max(dim, keepdim=True)[0]).exp()
    return e / e.sum(dim, keepdim=True)


def log_softmax_composed(x: numpygpt.Tensor, dim: int) -> numpygpt.Tensor:
    s = x - x.max(dim, keepdim=True)[0]
    return s - s.exp().sum(dim, keepdim=True).log()


def cross_entropy_composed(x: numpygpt.Tensor, t: np.ndarray, ignore_index: int, reduction: str) -> numpygpt.Tensor:
    v = x.shape[-1]
    flat_t = t.reshape(-1)
    valid = flat_t != ignore_index
    lp = log_softmax_composed(x.reshape(-1, v), -1)
    losses = -lp[np.arange(flat_t.size), np.where(valid, flat_t, 0)] * valid.astype(x.dtype)
    if reduction == "none":
        return losses.reshape(t.shape)
    return losses.sum() if reduction == "sum" else losses.sum() / int(valid.sum())


def layer_norm_composed(x: numpygpt.Tensor, n_dims: int, w: numpygpt.Tensor | None, b: numpygpt.Tensor | None,
                        eps: float = 1e-5) -> numpygpt.Tensor:
    dims = tuple(range(x.ndim - n_dims, x.ndim))
    xc = x - x.mean(dims, keepdim=True)
    y = xc / (xc.var(dims, keepdim=True, unbiased=False) + eps).sqrt()
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def gelu_composed(x: numpygpt.Tensor) -> numpygpt.Tensor:
    return 0.5 * x * (1.0 + ((x + 0.044715 * x ** 3) * GELU_C).tanh())


class Erf(Function):
    """erf as a differentiable primitive for the twin: d/dx erf(x) = 2/√π · exp(-x²)."""

    @staticmethod
    def forward(ctx, x: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x)
        return F.erf(x)

    @staticmethod
    def backward(ctx, g: np.ndarray):
        (x,) = ctx.saved_tensors
        return g * (2 / math.sqrt(math.pi)) * np.exp(-x * x)


def gelu_exact_composed(x: numpygpt.Tensor) -> numpygpt.Tensor:
    return 0.5 * x * (1.0 + Erf.apply(x * (1 / math.sqrt(2.0))))


def linear_composed(x: numpygpt.Tensor, w: numpygpt.Tensor, b: numpygpt.Tensor | None = None) -> numpygpt.Tensor:
    y = x @ w.transpose(0, 1)
    return y + b if b is not None else y


def assert_twins_agree(fused: Callable, composed: Callable, *arrays_: np.ndarray, seed: int = 0) -> None:
    """Same forward and same gradients (of Σ w ⊙ out) for every input, to 1e-10 relative."""
    results = []
    for fn in (fused, composed):
        leaves = [leaf(a, dtype=np.float64) for a in arrays_]
        out = fn(*leaves)
        assert out.dtype == np.float64
        w = np.random.default_rng(seed).standard_normal(out.shape)
        out.backward(w)
        results.append((out.data, [t.grad for t in leaves]))
    (out_f, grads_f), (out_c, grads_c) = results
    assert out_f.shape == out_c.shape
    assert rel_err(out_f, out_c) <= 1e-10
    for i, (gf, gc) in enumerate(zip(grads_f, grads_c)):
        assert gf is not None and gc is not None, f"input {i} got no gradient"
        assert rel_err(gf, gc) <= 1e-10, f"input {i}: fused and composed gradients differ"


@given(data=st.data(), x=arrays(shapes(min_dims=1), low=-5.0, high=5.0))
def test_twins_softmax_log_softmax(data: st.DataObject, x: np.ndarray) -> None:
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    assert_twins_agree(lambda t: F.softmax(t, dim), lambda t: softmax_composed(t, dim), x)
    assert_twins_agree(lambda t: F.log_softmax(t, dim), lambda t: log_softmax_composed(t, dim), x)
    check(lambda t: softmax_composed(t, dim), x)  # the twin itself is right


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(case=ce_case())
def test_twins_cross_entropy(reduction: str, case: tuple) -> None:
    x, t, ii = case
    assert_twins_agree(lambda s: F.cross_entropy(s, t, ignore_index=ii, reduction=reduction),
                       lambda s: cross_entropy_composed(s, t, ii, reduction), x)


@given(data=st.data(), lead=shapes(max_dims=2, max_side=3), norm=shapes(min_dims=1, max_dims=2, max_side=4),
       affine=st.sampled_from(["both", "weight", "bias", "none"]))
def test_twins_layer_norm(data: st.DataObject, lead: tuple, norm: tuple, affine: str) -> None:
    x = data.draw(arrays(lead + norm, low=-3.0, high=3.0))
    use_w, use_b = affine in ("both", "weight"), affine in ("both", "bias")
    extra = [data.draw(arrays(norm, low=0.5, high=1.5))] if use_w else []
    extra += [data.draw(arrays(norm))] if use_b else []

    def split(ts: tuple) -> tuple:
        it = iter(ts[1:])
        return ts[0], (next(it) if use_w else None), (next(it) if use_b else None)

    def fused(*ts: numpygpt.Tensor) -> numpygpt.Tensor:
        x_, w_, b_ = split(ts)
        return F.layer_norm(x_, norm, w_, b_)

    def composed(*ts: numpygpt.Tensor) -> numpygpt.Tensor:
        x_, w_, b_ = split(ts)
        return layer_norm_composed(x_, len(norm), w_, b_)

    assert_twins_agree(fused, composed, x, *extra)


@given(x=arrays(shapes(), low=-5.0, high=5.0))
def test_twins_gelu(x: np.ndarray) -> None:
    assert_twins_agree(lambda t: F.gelu(t, approximate="tanh"), gelu_composed, x)


@given(x=arrays(shapes(), low=-5.0, high=5.0))
def test_twins_gelu_exact(x: np.ndarray) -> None:
    assert_twins_agree(F.gelu, gelu_exact_composed, x)
    check(gelu_exact_composed, x)  # the twin itself is right


@given(data=st.data(), lead=shapes(max_dims=2, max_side=3), n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       bias=st.booleans())
def test_twins_linear(data: st.DataObject, lead: tuple, n_in: int, n_out: int, bias: bool) -> None:
    x, w = data.draw(arrays(lead + (n_in,))), data.draw(arrays((n_out, n_in)))
    if bias:
        b = data.draw(arrays((n_out,)))
        assert_twins_agree(F.linear, linear_composed, x, w, b)
    else:
        assert_twins_agree(F.linear, linear_composed, x, w)


# ----------------------------------------------------------------------------- float32 stays float32


class Probe(Function):
    """Identity whose backward records the dtype of the gradient that reaches it,
    so a float64 gradient inside the graph shows even though leaves cast on accumulation."""

    seen: list = []

    @staticmethod
    def forward(ctx, x: np.ndarray) -> np.ndarray:
        return x

    @staticmethod
    def backward(ctx, g: np.ndarray):
        Probe.seen.append(g.dtype)
        return g


def _f32(shape: tuple, seed: int, low: float = -2.0, high: float = 2.0, min_abs: float = 0.0) -> np.ndarray:
    return _uniform(seed, shape, low, high, min_abs).astype(np.float32)


_IDS = np.array([[0, 2, 2], [1, 0, 2]])
_TARGETS = np.array([[1, -100, 3], [0, 3, 3]])
_MASK = np.array([[True, False, False], [False, True, False]])

# name -> (fn of the probed leaves, input arrays (float32))
DTYPE_CASES: dict[str, tuple[Callable, list]] = {
    "add": (lambda a, b: a + b, [(2, 3), (3,)]),
    "sub": (lambda a, b: a - b, [(2, 3), (1, 3)]),
    "mul": (lambda a, b: a * b, [(2, 3), (2, 1)]),
    "div": (lambda a, b: a / b, [(2, 3), ("pos", (3,))]),
    "add py float": (lambda a: a + 0.1, [(2, 3)]),
    "radd py float": (lambda a: 0.1 + a, [(2, 3)]),
    "sub np.float64": (lambda a: a - np.float64(0.1), [(2, 3)]),
    "rsub np.float64": (lambda a: np.float64(0.1) - a, [(2, 3)]),
    "mul np.float64": (lambda a: a * np.float64(0.3), [(2, 3)]),
    "rmul np.float64": (lambda a: np.float64(0.3) * a, [(2, 3)]),
    "div np.float64": (lambda a: a / np.float64(0.3), [(2, 3)]),
    "rdiv np.float64": (lambda a: np.float64(0.3) / a, [("pos", (2, 3))]),
    "rdiv py float": (lambda a: 1.5 / a, [("pos", (2, 3))]),
    "rmul py int": (lambda a: 3 * a, [(2, 3)]),
    "pow int": (lambda a: a ** 3, [(2, 3)]),
    "pow py float": (lambda a: a ** 1.5, [("pos", (2, 3))]),
    "pow np.float64": (lambda a: a ** np.float64(0.5), [("pos", (2, 3))]),
    "pow tensor": (lambda a, b: a ** b, [("pos", (2, 3)), (3,)]),
    "rpow py float": (lambda a: 2.0 ** a, [(2, 3)]),
    "rpow np.float64": (lambda a: np.float64(2.0) ** a, [(2, 3)]),
    "neg": (lambda a: -a, [(2, 3)]),
    "exp": (lambda a: a.exp(), [(2, 3)]),
    "log": (lambda a: a.log(), [("pos", (2, 3))]),
    "sqrt": (lambda a: a.sqrt(), [("pos", (2, 3))]),
    "tanh": (lambda a: a.tanh(), [(2, 3)]),
    "abs": (lambda a: a.abs(), [(2, 3)]),
    "relu": (lambda a: a.relu(), [(2, 3)]),
    "sum": (lambda a: a.sum(), [(2, 3)]),
    "sum dim": (lambda a: a.sum(1, keepdim=True), [(2, 3)]),
    "mean": (lambda a: a.mean(), [(2, 3)]),
    "mean dims": (lambda a: a.mean((0, 1)), [(2, 3, 2)]),
    "var": (lambda a: a.var(), [(2, 3)]),
    "var biased dim": (lambda a: a.var(0, unbiased=False), [(2, 3)]),
    "max": (lambda a: a.max(), [(2, 3)]),
    "max dim": (lambda a: a.max(1)[0], [(2, 3)]),
    "reshape": (lambda a: a.reshape(3, 2), [(2, 3)]),
    "view": (lambda a: a.view(-1), [(2, 3)]),
    "transpose": (lambda a: a.transpose(0, 1), [(2, 3)]),
    "permute": (lambda a: a.permute(2, 0, 1), [(2, 3, 2)]),
    "contiguous": (lambda a: a.T.contiguous(), [(2, 3)]),
    "unsqueeze": (lambda a: a.unsqueeze(1), [(2, 3)]),
    "squeeze": (lambda a: a.squeeze(), [(2, 1, 3)]),
    "flatten": (lambda a: a.flatten(1), [(2, 3, 2)]),
    "expand": (lambda a: a.expand(4, 2, 3), [(2, 1)]),
    "getitem slice": (lambda a: a[:, ::-1], [(2, 3)]),
    "getitem int array": (lambda a: a[np.array([1, 1, 0])], [(2, 3)]),
    "getitem bool": (lambda a: a[_MASK], [(2, 3)]),
    "masked_fill": (lambda a: a.masked_fill(_MASK, float("-inf")), [(2, 3)]),
    "masked_fill np.float64": (lambda a: a.masked_fill(_MASK, np.float64(2.0)), [(2, 3)]),
    "where": (lambda a, b: numpygpt.where(_MASK, a, b), [(2, 3), (3,)]),
    "where scalar": (lambda a: numpygpt.where(_MASK, a, np.float64(0.0)), [(2, 3)]),
    "matmul": (lambda a, b: a @ b, [(2, 2, 3), (3, 4)]),
    "matmul 1-D": (lambda a, b: a @ b, [(3,), (3,)]),
    "matmul batched": (lambda a, b: a @ b, [(2, 1, 2, 3), (4, 3, 2)]),
    "cat": (lambda a, b: numpygpt.cat([a, b], 1), [(2, 3), (2, 1)]),
    "stack": (lambda a, b: numpygpt.stack([a, b], -1), [(2, 3), (2, 3)]),
    "to float64 and back": (lambda a: (a.double() * 2.0).float(), [(2, 3)]),
    "to same": (lambda a: a.to(np.float32), [(2, 3)]),
    "softmax": (lambda a: F.softmax(a, -1), [(2, 3)]),
    "log_softmax": (lambda a: F.log_softmax(a, 0), [(2, 3)]),
    "gelu": (lambda a: F.gelu(a, approximate="tanh"), [(2, 3)]),
    "gelu exact": (lambda a: F.gelu(a), [(2, 3)]),
    "F.relu": (lambda a: F.relu(a), [(2, 3)]),
    "layer_norm": (lambda a, w, b: F.layer_norm(a, 3, w, b), [(2, 3), (3,), (3,)]),
    "layer_norm 2 dims": (lambda a: F.layer_norm(a, (2, 3)), [(2, 2, 3)]),
    "linear": (lambda a, w, b: F.linear(a, w, b), [(2, 2, 3), (4, 3), (4,)]),
    "linear no bias": (lambda a, w: F.linear(a, w), [(3,), (4, 3)]),
    "embedding": (lambda w: F.embedding(_IDS, w), [(3, 4)]),
    "dropout": (lambda a: F.dropout(a, 0.3), [(4, 5)]),
    "cross_entropy": (lambda a: F.cross_entropy(a, _TARGETS), [(2, 3, 4)]),
    "cross_entropy sum": (lambda a: F.cross_entropy(a, _TARGETS, reduction="sum"), [(2, 3, 4)]),
    "cross_entropy none": (lambda a: F.cross_entropy(a, _TARGETS, reduction="none"), [(2, 3, 4)]),
    "mse_loss": (lambda a, b: F.mse_loss(a, b), [(2, 3), (2, 3)]),
    "mse_loss py target": (lambda a: F.mse_loss(a, 0.5), [()]),
}


@pytest.mark.parametrize("name", list(DTYPE_CASES))
def test_float32_stays_float32(name: str) -> None:
    fn, specs = DTYPE_CASES[name]
    arrays32 = []
    for i, spec in enumerate(specs):
        positive = isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "pos"
        shape = spec[1] if positive else spec
        arrays32.append(_f32(shape, seed=i, low=0.5 if positive else -2.0, high=2.5 if positive else 2.0))
    leaves = [numpygpt.tensor(a, requires_grad=True) for a in arrays32]
    assert all(t.dtype == np.float32 for t in leaves)
    Probe.seen = []
    numpygpt.manual_seed(0)
    out = fn(*[Probe.apply(t) for t in leaves])
    assert out.dtype == np.float32, f"{name}: output is {out.dtype}"
    out.backward(np.ones(out.shape, dtype=np.float32))
    for t in leaves:
        assert t.grad is not None and t.grad.dtype == np.float32, \
            f"{name}: leaf grad is {getattr(t.grad, 'dtype', None)}"
    assert Probe.seen and all(d == np.float32 for d in Probe.seen), \
        f"{name}: gradients inside the graph were {Probe.seen}"
