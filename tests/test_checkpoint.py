"""Training checkpoints and plain weight files (numpygpt.checkpoint).

A checkpoint must bring training back exactly: save after N steps, load into
fresh objects, run M more, and every parameter is bit-identical to N + M steps
run straight through (dropout on, so the generator state matters). Writes are
atomic, damaged files give a clear ValueError naming the path, and loading
never touches pickle.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given
from hypothesis import strategies as st

import numpygpt
from numpygpt import functional as F
from numpygpt import nn, optim
from numpygpt.checkpoint import load_checkpoint, save_checkpoint
from numpygpt.files import load_state_dict_file, save_state_dict
from numpygpt.model import GPTModel

TINY = {"vocab_size": 32, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
        "drop_rate": 0.1, "qkv_bias": True}
BATCH = (2, 8)


def make(seed: int = 0, dtype=np.float32, **overrides):
    """A tiny GPTModel with AdamW over decay / no-decay groups and a warmup-cosine schedule."""
    numpygpt.set_default_dtype(dtype)
    numpygpt.manual_seed(seed)
    model = GPTModel({**TINY, **overrides})
    opt = optim.AdamW(optim.param_groups_for_weight_decay(model, 0.1), lr=1e-2, betas=(0.9, 0.95))
    sched = optim.warmup_cosine(opt, warmup_steps=2, total_steps=10, min_lr=1e-4)
    return model, opt, sched


def train(model, opt, sched, data_rng: np.random.Generator, steps: int) -> None:
    """`steps` real training steps on batches drawn from `data_rng`."""
    for _ in range(steps):
        ids = data_rng.integers(0, TINY["vocab_size"], size=(BATCH[0], BATCH[1] + 1))
        loss = F.cross_entropy(model(ids[:, :-1]), ids[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def assert_same(a, b, where="value"):
    """Exact equality of nested optimizer/extra structures: same types, same dtypes, same bits."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def assert_models_equal(m1, m2):
    sd1, sd2 = m1.state_dict(), m2.state_dict()
    assert list(sd1) == list(sd2)
    for k in sd1:
        assert sd1[k].dtype == sd2[k].dtype, k
        np.testing.assert_array_equal(sd1[k], sd2[k], err_msg=k)


@pytest.fixture
def trained(tmp_path):
    """A tiny model and optimizer after 3 steps, saved to a checkpoint."""
    model, opt, sched = make(0)
    train(model, opt, sched, np.random.default_rng(1), 3)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt, step=3, extra={"scheduler": sched.state_dict()})
    return path, model, opt, sched


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tie", [False, True])
def test_round_trip_is_bit_identical(tmp_path, dtype, tie):
    model, opt, sched = make(0, dtype, tie_embeddings=tie)
    train(model, opt, sched, np.random.default_rng(1), 3)
    extra = {"scheduler": sched.state_dict(), "loader": {"epoch": 2, "pos": (5, 7)}, 3: [1.5, None, "x"],
             "perm": np.arange(5, dtype=np.int64), "$odd": True}
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt, step=3, extra=extra)

    fresh, fresh_opt, _ = make(7, dtype, tie_embeddings=tie)
    out = load_checkpoint(path, fresh, fresh_opt)
    assert out["model"] is fresh and out["optimizer"] is fresh_opt
    assert out["step"] == 3
    assert out["cfg"] == model.cfg
    assert_models_equal(model, fresh)
    assert fresh.tok_emb.weight.dtype == dtype
    assert_same(opt.state_dict(), fresh_opt.state_dict(), "optimizer")
    assert_same(extra, out["extra"], "extra")
    assert (fresh.out_head.weight is fresh.tok_emb.weight) == tie


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_load_without_a_model_builds_one_in_the_stored_dtype(tmp_path, dtype):
    model, opt, sched = make(0, dtype, tie_embeddings=True)
    train(model, opt, sched, np.random.default_rng(1), 2)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt, step=2)
    numpygpt.set_default_dtype(np.float32)

    out = load_checkpoint(path)
    built = out["model"]
    assert isinstance(built, GPTModel) and built.cfg == model.cfg
    assert built.tok_emb.weight.dtype == dtype
    assert built.out_head.weight is built.tok_emb.weight
    assert_models_equal(model, built)
    assert out["optimizer"] is None
    # an optimizer built afterwards takes the returned state
    later = optim.AdamW(optim.param_groups_for_weight_decay(built, 0.1), lr=1e-2, betas=(0.9, 0.95))
    later.load_state_dict(out["optimizer_state"])
    assert_same(opt.state_dict(), later.state_dict(), "optimizer")


