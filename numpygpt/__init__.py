"""numpygpt: GPT-2 from scratch on NumPy, with its own tensor autograd engine.

    import numpygpt as npg
    x = npg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = (x @ x).tanh().sum()
    y.backward()
    x.grad            # dy/dx, a Tensor (x.grad.numpy() is the array)

The engine is autograd.py (Function, unbroadcast, grad mode, backward) under
tensor.py (Tensor), ops.py and reductions.py (the primitive ops); creation.py
makes new tensors; functional.py, module.py and nn.py build the layers the
seed's GPT-2 in model.py uses. `import numpygpt as torch` runs the seeds'
PyTorch code. The instruments: `reference` (record every tensor), `compare`
(the first divergence), `bugs`, `precision`, `llmc`, `graph`,
`trace_backward`, `gradflow`, `attention`. The README's architecture table
lists every module.
"""

# _signals first (it needs only the standard library): in the numpygpt command, a Ctrl-C or
# SIGTERM while the rest loads is reported in one line (see numpygpt/_signals.py)
from . import _signals, _memory, cuda, functional, functions, nn, ops, optim, utils
from ._checks import ShapeError, device
from ._printing import Size, get_printoptions, printoptions, set_printoptions
from .autograd import Context, Function, enable_grad, is_grad_enabled, no_grad, unbroadcast
from .creation import (
    arange,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .functions import (  # the torch namespace's functions and constants (these names shadow builtins here)
    abs,
    argmax,
    argmin,
    bincount,
    bool,
    cat,
    clamp,
    clip,
    double,
    exp,
    float,
    float32,
    float64,
    inf,
    inference_mode,
    isfinite,
    isinf,
    isnan,
    int32,
    int64,
    log,
    log_softmax,
    long,
    max,
    maximum,
    mean,
    min,
    minimum,
    multinomial,
    nan,
    pi,
    pow,
    set_grad_enabled,
    sigmoid,
    softmax,
    sqrt,
    stack,
    std,
    sum,
    tanh,
    topk,
    tril,
    triu,
    var,
    where,
)
from .gradcheck import GradcheckError, gradcheck
from .random import (
    Generator,
    default_generator,
    get_rng_state,
    initial_seed,
    manual_seed,
    set_rng_state,
)
from .tensor import Tensor, get_default_dtype, matmul, set_default_dtype
from .trace import trace_backward

__version__ = "0.2.0"

_memory.keep_freed_memory()  # big freed blocks stay paged in for the next step: numpygpt/_memory.py

# The instruments, after __version__ (reference bundles record it)
from . import attention, bugs, compare, gradflow, graph, llmc, precision, reference  # noqa: E402

__all__ = [
    "Context", "Function", "Generator", "GradcheckError", "ShapeError", "Size", "Tensor", "abs", "arange", "argmax", "attention", "bincount", "bugs", "compare", "cuda",
    "argmin", "bool", "cat", "clamp", "clip", "default_generator", "device", "double", "empty", "empty_like", "enable_grad",
    "exp", "eye", "float", "float32", "float64", "full", "full_like", "functional", "functions", "gradflow", "graph",
    "get_default_dtype", "get_printoptions", "get_rng_state", "gradcheck", "inf", "inference_mode", "initial_seed", "isfinite", "isinf", "isnan", "int32", "int64",
    "is_grad_enabled", "linspace", "llmc", "log", "log_softmax", "long", "manual_seed", "matmul", "max", "maximum", "mean", "min", "minimum",
    "multinomial", "nan", "nn", "no_grad", "optim", "ones", "ones_like", "ops", "pi", "pow", "precision", "printoptions", "rand", "randint", "randn",
    "randperm", "reference", "set_default_dtype", "set_grad_enabled", "set_printoptions", "set_rng_state", "sigmoid", "softmax", "sqrt", "stack",
    "std", "sum", "tanh", "tensor", "topk", "trace_backward", "tril", "triu", "unbroadcast", "utils", "var", "where", "zeros",
    "zeros_like",
]
