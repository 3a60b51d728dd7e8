"""Sliding-window dataset, batch loader (shuffling, drop_last, resuming) and splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpygpt
from numpygpt.data import DataLoader, GPTDataset, create_dataloader, train_val_split


def batches(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, u) and np.array_equal(y, v) for (x, y), (u, v) in zip(a, b))


# ----------------------------------------------------------------------------- GPTDataset


@given(n=st.integers(2, 300), max_length=st.integers(1, 40), stride=st.integers(1, 40))
def test_windows_and_shifted_targets(n, max_length, stride):
    ids = np.arange(1000, 1000 + n)
    if n < max_length + 1:
        with pytest.raises(ValueError, match=f"it has {n} tokens.*at least {max_length + 1}"):
            GPTDataset(ids, max_length, stride)
        return
    ds = GPTDataset(list(ids), max_length, stride)
    assert len(ds) == len(range(0, n - max_length, stride)) == -(-(n - max_length) // stride)
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == y.dtype == np.int64 and x.shape == y.shape == (max_length,)
        assert np.array_equal(x, ids[i * stride : i * stride + max_length])
        assert np.array_equal(y, ids[i * stride + 1 : i * stride + max_length + 1])  # shifted by one
    x, y = ds[-1]
    assert y[-1] <= ids[-1]  # the last window stays inside the text


def test_dataset_items_are_copies_and_index_errors():
    ids = np.arange(10)
    ds = GPTDataset(ids, 4, 4)
    x, _ = ds[0]
    x[:] = -1
    assert np.array_equal(ds[0][0], [0, 1, 2, 3])
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]
    with pytest.raises(TypeError):
        ds[0.5]


def test_dataset_errors():
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        GPTDataset([1, 2, 3], 0, 1)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        GPTDataset([1, 2, 3], 2, -1)
    with pytest.raises(TypeError, match="max_length must be a positive integer"):
        GPTDataset([1, 2, 3], 2.0, 1)
    with pytest.raises(TypeError, match="integers"):
        GPTDataset([1.5, 2.0, 3.0], 2, 1)
    with pytest.raises(ValueError, match="1-D"):
        GPTDataset(np.zeros((2, 3), dtype=int), 2, 1)
    with pytest.raises(ValueError, match="non-negative"):
        GPTDataset([1, -2, 3], 2, 1)
    with pytest.raises(TypeError, match="encode the text"):
        GPTDataset("some text", 2, 1)
    with pytest.raises(ValueError, match="it has 0 tokens"):
        GPTDataset([], 2, 1)


# ----------------------------------------------------------------------------- DataLoader


def test_batches_in_order_without_shuffle():
    ds = GPTDataset(np.arange(41), max_length=4, stride=4)  # 10 windows
    loader = DataLoader(ds, batch_size=3)
    out = batches(loader)
    assert len(loader) == len(out) == 4  # drop_last=False keeps the short last batch
    x, y = out[0]
    assert x.dtype == y.dtype == np.int64 and x.shape == y.shape == (3, 4)
    assert np.array_equal(x[1], [4, 5, 6, 7]) and np.array_equal(y[1], [5, 6, 7, 8])
    assert out[-1][0].shape == (1, 4)
    assert same(out, batches(loader))  # every epoch the same order


@given(n_windows=st.integers(1, 30), batch_size=st.integers(1, 8), drop_last=st.booleans())
def test_drop_last(n_windows, batch_size, drop_last):
    ds = GPTDataset(np.arange(n_windows + 1), max_length=1, stride=1)
    assert len(ds) == n_windows
    loader = DataLoader(ds, batch_size, shuffle=True, drop_last=drop_last, seed=0)
    sizes = [len(x) for x, _ in loader]
    assert len(sizes) == len(loader)
    full, rest = divmod(n_windows, batch_size)
    assert sizes == [batch_size] * full + ([rest] if rest and not drop_last else [])


def test_shuffle_is_seeded_and_new_each_epoch():
    ds = GPTDataset(np.arange(201), max_length=2, stride=2)  # 100 windows
    a = DataLoader(ds, batch_size=10, shuffle=True, seed=42)
    b = DataLoader(ds, batch_size=10, shuffle=True, seed=42)
    c = DataLoader(ds, batch_size=10, shuffle=True, seed=43)
    a0, a1 = batches(a), batches(a)
    assert same(a0, batches(b)) and same(a1, batches(b))  # same seed, same epochs
    assert not same(a0, a1)  # a new permutation each epoch
    assert not same(a0, batches(c))
    starts = np.sort(np.concatenate([x[:, 0] for x, _ in a0]))
    assert np.array_equal(starts, np.arange(0, 200, 2))  # each window exactly once
    assert np.array_equal(a.order(1), b.order(1))


def test_seed_none_follows_manual_seed():
    ds = GPTDataset(np.arange(101), max_length=2, stride=2)
    numpygpt.manual_seed(123)
    a = DataLoader(ds, batch_size=5, shuffle=True)
    first = batches(a)
    numpygpt.manual_seed(123)
    b = DataLoader(ds, batch_size=5, shuffle=True)
    assert same(first, batches(b)) and a.seed == b.seed is not None
    assert DataLoader(ds, batch_size=5).seed is None  # no shuffling: nothing drawn


def run(loader, epochs, stop_after=None):
    """Batches of `epochs` epochs, like a training loop. With stop_after=(epoch, k) it stops
    after k batches of that epoch and also returns the loader's state saved at that point
    (inside the loop, as a checkpoint would)."""
    out = []
    for epoch in range(epochs):
        for i, batch in enumerate(loader):
            out.append(batch)
            if stop_after == (epoch, i + 1):
                return out, loader.state_dict()
    return out


@pytest.mark.parametrize("stop_after", [(0, 3), (1, 1), (1, 7), (0, 7)])
def test_resume_continues_exactly(stop_after):
    ds = GPTDataset(np.arange(301), max_length=4, stride=3)  # 99 windows, 7 batches of 14 (+1 dropped)
    straight = run(DataLoader(ds, 14, shuffle=True, drop_last=True, seed=7), 3)

    first = DataLoader(ds, 14, shuffle=True, drop_last=True, seed=7)
    head, state = run(first, 3, stop_after)
    state = json.loads(json.dumps(state))
    assert state["epoch"] == stop_after[0] and state["batch_index"] == stop_after[1]

    resumed = DataLoader(ds, 14, shuffle=True, drop_last=True, seed=999)  # the seed comes from the state
    resumed.load_state_dict(state)
    assert resumed.seed == 7
    tail = []
    for epoch in range(stop_after[0], 3):  # the loop picks up in the epoch it stopped in
        tail += [batch for batch in resumed]
    assert same(head + tail, straight)


def test_state_between_epochs_and_with_evaluation_iterations():
    ds = GPTDataset(np.arange(121), max_length=2, stride=2)  # 60 windows
    loader = DataLoader(ds, 6, shuffle=True, seed=1)
    assert loader.state_dict() == {"seed": 1, "epoch": 0, "batch_index": 0, "next_epoch": 0}
    batches(loader)
    assert loader.state_dict() == {"seed": 1, "epoch": 1, "batch_index": 0, "next_epoch": 1}

    train_iter = iter(loader)  # epoch 1
    next(train_iter), next(train_iter)
    for i, _ in enumerate(loader):  # a few batches "for evaluation": epoch 2
        if i == 2:
            break
    # The evaluation iteration is closed, so the position is the training one's again.
    assert loader.state_dict() == {"seed": 1, "epoch": 1, "batch_index": 2, "next_epoch": 3}
    state = loader.state_dict()
    rest, later = list(train_iter), batches(loader)

    resumed = DataLoader(ds, 6, shuffle=True, seed=1)
    resumed.load_state_dict(state)
    assert same(batches(resumed), rest) and same(batches(resumed), later)


def test_loader_errors():
    ds = GPTDataset(np.arange(21), max_length=2, stride=2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(ds, 0)
    with pytest.raises(TypeError, match="len"):
        DataLoader(42, 2)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(ds, 2, shuffle=True, seed=-1)
    loader = DataLoader(ds, 2)
    with pytest.raises(ValueError, match="missing batch_index"):
        loader.load_state_dict({"seed": 0, "epoch": 0})
    with pytest.raises(ValueError, match="past the end"):
        loader.load_state_dict({"seed": 0, "epoch": 0, "batch_index": 6})
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        loader.load_state_dict({"seed": 0, "epoch": -1, "batch_index": 0})


# ----------------------------------------------------------------------------- create_dataloader


def test_create_dataloader_from_text_and_ids():
    text = "Every effort moves you forward. " * 20
    loader = create_dataloader(text, batch_size=2, max_length=4, stride=4, shuffle=False)
    x, y = next(iter(loader))
    assert x.shape == y.shape == (2, 4)
    assert x[0].tolist() == [6109, 3626, 6100, 345]  # "Every effort moves you"
    assert np.array_equal(x[:, 1:], y[:, :-1])

    ids = numpygpt.tokenizer.get_encoding("gpt2").encode(text)
    from_ids = create_dataloader(np.array(ids), batch_size=2, max_length=4, stride=4, shuffle=False)
    assert same(batches(loader), batches(from_ids))

    with_eot = create_dataloader("a<|endoftext|>b c d e f", batch_size=1, max_length=2, stride=1, shuffle=False)
    assert 50256 in np.concatenate([x.ravel() for x, _ in with_eot])


def test_create_dataloader_errors():
    with pytest.raises(ValueError, match="it has 4 tokens, but max_length=256 needs at least 257"):
        create_dataloader("Every effort moves you")
    with pytest.raises(ValueError, match="drop_last=True leaves no batch"):
        create_dataloader(list(range(20)), batch_size=8, max_length=4, stride=4)
    assert len(create_dataloader(list(range(20)), batch_size=8, max_length=4, stride=4, drop_last=False)) == 1
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        create_dataloader(list(range(20)), max_length=4, stride=0)
    with pytest.raises(ValueError, match="num_workers"):
        create_dataloader(list(range(20)), max_length=4, num_workers=2)


# ----------------------------------------------------------------------------- train_val_split


def test_train_val_split():
    train, val = train_val_split("abcdefghij", train_ratio=0.9)
    assert (train, val) == ("abcdefghi", "j")
    ids = np.arange(100)
    train, val = train_val_split(ids, 0.75)
    assert np.array_equal(np.concatenate([train, val]), ids) and len(train) == 75
    for ratio in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="train_ratio"):
            train_val_split(ids, ratio)
    with pytest.raises(TypeError):
        train_val_split(12345)
