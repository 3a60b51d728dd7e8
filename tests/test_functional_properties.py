"""Properties of the functional ops that hold whatever the implementation.

Closed forms (GELU at 0 and ±1, cross-entropy of uniform logits = ln V),
invariants (softmax rows sum to 1 and ignore a per-row constant, LayerNorm
rows have mean 0 and variance 1, masked entries get probability exactly 0),
dropout's statistics and reproducibility, and clear errors on bad targets.
No PyTorch needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpygpt
import numpygpt.nn.functional as F
from conftest import arrays, leaf, rel_err, seeds, shapes

# ----------------------------------------------------------------------------- GELU


@pytest.mark.parametrize("x, expected", [(0.0, 0.0), (1.0, 0.8411920), (-1.0, -0.1588080)])
def test_gelu_closed_forms(x: float, expected: float) -> None:
    """The seed's numbers for the tanh form, in float64."""
    y = F.gelu(numpygpt.tensor(x, dtype=np.float64), approximate="tanh")
    assert y.dtype == np.float64
    assert abs(y.item() - expected) <= 1e-7
    if x == 0.0:
        assert y.item() == 0.0


def test_gelu_is_the_tanh_formula() -> None:
    x = np.linspace(-6, 6, 101)
    expected = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert rel_err(F.gelu(numpygpt.tensor(x), approximate="tanh").data, expected) <= 1e-15


# ----------------------------------------------------------------------------- cross-entropy


@given(n=st.integers(1, 8), v=st.integers(1, 300), c=st.floats(-50, 50))
def test_cross_entropy_of_equal_logits_is_ln_v(n: int, v: int, c: float) -> None:
    """Uniform predictions over V classes cost ln V whatever the targets."""
    logits = numpygpt.tensor(np.full((n, v), c), dtype=np.float64)
    targets = np.random.default_rng(n * 1000 + v).integers(0, v, size=n)
    for reduction in ("mean", "none"):
        loss = F.cross_entropy(logits, targets, reduction=reduction)
        assert np.allclose(loss.data, math.log(v), rtol=0, atol=1e-12)
    assert abs(F.cross_entropy(logits, targets, reduction="sum").item() - n * math.log(v)) <= 1e-10 * n


@given(b=st.integers(1, 3), t=st.integers(1, 5), v=st.integers(2, 50))
def test_cross_entropy_of_equal_logits_sequence(b: int, t: int, v: int) -> None:
    """The same for GPT-shaped (B, T, V) logits with (B, T) targets."""
    logits = numpygpt.zeros(b, t, v, dtype=np.float64)
    targets = np.zeros((b, t), dtype=np.int64)
    assert abs(F.cross_entropy(logits, targets).item() - math.log(v)) <= 1e-12


def test_cross_entropy_ignored_rows_add_nothing() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 5))
    targets = np.array([1, -100, 3, -100, 0, 4])
    kept = targets != -100
    full = F.cross_entropy(numpygpt.tensor(logits), targets)
    only_kept = F.cross_entropy(numpygpt.tensor(logits[kept]), targets[kept])
    assert rel_err(full.data, only_kept.data) <= 1e-14
    x = leaf(logits)
    F.cross_entropy(x, targets).backward()
    assert np.all(x.grad.numpy()[~kept] == 0)


