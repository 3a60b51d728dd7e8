"""The error function and both forms of GELU.

`erf` and `erfc` against `math.erf` / `math.erfc` (float64, a dense grid out to
|x| = 30, the tails, the special values), measured in ulps; the exact GELU's
closed forms, dtypes and tails; the tanh form against long double and the seed's formula; and the
`approximate` argument. Finite differences, the composed twins and PyTorch
parity are in test_ops_gradcheck.py and test_torch_parity_ops.py.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from conftest import arrays, leaf, shapes
from hypothesis import given

import numpygpt
import numpygpt.nn.functional as F

GELU_C = math.sqrt(2 / math.pi)


def ulps(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """|got - expected| in units of the last place of `expected` (float64)."""
    return np.abs(got - expected) / np.spacing(np.abs(expected))


def grid() -> np.ndarray:
    """Every interval of Cody's approximation, its edges, tiny and huge arguments."""
    edges = np.array([0.46875, 4.0, 26.5, 27.0, 30.0])
    return np.concatenate([
        np.linspace(-30, 30, 600_001),                 # steps of 1e-4
        np.linspace(-1, 1, 100_001),                   # around 0, where erf(x) ≈ 2x/√π
        np.geomspace(1e-300, 30, 20_000),              # tiny to huge, both signs below
        -np.geomspace(1e-300, 30, 20_000),
        edges, -edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf),
    ])


# ----------------------------------------------------------------------------- erf and erfc


def test_erf_matches_math_erf_to_a_few_ulp() -> None:
    x = grid()
    expected = np.array([math.erf(v) for v in x])
    err = ulps(F.erf(x), expected)
    assert err.max() <= 6, f"{err.max()} ulp at x = {x[err.argmax()]}"   # measured: 4
    assert np.abs(F.erf(x) - expected).max() <= 4e-16


def test_erfc_matches_math_erfc_to_a_few_ulp() -> None:
    x = grid()
    expected = np.array([math.erfc(v) for v in x])
    normal = expected >= np.finfo(np.float64).tiny                     # beyond x ≈ 26.5 erfc is subnormal
    err = ulps(F.erfc(x), expected)[normal]
    assert err.max() <= 10, f"{err.max()} ulp at x = {x[normal][err.argmax()]}"  # measured: 7
    assert np.abs(F.erfc(x) - expected)[~normal].max() <= 2e-323       # subnormals: a few of the smallest steps


def test_erf_special_values() -> None:
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e308, -1e308, 5e-324])
    y = F.erf(x)
    np.testing.assert_array_equal(y[:4], [0.0, -0.0, 1.0, -1.0])
    assert np.signbit(y[1]) and not np.signbit(y[0])                    # erf(-0) = -0
    assert np.isnan(y[4])
    np.testing.assert_array_equal(y[5:7], [1.0, -1.0])
    assert y[7] == math.erf(5e-324)
    yc = F.erfc(x)
    np.testing.assert_array_equal(yc[:4], [1.0, 1.0, 0.0, 2.0])
    assert np.isnan(yc[4])


@given(x=arrays(shapes(), low=-8.0, high=8.0))
def test_erf_symmetries(x: np.ndarray) -> None:
    np.testing.assert_array_equal(F.erf(-x), -F.erf(x))                # odd, exactly
    np.testing.assert_allclose(F.erfc(x) + F.erfc(-x), 2.0, rtol=0, atol=4e-16)
    np.testing.assert_allclose(F.erf(x) + F.erfc(x), 1.0, rtol=0, atol=4e-16)


def test_erf_keeps_shape_and_float_dtype() -> None:
    x = np.linspace(-3, 3, 24).reshape(2, 3, 4)
    for dtype in (np.float16, np.float32, np.float64):
        y = F.erf(x.astype(dtype))
        assert y.dtype == dtype and y.shape == x.shape
        # float32 is computed in float64 and rounded once
        np.testing.assert_array_equal(y, F.erf(x.astype(dtype).astype(np.float64)).astype(dtype))
    assert F.erf(np.array([0, 1, 2])).dtype == np.float64               # integers, as np.exp does
    assert F.erf(np.float64(0.5)).shape == () and F.erf(np.zeros((0, 3))).shape == (0, 3)


# ----------------------------------------------------------------------------- exact GELU


def test_gelu_default_is_the_exact_form() -> None:
    x = numpygpt.tensor(np.linspace(-4, 4, 81), dtype=np.float64)
    np.testing.assert_array_equal(F.gelu(x).data, F.gelu(x, approximate="none").data)
    assert not np.array_equal(F.gelu(x).data, F.gelu(x, approximate="tanh").data)