def test_tied_weight_is_stored_once(tmp_path):
    model, opt, _ = make(0, tie_embeddings=True)
    path = tmp_path / "tied.safetensors"
    save_checkpoint(path, model)
    names = set(safetensors.numpy.load_file(path))
    assert "model.tok_emb.weight" in names and "model.out_head.weight" not in names


def test_rng_state_is_restored(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    model = make(0)[0]
    save_checkpoint(path, model)                     # records the generator state at this moment...
    expected = numpygpt.randn(3).numpy()             # ...these are the draws that follow it (with a
    numpygpt.randn(100)                              # cached Box-Muller value left over)
    load_checkpoint(path)
    np.testing.assert_array_equal(numpygpt.randn(3).numpy(), expected)


def test_restore_rng_false_leaves_the_generator_alone(trained):
    path, *_ = trained
    numpygpt.manual_seed(11)
    before = numpygpt.get_rng_state()
    load_checkpoint(path, restore_rng=False)         # builds a GPTModel, which draws initial weights
    assert numpygpt.get_rng_state() == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resume_is_exact(tmp_path, dtype):
    n, m = 3, 3
    straight, straight_opt, straight_sched = make(0, dtype)
    train(straight, straight_opt, straight_sched, np.random.default_rng(1), n + m)

    model, opt, sched = make(0, dtype)
    data_rng = np.random.default_rng(1)
    train(model, opt, sched, data_rng, n)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt, step=n,
                    extra={"scheduler": sched.state_dict(), "data_rng": data_rng.bit_generator.state})
    del model, opt, sched

    numpygpt.manual_seed(999)                        # a different process state
    model, opt, sched = make(42, dtype)
    out = load_checkpoint(path, model, opt)
    sched.load_state_dict(out["extra"]["scheduler"])
    data_rng = np.random.default_rng()
    data_rng.bit_generator.state = out["extra"]["data_rng"]
    train(model, opt, sched, data_rng, m)

    assert_models_equal(straight, model)
    assert_same(straight_opt.state_dict(), opt.state_dict(), "optimizer")


def test_resume_depends_on_the_generator_state(tmp_path):
    """The exact-resume test would notice a lost generator state: without it, dropout differs."""
    straight, s_opt, s_sched = make(0)
    train(straight, s_opt, s_sched, np.random.default_rng(1), 4)
    model, opt, sched = make(0)
    data_rng = np.random.default_rng(1)
    train(model, opt, sched, data_rng, 2)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt, step=2, extra={"scheduler": sched.state_dict()})
    model, opt, sched = make(42)
    out = load_checkpoint(path, model, opt, restore_rng=False)
    sched.load_state_dict(out["extra"]["scheduler"])
    train(model, opt, sched, data_rng, 2)
    assert not np.array_equal(straight.tok_emb.weight.data, model.tok_emb.weight.data)


def test_any_module_without_cfg(tmp_path):
    numpygpt.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2))
    path = tmp_path / "net.safetensors"
    save_checkpoint(path, net, step=1)
    other = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2))
    out = load_checkpoint(path, other)
    assert out["cfg"] is None and out["optimizer_state"] is None
    assert_models_equal(net, other)
    with pytest.raises(ValueError, match="stores no model config"):
        load_checkpoint(path)
    wrong = nn.Sequential(nn.Linear(3, 5), nn.GELU(), nn.Linear(5, 2))
    with pytest.raises(ValueError, match="does not fit") as info:
        load_checkpoint(path, wrong)
    assert "0.weight" in str(info.value) and "2.weight" in str(info.value)


