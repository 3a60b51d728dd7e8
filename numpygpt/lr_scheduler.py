"""Learning-rate schedules, as `torch.optim.lr_scheduler`.

A scheduler owns no parameters: it rewrites the "lr" of each of its
optimizer's `param_groups` as a function of how many steps it has taken.
Call `scheduler.step()` once after every `optimizer.step()`.

| name | PyTorch counterpart |
|---|---|
| `LRScheduler` | `torch.optim.lr_scheduler.LRScheduler` (the base class) |
| `LambdaLR` | `torch.optim.lr_scheduler.LambdaLR` |
| `CosineWithWarmup`, `warmup_cosine` | linear warmup then cosine decay, as in the book's training loop (appendix D) |
| `lr_at` | that schedule's rate at one step, in closed form |

The schedules read and write only `optimizer.param_groups` (a list of dicts,
each with an "lr"), so any numpygpt optimiser can be driven by them. A
scheduler's `state_dict()` is plain Python numbers and lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from . import _checks

__all__ = ["LRScheduler", "LambdaLR", "CosineWithWarmup", "warmup_cosine", "lr_at"]


def lr_at(
    step: int,
    *,
    peak_lr: float,
    warmup_steps: int,
    total_steps: int,
    initial_lr: float = 0.0,
    min_lr: float = 0.0,
) -> float:
    """Learning rate at `step` of linear warmup followed by cosine decay.

        step < warmup_steps:   initial_lr + step * (peak_lr - initial_lr) / warmup_steps
        otherwise:             min_lr + (peak_lr - min_lr) * 0.5 * (1 + cos(pi * progress))
                               progress = (step - warmup_steps) / (total_steps - warmup_steps)

    so the rate starts at `initial_lr`, reaches `peak_lr` at `warmup_steps`,
    is halfway between peak and `min_lr` midway through the decay, and is
    `min_lr` from `total_steps` on. This is the schedule of the book's
    `train_model` (appendix D), with `step` its `global_step`.
    """
    _check_schedule(warmup_steps, total_steps)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return initial_lr + step * (peak_lr - initial_lr) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def _check_schedule(warmup_steps: Any, total_steps: Any) -> tuple[int, int]:
    """(warmup_steps, total_steps) as ints, or the error that says which is wrong."""
    warmup_steps = _checks.integer(warmup_steps, "warmup_steps", minimum=0)
    total_steps = _checks.integer(total_steps, "total_steps")
    if warmup_steps > total_steps:
        raise ValueError(f"warmup_steps ({warmup_steps}) must not exceed total_steps ({total_steps})")
    return warmup_steps, total_steps


class LRScheduler:
    """Sets each parameter group's "lr" as a function of the step count.

    As `torch.optim.lr_scheduler.LRScheduler`: the constructor records each
    group's "initial_lr" (the base rate) and applies the rate of step 0;
    every `step()` advances `last_epoch` by one and applies the rate for it.
    Subclasses implement `get_lr()` in closed form from `last_epoch` and
    `base_lrs`. `state_dict()` is plain numbers: "last_epoch", "base_lrs",
    "_last_lr" and the subclass's hyperparameters (the names in
    `_hyperparameters`, kept as plain ints and floats).

    `optimizer` is a numpygpt optimiser (anything with `param_groups`, a list
    of dicts with an "lr", will do).
    """

    _hyperparameters: tuple[str, ...] = ()

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        groups = getattr(optimizer, "param_groups", None)
        if not isinstance(groups, list) or not all(isinstance(g, dict) and "lr" in g for g in groups):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer "
                            '(a scheduler needs its param_groups: a list of dicts with an "lr")')
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ValueError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when resuming a scheduler "
                        "with last_epoch != -1"
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._last_lr: list[float] = []
        self.step()

    def get_lr(self) -> list[float]:
        """The learning rate of each group at step `last_epoch`."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and write the new rates into the optimizer's groups."""
        self.last_epoch += 1
        self._apply(self.get_lr())

    def _apply(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = float(lr)
        self._last_lr = [float(lr) for lr in lrs]

    def get_last_lr(self) -> list[float]:
        """The rates last applied, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's position and settings, as plain Python values."""
        state = {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs), "_last_lr": list(self._last_lr)}
        for name in self._hyperparameters:
            state[name] = getattr(self, name)
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` and write its last rates into the optimizer.

        Nothing changes if a check fails. (PyTorch leaves the optimizer's rates
        to the optimizer's own `load_state_dict`; writing them here too gives
        the same result.)
        """
        missing = [k for k in ("last_epoch", "base_lrs", "_last_lr", *self._hyperparameters) if k not in state_dict]
        if missing:
            raise ValueError(f"scheduler state_dict is missing {', '.join(missing)}")
        n = len(self.optimizer.param_groups)
        for key in ("base_lrs", "_last_lr"):
            if len(state_dict[key]) != n:
                raise ValueError(f"scheduler state_dict has {len(state_dict[key])} {key}, but the optimizer has {n} groups")
        hyperparameters = self._read_hyperparameters(state_dict)
        self.last_epoch = _checks.integer(state_dict["last_epoch"], "last_epoch", minimum=0)
        self.base_lrs = [float(lr) for lr in state_dict["base_lrs"]]
        for name, value in hyperparameters.items():
            setattr(self, name, value)
        self._apply(list(state_dict["_last_lr"]))

    def _read_hyperparameters(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        """The subclass's settings from a loaded state, checked and as plain numbers."""
        return {name: state_dict[name] for name in self._hyperparameters}


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(step), as `torch.optim.lr_scheduler.LambdaLR`.

    `lr_lambda` is one function or a list with one per parameter group. The
    functions themselves are not part of `state_dict()`.
    """

    def __init__(
        self,
        optimizer: Any,
        lr_lambda: Callable[[int], float] | list[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        n = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"Expected {n} lr_lambdas, but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        for f in self.lr_lambdas:
            if not callable(f):
                raise TypeError(f"lr_lambda must be callable, got {type(f).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base_lr * f(self.last_epoch) for f, base_lr in zip(self.lr_lambdas, self.base_lrs)]


class CosineWithWarmup(LRScheduler):
    """Linear warmup from `initial_lr` to each group's lr, then cosine decay to `min_lr`.

    The group's lr when the scheduler is made is the peak. Call `step()` once
    per optimiser step; the rate at step n is `lr_at(n, peak_lr=base_lr, ...)`.
    `initial_lr` and `min_lr` are absolute rates shared by all groups (the
    group key "initial_lr" is PyTorch's name for the base rate; this argument
    is the book's name for the warmup's starting rate). PyTorch has no
    single scheduler for this.
    """

    _hyperparameters = ("warmup_steps", "total_steps", "initial_lr", "min_lr")

    def __init__(
        self,
        optimizer: Any,
        warmup_steps: int,
        total_steps: int,
        initial_lr: float = 0.0,
        min_lr: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.warmup_steps, self.total_steps = _check_schedule(warmup_steps, total_steps)
        if initial_lr < 0 or min_lr < 0:
            raise ValueError(f"initial_lr and min_lr must be >= 0, got {initial_lr} and {min_lr}")
        self.initial_lr = float(initial_lr)
        self.min_lr = float(min_lr)
        super().__init__(optimizer, last_epoch)

    def _read_hyperparameters(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        warmup_steps, total_steps = _check_schedule(state_dict["warmup_steps"], state_dict["total_steps"])
        return {"warmup_steps": warmup_steps, "total_steps": total_steps,
                "initial_lr": float(state_dict["initial_lr"]), "min_lr": float(state_dict["min_lr"])}

    def get_lr(self) -> list[float]:
        return [
            lr_at(
                self.last_epoch,
                peak_lr=base_lr,
                warmup_steps=self.warmup_steps,
                total_steps=self.total_steps,
                initial_lr=self.initial_lr,
                min_lr=self.min_lr,
            )
            for base_lr in self.base_lrs
        ]


def warmup_cosine(
    optimizer: Any,
    warmup_steps: int,
    total_steps: int,
    initial_lr: float = 0.0,
    min_lr: float = 0.0,
) -> CosineWithWarmup:
    """A `CosineWithWarmup` scheduler (same arguments)."""
    return CosineWithWarmup(optimizer, warmup_steps, total_steps, initial_lr=initial_lr, min_lr=min_lr)
