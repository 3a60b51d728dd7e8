"""Sliding-window dataset and batch loader for next-token prediction.

A text becomes one long sequence of token ids. Each training example is a
window of `max_length` ids and, as its target, the same window shifted one
token to the right:

    ids:     [ 40, 367, 2885, 1464, 1807, 3619, 402, ... ]
    input:   [ 40, 367, 2885, 1464]              ids[i : i + max_length]
    target:  [367, 2885, 1464, 1807]             ids[i + 1 : i + max_length + 1]

and consecutive windows start `stride` tokens apart. `DataLoader` stacks
windows into (B, T) batches, optionally in a seeded shuffled order whose
position can be saved and restored so that a resumed run sees exactly the
batches the uninterrupted one would have.

| name | counterpart |
|---|---|
| `GPTDataset` | the book's `GPTDatasetV1` (takes ids rather than text and a tokenizer) |
| `DataLoader` | `torch.utils.data.DataLoader` (single process, with a resumable position) |
| `create_dataloader` | the book's `create_dataloader_v1` |
| `train_val_split` | the book's `split_idx = int(train_ratio * len(text_data))` |
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from . import _checks
from .random import default_generator
from .tokenizer import get_encoding

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


class GPTDataset:
    """Input/target windows over a 1-D sequence of token ids.

    Window i starts at token ``i * stride`` for every start in
    ``range(0, len(token_ids) - max_length, stride)``; item i is

        (ids[start : start + max_length], ids[start + 1 : start + max_length + 1])

    as two int64 arrays of length `max_length`. The book's `GPTDatasetV1`
    takes the text and a tokenizer instead; `create_dataloader` does that.
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


class _Position:
    """Where one iteration over a DataLoader is: its epoch and batches yielded."""

    __slots__ = ("epoch", "batch_index")

    def __init__(self, epoch: int, batch_index: int) -> None:
        self.epoch = epoch
        self.batch_index = batch_index