class TestCrossEntropyErrors:
    """Bad targets fail with a message that says what is wrong."""

    logits = numpygpt.tensor(np.zeros((4, 3)))

    def test_wrong_target_shape(self) -> None:
        with pytest.raises(ValueError, match=r"targets of shape \(4,\)"):
            F.cross_entropy(self.logits, np.zeros((4, 1), dtype=np.int64))
        with pytest.raises(ValueError, match="shape"):
            F.cross_entropy(self.logits, np.zeros(5, dtype=np.int64))

    def test_float_targets(self) -> None:
        with pytest.raises(TypeError, match="integer"):
            F.cross_entropy(self.logits, np.zeros(4))
        with pytest.raises(TypeError, match="integer"):
            F.cross_entropy(self.logits, numpygpt.tensor([0.0, 1.0, 2.0, 0.0]))

    @pytest.mark.parametrize("bad", [3, 7, -1, -5])
    def test_out_of_range_targets(self, bad: int) -> None:
        with pytest.raises(IndexError, match=f"{bad}.*out of range"):  # PyTorch's class too
            F.cross_entropy(self.logits, np.array([0, 1, bad, 2]))

    def test_ignore_index_is_not_out_of_range(self) -> None:
        F.cross_entropy(self.logits, np.array([0, -100, 2, 1]))
        F.cross_entropy(self.logits, np.array([0, 7, 2, 1]), ignore_index=7)

    def test_bad_reduction(self) -> None:
        with pytest.raises(ValueError, match="reduction"):
            F.cross_entropy(self.logits, np.array([0, 1, 2, 0]), reduction="avg")


# ----------------------------------------------------------------------------- softmax


@st.composite
def _array_and_dim(draw: Any, low: float = -20.0, high: float = 20.0) -> tuple[np.ndarray, int]:
    shape = draw(shapes(min_dims=1))
    return draw(arrays(shape, low=low, high=high)), draw(st.integers(-len(shape), len(shape) - 1))


@given(xd=_array_and_dim())
def test_softmax_rows_sum_to_one(xd: tuple[np.ndarray, int]) -> None:
    x, dim = xd
    p = F.softmax(numpygpt.tensor(x), dim=dim).data
    assert np.all(p >= 0) and np.all(p <= 1)
    assert np.allclose(p.sum(axis=dim), 1.0, rtol=0, atol=1e-14)


@given(xd=_array_and_dim(), seed=seeds(), shift_scale=st.sampled_from([1.0, 100.0, 1e4]))
def test_softmax_ignores_a_constant_per_row(xd: tuple[np.ndarray, int], seed: int, shift_scale: float) -> None:
    x, dim = xd
    shift_shape = list(x.shape)
    shift_shape[dim] = 1
    shift = np.random.default_rng(seed).uniform(-shift_scale, shift_scale, size=shift_shape)
    p = F.softmax(numpygpt.tensor(x), dim=dim).data
    q = F.softmax(numpygpt.tensor(x + shift), dim=dim).data
    # adding c to x changes each x by a rounding error of about eps·|c|
    assert np.max(np.abs(p - q)) <= 1e-15 * (shift_scale + 20) * 4


@given(xd=_array_and_dim())
def test_log_softmax_is_log_of_softmax(xd: tuple[np.ndarray, int]) -> None:
    x, dim = xd
    t = numpygpt.tensor(x)
    log_p = F.log_softmax(t, dim=dim).data
    assert np.allclose(log_p, np.log(F.softmax(t, dim=dim).data), rtol=1e-12, atol=1e-12)
    assert np.allclose(np.exp(log_p).sum(axis=dim), 1.0, rtol=0, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_of_huge_logits_is_finite(dtype: Any) -> None:
    x = numpygpt.tensor(np.array([[1e4, 0.0, -1e4], [3e4, 3e4, 3e4]], dtype=dtype))
    p = F.softmax(x, dim=-1).data
    assert np.all(np.isfinite(p))
    assert np.allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])
    assert np.all(np.isfinite(F.log_softmax(x, dim=-1).data))


@given(t=st.integers(1, 8), seed=seeds())
def test_masked_entries_get_exactly_zero(t: int, seed: int) -> None:
    """The causal mask: probabilities above the diagonal are exactly 0 and get no gradient."""
    scores = leaf(np.random.default_rng(seed).standard_normal((2, t, t)))
    mask = np.triu(np.ones((t, t), dtype=bool), k=1)
    p = F.softmax(scores.masked_fill(mask, -np.inf), dim=-1)
    assert np.all(p.data[:, mask] == 0.0)
    assert np.allclose(p.data.sum(axis=-1), 1.0, rtol=0, atol=1e-14)
    assert p.data[0, 0, 0] == 1.0  # the first query sees only itself
    p.backward(np.random.default_rng(seed + 1).standard_normal(p.shape))
    assert np.all(scores.grad.numpy()[:, mask] == 0.0)
    assert np.all(np.isfinite(scores.grad.numpy()))


