"""The backward engine itself: graph walking, accumulation, freeing, grad modes,
dtype and seed state, gradcheck's own behaviour, error messages, and `unbroadcast`."""

from __future__ import annotations

import gc
import json
import sys
import weakref

import numpy as np
import pytest
from conftest import arrays, broadcastable_pair, leaf
from hypothesis import given
from hypothesis import strategies as st

import numpygpt
import numpygpt.nn.functional as F
from numpygpt import Function, GradcheckError, gradcheck, nn, unbroadcast

# ----------------------------------------------------------------------------- graph walking


def test_ten_thousand_op_chain_needs_no_recursion() -> None:
    x = leaf(np.array([0.5, -1.0]))
    y = x
    for _ in range(5_000):
        y = y * 1.0001
        y = y + 0.001
    assert len(_graph_nodes(y)) == 10_000
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # a recursive walk would fail long before 10,000
    try:
        y.sum().backward()
    finally:
        sys.setrecursionlimit(limit)
    np.testing.assert_allclose(x.grad, [1.0001**5_000] * 2, rtol=1e-12)


def _graph_nodes(t: numpygpt.Tensor) -> list:
    """Every node (Context) reachable from t, iteratively (parents are nodes or leaf tensors)."""
    seen, stack, nodes = set(), [t.grad_fn], []
    while stack:
        ctx = stack.pop()
        if ctx is None or isinstance(ctx, numpygpt.Tensor) or id(ctx) in seen:
            continue
        seen.add(id(ctx))
        nodes.append(ctx)
        stack.extend(ctx.parents)
    return nodes


def test_gradients_accumulate_across_backward_calls_and_zero_grad_resets() -> None:
    numpygpt.manual_seed(0)
    layer = nn.Linear(3, 2)
    x = numpygpt.randn(4, 3)
    layer(x).sum().backward()
    first = {name: p.grad.numpy().copy() for name, p in layer.named_parameters()}
    layer(x).sum().backward()
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * first[name], rtol=1e-6)
    layer.zero_grad(set_to_none=False)
    for p in layer.parameters():
        np.testing.assert_array_equal(p.grad, np.zeros_like(p.data))
    layer(x).sum().backward()
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, first[name], rtol=1e-6)
    layer.zero_grad()
    assert all(p.grad is None for p in layer.parameters())


def test_leaf_gradient_accumulates_on_a_plain_tensor() -> None:
    x = leaf(np.array([1.0, 2.0]))
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0 + 2.0, 3.0 + 4.0])
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_tensor_used_twice_gets_summed_gradients() -> None:
    x = leaf(np.array([1.0, -2.0, 3.0]))
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)
    x.grad = None
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])
    x.grad = None
    (x * x * x - x / x).sum().backward()
    np.testing.assert_allclose(x.grad, 3 * x.data**2, rtol=1e-14)


def test_diamond_graph() -> None:
    # x -> a -> (b, c) -> d: both paths' gradients reach x through a
    x0 = np.array([[0.3, -0.7], [1.1, 0.2]])
    x = leaf(x0)
    a = x.exp()
    b = a * 2.0
    c = a.tanh()
    d = (b + c).sum()
    d.backward()
    e = np.exp(x0)
    np.testing.assert_allclose(x.grad, e * (2.0 + 1 - np.tanh(e) ** 2), rtol=1e-13)
    assert gradcheck(lambda t: ((t.exp() * 2.0) + t.exp().tanh()) * t, [leaf(x0)])


def test_wide_fan_out_and_reuse_at_several_depths() -> None:
    x0 = np.array([0.5, 1.5])
    x = leaf(x0)
    h = x * 2.0
    total = h
    for k in range(1, 6):
        total = total + h * float(k) + x
    total.sum().backward()
    np.testing.assert_allclose(x.grad, [2.0 * (1 + 15) + 5] * 2)


def test_intermediate_gradients_are_not_kept_unless_retained() -> None:
    x = leaf(np.array([1.0, 2.0]))
    h = x * 3.0
    k = x * 4.0
    k.retain_grad()
    (h * k).sum().backward()
    assert h.grad is None
    np.testing.assert_array_equal(k.grad, h.data)
    assert x.is_leaf and not h.is_leaf and h.grad_fn is not None and x.grad_fn is None


def test_branch_without_grad_gets_none() -> None:
    x = leaf(np.array([1.0, 2.0]))
    c = numpygpt.tensor(np.array([3.0, 4.0]))
    (x * c).sum().backward()
    assert c.grad is None and not c.requires_grad
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


