"""`Module` and `Parameter`: the base of every layer, shaped like `torch.nn.Module`.

A `Module` registers what is assigned to it: a `Parameter` becomes a parameter,
a `Module` a child, and `register_buffer` adds a non-trained tensor (such as a
causal mask). `state_dict()` walks them in PyTorch's order (a module's own
parameters, then its buffers, then each child's), so the keys of a numpygpt
model and of the same model in PyTorch are the same list.

Hooks are PyTorch's: `register_forward_pre_hook`, `register_forward_hook` and
`register_full_backward_hook` each return a handle whose `.remove()` takes the
hook off again. A full backward hook is built from two identity ops around
the forward, one on the input and one on the output: their backward passes
see the gradients flowing through, unchanged unless the hook replaces them.

Differences from PyTorch: `state_dict()` values are NumPy arrays; `to()`
changes the dtype only (there is one device).
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from . import _arguments
from .autograd import Context, Function, RemovableHandle
from .tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A leaf tensor that a `Module` trains: requires_grad=True, floating point.
    Wraps the given array without copying it (as `torch.nn.Parameter` shares storage)."""

    def __init__(self, data: Any, requires_grad: bool = True):
        data = data.data if isinstance(data, Tensor) else data
        data = np.asarray(data)
        if data.dtype.kind != "f":
            raise TypeError(f"Parameter needs floating point data, got dtype {data.dtype}")
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _first(keys: list[str], limit: int = 10) -> str:
    """The first `limit` keys, then "... and N more", so a message about a huge state_dict stays short."""
    shown = ", ".join(keys[:limit])
    return shown if len(keys) <= limit else f"{shown} ... and {len(keys) - limit:,} more"


def _buffer(value: Any) -> Tensor | None:
    """A buffer is a Tensor outside the graph, as PyTorch's; arrays and numbers are wrapped."""
    return value if value is None or isinstance(value, Tensor) else Tensor._wrap(np.asarray(value))


def _adoptable(value: np.ndarray, dtype: np.dtype) -> bool:
    """Whether `load_state_dict(assign=True)` may make `value` a parameter's array as it is."""
    return type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous and value.flags.writeable


