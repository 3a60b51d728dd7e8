"""The `numpygpt train` recipe: presets, the default text, the run directory, and a run.

    the presets              TRAIN_CONFIGS["tiny"], TRAIN_CONFIGS["gpt2-small"], ...
    a preset's settings      train_settings("tiny", epochs=5, ...)
    the text it learns       default_text(): the Zen of Python, unless --text names a file
    the book's two loaders   create_train_val_loaders(text, tokenizer, batch_size, context_length, stride)
    what the command runs    run_training(text_path, preset, out_dir, resume, ...)

`run_training` reads the text, splits it 90/10, builds the preset's GPT and
AdamW (with a warmup-cosine schedule when the preset has warmup steps), hands
them to numpygpt.train's `train_model`, and writes the run directory:

    checkpoint.safetensors   model, optimizer, generator and loop state (resumable)
    history.json             what train_model recorded, plus the settings
    loss.png                 the book's loss figure (with matplotlib)

A resumed run (`resume=` a checkpoint it wrote) takes its settings and text
back from the checkpoint's extra["run"] and continues exactly.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _checks
from .checkpoint import load_checkpoint
from .data import create_dataloader, train_val_split
from .files import check_regular_file, write_json
from .lr_scheduler import CosineWithWarmup
from .model import GPT2_PRESETS, PRESET_ALIASES, GPTModel, get_config, validate_config
from .optim import AdamW, param_groups_for_weight_decay
from .random import manual_seed
from .tokenizer import get_encoding
from .train import TrainingHistory, evaluate_model, plot_losses, train_model

__all__ = ["TRAIN_CONFIGS", "default_text", "train_settings", "create_train_val_loaders", "run_training"]


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
# vocabulary that learns the Zen of Python by heart (200 steps: under a minute on
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


_SETTINGS = ("epochs", "batch_size", "context_length", "stride", "lr", "weight_decay", "max_grad_norm",
             "warmup_steps", "eval_freq", "eval_iter", "seed", "start_context")


def train_settings(preset: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """The settings of a preset of `TRAIN_CONFIGS` ("tiny", "gpt2-small", ...), with
    overrides (None keeps the preset's value).

    Returns a flat dict: "config" (the preset's name), "model" (the GPT config,
    its context_length set from "context_length") and the keys of `_SETTINGS`.
    A GPT-2 preset's stride follows an overridden context_length unless given.
    """
    name = PRESET_ALIASES.get(preset, preset)
    if name not in TRAIN_CONFIGS:
        raise ValueError(f"unknown training config {preset!r}; choose one of {', '.join(TRAIN_CONFIGS)}")
    unknown = [k for k in overrides if k not in _SETTINGS]
    if unknown:
        raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
    config = TRAIN_CONFIGS[name]
    settings: dict[str, Any] = {"config": name, "context_length": config["model"]["context_length"]}
    settings.update({k: v for k, v in config.items() if k != "model"})
    given = {k: v for k, v in overrides.items() if v is not None}
    if name != "tiny" and "context_length" in given and "stride" not in given:
        given["stride"] = given["context_length"]
    settings.update(given)
    for key in ("epochs", "batch_size", "context_length", "stride", "eval_freq", "eval_iter"):
        _checks.integer(settings[key], key)
    if not settings["lr"] > 0:
        raise ValueError(f"lr must be positive, got {settings['lr']}")
    if settings["weight_decay"] < 0:
        raise ValueError(f"weight_decay must be >= 0, got {settings['weight_decay']}")
    if settings["max_grad_norm"] is not None and settings["max_grad_norm"] <= 0:
        settings["max_grad_norm"] = None       # 0 or less turns clipping off
    _checks.integer(settings["warmup_steps"], "warmup_steps", minimum=0)
    _checks.integer(settings["seed"], "seed", minimum=0)
    if not isinstance(settings["start_context"], str) or not settings["start_context"]:
        raise ValueError(f"start_context must be some text to continue, got {settings['start_context']!r}")
    settings["model"] = validate_config({**config["model"], "context_length": settings["context_length"]})
    return settings


# ----------------------------------------------------------------------------- the book's two loaders


def create_train_val_loaders(text: str, tokenizer: Any, batch_size: int, context_length: int, stride: int,
                             seed: int | None = None, train_ratio: float = 0.9) -> tuple[Any, Any]:
    """The book's two loaders: the first 90% of the text (by characters) for training,
    shuffled as PyTorch's DataLoader shuffles (from the global generator, as the book's;
    with `seed`, from a generator of its own), incomplete last batch dropped; the rest for validation, in
    order, every window kept. Raises ValueError with the numbers if either part is too
    short for one batch."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the training text is empty")
    for value, name in ((batch_size, "batch_size"), (context_length, "context_length"), (stride, "stride")):
        _checks.integer(value, name)
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