# ----------------------------------------------------------------------------- freeing and retain_graph


def test_second_backward_through_freed_graph_raises() -> None:
    x = leaf(np.array([1.0, 2.0]))
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


@pytest.mark.parametrize("build", [
    lambda x: (x * x).sum(),
    lambda x: (x + 1.0).sum(),  # nothing saved, still refused the second time
    lambda x: F.cross_entropy(x.reshape(2, 3), np.array([0, 2])),
    lambda x: F.layer_norm(x.reshape(2, 3), 3).tanh().sum(),
])
def test_retain_graph_allows_a_second_backward_with_doubled_grads(build) -> None:
    x0 = np.array([0.3, -1.2, 0.8, 2.0, -0.4, 0.1])
    x = leaf(x0)
    y = build(x)
    y.backward(retain_graph=True)
    once = x.grad.numpy().copy()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad, 2 * once, rtol=1e-14)
    y.backward()  # the last one may free
    np.testing.assert_allclose(x.grad, 3 * once, rtol=1e-14)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_two_outputs_sharing_a_subgraph() -> None:
    x0 = np.array([0.2, -0.5, 1.0])
    x = leaf(x0)
    h = x.tanh()
    y1, y2 = (h * h).sum(), h.exp().sum()
    y1.backward(retain_graph=True)  # keeps h's node for y2
    y2.backward()
    t = np.tanh(x0)
    np.testing.assert_allclose(x.grad, (2 * t + np.exp(t)) * (1 - t * t), rtol=1e-14)
    x.grad = None
    y3 = (h * 3.0).sum()
    with pytest.raises(RuntimeError, match="retain_graph"):  # h's node was freed by y2
        y3.backward()


def test_saved_arrays_are_freed_after_backward() -> None:
    x = leaf(np.random.default_rng(0).standard_normal((256, 256)))
    y = F.layer_norm(x, (256,)).sum()
    norm_ctx = y.grad_fn.parents[0]
    assert len(norm_ctx.saved_tensors) > 0
    internal = weakref.ref(norm_ctx.saved_tensors[0])  # x̂: an array only the node holds
    y.backward()
    gc.collect()
    assert internal() is None, "the saved array outlived backward"
    for ctx in _graph_nodes(y):
        assert ctx.saved_tensors == ()
        assert ctx.freed


def test_saved_arrays_survive_with_retain_graph() -> None:
    x = leaf(np.ones((4, 4)))
    y = F.layer_norm(x, (4,)).sum()
    norm_ctx = y.grad_fn.parents[0]
    y.backward(retain_graph=True)
    assert len(norm_ctx.saved_tensors) == 3 and not norm_ctx.freed  # x̂, rstd and the (absent) weight


def test_intermediate_no_backward_needs_is_freed_during_forward() -> None:
    x = leaf(np.ones((512, 256)))
    h = x + 1.0                    # Exp saves its output, not its input
    ref = weakref.ref(h.data)
    y = h.exp().sum()
    del h
    gc.collect()
    assert ref() is None, "the graph kept an input array that no backward formula needs"
    y.backward()
    np.testing.assert_allclose(x.grad, np.exp(2.0))


def test_big_intermediate_of_a_dead_graph_is_collected() -> None:
    x = leaf(np.ones((512, 256)))
    big = x.exp() * 2.0            # a big intermediate tensor
    ref = weakref.ref(big.data)
    loss = big.var()               # Var saves its own centred copy, not big.data
    del big
    loss.backward()
    del loss
    gc.collect()
    assert ref() is None


# ----------------------------------------------------------------------------- grad modes


def test_no_grad_context_manager() -> None:
    x = leaf(np.array([1.0, 2.0]))
    assert numpygpt.is_grad_enabled()
    with numpygpt.no_grad():
        assert not numpygpt.is_grad_enabled()
        y = (x * 2.0).exp().sum()
        assert not y.requires_grad and y.grad_fn is None
        with numpygpt.enable_grad():
            z = (x * 2.0).sum()
            assert z.requires_grad and z.grad_fn is not None
        assert not numpygpt.is_grad_enabled()
    assert numpygpt.is_grad_enabled()
    with pytest.raises(RuntimeError):
        y.backward()
    z.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_no_grad_decorator_and_restore_after_exception() -> None:
    @numpygpt.no_grad()
    def infer(t):
        assert not numpygpt.is_grad_enabled()
        return t * 3.0

    @numpygpt.enable_grad()
    def train_step(t):
        return t * 3.0

    x = leaf(np.array([1.0]))
    out = infer(x)
    assert not out.requires_grad and out.grad_fn is None
    assert numpygpt.is_grad_enabled()
    with numpygpt.no_grad():
        assert train_step(x).requires_grad
    with pytest.raises(KeyError):
        with numpygpt.no_grad():
            raise KeyError("boom")
    assert numpygpt.is_grad_enabled()


