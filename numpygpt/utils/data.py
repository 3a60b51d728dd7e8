"""Datasets, samplers and the batch loader, as `torch.utils.data` (single process).

    Dataset              torch.utils.data.Dataset: items by index, and a length
    SequentialSampler    0, 1, ..., n - 1
    RandomSampler        a permutation of 0 .. n - 1, drawn afresh for every pass
    BatchSampler         groups a sampler's indices into lists of batch_size
    default_collate      stacks a list of items into one batch
    DataLoader           iterates the batches of a dataset, epoch after epoch

The order is PyTorch's exactly: the same `numpygpt.manual_seed` and the same
dataset give the batches `torch.manual_seed` gives, and leave the global
generator where PyTorch leaves it. These are all the draws a single-process
PyTorch DataLoader makes (torch/utils/data/dataloader.py and sampler.py):

    iter(loader)       one int64 from the loader's `generator`, else from the global one:
                       the iterator's `_base_seed`, which PyTorch hands to worker processes.
                       It is drawn with shuffle=False too.
    first next()       with shuffle and no generator: one int64 from the global generator,
                       the RandomSampler's seed; the epoch's order is then randperm(n) from
                       a fresh Generator seeded with it. So the global generator moves by two
                       int64 draws per epoch, whatever n is.
                       With shuffle and a generator: randperm(n) from that generator.
    sampler exhausted  a second randperm(n), of which PyTorch keeps nothing
                       (`randperm(n)[: num_samples % n]`); it matters only with a generator,
                       which it moves. It happens when the batches ask for an index past the
                       last: inside the last batch when that is a short one that is kept,
                       else at the StopIteration.

(An int64 draw is `torch.empty((), dtype=torch.int64).random_()`: two 32-bit
words, see `numpygpt.random.Generator.random_int64`.)

Where numpygpt differs from PyTorch:

- Batches are NumPy arrays (numpygpt Tensors when the items are Tensors),
  not torch tensors; a pair of arrays per item gives a list of two stacked
  arrays, as `default_collate` gives a list of two tensors.
- One process: `num_workers` must be 0. Map-style datasets only (indexable,
  with a length); no `sampler` / `batch_sampler` arguments; RandomSampler
  without replacement and with `num_samples` = the dataset's length.
- `DataLoader.state_dict()` / `load_state_dict()` save and restore the
  position inside an epoch, for exact resume (PyTorch's DataLoader has none).
- `DataLoader(..., seed=s)` is short for `generator=numpygpt.Generator().manual_seed(s)`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .. import _checks
from ..random import Generator, default_generator
from ..functions import stack
from ..tensor import Tensor

__all__ = ["Dataset", "Sampler", "SequentialSampler", "RandomSampler", "BatchSampler", "default_collate",
           "DataLoader"]


class Dataset:
    """Base class of map-style datasets, as `torch.utils.data.Dataset`: subclasses define
    `__getitem__(index)` and `__len__()`. (PyTorch's base class declares no `__len__`,
    since iterable datasets may have none; every dataset here has one.)"""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


# ----------------------------------------------------------------------------- samplers


class Sampler:
    """Base class of samplers, as `torch.utils.data.Sampler`: an iterable of dataset indices."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1, as `torch.utils.data.SequentialSampler`."""

    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


@dataclasses.dataclass
class PermutationSource:
    """Where one pass of a RandomSampler takes its permutation from, once it is drawn.

    seed             no generator given: the seed drawn from the global generator,
                     from which a fresh Generator draws the permutation
    generator_state  a generator given: its state just before it drew the permutation

    Either one reproduces the permutation without drawing again, which is how
    a DataLoader resumes an epoch (see `RandomSampler.iter_from`).
    """

    seed: int | None = None
    generator_state: dict[str, Any] | None = None