@pytest.mark.parametrize("x, expected", [(0.0, 0.0), (1.0, 0.8413447460685429), (-1.0, -0.15865525393145705),
                                         (2.0, 1.9544997361036416), (-3.0, -0.0040496940948902835)])
def test_gelu_exact_closed_forms(x: float, expected: float) -> None:
    """x Φ(x), the expected values computed with 200-bit arithmetic (mpmath)."""
    y = F.gelu(numpygpt.tensor(x, dtype=np.float64))
    assert y.dtype == np.float64
    # Φ's relative slope is ~x² in the left tail, so rounding x/√2 costs up to ~x² ulps there
    assert abs(y.item() - expected) <= (2 + x * x) * np.spacing(abs(expected))


def test_gelu_exact_matches_a_float64_reference() -> None:
    x = np.linspace(-10, 10, 20_001)
    expected = np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    got = F.gelu(numpygpt.tensor(x)).data
    # relative to |x|: the left tail's tiny x Φ(x) moves by ~x² ulps when x/√2 rounds
    assert (np.abs(got - expected) / np.maximum(np.abs(x), 1)).max() <= 1e-15
    y32 = F.gelu(numpygpt.tensor(x.astype(np.float32))).data
    assert y32.dtype == np.float32                                   # Φ and x Φ each rounded once to float32
    np.testing.assert_allclose(y32, F.gelu(numpygpt.tensor(x.astype(np.float32).astype(np.float64))).data,
                               rtol=2.5e-7, atol=0)


def test_gelu_exact_gradient_closed_form_and_tails() -> None:
    x = leaf(np.array([0.0, 1.0, -1.0, 40.0, -40.0, 1e30, -1e30]))
    F.gelu(x).backward(np.ones(7))
    phi1, pdf1 = 0.5 * math.erfc(-1 / math.sqrt(2)), math.exp(-0.5) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(x.grad[:3], [0.5, phi1 + pdf1, 1 - phi1 - pdf1], rtol=1e-15)
    np.testing.assert_array_equal(x.grad[3:], [1.0, 0.0, 1.0, 0.0])    # Φ → 1 or 0, x φ(x) → 0
    y = F.gelu(numpygpt.tensor(np.array([40.0, -40.0, np.inf]))).data
    np.testing.assert_array_equal(y, [40.0, -0.0, np.inf])


def test_gelu_float32_gradients_stay_float32() -> None:
    x = leaf(np.linspace(-5, 5, 11), dtype=np.float32)
    y = F.gelu(x)
    y.backward(np.ones(11, dtype=np.float32))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


# ----------------------------------------------------------------------------- tanh GELU and the argument


@pytest.mark.parametrize("x, expected", [(1.0, 0.8411920), (-1.0, -0.1588080)])
def test_gelu_tanh_seed_numbers(x: float, expected: float) -> None:
    assert abs(F.gelu(numpygpt.tensor(x, dtype=np.float64), approximate="tanh").item() - expected) <= 1e-7


