"""numpygpt: GPT-2 from scratch on NumPy, with its own tensor autograd engine.

    import numpygpt as npg
    x = npg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = (x @ x).tanh().sum()
    y.backward()
    x.grad            # dy/dx, an ndarray

Modules: tensor (Tensor, the engine), function (Function, unbroadcast), ops
(primitive ops), functional (fused NN functions), nn (Module and layers),
model (the seed's GPT-2), generate, tokenizer, optim, data, train,
checkpoint, gradcheck, graph, cli.
"""

from . import functional, nn, ops
from .function import Context, Function, unbroadcast
from .gradcheck import GradcheckError, gradcheck
from .random import get_rng_state, manual_seed, set_rng_state
from .tensor import (
    Tensor,
    arange,
    cat,
    enable_grad,
    full,
    get_default_dtype,
    is_grad_enabled,
    matmul,
    no_grad,
    ones,
    rand,
    randn,
    set_default_dtype,
    stack,
    tensor,
    where,
    zeros,
)

__version__ = "0.1.0"

__all__ = [
    "Context", "Function", "GradcheckError", "Tensor", "arange", "cat", "enable_grad", "full", "functional",
    "get_default_dtype", "get_rng_state", "gradcheck", "is_grad_enabled", "manual_seed", "matmul", "nn",
    "no_grad", "ones", "ops", "rand", "randn", "set_default_dtype", "set_rng_state", "stack", "tensor",
    "unbroadcast", "where", "zeros",
]
