"""The book's chapter-5 functions with the book's own signatures.

numpygpt's `train` and `generate` modules have richer versions (checkpoints,
exact resume, a KV cache, top-p); these are the book's, line for line, so
that code written against the book calls them unchanged:

    calc_loss_batch(input_batch, target_batch, model, device)
    calc_loss_loader(data_loader, model, device, num_batches=None)
    evaluate_model(model, train_loader, val_loader, device, eval_iter)
    generate_and_print_sample(model, tokenizer, device, start_context)
    train_model_simple(model, train_loader, val_loader, optimizer, device,
                       num_epochs, eval_freq, eval_iter, start_context, tokenizer)
        -> (train_losses, val_losses, track_tokens_seen)
    generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, eos_id=None)

`device` is accepted and must be the CPU (None or "cpu"): numpygpt has one
device. Random draws (dropout, shuffling, `multinomial`) come from numpygpt's
generator, which is PyTorch's: after the same `manual_seed`, the same
construction order and the same data, these functions give the book's
losses and samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _checks
from . import functional as F
from .autograd import no_grad
from .generate import generate_text_simple, sample
from .random import default_generator
from .tensor import Tensor
from .tokenizer import text_to_token_ids, token_ids_to_text

__all__ = ["calc_loss_batch", "calc_loss_loader", "evaluate_model", "generate_and_print_sample",
           "train_model_simple", "generate"]


def calc_loss_batch(input_batch: Any, target_batch: Any, model: Any, device: Any = None) -> Tensor:
    """Cross-entropy of one batch: logits (B, T, V) flattened against targets (B, T) flattened."""
    _checks.check_device(device)
    logits = model(input_batch)                                            # (B, T, V)
    targets = np.asarray(getattr(target_batch, "data", target_batch))     # (B, T)
    return F.cross_entropy(logits.flatten(0, 1), targets.reshape(-1))


def calc_loss_loader(data_loader: Any, model: Any, device: Any = None, num_batches: int | None = None) -> float:
    """The mean batch loss over the first `num_batches` batches (all by default; NaN for none)."""
    total_loss = 0.0
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i < num_batches:
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            total_loss += loss.item()
        else:
            break
    return total_loss / num_batches


def evaluate_model(model: Any, train_loader: Any, val_loader: Any, device: Any, eval_iter: int) -> tuple[float, float]:
    """Train and validation loss over `eval_iter` batches each, in eval mode without a graph."""
    model.eval()
    with no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def generate_and_print_sample(model: Any, tokenizer: Any, device: Any, start_context: str) -> None:
    """Print 50 greedy tokens after `start_context`, on one line."""
    _checks.check_device(device)
    model.eval()
    context_size = model.pos_emb.weight.shape[0]
    encoded = text_to_token_ids(start_context, tokenizer)
    with no_grad():
        token_ids = generate_text_simple(model=model, idx=encoded, max_new_tokens=50, context_size=context_size)
    decoded_text = token_ids_to_text(token_ids, tokenizer)
    print(decoded_text.replace("\n", " "))  # compact print format
    model.train()


def train_model_simple(model: Any, train_loader: Any, val_loader: Any, optimizer: Any, device: Any,
                       num_epochs: int, eval_freq: int, eval_iter: int, start_context: str,
                       tokenizer: Any) -> tuple[list[float], list[float], list[int]]:
    """The book's training loop: evaluate at steps 0, eval_freq, 2 eval_freq, ... and print a
    sample after each epoch; returns (train_losses, val_losses, track_tokens_seen)."""
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1
    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()                     # reset the gradients of the previous batch
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()                           # the gradients
            optimizer.step()                          # update the weights
            tokens_seen += int(np.size(getattr(input_batch, "data", input_batch)))
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): "
                      f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        generate_and_print_sample(model, tokenizer, device, start_context)
    return train_losses, val_losses, track_tokens_seen


def generate(model: Any, idx: Any, max_new_tokens: int, context_size: int, temperature: float = 0.0,
             top_k: int | None = None, eos_id: int | None = None) -> np.ndarray:
    """The book's sampling loop: keep the top_k logits (torch.topk, torch.where), divide by the
    temperature, softmax, torch.multinomial; greedy (argmax) at temperature 0; stop at eos_id."""
    idx = np.asarray(getattr(idx, "data", idx))                            # (B, T)
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]
        with no_grad():
            logits = model(idx_cond).data
        logits = logits[:, -1, :]                                          # (B, V) the last position
        if top_k is not None:
            top_logits = -np.sort(-logits, axis=-1)[:, :top_k]             # torch.topk's values
            min_val = top_logits[:, -1:]                                   # (B, 1): the book's (B,) fits B = 1 only
            logits = np.where(logits < min_val, -np.inf, logits).astype(logits.dtype)
        if temperature > 0.0:
            idx_next = sample(logits / logits.dtype.type(temperature), default_generator)  # (B, 1)
        else:
            idx_next = np.argmax(logits, axis=-1)[:, None]                 # (B, 1)
        if eos_id is not None and np.all(idx_next == eos_id):
            break
        idx = np.concatenate((idx, idx_next), axis=1)                      # (B, T + 1)
    return idx
