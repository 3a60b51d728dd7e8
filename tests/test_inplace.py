"""In-place ops, `.grad` as a Tensor, the device, and elementwise max/min, with PyTorch's semantics.

Each scenario is written once against a module `T` (numpygpt or torch) with
PyTorch's names, as a learner's code would be; it runs on numpygpt always and
is compared number by number with PyTorch where PyTorch is installed.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from conftest import arrays, broadcastable_pair, leaf, seeds, shapes
from hypothesis import assume, given

import numpygpt
from numpygpt import gradcheck

try:
    import torch
except ImportError:  # the numpygpt half of each test still runs
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

X = np.array([[0.5, -1.25, 2.0], [1.5, 0.75, -0.5]])
W = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]])


def _outputs(*tensors: Any) -> list[np.ndarray]:
    """Values (or gradients) as float64 arrays, None kept."""
    return [None if t is None else np.asarray(t.detach().numpy() if hasattr(t, "detach") else t, dtype=np.float64)
            for t in tensors]


def both(scenario: Callable[[Any], tuple]) -> list[np.ndarray]:
    """Run `scenario` on numpygpt, and on torch when installed; the outputs must agree."""
    ours = _outputs(*scenario(numpygpt))
    if torch is not None:
        theirs = _outputs(*scenario(torch))
        assert len(ours) == len(theirs)
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert (a is None) == (b is None), f"output {i}: {a} vs {b}"
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"output {i}")
    return ours


# ----------------------------------------------------------------------------- in-place ops on an intermediate

INPLACE = {
    "add_": lambda T, y, o: y.add_(o, alpha=2),
    "sub_": lambda T, y, o: y.sub_(o),
    "mul_": lambda T, y, o: y.mul_(o),
    "div_": lambda T, y, o: y.div_(o + 4),
    "pow_": lambda T, y, o: y.abs_().pow_(1.5),
    "neg_": lambda T, y, o: y.neg_(),
    "exp_": lambda T, y, o: y.exp_(),
    "log_": lambda T, y, o: y.abs_().log_(),
    "sqrt_": lambda T, y, o: y.abs_().sqrt_(),
    "rsqrt_": lambda T, y, o: y.abs_().rsqrt_(),
    "square_": lambda T, y, o: y.square_(),
    "tanh_": lambda T, y, o: y.tanh_(),
    "sigmoid_": lambda T, y, o: y.sigmoid_(),
    "relu_": lambda T, y, o: y.relu_(),
    "sin_": lambda T, y, o: y.sin_(),
    "cos_": lambda T, y, o: y.cos_(),
    "clamp_": lambda T, y, o: y.clamp_(min=-0.6, max=1.0),
    "clip_": lambda T, y, o: y.clip_(max=0.8),
    "masked_fill_": lambda T, y, o: y.masked_fill_(T.tensor([[True, False, False], [False, False, True]]), -T.inf),
    "fill_": lambda T, y, o: y.fill_(0.25),
    "zero_": lambda T, y, o: y.zero_(),
    "copy_": lambda T, y, o: y.copy_(o[0]),
    "iadd": lambda T, y, o: y.__iadd__(o),
    "imul": lambda T, y, o: y.__imul__(o),
    "setitem": lambda T, y, o: y.__setitem__((0, slice(1, None)), o[1, :2]),
    "setitem_int_array": lambda T, y, o: y.__setitem__((slice(None), [0, 2]), 7.0),
}


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_op_on_an_intermediate_is_recorded(name: str) -> None:
    def scenario(T: Any) -> tuple:
        x = T.tensor(X, requires_grad=True)
        other = T.tensor(W, requires_grad=True)
        y = x * 1.5                      # an intermediate: in-place ops are allowed on it
        out = INPLACE[name](T, y, other)
        assert out is y or out is None   # in-place methods return the tensor itself (x[i] = v: None)
        loss = (y.masked_fill(T.isinf(y), 0) * T.tensor(W)).sum() if name == "masked_fill_" else (y * T.tensor(W)).sum()
        loss.backward()
        return y, x.grad, other.grad

    both(scenario)


def test_inplace_ops_write_into_the_shared_array() -> None:
    def scenario(T: Any) -> tuple:
        a = T.zeros(2, 3)
        b = a                            # the same tensor
        b += 1                           # in place, so `a` sees it
        view = a[0]                      # a view shares a's data
        view.mul_(5)
        a[1, 2] = -1.0
        n = a.numpy()                    # shares memory too
        a.add_(1)
        return a, n

    a, n = both(scenario)
    np.testing.assert_array_equal(a, [[6, 6, 6], [2, 2, 0]])
    np.testing.assert_array_equal(a, n)


def test_a_leaf_that_requires_grad_refuses_in_place_ops_but_no_grad_allows_them() -> None:
    for T in [numpygpt] + ([torch] if torch is not None else []):
        w = T.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            w.add_(1)
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            w[0] = 2.0
        with T.no_grad():                # what an optimiser step or an init function does
            w.mul_(3)
            w[0] = 0.0
        np.testing.assert_array_equal(w.detach().numpy(), [0, 3, 3])
        assert w.is_leaf and w.requires_grad


def test_modifying_a_saved_tensor_raises_at_backward() -> None:
    for T in [numpygpt] + ([torch] if torch is not None else []):
        x = T.tensor([0.5, 1.0], requires_grad=True)
        y = x.exp()                      # exp keeps its output for the backward
        y.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()

        x = T.tensor([0.5, 1.0], requires_grad=True)
        h = x * 2
        z = h * h                        # mul keeps both inputs
        h.mul_(3)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z.sum().backward()

        x = T.tensor([0.5, 1.0], requires_grad=True)
        y = x.exp()
        y.detach().zero_()               # detach() shares the data and its version counter
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


def test_modifying_a_tensor_no_backward_needs_is_fine() -> None:
    def scenario(T: Any) -> tuple:
        x = T.tensor([0.5, 1.0], requires_grad=True)
        h = x * 2
        z = h + 1                        # add keeps nothing
        h.add_(10)
        (z * h).sum().backward()         # h's new values are used by the new product only
        return x.grad, z, h

    grad, z, h = both(scenario)
    np.testing.assert_allclose(grad, 2 * (z + h))


def test_in_place_results_keep_the_tensors_dtype_and_shape() -> None:
    for T in [numpygpt] + ([torch] if torch is not None else []):
        ints = T.tensor([1, 2, 3])
        with pytest.raises(RuntimeError, match="can't be cast"):
            ints.add_(0.5)               # a float result cannot go into an int64 tensor
        ints.add_(2)
        assert ints.tolist() == [3, 4, 5]
        with pytest.raises(RuntimeError):
            T.zeros(3).add_(T.ones(2, 3))  # the broadcast result is larger than the tensor
        f32 = T.zeros(2)
        f32.add_(T.tensor([1.0, 2.0], dtype=T.float64))  # a float64 result is cast into float32
        assert f32.dtype == T.float32


def test_seed_attention_masking_in_place() -> None:
    """The seed's `attn_scores.masked_fill_(mask_bool, -torch.inf)`, then softmax, then backward."""

    def scenario(T: Any) -> tuple:
        T.manual_seed(3)
        q = T.randn(2, 4, 4, dtype=T.float64, requires_grad=True)
        mask = T.triu(T.ones(4, 4), diagonal=1)
        scores = q @ q.transpose(1, 2)
        scores.masked_fill_(mask.bool()[:4, :4], -T.inf)
        weights = T.softmax(scores / 2.0, dim=-1)
        (weights * T.arange(4.0)).sum().backward()
        return weights, q.grad

    weights, _ = both(scenario)
    assert np.all(weights[:, np.triu(np.ones((4, 4), bool), 1)] == 0)


