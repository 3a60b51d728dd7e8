"""The fused forward ops (numpygpt/fused.py, and GELU, LayerNorm, softmax written in place):
finite differences in float64 over hypothesis-drawn shapes (size-1 dims included), each
fused op against its composed twin, the attention's two backward strategies (weights kept,
weights recomputed) and its blocking, the model's choice of path, and the memory bound of
the (B, nh, T, S) temporaries at a long context.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import numpygpt.nn.functional as F
import pytest
from conftest import leaf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numpygpt
from numpygpt import fused, gradcheck
from numpygpt.model import MultiHeadAttention


def causal_blocked(t: int, s: int) -> np.ndarray:
    """True where query i (at position s - t + i) may not see key j."""
    start = s - t
    return np.arange(s)[None, :] > (start + np.arange(t))[:, None]


def composed_attention(q, k, v, blocked, scale):
    """The seed's lines: scores, masked_fill, scale, softmax, @ v."""
    scores = (q @ k.transpose(-2, -1)).masked_fill(blocked, -np.inf) * scale
    return scores.softmax(-1) @ v


@st.composite
def attention_shapes(draw):
    b, nh = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    t = draw(st.integers(1, 4))
    start = draw(st.integers(0, 3))               # tokens already in a KV cache
    hs = draw(st.integers(1, 4))
    return b, nh, t, t + start, hs


@pytest.fixture(params=["kept", "recomputed", "query_chunks"])
def backward_strategy(request, monkeypatch):
    """Run a test with the weights kept for backward (all queries in one chunk); recomputed
    in blocks of one head, 2 queries per chunk (the long-context strategy, forced on small
    shapes); and kept, one query per chunk."""
    if request.param == "kept":
        monkeypatch.setattr(fused, "_QUERY_ROWS", 128)
    if request.param == "recomputed":
        monkeypatch.setattr(fused, "_SAVE_BYTES", 0)
        monkeypatch.setattr(fused, "_BLOCK_BYTES", 1)
        monkeypatch.setattr(fused, "_QUERY_ROWS", 2)
    if request.param == "query_chunks":
        monkeypatch.setattr(fused, "_QUERY_ROWS", 1)
    return request.param  # the same setting for every hypothesis example: sharing the fixture is safe


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=attention_shapes(), seed=st.integers(0, 2**16))
def test_attention_gradcheck(backward_strategy, shape, seed):
    b, nh, t, s, hs = shape
    rng = np.random.default_rng(seed)
    q, k, v = rng.standard_normal((b, nh, t, hs)), rng.standard_normal((b, nh, s, hs)), rng.standard_normal((b, nh, s, hs))
    blocked = causal_blocked(t, s)
    leaves = [leaf(a, dtype=np.float64) for a in (q, k, v)]
    assert gradcheck(lambda q, k, v: fused.attention(q, k, v, blocked, hs ** -0.5), leaves) is True


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=attention_shapes(), seed=st.integers(0, 2**16))
def test_attention_equals_composed(backward_strategy, shape, seed):
    b, nh, t, s, hs = shape
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((b, nh, n, hs)) for n in (t, s, s)]
    g = rng.standard_normal((b, nh, t, hs))
    blocked = causal_blocked(t, s)
    results = []
    for attend in (fused.attention, composed_attention):
        q, k, v = (leaf(a, dtype=np.float64) for a in arrays)
        out = attend(q, k, v, blocked, hs ** -0.5)
        out.backward(g)
        results.append([out.data, q.grad.data, k.grad.data, v.grad.data])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_attention_float32_stays_float32():
    rng = np.random.default_rng(0)
    q, k, v = (leaf(rng.standard_normal((1, 2, 3, 4)), dtype=np.float32) for _ in range(3))
    out = fused.attention(q, k, v, causal_blocked(3, 3), 0.5)
    out.sum().backward()
    assert out.dtype == np.float32 and q.grad.dtype == np.float32 and v.grad.dtype == np.float32