# ----------------------------------------------------------------------------- layer norm

EPS = 1e-5


@given(shape=shapes(min_dims=1, max_dims=3, max_side=6), scale=st.sampled_from([1e-2, 1.0, 1e3]),
       offset=st.sampled_from([-50.0, 0.0, 7.0]), data=st.data())
def test_layer_norm_rows_have_mean_0_and_variance_1(shape: tuple[int, ...], scale: float, offset: float,
                                                    data: Any) -> None:
    """Without weight and bias each row comes out with mean 0 and biased variance
    var/(var + eps), which is 1 up to eps/var."""
    x = data.draw(arrays(shape)) * scale + offset
    y = F.layer_norm(numpygpt.tensor(x), shape[-1:]).data
    var_in = x.var(axis=-1)
    mean_out, var_out = y.mean(axis=-1), y.var(axis=-1)
    assert np.all(np.abs(mean_out) <= 1e-9)
    expected = var_in / (var_in + EPS)  # exact in real arithmetic
    assert np.allclose(var_out, expected, rtol=1e-9, atol=1e-12)
    spread = var_in > 1e-2  # rows not crushed by eps
    assert np.all(np.abs(var_out[spread] - 1) <= EPS / 1e-2 + 1e-9)


@given(shape=shapes(min_dims=2, max_dims=3, max_side=5), data=st.data())
def test_layer_norm_over_two_dims(shape: tuple[int, ...], data: Any) -> None:
    x = data.draw(arrays(shape, distinct=True))
    y = F.layer_norm(numpygpt.tensor(x), shape[-2:]).data
    assert np.all(np.abs(y.mean(axis=(-2, -1))) <= 1e-12)
    var_in = x.var(axis=(-2, -1))
    assert np.allclose(y.var(axis=(-2, -1)), var_in / (var_in + EPS), rtol=1e-9)


def test_layer_norm_float32_rows() -> None:
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32) * 3 + 2
    y = F.layer_norm(numpygpt.tensor(x), 64).data
    assert y.dtype == np.float32
    assert np.all(np.abs(y.mean(axis=-1)) <= 1e-6)
    assert np.all(np.abs(y.var(axis=-1) - 1) <= 1e-4)


def test_layer_norm_weight_and_bias_scale_and_shift() -> None:
    rng = np.random.default_rng(1)
    x = numpygpt.tensor(rng.standard_normal((3, 4)))
    w, b = numpygpt.tensor(rng.standard_normal(4)), numpygpt.tensor(rng.standard_normal(4))
    plain = F.layer_norm(x, 4).data
    assert rel_err(F.layer_norm(x, 4, w, b).data, plain * w.data + b.data) <= 1e-15


def test_layer_norm_shape_errors() -> None:
    x = numpygpt.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(x, 4)
    with pytest.raises(ValueError, match="weight"):
        F.layer_norm(x, 3, weight=numpygpt.tensor(np.ones(4)))


# ----------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_zeroes_about_p_and_scales_survivors(p: float) -> None:
    numpygpt.manual_seed(123)
    x = numpygpt.tensor(np.random.default_rng(0).uniform(1, 2, size=(200, 500)).astype(np.float32))
    y = F.dropout(x, p=p, training=True).data
    assert y.dtype == np.float32
    dropped = y == 0
    # 100,000 Bernoulli(p) draws: the fraction has std <= 0.0016
    assert abs(dropped.mean() - p) <= 0.01
    kept = ~dropped
    assert np.allclose(y[kept], x.data[kept] / (1 - p), rtol=1e-6, atol=0)


