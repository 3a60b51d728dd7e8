"""Modules: `Module`, `Parameter` and the layers a GPT is built from, shaped like `torch.nn`.

A `Module` registers what is assigned to it: a `Parameter` becomes a parameter,
a `Module` a child, and `register_buffer` adds a non-trained array (such as a
causal mask). `state_dict()` walks them in PyTorch's order (a module's own
parameters, then its buffers, then each child's), so the keys of a numpygpt
model and of the same model in PyTorch are the same list.

Differences from PyTorch: buffers and state_dict values are NumPy arrays.
`GELU` takes `approximate="none"` (exact, the default) or `"tanh"`, as PyTorch; `to()` takes a dtype only (there is one device).
`nn.init` is numpygpt.init, `nn.functional` is numpygpt.functional.
"""

from __future__ import annotations

import math
import sys
from collections import OrderedDict, namedtuple
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from . import _arguments, _checks, functional, init
from .tensor import Tensor, get_default_dtype

F = functional
sys.modules[__name__ + ".functional"] = functional  # `import numpygpt.nn.functional as F` works too
sys.modules[__name__ + ".init"] = init              # and `import numpygpt.nn.init`

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


def _buffer(value: Any) -> Tensor | None:
    """A buffer is a Tensor outside the graph, as PyTorch's; arrays and numbers are wrapped."""
    return value if value is None or isinstance(value, Tensor) else Tensor._wrap(np.asarray(value))


class Module:
    """Base class of every layer and model. Subclasses call `super().__init__()` first,
    assign parameters and child modules as attributes, and define `forward`."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

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
        return self.forward(*args, **kwargs)

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
        return (m for _, m in self.named_modules())

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

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into this module's parameters and buffers (cast to their dtype).

        Values may be NumPy arrays, Tensors, or anything `np.asarray` accepts (such as
        CPU torch tensors). With `strict=True`, missing or unexpected keys are an
        error; a shape mismatch always is. The error names every offending key, and
        nothing is changed unless every key checks out.
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
            value = np.asarray(value)
            current = getattr(m, table)[name]
            current = current.data if isinstance(current, Tensor) else current
            if value.dtype.kind not in "fiub":
                problems.append(f"{key}: not a numeric array (dtype {value.dtype})")
            elif value.shape != current.shape:
                problems.append(f"{key}: shape {value.shape} in the state_dict, {current.shape} in the model")
            else:
                arrays[key] = value
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}:\n  " + "\n  ".join(problems))
        for key, value in arrays.items():
            m, table, name = slots[key]
            if table == "_parameters":
                p = m._parameters[name]
                p.data = value.astype(p.dtype, copy=True)
            else:
                m._buffers[name] = Tensor._wrap(value.astype(m._buffers[name].dtype, copy=True))
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


def _empty(*shape: int) -> Parameter:
    """A parameter of `shape` in the default dtype, for an `nn.init` function to fill."""
    return Parameter(np.empty(shape, dtype=get_default_dtype()))


class Linear(Module):
    """y = x Wᵀ + b; `weight` (out_features, in_features), `bias` (out_features,).

    Initialised as PyTorch's `reset_parameters`, weight first, then bias:
    init.kaiming_uniform_(weight, a=√5), i.e. U(-b, b) with b = √3 · gain / √in and
    gain = √(2 / (1 + a²)), which is 1/√in up to rounding; then bias U(-1/√in, 1/√in).
    The same formulas and draws as PyTorch's, so the numbers match it bit for bit."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        _checks.integer(in_features, "Linear: in_features", minimum=0)
        _checks.integer(out_features, "Linear: out_features", minimum=0)
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty(out_features, in_features)
        if bias:
            self.bias = _empty(out_features)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: row i of `weight` (num_embeddings, embedding_dim) for id i.
    Initialised N(0, 1) by init.normal_, drawn as PyTorch's `normal_` draws it."""

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        _checks.integer(num_embeddings, "Embedding: num_embeddings", minimum=0)
        _checks.integer(embedding_dim, "Embedding: embedding_dim", minimum=0)
        if num_embeddings == 0:
            raise ValueError("Embedding: num_embeddings must be at least 1")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = _empty(num_embeddings, embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)

    def forward(self, ids: Any) -> Tensor:
        return F.embedding(ids, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """PyTorch's LayerNorm: `weight` (ones) and `bias` (zeros) over `normalized_shape`.
    (The seed's own LayerNorm, with `scale` and `shift`, is in numpygpt.model.)"""

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5, elementwise_affine: bool = True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        for i, n in enumerate(shape):
            _checks.integer(n, f"LayerNorm: normalized_shape[{i}]", minimum=0)
        self.normalized_shape, self.eps = shape, eps
        if elementwise_affine:
            self.weight = Parameter(np.ones(shape, dtype=get_default_dtype()))
            self.bias = Parameter(np.zeros(shape, dtype=get_default_dtype()))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class GELU(Module):
    """GELU, as `torch.nn.GELU`: the exact x·Φ(x) by default (approximate="none"), or the
    tanh form with approximate="tanh" (GPT-2's; the seed's own `model.GELU` is that one)."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    """σ(x) = 1 / (1 + e⁻ˣ)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Identity(Module):
    """Returns its input; any constructor arguments are ignored, as PyTorch's."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Softmax(Module):
    """Softmax along `dim` (see `functional.softmax` for dim=None, which PyTorch deprecates)."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log(softmax(x)) along `dim`, computed stably."""

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)


