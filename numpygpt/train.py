"""Pretraining a GPT on a text, the book's chapter 5, with checkpoints and exact resume.

    loss of one batch        calc_loss_batch(input_batch, target_batch, model)
    mean loss of a loader    calc_loss_loader(data_loader, model, num_batches)
    both, in eval mode       evaluate_model(model, train_loader, val_loader, eval_iter)
    a greedy continuation    generate_and_print_sample(model, tokenizer, start_context)
    the loop                 train_model(model, train_loader, val_loader, optimizer, num_epochs,
                                         eval_freq, eval_iter, start_context, tokenizer, ...)
    the book's figure        plot_losses(history, "loss.png")

(What `numpygpt train` runs on top of these, its presets and default text,
is numpygpt.recipe.)

One step of `train_model` is the book's: zero the gradients, the loss of a
batch, backward, (clip the gradient norm), `optimizer.step()`, (advance the
learning-rate schedule), count the tokens. Every `eval_freq` steps (and after
the first) the train and validation losses over `eval_iter` batches are
recorded; after every epoch a greedy sample from `start_context` is. The
bookkeeping around that loop (the history, checkpoints, Ctrl-C, the progress
bar) is the helper class `_Run`, so the loop itself stays the book's.

Checkpoints and resuming. `train_model` writes `checkpoint_path` (with
`numpygpt.checkpoint.save_checkpoint`, atomically) every `checkpoint_every`
steps, at the end, and when interrupted with Ctrl-C. Besides the model,
optimizer and numpygpt's random generator, each holds in its `extra`:

    global_step, epoch, tokens_seen       where the run is
    train_loader, val_loader              each DataLoader's position (its state_dict(): epoch,
                                          batches yielded, the epoch's sampler seed or generator state)
    scheduler                             the learning-rate scheduler's state_dict() or None
    history                               everything recorded so far
    num_epochs, run                       the planned epochs; the caller's settings (`run_info`)

`train_model(..., resume=checkpoint)` continues from there and is bit-exact:
N steps, a checkpoint, and M more steps in a fresh process give the very
parameters of N + M steps in one run, dropout and shuffling included. The
state saved is always that of the last *completed* step: the update and the
bookkeeping after it run with Ctrl-C deferred (so parameters are never saved
half-updated), and a Ctrl-C during a forward or backward pass saves the state
from before that step (its dropout draws and its batch are undone). Under the
numpygpt command SIGTERM does all that too (numpygpt._signals turns it into
`Terminated`, a KeyboardInterrupt).

A loss that is NaN or infinite stops training with `NonFiniteLossError`,
naming the step and the value; no checkpoint is written then, so the last
good one stays as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm.auto import tqdm

from . import _checks
from . import functional as F
from ._signals import Terminated, raise_terminated
from .autograd import no_grad
from .checkpoint import load_checkpoint, save_checkpoint
from .generate import generate
from .optim import clip_grad_norm_
from .random import get_rng_state, set_rng_state
from .tensor import Tensor
from .tokenizer import text_to_token_ids, token_ids_to_text

__all__ = [
    "NonFiniteLossError",
    "TrainingHistory",
    "calc_loss_batch",
    "calc_loss_loader",
    "evaluate_model",
    "generate_and_print_sample",
    "train_model",
    "plot_losses",
]


# ----------------------------------------------------------------------------- history and errors


@dataclasses.dataclass
class TrainingHistory:
    """What `train_model` recorded.

    At each evaluation: `train_losses`, `val_losses`, `tokens_seen` (tokens
    trained on so far) and `steps` (optimizer steps done so far). After each
    epoch: `samples`, the greedy continuation of the start context. At each
    step: `step_losses` (the batch's training loss) and `lrs` (the learning
    rate of the first parameter group used for that step). `interrupted` is
    True when training stopped on Ctrl-C, or on SIGTERM under the numpygpt
    command (see numpygpt._signals), and then `terminated` says which.
    """

    train_losses: list[float] = dataclasses.field(default_factory=list)
    val_losses: list[float] = dataclasses.field(default_factory=list)
    tokens_seen: list[int] = dataclasses.field(default_factory=list)
    steps: list[int] = dataclasses.field(default_factory=list)
    samples: list[str] = dataclasses.field(default_factory=list)
    step_losses: list[float] = dataclasses.field(default_factory=list)
    lrs: list[float] = dataclasses.field(default_factory=list)
    interrupted: bool = False
    terminated: bool = False     # the interruption was SIGTERM (not saved in to_dict: a property of the process)

    _LISTS = ("train_losses", "val_losses", "tokens_seen", "steps", "samples", "step_losses", "lrs")

    def to_dict(self, lengths: Mapping[str, int] | None = None) -> dict[str, Any]:
        """A JSON-able dict (lists truncated to `lengths`, if given)."""
        out: dict[str, Any] = {}
        for name in self._LISTS:
            values = getattr(self, name)
            out[name] = list(values if lengths is None else values[: lengths[name]])
        out["interrupted"] = self.interrupted
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainingHistory:
        """The inverse of `to_dict` (unknown keys are an error)."""
        if not isinstance(d, Mapping):
            raise TypeError(f"a training history must be a dict, got {type(d).__name__}")
        unknown = [k for k in d if k not in cls._LISTS and k != "interrupted"]
        if unknown:
            raise ValueError(f"training history has unknown key(s): {', '.join(unknown)}")
        return cls(**{k: list(d.get(k, [])) for k in cls._LISTS}, interrupted=bool(d.get("interrupted", False)))

    def _lengths(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in self._LISTS}


class NonFiniteLossError(ValueError):
    """Training produced a NaN or infinite loss (or parameter). `step` is the step that
    failed, `loss` its value; `history` holds what was recorded up to then."""

    def __init__(self, message: str, step: int, loss: float, history: TrainingHistory | None = None):
        super().__init__(message)
        self.step, self.loss, self.history = step, loss, history


# ----------------------------------------------------------------------------- losses and samples


def calc_loss_batch(input_batch: Any, target_batch: Any, model: Any) -> Tensor:
    """Mean cross-entropy of `model(input_batch)` (B, T, V) against `target_batch` (B, T).

    The book's `calc_loss_batch`, without the `device` argument (numpygpt has one device).
    Returns a 0-d Tensor to call `.backward()` on.
    """
    inputs = np.asarray(input_batch.data if isinstance(input_batch, Tensor) else input_batch)
    targets = np.asarray(target_batch.data if isinstance(target_batch, Tensor) else target_batch)
    if inputs.ndim != 2 or targets.shape != inputs.shape:
        raise ValueError(f"calc_loss_batch: inputs and targets must both have shape (batch, num_tokens); "
                         f"got {inputs.shape} and {targets.shape}")
    logits = model(inputs)                                 # (B, T, V)
    return F.cross_entropy(logits, targets)                # flattened to (B·T, V) and (B·T,) inside


def calc_loss_loader(data_loader: Iterable[Any], model: Any, num_batches: int | None = None) -> float:
    """Mean of `calc_loss_batch` over the first `num_batches` batches (all if None), under no_grad.

    As the book: NaN for a loader with no batches, and `num_batches` is capped
    at `len(data_loader)`. The mean is over the batches the loader actually
    yields. The iteration is closed when done, so a `DataLoader` that is also
    being trained on keeps its training position (see numpygpt.utils.data).
    """
    n_total = len(data_loader)  # type: ignore[arg-type]
    if n_total == 0:
        return float("nan")
    num_batches = _checks.integer(num_batches, "num_batches", allow_none=True)
    num_batches = n_total if num_batches is None else min(num_batches, n_total)
    total, seen = 0.0, 0
    batches = iter(data_loader)
    try:
        with no_grad():
            for input_batch, target_batch in batches:
                if seen >= num_batches:
                    break
                total += float(calc_loss_batch(input_batch, target_batch, model).item())
                seen += 1
    finally:
        _close(batches)
    return total / seen if seen else float("nan")


def evaluate_model(model: Any, train_loader: Iterable[Any], val_loader: Iterable[Any],
                   eval_iter: int | None) -> tuple[float, float]:
    """(train loss, val loss), each over `eval_iter` batches, with the model in eval mode
    (dropout off); the model is put back in training mode afterwards, as in the book."""
    model.eval()
    try:
        train_loss = calc_loss_loader(train_loader, model, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, num_batches=eval_iter)
    finally:
        model.train()
    return train_loss, val_loss


def _context_size(model: Any) -> int:
    cfg = getattr(model, "cfg", None)
    return int(cfg["context_length"]) if cfg is not None else int(model.pos_emb.weight.shape[0])


def _check_start_context(start_context: str, tokenizer: Any) -> None:
    if text_to_token_ids(start_context, tokenizer).shape[1] == 0:
        raise ValueError("start_context encodes to no tokens; give some text")


def _sample(model: Any, tokenizer: Any, start_context: str, max_new_tokens: int) -> str:
    """The greedy continuation of `start_context` (KV cache), with the model's mode restored."""
    was_training = model.training
    model.eval()
    try:
        encoded = text_to_token_ids(start_context, tokenizer)                 # (1, T)
        token_ids = generate(model, encoded, max_new_tokens=max_new_tokens,
                             context_size=_context_size(model))             # (1, T + new)
        return token_ids_to_text(token_ids, tokenizer)
    finally:
        model.train(was_training)