# ----------------------------------------------------------------------------- .grad, 0-d tensors, device


def test_grad_is_a_tensor_and_seed_style_gradient_printing_works() -> None:
    def scenario(T: Any) -> tuple:
        w = T.tensor(W, requires_grad=True)
        (w * w).sum().backward()
        g = w.grad
        assert isinstance(g, T.Tensor) and not g.requires_grad and g.grad_fn is None
        return g, g.abs().mean(), T.tensor(g.numpy())

    g, mean_abs, _ = both(scenario)
    np.testing.assert_allclose(mean_abs, np.abs(2 * W).mean())
    assert f"{numpygpt.tensor(2.5).abs().mean()}" == "2.5"


def test_zero_d_tensors_hold_zero_d_arrays() -> None:
    x = numpygpt.tensor(2.0, requires_grad=True)
    y = x * 3 + 1
    assert type(y.data) is np.ndarray and y.data.shape == () and type(y.sum().data) is np.ndarray
    y.backward()
    assert type(x.grad.data) is np.ndarray and x.grad.item() == 3.0


def test_the_one_device() -> None:
    x = numpygpt.arange(3)
    assert x.device == "cpu" and x.device == numpygpt.device("cpu") and repr(x.device) == "device(type='cpu')"
    assert str(x.device) == "cpu" and x.device.type == "cpu"
    assert x.cpu() is x and x.to(x.device) is x and x.to(numpygpt.device("cpu")) is x
    assert numpygpt.arange(3, device=x.device).tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError, match="CPU only"):
        numpygpt.device("cuda")
    with pytest.raises(RuntimeError, match="CPU only"):
        x.to("cuda")