def test_query_chunks_reach_only_the_keys_they_may_see(monkeypatch):
    monkeypatch.setattr(fused, "_QUERY_ROWS", 2)
    blocked = causal_blocked(5, 8)                                                            # 3 cached keys
    chunks = fused._query_chunks(blocked)
    assert [c[:3] for c in chunks] == [(0, 2, 5), (2, 4, 7), (4, 5, 8)]
    for lo, hi, end, masked in chunks:                         # each chunk's own part of the mask, or None
        if masked is None:
            assert not blocked[lo:hi, :end].any()
        else:                                                  # from its first blocked column on
            assert not blocked[lo:hi, :masked.first].any() and blocked[lo:hi, masked.first].any()
            np.testing.assert_array_equal(masked.blocked, blocked[lo:hi, masked.first:end])
    assert [c[3].first for c in chunks[:2]] == [4, 6]          # the diagonal: the keys every row sees are skipped
    assert chunks[-1][3] is None                               # the last query sees every key
    everything = np.zeros((3, 4), dtype=bool)                                                 # no mask at all
    assert fused._query_chunks(everything) == [(0, 2, 4, None), (2, 3, 4, None)]
    assert fused._query_chunks(causal_blocked(1, 6)) == [(0, 1, 6, None)]                     # a decoding step
    one = np.array([[False, True, False, True]])                                              # last key hidden
    assert [c[:3] for c in fused._query_chunks(one)] == [(0, 1, 3)]


def test_attention_output_is_laid_out_for_the_head_merge():
    """(B, nh, T, hs) whose transpose(1, 2) is C-contiguous: merging the heads copies nothing."""
    rng = np.random.default_rng(0)
    q, k, v = (numpygpt.Tensor(rng.standard_normal((2, 3, 5, 4))) for _ in range(3))
    out = fused.attention(q, k, v, causal_blocked(5, 5), 0.5)
    assert out.shape == (2, 3, 5, 4)
    assert out.data.transpose(0, 2, 1, 3).flags.c_contiguous


# ----------------------------------------------------------------------------- the model's two paths


def _mha_run(mha, x, g, composed):
    """Output and gradients of one forward + backward, through the composed lines if asked
    (an observer makes the attention show its intermediate tensors, so it composes)."""
    if composed:
        mha.observer = lambda **tensors: None
    try:
        for p in [x, *mha.parameters()]:
            p.grad = None
        out = mha(x)
        out.backward(g)
        return [out.data, x.grad.data] + [p.grad.data for p in mha.parameters()]
    finally:
        mha.__dict__.pop("observer", None)