class DataLoader:
    """Batches of a dataset, as `torch.utils.data.DataLoader` (single process).

    Iterating yields ``(inputs, targets)``, each an int64 array (B, T), made by
    stacking B consecutive items of the dataset's order: ``range(len(dataset))``,
    or with `shuffle` a permutation drawn for each epoch. With `drop_last` a
    final batch smaller than `batch_size` is dropped.

    Epochs and shuffling: every `iter(loader)` starts a new epoch e = 0, 1, ...
    whose order comes from ``np.random.default_rng([seed, e])``, so the same
    seed gives the same sequence of epochs, and the order of epoch e does not
    depend on how epochs before it were consumed. With ``seed=None`` and
    `shuffle`, a seed is drawn from numpygpt's global generator when first
    needed (so `numpygpt.manual_seed` makes it reproducible); `self.seed` then
    shows it. (PyTorch draws each epoch's permutation from its global
    generator instead.)

    Resuming: `state_dict()` returns ``{"seed", "epoch", "batch_index",
    "next_epoch"}``: the epoch of the most recently started iteration that is
    still open, how many batches it has yielded, and the epoch number the next
    new iteration will take. After `load_state_dict(state)` the next
    `iter(loader)` continues that epoch at batch "batch_index" (yielding
    nothing if it was finished), so a resumed training loop sees exactly the
    remaining batches. Iterating the same loader elsewhere (say, for a few
    evaluation batches) starts another epoch, as it does in PyTorch; once that
    iteration is closed the position is again the training loop's.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
    ) -> None:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"dataset must support len() and indexing, got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = _checks.integer(batch_size, "batch_size")
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = _checks.integer(seed, "seed", minimum=0, allow_none=True)
        self._next_epoch = 0
        self._resume: _Position | None = None
        self._open: list[_Position] = []  # positions of iterations still open, oldest first

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __repr__(self) -> str:
        return (
            f"DataLoader({len(self.dataset)} items, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, seed={self.seed}, {len(self)} batches)"
        )

    def order(self, epoch: int) -> np.ndarray:
        """The order in which epoch `epoch` visits the dataset's items."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self._shuffle_seed(), epoch]).permutation(n)

    def _shuffle_seed(self) -> int:
        if self.seed is None:  # drawn when first needed, so making a loader uses no randomness
            self.seed = _draw_seed()
        return self.seed

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self._resume is not None:
            position, self._resume = self._resume, None
        else:
            position = _Position(self._next_epoch, 0)
            self._next_epoch += 1
        return self._batches(position)

    def _batches(self, position: _Position) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = self.order(position.epoch)
        self._open.append(position)  # registered on the first next(), so `finally` always runs
        try:
            for b in range(position.batch_index, len(self)):
                indices = order[b * self.batch_size : (b + 1) * self.batch_size]
                batch = _collate([self.dataset[int(i)] for i in indices])
                position.batch_index = b + 1
                yield batch
        finally:
            self._open = [p for p in self._open if p is not position]

    def state_dict(self) -> dict[str, int | None]:
        """The loader's position as plain ints (see the class docstring)."""
        if self._resume is not None:
            position = self._resume
        elif self._open:
            position = self._open[-1]
        else:
            position = _Position(self._next_epoch, 0)
        return {
            "seed": self._shuffle_seed() if self.shuffle else self.seed,
            "epoch": position.epoch,
            "batch_index": position.batch_index,
            "next_epoch": self._next_epoch,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a position from `state_dict()`; the next iteration resumes there."""
        missing = [key for key in ("seed", "epoch", "batch_index") if key not in state_dict]
        if missing:
            raise ValueError(f"DataLoader state_dict is missing {', '.join(missing)}")
        seed = _checks.integer(state_dict["seed"], "seed", minimum=0, allow_none=True)
        values = {key: _checks.integer(state_dict.get(key, 0), f"DataLoader state_dict: {key}", minimum=0)
                  for key in ("epoch", "batch_index", "next_epoch")}
        if values["batch_index"] > len(self):
            raise ValueError(
                f"DataLoader state_dict: batch_index {values['batch_index']} is past the end of an epoch "
                f"of {len(self)} batches"
            )
        self.seed = seed
        # The resumed epoch is taken, so new iterations start after it.
        self._next_epoch = max(values["next_epoch"], values["epoch"] + 1)
        self._resume = _Position(values["epoch"], values["batch_index"])
        self._open = []


def _collate(items: list[Any]) -> Any:
    """Stack a list of (input, target) pairs into a pair of batches."""
    if isinstance(items[0], (tuple, list)):
        return tuple(np.stack(parts) for parts in zip(*items))
    return np.stack(items)


def _draw_seed() -> int:
    """A seed for a DataLoader, from numpygpt's global generator."""
    return int(default_generator().integers(2**63))


def _encode(text_or_ids: Any, tokenizer: Any) -> Any:
    """Token ids of a text (GPT-2 encoding by default); ids are passed through."""
    if not isinstance(text_or_ids, str):
        return text_or_ids
    if tokenizer is None:
        tokenizer = get_encoding("gpt2")
    return tokenizer.encode(text_or_ids, allowed_special={"<|endoftext|>"})


def create_dataloader(
    text_or_ids: str | Sequence[int] | np.ndarray,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    seed: int | None = None,
    tokenizer: Any = None,
    num_workers: int = 0,
) -> DataLoader:
    """A `DataLoader` over the windows of a text, like the book's `create_dataloader_v1`.

    A `str` is encoded with `tokenizer` (default: numpygpt's GPT-2 encoding,
    with "<|endoftext|>" allowed as a special token); a sequence or array of
    ints is used as token ids directly. `num_workers` exists so the book's
    calls read the same; loading is always in-process, so only 0 is accepted.
    Raises ValueError if the loader would yield no batch at all.
    """
    if num_workers != 0:
        raise ValueError(f"numpygpt's DataLoader loads in the calling process; num_workers must be 0, got {num_workers}")
    for value, name in ((batch_size, "batch_size"), (max_length, "max_length"), (stride, "stride")):
        _checks.integer(value, name)
    dataset = GPTDataset(_encode(text_or_ids, tokenizer), max_length, stride)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed)
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
