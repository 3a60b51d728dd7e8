"""Text generation: the seed's greedy loop.

`generate_text_simple` is the seed's loop: crop the context to what the model
supports, run the model, take the last position's logits, pick the most likely
next token, append, repeat.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional as F
from .tensor import Tensor, no_grad


def _as_ids(idx: Any) -> np.ndarray:
    ids = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, got dtype {ids.dtype}")
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"token ids must have shape (batch, num_tokens) with at least one token, got {ids.shape}")
    return ids.astype(np.int64, copy=False)


def _check_counts(max_new_tokens: int, context_size: int) -> None:
    if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if not isinstance(context_size, (int, np.integer)) or context_size <= 0:
        raise ValueError(f"context_size must be a positive integer, got {context_size!r}")


def generate_text_simple(model: Any, idx: Any, max_new_tokens: int, context_size: int) -> Any:
    """Greedy decoding, as the seed: returns ids (B, T + max_new_tokens).

    `idx` is an int (B, T) ndarray or Tensor; the result is of the same kind.
    """
    _check_counts(max_new_tokens, context_size)
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