@pytest.mark.parametrize("batch, tokens", [(1, 1), (2, 5), (3, 7)])
def test_multi_head_attention_fused_equals_composed(backward_strategy, batch, tokens):
    numpygpt.manual_seed(0)
    mha = MultiHeadAttention(8, 8, context_length=10, dropout=0.0, num_heads=2).double()
    rng = np.random.default_rng(1)
    x = leaf(rng.standard_normal((batch, tokens, 8)), dtype=np.float64)
    g = rng.standard_normal((batch, tokens, 8))
    assert mha._fused()
    for ours, theirs in zip(_mha_run(mha, x, g, False), _mha_run(mha, x, g, True)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_multi_head_attention_composes_when_watched_or_dropping():
    mha = MultiHeadAttention(8, 8, context_length=10, dropout=0.5, num_heads=2)
    assert not mha._fused()                     # training with p > 0: the seed's dropout stream
    mha.eval()
    assert mha._fused()
    mha.observer = lambda **tensors: None
    assert not mha._fused()
    del mha.observer
    handle = mha.dropout.register_forward_hook(lambda module, args, output: None)
    assert not mha._fused()
    handle.remove()
    assert mha._fused()


def test_kv_cache_steps_equal_one_full_forward():
    numpygpt.manual_seed(0)
    cfg = {"vocab_size": 50, "context_length": 12, "emb_dim": 8, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": True}
    model = numpygpt.model.GPTModel(cfg).eval()
    ids = np.random.default_rng(0).integers(0, 50, size=(2, 9))
    with numpygpt.no_grad():
        full = model(ids).data
        cache = model.new_kv_cache()
        steps = [model(ids[:, :4], kv_cache=cache).data] + [model(ids[:, i:i + 1], kv_cache=cache).data
                                                             for i in range(4, 9)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- GELU, LayerNorm, softmax


small_shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)


@settings(max_examples=25, deadline=None)
@given(shape=small_shapes, seed=st.integers(0, 2**16))
def test_gelu_tanh_gradcheck_and_composed(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    assert gradcheck(lambda t: F.gelu(t, approximate="tanh"), [leaf(x, dtype=np.float64)]) is True
    a, b = leaf(x, dtype=np.float64), leaf(x, dtype=np.float64)
    fused_out = F.gelu(a, approximate="tanh")
    composed = 0.5 * b * (1 + ((2 / np.pi) ** 0.5 * (b + 0.044715 * b ** 3)).tanh())
    fused_out.sum().backward()
    composed.sum().backward()
    np.testing.assert_allclose(fused_out.data, composed.data, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.grad.data, b.grad.data, rtol=1e-10, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(shape=small_shapes, seed=st.integers(0, 2**16), affine=st.booleans())
def test_layer_norm_gradcheck(shape, seed, affine):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    w, b = rng.standard_normal(shape[-1:]), rng.standard_normal(shape[-1:])
    if affine:
        fn, inputs = (lambda x, w, b: F.layer_norm(x, shape[-1:], w, b)), (x, w, b)
    else:
        fn, inputs = (lambda x: F.layer_norm(x, shape[-1:])), (x,)
    assert gradcheck(fn, [leaf(a, dtype=np.float64) for a in inputs]) is True


@settings(max_examples=25, deadline=None)
@given(shape=small_shapes, seed=st.integers(0, 2**16), data=st.data())
def test_softmax_gradcheck(shape, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.random.default_rng(seed).standard_normal(shape)
    assert gradcheck(lambda t: t.softmax(dim), [leaf(x, dtype=np.float64)]) is True


def test_no_grad_forward_keeps_nothing_for_backward():
    """Under no_grad a parameter still has requires_grad, but nothing may be saved."""
    w = numpygpt.Tensor(np.ones(4), requires_grad=True)
    x = numpygpt.Tensor(np.arange(8.0).reshape(2, 4))
    with numpygpt.no_grad():
        out = F.layer_norm(x, (4,), w, None)
    assert out.grad_fn is None
    np.testing.assert_allclose(out.data.mean(axis=-1), 0, atol=1e-12)


# ----------------------------------------------------------------------------- long contexts


def test_attention_temporaries_are_bounded_at_long_context(monkeypatch):
    """At T = 1024 with 12 heads the full (B, nh, T, T) scores are 48 MiB in float32; the
    fused op's forward and backward together stay within two blocks of _BLOCK_BYTES (P and dZ)."""
    b, nh, t, hs = 1, 12, 1024, 8
    rng = np.random.default_rng(0)
    q, k, v = (leaf(rng.standard_normal((b, nh, t, hs)), dtype=np.float32) for _ in range(3))
    g = rng.standard_normal((b, nh, t, hs)).astype(np.float32)
    full = b * nh * t * t * 4
    tracemalloc.start()
    out = fused.attention(q, k, v, causal_blocked(t, t), hs ** -0.5)
    out.backward(g)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert full > fused._SAVE_BYTES                          # so the weights are recomputed, not kept
    assert peak < 2 * fused._BLOCK_BYTES + 4 * 2**20 < full


# ----------------------------------------------------------------------------- generation on arrays


def _cached_steps(model, ids):
    """Logits of the prompt ids[:, :3] and then of each later token, through one KV cache."""
    cache = model.new_kv_cache()
    out = [model(ids[:, :3], kv_cache=cache).data]
    out += [model(ids[:, i:i + 1], kv_cache=cache).data for i in range(3, ids.shape[1])]
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_equals_the_modules_to_the_bit(dtype):
    """decode.forward (no_grad) against the modules' own cached forward (grad mode on)."""
    numpygpt.manual_seed(0)
    cfg = {"vocab_size": 40, "context_length": 10, "emb_dim": 8, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.1, "qkv_bias": True}
    model = numpygpt.model.GPTModel(cfg).to(dtype).eval()
    ids = np.random.default_rng(0).integers(0, 40, size=(2, 7))
    with numpygpt.no_grad():
        assert model._decodable()
        ours = _cached_steps(model, ids)
    assert not model._decodable()                # grad mode on: the modules' path
    theirs = _cached_steps(model, ids)
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours, theirs)


def test_decode_steps_aside_for_anything_that_watches():
    numpygpt.manual_seed(0)
    cfg = {"vocab_size": 40, "context_length": 10, "emb_dim": 8, "n_heads": 2, "n_layers": 1,
           "drop_rate": 0.1, "qkv_bias": False}
    model = numpygpt.model.GPTModel(cfg)
    with numpygpt.no_grad():
        assert not model._decodable()            # training mode with dropout 0.1
        model.eval()
        assert model._decodable()
        seen = []
        handle = model.trf_blocks[0].ff.register_forward_hook(lambda m, args, out: seen.append(out.shape))
        assert not model._decodable()
        model(np.array([[1, 2]]), kv_cache=model.new_kv_cache())
        assert seen == [(1, 2, 8)]               # the hook ran: the modules' path was taken
        handle.remove()
        model.final_norm.forward = lambda x: x   # a forward of its own
        assert not model._decodable()
        del model.final_norm.forward
        model.trf_blocks[0].att.observer = lambda **tensors: None
        assert not model._decodable()
        del model.trf_blocks[0].att.observer
        assert model._decodable()