def generate_and_print_sample(model: Any, tokenizer: Any, start_context: str, max_new_tokens: int = 50) -> str:
    """Greedily continue `start_context` by `max_new_tokens` tokens (with the KV cache),
    print the text on one line (newlines shown as spaces, as in the book) and return it
    (newlines kept). The model's train/eval mode is left as it was."""
    text = _sample(model, tokenizer, start_context, max_new_tokens)
    print(_one_line(text))
    return text


def _one_line(text: str) -> str:
    return text.replace("\n", " ")


# ----------------------------------------------------------------------------- the training loop


def train_model(model: Any, train_loader: Any, val_loader: Any, optimizer: Any, num_epochs: int, eval_freq: int,
                eval_iter: int, start_context: str, tokenizer: Any, *, max_grad_norm: float | None = None,
                scheduler: Any = None, checkpoint_path: str | os.PathLike | None = None,
                checkpoint_every: int | None = None, resume: Any = None, progress: bool = True,
                sample_tokens: int = 50, on_step: Callable[[int, float], None] | None = None,
                max_steps: int | None = None, run_info: Mapping[str, Any] | None = None) -> TrainingHistory:
    """Train for `num_epochs` epochs over `train_loader`; return a `TrainingHistory`.

    The book's `train_model_simple` (which returns three lists: train losses,
    val losses, tokens seen; here they are fields of the history), plus:

    - max_grad_norm: clip the gradients' total norm (`clip_grad_norm_`) before each update;
    - scheduler: an LR scheduler whose `step()` follows every `optimizer.step()`;
    - checkpoint_path / checkpoint_every: write a checkpoint every that many
      steps, at the end, and on Ctrl-C (see the module docstring);
    - resume: a checkpoint path, or the dict `load_checkpoint(path, model,
      optimizer)` returns: continue that run exactly (model, optimizer,
      generator, loaders' positions, scheduler and history are restored; the
      loaders, model and optimizer must be built as for the original run);
    - progress: a tqdm bar with the running loss of the epoch and the step;
    - sample_tokens: length of the sample printed after each epoch;
    - on_step(step, loss): called after every completed step (its exceptions
      propagate; a KeyboardInterrupt from it counts as Ctrl-C);
    - max_steps: stop (with a checkpoint) once this many steps are done in all;
    - run_info: a JSON-able dict stored in each checkpoint's extra["run"].

    Evaluation happens after step 1 and every `eval_freq` steps; each prints
    "Ep 1 (Step 000010): Train loss 6.123, Val loss 6.456". Ctrl-C returns the
    history so far with `interrupted=True` (after writing a checkpoint if a
    path is set). A NaN or infinite loss raises `NonFiniteLossError` without
    writing a checkpoint.

    Steps count completed optimizer updates (the book's `global_step` + 1).
    """
    _check_arguments(train_loader, checkpoint_path, num_epochs, eval_freq, eval_iter, checkpoint_every,
                     max_steps, sample_tokens, max_grad_norm)
    run = _Run(model, optimizer, scheduler, train_loader, val_loader, num_epochs=num_epochs,
               checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every, max_steps=max_steps,
               on_step=on_step, run_info=run_info, progress=progress)
    if resume is not None:
        run.resume(resume)
    _check_start_context(start_context, tokenizer)                  # fail now, not after an epoch of training
    model.train()
    with run.saved_on_exit():                                       # the end, Ctrl-C or an error: see there
        for epoch in range(run.start_epoch, num_epochs):
            for input_batch, target_batch in run.batches(epoch):    # up to max_steps steps in all
                optimizer.zero_grad()                               # reset the last step's gradients
                loss = calc_loss_batch(input_batch, target_batch, model)
                loss_value = float(loss.item())
                run.check_finite(loss_value, epoch)                 # NaN or inf: stop, write no checkpoint
                loss.backward()                                     # the gradients
                with run.atomic_step(epoch):                        # Ctrl-C waits until the step is complete
                    lr = float(optimizer.param_groups[0]["lr"])     # the rate this step uses
                    if max_grad_norm is not None:
                        clip_grad_norm_(model.parameters(), max_grad_norm)
                    optimizer.step()                                # update the weights
                    if scheduler is not None:
                        scheduler.step()                            # the rate of the next step
                    step = run.count_step(loss_value, lr, input_batch)  # global_step += 1, tokens_seen += B * T
                    if step == 1 or step % eval_freq == 0:
                        train_loss, val_loss = evaluate_model(model, train_loader, val_loader, eval_iter)
                        run.record_evaluation(train_loss, val_loss)
                        run.log(f"Ep {epoch + 1} (Step {step:06d}): "
                                f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
                run.after_step(loss_value)                          # progress bar, checkpoint_every, on_step
            if run.reached_max_steps:                               # stopped inside the epoch: no sample
                break
            sample = _sample(model, tokenizer, start_context, sample_tokens)  # as generate_and_print_sample
            run.log(_one_line(sample))
            run.end_epoch(epoch, sample)
    return run.history


def _check_arguments(train_loader: Any, checkpoint_path: str | os.PathLike | None, num_epochs: Any, eval_freq: Any,
                     eval_iter: Any, checkpoint_every: Any, max_steps: Any, sample_tokens: Any,
                     max_grad_norm: float | None) -> None:
    """Raise for an argument of `train_model` that cannot work, before anything is touched."""
    for value, name in ((num_epochs, "num_epochs"), (eval_freq, "eval_freq"), (eval_iter, "eval_iter")):
        _checks.integer(value, name)
    _checks.integer(checkpoint_every, "checkpoint_every", allow_none=True)
    _checks.integer(max_steps, "max_steps", allow_none=True)
    _checks.integer(sample_tokens, "sample_tokens", minimum=0)
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm!r}")
    if len(train_loader) == 0:
        raise ValueError("train_loader yields no batches; use a longer text, a smaller batch size or context")
    if checkpoint_path is not None and not Path(checkpoint_path).parent.is_dir():
        raise FileNotFoundError(f"cannot write checkpoints to {checkpoint_path}: the directory does not exist")


