"""The layers a GPT is built from, shaped like `torch.nn`, over `Module` and `Parameter` (module.py).

Linear, Embedding, LayerNorm, the activations, Dropout, the containers
(Sequential, ModuleList, ModuleDict) and the losses as modules. `GELU` takes
`approximate="none"` (exact, the default) or `"tanh"`, as PyTorch.
`nn.init` is numpygpt.init, `nn.functional` is numpygpt.functional.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from . import _checks, functional, init
from .module import IncompatibleKeys, Module, Parameter, RemovableHandle  # noqa: F401 (torch.nn's names)
from .tensor import Tensor, get_default_dtype

F = functional
sys.modules[__name__ + ".functional"] = functional  # `import numpygpt.nn.functional as F` works too
sys.modules[__name__ + ".init"] = init              # and `import numpygpt.nn.init`

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
