"""Reading weights in threads and column-major (numpygpt._parallel, files.read_safetensors).

`map_in_threads` must give what a list comprehension gives, in order, and
raise what the calls raise. A tensor read column-major must hold the stored
values in Fortran order, for every dtype and for bands of rows that do not
divide the tensor. `from_pretrained` builds its Linear weights as views of
those reads: C-contiguous, equal to the stored transposes, and not
overlapping one another. One thread or many read the same bits.
"""

from __future__ import annotations

import json
import struct
import threading

import numpy as np
import pytest
import safetensors.numpy

from numpygpt import _parallel, files
from numpygpt.hf import hf_to_state_dict, state_dict_to_hf
from numpygpt.model import GPTModel

TINY = {"vocab_size": 50, "context_length": 16, "emb_dim": 24, "n_heads": 4, "n_layers": 2,
        "drop_rate": 0.0, "qkv_bias": True}


# ----------------------------------------------------------------------------- map_in_threads

def test_map_in_threads_keeps_the_order_and_values():
    items = list(range(40))
    assert _parallel.map_in_threads(lambda i: i * i, items) == [i * i for i in items]
    assert _parallel.map_in_threads(lambda i: i, []) == []


def test_map_in_threads_raises_what_a_call_raises():
    def fn(i):
        if i == 3:
            raise KeyError("three")
        return i
    with pytest.raises(KeyError, match="three"):
        _parallel.map_in_threads(fn, range(8))


def test_a_map_inside_a_map_runs_where_it_is(monkeypatch):
    monkeypatch.setenv("NUMPYGPT_NUM_THREADS", "2")
    inner = lambda i: _parallel.map_in_threads(lambda j: (i, j), range(3))  # noqa: E731
    assert _parallel.map_in_threads(inner, range(4)) == [[(i, j) for j in range(3)] for i in range(4)]


def test_one_thread_runs_in_the_calling_thread(monkeypatch):
    monkeypatch.setenv("NUMPYGPT_NUM_THREADS", "1")
    assert _parallel.num_threads() == 1
    here = threading.get_ident()
    assert set(_parallel.map_in_threads(lambda _: threading.get_ident(), range(5))) == {here}


def test_two_threads_use_two_threads(monkeypatch):
    monkeypatch.setenv("NUMPYGPT_NUM_THREADS", "2")
    barrier = threading.Barrier(2, timeout=30)  # passes only if both calls run at once
    assert _parallel.map_in_threads(lambda i: barrier.wait() >= 0 and i, [0, 1]) == [0, 1]


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", ""])
def test_a_bad_thread_count_is_named(monkeypatch, value):
    monkeypatch.setenv("NUMPYGPT_NUM_THREADS", value)
    with pytest.raises(ValueError, match="NUMPYGPT_NUM_THREADS must be a whole number"):
        _parallel.map_in_threads(lambda i: i, range(3))


# ----------------------------------------------------------------------------- column-major reads

def _tensors(rng):
    """2-D tensors of several dtypes, with row counts below, at and past one band (256 KiB)."""
    return {
        "f32_many_bands": rng.standard_normal((300, 1000)).astype(np.float32),  # 65 rows a band: 4 and 40 left
        "f64_one_row": rng.standard_normal((1, 7)),
        "f16": rng.standard_normal((33, 5)).astype(np.float16),
        "i64": rng.integers(-9, 9, size=(4, 6)),
        "no_rows": np.zeros((0, 5), np.float32),
        "no_cols": np.zeros((3, 0), np.float32),
        "one_d": rng.standard_normal(9).astype(np.float32),
        "wide": rng.standard_normal((2, 70_000)).astype(np.float32),  # one row is more than a band
    }


