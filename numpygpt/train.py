"""Pretraining a GPT on a text, the book's chapter 5, with checkpoints and exact resume.

    loss of one batch        calc_loss_batch(input_batch, target_batch, model)
    mean loss of a loader    calc_loss_loader(data_loader, model, num_batches)
    both, in eval mode       evaluate_model(model, train_loader, val_loader, eval_iter)
    a greedy continuation    generate_and_print_sample(model, tokenizer, start_context)
    the loop                 train_model(model, train_loader, val_loader, optimizer, num_epochs,
                                         eval_freq, eval_iter, start_context, tokenizer, ...)
    the book's figure        plot_losses(history, "loss.png")
    what `numpygpt train` runs   run_training(...)

One step of `train_model` is the book's: zero the gradients, the loss of a
batch, backward, (clip the gradient norm), `optimizer.step()`, (advance the
learning-rate schedule), count the tokens. Every `eval_freq` steps (and after
the first) the train and validation losses over `eval_iter` batches are
recorded; after every epoch a greedy sample from `start_context` is.

Checkpoints and resuming. `train_model` writes `checkpoint_path` (with
`numpygpt.checkpoint.save_checkpoint`, atomically) every `checkpoint_every`
steps, at the end, and when interrupted with Ctrl-C. Besides the model,
optimizer and numpygpt's random generator, each holds in its `extra`:

    global_step, epoch, tokens_seen       where the run is
    train_loader, val_loader              each DataLoader's position (its state_dict():
                                          shuffle seed, epoch, batches already yielded)
    scheduler                             the learning-rate scheduler's state_dict() or None
    history                               everything recorded so far
    num_epochs, run                       the planned epochs; the caller's settings (`run_info`)

`train_model(..., resume=checkpoint)` continues from there and is bit-exact:
N steps, a checkpoint, and M more steps in a fresh process give the very
parameters of N + M steps in one run, dropout and shuffling included. The
state saved is always that of the last *completed* step: the update and the
bookkeeping after it run with Ctrl-C deferred (so parameters are never saved
half-updated), and a Ctrl-C during a forward or backward pass saves the state
from before that step (its dropout draws and its batch are undone).

A loss that is NaN or infinite stops training with `NonFiniteLossError`,
naming the step and the value; no checkpoint is written then, so the last
good one stays as it was.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import hashlib
import io
import math
import os
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import functional as F
from .checkpoint import load_checkpoint, save_checkpoint, write_json
from .data import create_dataloader, train_val_split
from .generate import generate
from .model import GPT2_PRESETS, PRESET_ALIASES, GPTModel, get_config, validate_config
from .optim import AdamW, CosineWithWarmup, clip_grad_norm_, param_groups_for_weight_decay
from .random import get_rng_state, manual_seed, set_rng_state
from .tensor import Tensor, no_grad
from .tokenizer import get_encoding, text_to_token_ids, token_ids_to_text

__all__ = [
    "TRAIN_CONFIGS",
    "NonFiniteLossError",
    "TrainingHistory",
    "calc_loss_batch",
    "calc_loss_loader",
    "evaluate_model",
    "generate_and_print_sample",
    "train_model",
    "plot_losses",
    "default_text",
    "create_train_val_loaders",
    "train_settings",
    "run_training",
]


# ----------------------------------------------------------------------------- the default text and presets


def default_text() -> str:
    """The Zen of Python (PEP 20), the text `numpygpt train` learns when given none.

    It comes from the standard library's `this` module, which keeps it in ROT13
    and prints it when first imported; the import's output is swallowed here.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        import this
    return codecs.decode(this.s, "rot13")


