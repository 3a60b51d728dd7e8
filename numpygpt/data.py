"""Sliding-window dataset and batch loader for next-token prediction.

A text becomes one long sequence of token ids. Each training example is a
window of `max_length` ids and, as its target, the same window shifted one
token to the right:

    ids:     [ 40, 367, 2885, 1464, 1807, 3619, 402, ... ]
    input:   [ 40, 367, 2885, 1464]              ids[i : i + max_length]
    target:  [367, 2885, 1464, 1807]             ids[i + 1 : i + max_length + 1]

and consecutive windows start `stride` tokens apart. The loader is
`numpygpt.utils.data.DataLoader`, PyTorch's DataLoader rebuilt: it stacks
windows into (B, T) batches in PyTorch's order (after the same
`numpygpt.manual_seed`, the book's shuffled batches), and its position can be
saved and restored so that a resumed run sees exactly the batches the
uninterrupted one would have.

| name | counterpart |
|---|---|
| `GPTDataset` | the book's `GPTDatasetV1` (takes ids rather than text and a tokenizer) |
| `DataLoader` | `torch.utils.data.DataLoader` (= `numpygpt.utils.data.DataLoader`) |
| `create_dataloader` | the book's `create_dataloader_v1` |
| `train_val_split` | the book's `split_idx = int(train_ratio * len(text_data))` |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _checks
from .tokenizer import get_encoding
from .utils.data import DataLoader, Dataset

__all__ = ["GPTDataset", "DataLoader", "create_dataloader", "train_val_split"]


def _as_token_ids(token_ids: Any) -> np.ndarray:
    """`token_ids` as a 1-D int64 array of non-negative ids, or a clear error."""
    if isinstance(token_ids, str):
        raise TypeError("GPTDataset takes token ids; encode the text first (or use create_dataloader)")
    array = _checks.token_ids(token_ids)
    if array.ndim != 1:
        raise ValueError(f"token ids must be a 1-D sequence, got shape {array.shape}")
    if array.size and array.min() < 0:
        raise ValueError(f"token ids must be non-negative, got {array.min()}")
    return array


class GPTDataset(Dataset):
    """Input/target windows over a 1-D sequence of token ids (a `numpygpt.utils.data.Dataset`).

    Window i starts at token ``i * stride`` for every start in
    ``range(0, len(token_ids) - max_length, stride)``; item i is

        (ids[start : start + max_length], ids[start + 1 : start + max_length + 1])

    as two int64 arrays of length `max_length` (the book's items are two
    torch tensors). The book's `GPTDatasetV1` takes the text and a tokenizer
    instead; `create_dataloader` does that.
    Windows are sliced on demand, so the dataset holds only the ids.
    """

    def __init__(self, token_ids: Sequence[int] | np.ndarray, max_length: int, stride: int) -> None:
        self.max_length = _checks.integer(max_length, "max_length")
        self.stride = _checks.integer(stride, "stride")
        self.token_ids = _as_token_ids(token_ids)
        n = len(self.token_ids)
        if n < self.max_length + 1:
            raise ValueError(
                f"the text is too short for one window: it has {n} tokens, but max_length={self.max_length} "
                f"needs at least {self.max_length + 1} (inputs plus the one-token-shifted targets)"
            )
        self._starts = range(0, n - self.max_length, self.stride)

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not _checks.is_integer(index):
            raise TypeError(f"GPTDataset indices must be integers, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a dataset of {len(self)} windows")
        start = self._starts[index]
        window = self.token_ids[start : start + self.max_length + 1]
        return window[:-1].copy(), window[1:].copy()  # (T,), (T,)

    def __repr__(self) -> str:
        return (
            f"GPTDataset({len(self.token_ids)} tokens, max_length={self.max_length}, "
            f"stride={self.stride}, {len(self)} windows)"
        )


def _encode(text_or_ids: Any, tokenizer: Any) -> Any:
    """Token ids of a text (GPT-2 encoding by default); ids are passed through."""
    if not isinstance(text_or_ids, str):
        return text_or_ids
    if tokenizer is None:
        tokenizer = get_encoding("gpt2")
    elif isinstance(tokenizer, (str, bytes)) or not callable(getattr(tokenizer, "encode", None)):  # (str has .encode)
        name = f"{tokenizer!r}"[:80]
        raise TypeError(f"tokenizer must be an encoding with an encode() method, such as "
                        f"numpygpt.tokenizer.get_encoding('gpt2') (or None for that one), got "
                        f"{type(tokenizer).__name__} {name}")
    return tokenizer.encode(text_or_ids, allowed_special={"<|endoftext|>"})


def create_dataloader(
    text_or_ids: str | Sequence[int] | np.ndarray,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    *,
    seed: int | None = None,
    tokenizer: Any = None,
) -> DataLoader:
    """A `DataLoader` over the windows of a text, like the book's `create_dataloader_v1`.

    A `str` is encoded with `tokenizer` (default: numpygpt's GPT-2 encoding,
    with "<|endoftext|>" allowed as a special token); a sequence or array of
    ints is used as token ids directly. The batches are lists [inputs,
    targets] of two int64 arrays (B, T), in PyTorch's order: with `seed=None`
    (the book's call) the loader draws from numpygpt's global generator, so
    `numpygpt.manual_seed(123)` first gives the book's batches; `seed=s`
    (numpygpt's addition) gives it a generator of its own,
    `numpygpt.Generator().manual_seed(s)`, as PyTorch's `generator=`.
    `num_workers` exists so the book's calls read the same; loading is in
    the calling process, so only 0 is accepted. Raises ValueError if the
    loader would yield no batch at all, or for ragged ids (rows of different
    lengths), and TypeError for a tokenizer without `encode` (a name such as
    "gpt2" is not one: pass `get_encoding("gpt2")`).
    """
    for value, name in ((batch_size, "batch_size"), (max_length, "max_length"), (stride, "stride")):
        _checks.integer(value, name)
    dataset = GPTDataset(_encode(text_or_ids, tokenizer), max_length, stride)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                        num_workers=num_workers, seed=seed)
    if len(loader) == 0:
        raise ValueError(
            f"the text gives {len(dataset)} windows of max_length={max_length} with stride={stride}, "
            f"fewer than batch_size={batch_size}, so drop_last=True leaves no batch; "
            "use a longer text, a smaller batch_size or drop_last=False"
        )
    return loader


def train_val_split(text_or_ids: Any, train_ratio: float = 0.9) -> tuple[Any, Any]:
    """Split a text (by characters) or a sequence of token ids into (train, val).

    The first ``int(train_ratio * len(text_or_ids))`` elements are for
    training and the rest for validation, as in the book. Slicing keeps the
    type: two strs for a str, two arrays for an array.
    """
    if not 0.0 < train_ratio < 1.0:
        raise ValueError(f"train_ratio must be between 0 and 1 (exclusive), got {train_ratio}")
    if not hasattr(text_or_ids, "__len__") or not hasattr(text_or_ids, "__getitem__"):
        raise TypeError(f"expected a str or a sequence of token ids, got {type(text_or_ids).__name__}")
    split_idx = int(train_ratio * len(text_or_ids))
    return text_or_ids[:split_idx], text_or_ids[split_idx:]