# ----------------------------------------------------------------------------- elementwise maximum / minimum


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@given(pair=broadcastable_pair(max_dims=3), seed=seeds())
def test_maximum_minimum_gradcheck(name: str, pair: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(pair[0]), rng.standard_normal(pair[1])
    assume(np.min(np.abs(np.subtract(a, b))) > 1e-3)  # away from ties, where the max has no derivative
    assert gradcheck(lambda x, y: getattr(numpygpt, name)(x, y), (leaf(a), leaf(b)))


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_match_pytorch_at_ties_and_nan(name: str) -> None:
    def scenario(T: Any) -> tuple:
        a = T.tensor([1.0, 2.0, 3.0, T.nan, 0.0], requires_grad=True)
        b = T.tensor([[1.0, 5.0, -1.0, 0.0, T.nan]], requires_grad=True)
        out = getattr(T, name)(a, b)
        same = (T.max if name == "maximum" else T.min)(a, b)  # torch.max(a, b) is the elementwise one
        (out * T.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).sum().backward()
        return out, same, a.grad, b.grad

    out, same, ga, gb = both(scenario)
    np.testing.assert_array_equal(out, same)
    assert ga[0] == gb[0, 0] == 0.5   # a tie: half each, as PyTorch


@given(x=arrays(shapes(min_dims=1, max_dims=3)))
def test_setitem_gradients_by_finite_differences(x: np.ndarray) -> None:
    v = np.full(x.shape[1:], 0.5)

    def f(a: numpygpt.Tensor, b: numpygpt.Tensor) -> numpygpt.Tensor:
        y = a * 1.0
        y[0] = b * 2                     # row 0 replaced: a's gradient there is 0, b's is 2·g
        return y * a

    assert gradcheck(f, (leaf(x), leaf(v)))


@pytest.mark.parametrize("name", sorted(set(INPLACE) - {"masked_fill_"}))
def test_inplace_op_gradients_by_finite_differences(name: str) -> None:
    """The in-place path itself (copy of the old values, the op, the write-back) in float64."""

    def f(x: numpygpt.Tensor, other: numpygpt.Tensor) -> numpygpt.Tensor:
        y = x * 1.5
        INPLACE[name](numpygpt, y, other)
        return y * x

    assert gradcheck(f, (leaf(X), leaf(W)))