class RandomSampler(Sampler):
    """A permutation of the dataset's indices, drawn afresh for every pass,
    as `torch.utils.data.RandomSampler` without replacement (see the module docstring
    for its draws). Differs from PyTorch: no `replacement` or `num_samples`."""

    def __init__(self, data_source: Any, generator: Generator | None = None) -> None:
        if len(data_source) == 0:  # PyTorch: "num_samples should be a positive integer value"
            raise ValueError("RandomSampler needs a dataset with at least one item, got an empty one")
        self.data_source = data_source
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        return self.iter_from(PermutationSource())

    def __len__(self) -> int:
        return len(self.data_source)

    def iter_from(self, source: PermutationSource, start: int = 0) -> Iterator[int]:
        """The pass that `source` describes, from its `start`-th index on.

        A new pass (an empty `PermutationSource`) draws as PyTorch's `__iter__`
        does and records in `source` what its permutation came from; a source
        filled in gives the same permutation with nothing drawn. `start` counts
        the indices taken already; more than n means the pass was asked past its
        end, so its last draw (below) is made too.
        """
        n = len(self.data_source)
        if self.generator is None:
            if source.seed is None:  # at the first next(), as PyTorch's generator function does
                source.seed = default_generator.random_int64()  # torch.empty((), dtype=torch.int64).random_()
            perm = Generator().manual_seed(source.seed).randperm(n)
        elif source.generator_state is None:
            source.generator_state = self.generator.get_state()
            perm = self.generator.randperm(n)
        else:
            perm = Generator().set_state(source.generator_state).randperm(n)
        yield from perm[start:].tolist()
        if self.generator is not None and start <= n:
            # PyTorch goes on to draw randperm(n)[: num_samples % n], an empty slice. With a fresh
            # Generator the draw is thrown away with it, so only the loader's generator needs it.
            self.generator.randperm(n)


