"""Optimisers and gradient clipping.

The optimisers work on *parameters* by duck typing: an object with

    .data  the ndarray of values, updated in place
    .grad  a Tensor (or an ndarray) of the same shape, or None when it has no gradient

which is what `numpygpt.nn.Parameter` provides. Nothing else of the engine is
used, so an optimiser can be read (and tested) on its own; only
`param_groups_for_weight_decay` looks at a model's modules.

| name | PyTorch counterpart |
|---|---|
| `Optimizer` | `torch.optim.Optimizer` |
| `SGD`, `AdamW` | `torch.optim.SGD`, `torch.optim.AdamW` (default single-tensor algorithm) |
| `clip_grad_norm_` | `torch.nn.utils.clip_grad_norm_` |
| `param_groups_for_weight_decay` | the decay / no-decay split of nanoGPT's `configure_optimizers` |
| `lr_scheduler` | `torch.optim.lr_scheduler`: the learning-rate schedules (numpygpt.lr_scheduler), whose names are also here |

An optimiser's `state_dict()` holds only Python numbers, lists, tuples and
ndarrays (no objects to pickle), so a checkpoint can store the arrays with
safetensors and everything else as JSON.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from . import _parallel, lr_scheduler
from .lr_scheduler import CosineWithWarmup, LambdaLR, LRScheduler, lr_at, warmup_cosine
from .nn import Linear

sys.modules[__name__ + ".lr_scheduler"] = lr_scheduler  # `import numpygpt.optim.lr_scheduler` works, as torch's

__all__ = [
    "Optimizer",
    "SGD",
    "AdamW",
    "clip_grad_norm_",
    "param_groups_for_weight_decay",
    "lr_scheduler",
    "LRScheduler",
    "LambdaLR",
    "CosineWithWarmup",
    "warmup_cosine",
    "lr_at",
]

# A parameter is anything with `.data` (ndarray) and `.grad` (a Tensor, an ndarray or None).
Param = Any
ParamsT = Iterable[Param] | Iterable[dict[str, Any]]

# AdamW updates big parameters (the 124M model's token embedding alone has
# 38.6M values) in flat chunks of this many bytes per array: one chunk-sized
# scratch buffer replaces the full-size temporaries an elementwise update would
# make, and each chunk stays in cache while all of its operations run, so the
# parameter, its gradient and both moments cross main memory once per step.
# Smaller chunks pay NumPy's per-call cost 13 times each; the 124M float32 update
# measured 0.32 s with 256 KiB, 0.28 s with 512 KiB and 0.29 s with 1 MiB (float64:
# 0.59 s with 512 KiB, 0.60 s with 1 MiB), on a CPU with 2 MiB of L2 per core.
# A parameter of several chunks has them dealt out to threads in turn
# (`_parallel`); every number is computed as it would be in one thread.
_CHUNK_BYTES = 512 << 10


def _grad_array(p: Param) -> np.ndarray | None:
    """A parameter's gradient as an array: `.grad` is a Tensor (or an ndarray, or None)."""
    g = p.grad
    return g if g is None or isinstance(g, np.ndarray) else g.data


def _check_param(p: Any, where: str) -> None:
    data = getattr(p, "data", None)
    if not isinstance(data, np.ndarray) or not hasattr(p, "grad"):
        raise TypeError(f"{where}: optimisers take parameters with an ndarray `.data` and a `.grad` "
                        f"(numpygpt.nn.Parameter), got {type(p).__name__}")
    if not np.issubdtype(data.dtype, np.floating):
        raise TypeError(f"{where}: can only optimise floating-point parameters, got dtype {data.dtype}")


class MissingParamsError(KeyError, ValueError):
    """A parameter group without "params": KeyError as in PyTorch, ValueError as numpygpt raised before."""

    def __str__(self) -> str:  # a sentence, not the quoted key a KeyError prints
        return str(self.args[0]) if self.args else ""


