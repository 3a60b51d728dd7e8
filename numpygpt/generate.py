"""Text generation: the seed's greedy loop, and sampling with a KV cache.

`generate_text_simple` is the seed's loop: crop the context to what the model
supports, run the model, take the last position's logits, pick the most likely
next token, append, repeat. Every step re-runs the whole context.

`generate` adds temperature, top-k, top-p and a stop token, and by default a
KV cache: the prompt runs once, then each step runs only the newest token
against the cached keys and values of the earlier ones.

Past the context: positions are absolute, so once the sequence is longer than
`context_size` every cached key was computed at a position that no longer
holds. `generate` then does what `generate_text_simple` does, re-running the
last `context_size` tokens for each new token, so both give the same ids. The
cache speeds up everything before that point.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from . import _checks
from . import functional as F
from .autograd import no_grad
from .random import Generator, default_generator
from .tensor import Tensor


def _as_ids(idx: Any) -> np.ndarray:
    """The prompt as an int64 (B, T) array with T >= 1 (the model checks the ids' range)."""
    ids = _checks.token_ids(idx, shape="a (batch, num_tokens) array")
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"token ids must have shape (batch, num_tokens) with at least one token, got {ids.shape}")
    return ids


def _check_counts(model: Any, max_new_tokens: int, context_size: int) -> None:
    _checks.integer(max_new_tokens, "max_new_tokens", minimum=0)
    _checks.integer(context_size, "context_size")
    limit = getattr(model, "cfg", {}).get("context_length")
    if limit is not None and context_size > limit:
        raise ValueError(f"context_size {context_size} exceeds the model's context_length {limit}")




def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise for sampling options `generate` cannot use: TypeError for one of the wrong
    type (a string, None as the temperature), ValueError for a number out of range.
    Each message names the option and the value."""
    if not _checks.is_number(temperature):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__} {temperature!r}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 is greedy), got {temperature}")
    _checks.integer(top_k, "top_k", allow_none=True)
    if top_p is not None and not _checks.is_number(top_p):
        raise TypeError(f"top_p must be a number in (0, 1] or None, got {type(top_p).__name__} {top_p!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


def generate_text_simple(model: Any, idx: Any, max_new_tokens: int, context_size: int) -> Any:
    """Greedy decoding, as the seed: returns ids (B, T + max_new_tokens).

    `idx` is an int (B, T) ndarray or Tensor; the result is of the same kind.
    """
    _check_counts(model, max_new_tokens, context_size)
    ids = _as_ids(idx)
    for _ in range(max_new_tokens):
        idx_cond = ids[:, -context_size:]                     # (B, ≤ context_size) crop the context
        with no_grad():
            logits = model(idx_cond)                          # (B, T, V)
        logits = logits[:, -1, :]                             # (B, V) the last time step only
        probas = F.softmax(logits, dim=-1)                    # (B, V)
        idx_next = np.argmax(probas.data, axis=-1)[:, None]   # (B, 1) the most likely token
        ids = np.concatenate([ids, idx_next], axis=1)         # (B, T + 1)
    return Tensor(ids) if isinstance(idx, Tensor) else ids


def _filter_logits(logits: np.ndarray, top_k: int | None, top_p: float | None) -> np.ndarray:
    """Set to -inf every logit outside the top k, then outside the nucleus: the
    smallest set of most likely tokens whose probabilities add up to at least top_p."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]      # (B, 1) the k-th largest
        logits = np.where(logits < kth, -np.inf, logits)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-logits, axis=-1, kind="stable")                   # (B, V) most likely first
        sorted_logits = np.take_along_axis(logits, order, axis=-1)
        probs = np.exp(sorted_logits - sorted_logits[:, :1])
        probs /= probs.sum(axis=-1, keepdims=True)
        before = np.cumsum(probs, axis=-1) - probs                            # mass of the more likely tokens
        drop_sorted = before >= top_p                                         # already enough without this one
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        logits = np.where(drop, -np.inf, logits)
    return logits