def gelu_tanh_reference(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """The tanh form and its derivative in long double, written with σ(2u) = ½ (1 + tanh u)
    so that the left tail keeps its digits (1 + tanh u itself cancels there); also |2u|, and
    the size of the derivative's two terms (it crosses 0 near x = -0.75)."""
    x = x.astype(np.longdouble)
    c = np.longdouble(GELU_C)
    u = c * (x + np.longdouble(0.044715) * x**3)
    s = 1 / (1 + np.exp(-2 * u))
    through_s = x * 2 * s * (1 - s) * c * (1 + 3 * np.longdouble(0.044715) * x * x)
    return x * s, s + through_s, np.abs(2 * u), s + np.abs(through_s)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_tanh_against_long_double(dtype: type) -> None:
    """Over [-12, 12], tails included, forward and backward within a few roundings of the
    long-double reference, scaled by 1 + |2u|: e^(-2u) turns a relative error ε in 2u into
    |2u| ε, which bounds any float evaluation of the formula (the tail's condition number)."""
    x_np = np.concatenate([np.random.default_rng(0).uniform(-12, 12, 4000), np.linspace(-12, 12, 2001)]).astype(dtype)
    x = leaf(x_np)
    y = F.gelu(x, approximate="tanh")
    y.backward(np.ones_like(x_np))
    want_y, want_dx, z, dx_size = gelu_tanh_reference(x_np)
    eps, tiny = np.finfo(dtype).eps, np.finfo(dtype).tiny
    assert y.dtype == dtype and x.grad.dtype == dtype
    err_y = np.abs(y.data.astype(np.longdouble) - want_y)
    assert np.all(err_y <= 4 * (1 + z) * np.maximum(np.abs(want_y) * eps, tiny))
    err_dx = np.abs(x.grad.data.astype(np.longdouble) - want_dx)
    assert np.all(err_dx <= 8 * (1 + z) * np.maximum(dx_size * eps, tiny))
    assert np.all(y.data[np.abs(want_y) >= tiny / eps] != 0)  # the tail keeps its digits, not rounded to 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_tanh_is_the_seeds_formula(dtype: type) -> None:
    """½ x (1 + tanh u) as the seed writes it and its derivative, to rounding (absolute: where
    1 + tanh u cancels, the seed's formula gives 0 and numpygpt the small true value)."""
    x_np = np.random.default_rng(0).uniform(-6, 6, (3, 50)).astype(dtype)
    g = np.random.default_rng(1).standard_normal((3, 50)).astype(dtype)
    t = np.tanh(GELU_C * (x_np + 0.044715 * x_np * x_np * x_np))
    expected_y = 0.5 * x_np * (1 + t)
    expected_dx = g * (0.5 * (1 + t) + 0.5 * x_np * (1 - t * t) * (GELU_C * (1 + 3 * 0.044715 * (x_np * x_np))))
    x = leaf(x_np)
    y = F.gelu(x, approximate="tanh")
    y.backward(g)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(y.data, expected_y, rtol=64 * eps, atol=8 * eps)       # |2u| reaches 30 here
    np.testing.assert_allclose(x.grad, expected_dx, rtol=64 * eps, atol=64 * eps * np.abs(g).max())


def test_gelu_tanh_infinities_and_nan() -> None:
    """GELU(+inf) = +inf, GELU(nan) = nan, and the far left tail is -0 without an overflow warning."""
    x = numpygpt.tensor([np.inf, -1e4, -60.0, np.nan], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.gelu(x[:3], approximate="tanh").data
    assert y[0] == np.inf and y[1] == 0 and y[2] == 0
    assert np.isnan(F.gelu(x, approximate="tanh").data[3])


@pytest.mark.parametrize("approximate", ["erf", "exact", "Tanh", "", None])
def test_gelu_rejects_unknown_forms(approximate: object) -> None:
    with pytest.raises(ValueError, match="'none' or 'tanh'"):
        F.gelu(numpygpt.tensor([1.0]), approximate=approximate)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_tanh_same_bits_with_and_without_grad(dtype: type) -> None:
    """The forward computes the same numbers whether or not it records for backward, and its
    backward (which recomputes σ(2u) from x) matches the gradient of a fresh forward."""
    x_np = np.random.default_rng(3).uniform(-9, 9, (4, 70001)).astype(dtype)   # more than one chunk
    with numpygpt.no_grad():
        plain = F.gelu(numpygpt.tensor(x_np), approximate="tanh").data
    x = leaf(x_np)
    y = F.gelu(x, approximate="tanh")
    np.testing.assert_array_equal(y.data, plain)
    y.backward(np.ones_like(x_np))
    _, want_dx, z, dx_size = gelu_tanh_reference(x_np)
    assert np.all(np.abs(x.grad.data - want_dx) <= 8 * (1 + z) * np.maximum(dx_size * np.finfo(dtype).eps,
                                                                              np.finfo(dtype).tiny))
    xt = leaf(x_np[:, ::2])                                                          # a strided input
    F.gelu(xt, approximate="tanh").sum().backward()
    np.testing.assert_array_equal(xt.grad.data, x.grad.data[:, ::2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_tanh_same_bits_in_threads(dtype: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunks are dealt out to threads; the forward and the gradient are the same bits
    with 1, 2 or 3 threads (5 chunks and a short one)."""
    x_np = np.random.default_rng(4).uniform(-9, 9, 5 * 2**16 + 77).astype(dtype)
    g_np = np.random.default_rng(5).standard_normal(x_np.shape).astype(dtype)
    results = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("NUMPYGPT_NUM_THREADS", threads)
        x = leaf(x_np)
        y = F.gelu(x, approximate="tanh")
        y.backward(g_np)
        results.append((y.data.tobytes(), x.grad.data.tobytes()))
    assert results[0] == results[1] == results[2]