def _number(value: Any, name: str, what: str) -> float:
    """A hyperparameter as a float, or TypeError naming it (NaN passes, for the range check to refuse)."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()  # a 0-d array holding a number
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"Invalid {what}: {repr(value)[:80]} ({name} must be a number, got {type(value).__name__})")
    return float(value)


def _plain(value: Any) -> Any:
    """`value` with NumPy scalars turned into Python numbers (so it is JSON-able)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _as_int(value: Any, what: str) -> int:
    """`value` as an int: Python and NumPy integers and integral 0-d arrays are accepted."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(value)


class Optimizer:
    """Base class of the optimisers, like `torch.optim.Optimizer`.

    `params` is an iterable of parameters, or of parameter groups: dicts with a
    "params" entry plus any hyperparameters that override the optimiser's
    defaults for that group, e.g.

        AdamW([{"params": decay, "weight_decay": 0.1},
               {"params": no_decay, "weight_decay": 0.0}], lr=4e-4)

    Attributes:
        param_groups: list of dicts, each with "params" (list of parameters)
            and that group's hyperparameters. Schedulers change "lr" here.
        state: per-parameter state, ``state[i]`` for the i-th parameter counted
            across the groups in order. (PyTorch keys this dict by the
            parameter object; numpygpt keys it by the index the state_dict uses.)

    `state_dict()` returns::

        {
            "state": {i: {"step": int, "exp_avg": ndarray, ...}, ...},
            "param_groups": [{"lr": float, ..., "params": [i, j, ...]}, ...],
        }

    Indices i count the parameters across all groups in order, starting at 0;
    parameters that never had a step have no entry in "state". An entry holds
    "step", "exp_avg", "exp_avg_sq" for AdamW and "momentum_buffer" for SGD
    with momentum; "step" is an int (a 0-d tensor in PyTorch). Each group's
    "params" lists the indices of its parameters and the other keys are that
    group's hyperparameters as Python numbers (tuples for "betas"), including
    "initial_lr" once a scheduler has recorded it there. Arrays are
    the live state arrays, as in PyTorch: copy them if you need a snapshot
    while training continues. After a JSON round trip, string keys ("0") and
    lists in place of tuples are accepted by `load_state_dict`.
    """

    # Keys every entry of `state` must have once written (checked on load).
    _state_keys: tuple[str, ...] = ()

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}
        if isinstance(params, np.ndarray) or hasattr(params, "data"):
            raise TypeError(
                "params must be an iterable of parameters or of parameter groups, "
                f"got a single {type(params).__name__}; wrap it in a list"
            )
        if hasattr(params, "parameters") and not hasattr(params, "__iter__"):
            raise TypeError("params must be an iterable of parameters: pass model.parameters(), not the model")
        if isinstance(params, Mapping):
            raise TypeError("params must be an iterable of parameters or of parameter groups, got a dict; "
                            "wrap one parameter group in a list: [{'params': ...}]")
        if isinstance(params, (str, bytes)) or not hasattr(params, "__iter__"):
            raise TypeError("params must be an iterable of parameters or of parameter groups, "
                            f"got {type(params).__name__} {params!r:.80}")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {value}" for key, value in sorted(group.items()) if key != "params"]
        return "\n".join(lines) + "\n)"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (a dict with "params" and optional hyperparameters)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise MissingParamsError(f'parameter group {len(self.param_groups)} has no "params" entry '
                                     f"(its keys: {', '.join(map(str, param_group)) or 'none'})")
        params = param_group["params"]
        if isinstance(params, np.ndarray) or hasattr(params, "data"):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("a parameter group's params must be an ordered collection, not a set")
        params = list(params)
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        for i, p in enumerate(params):
            _check_param(p, f"parameter {i} of group {len(self.param_groups)}")
            if id(p) in seen:
                raise ValueError("some parameters appear more than once (in one group or across groups)")
            seen.add(id(p))
        group = {key: _plain(value) for key, value in param_group.items() if key != "params"}
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_hyperparameters(group)
        group["params"] = params
        self.param_groups.append(group)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        """Raise for a group's invalid hyperparameters (per optimiser), as PyTorch does:
        TypeError for one that is not a number, ValueError for a number out of range
        (with PyTorch's wording, "Invalid learning rate: -1", and the argument's name)."""
        if not _number(group["lr"], "lr", "learning rate") >= 0.0:
            raise ValueError(f"Invalid learning rate: {group['lr']} (lr must be >= 0)")
        if not _number(group.get("weight_decay", 0.0), "weight_decay", "weight_decay value") >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']} (weight_decay must be >= 0)")

    def _indexed_params(self) -> Iterator[tuple[int, dict[str, Any], Param]]:
        """(index, group, parameter) for every parameter, indices as in `state`."""
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield index, group, p
                index += 1

    def _grad(self, index: int, p: Param) -> np.ndarray | None:
        """The parameter's gradient array, checked against its shape."""
        grad = _grad_array(p)
        if grad is None:
            return None
        if getattr(grad, "shape", None) != p.data.shape:
            raise ValueError(f"parameter {index} has shape {p.data.shape} but its gradient has shape "
                             f"{getattr(grad, 'shape', type(grad).__name__)}")
        return grad

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (default) or to zeros in place."""
        for _, _, p in self._indexed_params():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                _grad_array(p)[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns `closure()` if given."""
        loss = closure() if closure is not None else None
        for index, group, p in self._indexed_params():
            grad = self._grad(index, p)
            if grad is not None:
                self._update(index, group, p, grad)
        return loss

    def _update(self, index: int, group: dict[str, Any], p: Param, grad: np.ndarray) -> None:
        """Apply one step to parameter `index` (each optimiser's own rule)."""
        raise NotImplementedError

    # ----------------------------------------------------------- state_dict
    def state_dict(self) -> dict[str, Any]:
        """The optimiser state as plain numbers and ndarrays (see the class docstring)."""
        groups = []
        index = 0
        for group in self.param_groups:
            saved = {key: _plain(value) for key, value in group.items() if key != "params"}
            saved["params"] = list(range(index, index + len(group["params"])))
            index += len(group["params"])
            groups.append(saved)
        state = {i: dict(entry) for i, entry in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a `state_dict()`: hyperparameters of each group and per-parameter state.

        The loaded groups must match this optimiser's groups in number and in
        size, and each state array the shape of its parameter. Arrays are
        copied (cast to the parameter's dtype). Nothing changes if a check fails.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise ValueError(f"optimizer state_dict is missing {key!r}")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, "
                f"but the optimizer has {len(self.param_groups)}"
            )
        # Saved index -> this optimiser's index, by position, as PyTorch does.
        index_map: dict[int, int] = {}
        new_groups = []
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, Mapping) or "params" not in saved:
                raise ValueError(f'loaded parameter group {g} must be a dict with a "params" entry')
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"parameter group {g} has {len(saved['params'])} parameters in the loaded "
                    f"state dict, but {len(group['params'])} in the optimizer"
                )
            for saved_index in saved["params"]:
                saved_index = _as_int(saved_index, f"an index in parameter group {g}")
                if saved_index in index_map:
                    raise ValueError(f"parameter index {saved_index} appears twice in the loaded param_groups")
                index_map[saved_index] = len(index_map)
            new_group = {key: value for key, value in saved.items() if key != "params"}
            if isinstance(new_group.get("betas"), list):
                new_group["betas"] = tuple(new_group["betas"])
            for key, value in self.defaults.items():
                new_group.setdefault(key, value)
            self._check_hyperparameters(new_group)
            new_group["params"] = group["params"]
            new_groups.append(new_group)

        params = [p for _, _, p in self._indexed_params()]
        new_state: dict[int, dict[str, Any]] = {}
        for key, entry in state_dict["state"].items():
            if isinstance(key, str) and key.isdigit():  # JSON turns int keys into strings
                key = int(key)
            saved_index = _as_int(key, "a key of the loaded state")
            if saved_index not in index_map:
                raise ValueError(f"loaded state has an entry for parameter {saved_index}, which no group lists")
            index = index_map[saved_index]
            p = params[index]
            if not isinstance(entry, Mapping):
                raise TypeError(f"loaded state of parameter {saved_index} must be a dict, got {type(entry).__name__}")
            missing = [k for k in self._state_keys if k not in entry]
            if missing:
                raise ValueError(f"loaded state of parameter {saved_index} is missing {', '.join(missing)}")
            loaded = {}
            for name, value in entry.items():
                if name == "step":
                    loaded[name] = _as_int(value, f"step of parameter {saved_index}")
                elif isinstance(value, np.ndarray):
                    array = value
                    if array.shape != p.data.shape:
                        raise ValueError(
                            f"loaded {name} of parameter {saved_index} has shape {array.shape}, "
                            f"but the parameter has shape {p.data.shape}"
                        )
                    loaded[name] = np.array(array, dtype=p.data.dtype, order="C", copy=True)
                else:
                    loaded[name] = _plain(value)
            new_state[index] = loaded
        self.param_groups = new_groups
        self.state = new_state


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, as `torch.optim.SGD`.

    For each parameter with gradient g:

        g = g + weight_decay * p                  (if weight_decay != 0)
        buf = g                                    (first step)
        buf = momentum * buf + (1 - dampening) * g (later steps)
        g = g + momentum * buf  if nesterov  else  buf   (if momentum != 0)
        p = p - lr * g

    State per parameter: "momentum_buffer" (only when momentum != 0).
    `maximize`, `foreach` and `fused` are not supported.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        _number(group["dampening"], "dampening", "dampening value")
        if not _number(group["momentum"], "momentum", "momentum value") >= 0.0:
            raise ValueError(f"Invalid momentum value: {group['momentum']}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update(self, index: int, group: dict[str, Any], p: Param, grad: np.ndarray) -> None:
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad + weight_decay * p.data
        if momentum != 0:
            state = self.state.setdefault(index, {})
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(grad, dtype=p.data.dtype, copy=True)
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        data = p.data
        data -= lr * grad


class AdamW(Optimizer):
    """Adam with decoupled weight decay, as `torch.optim.AdamW`.

    The update is PyTorch's default (single-tensor, non-amsgrad) algorithm,
    with its order of operations (but for one identity in the last step, see
    `_adamw_kernel`), so float64 results agree with PyTorch to rounding. For each parameter p with gradient g, at step t = 1, 2, ...:

        p = p * (1 - lr * weight_decay)           decoupled weight decay
        m = m + (1 - beta1) * (g - m)             = beta1 m + (1 - beta1) g
        v = beta2 * v + (1 - beta2) * g * g
        bias_correction1 = 1 - beta1 ** t
        bias_correction2 = 1 - beta2 ** t
        step_size = lr / bias_correction1
        denom = sqrt(v) / sqrt(bias_correction2) + eps
        p = p - step_size * m / denom

    State per parameter: "step" (int; PyTorch keeps a 0-d tensor), "exp_avg"
    (m) and "exp_avg_sq" (v), allocated at the parameter's first step (views of one buffer).
    Everything is updated in place in chunks, without full-size temporaries,
    a large parameter's chunks in threads. `amsgrad`, `maximize`, `foreach`, `capturable` and `fused` are not supported.
    """

    _state_keys = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        betas = tuple(betas) if isinstance(betas, (tuple, list)) else betas  # anything else: refused below
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self._scratch: dict[tuple[np.dtype, int], np.ndarray] = {}

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)):
            raise TypeError(f"betas must be a pair of numbers (beta1, beta2), got {type(betas).__name__} {betas!r:.80}")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair of numbers (beta1, beta2), got {len(betas)}: {betas!r:.80}")
        group["betas"] = tuple(betas)
        for i, beta in enumerate(betas):
            if not 0.0 <= _number(beta, f"betas[{i}]", f"beta parameter at index {i}") < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta} (betas[{i}] must be in [0, 1))")
        if not _number(group["eps"], "eps", "epsilon value") >= 0.0:
            raise ValueError(f"Invalid epsilon value: {group['eps']} (eps must be >= 0)")

    def _scratch_for(self, dtype: np.dtype, thread: int) -> np.ndarray:
        """One chunk-sized scratch buffer per dtype and thread, reused by every parameter and step."""
        if (dtype, thread) not in self._scratch:
            self._scratch[dtype, thread] = np.empty(_CHUNK_BYTES // dtype.itemsize, dtype)
        return self._scratch[dtype, thread]

    def _new_state(self) -> None:
        """m and v, zeros, for every parameter with a gradient and no state yet: views of one buffer
        per dtype, not an array each. Arrays of a parameter each land in the holes the step's freed
        activations left, and the next step's activations then grow the heap instead (the 124M
        train step's peak: 2,844 MiB so, 2,813 MiB with one buffer)."""
        new = [(i, p) for i, _, p in self._indexed_params() if i not in self.state and _grad_array(p) is not None]
        for dtype in {p.data.dtype for _, p in new}:
            params = [(i, p) for i, p in new if p.data.dtype == dtype]
            sizes = [p.data.size for _, p in params]
            m, v = (np.zeros(sum(sizes), dtype) for _ in range(2))
            for (i, p), end, size in zip(params, np.cumsum(sizes), sizes):
                views = (a[end - size:end].reshape(p.data.shape) for a in (m, v))
                self.state[i] = dict(zip(self._state_keys, (0, *views)))

    def _update(self, index: int, group: dict[str, Any], p: Param, grad: np.ndarray) -> None:
        data = p.data
        if index not in self.state:
            self._new_state()
        state = self.state[index]
        state["step"] += 1
        step = state["step"]
        # Python floats: NumPy keeps float32 arrays float32 with them (a np.float64 would promote)
        beta1, beta2 = (float(b) for b in group["betas"])
        lr, weight_decay, eps = float(group["lr"]), float(group["weight_decay"]), float(group["eps"])
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        hyper = dict(decay=1 - lr * weight_decay, beta1=beta1, beta2=beta2,
                     step_size=lr / bias_correction1, bias_correction2_sqrt=bias_correction2_sqrt, eps=eps)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if grad.dtype != data.dtype:
            grad = grad.astype(data.dtype)
        if data.flags.c_contiguous and grad.flags.c_contiguous:
            flat = [a.reshape(-1) for a in (data, grad, m, v)]
            size = _CHUNK_BYTES // data.itemsize                # numbers per chunk
            chunks = range(0, data.size, size)
            runs = min(len(chunks), _parallel.num_threads())  # thread k takes chunks k, k + runs, ...

            def run(k: int) -> None:
                scratch = self._scratch_for(data.dtype, k)
                for start in chunks[k::runs]:
                    chunk = [a[start : start + size] for a in flat]
                    _adamw_kernel(*chunk, scratch[: chunk[0].size], **hyper)

            _parallel.map_in_threads(run, range(runs))
        else:
            _adamw_kernel(data, grad, m, v, np.empty_like(data), **hyper)


def _adamw_kernel(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    s: np.ndarray,
    *,
    decay: float,
    beta1: float,
    beta2: float,
    step_size: float,
    bias_correction2_sqrt: float,
    eps: float,
) -> None:
    """One AdamW step on equally shaped arrays, in place, with `s` as the only scratch.

    The class docstring's equations in 13 in-place ufunc calls (PyTorch's
    `_single_tensor_adam` in comments). The last step uses an identity: with
    c = sqrt(bias_correction2),

        step_size * m / (sqrt(v) / c + eps)  =  (step_size * c) * m / (sqrt(v) + eps * c)

    so the bias corrections stay two scalars and no pass divides by c.
    """
    if decay != 1.0:                                    # param.mul_(1 - lr * weight_decay)
        np.multiply(p, decay, out=p)
    np.subtract(g, m, out=s)                            # exp_avg.lerp_(grad, 1 - beta1): m + (1 - beta1) (g - m)
    np.multiply(s, 1 - beta1, out=s)
    np.add(m, s, out=m)
    np.multiply(v, beta2, out=v)                        # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
    np.multiply(g, g, out=s)
    np.multiply(s, 1 - beta2, out=s)
    np.add(v, s, out=v)
    np.sqrt(v, out=s)                                   # denom · c = sqrt(v) + eps · c
    np.add(s, eps * bias_correction2_sqrt, out=s)
    np.divide(m, s, out=s)                              # param.addcdiv_(exp_avg, denom, value=-step_size)
    np.multiply(s, step_size * bias_correction2_sqrt, out=s)
    np.subtract(p, s, out=p)


# --------------------------------------------------------------------------- clipping
def _grad_norm(grad: np.ndarray, norm_type: float) -> float:
    """The p-norm of one gradient, as a Python float."""
    if grad.size == 0:
        return 0.0
    if norm_type == math.inf:
        return float(max(grad.max(), -grad.min()))
    if norm_type == 2.0:
        flat = grad.reshape(-1)
        return math.sqrt(float(np.dot(flat, flat)))
    return float(np.sum(np.abs(grad) ** norm_type)) ** (1.0 / norm_type)


def clip_grad_norm_(
    parameters: Param | Iterable[Param],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Scale gradients in place so that their total norm is at most `max_norm`.

    As `torch.nn.utils.clip_grad_norm_`: the total norm is the `norm_type`
    norm of the per-parameter gradient norms (as if all gradients were one
    vector); every gradient is multiplied by

        clip_coef = min(max_norm / (total_norm + 1e-6), 1)

    Parameters without a gradient are skipped. Returns the total norm before
    clipping, as a Python float (PyTorch returns a 0-d tensor). `norm_type`
    is a positive number or `math.inf`. With `error_if_nonfinite` a NaN or
    infinite total norm raises RuntimeError; otherwise it is propagated into
    the gradients, as PyTorch does.
    """
    if hasattr(parameters, "grad") and hasattr(parameters, "data"):
        parameters = [parameters]
    norm_type = float(norm_type)
    if not (norm_type > 0):
        raise ValueError(f"norm_type must be positive or inf, got {norm_type}")
    max_norm = float(max_norm)
    grads = [_grad_array(p) for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norms = [_grad_norm(g, norm_type) for g in grads]
    if norm_type == math.inf:
        total_norm = float(np.max(norms))  # NaN-propagating, unlike Python's max
    else:
        total_norm = math.fsum(n**norm_type for n in norms) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total_norm):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            "so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    clip_coef = max_norm / (total_norm + 1e-6)
    # min() keeps a NaN coefficient (1.0 < NaN is False), as torch.clamp does.
    clip_coef_clamped = min(clip_coef, 1.0)
    if clip_coef_clamped != 1.0:  # multiplying by exactly 1 would change nothing
        for g in grads:
            np.multiply(g, g.dtype.type(clip_coef_clamped), out=g)
    return total_norm


# --------------------------------------------------------------------------- groups
def param_groups_for_weight_decay(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """Split a model's parameters into a decayed and a non-decayed group.

    Weight matrices of `numpygpt.nn.Linear` layers (2-D and up) decay; biases,
    LayerNorm `scale`/`shift` and embeddings do not. A weight shared between
    a Linear layer and an embedding (weight tying) decays. Returns

        [{"params": [...], "weight_decay": weight_decay},
         {"params": [...], "weight_decay": 0.0}]

    ready for `AdamW(groups, lr=...)`; both groups are present even if one is
    empty, so the optimizer state always has two groups.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    linear_weights = {
        id(module.weight)
        for module in model.modules()
        if isinstance(module, Linear) and getattr(module, "weight", None) is not None
    }
    decay, no_decay, seen = [], [], set()
    for _, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if id(p) in linear_weights and p.data.ndim >= 2:
            decay.append(p)
        else:
            no_decay.append(p)
    return [{"params": decay, "weight_decay": float(weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]
