"""The `Function` base class and the one `unbroadcast` helper.

A differentiable primitive is a subclass of `Function` with two static methods
side by side:

    forward(ctx, *arrays, **options)  -> ndarray
    backward(ctx, grad)               -> one gradient per positional input

`forward` sees plain NumPy arrays (the `.data` of each Tensor input) and may
stash what backward needs on `ctx` (`ctx.save_for_backward(...)` or plain
attributes). `backward` receives dL/d(output) and returns dL/d(input) for each
positional input, or None where an input needs no gradient
(`ctx.needs_input_grad[i]` says which ones do).

Gradients may come back in the *broadcast* shape of the output: the engine
calls `unbroadcast` once, where it accumulates, so no op has to undo NumPy's
broadcasting itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` down to `shape`, undoing NumPy broadcasting.

    Broadcasting (a) prepends size-1 axes and (b) stretches size-1 axes. The
    adjoint of copying a value to many places is adding the copies' gradients
    back together, so we sum over the prepended axes and, with keepdims, over
    every axis that was stretched from 1.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(f"cannot unbroadcast a gradient of shape {grad.shape} to {shape}")
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    if grad.shape != shape:
        raise ValueError(f"cannot unbroadcast a gradient of shape {grad.shape} to {shape}")
    return grad


class Context:
    """A node of the graph: what a `Function` remembers between forward and backward.

    `save_for_backward(*arrays)` keeps arrays in `saved_tensors`; any other
    attribute may be set directly (`ctx.axis = -1`). `parents` links the node to
    where each input's gradient goes: the input's own node, a leaf tensor, or
    None for inputs that need no gradient. The node holds no other input, so an
    intermediate result that no backward formula needs is freed as soon as the
    forward pass lets go of it, as in PyTorch.

    After backward the engine calls `free()` (unless `retain_graph=True`),
    dropping saved arrays and parent links.
    """

    def __init__(self, fn: type[Function], needs_input_grad: tuple[bool, ...]):
        self.fn = fn
        self.needs_input_grad = needs_input_grad
        self.parents: tuple[Any, ...] = ()       # Context, leaf Tensor or None, one per positional input
        self.input_shapes: tuple[Any, ...] = ()  # for unbroadcast
        self.saved_tensors: tuple[Any, ...] = ()
        self.retained_output = None              # the output Tensor, if it asked to keep its .grad
        self.freed = False

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved_tensors = arrays

    def free(self) -> None:
        """Drop saved arrays, options and parent links; the graph can no longer be differentiated."""
        keep = {"fn", "needs_input_grad"}
        for name in list(vars(self)):
            if name not in keep:
                delattr(self, name)
        self.parents, self.input_shapes, self.saved_tensors = (), (), ()
        self.retained_output = None
        self.freed = True

    def __repr__(self) -> str:
        return f"<{self.fn.__name__}Backward>"


class Function:
    """Base class of every differentiable primitive. Call it with `Fn.apply(...)`."""

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any):
        """Run `forward` on the inputs' arrays and, if any input needs a
        gradient (and grad mode is on), record the node in the graph."""
        from .tensor import Tensor, is_grad_enabled

        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = is_grad_enabled() and any(needs)
        ctx = Context(cls, needs)
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        out = Tensor._wrap(cls.forward(ctx, *arrays, **kwargs), requires_grad=record)
        if record:
            ctx.parents = tuple((a._ctx or a) if n else None for a, n in zip(args, needs))
            ctx.input_shapes = tuple(a.shape if n else None for a, n in zip(args, needs))
            out._ctx = ctx
        return out