# ----------------------------------------------------------------------------- atomic writes


def fail_halfway(exc):
    """A stand-in for safetensors' save_file that writes half the file and then fails."""
    def save_file(tensors, filename, metadata=None):
        data = safetensors.numpy.save(tensors, metadata=metadata)
        with open(filename, "wb") as f:
            f.write(data[: len(data) // 2])
        raise exc
    return save_file


@pytest.mark.parametrize("exc", [OSError("No space left on device"), KeyboardInterrupt()])
def test_interrupted_write_leaves_the_previous_checkpoint(trained, monkeypatch, exc):
    path, model, opt, _ = trained
    before = path.read_bytes()
    changed, changed_opt, changed_sched = make(3)
    train(changed, changed_opt, changed_sched, np.random.default_rng(2), 1)
    monkeypatch.setattr(safetensors.numpy, "save_file", fail_halfway(exc))
    with pytest.raises(type(exc)):
        save_checkpoint(path, changed, changed_opt, step=4)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]     # no temporary file left behind
    fresh, fresh_opt, _ = make(7)
    assert load_checkpoint(path, fresh, fresh_opt)["step"] == 3
    assert_models_equal(model, fresh)


def test_interrupted_first_write_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(safetensors.numpy, "save_file", fail_halfway(OSError("disk full")))
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "ckpt.safetensors", make(0)[0])
    assert os.listdir(tmp_path) == []