def test_dropout_gradient_uses_the_same_mask() -> None:
    numpygpt.manual_seed(7)
    x = leaf(np.random.default_rng(0).uniform(1, 2, size=(50, 40)))
    y = F.dropout(x, p=0.3, training=True)
    g = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(g)
    mask = y.data / x.data  # 0 or 1/(1 - p)
    assert np.allclose(np.unique(np.round(mask, 12)), [0.0, 1 / 0.7])
    assert rel_err(x.grad, g * mask) <= 1e-15


def test_dropout_off_in_eval_is_the_identity() -> None:
    x = leaf(np.random.default_rng(0).standard_normal((4, 5)))
    for y in (F.dropout(x, p=0.5, training=False), F.dropout(x, p=0.0, training=True)):
        assert np.array_equal(y.data, x.data)
    state = numpygpt.get_rng_state()
    F.dropout(x, p=0.5, training=False)
    assert numpygpt.get_rng_state() == state  # eval draws nothing from the generator


def test_dropout_p_1_zeroes_everything() -> None:
    x = numpygpt.tensor(np.ones((3, 3)))
    assert np.array_equal(F.dropout(x, p=1.0).data, np.zeros((3, 3)))


def test_dropout_is_reproducible_with_manual_seed() -> None:
    x = numpygpt.tensor(np.ones((30, 30)))
    numpygpt.manual_seed(42)
    a = F.dropout(x, p=0.5).data
    b = F.dropout(x, p=0.5).data  # the stream moved on: another mask
    numpygpt.manual_seed(42)
    c = F.dropout(x, p=0.5).data
    assert np.array_equal(a, c)
    assert not np.array_equal(a, b)
    numpygpt.manual_seed(43)
    assert not np.array_equal(a, F.dropout(x, p=0.5).data)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_bad_p(p: float) -> None:
    with pytest.raises(ValueError, match="probability"):
        F.dropout(numpygpt.tensor(np.ones(3)), p=p)


# ----------------------------------------------------------------------------- dtypes


FLOAT32_CASES = {
    "softmax": lambda x: F.softmax(x, dim=-1),
    "log_softmax": lambda x: F.log_softmax(x, dim=-1),
    "gelu": lambda x: F.gelu(x, approximate="tanh"),
    "gelu exact": F.gelu,
    "relu": F.relu,
    "layer_norm": lambda x: F.layer_norm(x, 4, numpygpt.ones(4, requires_grad=True),
                                         numpygpt.zeros(4, requires_grad=True)),
    "linear": lambda x: F.linear(x, numpygpt.ones(2, 4, requires_grad=True), numpygpt.zeros(2, requires_grad=True)),
    "dropout": lambda x: F.dropout(x, p=0.5),
    "mse_loss": lambda x: F.mse_loss(x, np.zeros((3, 4), dtype=np.float32)),
    "mse_loss_python_scalar_mix": lambda x: F.mse_loss(x * 2.0 + 1.0, np.zeros((3, 4), dtype=np.float32)),
    "cross_entropy": lambda x: F.cross_entropy(x, np.array([0, 3, 1])),
    "cross_entropy_none": lambda x: F.cross_entropy(x, np.array([0, 3, -100]), reduction="none"),
    "embedding": lambda x: F.embedding(np.array([[0, 2], [2, 1]]), x),
}


@pytest.mark.parametrize("name", list(FLOAT32_CASES))
def test_float32_stays_float32(name: str) -> None:
    """Outputs and gradients keep float32: no silent promotion to float64."""
    x = leaf(np.random.default_rng(0).standard_normal((3, 4)), dtype=np.float32)
    y = FLOAT32_CASES[name](x)
    assert y.dtype == np.float32
    y.backward(np.ones(y.shape, dtype=np.float32))
    assert x.grad.dtype == np.float32
