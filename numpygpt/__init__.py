"""numpygpt: GPT-2 from scratch on NumPy, with its own tensor autograd engine.

    import numpygpt as npg
    x = npg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = (x @ x).tanh().sum()
    y.backward()
    x.grad            # dy/dx, an ndarray

The engine is autograd.py (Function, unbroadcast, grad mode, backward) under
tensor.py (Tensor and its factories) and ops.py (the primitive ops);
functional.py and nn.py build the layers the seed's GPT-2 in model.py uses.
The README's architecture table lists every module.
"""

from . import functional, nn, ops, utils
from .autograd import Context, Function, enable_grad, is_grad_enabled, no_grad, unbroadcast
from .gradcheck import GradcheckError, gradcheck
from .random import Generator, default_generator, get_rng_state, initial_seed, manual_seed, set_rng_state
from .tensor import (
    Tensor,
    arange,
    cat,
    full,
    get_default_dtype,
    matmul,
    multinomial,
    ones,
    rand,
    randint,
    randn,
    randperm,
    set_default_dtype,
    stack,
    tensor,
    where,
    zeros,
)

__version__ = "0.2.0"

__all__ = [
    "Context", "Function", "Generator", "GradcheckError", "Tensor", "arange", "cat", "default_generator", "enable_grad", "full", "functional",
    "get_default_dtype", "get_rng_state", "gradcheck", "initial_seed", "is_grad_enabled", "manual_seed", "matmul", "multinomial", "nn",
    "no_grad", "ones", "ops", "rand", "randint", "randn", "randperm", "set_default_dtype", "set_rng_state", "stack", "tensor",
    "unbroadcast", "utils", "where", "zeros",
]
