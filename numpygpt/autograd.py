"""The engine on one page: graph nodes, `Function`, `unbroadcast`, grad mode and `backward`.

A differentiable primitive is a subclass of `Function` with two static methods
side by side:

    forward(ctx, *arrays, **options)  -> ndarray
    backward(ctx, grad)               -> one gradient per positional input

`forward` sees plain NumPy arrays (the `.data` of each Tensor input) and may
stash what backward needs on `ctx` (`ctx.save_for_backward(...)` or plain
attributes). `backward` receives dL/d(output) and returns dL/d(input) for each
positional input, or None where an input needs no gradient
(`ctx.needs_input_grad[i]` says which ones do).

`Fn.apply(...)` runs `forward` and, when an input needs a gradient, records a
node (a `Context`) on the output. `backward(loss)` is the chain rule over
those nodes, from the loss back to the leaves:

    for node in reverse topological order:
        g = the sum of the gradients its consumers sent it     dL/d(node's output)
        for each input:  grads[input] += unbroadcast(backward(node, g)[i], input's shape)

Leaves (tensors made by the user, such as parameters) receive their sum in
`.grad` (a Tensor), which accumulates across calls until zeroed, as in PyTorch.
A node's arrays must not change between forward and backward: each tensor
counts its in-place modifications (`VersionCounter`), and backward checks.
Gradients may come back in the broadcast shape of the output: `unbroadcast`,
applied here where they are accumulated, is the only place broadcasting is
undone, so no op has to do it itself.

This module, `tensor.py`, `ops.py` and `reductions.py` import each other, the
one import cycle of the package: a Tensor's methods apply the `Function`s of
ops.py and reductions.py, and `Function.apply` returns Tensors.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable

import numpy as np

# ----------------------------------------------------------------------------- grad mode

_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether ops record the graph (False inside `no_grad()`)."""
    return getattr(_state, "grad_enabled", True)


class _GradMode(contextlib.ContextDecorator):
    enabled: bool

    def __new__(cls, func: Any = None):
        self = super().__new__(cls)
        return self if func is None else self(func)  # `@no_grad` as well as `@no_grad()`

    def __init__(self, func: Any = None) -> None:
        pass

    def __enter__(self) -> None:
        self._prev = is_grad_enabled()
        _state.grad_enabled = self.enabled

    def __exit__(self, *exc: Any) -> None:
        _state.grad_enabled = self._prev


@contextlib.contextmanager
def scope(name: str | None):
    """Nodes recorded inside `with scope("trf_blocks.0.att"):` remember that name as `ctx.scope`
    (graph.py draws each scope as a cluster; `graph.module_scopes(model)` opens one per module)."""
    previous = getattr(_state, "scope", None)
    _state.scope = name
    try:
        yield
    finally:
        _state.scope = previous


class no_grad(_GradMode):
    """Context manager and decorator: ops inside record no graph (inference, optimiser steps)."""

    enabled = False


class enable_grad(_GradMode):
    """Context manager and decorator: turn graph recording back on inside `no_grad()`."""

    enabled = True


# ----------------------------------------------------------------------------- unbroadcast


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


# ----------------------------------------------------------------------------- the graph's nodes


class Context:
    """A node of the graph: what a `Function` remembers between forward and backward.

    `save_for_backward(*arrays)` keeps arrays in `saved_tensors`; any other
    attribute may be set directly (`ctx.axis = -1`). `parents` links the node to
    where each input's gradient goes: the input's own node, a leaf tensor, or
    None for inputs that need no gradient. The node holds no other input, so an
    intermediate result that no backward formula needs is freed as soon as the
    forward pass lets go of it, as in PyTorch.

    The attributes below are every one the engine sets; after backward it
    calls `free()` (unless `retain_graph=True`), dropping saved arrays, options
    and parent links.
    """

    def __init__(self, fn: type[Function], needs_input_grad: tuple[bool, ...]):
        self.fn = fn
        self.needs_input_grad = needs_input_grad
        self.parents: tuple[Any, ...] = ()       # Context, leaf Tensor or None, one per positional input
        self.input_shapes: tuple[Any, ...] = ()  # each input's shape, for unbroadcast
        self.output_shape: tuple[int, ...] = ()  # and the output's shape and dtype, for drawing the graph
        self.output_dtype: Any = None
        self.scope: str | None = None            # the module path whose forward made it (see `scope`)
        self.saved_tensors: tuple[Any, ...] = ()
        self.saved_versions: tuple[Any, ...] = ()  # (VersionCounter, count, shape) of each tensor kept
        self.retained_output = None              # the output Tensor, if it asked to keep its .grad
        self.hooks: Any = None                   # its output's `register_hook` functions (a dict)
        self.graph_retained = False              # set by backward: True when the graph outlives this call,
                                                 # so backward must not reuse saved arrays in place
        self.freed = False

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved_tensors = arrays

    def free(self) -> None:
        """Drop saved arrays, options and parent links; the graph can no longer be differentiated."""
        keep = {"fn", "needs_input_grad"}
        for name in list(vars(self)):
            if name not in keep:
                delattr(self, name)
        self.parents, self.input_shapes, self.saved_tensors, self.saved_versions = (), (), (), ()
        self.retained_output = self.hooks = None
        self.graph_retained = False
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
        Tensor = _tensor.Tensor
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = is_grad_enabled() and any(needs)
        ctx = Context(cls, needs)
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        out = Tensor._wrap(cls.forward(ctx, *arrays, **kwargs), requires_grad=record)
        if record:
            ctx.parents = tuple((a._ctx or a) if n else None for a, n in zip(args, needs))
            ctx.input_shapes = tuple(a.shape if n else None for a, n in zip(args, needs))
            ctx.output_shape, ctx.output_dtype = out.data.shape, out.data.dtype
            ctx.scope = getattr(_state, "scope", None)
            ctx.saved_versions = _saved_versions(ctx, [a for a in args if isinstance(a, Tensor)] + [out])
            out._ctx = ctx
        return out