def test_no_grad_writes_to_data_are_invisible_to_the_graph() -> None:
    p = nn.Parameter(np.array([1.0, 2.0]))
    with numpygpt.no_grad():
        p.data -= 0.5
    assert p.is_leaf and p.requires_grad
    (p * p).sum().backward()
    np.testing.assert_array_equal(p.grad, [1.0, 3.0])


# ----------------------------------------------------------------------------- dtype and seeds


def test_set_default_dtype_float64_then_back() -> None:
    assert numpygpt.get_default_dtype() == np.float32
    assert numpygpt.tensor(1.5).dtype == np.float32
    numpygpt.set_default_dtype(np.float64)
    try:
        assert numpygpt.get_default_dtype() == np.float64
        assert numpygpt.tensor([1.5, 2.0]).dtype == np.float64
        assert numpygpt.zeros(2).dtype == numpygpt.ones(2).dtype == numpygpt.randn(2).dtype == np.float64
        assert numpygpt.rand(2).dtype == np.float64
        assert nn.Linear(2, 3).weight.dtype == np.float64
        # ndarrays keep their own dtype whatever the default
        assert numpygpt.tensor(np.zeros(2, dtype=np.float32)).dtype == np.float32
    finally:
        numpygpt.set_default_dtype("float32")
    assert numpygpt.tensor(1.5).dtype == np.float32
    assert numpygpt.randn(2).dtype == np.float32
    with pytest.raises(TypeError, match="float32 or float64"):
        numpygpt.set_default_dtype(np.int64)


def test_manual_seed_reproducibility() -> None:
    numpygpt.manual_seed(1234)
    a, b = numpygpt.randn(3, 4), numpygpt.rand(5)
    numpygpt.manual_seed(1234)
    np.testing.assert_array_equal(numpygpt.randn(3, 4).data, a.data)
    np.testing.assert_array_equal(numpygpt.rand(5).data, b.data)
    numpygpt.manual_seed(1235)
    assert not np.array_equal(numpygpt.randn(3, 4).data, a.data)
    assert np.all((b.data >= 0) & (b.data < 1))


def test_manual_seed_fixes_dropout_masks() -> None:
    x = numpygpt.ones(50, 40)
    numpygpt.manual_seed(7)
    m1 = F.dropout(x, 0.3).data
    m2 = F.dropout(x, 0.3).data
    numpygpt.manual_seed(7)
    np.testing.assert_array_equal(F.dropout(x, 0.3).data, m1)
    np.testing.assert_array_equal(F.dropout(x, 0.3).data, m2)
    assert not np.array_equal(m1, m2)
    assert set(np.unique(m1)) <= {0.0, np.float32(1 / 0.7)}
    assert 0.2 < (m1 == 0).mean() < 0.4


def test_rng_state_round_trips_through_json() -> None:
    numpygpt.manual_seed(3)
    numpygpt.randn(7)
    state = json.loads(json.dumps(numpygpt.get_rng_state()))
    after = numpygpt.randn(4).data
    numpygpt.set_rng_state(state)
    np.testing.assert_array_equal(numpygpt.randn(4).data, after)
    with pytest.raises(ValueError):
        numpygpt.manual_seed(-1)


# ----------------------------------------------------------------------------- gradcheck itself