# ----------------------------------------------------------------------------- the text, the run directory, the model


def _read_text(path: str | os.PathLike | None) -> str:
    """The text to train on: the file at `path` (UTF-8, not empty), or the default text."""
    if path is None:
        return default_text()
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such text file: {p}")
    if p.is_dir():
        raise ValueError(f"{p} is a directory; give a UTF-8 text file")
    check_regular_file(p, "text file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{p} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise ValueError(f"{p} is empty; give a text to train on")
    return text


def _run_directory(out_dir: str | os.PathLike | None, resume: str | os.PathLike | None,
                   overwrite: bool) -> tuple[Path, Path]:
    """(the run directory, its checkpoint path), the directory made if need be.

    The directory is `out_dir`, else the resumed checkpoint's, else
    runs/numpygpt-train. A fresh run never replaces a checkpoint there
    unless `overwrite` is set.
    """
    out = Path(out_dir) if out_dir is not None else (Path(resume).parent if resume else Path("runs/numpygpt-train"))
    checkpoint = out / "checkpoint.safetensors"
    if resume is None and checkpoint.exists() and not overwrite:
        raise FileExistsError(f"{checkpoint} holds an earlier run; continue it with --resume {checkpoint}, "
                              "choose another --out, or pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    return out, checkpoint


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


# ----------------------------------------------------------------------------- what `numpygpt train` runs


def run_training(
    text_path: str | os.PathLike | None = None,
    preset: str | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
    checkpoint_every: int | None = None,
    max_steps: int | None = None,
    overwrite: bool = False,
    **overrides: Any,
) -> TrainingHistory:
    """Everything `numpygpt train` does: read the text (the Zen of Python by default),
    split it 90/10, build the preset's GPT (`preset`, default "tiny") and AdamW, train, and write
    `out_dir`/checkpoint.safetensors, history.json and loss.png (with matplotlib).

    With `resume` (a checkpoint from an earlier run) the run continues exactly,
    with the settings stored in the checkpoint; only `epochs` may be raised
    (to train longer: the learning-rate schedule stays the one of the first run,
    so the extra steps run at its final rate), and other overrides must agree
    with the stored ones. A run that has already done all its epochs is not trained
    again: it says so, and how to train longer (`epochs=` more), and returns the
    stored history (the command exits with status 0: nothing was left to do).
    A fresh run refuses to replace a checkpoint already in `out_dir` unless
    `overwrite` is set.
    """
    tokenizer = get_encoding("gpt2")
    if resume is not None:
        stored, run, settings, text_path = _resumed_run(resume, preset, text_path, overrides)
        if _already_finished(stored, settings, resume):
            return TrainingHistory.from_dict(stored["extra"]["history"])
    else:
        stored, run = None, None
        settings = train_settings(preset or "tiny", **overrides)
        if text_path is not None and overrides.get("stride") is None:
            settings["stride"] = settings["context_length"]  # a text of your own: windows side by side
    text = _read_text(text_path)
    text_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if run is not None and text_sha256 != run["text_sha256"]:
        raise ValueError(f"the text differs from the one the checkpoint {resume} was trained on")

    train_loader, val_loader = create_train_val_loaders(
        text, tokenizer, settings["batch_size"], settings["context_length"], settings["stride"])  # shuffled from
    # the global generator, which _build seeds before the model: the book's order of draws
    out, checkpoint = _run_directory(out_dir, resume, overwrite)
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
    if not history.interrupted:  # (train_model has said where an interrupted run's state is kept)
        train_loss, val_loss = evaluate_model(model, train_loader, val_loader, settings["eval_iter"])
        print(f"Final losses (first {settings['eval_iter']} batches): train {train_loss:.3f}, val {val_loss:.3f} "
              f"(started near ln {model.cfg['vocab_size']} = {math.log(model.cfg['vocab_size']):.2f})")
        print(f"Checkpoint: {checkpoint}")
    print(f"History: {out / 'history.json'}" + (f"; loss plot: {plot}" if plot else ""))
    finished = len(history.step_losses) >= settings["epochs"] * len(train_loader)
    print(f"Resume:   numpygpt train --resume {checkpoint}" + (" --epochs N (more than before)" if finished else ""))
    print(f'Generate: numpygpt generate --checkpoint {checkpoint} "{settings["start_context"]}"')
    return history


def _already_finished(stored: Mapping[str, Any], settings: Mapping[str, Any], resume: Any) -> bool:
    """True (after printing what to do instead) when the run in `resume` has done all `settings["epochs"]`."""
    done = int(stored["extra"]["epoch"])
    if done < settings["epochs"]:
        return False
    print(f"{resume} holds a finished run: {done} epoch{'s' if done != 1 else ''} ({stored['step']} steps), "
          "nothing left to train. "
          f"To train longer: numpygpt train --resume {resume} --epochs {done + 1} (or more)")
    return True


def _resumed_run(resume: str | os.PathLike, preset: str | None, text_path: str | os.PathLike | None,
                 overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Any]:
    """What a run to resume needs: (the checkpoint's contents, its extra["run"], the settings, the text file).

    The settings are the stored ones; overrides must agree with them, except
    `epochs`, which may be raised to train longer.
    """
    stored = load_checkpoint(resume, restore_rng=False)
    run = (stored["extra"] or {}).get("run") or {}
    if "settings" not in run:
        raise ValueError(f"{resume} was not written by `numpygpt train`; resume it with train_model()")
    settings = dict(run["settings"])
    text_path = _resume_text(run, text_path)
    clash = [f"--{k.replace('_', '-')} {v!r} (the checkpoint has {settings[k]!r})"
             for k, v in overrides.items() if v is not None and k != "epochs" and v != settings.get(k)]
    if preset is not None and train_settings(preset)["config"] != settings["config"]:
        clash.append(f"--config {preset!r} (the checkpoint has {settings['config']!r})")
    if clash:
        raise ValueError("a resumed run keeps its settings; these differ: " + "; ".join(clash))
    if overrides.get("epochs") is not None:
        done = int(stored["extra"]["epoch"])
        if overrides["epochs"] < max(done, settings["epochs"]):
            raise ValueError(f"--epochs {overrides['epochs']} is fewer than the run's {settings['epochs']} "
                             f"({done} done); give more to train longer, or leave it out to finish the run")
        settings["epochs"] = int(overrides["epochs"])
        _checks.integer(settings["epochs"], "epochs")
    return stored, run, settings, text_path


def _resume_text(run: Mapping[str, Any], text_path: str | os.PathLike | None) -> str | os.PathLike | None:
    """The text file of a resumed run: the one given, else the one stored (None: the built-in text)."""
    if text_path is not None:
        return text_path
    stored = run.get("text")
    if stored is not None and not Path(stored).exists():
        raise FileNotFoundError(f"the run was trained on {stored}, which no longer exists; pass it with --text")
    return stored