class VersionCounter:
    """How many times a tensor's data has been modified in place (`x.add_(1)`, ...).

    A node that keeps a tensor's array for its backward notes the count; if
    it has changed by the time backward runs, the array no longer holds the
    values the gradient formula needs, and backward raises instead of
    returning a wrong gradient (as PyTorch's `_version`). A tensor and its
    `detach()` share one counter, as they share the data.
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


def _saved_versions(ctx: Context, tensors: list[Any]) -> tuple[Any, ...]:
    """(counter, count, shape) of each tensor whose array (or a view of it) the node keeps."""
    kept = [a for a in (*ctx.saved_tensors, *vars(ctx).values()) if isinstance(a, np.ndarray)]
    if not kept:
        return ()
    ids = {id(a) for a in kept} | {id(a.base) for a in kept if a.base is not None}
    return tuple((t._version, t._version.value, t.shape) for t in tensors if id(t.data) in ids)


# ----------------------------------------------------------------------------- hooks


class RemovableHandle:
    """What `register_*_hook` returns: `handle.remove()` unregisters the hook (once is enough)."""

    _next_id = 0

    def __init__(self, hooks: dict, hook: Callable[..., Any]) -> None:
        self._hooks, self.id = hooks, RemovableHandle._next_id
        RemovableHandle._next_id += 1
        hooks[self.id] = hook

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _run_hooks(hooks: Any, g: np.ndarray) -> np.ndarray:
    """A tensor's `register_hook` functions on its gradient, in order; each may replace it."""
    for hook in list(hooks.values()):
        result = hook(_tensor.Tensor._wrap(g))
        if result is not None:
            g = np.asarray(result.data if isinstance(result, _tensor.Tensor) else result, dtype=g.dtype)
    return g


# ----------------------------------------------------------------------------- backward

# Functions called at each step of a backward walk as `observer(node, grad_output, grads_passed_on)`:
# the node, dL/d(its output), and the gradient it sends to each input (None where none goes).
backward_observers: list[Callable[[Context, np.ndarray, list[Any]], None]] = []