class WrongSquare(Function):
    """out = x², with a backward that is right everywhere but at element (1, 2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        dx = 2 * x * g
        dx[1, 2] += 0.5
        return dx


class RightSquare(WrongSquare):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


def test_gradcheck_passes_a_correct_function() -> None:
    x = leaf(np.random.default_rng(0).standard_normal((3, 4)))
    assert gradcheck(lambda t: RightSquare.apply(t).tanh(), [x]) is True
    assert gradcheck(lambda t: RightSquare.apply(t), x) is True
    assert x.grad is None  # gradcheck leaves the inputs' grads as they were


def test_gradcheck_names_the_wrong_element() -> None:
    x = leaf(np.random.default_rng(0).standard_normal((3, 4)))
    with pytest.raises(GradcheckError, match=r"element \(1, 2\)") as info:
        gradcheck(lambda t: RightSquare.apply(t) + WrongSquare.apply(t), [x])
    assert "input 0" in str(info.value)
    assert isinstance(info.value, RuntimeError)
    np.testing.assert_array_equal(x.data, np.random.default_rng(0).standard_normal((3, 4)))  # restored


def test_gradcheck_checks_every_input_and_skips_constants() -> None:
    a = leaf(np.ones((2, 3)))
    b = leaf(np.ones((2, 3)))
    with pytest.raises(GradcheckError, match="input 2"):
        gradcheck(lambda s, k, t: s * k + WrongSquare.apply(t), [a, 2.0, b])
    with pytest.raises(ValueError, match="requires grad"):
        gradcheck(lambda t: t * 2.0, [numpygpt.tensor(np.ones(2))])


def test_gradcheck_upcasts_float32_inputs() -> None:
    x = numpygpt.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    assert gradcheck(lambda t: (t * t).sum(), [x])


def test_gradcheck_rejects_non_float64_outputs_and_handles_non_contiguous_inputs() -> None:
    x = leaf(np.ones(3))
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t.float(), [x])
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t.data, [x])
    y = numpygpt.Tensor(np.arange(6.0).reshape(2, 3).T, requires_grad=True)  # a transposed view
    assert not y.data.flags.c_contiguous
    assert gradcheck(lambda t: (t * t).sum(0), [y])


def test_tensor_wraps_and_tensor_function_copies() -> None:
    a = np.zeros(3)
    assert numpygpt.Tensor(a).data is a
    t = numpygpt.tensor(a)
    a[0] = 1.0
    assert t.data[0] == 0.0


# ----------------------------------------------------------------------------- error messages


@pytest.mark.parametrize("op, name", [
    (lambda a, b: a + b, "add"), (lambda a, b: a - b, "sub"),
    (lambda a, b: a * b, "mul"), (lambda a, b: a / b, "div"),
])
def test_non_broadcastable_binary_ops_name_op_and_shapes(op, name) -> None:
    a, b = leaf(np.ones((2, 3))), leaf(np.ones((4,)))
    with pytest.raises(ValueError, match=name) as info:
        op(a, b)
    assert "(2, 3)" in str(info.value) and "(4,)" in str(info.value)
    with pytest.raises(ValueError, match=name) as info:
        op(a, np.ones((2, 2)))  # an ndarray operand
    assert "(2, 3)" in str(info.value) and "(2, 2)" in str(info.value)
    with pytest.raises(ValueError, match=name) as info:
        op(np.ones((5, 1, 2)), a)  # reflected
    assert "(5, 1, 2)" in str(info.value) and "(2, 3)" in str(info.value)


def test_matmul_inner_dim_mismatch() -> None:
    for sa, sb in [((2, 3), (4, 5)), ((3,), (4,)), ((2, 2, 3), (2,)), ((7, 2, 3), (6, 3, 1))]:
        with pytest.raises(ValueError, match="matmul") as info:
            leaf(np.ones(sa)) @ leaf(np.ones(sb))
        assert str(sa) in str(info.value) and str(sb) in str(info.value)
    with pytest.raises(ValueError, match="matmul"):
        leaf(np.ones(())) @ leaf(np.ones(3))


def test_linear_mismatch() -> None:
    with pytest.raises(ValueError, match="linear") as info:
        F.linear(leaf(np.ones((2, 5))), leaf(np.ones((3, 4))))
    assert "2, 5" in str(info.value) and "3, 4" in str(info.value)  # a tuple or a torch.Size
    with pytest.raises(ValueError, match="bias"):
        F.linear(leaf(np.ones((2, 4))), leaf(np.ones((3, 4))), leaf(np.ones(2)))


def test_reshape_to_wrong_size() -> None:
    x = leaf(np.ones((2, 3)))
    for target in [(4,), (5, -1), (2, 2, 2)]:
        with pytest.raises(ValueError, match="reshape") as info:
            x.reshape(target)
        assert "2, 3" in str(info.value) and str(target) in str(info.value)
    with pytest.raises(ValueError, match="reshape"):
        x.view(7)


def test_backward_errors() -> None:
    x = leaf(np.ones((2, 3)))
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"2, 3"):
        y.backward()
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(3))
    y.backward(np.ones((2, 3)))
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0))
    with pytest.raises(RuntimeError, match="require"):
        numpygpt.tensor([1.0]).backward()
    one = leaf(np.ones((1, 1)))
    (one * 3.0).backward()  # one element: grad may be omitted
    np.testing.assert_array_equal(one.grad, [[3.0]])


def test_requires_grad_on_int_tensors_raises() -> None:
    with pytest.raises(TypeError, match="floating"):
        numpygpt.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="floating"):
        numpygpt.Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="floating"):
        numpygpt.arange(3).requires_grad_()
    with pytest.raises(TypeError):
        numpygpt.tensor([True, False], requires_grad=True)
    with pytest.raises(TypeError):
        nn.Parameter(np.arange(3))


# ----------------------------------------------------------------------------- detach and conversion


def test_detach_cuts_the_graph() -> None:
    x = leaf(np.array([1.0, 2.0]))
    y = x * 2.0
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    assert np.shares_memory(d.data, y.data)
    (d * x).sum().backward()  # d is a constant: only the direct path to x counts
    np.testing.assert_array_equal(x.grad, d.data)
    with pytest.raises(RuntimeError):
        (d * 3.0).sum().backward()


def test_item_numpy_and_repr() -> None:
    x = numpygpt.tensor([[1.5, -2.0]], requires_grad=True)
    assert x.sum().item() == -0.5 and isinstance(x.sum().item(), float)
    assert isinstance(numpygpt.tensor(3).item(), int)
    with pytest.raises(ValueError, match="one element"):
        x.item()
    arr = x.numpy()
    assert isinstance(arr, np.ndarray) and arr is x.data
    assert np.asarray(x).shape == (1, 2)
    r = repr(x)
    assert r.startswith("tensor(") and "1.5" in r and "-2." in r and "requires_grad=True" in r
    assert "grad_fn=<MulBackward0>" in repr(x * 2.0)
    assert "dtype=torch.float64" in repr(numpygpt.tensor(np.array([1.0])))
    assert "requires_grad" not in repr(numpygpt.tensor([1.0]))
    assert "Parameter" in repr(nn.Parameter(np.zeros(2, dtype=np.float32)))


# ----------------------------------------------------------------------------- unbroadcast


def test_unbroadcast_examples() -> None:
    g = np.arange(24.0).reshape(2, 3, 4)
    assert unbroadcast(g, (2, 3, 4)) is g
    np.testing.assert_array_equal(unbroadcast(g, (3, 4)), g.sum(0))
    np.testing.assert_array_equal(unbroadcast(g, (4,)), g.sum((0, 1)))
    np.testing.assert_array_equal(unbroadcast(g, (1, 3, 1)), g.sum((0, 2), keepdims=True))
    np.testing.assert_array_equal(unbroadcast(g, (3, 1)), g.sum(0).sum(1, keepdims=True))
    np.testing.assert_array_equal(unbroadcast(g, ()), g.sum())
    assert unbroadcast(g, ()).shape == ()
    assert unbroadcast(np.ones((2, 3), dtype=np.float32), (3,)).dtype == np.float32


def test_unbroadcast_rejects_shapes_that_did_not_broadcast() -> None:
    g = np.ones((2, 3))
    for bad in [(2,), (4, 2, 3), (3, 3), (2, 1, 3)]:
        with pytest.raises(ValueError, match="unbroadcast"):
            unbroadcast(g, bad)


@given(data=st.data(), pair=broadcastable_pair())
def test_unbroadcast_is_the_adjoint_of_broadcasting(data: st.DataObject, pair: tuple) -> None:
    # <unbroadcast(g, s), v> == <g, broadcast_to(v, g.shape)> for every v of shape s
    small, other = pair
    full = np.broadcast_shapes(small, other)
    g = data.draw(arrays(full))
    v = data.draw(arrays(small))
    u = unbroadcast(g, small)
    assert u.shape == small
    lhs = float(np.sum(u * v))
    rhs = float(np.sum(g * np.broadcast_to(v, full)))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(rhs), float(np.abs(g).sum()))


def test_each_leaf_owns_its_grad_array() -> None:
    """The engine hands a fresh gradient array to a leaf without copying it, but never
    one that another leaf, the caller's seed gradient or a view also refers to."""
    a = numpygpt.tensor(np.ones(3), requires_grad=True)
    b = numpygpt.tensor(np.ones(3), requires_grad=True)
    seed = np.arange(3.0)
    (a + b).backward(seed)  # Add gives the same array to both inputs
    assert a.grad is not b.grad and a.grad is not seed
    a.grad *= 10  # in place, as clip_grad_norm_ does
    np.testing.assert_array_equal(b.grad, seed)
    np.testing.assert_array_equal(seed, np.arange(3.0))

    w = numpygpt.tensor(np.ones((2, 3)), requires_grad=True)
    (w * 2.0).sum().backward()  # Sum's gradient is a read-only broadcast view
    assert w.grad.data.flags.writeable and w.grad.data.base is None
    w.grad += 1  # accumulates in place from now on
    (w * 2.0).sum().backward()
    np.testing.assert_array_equal(w.grad, np.full((2, 3), 5.0))


