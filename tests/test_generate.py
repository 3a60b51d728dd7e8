"""Generation: greedy equals the seed's loop, the KV cache changes nothing but speed,
sampling is reproducible and respects top-k and top-p."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpygpt
from numpygpt.generate import _filter_logits, _next_token, generate, generate_stream, generate_text_simple
from numpygpt.model import GPT_CONFIG_124M, GPTModel

TINY = dict(GPT_CONFIG_124M, vocab_size=97, context_length=12, emb_dim=32, n_heads=4, n_layers=2,
            drop_rate=0.0, qkv_bias=True)


@pytest.fixture(scope="module")
def model() -> GPTModel:
    numpygpt.manual_seed(0)
    m = GPTModel(TINY)
    m.eval()
    return m


PROMPTS = np.array([[1, 2, 3], [40, 50, 60]])


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("new", [0, 1, 5, 9, 25])  # 25 runs far past context_length 12
def test_greedy_equals_generate_text_simple(model, use_cache, new):
    expected = generate_text_simple(model, PROMPTS, new, TINY["context_length"])
    got = generate(model, PROMPTS, new, TINY["context_length"], use_cache=use_cache)
    np.testing.assert_array_equal(got, expected)
    assert got.shape == (2, 3 + new)


def test_greedy_with_a_context_shorter_than_the_model(model):
    """context_size smaller than context_length: both crop to the same window."""
    expected = generate_text_simple(model, PROMPTS, 15, 5)
    np.testing.assert_array_equal(generate(model, PROMPTS, 15, 5), expected)


def test_cached_logits_equal_full_forward(model):
    ids = generate_text_simple(model, PROMPTS, 8, TINY["context_length"])  # (2, 11)
    with numpygpt.no_grad():
        full = model(ids).data
        cache = model.new_kv_cache()
        first = model(ids[:, :4], kv_cache=cache).data
        steps = [model(ids[:, t:t + 1], kv_cache=cache).data[:, 0] for t in range(4, ids.shape[1])]
    np.testing.assert_allclose(first, full[:, :4], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.stack(steps, axis=1), full[:, 4:], rtol=1e-5, atol=1e-5)
    assert cache.length == ids.shape[1]


def test_cache_refuses_more_than_its_capacity(model):
    cache = model.new_kv_cache()
    with numpygpt.no_grad():
        model(np.zeros((1, 10), dtype=np.int64), kv_cache=cache)
        with pytest.raises(ValueError, match="cached tokens exceed context_length"):
            model(np.zeros((1, 3), dtype=np.int64), kv_cache=cache)


def test_same_seed_same_text_and_tensor_in_tensor_out(model):
    kw = dict(temperature=1.3, top_k=20, top_p=0.95)
    a = generate(model, PROMPTS, 10, 12, seed=7, **kw)
    b = generate(model, PROMPTS, 10, 12, seed=7, **kw)
    c = generate(model, PROMPTS, 10, 12, seed=8, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    t = generate(model, numpygpt.tensor(PROMPTS), 3, 12, seed=7)
    assert isinstance(t, numpygpt.Tensor) and t.shape == (2, 6)


def test_global_generator_when_no_seed(model):
    numpygpt.manual_seed(5)
    a = generate(model, PROMPTS, 6, 12, temperature=1.0)
    numpygpt.manual_seed(5)
    b = generate(model, PROMPTS, 6, 12, temperature=1.0)
    np.testing.assert_array_equal(a, b)


def test_sampled_ids_equal_with_and_without_cache(model):
    a = generate(model, PROMPTS, 20, 12, temperature=0.9, top_k=10, seed=3, use_cache=True)
    b = generate(model, PROMPTS, 20, 12, temperature=0.9, top_k=10, seed=3, use_cache=False)
    np.testing.assert_array_equal(a, b)


def test_eos_stops_each_row_and_pads(model):
    greedy = generate(model, PROMPTS, 10, 12)
    eos = int(greedy[0, 5])  # the third token row 0 produces
    out = generate(model, PROMPTS, 10, 12, eos_id=eos)
    row0 = out[0, 3:]
    first = int(np.argmax(row0 == eos))
    assert np.all(row0[first:] == eos)
    if not np.any(greedy[1, 3:] == eos):
        np.testing.assert_array_equal(out[1], greedy[1, :out.shape[1]])
    single = generate(model, PROMPTS[:1], 10, 12, eos_id=eos)
    assert single.shape[1] == 3 + first + 1  # stopped right after the eos


def test_stream_yields_one_step_at_a_time(model):
    steps = list(generate_stream(model, PROMPTS, 4, 12))
    assert len(steps) == 4 and all(s.shape == (2,) for s in steps)
    np.testing.assert_array_equal(np.stack(steps, 1), generate(model, PROMPTS, 4, 12)[:, 3:])


@given(seed=st.integers(0, 2**31), k=st.integers(1, 30), temperature=st.floats(0.05, 5.0))
def test_top_k_never_picks_outside_the_k_largest(seed, k, temperature):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((4, 50)) * 3
    generator = numpygpt.Generator().manual_seed(seed)
    picks = [_next_token(logits, temperature, k, None, generator) for _ in range(20)]
    kth = np.sort(logits, axis=-1)[:, -k][:, None]
    for p in picks:
        assert np.all(logits[np.arange(4), p] >= kth[:, 0])


@given(seed=st.integers(0, 2**31), p=st.floats(0.01, 1.0), temperature=st.floats(0.1, 3.0))
def test_top_p_never_picks_outside_the_nucleus(seed, p, temperature):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((3, 40)) * 2
    scaled = logits / temperature
    probs = np.exp(scaled - scaled.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    generator = numpygpt.Generator().manual_seed(seed)
    for _ in range(20):
        picks = _next_token(logits, temperature, None, p, generator)
        for row, tok in enumerate(picks):
            # the nucleus: tokens whose more-likely predecessors hold less than p of the mass
            mass_before = probs[row][probs[row] > probs[row, tok]].sum()
            assert mass_before < p + 1e-12


def test_filter_keeps_the_top_token_even_for_tiny_p():
    logits = np.array([[0.0, 5.0, 1.0, 2.0]])
    kept = np.isfinite(_filter_logits(logits, None, 1e-9))
    np.testing.assert_array_equal(kept, [[False, True, False, False]])
    kept = np.isfinite(_filter_logits(logits, 2, None))
    np.testing.assert_array_equal(kept, [[False, True, False, True]])


def test_low_temperature_approaches_greedy(model):
    greedy = generate(model, PROMPTS, 12, 12)
    cold = generate(model, PROMPTS, 12, 12, temperature=1e-4, seed=0)
    np.testing.assert_array_equal(cold, greedy)
    hot = [generate(model, PROMPTS, 12, 12, temperature=5.0, seed=s) for s in range(3)]
    assert any(not np.array_equal(h, greedy) for h in hot)


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=-1.0), "temperature"),
    (dict(top_k=0), "top_k"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
])
def test_bad_sampling_options(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(model, PROMPTS, 2, 12, **kwargs)


@pytest.mark.parametrize("idx, exc", [
    (np.array([1, 2, 3]), ValueError),              # not (B, T)
    (np.array([[1.0, 2.0]]), TypeError),            # not integers
    (np.zeros((1, 0), dtype=np.int64), ValueError),  # no tokens
])
def test_bad_ids(model, idx, exc):
    with pytest.raises(exc):
        generate(model, idx, 2, 12)
    with pytest.raises(exc):
        generate_text_simple(model, idx, 2, 12)


def test_bad_counts(model):
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, PROMPTS, -1, 12)
    with pytest.raises(ValueError, match="context_size"):
        generate(model, PROMPTS, 1, 0)


def test_context_size_beyond_the_model_is_refused(model):
    with pytest.raises(ValueError, match="context_size 20 exceeds the model's context_length 12"):
        generate(model, PROMPTS, 3, 20)
    with pytest.raises(ValueError, match="context_size 20 exceeds"):
        generate_text_simple(model, PROMPTS, 3, 20)


def test_a_temperature_that_underflows_is_greedy_and_nan_is_refused() -> None:
    numpygpt.manual_seed(0)
    model = GPTModel({"vocab_size": 97, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
                      "drop_rate": 0.0, "qkv_bias": False}).eval()
    ids = np.array([[1, 2, 3]])
    greedy = generate(model, ids, 5, 16)
    np.testing.assert_array_equal(generate(model, ids, 5, 16, temperature=1e-310, seed=1), greedy)
    for bad in (float("nan"), float("inf"), -0.5):
        with pytest.raises(ValueError, match="temperature must be a finite number"):
            generate(model, ids, 2, 16, temperature=bad)
    with pytest.raises(TypeError, match="temperature must be a number, got str"):
        generate(model, ids, 2, 16, temperature="1")


@pytest.mark.parametrize("eos_id, error", [("a", TypeError), (10**20, ValueError), (-1, ValueError), (1.5, TypeError)])
def test_eos_id_must_be_a_token_id(eos_id, error) -> None:
    numpygpt.manual_seed(0)
    model = GPTModel({"vocab_size": 97, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
                      "drop_rate": 0.0, "qkv_bias": False}).eval()
    with pytest.raises(error, match="eos_id"):
        generate(model, np.array([[1, 2]]), 2, 16, eos_id=eos_id)