# ----------------------------------------------------------------------------- the bookkeeping around the loop


# What a checkpoint's `extra` holds besides "num_epochs" and "run" (see the module docstring).
_EXTRA_KEYS = ("global_step", "epoch", "tokens_seen", "train_loader", "val_loader", "scheduler", "history")


class _Run:
    """The state of one `train_model` call and everything it does besides training.

    It counts the steps and tokens, records the `history`, keeps `snap`: the
    state after the last completed step (what a checkpoint stores), writes the
    checkpoints, and drives the progress bar and the printed lines.
    """

    def __init__(self, model: Any, optimizer: Any, scheduler: Any, train_loader: Any, val_loader: Any, *,
                 num_epochs: int, checkpoint_path: str | os.PathLike | None, checkpoint_every: int | None,
                 max_steps: int | None, on_step: Callable[[int, float], None] | None,
                 run_info: Mapping[str, Any] | None, progress: bool) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.num_epochs, self.max_steps, self.on_step = num_epochs, max_steps, on_step
        self.checkpoint_path, self.checkpoint_every, self.run_info = checkpoint_path, checkpoint_every, run_info
        self.progress = progress
        self.history = TrainingHistory()
        self.global_step, self.tokens_seen, self.start_epoch = 0, 0, 0
        self.saved_step: int | None = None    # the step this call last wrote to checkpoint_path
        self.snap: dict[str, Any] = {}
        self.bar: Any = None
        self.epoch_losses: list[float] = []   # for the progress bar's running loss

    # ------------------------------------------------------------------ resuming and saving

    def resume(self, resume: Any) -> None:
        """Continue the run in `resume`: model, optimizer, loaders, scheduler, history and generator."""
        state = _resume_from(resume, self.model, self.optimizer)
        extra = state.get("extra") or {}
        missing = [k for k in _EXTRA_KEYS if k not in extra]
        if missing:
            raise ValueError(f"the checkpoint was not written by train_model: its extra lacks {', '.join(missing)}")
        self.global_step, self.tokens_seen = int(extra["global_step"]), int(extra["tokens_seen"])
        self.start_epoch = int(extra["epoch"])
        self.history = TrainingHistory.from_dict(extra["history"])
        self.history.interrupted = False
        for name, loader in (("train_loader", self.train_loader), ("val_loader", self.val_loader)):
            if extra[name] is not None and hasattr(loader, "load_state_dict"):
                loader.load_state_dict(extra[name])
        if (self.scheduler is None) != (extra["scheduler"] is None):
            raise ValueError("the checkpoint was written " + ("with" if self.scheduler is None else "without")
                             + " a learning-rate scheduler; resume with the same setup")
        if self.scheduler is not None:
            self.scheduler.load_state_dict(extra["scheduler"])
        set_rng_state(state["rng_state"])

    def snapshot(self, epoch: int) -> dict[str, Any]:
        """The state after the last completed step (what a checkpoint stores)."""
        snap = {
            "global_step": self.global_step,
            "epoch": epoch,
            "tokens_seen": self.tokens_seen,
            "train_loader": _loader_state(self.train_loader),
            "val_loader": _loader_state(self.val_loader),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }
        snap["rng"] = get_rng_state()
        snap["lengths"] = self.history._lengths()
        return snap

    def save(self) -> None:
        """Write `snap` to checkpoint_path (if there is one), once the parameters are found finite."""
        if self.checkpoint_path is None:
            return
        snap = self.snap
        _check_finite_parameters(self.model, snap["global_step"])
        extra = {key: snap[key] for key in _EXTRA_KEYS if key != "history"}
        extra["history"] = self.history.to_dict(snap["lengths"])
        extra["num_epochs"] = self.num_epochs
        extra["run"] = dict(self.run_info or {})
        save_checkpoint(self.checkpoint_path, self.model, self.optimizer, step=snap["global_step"], extra=extra,
                        rng_state=snap["rng"])
        self.saved_step = snap["global_step"]

    @contextlib.contextmanager
    def saved_on_exit(self) -> Iterator[None]:
        """Around the whole loop: the progress bar, and a checkpoint of the last completed step.

        It is written when the loop ends, on Ctrl-C (the KeyboardInterrupt is
        swallowed: `history.interrupted` says so) and on an unexpected error
        (which then propagates). A non-finite loss writes nothing, so the last
        checkpoint stays the last good one.
        """
        total = self.num_epochs * len(self.train_loader)
        self.bar = tqdm(total=min(total, self.max_steps) if self.max_steps else total,
                        initial=min(self.global_step, total), disable=not self.progress, unit="step",
                        dynamic_ncols=True, desc="training")
        self.snap = self.snapshot(self.start_epoch)
        try:
            yield
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM as numpygpt._signals.Terminated
            self.history.interrupted = True
            self.history.terminated = isinstance(interrupt, Terminated)
        except NonFiniteLossError as e:
            e.history = self.history
            raise
        except Exception:
            self.save()  # an unexpected error: keep the training done so far, then report the error
            raise
        finally:
            self.bar.close()
        self.save()
        if self.history.interrupted:  # on stderr, with the progress bar: a notice, not the run's output
            self.log(("Terminated (SIGTERM)" if self.history.terminated else "Interrupted")
                     + f": the state after step {self.snap['global_step']} is kept"
                     + (f" in {self.checkpoint_path}" if self.checkpoint_path is not None else ""), file=sys.stderr)

    # ------------------------------------------------------------------ one epoch, one step

    @property
    def reached_max_steps(self) -> bool:
        return self.max_steps is not None and self.global_step >= self.max_steps

    def batches(self, epoch: int) -> Iterator[Any]:
        """The training batches of `epoch` (from where a resumed run stopped), until max_steps are done.

        The loader's iteration is closed however the loop over it ends, so
        the loader's position (its state_dict) is that of the steps done.
        """
        self.epoch_losses = []
        if self.reached_max_steps:
            return
        batches = iter(self.train_loader)
        try:
            for batch in batches:
                yield batch
                if self.reached_max_steps:
                    return
        finally:
            _close(batches)

    def check_finite(self, loss_value: float, epoch: int) -> None:
        """Stop with NonFiniteLossError if the loss is NaN or infinite (before it reaches the weights)."""
        if math.isfinite(loss_value):
            return
        step = self.global_step + 1
        raise NonFiniteLossError(
            f"the training loss is {loss_value} at step {step} (epoch {epoch + 1}); "
            "training stopped without writing a checkpoint"
            + (f", so {self.checkpoint_path} still holds step {self.saved_step}" if self.saved_step is not None else "")
            + ". Try a lower learning rate or gradient clipping (max_grad_norm).",
            step, loss_value, self.history)

    @contextlib.contextmanager
    def atomic_step(self, epoch: int) -> Iterator[None]:
        """The update and its bookkeeping, all or nothing: Ctrl-C waits until the block is done,
        and then `snap` moves to the state after this step."""
        with _DeferSigint():
            yield
            self.snap = self.snapshot(epoch)

    def count_step(self, loss_value: float, lr: float, input_batch: Any) -> int:
        """Count a completed step and its tokens, record its loss and rate; return its number."""
        self.global_step += 1
        self.tokens_seen += _numel(input_batch)
        self.history.step_losses.append(loss_value)
        self.history.lrs.append(lr)
        return self.global_step

    def record_evaluation(self, train_loss: float, val_loss: float) -> None:
        self.history.train_losses.append(train_loss)
        self.history.val_losses.append(val_loss)
        self.history.tokens_seen.append(self.tokens_seen)
        self.history.steps.append(self.global_step)

    def after_step(self, loss_value: float) -> None:
        """The progress bar, a checkpoint every `checkpoint_every` steps, then the caller's `on_step`."""
        self.epoch_losses.append(loss_value)
        self.bar.set_postfix(loss=f"{sum(self.epoch_losses) / len(self.epoch_losses):.3f}", step=self.global_step,
                             refresh=False)
        self.bar.update(1)
        if self.checkpoint_every is not None and self.global_step % self.checkpoint_every == 0:
            self.save()
        if self.on_step is not None:
            self.on_step(self.global_step, loss_value)

    def end_epoch(self, epoch: int, sample: str) -> None:
        self.history.samples.append(sample)
        self.snap = self.snapshot(epoch + 1)   # the epoch is done: its iteration is closed

    def log(self, message: str, file: Any = None) -> None:
        """Print a line to `file` (default stdout), above the progress bar when there is one."""
        if self.progress:
            tqdm.write(message, file=file)
        else:
            print(message, file=file)