def test_column_major_reads_hold_the_stored_values(tmp_path):
    stored = _tensors(np.random.default_rng(0))
    path = tmp_path / "t.safetensors"
    safetensors.numpy.save_file(stored, str(path))
    _, plain = files.read_safetensors(path)
    _, transposed = files.read_safetensors(path, column_major=lambda name: name != "i64")
    assert list(transposed) == list(plain) and set(plain) == set(stored)  # the file's order
    for name, array in stored.items():
        for got in (plain[name], transposed[name]):
            assert got.dtype == array.dtype and got.shape == array.shape
            np.testing.assert_array_equal(got, array)
        assert plain[name].flags.c_contiguous
        assert transposed[name].flags.c_contiguous if name == "i64" else transposed[name].flags.f_contiguous
        if array.ndim == 2 and name != "i64" and min(array.shape) > 1:
            assert not transposed[name].flags.c_contiguous and transposed[name].T.flags.c_contiguous
        assert transposed[name].flags.writeable and transposed[name].flags.owndata


def test_column_major_bfloat16_is_widened(tmp_path):
    values = np.array([[1.0, -2.5, 3.0], [0.5, 96.0, -0.125]], np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")  # exactly representable in bfloat16
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, bits.nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bits.tobytes())
    _, got = files.read_safetensors(path, column_major=lambda name: True)
    assert got["w"].dtype == np.float32 and got["w"].flags.f_contiguous
    np.testing.assert_array_equal(got["w"], values)


def test_one_thread_and_two_read_the_same_bits(tmp_path, monkeypatch):
    stored = _tensors(np.random.default_rng(1))
    path = tmp_path / "t.safetensors"
    safetensors.numpy.save_file(stored, str(path))
    results = []
    for threads in ("1", "2"):
        monkeypatch.setenv("NUMPYGPT_NUM_THREADS", threads)
        results.append(files.read_safetensors(path, column_major=lambda name: True)[1])
    for name in stored:
        assert results[0][name].tobytes(order="A") == results[1][name].tobytes(order="A")


# ----------------------------------------------------------------------------- from_pretrained

def _saved(tmp_path):
    from numpygpt.random import manual_seed
    manual_seed(0)
    model = GPTModel(TINY)
    model.save_pretrained(tmp_path / "m")
    return model, tmp_path / "m"


def test_loaded_linear_weights_are_views_of_the_reads(tmp_path):
    model, directory = _saved(tmp_path)
    loaded = GPTModel.from_pretrained(directory)
    stored = safetensors.numpy.load_file(str(directory / "model.safetensors"))
    expected = hf_to_state_dict(stored, TINY)
    weights = loaded.state_dict()
    for name, array in expected.items():
        np.testing.assert_array_equal(weights[name], array)
        if not name.endswith(".mask"):  # the causal masks are O(T) read-only views, by design
            assert weights[name].flags.c_contiguous and weights[name].flags.writeable, name
    att = loaded.trf_blocks[0].att
    q, k, v = (lin.weight.data for lin in (att.W_query, att.W_key, att.W_value))
    assert q.base is not None and q.base is k.base is v.base  # thirds of one column-major c_attn read
    assert not np.shares_memory(q, k) and not np.shares_memory(k, v)
    q += 1.0  # an in-place update (an optimizer step) of one third leaves the others as they were
    np.testing.assert_array_equal(k, expected["trf_blocks.0.att.W_key.weight"])
    np.testing.assert_array_equal(v, expected["trf_blocks.0.att.W_value.weight"])


def test_loaded_model_saves_back_the_same_file_contents(tmp_path):
    model, directory = _saved(tmp_path)
    loaded = GPTModel.from_pretrained(directory)
    again = state_dict_to_hf(loaded.state_dict(), TINY)
    stored = safetensors.numpy.load_file(str(directory / "model.safetensors"))
    assert set(again) == set(stored)
    for name, array in stored.items():
        assert again[name].flags.c_contiguous
        np.testing.assert_array_equal(again[name], array)
    x = np.random.default_rng(0).integers(0, TINY["vocab_size"], size=(2, 8))
    np.testing.assert_array_equal(loaded(x).data, model.eval()(x).data)