def backward(tensor: Any, grad: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(tensor)/d(leaf) into every leaf's `.grad` (see `Tensor.backward`)."""
    grad = _initial_grad(tensor, grad)
    handed_out = {id(grad)}  # arrays a leaf may not keep as its own .grad without a copy
    if tensor.grad_fn is None:  # backward on a leaf: d(tensor)/d(tensor) = 1
        _accumulate_leaf(tensor, grad, handed_out)
        return
    order = topological_order(tensor.grad_fn)
    grads: dict[int, np.ndarray] = {id(tensor.grad_fn): grad}  # id(node or leaf) -> dL/d(its output)
    owned: set[int] = set()  # ids of the sums in `grads` this walk allocated (see _add_grad)
    for i in range(len(order) - 1, -1, -1):
        node, order[i] = order[i], None  # let each node go once its gradient is used
        g = grads.pop(id(node), None)
        if g is None:
            continue
        owned.discard(id(g))  # handed on from here: no longer ours to add into
        if not isinstance(node, Context):
            _accumulate_leaf(node, g, handed_out)
            continue
        _check_not_freed(node)
        _check_versions(node)
        if node.hooks:
            g = _run_hooks(node.hooks, g)
        _keep_retained_grad(node, g)
        node.graph_retained = retain_graph
        passed = [None if parent is None or input_grad is None else unbroadcast(input_grad, shape)
                  for parent, shape, input_grad in zip(node.parents, node.input_shapes, _input_grads(node, g))]
        for watch in list(backward_observers):  # trace_backward and friends: see each step as it happens
            watch(node, g, passed)
        for parent, input_grad in zip(node.parents, passed):
            if input_grad is not None:  # the chain rule's sum over a tensor's uses (unbroadcast above: over copies)
                _add_grad(grads, owned, id(parent), input_grad)
        if not retain_graph:
            node.free()


def _add_grad(grads: dict[int, np.ndarray], owned: set[int], key: int, input_grad: np.ndarray) -> None:
    """grads[key] += input_grad, without copying and without touching an array anyone else holds.

    A first gradient is kept as it is (no copy). A backward may hand the same
    array to several inputs (add's backward returns g twice) or keep it, so the
    first one is never modified: the second contribution makes a new array, the
    sum, which only `grads` holds; it is recorded in `owned`, and later
    contributions are added into it in place. (Popping a gradient from `grads`
    removes it from `owned`, as it is passed on from then.)
    """
    current = grads.get(key)
    if current is None:
        grads[key] = input_grad
    elif id(current) in owned and np.result_type(current, input_grad) == current.dtype:
        current += input_grad
    else:
        total = grads[key] = current + input_grad
        if isinstance(total, np.ndarray):  # 0-d sums come back as NumPy scalars, which are immutable
            owned.add(id(total))


def topological_order(root: Context) -> list[Any]:
    """The nodes and leaves reachable from `root`, each after all of its parents.

    Iterative depth-first search, so a graph 10,000 ops deep needs no recursion.
    """
    order: list[Any] = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if isinstance(node, Context):
            for parent in node.parents:
                if parent is not None and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def _initial_grad(tensor: Any, grad: Any) -> np.ndarray:
    """dL/d(tensor) to start from: `grad` checked against the tensor, or 1 for a one-element tensor."""
    if not tensor.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad and has no graph "
                           "(was it made under no_grad(), or from tensors with requires_grad=False?)")
    if grad is None:
        if tensor.data.size != 1:
            raise RuntimeError(f"backward(): grad can be omitted only for a one-element tensor, "
                               f"this one has shape {tensor.shape}; pass grad= of that shape")
        return np.ones_like(tensor.data)
    grad = np.asarray(grad.data if isinstance(grad, _tensor.Tensor) else grad, dtype=tensor.dtype)
    if grad.shape != tensor.shape:
        raise ValueError(f"backward(): grad has shape {grad.shape} but the tensor has shape {tensor.shape}")
    return grad


def _input_grads(node: Context, g: np.ndarray) -> tuple[Any, ...]:
    """The node's local chain rule: its Function's backward, always as a tuple."""
    grads = node.fn.backward(node, g)
    return grads if isinstance(grads, tuple) else (grads,)


# Not done: copying a leaf's kept gradient into pages of its own (an anonymous mapping).
# glibc's malloc serves arrays up to 32 MiB from a heap that shrinks only from its top, so a
# gradient made during the backward between the activations it frees keeps that memory in
# the process. The copy gave that memory back (GPT-2 124M train step: peak RSS 2,739 ->
# 2,697 MiB), but fresh pages cost a page fault each, every step: the float32 step measured
# 2.07-2.32 s without it and 2.28-2.54 s with it, the float64 step 4.52-4.81 s against 5.40-5.64 s.


def _accumulate_leaf(leaf: Any, g: np.ndarray, handed_out: set[int]) -> None:
    """Add `g` into a leaf's `.grad` (in place, as PyTorch does); the first gradient is kept
    without a copy when it is a fresh array that nothing else holds."""
    g = g.astype(leaf.dtype, copy=False)
    if leaf._hooks:
        g = _run_hooks(leaf._hooks, g)
    if leaf.grad is not None:
        leaf.grad.data += g
    elif g.base is None and g.flags.writeable and id(g) not in handed_out:
        leaf.grad = _tensor.Tensor._wrap(g)
        handed_out.add(id(g))
    else:
        leaf.grad = _tensor.Tensor._wrap(g.copy())  # a view, read-only, or shared: the leaf gets its own


def _keep_retained_grad(node: Context, g: np.ndarray) -> None:
    """A non-leaf output that called `retain_grad()` keeps its gradient in `.grad`."""
    kept = node.retained_output
    if kept is not None:
        kept.grad = _tensor.Tensor._wrap(g.copy() if kept.grad is None else kept.grad.data + g)


def _check_versions(node: Context) -> None:
    """Refuse to run a backward formula on arrays modified in place since the forward pass."""
    for counter, count, shape in node.saved_versions:
        if counter.value != count:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: a tensor of shape {list(shape)} saved by {node!r} is at "
                f"version {counter.value}; expected version {count} instead. Compute it out of place "
                f"(x = x.add(1), not x.add_(1)) or clone() it before the in-place op.")


def _check_not_freed(node: Context) -> None:
    if node.freed:
        raise RuntimeError(
            "backward(): trying to backward through the graph a second time; its saved arrays "
            "were freed by the first backward. Call the first .backward(retain_graph=True) "
            "to keep them.")


# Imported last: tensor.py imports this module, and Function.apply and backward
# need the Tensor class only when they run.
from . import tensor as _tensor  # noqa: E402
