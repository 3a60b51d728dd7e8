"""The PyTorch names a learner reaches for, on numpygpt's engine.

Three levels, as for the other ops: each new differentiable method against
finite differences in float64 over hypothesis-drawn shapes; each against
PyTorch, values and gradients, in float64 and float32 (skipped without torch);
and PyTorch's edge-case semantics (indexing shapes, type promotion, nan
variances, zero gradients of pow, the exception classes) against torch.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from conftest import arrays, leaf, shapes
from hypothesis import assume, given
from hypothesis import strategies as st

import numpygpt
import numpygpt.functions as T
from numpygpt import gradcheck
from numpygpt._checks import ShapeError

try:  # the parity tests need torch; the rest run without it
    import torch
    from test_torch_parity_ops import check as parity
except ImportError:
    torch = None

DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]


def check(fn: Callable[..., numpygpt.Tensor], *arrays_: np.ndarray) -> None:
    assert gradcheck(fn, [leaf(a, dtype=np.float64) for a in arrays_]) is True


@st.composite
def shape_and_dim(draw: Any, min_dims: int = 1) -> tuple[tuple[int, ...], int]:
    shape = draw(shapes(min_dims=min_dims))
    return shape, draw(st.integers(-len(shape), len(shape) - 1))


# One entry per new op: (numpygpt fn, torch fn, array options, needs a dim). The torch fn takes
# torch tensors; `dim` is bound by the test when needed.
OPS: dict[str, tuple[Callable, Callable, dict, bool]] = {
    "sin": (lambda t, d: t.sin(), lambda t, d: t.sin(), {}, False),
    "cos": (lambda t, d: t.cos(), lambda t, d: t.cos(), {}, False),
    "sigmoid": (lambda t, d: t.sigmoid(), lambda t, d: t.sigmoid(), {"low": -6.0, "high": 6.0}, False),
    "square": (lambda t, d: t.square(), lambda t, d: t.square(), {}, False),
    "rsqrt": (lambda t, d: t.rsqrt(), lambda t, d: t.rsqrt(), {"low": 0.3, "high": 3.0}, False),
    "clamp": (lambda t, d: t.clamp(-0.7, 0.9), lambda t, d: t.clamp(-0.7, 0.9), {"distinct": True}, False),
    "clip max": (lambda t, d: t.clip(max=0.3), lambda t, d: t.clip(max=0.3), {"distinct": True}, False),
    "min all": (lambda t, d: t.min(), lambda t, d: t.min(), {"distinct": True}, False),
    "min dim": (lambda t, d: t.min(d, keepdim=True)[0], lambda t, d: t.min(d, keepdim=True)[0],
                {"distinct": True}, True),
    "std": (lambda t, d: t.std(d), lambda t, d: t.std(d), {}, True),
    "std biased": (lambda t, d: t.std(unbiased=False), lambda t, d: t.std(unbiased=False), {}, False),
    "cumsum": (lambda t, d: t.cumsum(d), lambda t, d: t.cumsum(d), {}, True),
    "logsumexp": (lambda t, d: t.logsumexp(d), lambda t, d: t.logsumexp(d), {}, True),
    "flip": (lambda t, d: t.flip(d), lambda t, d: t.flip(d), {}, True),
    "split": (lambda t, d: t.split(2, d)[-1] * 2 + t.split(2, d)[0].sum(),
              lambda t, d: t.split(2, d)[-1] * 2 + t.split(2, d)[0].sum(), {}, True),
    "chunk": (lambda t, d: t.chunk(3, d)[0] * 3, lambda t, d: t.chunk(3, d)[0] * 3, {}, True),
    "topk": (lambda t, d: t.topk(1, d).values, lambda t, d: t.topk(1, d).values, {"distinct": True}, True),
    "repeat": (lambda t, d: t.repeat(2, *([1] * (t.ndim - 1)), 3) if t.ndim else t.repeat(2),
               lambda t, d: t.repeat(2, *([1] * (t.ndim - 1)), 3) if t.ndim else t.repeat(2), {}, False),
    "clone": (lambda t, d: t.clone() * 2, lambda t, d: t.clone() * 2, {}, False),
    "add alpha": (lambda t, d: t.add(t * t, alpha=-1.5), lambda t, d: t.add(t * t, alpha=-1.5), {}, False),
    "sub alpha": (lambda t, d: t.sub(t.exp(), alpha=0.5), lambda t, d: t.sub(t.exp(), alpha=0.5), {}, False),
    "mul div neg": (lambda t, d: t.mul(3.0).div(t.exp()).neg(), lambda t, d: t.mul(3.0).div(t.exp()).neg(), {}, False),
}


@pytest.mark.parametrize("name", list(OPS))
@given(data=st.data())
def test_finite_differences(name: str, data: Any) -> None:
    fn, _, options, _ = OPS[name]
    shape, dim = data.draw(shape_and_dim(min_dims=1))
    assume(not name.startswith("std") or shape[dim] > 1)  # a variance of one value is nan, and √ of 0 has no slope
    check(lambda t: fn(t, dim), data.draw(arrays(shape, **options)))


@given(shape=shapes(min_dims=2, max_dims=2), data=st.data())
def test_finite_differences_matrix_ops(shape: tuple[int, ...], data: Any) -> None:
    x = data.draw(arrays(shape))
    check(lambda t: t.t() * 2, x)
    check(lambda t: t.mT.exp(), x)
    check(lambda t: t.matmul(t.t()), x)
    check(lambda t: T.triu(t, 1) + T.tril(t), x)
    index = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, shape[1], size=(shape[0], 5))
    check(lambda t: t.gather(1, index), x)  # repeated picks: their gradients add up
    rows = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, shape[0], size=(3, shape[1]))
    check(lambda t: t.gather(0, rows), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(OPS))
@given(data=st.data())
def test_torch_parity(name: str, dtype: Any, data: Any) -> None:
    if torch is None:
        pytest.skip("torch is not installed")
    fn, torch_fn, options, _ = OPS[name]
    shape, dim = data.draw(shape_and_dim(min_dims=1))
    assume(not name.startswith("std") or shape[dim] > 1)
    parity(lambda t: fn(t, dim), lambda t: torch_fn(t, dim), [data.draw(arrays(shape, **options))], dtype, sums=True)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes(min_dims=2, max_dims=3), data=st.data())
def test_torch_parity_gather_and_transposes(dtype: Any, shape: tuple[int, ...], data: Any) -> None:
    if torch is None:
        pytest.skip("torch is not installed")
    x = data.draw(arrays(shape))
    index = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, shape[-1], size=shape[:-1] + (4,))
    parity(lambda t: t.gather(-1, index), lambda t: t.gather(-1, torch.from_numpy(index)), [x], dtype, sums=True)
    parity(lambda t: t.mT, lambda t: t.mT, [x], dtype)
    parity(lambda t: T.triu(t, -1), lambda t: torch.triu(t, -1), [x], dtype)
    parity(lambda t: T.tril(t, 1), lambda t: torch.tril(t, 1), [x], dtype)


# ----------------------------------------------------------------------------- the namespace


def test_namespace_functions_match_the_methods() -> None:
    x = numpygpt.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])
    for name in ["tanh", "sigmoid", "exp", "abs"]:
        np.testing.assert_array_equal(getattr(T, name)(x).data, getattr(x, name)().data)
    np.testing.assert_array_equal(T.softmax(x, -1).data, x.softmax(-1).data)
    np.testing.assert_array_equal(T.sqrt(x.abs()).data, x.abs().sqrt().data)
    assert T.argmax(x).item() == 4 and T.argmin(x, dim=1).tolist() == [1, 2]
    assert T.max(x).item() == 4.0 and T.min(x, 0).indices.tolist() == [1, 0, 1]
    assert T.sum(x, 1).shape == (2,) and T.mean(x, dim=0, keepdim=True).shape == (1, 3)
    assert T.pow(2, numpygpt.tensor([1.0, 3.0])).tolist() == [2.0, 8.0] and T.pow(x, 2).shape == (2, 3)
    assert T.pi == np.pi and T.inf == float("inf") and np.isnan(T.nan)
    assert T.long is np.int64 and T.bool is np.bool_ and T.float32 is np.float32
    assert numpygpt.tensor([1, 0], dtype=T.bool).dtype == np.bool_


def test_grad_modes() -> None:
    with T.inference_mode():
        assert not numpygpt.is_grad_enabled()
    assert numpygpt.is_grad_enabled()
    T.set_grad_enabled(False)
    assert not numpygpt.is_grad_enabled()
    T.set_grad_enabled(True)
    with T.set_grad_enabled(False):
        assert not (leaf(np.ones(2)) * 2).requires_grad
    assert numpygpt.is_grad_enabled()

    @T.inference_mode
    def bare() -> bool:
        return numpygpt.is_grad_enabled()

    assert bare() is False and numpygpt.is_grad_enabled()


def test_devices_are_the_cpu() -> None:
    x = numpygpt.arange(4, device="cpu")
    assert x.device == "cpu" and x.to("cpu") is x and x.dtype == np.int64
    assert numpygpt.zeros(2, device=x.device).shape == (2,)
    assert numpygpt.ones_like(x, device="cpu").dtype == np.int64 and numpygpt.eye(3, device="cpu").dtype == np.float32
    assert x.to("cpu", np.float64).dtype == np.float64 and x.to(dtype=T.float32).dtype == np.float32
    with pytest.raises(RuntimeError, match="CPU"):
        numpygpt.randn(2, device="cuda")
    with pytest.raises(RuntimeError, match="CPU"):
        x.to("cuda")


def test_factories_against_torch() -> None:
    pytest.importorskip("torch")
    np.testing.assert_allclose(numpygpt.linspace(-3.3, 7.1, 101).data, torch.linspace(-3.3, 7.1, 101).numpy(), rtol=0, atol=1e-6)
    assert numpygpt.linspace(0, 1, 5).dtype == np.float32 and numpygpt.linspace(2, 3, 1).tolist() == [2.0]
    np.testing.assert_array_equal(numpygpt.eye(3, 4).data, torch.eye(3, 4).numpy())
    np.testing.assert_array_equal(T.triu(numpygpt.ones(4, 4), 1).data, torch.triu(torch.ones(4, 4), 1).numpy())
    assert numpygpt.arange(0, 1, 0.25).dtype == np.float32 == torch.arange(0, 1, 0.25).numpy().dtype
    assert numpygpt.full_like(numpygpt.zeros(2), 7).tolist() == [7.0, 7.0] and numpygpt.empty(2, 3).shape == (2, 3)


# ----------------------------------------------------------------------------- edge cases, against torch


def test_integer_array_indexing_shapes() -> None:
    pytest.importorskip("torch")
    x = np.arange(2 * 3 * 4.0).reshape(2, 3, 4)
    for index in [(0, slice(None), [0, 1]), (slice(None), 1, [0, 2, 3]), ([1, 0], slice(None), 2),
                  (0, [0, 2], [1, 3]), (Ellipsis, 0, [1, 1]), (None, 1, slice(None), [0])]:
        got = numpygpt.tensor(x)[index]
        want = torch.from_numpy(x)[index]
        assert got.shape == tuple(want.shape), index
        np.testing.assert_array_equal(got.data, want.numpy())
    t = leaf(x)
    t[0, :, [0, 1, 1]].sum().backward()
    want = torch.from_numpy(x).requires_grad_()
    want[0, :, [0, 1, 1]].sum().backward()
    np.testing.assert_array_equal(t.grad, want.grad.numpy())


def test_type_promotion() -> None:
    pytest.importorskip("torch")
    cases = [lambda m: m.tensor(1) + 0.5, lambda m: m.tensor([3, 4]) / 2, lambda m: m.tensor(2).exp(),
             lambda m: m.tensor([3, 4]) * m.tensor([0.5, 1.0]), lambda m: m.tensor([1, 2]) ** 0.5,
             lambda m: m.tensor([1, 2]).sigmoid(), lambda m: m.tensor([1, 2]) + 1,
             lambda m: m.where(m.tensor([True, False]), m.tensor([1, 2]), 0.5)]
    for case in cases:
        got, want = case(numpygpt), case(torch)
        assert got.dtype == want.numpy().dtype, (got, want)
        np.testing.assert_allclose(got.data, want.numpy(), rtol=1e-6)


def test_stack_dim_out_of_range_and_shape_errors() -> None:
    pytest.importorskip("torch")
    with pytest.raises(IndexError):
        torch.stack([torch.zeros(2)], dim=77)
    with pytest.raises(IndexError):
        numpygpt.stack([numpygpt.zeros(2)], dim=77)
    assert numpygpt.stack([numpygpt.zeros(2)], dim=-2).shape == (1, 2)
    for fn in [lambda m: m.zeros(2, 3) + m.zeros(4), lambda m: m.zeros(2, 3) @ m.zeros(4, 5),
               lambda m: m.zeros(2, 3).reshape(4), lambda m: m.cat([m.zeros(2, 3), m.zeros(2, 4)])]:
        with pytest.raises(RuntimeError):
            fn(torch)
        with pytest.raises(RuntimeError) as info:
            fn(numpygpt)
        assert isinstance(info.value, ValueError) and isinstance(info.value, ShapeError)


def test_matmul_backward_on_size_zero_dims() -> None:
    pytest.importorskip("torch")
    for sa, sb in [((8, 8), (8, 0)), ((0, 8), (8, 3)), ((2, 0, 4), (4, 5)), ((3, 0), (0, 2))]:
        a, b = leaf(np.ones(sa)), leaf(np.ones(sb))
        (a @ b).sum().backward()
        ta, tb = (torch.ones(s, dtype=torch.float64, requires_grad=True) for s in (sa, sb))
        (ta @ tb).sum().backward()
        np.testing.assert_array_equal(a.grad, ta.grad.numpy())
        np.testing.assert_array_equal(b.grad, tb.grad.numpy())


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch warns that the degrees of freedom are <= 0
def test_var_with_no_degrees_of_freedom_is_nan() -> None:
    pytest.importorskip("torch")
    for shape, dim in [((1,), None), ((2, 1), 1), ((2, 0), 1), ((3, 1, 2), (1,))]:
        x, t = leaf(np.ones(shape)), torch.ones(shape, dtype=torch.float64, requires_grad=True)
        got, want = x.var(dim=dim), t.var(dim=dim)
        np.testing.assert_array_equal(got.data, want.detach().numpy())  # nan where torch gives nan
        if got.data.size:
            got.sum().backward()
            want.sum().backward()
            np.testing.assert_array_equal(x.grad, t.grad.numpy())
    assert np.isnan(numpygpt.zeros(2, 0).var(dim=1).data).all()
    np.testing.assert_array_equal(numpygpt.tensor([1.0, 2.0]).var(correction=0).item(), 0.25)


def test_pow_gradients_at_zero() -> None:
    pytest.importorskip("torch")
    base = np.array([0.0, 0.0, 0.0, 2.0])
    exponent = np.array([0.0, 2.0, 0.5, 0.0])
    cases = [lambda a, b, m: a ** 0, lambda a, b, m: a ** b, lambda a, b, m: 0 ** b, lambda a, b, m: 0.0 ** (b + 1)]
    for case in cases:
        a, b = leaf(base), leaf(exponent)
        ta, tb = (torch.tensor(v, requires_grad=True) for v in (base, exponent))
        case(a, b, numpygpt).sum().backward()
        case(ta, tb, torch).sum().backward()
        for got, want in [(a.grad, ta.grad), (b.grad, tb.grad)]:
            np.testing.assert_array_equal(np.zeros_like(base) if got is None else got,
                                          np.zeros_like(base) if want is None else want.numpy())


def test_clamp_gradient_at_and_beyond_the_bounds() -> None:
    pytest.importorskip("torch")
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    a, t = leaf(x), torch.tensor(x, requires_grad=True)
    a.clamp(-1, 1).sum().backward()
    t.clamp(-1, 1).sum().backward()
    np.testing.assert_array_equal(a.grad, t.grad.numpy())


def test_topk_split_chunk_repeat_against_torch() -> None:
    pytest.importorskip("torch")
    x = np.random.default_rng(0).permutation(24).reshape(2, 3, 4).astype(np.float64)
    n, t = numpygpt.tensor(x), torch.from_numpy(x)
    for k, dim, largest in [(2, -1, True), (3, 1, False), (1, 0, True)]:
        got, want = n.topk(k, dim, largest), t.topk(k, dim, largest)
        np.testing.assert_array_equal(got.values.data, want.values.numpy())
        np.testing.assert_array_equal(got.indices.data, want.indices.numpy())
    for args in [(2, 2), (3, -1), ([1, 2], 1)]:
        assert [p.shape for p in n.split(*args)] == [tuple(p.shape) for p in t.split(*args)]
    for args in [(3, 2), (2, 1), (5, 0)]:
        assert [p.shape for p in n.chunk(*args)] == [tuple(p.shape) for p in t.chunk(*args)]
    np.testing.assert_array_equal(n.repeat(2, 1, 1, 2).data, t.repeat(2, 1, 1, 2).numpy())
    np.testing.assert_array_equal(n.cumsum(1).data, t.cumsum(1).numpy())
    with pytest.raises(RuntimeError):
        n.topk(5, 1)
    with pytest.raises(RuntimeError):
        n.split([1, 1], 1)


def test_logsumexp_of_an_all_minus_inf_slice_passes_on_zero() -> None:
    x = numpygpt.tensor([[-np.inf, -np.inf], [1.0, 2.0]], requires_grad=True)
    y = x.logsumexp(dim=1)
    y.sum().backward()
    assert y.numpy()[0] == -np.inf
    np.testing.assert_array_equal(x.grad[0], [0.0, 0.0])
    np.testing.assert_allclose(x.grad[1], np.exp([1.0, 2.0]) / np.exp([1.0, 2.0]).sum(), rtol=1e-6)