# What `numpygpt train --config NAME` starts from; every entry can be overridden
# on the command line. "tiny" is the default: a 2-block GPT with GPT-2's 50,257-token
# vocabulary that learns the Zen of Python by heart (200 steps: about 15 seconds on
# two idle cores) and then recites it from "Beautiful is". Its cost is the vocabulary:
# the embedding, the output head and the softmax over 50,257 logits per position
# dwarf the two blocks, so it stays narrow (emb_dim 64) and short (16 tokens; the
# validation tenth of the Zen has only 24). Its stride of 1 suits only that short
# text: with --text, the stride defaults to the context length (windows side by side).
# The GPT-2 sizes use the book's chapter-5 settings (a context of 256, batches of 2,
# AdamW at 4e-4 with weight decay 0.1): slow in NumPy, but they work.
TRAIN_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": {
        "model": {
            "vocab_size": 50257,
            "context_length": 16,
            "emb_dim": 64,
            "n_heads": 4,
            "n_layers": 2,
            "drop_rate": 0.1,
            "qkv_bias": False,
        },
        "epochs": 10,
        "batch_size": 8,
        "stride": 1,           # a window at every token: 167 windows, 20 batches per epoch
        "lr": 1e-2,
        "weight_decay": 0.1,
        "max_grad_norm": 1.0,
        "warmup_steps": 20,
        "eval_freq": 20,
        "eval_iter": 5,
        "seed": 123,
        "start_context": "Beautiful is",
    },
    **{
        name: {
            "model": get_config(name, context_length=256),
            "epochs": 10,
            "batch_size": 2,
            "stride": 256,
            "lr": 4e-4,
            "weight_decay": 0.1,
            "max_grad_norm": None,
            "warmup_steps": 0,
            "eval_freq": 5,
            "eval_iter": 5,
            "seed": 123,
            "start_context": "Every effort moves you",
        }
        for name in GPT2_PRESETS
    },
}


# ----------------------------------------------------------------------------- history and errors