def test_interrupted_state_dict_write(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    save_state_dict(path, {"a": np.ones(3)})
    monkeypatch.setattr(safetensors.numpy, "save_file", fail_halfway(OSError("disk full")))
    with pytest.raises(OSError):
        save_state_dict(path, {"a": np.zeros(3)})
    monkeypatch.undo()
    np.testing.assert_array_equal(load_state_dict_file(path)["a"], np.ones(3))
    assert os.listdir(tmp_path) == [path.name]


def test_new_file_gets_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        save_state_dict(tmp_path / "w.safetensors", {"a": np.ones(3)})
    finally:
        os.umask(umask)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_checkpoint(tmp_path / "nope" / "ckpt.safetensors", make(0)[0])


# ----------------------------------------------------------------------------- damaged files


def assert_corrupt(path):
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.safetensors"
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        load_state_dict_file(path)


@pytest.mark.parametrize("keep", [0, 4, 8, 9, 100, 0.5, -1])
def test_truncated_file(trained, keep):
    path = trained[0]
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    path.write_bytes(data[:n])
    assert_corrupt(path)


@given(cut=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_truncated_anywhere(tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("cut") / "ckpt.safetensors"
    save_checkpoint(path, make(0)[0], step=1)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    assert_corrupt(path)


@given(where=st.floats(min_value=0.0, max_value=1.0, exclude_max=True), byte=st.integers(1, 255))
def test_changed_byte_anywhere_is_caught(tmp_path_factory, where, byte):
    """One byte changed anywhere: a clear ValueError, or (JSON whitespace) the same contents."""
    path = tmp_path_factory.mktemp("flip") / "ckpt.safetensors"
    model, opt, sched = make(0)
    train(model, opt, sched, np.random.default_rng(1), 1)
    save_checkpoint(path, model, opt, step=1, extra={"s": sched.state_dict()})
    data = bytearray(path.read_bytes())
    i = int(len(data) * where)
    data[i] ^= byte
    path.write_bytes(bytes(data))
    fresh, fresh_opt, _ = make(0)
    try:
        out = load_checkpoint(path, fresh, fresh_opt)
    except ValueError as e:
        assert str(path) in str(e)
        return
    assert_models_equal(model, fresh)
    assert_same(opt.state_dict(), fresh_opt.state_dict())
    assert out["step"] == 1


@pytest.mark.parametrize("content", [
    b"",
    b"garbage " * 100,
    (10).to_bytes(8, "little") + b"{not json}",
    (2**40).to_bytes(8, "little") + b"{}",
    (40).to_bytes(8, "little") + b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}',
], ids=["empty", "garbage", "bad-json", "huge-header", "short-data"])
def test_garbage_and_wrong_headers(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    assert_corrupt(path)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_state_dict_file(path)


def test_a_plain_safetensors_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_state_dict(path, make(0)[0].state_dict())
    with pytest.raises(ValueError, match="not a numpygpt training checkpoint"):
        load_checkpoint(path)


def test_loading_never_unpickles(trained, monkeypatch):
    path, model, opt, _ = trained

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", refuse)
    fresh, fresh_opt, _ = make(7)
    load_checkpoint(path, fresh, fresh_opt)
    load_checkpoint(path)
    assert_models_equal(model, fresh)


# ----------------------------------------------------------------------------- mismatches


def test_config_mismatch_names_the_keys(trained):
    path = trained[0]
    other, _, _ = make(0, ln_eps=1e-6)
    with pytest.raises(ValueError, match="ln_eps"):
        load_checkpoint(path, other)
    deeper, _, _ = make(0, n_layers=3)
    with pytest.raises(ValueError, match="n_layers"):
        load_checkpoint(path, deeper)
    more_dropout, _, _ = make(0, drop_rate=0.5)        # dropout may differ (e.g. for fine-tuning)
    load_checkpoint(path, more_dropout)


def test_invalid_stored_config(tmp_path):
    model = make(0)[0]
    model.cfg = {**model.cfg, "n_heads": 3}
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        load_checkpoint(path)


def test_optimizer_mismatches_change_nothing(trained):
    path, *_ = trained
    model, _, _ = make(7)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    sgd = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="AdamW.*SGD"):
        load_checkpoint(path, model, sgd)
    one_group = optim.AdamW(model.parameters(), lr=0.1)   # saved with two groups
    with pytest.raises(ValueError, match="parameter groups"):
        load_checkpoint(path, model, one_group)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)

    no_optimizer = path.with_name("model-only.safetensors")
    save_checkpoint(no_optimizer, model)
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(no_optimizer, model, one_group)


def test_bad_arguments(tmp_path):
    model = make(0)[0]
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(ValueError, match="step"):
        save_checkpoint(path, model, step=-1)
    with pytest.raises(TypeError, match="extra.fn"):
        save_checkpoint(path, model, extra={"fn": print})
    with pytest.raises(TypeError, match="extra must be a dict"):
        save_checkpoint(path, model, extra=[1, 2])
    with pytest.raises(TypeError, match="metadata"):
        save_state_dict(path, {"a": np.ones(2)}, metadata={"k": 1})
    assert not path.exists()


# ----------------------------------------------------------------------------- plain state dicts


def test_state_dict_file_round_trip(tmp_path):
    model = make(0, tie_embeddings=True)[0]
    sd = model.state_dict()
    sd_extra = {**sd, "ints": np.arange(6, dtype=np.int64).reshape(2, 3),
                "f64": np.linspace(0, 1, 5), "strided": np.arange(12.0).reshape(3, 4).T}
    path = tmp_path / "weights.safetensors"
    save_state_dict(path, sd_extra, metadata={"note": "tiny"})
    loaded, metadata = load_state_dict_file(path, with_metadata=True)
    assert metadata == {"note": "tiny"}
    assert set(loaded) == set(sd_extra)
    for k, v in sd_extra.items():
        assert loaded[k].dtype == v.dtype, k
        np.testing.assert_array_equal(loaded[k], v, err_msg=k)
    # every name has its own bytes, so other readers see a complete state_dict
    assert set(safetensors.numpy.load_file(path)) == set(sd_extra)
    fresh = make(5, tie_embeddings=True)[0]
    fresh.load_state_dict(load_state_dict_file(path), strict=False)
    assert_models_equal(model, fresh)
