"""numpygpt.utils.data: samplers, collation, and the DataLoader's order and draws against PyTorch's.

The parity tests run the same dataset through numpygpt's and PyTorch's
DataLoader after the same `manual_seed` and compare every batch, numbers drawn
between epochs, and the generators' next numbers afterwards (skipped without
torch). Resuming is checked against an uninterrupted run.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import numpygpt
from numpygpt.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    PermutationSource,
    default_collate,
)


class Pairs(Dataset):
    """Item i: (array [i, 1000 + i], array [i + 1]), like the book's (input, target) pairs."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return np.array([i, 1000 + i]), np.array([i + 1])


def firsts(loader: Any) -> list[list[int]]:
    """One epoch of `loader` as the item indices of each batch."""
    return [np.asarray(x)[:, 0].tolist() for x, _ in loader]


def words(generator: numpygpt.Generator) -> int:
    """How many 32-bit words the generator has used since its last manual_seed."""
    probe = numpygpt.Generator().manual_seed(generator.initial_seed())
    target = generator.get_state()
    for n in range(10_000):
        if probe.get_state()["key"] == target["key"] and probe.get_state()["pos"] == target["pos"]:
            return n
        probe.random32(1)
    raise AssertionError("more than 10,000 words")


# ----------------------------------------------------------------------------- Dataset, samplers, collation


def test_dataset_base_class_needs_getitem_and_len():
    class Empty(Dataset):
        pass

    with pytest.raises(NotImplementedError, match="Empty must define __getitem__"):
        Empty()[0]
    with pytest.raises(NotImplementedError, match="__len__"):
        len(Empty())


