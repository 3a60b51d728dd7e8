"""Shared test helpers: hypothesis profiles, shape and array strategies, `rel_err`.

Test modules import from here directly (`from conftest import shapes, arrays`).

Profiles: "ci" (the default; 25 examples, derandomized, no deadline) and "dev"
(50 examples); choose with the environment variable HYPOTHESIS_PROFILE.

Arrays are drawn from a NumPy generator seeded by a hypothesis integer, which
keeps generation fast (one draw per array, not one per element) while
hypothesis still controls, replays and shrinks the seed.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import numpygpt
from numpygpt.autograd import _state as _grad_mode_state

settings.register_profile("ci", deadline=None, max_examples=25, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=50, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

__all__ = ["arrays", "broadcastable_pair", "leaf", "rel_err", "seeds", "shapes"]


# ----------------------------------------------------------------------------- strategies


def seeds() -> st.SearchStrategy[int]:
    """Seeds for `np.random.default_rng`."""
    return st.integers(min_value=0, max_value=2**32 - 1)


def shapes(min_dims: int = 0, max_dims: int = 4, max_side: int = 4,
           min_side: int = 1) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes of rank `min_dims`..`max_dims` with sides `min_side`..`max_side` (size-1 dims included
    whenever `min_side` is 1)."""
    return st.lists(st.integers(min_value=min_side, max_value=max_side),
                    min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def broadcastable_pair(draw: Any, min_dims: int = 0, max_dims: int = 4,
                       max_side: int = 4) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes that broadcast against each other.

    A common result shape is drawn first; each operand then keeps a trailing
    part of it (so dims may be prepended by broadcasting) with some of its
    sides replaced by 1 (so they are stretched). Both ranks lie in
    `min_dims`..`max_dims`.
    """
    out = draw(shapes(min_dims, max_dims, max_side))

    def operand() -> tuple[int, ...]:
        rank = draw(st.integers(min_value=min(min_dims, len(out)), max_value=len(out)))
        tail = out[len(out) - rank:]
        ones = draw(st.lists(st.booleans(), min_size=rank, max_size=rank))
        return tuple(1 if one else n for n, one in zip(tail, ones))

    return operand(), operand()


@st.composite
def arrays(draw: Any, shape: tuple[int, ...] | st.SearchStrategy[tuple[int, ...]], dtype: Any = np.float64,
           low: float = -2.0, high: float = 2.0, min_abs: float = 0.0, distinct: bool = False) -> np.ndarray:
    """A float array of `shape` (a tuple or a strategy for one) with values in [low, high].

    `min_abs` keeps every value at least that far from 0 (for abs and relu, whose
    gradient jumps at 0, and for divisors): values then lie in [low, -min_abs] ∪ [min_abs, high].
    `distinct=True` spreads the values so any two differ by at least
    0.2 (high - low) / size (for max, whose gradient jumps at ties).
    """
    if isinstance(shape, st.SearchStrategy):
        shape = draw(shape)
    shape = tuple(shape)
    if not low < high:
        raise ValueError(f"arrays: need low < high, got {low} and {high}")
    rng = np.random.default_rng(draw(seeds()))
    n = int(np.prod(shape))
    if distinct:
        slots = rng.permutation(n) + 0.1 + 0.8 * rng.random(n)
        x = low + (high - low) * slots / max(n, 1)
        if min_abs > 0:
            raise ValueError("arrays: distinct and min_abs cannot be combined")
    elif min_abs > 0:
        neg_ok, pos_ok = low <= -min_abs, high >= min_abs
        if not (neg_ok or pos_ok):
            raise ValueError(f"arrays: no value in [{low}, {high}] has |x| >= {min_abs}")
        pos = rng.uniform(max(low, min_abs), high, n) if pos_ok else None
        neg = rng.uniform(low, min(high, -min_abs), n) if neg_ok else None
        if pos is None:
            x = neg
        elif neg is None:
            x = pos
        else:
            x = np.where(rng.random(n) < 0.5, neg, pos)
    else:
        x = rng.uniform(low, high, n)
    return np.asarray(x, dtype=np.float64).reshape(shape).astype(dtype)


# ----------------------------------------------------------------------------- helpers


def leaf(array: Any, dtype: Any = None) -> numpygpt.Tensor:
    """A leaf tensor requiring grad, holding a copy of `array`."""
    return numpygpt.tensor(np.array(array, dtype=dtype), requires_grad=True)


def rel_err(a: Any, b: Any) -> float:
    """max |a - b| / max(max |a|, max |b|, 1e-300): the worst error relative to the scale.

    Accepts Tensors, ndarrays or numbers; shapes must match exactly.
    """
    a = np.asarray(a.data if isinstance(a, numpygpt.Tensor) else a, dtype=np.float64)
    b = np.asarray(b.data if isinstance(b, numpygpt.Tensor) else b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"rel_err: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-300)
    return float(np.max(np.abs(a - b))) / scale


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _restore_global_modes():
    """Put the default dtype and grad mode back after each test, whatever it changed."""
    dtype, grad = numpygpt.get_default_dtype(), numpygpt.is_grad_enabled()
    yield
    numpygpt.set_default_dtype(dtype)
    _grad_mode_state.grad_enabled = grad