class Dropout(Module):
    """Zeroes elements with probability p in training mode; the identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _Indexed(Module):
    """Children named "0", "1", ..., reachable by index, `len` and iteration."""

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class Sequential(_Indexed):
    """Calls its children in order; children are named "0", "1", ... as in PyTorch."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(_Indexed):
    """A list of modules, registered as children "0", "1", ... (no forward of its own)."""

    def __init__(self, modules: Any = ()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Any) -> ModuleList:
        for m in modules:
            self.append(m)
        return self


class ModuleDict(Module):
    """Modules by name, registered as children under those names (so `state_dict` keys are
    "name.weight", ...), in insertion order; a dict's methods, no forward of its own."""

    def __init__(self, modules: Any = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Any:
        return self._modules.keys()

    def items(self) -> Any:
        return self._modules.items()

    def values(self) -> Any:
        return self._modules.values()

    def clear(self) -> None:
        self._modules.clear()

    def pop(self, key: str) -> Module:
        value = self[key]
        del self[key]
        return value

    def update(self, modules: Any) -> None:
        """Add (or replace) from a mapping, or from an iterable of (name, module) pairs."""
        pairs = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        if not isinstance(pairs, Iterable):
            raise TypeError("ModuleDict.update should be called with an iterable of key/value pairs, "
                            f"but got {type(modules).__name__}")
        for j, pair in enumerate(pairs):
            if not isinstance(pair, Iterable):
                raise TypeError(f"ModuleDict update sequence element #{j} should be Iterable; is {type(pair).__name__}")
            if len(pair := tuple(pair)) != 2:
                raise ValueError(f"ModuleDict update sequence element #{j} has length {len(pair)}; 2 is required")
            self[pair[0]] = pair[1]


class MSELoss(Module):
    """Mean squared error, `reduction` 'mean' (default), 'sum' or 'none'."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


class CrossEntropyLoss(Module):
    """Cross-entropy of logits (..., V) against integer targets (...) or class probabilities
    (..., V), see `functional.cross_entropy` (no class `weight`: pass the rest by keyword)."""

    def __init__(self, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(input, target, ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)


class NLLLoss(Module):
    """Negative log-likelihood of log-probabilities (..., V) at integer targets (...),
    see `functional.nll_loss` (no class `weight`)."""

    def __init__(self, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        self.ignore_index, self.reduction = ignore_index, reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.nll_loss(input, target, ignore_index=self.ignore_index, reduction=self.reduction)