class BatchSampler(Sampler):
    """Lists of `batch_size` indices from `sampler`, as `torch.utils.data.BatchSampler`;
    with `drop_last` a final short list is dropped."""

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool) -> None:
        self.sampler = sampler
        self.batch_size = _checks.integer(batch_size, "batch_size")
        self.drop_last = bool(drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        return self.group(iter(self.sampler))

    def group(self, indices: Iterator[int]) -> Iterator[list[int]]:
        """Batches of `indices`, taken one by one as PyTorch takes them (which decides when a
        RandomSampler finds itself exhausted)."""
        if self.drop_last:
            for batch in zip(*[indices] * self.batch_size):  # the same iterator batch_size times
                yield list(batch)
        else:
            batch = list(itertools.islice(indices, self.batch_size))
            while batch:
                yield batch
                batch = list(itertools.islice(indices, self.batch_size))

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


# ----------------------------------------------------------------------------- collation


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of items into one batch, as `torch.utils.data.default_collate`.

    arrays -> one array (B, ...); numpygpt Tensors -> one Tensor; ints -> an
    int64 array, floats -> a float64 array; strings stay a list; a dict is
    collated key by key; tuples and lists position by position, into a list
    (a namedtuple stays one), as PyTorch does. Differs from PyTorch: arrays,
    not torch tensors.
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return stack(batch)
    if isinstance(elem, (np.ndarray, np.generic)) and elem.dtype.kind not in "OSUV":
        return np.stack(batch)
    if isinstance(elem, bool):
        return np.array(batch, dtype=bool)
    if isinstance(elem, float):
        return np.array(batch, dtype=np.float64)
    if isinstance(elem, int):
        return np.array(batch, dtype=np.int64)
    if isinstance(elem, (str, bytes)) or elem is None:
        return list(batch)
    if isinstance(elem, Mapping):
        return {key: default_collate([item[key] for item in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(list(parts)) for parts in zip(*batch)))
    if isinstance(elem, Sequence):
        if any(len(item) != len(elem) for item in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return [default_collate(list(parts)) for parts in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain arrays, Tensors, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


# ----------------------------------------------------------------------------- the loader


@dataclasses.dataclass
class _Position:
    """Where one iteration over a DataLoader is: its epoch number, the batches it has
    yielded, and (with shuffle) where its permutation comes from."""

    epoch: int
    batch_index: int = 0
    source: PermutationSource = dataclasses.field(default_factory=PermutationSource)


class DataLoader:
    """Batches of a dataset, as `torch.utils.data.DataLoader` with num_workers=0.

        loader = DataLoader(dataset, batch_size=4, shuffle=True, drop_last=True)
        for inputs, targets in loader:      # one epoch; iterate again for the next
            ...

    Each batch is `collate_fn` (default: `default_collate`) of `batch_size`
    items in the sampler's order: 0, 1, ..., n - 1, or with `shuffle` a
    permutation drawn afresh for each epoch (`RandomSampler`). With
    `drop_last` a final batch shorter than `batch_size` is dropped. Every
    `iter(loader)` is a new epoch and draws as PyTorch's does (the module
    docstring lists each draw): from `generator` when one is given, else from
    numpygpt's global generator, so `numpygpt.manual_seed(s)` gives the
    batches of `torch.manual_seed(s)`. `seed=s` is numpygpt's shorthand for
    `generator=numpygpt.Generator().manual_seed(s)`. The arguments after
    `shuffle` are keyword-only (PyTorch takes them by position too, in a longer
    order); `num_workers` other than 0 is refused.

    Resuming (numpygpt's addition). `state_dict()` returns plain values:

        epoch         the iteration it describes: the most recent one still open,
                      else the next one (iterations are numbered 0, 1, ... by iter())
        batch_index   how many batches that iteration has yielded
        next_epoch    the number the next new iteration takes; epoch < next_epoch
                      means `epoch` has begun (its draws at iter() are made)
        sampler_seed  with shuffle and no generator: the seed of that epoch's
                      permutation, None until drawn
        sampler_state with shuffle and a generator: its state just before it drew
                      that epoch's permutation
        generator     the generator's state now, or None without one

    After `load_state_dict(state)` the next `iter(loader)` continues a begun
    epoch at batch "batch_index", drawing nothing that was drawn before the
    state was saved, so with the global generator restored as well (a
    checkpoint saves it) a resumed training loop sees exactly the batches, and
    the generators exactly the draws, of an uninterrupted one. Iterating the
    same loader elsewhere meanwhile (a few batches for evaluation) is another
    epoch, as in PyTorch; once that iteration is closed the state is again the
    training loop's. An iteration counts as open from its first next().
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        *,
        drop_last: bool = False,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        generator: Generator | None = None,
        seed: int | None = None,
    ) -> None:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"dataset must support len() and indexing, got {type(dataset).__name__}")
        if num_workers != 0:
            raise ValueError(f"numpygpt's DataLoader loads in the calling process; num_workers must be 0, "
                             f"got {num_workers!r}")
        if _checks.integer(seed, "seed", minimum=0, allow_none=True) is not None:
            if generator is not None:
                raise ValueError("give a DataLoader a generator or a seed, not both")
            generator = Generator().manual_seed(seed)
        self.dataset = dataset
        self.batch_size = _checks.integer(batch_size, "batch_size")
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.generator = generator
        self.sampler = RandomSampler(dataset, generator) if self.shuffle else SequentialSampler(dataset)
        self.batch_sampler = BatchSampler(self.sampler, self.batch_size, self.drop_last)
        self.collate_fn = default_collate if collate_fn is None else collate_fn
        self._next_epoch = 0
        self._resume: _Position | None = None
        self._open: list[_Position] = []  # iterations still open, oldest first

    def __len__(self) -> int:
        """Number of batches per epoch."""
        return len(self.batch_sampler)

    def __repr__(self) -> str:
        seeded = None if self.generator is None else self.generator.initial_seed()
        draws = "the global generator" if seeded is None else f"a generator seeded {seeded}"
        return (f"DataLoader({len(self.dataset)} items, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, drawing from {draws}, {len(self)} batches)")

    def __iter__(self) -> Iterator[Any]:
        """A new epoch (or the one `load_state_dict` left to continue)."""
        if self._resume is not None:
            position, self._resume = self._resume, None  # its draws at iter() were made before the state was saved
        else:
            position = _Position(self._next_epoch)
            self._next_epoch += 1
            # PyTorch's _BaseDataLoaderIter.__init__ draws the workers' base seed here, with or without
            # shuffle: torch.empty((), dtype=torch.int64).random_(generator=loader.generator).
            # One process needs no seed for workers; the draw moves the generator as PyTorch's moves.
            (default_generator if self.generator is None else self.generator).random_int64()
        return self._batches(position)

    def _batches(self, position: _Position) -> Iterator[Any]:
        self._open.append(position)  # registered on the first next(), so `finally` always runs
        try:
            for indices in self.batch_sampler.group(self._indices(position)):
                batch = self.collate_fn([self.dataset[i] for i in indices])
                position.batch_index += 1
                yield batch
        finally:
            self._open = [p for p in self._open if p is not position]

    def _indices(self, position: _Position) -> Iterator[int]:
        """The sampler's indices for `position`'s epoch, from its next batch on."""
        start = position.batch_index * self.batch_size
        if isinstance(self.sampler, RandomSampler):
            return self.sampler.iter_from(position.source, start)
        return itertools.islice(iter(self.sampler), start, None)

    def state_dict(self) -> dict[str, Any]:
        """The loader's position as plain values (see the class docstring)."""
        if self._resume is not None:
            position = self._resume
        elif self._open:
            position = self._open[-1]
        else:
            position = _Position(self._next_epoch)
        return {
            "epoch": position.epoch,
            "batch_index": position.batch_index,
            "next_epoch": self._next_epoch,
            "sampler_seed": position.source.seed,
            "sampler_state": position.source.generator_state,
            "generator": None if self.generator is None else self.generator.get_state(),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a position from `state_dict()`; the next iteration continues there.
        The loader must be built as the one that saved it (shuffle, generator or not)."""
        if "seed" in state_dict and "sampler_seed" not in state_dict:
            raise ValueError("this DataLoader state is numpygpt 0.1's, whose shuffled order was not PyTorch's; "
                             "it cannot be continued")
        missing = [key for key in ("epoch", "batch_index", "next_epoch") if key not in state_dict]
        if missing:
            raise ValueError(f"DataLoader state_dict is missing {', '.join(missing)}")
        epoch, batch_index, next_epoch = (_checks.integer(state_dict[key], f"DataLoader state_dict: {key}", minimum=0)
                                          for key in ("epoch", "batch_index", "next_epoch"))
        if batch_index > len(self):
            raise ValueError(f"DataLoader state_dict: batch_index {batch_index} is past the end of an epoch "
                             f"of {len(self)} batches")
        if epoch > next_epoch:
            raise ValueError(f"DataLoader state_dict: epoch {epoch} is after next_epoch {next_epoch}")
        source = PermutationSource(_checks.integer(state_dict.get("sampler_seed"), "DataLoader state_dict: sampler_seed",
                                                   minimum=0, allow_none=True), state_dict.get("sampler_state"))
        generator_state = state_dict.get("generator")
        if (generator_state is None) != (self.generator is None):
            raise ValueError("DataLoader state_dict: it was saved by a loader "
                             + ("without" if generator_state is None else "with")
                             + " a generator; build the loader as the one that saved it")
        if not self.shuffle and source != PermutationSource():
            raise ValueError("DataLoader state_dict: it was saved by a shuffling loader, and this one does not shuffle")
        if source.generator_state is not None:
            Generator().set_state(source.generator_state)  # a ValueError now if it is not a generator state
        if self.generator is not None:
            self.generator.set_state(generator_state)
        self._next_epoch = next_epoch
        self._resume = _Position(epoch, batch_index, source) if epoch < next_epoch else None
        self._open = []
