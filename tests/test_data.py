"""Sliding-window dataset, the book's loader (PyTorch's order, drop_last, resuming) and splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpygpt
import numpygpt.utils.data
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
    assert isinstance(next(iter(loader)), list)  # [inputs, targets], as PyTorch's default_collate
    assert isinstance(ds, numpygpt.utils.data.Dataset) and DataLoader is numpygpt.utils.data.DataLoader


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
    assert a.state_dict() == b.state_dict()  # the same draws from their generators


def test_seed_none_follows_manual_seed():
    ds = GPTDataset(np.arange(11), max_length=1, stride=1)  # windows 0 .. 9
    numpygpt.manual_seed(123)
    state = numpygpt.get_rng_state()
    loader = DataLoader(ds, batch_size=4, shuffle=True, drop_last=True)
    assert numpygpt.get_rng_state() == state  # making a loader draws nothing
    epochs = [[x[:, 0].tolist() for x, _ in loader] for _ in range(2)]
    # torch.manual_seed(123); DataLoader(range(10), batch_size=4, shuffle=True, drop_last=True),
    # two epochs, then torch.rand(2) (PyTorch 2.13):
    assert epochs == [[[8, 2, 6, 7], [0, 3, 9, 1]], [[5, 9, 2, 7], [8, 6, 4, 0]]]
    assert numpygpt.rand(2).tolist() == [0.18405646085739136, 0.7264467477798462]


def test_book_loader_matches_pytorch():
    """create_dataloader against the book's create_dataloader_v1 on the same ids, after the same seed."""
    torch = pytest.importorskip("torch")

    class GPTDatasetV1(torch.utils.data.Dataset):  # the book's, on token ids
        def __init__(self, token_ids, max_length, stride):
            self.input_ids, self.target_ids = [], []
            for i in range(0, len(token_ids) - max_length, stride):
                self.input_ids.append(torch.tensor(token_ids[i : i + max_length]))
                self.target_ids.append(torch.tensor(token_ids[i + 1 : i + max_length + 1]))

        def __len__(self):
            return len(self.input_ids)

        def __getitem__(self, idx):
            return self.input_ids[idx], self.target_ids[idx]

    ids = list(range(5000, 5000 + 403))
    for shuffle, drop_last in ((True, True), (False, False)):
        numpygpt.manual_seed(123)
        ours = create_dataloader(ids, batch_size=8, max_length=6, stride=4, shuffle=shuffle, drop_last=drop_last)
        torch.manual_seed(123)
        theirs = torch.utils.data.DataLoader(GPTDatasetV1(ids, 6, 4), batch_size=8, shuffle=shuffle,
                                             drop_last=drop_last, num_workers=0)
        for epoch in range(3):
            a, b = batches(ours), [(x.numpy(), y.numpy()) for x, y in theirs]
            assert same(a, b), (shuffle, epoch)
            assert np.allclose(numpygpt.randn(5).numpy(), torch.randn(5).numpy(), atol=1e-6)
        assert numpygpt.rand(3).tolist() == torch.rand(3).tolist()


def run(loader, epochs, stop_after=None):
    """Batches of `epochs` epochs, like a training loop. With stop_after=(epoch, k) it stops
    after k batches of that epoch and also returns the loader's state and the global
    generator's, saved at that point (inside the loop, as a checkpoint would)."""
    out = []
    for epoch in range(epochs):
        for i, batch in enumerate(loader):
            out.append(batch)
            if stop_after == (epoch, i + 1):
                return out, loader.state_dict(), numpygpt.get_rng_state()
    return out


@pytest.mark.parametrize("seed", [7, None])
@pytest.mark.parametrize("stop_after", [(0, 3), (1, 1), (1, 7), (0, 7)])
def test_resume_continues_exactly(stop_after, seed):
    ds = GPTDataset(np.arange(301), max_length=4, stride=3)  # 99 windows, 7 batches of 14 (+1 dropped)
    numpygpt.manual_seed(5)
    straight = run(DataLoader(ds, 14, shuffle=True, drop_last=True, seed=seed), 3)

    numpygpt.manual_seed(5)
    first = DataLoader(ds, 14, shuffle=True, drop_last=True, seed=seed)
    head, state, rng = run(first, 3, stop_after)
    state = json.loads(json.dumps(state))
    assert state["epoch"] == stop_after[0] and state["batch_index"] == stop_after[1]

    numpygpt.manual_seed(999)  # another process
    # the generator's state comes from the loader's state, so the seed given here does not matter
    resumed = DataLoader(ds, 14, shuffle=True, drop_last=True, seed=None if seed is None else 999)
    resumed.load_state_dict(state)
    numpygpt.set_rng_state(rng)  # as a checkpoint restores it
    tail = []
    for epoch in range(stop_after[0], 3):  # the loop picks up in the epoch it stopped in
        tail += [batch for batch in resumed]
    assert same(head + tail, straight)


@pytest.mark.parametrize("seed", [1, None])
def test_state_between_epochs_and_with_evaluation_iterations(seed):
    ds = GPTDataset(np.arange(121), max_length=2, stride=2)  # 60 windows
    loader = DataLoader(ds, 6, shuffle=True, seed=seed)
    position = lambda: {k: loader.state_dict()[k] for k in ("epoch", "batch_index", "next_epoch")}  # noqa: E731
    assert position() == {"epoch": 0, "batch_index": 0, "next_epoch": 0}
    batches(loader)
    assert position() == {"epoch": 1, "batch_index": 0, "next_epoch": 1}

    train_iter = iter(loader)  # epoch 1
    next(train_iter), next(train_iter)
    for i, _ in enumerate(loader):  # a few batches "for evaluation": epoch 2
        if i == 2:
            break
    # The evaluation iteration is closed, so the position is the training one's again.
    assert position() == {"epoch": 1, "batch_index": 2, "next_epoch": 3}
    state, rng = loader.state_dict(), numpygpt.get_rng_state()
    rest, later = list(train_iter), batches(loader)

    resumed = DataLoader(ds, 6, shuffle=True, seed=seed)
    resumed.load_state_dict(state)
    numpygpt.set_rng_state(rng)
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
        loader.load_state_dict({"epoch": 0})
    good = loader.state_dict()
    with pytest.raises(ValueError, match="past the end"):
        loader.load_state_dict({**good, "batch_index": 6})
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        loader.load_state_dict({**good, "epoch": -1})


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