def test_kept_gradients_are_the_backwards_own_arrays() -> None:
    """A leaf keeps the fresh array its backward made, without a copy (a GPT block's weight
    gradients of several MiB are not copied every step); a view gets a copy of its own; and
    a second backward accumulates into the kept array in place."""
    x = np.linspace(-1.0, 1.0, 512 * 300, dtype=np.float32).reshape(512, 300)
    w = numpygpt.tensor(x, requires_grad=True)
    (w * 3.0).sum().backward()  # Sum's gradient is a broadcast view, Mul's a fresh array
    g = w.grad.data
    assert g.base is None and g.flags.writeable and g.flags.c_contiguous
    assert g.dtype == np.float32 and g.shape == x.shape
    np.testing.assert_array_equal(g, np.full_like(x, 3.0))
    b = numpygpt.tensor(np.ones(768, dtype=np.float32), requires_grad=True)
    (w * b[:300]).sum().backward()  # accumulates into w.grad in place
    assert w.grad.data is g
    np.testing.assert_array_equal(g, np.full_like(x, 4.0))
    np.testing.assert_array_equal(b.grad.data[:300], x.sum(axis=0))
    np.testing.assert_array_equal(b.grad.data[300:], 0.0)
    v = numpygpt.tensor(np.ones((3, 4)), requires_grad=True)
    v.sum().backward()  # the gradient is a broadcast (read-only) view of one number
    assert v.grad.data.flags.writeable and v.grad.data.flags.c_contiguous
    v.sum().backward()
    np.testing.assert_array_equal(v.grad.data, np.full((3, 4), 2.0))


