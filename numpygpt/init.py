"""Parameter initialisation, as `torch.nn.init` (reached as `numpygpt.nn.init`).

Each function fills a tensor's array in place, without recording a graph, and
returns the tensor. The random ones draw from numpygpt's generator (PyTorch's
CPU generator rebuilt, `numpygpt.random`) with PyTorch's own formulas for the
bounds, so after the same `manual_seed` the numbers are PyTorch's: bit for bit
for the uniform ones, within a few ulp for float32 normals.

    fan_in  = size(1) · receptive field,  fan_out = size(0) · receptive field
    (the receptive field is the product of the sizes after the first two)
    xavier:  std = gain · √(2 / (fan_in + fan_out))      uniform bound = √3 · std
    kaiming: std = gain / √fan                           uniform bound = √3 · std

Differences from PyTorch: the tensor is a numpygpt Tensor (or Parameter);
`trunc_normal_`, `orthogonal_`, `sparse_` and `dirac_` are not here.

`no_init()` is numpygpt's own: inside `with init.no_init():` every function
here leaves its tensor as it is, so a model built there keeps the
uninitialised `np.empty` arrays of its parameters and draws no random
numbers. That is for weights about to be loaded (`GPTModel.from_pretrained`
builds its model this way); PyTorch's counterpart is
`torch.nn.utils.skip_init(Module, ...)`.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Iterator

import numpy as np

from .autograd import no_grad
from .random import Generator, default_generator
from .tensor import Tensor

__all__ = ["calculate_gain", "constant_", "eye_", "kaiming_normal_", "kaiming_uniform_", "no_init", "normal_",
           "ones_", "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_"]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


_mode = threading.local()  # _mode.skip: True inside no_init() (per thread, as grad mode)


@contextlib.contextmanager
def no_init() -> Iterator[None]:
    """Inside this block the init functions return their tensor untouched.

    A model built here has parameters holding whatever `np.empty` gave
    (garbage, not zeros) and no random number is drawn, so the generator's
    state is unchanged. Use it only when every parameter is overwritten
    next, e.g. by a strict `load_state_dict`:

        with init.no_init():
            model = GPTModel(cfg)              # fast: nothing is filled
        model.load_state_dict(weights)         # every value comes from here
    """
    previous = getattr(_mode, "skip", False)
    _mode.skip = True
    try:
        yield
    finally:
        _mode.skip = previous


def _skipping() -> bool:
    return getattr(_mode, "skip", False)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps activations' variance steady through `nonlinearity`:
    1 for linear and sigmoid, 5/3 for tanh, √2 for relu, √(2 / (1 + slope²)) for
    leaky_relu (slope `param`, default 0.01), 3/4 for selu."""
    if nonlinearity in _LINEAR or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _fans(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shaped (out, in, *receptive field)."""
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _fans(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _write(tensor: Tensor, values: np.ndarray | float) -> Tensor:
    """Overwrite the tensor's array in place (other holders of the array see the change)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"expected a numpygpt Tensor, got {type(tensor).__name__}")
    if _skipping():
        return tensor
    with no_grad():
        tensor.data[...] = values
    return tensor


def _float_dtype(tensor: Tensor, name: str) -> np.dtype:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: expected a numpygpt Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind != "f":
        raise NotImplementedError(f"{name}: random floats cannot fill a tensor of dtype {tensor.dtype}")
    return tensor.dtype


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill with U[a, b), as `tensor.uniform_(a, b)`."""
    dtype = _float_dtype(tensor, "uniform_")
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}")
    if _skipping():  # no_init(): draw nothing
        return tensor
    gen = default_generator if generator is None else generator
    return _write(tensor, gen.uniform(tensor.shape, a, b, dtype=dtype))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill with N(mean, std²), as `tensor.normal_(mean, std)`."""
    dtype = _float_dtype(tensor, "normal_")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    if _skipping():  # no_init(): draw nothing
        return tensor
    gen = default_generator if generator is None else generator
    return _write(tensor, gen.normal(tensor.shape, mean, std, dtype=dtype))


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with `val`."""
    return _write(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0."""
    return _write(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1."""
    return _write(tensor, 1)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity (ones on the diagonal, zeros elsewhere)."""
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _write(tensor, np.eye(*tensor.shape))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Glorot: U(-a, a) with a = √3 · gain · √(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Glorot: N(0, std²) with std = gain · √(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float | None:
    """gain / √fan, or None (after PyTorch's warning) for a tensor with no elements."""
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    fan = _fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator: Generator | None = None) -> Tensor:
    """He: U(-bound, bound) with bound = √3 · gain / √fan, gain = calculate_gain(nonlinearity, a).
    (nn.Linear uses a = √5, which makes bound = 1/√fan_in.)"""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator: Generator | None = None) -> Tensor:
    """He: N(0, std²) with std = gain / √fan, gain = calculate_gain(nonlinearity, a)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)