def _next_token(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float | None,
                generator: Generator) -> np.ndarray:
    """Pick one id per row from last-position logits (B, V): greedy when temperature is 0,
    else as the book does, `torch.multinomial(torch.softmax(logits / T, dim=-1), 1)`."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        scaled = logits / logits.dtype.type(temperature) if temperature else logits
    if temperature == 0 or not np.all(np.isfinite(scaled[np.isfinite(logits)])):
        # greedy: temperature 0, or one so small that logits / T overflows (its limit is the argmax)
        return np.argmax(logits, axis=-1)                                     # (B,)
    logits = _filter_logits(scaled, top_k, top_p)
    return sample(logits, generator)[:, 0]                                    # (B,)


def _check_eos(eos_id: Any, vocab_size: int | None) -> None:
    """`eos_id` is None or a token id of the model's vocabulary (a string or 10**20 never matches one)."""
    _checks.integer(eos_id, "eos_id", minimum=0, allow_none=True)
    if eos_id is not None and vocab_size is not None and eos_id >= vocab_size:
        raise ValueError(f"eos_id {eos_id} is not a token id of this model (its vocab_size is {vocab_size})")


def sample(logits: np.ndarray, generator: Generator) -> np.ndarray:
    """One id per row (B, 1) drawn from softmax(logits), as `torch.multinomial(torch.softmax(logits, -1), 1)`."""
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))               # (B, V) softmax
    probs /= probs.sum(axis=-1, keepdims=True)
    return generator.multinomial(probs, num_samples=1)                        # (B, 1)


def generate_stream(model: Any, idx: Any, max_new_tokens: int, context_size: int, temperature: float = 0.0,
                    top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
                    use_cache: bool = True, seed: int | None = None) -> Iterator[np.ndarray]:
    """Yield the next ids (B,) one step at a time; see `generate` for the arguments.
    Rows that have produced `eos_id` keep yielding `eos_id`; the stream ends when
    every row has, or after max_new_tokens steps."""
    _check_counts(model, max_new_tokens, context_size)
    check_sampling(temperature, top_k, top_p)
    _check_eos(eos_id, getattr(model, "cfg", {}).get("vocab_size"))
    ids = _as_ids(idx)
    generator = Generator().manual_seed(seed) if seed is not None else default_generator
    cache_ok = use_cache and hasattr(model, "new_kv_cache")
    cache = model.new_kv_cache(context_size) if cache_ok else None
    finished = np.zeros(len(ids), dtype=bool)
    pending = ids[:, -context_size:]          # what the model has not seen yet
    with no_grad():
        for _ in range(max_new_tokens):
            if cache is not None and cache.length + pending.shape[1] <= context_size:
                logits = model(pending, kv_cache=cache)            # (B, T_new, V) only the new tokens
            else:
                cache = None                                       # past the context: recompute the window
                logits = model(ids[:, -context_size:])             # (B, T, V)
            idx_next = _next_token(logits.data[:, -1, :], temperature, top_k, top_p, generator)  # (B,)
            if eos_id is not None:
                idx_next = np.where(finished, eos_id, idx_next)
                finished |= idx_next == eos_id
            ids = np.concatenate([ids, idx_next[:, None]], axis=1)
            pending = idx_next[:, None]
            yield idx_next
            if eos_id is not None and finished.all():
                return


def generate(model: Any, idx: Any, max_new_tokens: int, context_size: int, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
             use_cache: bool = True, seed: int | None = None) -> Any:
    """Continue token ids (B, T) by up to `max_new_tokens`; returns (B, T + n).

    - temperature 0 (the default) is greedy and gives the ids `generate_text_simple`
      gives; temperature > 0 samples from softmax(logits / temperature). A temperature
      so small that logits / temperature overflows (1e-310, say) is greedy too: that is
      the limit of softmax(logits / T) as T -> 0. NaN, infinite or negative temperatures
      raise ValueError, a temperature that is not a number (a string, None) TypeError;
    - top_k keeps the k most likely tokens, top_p the smallest set whose
      probability reaches p (applied after the temperature);
    - eos_id: a row that produces it is finished (and padded with it); generation
      stops early once every row is;
    - use_cache: run the prompt once and then one token per step (see the module doc);
    - seed: sample from a generator of its own, so the same seed gives the same
      text; without it numpygpt's global generator (`manual_seed`) is used. It must
      be a non-negative integer (ValueError for -1, TypeError for 1.5 or "1").
    Ragged ids ([[1, 2], [3]]) raise ValueError: the rows have different lengths.
    Returns an ndarray, or a Tensor when `idx` is one.
    """
    ids = _as_ids(idx)
    steps = list(generate_stream(model, ids, max_new_tokens, context_size, temperature, top_k, top_p,
                                 eos_id, use_cache, seed))
    out = np.concatenate([ids, np.stack(steps, axis=1)], axis=1) if steps else ids
    return Tensor(out) if isinstance(idx, Tensor) else out