@dataclasses.dataclass
class TrainingHistory:
    """What `train_model` recorded.

    At each evaluation: `train_losses`, `val_losses`, `tokens_seen` (tokens
    trained on so far) and `steps` (optimizer steps done so far). After each
    epoch: `samples`, the greedy continuation of the start context. At each
    step: `step_losses` (the batch's training loss) and `lrs` (the learning
    rate of the first parameter group used for that step). `interrupted` is
    True when training stopped on Ctrl-C.
    """

    train_losses: list[float] = dataclasses.field(default_factory=list)
    val_losses: list[float] = dataclasses.field(default_factory=list)
    tokens_seen: list[int] = dataclasses.field(default_factory=list)
    steps: list[int] = dataclasses.field(default_factory=list)
    samples: list[str] = dataclasses.field(default_factory=list)
    step_losses: list[float] = dataclasses.field(default_factory=list)
    lrs: list[float] = dataclasses.field(default_factory=list)
    interrupted: bool = False

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
    being trained on keeps its training position (see numpygpt.data).
    """
    n_total = len(data_loader)  # type: ignore[arg-type]
    if n_total == 0:
        return float("nan")
    if num_batches is None:
        num_batches = n_total
    elif isinstance(num_batches, bool) or not isinstance(num_batches, (int, np.integer)) or num_batches < 1:
        raise ValueError(f"num_batches must be a positive integer or None, got {num_batches!r}")
    else:
        num_batches = min(int(num_batches), n_total)
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


class _DeferSigint:
    """Hold back Ctrl-C (SIGINT) for the duration of the block, then raise KeyboardInterrupt.

    Only in the main thread, and only while Python's default handler is installed;
    otherwise (another thread, a custom handler) it does nothing.
    """

    def __enter__(self) -> None:
        self._received = False
        self._previous = None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self._received = True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if self._received and exc_type is None:
            raise KeyboardInterrupt


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def _loader_state(loader: Any) -> dict[str, Any] | None:
    state_dict = getattr(loader, "state_dict", None)
    return dict(state_dict()) if callable(state_dict) else None


def _numel(batch: Any) -> int:
    return int(np.prod(np.shape(batch.data if isinstance(batch, Tensor) else batch)))


def _check_count(value: Any, name: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")


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


_EXTRA_KEYS = ("global_step", "epoch", "tokens_seen", "train_loader", "val_loader", "scheduler", "history")


def train_model(
    model: Any,
    train_loader: Any,
    val_loader: Any,
    optimizer: Any,
    num_epochs: int,
    eval_freq: int,
    eval_iter: int,
    start_context: str,
    tokenizer: Any,
    *,
    max_grad_norm: float | None = None,
    scheduler: Any = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: Any = None,
    progress: bool = True,
    sample_tokens: int = 50,
    on_step: Callable[[int, float], None] | None = None,
    max_steps: int | None = None,
    run_info: Mapping[str, Any] | None = None,
) -> TrainingHistory:
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
    _check_count(num_epochs, "num_epochs")
    _check_count(eval_freq, "eval_freq")
    _check_count(eval_iter, "eval_iter")
    _check_count(checkpoint_every, "checkpoint_every", allow_none=True)
    _check_count(max_steps, "max_steps", allow_none=True)
    if not isinstance(sample_tokens, (int, np.integer)) or isinstance(sample_tokens, bool) or sample_tokens < 0:
        raise ValueError(f"sample_tokens must be a non-negative integer, got {sample_tokens!r}")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm!r}")
    if len(train_loader) == 0:
        raise ValueError("train_loader yields no batches; use a longer text, a smaller batch size or context")
    if checkpoint_path is not None and not Path(checkpoint_path).parent.is_dir():
        raise FileNotFoundError(f"cannot write checkpoints to {checkpoint_path}: the directory does not exist")

    history = TrainingHistory()
    global_step, tokens_seen, start_epoch = 0, 0, 0
    if resume is not None:
        state = _resume_from(resume, model, optimizer)
        extra = state.get("extra") or {}
        missing = [k for k in _EXTRA_KEYS if k not in extra]
        if missing:
            raise ValueError(f"the checkpoint was not written by train_model: its extra lacks {', '.join(missing)}")
        global_step, tokens_seen = int(extra["global_step"]), int(extra["tokens_seen"])
        start_epoch = int(extra["epoch"])
        history = TrainingHistory.from_dict(extra["history"])
        for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
            if extra[name] is not None and hasattr(loader, "load_state_dict"):
                loader.load_state_dict(extra[name])
        if (scheduler is None) != (extra["scheduler"] is None):
            raise ValueError("the checkpoint was written " + ("with" if scheduler is None else "without")
                             + " a learning-rate scheduler; resume with the same setup")
        if scheduler is not None:
            scheduler.load_state_dict(extra["scheduler"])
        set_rng_state(state["rng_state"])
    history.interrupted = False

    def snapshot(epoch: int) -> dict[str, Any]:
        """The state after the last completed step (what a checkpoint stores)."""
        snap = {
            "global_step": global_step,
            "epoch": epoch,
            "tokens_seen": tokens_seen,
            "train_loader": _loader_state(train_loader),   # may draw the shuffle seed: before "rng"
            "val_loader": _loader_state(val_loader),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
        }
        snap["rng"] = get_rng_state()
        snap["lengths"] = history._lengths()
        return snap

    saved_step: int | None = None  # the step this call last wrote to checkpoint_path

    def save(snap: dict[str, Any]) -> None:
        nonlocal saved_step
        if checkpoint_path is None:
            return
        _check_finite_parameters(model, snap["global_step"])
        extra = {key: snap[key] for key in _EXTRA_KEYS if key != "history"}
        extra["history"] = history.to_dict(snap["lengths"])
        extra["num_epochs"] = num_epochs
        extra["run"] = dict(run_info or {})
        save_checkpoint(checkpoint_path, model, optimizer, step=snap["global_step"], extra=extra,
                        rng_state=snap["rng"])
        saved_step = snap["global_step"]

    from tqdm.auto import tqdm

    total = num_epochs * len(train_loader)
    bar = tqdm(total=min(total, max_steps) if max_steps else total, initial=min(global_step, total),
               disable=not progress, unit="step", dynamic_ncols=True, desc="training")

    def log(message: str) -> None:
        if progress:
            tqdm.write(message)
        else:
            print(message)

    _check_start_context(start_context, tokenizer)  # fail now, not after an epoch of training
    snap = snapshot(start_epoch)
    model.train()
    try:
        for epoch in range(start_epoch, num_epochs):
            if max_steps is not None and global_step >= max_steps:
                break
            epoch_losses: list[float] = []
            stop = False
            batches = iter(train_loader)
            try:
                for input_batch, target_batch in batches:
                    optimizer.zero_grad()                                    # reset the last step's gradients
                    loss = calc_loss_batch(input_batch, target_batch, model)
                    loss_value = float(loss.item())
                    if not math.isfinite(loss_value):
                        raise NonFiniteLossError(
                            f"the training loss is {loss_value} at step {global_step + 1} (epoch {epoch + 1}); "
                            "training stopped without writing a checkpoint"
                            + (f", so {checkpoint_path} still holds step {saved_step}"
                               if saved_step is not None else "")
                            + ". Try a lower learning rate or gradient clipping (max_grad_norm).",
                            global_step + 1, loss_value, history)
                    loss.backward()                                          # the gradients
                    with _DeferSigint():                                     # all or nothing from here
                        lr = float(optimizer.param_groups[0]["lr"])
                        if max_grad_norm is not None:
                            clip_grad_norm_(model.parameters(), max_grad_norm)
                        optimizer.step()                                     # update the weights
                        if scheduler is not None:
                            scheduler.step()
                        global_step += 1
                        tokens_seen += _numel(input_batch)
                        history.step_losses.append(loss_value)
                        history.lrs.append(lr)
                        if global_step == 1 or global_step % eval_freq == 0:
                            train_loss, val_loss = evaluate_model(model, train_loader, val_loader, eval_iter)
                            history.train_losses.append(train_loss)
                            history.val_losses.append(val_loss)
                            history.tokens_seen.append(tokens_seen)
                            history.steps.append(global_step)
                            log(f"Ep {epoch + 1} (Step {global_step:06d}): "
                                f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
                        snap = snapshot(epoch)
                    epoch_losses.append(loss_value)
                    bar.set_postfix(loss=f"{sum(epoch_losses) / len(epoch_losses):.3f}", step=global_step,
                                    refresh=False)
                    bar.update(1)
                    if checkpoint_every is not None and global_step % checkpoint_every == 0:
                        save(snap)
                    if on_step is not None:
                        on_step(global_step, loss_value)
                    if max_steps is not None and global_step >= max_steps:
                        stop = True
                        break
            finally:
                _close(batches)
            if stop:
                break
            sample = _sample(model, tokenizer, start_context, sample_tokens)
            log(_one_line(sample))
            history.samples.append(sample)
            snap = snapshot(epoch + 1)   # the epoch is done: its iteration is closed
    except KeyboardInterrupt:
        history.interrupted = True
    except NonFiniteLossError as e:
        e.history = history
        raise
    except Exception:
        save(snap)  # an unexpected error: keep the training done so far, then report the error
        raise
    finally:
        bar.close()
    save(snap)
    if history.interrupted:
        log(f"Interrupted: the state after step {snap['global_step']} is kept"
            + (f" in {checkpoint_path}" if checkpoint_path is not None else ""))
    return history


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


# ----------------------------------------------------------------------------- what `numpygpt train` runs


def create_train_val_loaders(text: str, tokenizer: Any, batch_size: int, context_length: int, stride: int,
                             seed: int | None = None, train_ratio: float = 0.9) -> tuple[Any, Any]:
    """The book's two loaders: the first 90% of the text (by characters) for training,
    shuffled with `seed`, incomplete last batch dropped; the rest for validation, in
    order, every window kept. Raises ValueError with the numbers if either part is too
    short for one batch."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the training text is empty")
    for value, name in ((batch_size, "batch_size"), (context_length, "context_length"), (stride, "stride")):
        _check_count(value, name)
    train_text, val_text = train_val_split(text, train_ratio)
    n_train = len(tokenizer.encode(train_text, allowed_special={"<|endoftext|>"}))
    n_val = len(tokenizer.encode(val_text, allowed_special={"<|endoftext|>"}))
    need_train = context_length + (batch_size - 1) * stride + 1
    if n_train < need_train:
        raise ValueError(
            f"the text is too short: its training part ({train_ratio:.0%}, {len(train_text)} characters) has "
            f"{n_train} tokens, but one batch of {batch_size} windows of {context_length} tokens, {stride} apart, "
            f"needs {need_train}; use a longer text or a smaller --batch-size / --context-length / --stride")
    if n_val < context_length + 1:
        raise ValueError(
            f"the text is too short: its validation part (the last {1 - train_ratio:.0%}, {len(val_text)} "
            f"characters) has {n_val} tokens, but a window of {context_length} tokens needs {context_length + 1}; "
            "use a longer text or a smaller --context-length")
    train_loader = create_dataloader(train_text, batch_size=batch_size, max_length=context_length, stride=stride,
                                     shuffle=True, drop_last=True, seed=seed, tokenizer=tokenizer)
    val_loader = create_dataloader(val_text, batch_size=batch_size, max_length=context_length, stride=stride,
                                   shuffle=False, drop_last=False, seed=seed, tokenizer=tokenizer)
    return train_loader, val_loader