class Module:
    """Base class of every layer and model. Subclasses call `super().__init__()` first,
    assign parameters and child modules as attributes, and define `forward`."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_backward_hooks", OrderedDict())

    # -- registration ------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning {name!r}")
        for table in (self._parameters, self._modules, self._buffers):
            if name in table and not (table is self._buffers and not isinstance(value, (Module, Parameter))):
                del table[name]
        if isinstance(value, (Parameter, Module)):
            self.__dict__.pop(name, None)  # a plain attribute of that name would hide it
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self._buffers:
            self._buffers[name] = _buffer(value)
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        for table in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(table)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array: Any, persistent: bool = True) -> None:
        """Keep a tensor that is not trained (a mask, running statistics). Persistent
        buffers are part of `state_dict()`; `to(dtype)` converts floating ones."""
        if "." in name or not name:
            raise KeyError(f"buffer name must be non-empty and contain no '.', got {name!r}")
        self.__dict__.pop(name, None)  # a plain attribute of that name would hide it
        self._buffers[name] = _buffer(array)
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register `module` as the child `name` (checked as PyTorch checks it)."""
        if not isinstance(name, str):
            raise TypeError(f"module name should be a string. Got {type(name).__name__}")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if "." in name:
            raise KeyError(f"module name can't contain \".\", got: {name}")
        if not name:
            raise KeyError('module name can\'t be empty string ""')
        if name not in self._modules and hasattr(self, name):
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    # -- calling -------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """`forward`, with the hooks around it: pre-hooks may replace the inputs, forward hooks
        the output; full backward hooks see the gradients at the module's boundary."""
        if not (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks):
            return self.forward(*args, **kwargs)  # the usual case, without a hook
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        boundary = _BackwardBoundary(self) if self._backward_hooks else None
        if boundary is not None:
            args = boundary.enter(args)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output if boundary is None else boundary.leave(output)

    # -- hooks ------------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """`hook(module, args)` before each forward; a value it returns replaces `args`."""
        return RemovableHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """`hook(module, args, output)` after each forward; a value it returns replaces the output."""
        return RemovableHandle(self._forward_hooks, hook)

    def register_full_backward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """`hook(module, grad_input, grad_output)` when the gradient of the module's input is known
        (tuples of Tensors, None where no gradient flows); a tuple it returns replaces grad_input.
        As PyTorch's; numpygpt supports modules with one tensor input, which every layer here is."""
        return RemovableHandle(self._backward_hooks, hook)

    # -- walking the tree ----------------------------------------------------------------
    def named_modules(self, memo: set[int] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """Every module in the tree, depth first, self first, named by its path ("" for self);
        a module reachable twice appears once unless `remove_duplicate=False`.
        (`memo` holds the ids of modules already seen, where PyTorch's holds the modules.)"""
        seen: set[int] = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if remove_duplicate:
                if id(m) in seen:
                    continue
                seen.add(id(m))
            yield name, m
            children = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items() if c is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """The modules of `named_modules()`, in its order, without building their names (a
        generation step walks them once per token)."""
        seen: set[int] = set()
        stack: list[Module] = [self]
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield m
            stack.extend(reversed([c for c in m._modules.values() if c is not None]))

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def apply(self, fn: Any) -> Module:
        """Call `fn(module)` on every child (recursively), then on self; returns self.
        The usual use is initialisation: `model.apply(init_weights)`."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) pairs; a parameter shared by two modules (tied weights) appears once."""
        seen: set[int] = set()
        mods = self.named_modules(prefix=prefix) if recurse else iter([(prefix, self)])
        for mod_name, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for mod_name, m in self.named_modules(prefix=prefix):
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def buffers(self) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers())

    # -- modes and gradients ---------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active) for this module and all below it."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off), the same as `train(False)`."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's `.grad` (or, with set_to_none=False, zero it in place)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data[...] = 0

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, *args: Any, dtype: Any = None, device: Any = None) -> Module:
        """Cast every floating parameter, gradient and buffer to a dtype (in place; returns self).
        As PyTorch's: `to(np.float64)`, `to("cpu")`, `to(device, dtype)`; the device must be the CPU."""
        dtype = _arguments.to_dtype(args, dtype, device)
        if dtype is None:
            return self
        if dtype.kind != "f":
            raise TypeError(f"Module.to: expected a floating dtype, got {dtype}")
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None and p.data.dtype != dtype:
                    p.data = p.data.astype(dtype)
                    if p.grad is not None:
                        p.grad = Tensor._wrap(p.grad.data.astype(dtype))
            for name, b in m._buffers.items():
                if b is not None and b.dtype.kind == "f":
                    m._buffers[name] = Tensor._wrap(b.data.astype(dtype))
        return self

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    def num_parameters(self) -> int:
        """Number of distinct trainable elements (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """name -> array for every parameter and persistent buffer, in PyTorch's order.
        The arrays are the module's own (not copies); tied weights appear under each name."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for key, (m, table, name) in self._state_slots().items():
            value = getattr(m, table)[name]
            out[key] = value.data
        return out

    def _state_slots(self) -> dict[str, tuple[Module, str, str]]:
        """Where each state_dict key lives, in PyTorch's order: (module, table, attribute name)."""
        slots: dict[str, tuple[Module, str, str]] = {}

        def visit(m: Module, prefix: str) -> None:
            for name, p in m._parameters.items():
                if p is not None:
                    slots[prefix + name] = (m, "_parameters", name)
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    slots[prefix + name] = (m, "_buffers", name)
            for name, c in m._modules.items():
                if c is not None:
                    visit(c, prefix + name + ".")

        visit(self, "")
        return slots

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> IncompatibleKeys:
        """Copy arrays into this module's parameters and buffers (cast to their dtype).

        Values may be NumPy arrays, Tensors, or anything `np.asarray` accepts (such as
        CPU torch tensors). With `strict=True`, missing or unexpected keys are an
        error; a shape mismatch always is. The error names every offending key, and
        nothing is changed unless every key checks out. With `assign=True` (as
        PyTorch's) a parameter takes a writable C-contiguous ndarray of its dtype
        itself, without a copy, so the model and the state_dict share that memory.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping of name -> array, got {type(state_dict).__name__}")
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        arrays: dict[str, np.ndarray] = {}
        problems = []
        for key, (m, table, name) in slots.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if isinstance(value, Tensor):
                value = value.data
            elif hasattr(value, "detach"):  # a torch tensor, perhaps one that requires grad
                value = value.detach()
            try:
                value = np.asarray(value)
            except (ValueError, TypeError, OverflowError) as e:  # ragged nested lists, an int too big, ...
                problems.append(f"{key}: not an array ({str(e)[:120]})")
                continue
            current = getattr(m, table)[name]
            current = current.data if isinstance(current, Tensor) else current
            if value.dtype.kind not in "fiub":
                problems.append(f"{key}: not a numeric array (dtype {value.dtype})")
            elif value.shape != current.shape:
                problems.append(f"{key}: shape {value.shape} in the state_dict, {current.shape} in the model")
            else:
                arrays[key] = value
        if strict and missing:
            problems.append("missing keys: " + _first(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + _first([str(k)[:120] for k in unexpected]))
        if problems:
            shown = problems[:20] + ([f"... and {len(problems) - 20:,} more"] if len(problems) > 20 else [])
            raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}:\n  " + "\n  ".join(shown))
        adopted: dict[int, Any] = {}  # with assign: id(array) -> the parameter that took it
        for key, value in arrays.items():
            m, table, name = slots[key]
            if table == "_parameters":
                p = m._parameters[name]
                if adopted.get(id(value)) is p:
                    continue  # a tied parameter under a second name already holds this very array
                if assign and _adoptable(value, p.dtype) and id(value) not in adopted:
                    p.data = value  # assign=True: the array itself, not a copy
                    adopted[id(value)] = p
                else:  # a second parameter given the same array gets its own copy
                    p.data = value.astype(p.dtype, copy=True)
            else:
                # a read-only array (the causal mask's O(T) view) is shared, not copied into a (T, T) one
                m._buffers[name] = Tensor._wrap(value.astype(m._buffers[name].dtype, copy=value.flags.writeable))
        return IncompatibleKeys(missing, unexpected)

    # -- printing ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            n = child.num_parameters() if child is not None else 0
            count = f"  # {n:,} parameters" if n and child is not None and child._modules else ""
            lines.append(f"  ({name}): {body}{count}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"


# ----------------------------------------------------------------------------- hooks


class _Identity(Function):
    """out = x;  dx = g passed to `on_grad`, which may replace it (a hook's place in the graph)"""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, on_grad: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        ctx.on_grad = on_grad
        return x

    @staticmethod
    def backward(ctx: Context, g: np.ndarray):
        return ctx.on_grad(g), None


class _BackwardBoundary:
    """One call of a module with full backward hooks: the identities on its input and output."""

    def __init__(self, module: Module) -> None:
        self.module, self.grad_output, self.input_needs_grad = module, None, False

    def enter(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        tensors = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        if len(tensors) > 1:
            raise NotImplementedError(f"{type(self.module).__name__}: full backward hooks on a module with "
                                      f"{len(tensors)} tensor inputs; numpygpt supports one")
        if not tensors or not args[tensors[0]].requires_grad:
            return args
        self.input_needs_grad = True
        i = tensors[0]
        return args[:i] + (_Identity.apply(args[i], self._input_grad),) + args[i + 1:]

    def leave(self, output: Any) -> Any:
        if not isinstance(output, Tensor) or not output.requires_grad:
            return output
        return _Identity.apply(output, self._output_grad)

    def _output_grad(self, g: np.ndarray) -> np.ndarray:
        self.grad_output = (Tensor._wrap(g),)
        if not self.input_needs_grad:  # nothing flows into the input: the hooks run now, as PyTorch's
            self._call_hooks(None)
        return g

    def _input_grad(self, g: np.ndarray) -> np.ndarray:
        return self._call_hooks(g)

    def _call_hooks(self, g: np.ndarray | None) -> np.ndarray | None:
        grad_input = (None if g is None else Tensor._wrap(g),)
        for hook in list(self.module._backward_hooks.values()):
            result = hook(self.module, grad_input, self.grad_output or (None,))
            if result is not None:
                grad_input = tuple(result)
        first = grad_input[0]
        return None if first is None else np.asarray(first.data if isinstance(first, Tensor) else first)