def test_gradcheck_accepts_non_leaf_and_float32_inputs() -> None:
    """x.double() is the result of an op: gradcheck checks it as a float64 leaf of its own."""
    x = numpygpt.tensor([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)
    w = numpygpt.tensor([[0.5], [-1.0]], requires_grad=True)
    assert numpygpt.gradcheck(lambda x, w: ((x @ w).tanh() ** 2).mean(), [x.double(), w.double()])
    assert numpygpt.gradcheck(lambda x, w: ((x @ w).tanh() ** 2).mean(), [x, w])
    assert x.dtype == np.float32 and x.grad is None  # the caller's tensors are untouched


def test_zero_dim_float_tensor_takes_the_other_operands_dtype() -> None:
    """As in PyTorch: a 0-d float64 tensor does not turn a float32 tensor into float64
    (and its gradient comes back in its own dtype)."""
    x = numpygpt.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    s = numpygpt.tensor(np.float64(2.0), requires_grad=True)
    for y in (x * s, s * x, x + s, x / s, x - s):
        assert y.dtype == np.float32
    (x * s).sum().backward()
    assert x.grad.dtype == np.float32 and s.grad.dtype == np.float64
    np.testing.assert_allclose(s.grad, 3.0)
    # two dimensioned tensors still promote, as in PyTorch
    assert (x + numpygpt.tensor(np.ones(3))).dtype == np.float64


def test_no_grad_decorates_with_or_without_parentheses() -> None:
    x = numpygpt.tensor([1.0], requires_grad=True)

    @numpygpt.no_grad
    def bare(t):
        return t * 2

    @numpygpt.no_grad()
    def called(t):
        return t * 2

    assert not bare(x).requires_grad and not called(x).requires_grad
    assert (x * 2).requires_grad  # the mode is back on afterwards


@pytest.mark.parametrize("data, exc, message", [
    ("abc", TypeError, "tensors hold numbers"),
    ([[1.0, 2.0], [3.0]], ValueError, "unequal lengths"),
])
def test_tensor_rejects_data_that_is_not_numbers(data, exc, message) -> None:
    with pytest.raises(exc, match=message):
        numpygpt.tensor(data)


def test_masked_fill_with_a_mask_of_another_shape() -> None:
    with pytest.raises(ValueError, match=r"masked_fill: mask of shape \(4, 4\) does not broadcast to \(2, 3\)"):
        numpygpt.ones(2, 3).masked_fill(np.ones((4, 4), dtype=bool), 0.0)