_SETTINGS = ("epochs", "batch_size", "context_length", "stride", "lr", "weight_decay", "max_grad_norm",
             "warmup_steps", "eval_freq", "eval_iter", "seed", "start_context")


def train_settings(config: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """A preset of `TRAIN_CONFIGS` with overrides (None keeps the preset's value).

    Returns a flat dict: "config", "model" (the GPT config, its context_length
    set from "context_length") and the keys of `_SETTINGS`. A GPT-2 preset's
    stride follows an overridden context_length unless given.
    """
    name = PRESET_ALIASES.get(config, config)
    if name not in TRAIN_CONFIGS:
        raise ValueError(f"unknown training config {config!r}; choose one of {', '.join(TRAIN_CONFIGS)}")
    unknown = [k for k in overrides if k not in _SETTINGS]
    if unknown:
        raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
    preset = TRAIN_CONFIGS[name]
    settings: dict[str, Any] = {"config": name, "context_length": preset["model"]["context_length"]}
    settings.update({k: v for k, v in preset.items() if k != "model"})
    given = {k: v for k, v in overrides.items() if v is not None}
    if name != "tiny" and "context_length" in given and "stride" not in given:
        given["stride"] = given["context_length"]
    settings.update(given)
    for key in ("epochs", "batch_size", "context_length", "stride", "eval_freq", "eval_iter"):
        _check_count(settings[key], key)
    if not settings["lr"] > 0:
        raise ValueError(f"lr must be positive, got {settings['lr']}")
    if settings["weight_decay"] < 0:
        raise ValueError(f"weight_decay must be >= 0, got {settings['weight_decay']}")
    if settings["max_grad_norm"] is not None and settings["max_grad_norm"] <= 0:
        settings["max_grad_norm"] = None       # 0 or less turns clipping off
    if settings["warmup_steps"] < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {settings['warmup_steps']}")
    if not isinstance(settings["seed"], int) or settings["seed"] < 0:
        raise ValueError(f"seed must be a non-negative integer, got {settings['seed']!r}")
    settings["model"] = validate_config({**preset["model"], "context_length": settings["context_length"]})
    return settings


def _read_text(path: str | os.PathLike | None) -> str:
    if path is None:
        return default_text()
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such text file: {p}")
    if p.is_dir():
        raise ValueError(f"{p} is a directory; give a UTF-8 text file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{p} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise ValueError(f"{p} is empty; give a text to train on")
    return text


def _build(settings: Mapping[str, Any], steps_per_epoch: int) -> tuple[GPTModel, AdamW, Any]:
    """Model, AdamW over the decay / no-decay groups, and the warmup-cosine schedule (if any)."""
    manual_seed(settings["seed"])
    model = GPTModel(settings["model"])
    optimizer = AdamW(param_groups_for_weight_decay(model, settings["weight_decay"]), lr=settings["lr"])
    scheduler = None
    if settings["warmup_steps"]:
        total = settings["epochs"] * steps_per_epoch
        scheduler = CosineWithWarmup(optimizer, warmup_steps=min(settings["warmup_steps"], total),
                                     total_steps=total, min_lr=0.1 * settings["lr"])
    return model, optimizer, scheduler


def run_training(
    text_path: str | os.PathLike | None = None,
    config: str | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
    checkpoint_every: int | None = None,
    max_steps: int | None = None,
    overwrite: bool = False,
    **overrides: Any,
) -> TrainingHistory:
    """Everything `numpygpt train` does: read the text (the Zen of Python by default),
    split it 90/10, build the preset's GPT (`config`, default "tiny") and AdamW, train, and write
    `out_dir`/checkpoint.safetensors, history.json and loss.png (with matplotlib).

    With `resume` (a checkpoint from an earlier run) the run continues exactly,
    with the settings stored in the checkpoint; only `epochs` may be raised
    (to train longer: the learning-rate schedule stays the one of the first run,
    so the extra steps run at its final rate), and other overrides must agree
    with the stored ones. A fresh run refuses to replace a checkpoint already in
    `out_dir` unless `overwrite` is set.
    """
    tokenizer = get_encoding("gpt2")
    if resume is not None:
        stored = load_checkpoint(resume, restore_rng=False)
        run = (stored["extra"] or {}).get("run") or {}
        if "settings" not in run:
            raise ValueError(f"{resume} was not written by `numpygpt train`; resume it with train_model()")
        settings = dict(run["settings"])
        text_path = _resume_text(run, text_path)
        clash = [f"--{k.replace('_', '-')} {v!r} (the checkpoint has {settings[k]!r})"
                 for k, v in overrides.items() if v is not None and k != "epochs" and v != settings.get(k)]
        if config is not None and train_settings(config)["config"] != settings["config"]:
            clash.append(f"--config {config!r} (the checkpoint has {settings['config']!r})")
        if clash:
            raise ValueError("a resumed run keeps its settings; these differ: " + "; ".join(clash))
        if overrides.get("epochs") is not None:
            done = int(stored["extra"]["epoch"])
            if overrides["epochs"] < max(done, settings["epochs"]):
                raise ValueError(f"--epochs {overrides['epochs']} is fewer than the run's {settings['epochs']} "
                                 f"({done} done); give more to train longer, or leave it out to finish the run")
            settings["epochs"] = int(overrides["epochs"])
            _check_count(settings["epochs"], "epochs")
    else:
        stored = None
        settings = train_settings(config or "tiny", **overrides)
        if text_path is not None and overrides.get("stride") is None:
            settings["stride"] = settings["context_length"]  # a text of your own: windows side by side
    text = _read_text(text_path)
    text_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if resume is not None and text_sha256 != run["text_sha256"]:
        raise ValueError(f"the text differs from the one the checkpoint {resume} was trained on")

    train_loader, val_loader = create_train_val_loaders(
        text, tokenizer, settings["batch_size"], settings["context_length"], settings["stride"], seed=settings["seed"])
    out = Path(out_dir) if out_dir is not None else (Path(resume).parent if resume else Path("runs/numpygpt-train"))
    checkpoint = out / "checkpoint.safetensors"
    if resume is None and checkpoint.exists() and not overwrite:
        raise FileExistsError(f"{checkpoint} holds an earlier run; continue it with --resume {checkpoint}, "
                              "choose another --out, or pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    model, optimizer, scheduler = _build(settings, len(train_loader))
    print(f"Training {settings['config']} ({model.num_parameters():,} parameters) on "
          f"{text_path if text_path is not None else 'the Zen of Python'}: "
          f"{len(train_loader)} batches of {settings['batch_size']} x {settings['context_length']} tokens per epoch, "
          f"{settings['epochs']} epochs" + (f", resuming from {resume}" if resume else ""))
    run_info = {"settings": settings, "text": None if text_path is None else str(Path(text_path).resolve()),
                "text_sha256": text_sha256}
    history = train_model(
        model, train_loader, val_loader, optimizer, settings["epochs"], settings["eval_freq"], settings["eval_iter"],
        settings["start_context"], tokenizer, max_grad_norm=settings["max_grad_norm"], scheduler=scheduler,
        checkpoint_path=checkpoint, checkpoint_every=checkpoint_every, resume=stored, progress=progress,
        max_steps=max_steps, run_info=run_info)

    write_json(out / "history.json", {**history.to_dict(), "settings": settings})
    plot = plot_losses(history, out / "loss.png")
    if history.interrupted:
        print(f"Interrupted after step {len(history.step_losses)}. Checkpoint: {checkpoint}")
    else:
        train_loss, val_loss = evaluate_model(model, train_loader, val_loader, settings["eval_iter"])
        print(f"Final losses (first {settings['eval_iter']} batches): train {train_loss:.3f}, val {val_loss:.3f} "
              f"(started near ln {model.cfg['vocab_size']} = {math.log(model.cfg['vocab_size']):.2f})")
        print(f"Checkpoint: {checkpoint}")
    print(f"History: {out / 'history.json'}" + (f"; loss plot: {plot}" if plot else ""))
    finished = len(history.step_losses) >= settings["epochs"] * len(train_loader)
    print(f"Resume:   numpygpt train --resume {checkpoint}" + (" --epochs N (more than before)" if finished else ""))
    print(f'Generate: numpygpt generate --checkpoint {checkpoint} "{settings["start_context"]}"')
    return history


def _resume_text(run: Mapping[str, Any], text_path: str | os.PathLike | None) -> str | os.PathLike | None:
    """The text file of a resumed run: the one given, else the one stored (None: the built-in text)."""
    if text_path is not None:
        return text_path
    stored = run.get("text")
    if stored is not None and not Path(stored).exists():
        raise FileNotFoundError(f"the run was trained on {stored}, which no longer exists; pass it with --text")
    return stored