class _DeferSigint:
    """Hold back Ctrl-C (SIGINT) and SIGTERM for the duration of the block, then raise
    KeyboardInterrupt (or `Terminated`, for SIGTERM).

    Only in the main thread, and for each signal only while its usual handler is
    installed: Python's default one for SIGINT, numpygpt's `raise_terminated` for
    SIGTERM (the numpygpt command installs it). Otherwise (another thread, a custom
    handler) that signal is left alone.
    """

    _USUAL: ClassVar[dict[int, Any]] = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: raise_terminated}

    def __enter__(self) -> None:
        self._received: list[int] = []
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum, usual in self._USUAL.items():
                if signal.getsignal(signum) is usual:
                    self._previous[signum] = signal.signal(signum, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self._received.append(signum)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        if self._received and exc_type is None:
            raise Terminated if self._received[0] == signal.SIGTERM else KeyboardInterrupt


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def _loader_state(loader: Any) -> dict[str, Any] | None:
    state_dict = getattr(loader, "state_dict", None)
    return dict(state_dict()) if callable(state_dict) else None


def _numel(batch: Any) -> int:
    return int(np.prod(np.shape(batch.data if isinstance(batch, Tensor) else batch)))


def _check_finite_parameters(model: Any, step: int) -> None:
    for name, p in model.named_parameters():
        if not np.isfinite(p.data).all():
            raise NonFiniteLossError(
                f"parameter {name} holds NaN or infinite values after step {step}; "
                "no checkpoint was written, so the last one stays as it was", step, float("nan"))


def _resume_from(resume: Any, model: Any, optimizer: Any) -> dict[str, Any]:
    """Load `resume` (a checkpoint path or what `load_checkpoint` returned) into model and optimizer."""
    if isinstance(resume, (str, os.PathLike)):
        return load_checkpoint(resume, model, optimizer)
    if not isinstance(resume, Mapping) or "extra" not in resume:
        raise TypeError("resume must be a checkpoint path or the dict load_checkpoint returns, "
                        f"got {type(resume).__name__}")
    if resume.get("model") is not None and resume["model"] is not model:
        model.load_state_dict(resume["model"].state_dict())
    if resume.get("optimizer") is not optimizer:
        state = resume.get("optimizer_state")
        if state is None:
            raise ValueError("the checkpoint to resume from holds no optimizer state")
        optimizer.load_state_dict(state)
    return dict(resume)


# ----------------------------------------------------------------------------- the figure


def plot_losses(history: TrainingHistory | Mapping[str, Any], path: str | os.PathLike) -> Path | None:
    """Write the book's figure to `path` (a PNG): training and validation loss against
    steps, with the tokens seen on a second x axis at the top.

    Returns the path, or None (saying so) when matplotlib is not installed.
    Uses matplotlib's object API, so no GUI backend is touched.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("matplotlib is not installed, so no loss plot was written (pip install matplotlib)")
        return None
    h = history.to_dict() if isinstance(history, TrainingHistory) else dict(history)
    steps, tokens = h["steps"], h["tokens_seen"]
    fig = Figure(figsize=(6, 3.5))
    ax1 = fig.add_subplot()
    ax1.plot(steps, h["train_losses"], label="Training loss")
    ax1.plot(steps, h["val_losses"], linestyle="-.", label="Validation loss")
    ax1.set_xlabel("Steps")
    ax1.set_ylabel("Loss")
    ax1.legend(loc="upper right")
    ax2 = ax1.twiny()                          # a second x axis sharing the y axis
    ax2.plot(tokens, h["train_losses"], alpha=0)  # invisible: only aligns the ticks
    ax2.set_xlabel("Tokens seen")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png", dpi=100)
    return path
