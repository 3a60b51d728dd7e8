"""Finite-difference gradient checking: the engine's gradients against central differences.

For a function f of some tensors, pick a fixed random direction w over f's
output and compare, for every element xⱼ of every input that requires a gradient,

    analytic:  ∂(Σ w ⊙ f)/∂xⱼ            from one backward pass with grad = w
    numeric:   (Σ w ⊙ f(x + ε eⱼ) - Σ w ⊙ f(x - ε eⱼ)) / 2ε

A random projection checks the whole vector-Jacobian product at the cost of one
backward (PyTorch's "fast" gradcheck does the same). Everything runs in float64.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .autograd import no_grad
from .tensor import Tensor


class GradcheckError(RuntimeError):
    """The analytic and numeric gradients disagree; the message names the worst element."""


def gradcheck(fn: Callable[..., Tensor], inputs: Tensor | Sequence[Any], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check `fn(*inputs)`'s gradients by central differences in float64.

    Inputs that are float64 leaf tensors requiring grad are perturbed in place (and
    restored), so a function that reads a module's parameters can be checked by
    passing `list(module.parameters())`. Other inputs requiring grad (float32, or
    results of ops such as `x.double()`) are replaced by float64 leaf copies.
    Non-tensor inputs are passed through.
    Returns True, or raises `GradcheckError` naming the input, the element and both values.
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    xs = []
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad and (x.dtype != np.float64 or not x.is_leaf):
            x = Tensor(x.data.astype(np.float64), requires_grad=True)  # a float64 leaf of its own
        xs.append(x)
    checked = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, nothing to check")

    out = fn(*xs)
    if not isinstance(out, Tensor) or out.dtype != np.float64:
        raise TypeError(f"gradcheck: fn must return a float64 Tensor, got "
                        f"{getattr(out, 'dtype', type(out).__name__)}")
    w = np.random.default_rng(seed).standard_normal(out.shape)

    saved = {i: xs[i].grad for i in checked}
    for i in checked:
        xs[i].grad = None
    try:
        out.backward(w)
        analytic = {i: (xs[i].grad.data if xs[i].grad is not None else np.zeros(xs[i].shape)) for i in checked}
    finally:
        for i in checked:
            xs[i].grad = saved[i]

    def projected() -> float:
        with no_grad():
            return float(np.sum(fn(*xs).data * w))

    for i in checked:
        if not xs[i].data.flags.c_contiguous:
            xs[i].data = np.ascontiguousarray(xs[i].data)
        flat = xs[i].data.reshape(-1)  # a view: perturbing it perturbs the input
        numeric = np.empty(flat.size)
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            f_plus = projected()
            flat[j] = orig - eps
            f_minus = projected()
            flat[j] = orig
            numeric[j] = (f_plus - f_minus) / (2 * eps)
        a = analytic[i].reshape(-1)
        err = np.abs(a - numeric) - (atol + rtol * np.abs(numeric))
        if np.any(err > 0) or not np.all(np.isfinite(a)):
            j = int(np.argmax(np.where(np.isfinite(a), err, np.inf)))
            where = np.unravel_index(j, xs[i].shape) if xs[i].ndim else ()
            diff = abs(float(a[j]) - float(numeric[j]))
            rel = diff / max(abs(float(numeric[j])), 1e-300)
            bad = int(np.sum(~(err <= 0)))
            raise GradcheckError(
                f"gradcheck: input {i} (shape {tuple(xs[i].shape)}), worst element {tuple(int(k) for k in where)}: "
                f"analytic {float(a[j]):.6g} vs numeric {float(numeric[j]):.6g}, relative error {rel:.3g} "
                f"(|diff| {diff:.3g}, allowed {atol + rtol * abs(numeric[j]):.3g}); "
                f"{bad} of {a.size} elements of this input are off")
    return True