def test_samplers():
    ds = Pairs(10)
    assert list(SequentialSampler(ds)) == list(range(10)) and len(SequentialSampler(ds)) == 10
    g = numpygpt.Generator().manual_seed(3)
    first, second = list(RandomSampler(ds, generator=g)), list(RandomSampler(ds, generator=g))
    assert sorted(first) == list(range(10)) and first != second  # a new permutation each pass
    assert first == numpygpt.Generator().manual_seed(3).randperm(10).tolist()
    assert list(BatchSampler(SequentialSampler(ds), 3, drop_last=False)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert list(BatchSampler(SequentialSampler(ds), 3, drop_last=True)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert len(BatchSampler(SequentialSampler(ds), 3, False)) == 4 and len(BatchSampler(ds, 3, True)) == 3
    with pytest.raises(ValueError, match="at least one item"):
        RandomSampler(Pairs(0))


def test_random_sampler_without_generator_seeds_a_fresh_one_from_the_global_generator():
    numpygpt.manual_seed(123)
    it = iter(RandomSampler(Pairs(10)))
    assert words(numpygpt.default_generator) == 0  # nothing is drawn before the first next()
    first = next(it)
    assert words(numpygpt.default_generator) == 2  # one int64: two words
    numpygpt.manual_seed(123)
    seed = numpygpt.default_generator.random_int64()
    assert [first, *it] == numpygpt.Generator().manual_seed(seed).randperm(10).tolist()


def test_random_sampler_resumes_a_pass_from_its_record():
    g = numpygpt.Generator().manual_seed(8)
    record = PermutationSource()
    it = RandomSampler(Pairs(12), g).iter_from(record)
    head = [next(it) for _ in range(5)]
    middle = g.get_state()
    rest, end = list(it), g.get_state()
    assert record.generator_state is not None and record.seed is None
    again = numpygpt.Generator().set_state(middle)  # the pass continued from its record ...
    assert list(RandomSampler(Pairs(12), again).iter_from(record, start=5)) == rest
    assert again.get_state() == end  # ... makes only the draw left: the second randperm at the end
    assert head + rest == numpygpt.Generator().manual_seed(8).randperm(12).tolist()
    numpygpt.manual_seed(1)
    record = PermutationSource()
    straight = list(RandomSampler(Pairs(12)).iter_from(record))
    state = numpygpt.get_rng_state()
    assert list(RandomSampler(Pairs(12)).iter_from(record, 7)) == straight[7:]
    assert numpygpt.get_rng_state() == state  # nothing drawn from the global generator either


def test_default_collate():
    x, y = default_collate([(np.array([1, 2]), np.array([3])), (np.array([4, 5]), np.array([6]))])
    assert np.array_equal(x, [[1, 2], [4, 5]]) and np.array_equal(y, [[3], [6]]) and x.dtype == np.int64
    assert isinstance(default_collate([(1, 2), (3, 4)]), list)  # tuples become lists, as in PyTorch
    ints, floats = default_collate([1, 2]), default_collate([0.5, 1.5])
    assert ints.dtype == np.int64 and floats.dtype == np.float64 and default_collate([True, False]).dtype == bool
    assert default_collate(["a", "b"]) == ["a", "b"]
    d = default_collate([{"a": 1, "b": np.zeros(2)}, {"a": 2, "b": np.ones(2)}])
    assert d["a"].tolist() == [1, 2] and d["b"].shape == (2, 2)
    Point = collections.namedtuple("Point", "x y")
    p = default_collate([Point(1, 2.0), Point(3, 4.0)])
    assert isinstance(p, Point) and p.x.tolist() == [1, 3]
    t = default_collate([numpygpt.tensor([1.0, 2.0]), numpygpt.tensor([3.0, 4.0])])
    assert isinstance(t, numpygpt.Tensor) and t.shape == (2, 2)
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="default_collate"):
        default_collate([object()])


def test_default_collate_matches_pytorch():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate

    batch = [(np.array([1, 2]), 3, 0.5, {"k": np.array([1.5])}), (np.array([4, 5]), 6, 1.5, {"k": np.array([2.5])})]
    ours, theirs = default_collate(batch), torch_collate(batch)
    assert type(ours) is type(theirs) is list
    for a, b in zip(ours[:3], theirs[:3]):
        assert np.asarray(a).dtype == b.numpy().dtype and np.array_equal(a, b.numpy())
    assert np.array_equal(ours[3]["k"], theirs[3]["k"].numpy()) and isinstance(theirs[0], torch.Tensor)


# ----------------------------------------------------------------------------- the draws, without torch


def test_draws_per_epoch():
    """iter() draws one int64 (two words), the first next() of a shuffled epoch one more."""
    g = numpygpt.default_generator
    numpygpt.manual_seed(0)
    loader = DataLoader(Pairs(10), 3, shuffle=True)
    assert words(g) == 0  # building a loader draws nothing
    it = iter(loader)
    assert words(g) == 2
    next(it)
    assert words(g) == 4
    list(it)
    assert words(g) == 4  # the permutation comes from the sampler's own generator
    list(DataLoader(Pairs(10), 3))
    assert words(g) == 6  # shuffle=False: the iterator's base seed only
    own = DataLoader(Pairs(10), 3, shuffle=True, seed=5)
    list(own)
    assert words(g) == 6 and words(own.generator) == 2 + 9 + 9  # base seed, randperm(10) twice
    assert "seeded 5" in repr(own) and "global generator" in repr(loader)


def test_loader_errors():
    ds = Pairs(10)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(ds, 0)
    with pytest.raises(TypeError, match="len"):
        DataLoader(42, 2)
    with pytest.raises(ValueError, match="num_workers must be 0"):
        DataLoader(ds, 2, num_workers=2)
    with pytest.raises(ValueError, match="not both"):
        DataLoader(ds, 2, seed=1, generator=numpygpt.Generator())
    with pytest.raises(ValueError, match="seed"):
        DataLoader(ds, 2, shuffle=True, seed=-1)
    with pytest.raises(TypeError):
        DataLoader(ds, 2, True, True)  # drop_last and the rest are keyword-only
    batches = list(DataLoader(ds, 4, collate_fn=lambda items: len(items)))
    assert batches == [4, 4, 2]


# ----------------------------------------------------------------------------- the same order as PyTorch


def numpygpt_run(n: int, batch_size: int, shuffle: bool, drop_last: bool, generator_seed: int | None,
                 epochs: int = 3) -> tuple[list[Any], list[float], list[float] | None]:
    """Epochs with a randn(3) after each, then rand(4) (and the loader generator's rand(2))."""
    numpygpt.manual_seed(123)
    g = None if generator_seed is None else numpygpt.Generator().manual_seed(generator_seed)
    loader = DataLoader(Pairs(n), batch_size, shuffle, drop_last=drop_last, generator=g)
    out = []
    for _ in range(epochs):
        out += [firsts(loader), numpygpt.randn(3).tolist()]
    return out, numpygpt.rand(4).tolist(), None if g is None else numpygpt.rand(2, generator=g).tolist()


def torch_run(torch: Any, n: int, batch_size: int, shuffle: bool, drop_last: bool, generator_seed: int | None,
              epochs: int = 3) -> tuple[list[Any], list[float], list[float] | None]:
    torch.manual_seed(123)
    g = None if generator_seed is None else torch.Generator().manual_seed(generator_seed)
    loader = torch.utils.data.DataLoader(Pairs(n), batch_size, shuffle, drop_last=drop_last, generator=g)
    out = []
    for _ in range(epochs):
        out += [firsts(loader), torch.randn(3).tolist()]
    return out, torch.rand(4).tolist(), None if g is None else torch.rand(2, generator=g).tolist()


def assert_same_run(ours: Any, theirs: Any) -> None:
    (a, rand_a, own_a), (b, rand_b, own_b) = ours, theirs
    assert a[0::2] == b[0::2]                                            # every batch of every epoch
    assert np.allclose(a[1::2], b[1::2], rtol=1e-6, atol=1e-7)           # the randn between epochs
    assert rand_a == rand_b and own_a == own_b                           # where the generators are after


@pytest.mark.parametrize("n, batch_size", [(1, 1), (10, 3), (9, 3), (64, 4), (1000, 7)])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("generator_seed", [None, 5])
def test_batches_and_draws_match_pytorch(n, batch_size, shuffle, drop_last, generator_seed):
    torch = pytest.importorskip("torch")
    args = (n, batch_size, shuffle, drop_last, generator_seed)
    assert_same_run(numpygpt_run(*args), torch_run(torch, *args))


@pytest.mark.parametrize("generator_seed", [None, 11])
def test_interleaved_iterations_match_pytorch(generator_seed):
    """Draws between iter() and the first next(), an epoch left early, and an epoch iterated inside another."""
    torch = pytest.importorskip("torch")

    def run(lib: Any, loader_class: Any, generator: Any) -> list[Any]:
        lib.manual_seed(42)
        loader = loader_class(Pairs(23), 4, True, drop_last=False, generator=generator)
        other = loader_class(Pairs(5), 2, True)
        out = []
        it = iter(loader)
        out.append(lib.rand(2).tolist())          # between the base seed and the sampler's seed
        out.append(np.asarray(next(it)[0])[:, 0].tolist())
        out.append(firsts(other))                 # another loader on the same global generator
        for i, (x, _) in enumerate(loader):       # a few batches of another epoch, then left
            out.append(np.asarray(x)[:, 0].tolist())
            if i == 1:
                break
        out.append([np.asarray(x)[:, 0].tolist() for x, _ in it])  # the first epoch's rest
        out.append(firsts(loader))
        out.append(lib.rand(3).tolist())
        return out

    ours = run(numpygpt, DataLoader, None if generator_seed is None else numpygpt.Generator().manual_seed(generator_seed))
    theirs = run(torch, torch.utils.data.DataLoader,
                 None if generator_seed is None else torch.Generator().manual_seed(generator_seed))
    assert ours == theirs


# ----------------------------------------------------------------------------- exact resume


def training_loop(loader: DataLoader, epochs: int, resume_at: tuple[int, int] = (0, 0),
                  stop: tuple[int, int] | None = None) -> Any:
    """Epochs of a training loop from batch resume_at[1] + 1 of epoch resume_at[0] on, with a
    two-batch "evaluation" iteration and a global draw after every third batch, and a global draw
    after each epoch; at the end, the loader's generator's next numbers. With stop=(epoch, k), stop after batch k of that epoch and return the batches
    so far with the loader's state and the global generator's, saved as a checkpoint would."""
    out: list[Any] = []
    for epoch in range(resume_at[0], epochs):
        first = resume_at[1] + 1 if epoch == resume_at[0] else 1
        for k, batch in enumerate(loader, start=first):
            out.append(np.asarray(batch[0])[:, 0].tolist())
            if k % 3 == 0:
                out.append(["eval", *[np.asarray(b[0])[:, 0].tolist() for _, b in zip(range(2), loader)]])
                out.append(["draw", numpygpt.rand(1).tolist()])
            if stop == (epoch, k):
                return out, json.loads(json.dumps(loader.state_dict())), numpygpt.get_rng_state()
        out.append(["end", numpygpt.rand(1).tolist()])
    return out + [["after", None if loader.generator is None else numpygpt.rand(2, generator=loader.generator).tolist()]]


@settings(max_examples=150)
@example(n=10, batch_size=3, drop_last=False, shuffle=True, own_generator=True, stop_epoch=2, stop_batch=3)
@example(n=10, batch_size=3, drop_last=True, shuffle=True, own_generator=True, stop_epoch=0, stop_batch=2)
@given(n=st.integers(1, 30), batch_size=st.integers(1, 8), drop_last=st.booleans(), shuffle=st.booleans(),
       own_generator=st.booleans(), stop_epoch=st.integers(0, 2), stop_batch=st.integers(0, 29))
def test_resume_continues_exactly(n, batch_size, drop_last, shuffle, own_generator, stop_epoch, stop_batch):
    seed = 7 if own_generator else None

    def make(seed: int | None = seed) -> DataLoader:
        return DataLoader(Pairs(n), batch_size, shuffle, drop_last=drop_last, seed=seed)

    if len(make()) == 0:
        return
    stop = (stop_epoch, 1 + stop_batch % len(make()))  # after any batch, the last one included
    numpygpt.manual_seed(0)
    straight = training_loop(make(), 3)
    numpygpt.manual_seed(0)
    head, state, rng = training_loop(make(), 3, stop=stop)
    assert state["epoch"] >= stop[0] and state["batch_index"] == stop[1]

    numpygpt.manual_seed(999)                              # another process
    resumed = make(None if seed is None else 3)            # the generator's state comes from the loader's state
    resumed.load_state_dict(state)
    numpygpt.set_rng_state(rng)
    assert head + training_loop(resumed, 3, resume_at=stop) == straight


@pytest.mark.parametrize("n", [9, 10, 11])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("stop_epoch", [0, 1])
def test_resume_after_the_last_batch_with_a_generator(n, drop_last, stop_epoch):
    """Stopped right after an epoch's last batch, when the sampler's second randperm is drawn already
    (inside a short last batch that is kept) or still to come (at the StopIteration)."""
    def make() -> DataLoader:
        return DataLoader(Pairs(n), 3, shuffle=True, drop_last=drop_last, seed=4)

    straight, loader = [], make()
    for _ in range(3):
        straight += firsts(loader)
    head, loader = [], make()
    for _ in range(stop_epoch):
        head += firsts(loader)
    it = iter(loader)
    head += [firsts([next(it)])[0] for _ in range(len(loader))]  # the last batch, and no StopIteration yet
    state = json.loads(json.dumps(loader.state_dict()))
    assert state["batch_index"] == len(loader)
    resumed = make()
    resumed.load_state_dict(state)
    tail = firsts(resumed)
    assert tail == []  # the epoch was done
    for _ in range(stop_epoch + 1, 3):
        tail += firsts(resumed)
    assert head + tail == straight
    after = make()
    for _ in range(3):
        list(after)
    assert numpygpt.rand(2, generator=resumed.generator).tolist() == numpygpt.rand(2, generator=after.generator).tolist()


def test_state_dict_between_epochs_and_with_evaluation_iterations():
    numpygpt.manual_seed(0)
    loader = DataLoader(Pairs(60), 6, shuffle=True)
    fresh = {"epoch": 0, "batch_index": 0, "next_epoch": 0, "sampler_seed": None, "sampler_state": None,
             "generator": None}
    assert loader.state_dict() == fresh
    list(loader)
    assert loader.state_dict() == {**fresh, "epoch": 1, "next_epoch": 1}
    train_iter = iter(loader)  # epoch 1
    next(train_iter), next(train_iter)
    seed = loader.state_dict()["sampler_seed"]
    assert seed is not None
    for i, _ in enumerate(loader):  # a few batches "for evaluation": epoch 2
        if i == 2:
            break
    # The evaluation iteration is closed, so the state is the training one's again.
    assert loader.state_dict() == {**fresh, "epoch": 1, "batch_index": 2, "next_epoch": 3, "sampler_seed": seed}
    state, rng = loader.state_dict(), numpygpt.get_rng_state()
    rest, later = [firsts([b]) for b in train_iter], firsts(loader)

    resumed = DataLoader(Pairs(60), 6, shuffle=True)
    resumed.load_state_dict(state)
    numpygpt.set_rng_state(rng)
    assert [firsts([b]) for b in resumed] == rest and firsts(resumed) == later


def test_load_state_dict_errors():
    loader = DataLoader(Pairs(10), 2, shuffle=True)
    good = loader.state_dict()
    with pytest.raises(ValueError, match="missing batch_index, next_epoch"):
        loader.load_state_dict({"epoch": 0, "sampler_seed": None})
    with pytest.raises(ValueError, match="past the end"):
        loader.load_state_dict({**good, "batch_index": 6})
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        loader.load_state_dict({**good, "epoch": -1})
    with pytest.raises(ValueError, match="after next_epoch"):
        loader.load_state_dict({**good, "epoch": 2, "next_epoch": 1})
    with pytest.raises(ValueError, match="numpygpt 0.1"):
        loader.load_state_dict({"seed": 7, "epoch": 0, "batch_index": 1, "next_epoch": 1})
    with pytest.raises(ValueError, match="without a generator"):
        DataLoader(Pairs(10), 2, shuffle=True, seed=1).load_state_dict(good)
    with pytest.raises(ValueError, match="with a generator"):
        loader.load_state_dict(DataLoader(Pairs(10), 2, seed=1).state_dict())
    with pytest.raises(ValueError, match="does not shuffle"):
        DataLoader(Pairs(10), 2).load_state_dict({**good, "epoch": 0, "next_epoch": 1, "sampler_seed": 5})
    with pytest.raises(ValueError, match="not a valid generator state"):
        DataLoader(Pairs(10), 2, shuffle=True, seed=1).load_state_dict(
            {**DataLoader(Pairs(10), 2, seed=1).state_dict(), "sampler_state": {"key": []}})
