"""PyTorch's random numbers from numpygpt's generator.

Two kinds of test: against torch after the same seed (skipped without it),
and the numbers the seeds print, from numpygpt alone.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import numpygpt
import numpygpt.random as R
from numpygpt import nn
from numpygpt.model import GPT_CONFIG_124M, DummyGPTModel, ExampleDeepNeuralNetwork, GPTModel
from numpygpt.tokenizer import get_encoding, text_to_token_ids, token_ids_to_text
from numpygpt.tour import seed_batch, shortcut_gradients

SIZES = [1, 2, 7, 15, 16, 17, 31, 32, 33, 100, 1000, 4099]
SMALL_GPT = dict(GPT_CONFIG_124M, vocab_size=300, context_length=16, emb_dim=32, n_heads=4, n_layers=2)


def ulps(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest difference in units of the last place of `theirs`' dtype."""
    spacing = np.spacing(np.abs(theirs).astype(theirs.dtype)).astype(np.float64)
    return float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)) / spacing, initial=0))


@pytest.fixture(autouse=True)
def _pytorch_dropout_stream():
    previous = R.set_dropout_stream("pytorch")
    yield
    R.set_dropout_stream(previous)


# ----------------------------------------------------------------------------- the engine alone


def test_init_genrand_matches_the_reference_stream() -> None:
    # MT19937's reference output for init_genrand(5489): 3499211612, 581869302, 3890346734, ...
    words = numpygpt.Generator().manual_seed(5489).random32(3)
    assert words.tolist() == [3499211612, 581869302, 3890346734]


def test_seeding_restarts_the_stream_and_generators_are_independent() -> None:
    numpygpt.manual_seed(7)
    a = numpygpt.rand(5).numpy()
    g = numpygpt.Generator().manual_seed(7)
    b = numpygpt.rand(5, generator=g).numpy()
    numpygpt.randn(3)                                  # the global generator moves on; g does not
    np.testing.assert_array_equal(a, b)
    numpygpt.manual_seed(7)
    np.testing.assert_array_equal(numpygpt.rand(5).numpy(), a)
    assert numpygpt.initial_seed() == 7 and g.initial_seed() == 7


def test_state_round_trips_through_json_with_the_cached_normal() -> None:
    numpygpt.manual_seed(3)
    numpygpt.randn(3)                                  # three float64 normals: the fourth is cached
    state = json.loads(json.dumps(numpygpt.get_rng_state()))
    assert state["next_normal"] is not None
    expected = numpygpt.randn(5).numpy()
    numpygpt.randn(40)
    numpygpt.set_rng_state(state)
    np.testing.assert_array_equal(numpygpt.randn(5).numpy(), expected)


@pytest.mark.parametrize("bad", [None, {}, {"algorithm": "mt19937"}, {"bit_generator": "PCG64", "state": {}},
                                 {"algorithm": "mt19937", "seed": 0, "key": [0] * 3, "pos": 0, "next_normal": None}])
def test_bad_states_are_rejected(bad) -> None:
    before = numpygpt.get_rng_state()
    with pytest.raises(ValueError, match="not a valid generator state"):
        numpygpt.set_rng_state(bad)
    assert numpygpt.get_rng_state() == before


def test_randperm_is_a_permutation_and_randint_stays_in_range() -> None:
    numpygpt.manual_seed(0)
    assert sorted(numpygpt.randperm(100).tolist()) == list(range(100))
    ints = numpygpt.randint(-5, 2**40, (1000,)).numpy()
    assert ints.dtype == np.int64 and ints.min() >= -5 and ints.max() < 2**40
    assert numpygpt.randint(3, (4,)).numpy().max() < 3
    with pytest.raises(ValueError, match="high"):
        numpygpt.randint(5, 5, (2,))


def test_mkl_dropout_stream_is_the_mcg31m1_recurrence() -> None:
    seed = 123456789
    u = R._mcg31(seed, 5000)
    x = seed % (2**31 - 1)
    for k in (0, 1, 2, 4095, 4096, 4097, 4999):   # across the blocks the powers are computed in
        assert u[k] == pow(1132489760, k, 2**31 - 1) * x % (2**31 - 1) / (2**31 - 1)


def test_dropout_stream_switch() -> None:
    with pytest.raises(ValueError, match="dropout stream"):
        R.set_dropout_stream("cuda")
    assert R.set_dropout_stream("mkl") == "pytorch"
    numpygpt.manual_seed(1)
    kept = numpygpt.functional.dropout(numpygpt.ones(10000), 0.25).numpy() != 0
    assert abs(kept.mean() - 0.75) < 0.02


# ----------------------------------------------------------------------------- the seeds' printed numbers


def test_seed_generation_demo_ids_and_text() -> None:
    from numpygpt.generate import generate_text_simple

    numpygpt.manual_seed(123)
    model = GPTModel(GPT_CONFIG_124M).eval()
    tok = get_encoding("gpt2")
    out = generate_text_simple(model, text_to_token_ids("Hello, I am", tok), 6, GPT_CONFIG_124M["context_length"])
    assert out.tolist() == [[15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267]]
    assert token_ids_to_text(out, tok) == "Hello, I am Featureiman Byeswickattribute argue"


def test_seed_linear_relu_batch() -> None:
    numpygpt.manual_seed(123)
    batch_example = numpygpt.randn(2, 5)
    out = nn.Sequential(nn.Linear(5, 6), nn.ReLU())(batch_example).numpy().astype(np.float64)
    np.testing.assert_array_equal(np.round(out, 4), [[0.2260, 0.3470, 0.0000, 0.2216, 0.0000, 0.0000],
                                                     [0.2133, 0.2394, 0.0000, 0.5198, 0.3297, 0.0000]])
    mean, var = out.mean(-1, keepdims=True), out.var(-1, ddof=1, keepdims=True)
    np.testing.assert_array_equal(np.round(mean, 4), [[0.1324], [0.2170]])
    np.testing.assert_array_equal(np.round(var, 4), [[0.0231], [0.0398]])
    np.testing.assert_array_equal(np.round((out - mean) / np.sqrt(var), 4),
                                  [[0.6159, 1.4126, -0.8719, 0.5872, -0.8719, -0.8719],
                                   [-0.0189, 0.1121, -1.0876, 1.5173, 0.5647, -1.0876]])


def test_seed_shortcut_experiment() -> None:
    # float32 gradients: the seed's printout and PyTorch 2.13 here differ from each other in the 7th digit
    without = [0.0002017411752603948, 0.00012011770741082728, 0.0007152436301112175,
               0.0013988513965159655, 0.005049605388194323]
    with_ = [0.22186797857284546, 0.20709273219108582, 0.32923877239227295, 0.2667772173881531, 1.3268063068389893]
    for use, expected in ((False, without), (True, with_)):
        got = [g for _, g in shortcut_gradients(use)]
        np.testing.assert_allclose(got, expected, rtol=2e-6)


def test_seed_dummy_gpt_logits_with_the_seeds_dropout_stream() -> None:
    R.set_dropout_stream("mkl")                        # the seed's printout came from MKL's stream
    numpygpt.manual_seed(123)
    logits = DummyGPTModel(GPT_CONFIG_124M)(seed_batch()).numpy().astype(np.float64)  # train mode: dropout on
    edges = logits[:, :, [0, 1, 2, -3, -2, -1]]
    printed = {(0, 0): [-0.9289, 0.2748, -0.7557, -1.6070, 0.2702, -0.5888],
               (0, 3): [0.0448, 2.4787, -0.8843, 1.3219, -0.0864, -0.5856],
               (1, 0): [-1.5474, -0.0542, -1.0571, -1.8061, -0.4494, -0.6747],
               (1, 3): [0.1666, -0.8138, 0.2307, 2.5035, -0.3055, -0.3083]}
    for (b, t), values in printed.items():  # to the printed digits (float32 normals may differ by an ulp)
        np.testing.assert_allclose(edges[b, t], values, rtol=0, atol=0.5e-4 + 1e-6)


def test_float64_draws_use_the_c_librarys_functions() -> None:
    """PyTorch's float64 draws call the C library's log, log1p, cos and sin; NumPy's own SIMD
    versions (on AVX-512 CPUs) differ in the last bit for some numbers, so the draws must not use them."""
    u = np.random.default_rng(0).random(20000) + 1e-9
    for name, x in (("log", u), ("log1p", -0.999 * u), ("cos", 2 * math.pi * u), ("sin", 2 * math.pi * u)):
        got = R._math(name, x)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, [getattr(math, name)(v) for v in x.tolist()], err_msg=name)


# ----------------------------------------------------------------------------- against torch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rand_and_randn_match_torch(torch, size: int, dtype: str) -> None:
    tdtype = getattr(torch, dtype)
    for seed in (0, 123):
        numpygpt.manual_seed(seed)
        torch.manual_seed(seed)
        np.testing.assert_array_equal(numpygpt.rand(size, dtype=dtype).numpy(), torch.rand(size, dtype=tdtype).numpy())
        ours, theirs = numpygpt.randn(size, dtype=dtype).numpy(), torch.randn(size, dtype=tdtype).numpy()
        if dtype == "float64" or size < 16:
            np.testing.assert_array_equal(ours, theirs)
        else:  # PyTorch's own vectorised float32 log/cos/sin
            assert ulps(ours, theirs) <= 4
        # and the streams are in the same place afterwards
        np.testing.assert_array_equal(numpygpt.rand(3, dtype="float64").numpy(), torch.rand(3, dtype=torch.float64).numpy())


def test_shapes_and_mixed_draws_follow_torch(torch) -> None:
    numpygpt.manual_seed(42)
    torch.manual_seed(42)
    for shape in [(3,), (2, 5), (4, 4, 3), (1,), (5,)]:  # odd sizes leave a cached normal between calls
        np.testing.assert_allclose(numpygpt.randn(*shape).numpy(), torch.randn(*shape).numpy(), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(numpygpt.rand(*shape).numpy(), torch.rand(*shape).numpy())


@pytest.mark.parametrize("low, high", [(0, 10), (-3, 50257), (0, 2**32 + 5), (-(2**40), 2**40)])
def test_randint_matches_torch(torch, low: int, high: int) -> None:
    numpygpt.manual_seed(5)
    torch.manual_seed(5)
    np.testing.assert_array_equal(numpygpt.randint(low, high, (7, 3)).numpy(), torch.randint(low, high, (7, 3)).numpy())
    np.testing.assert_array_equal(numpygpt.rand(2).numpy(), torch.rand(2).numpy())


@pytest.mark.parametrize("n", [0, 1, 2, 10, 1000])
def test_randperm_matches_torch(torch, n: int) -> None:
    numpygpt.manual_seed(9)
    torch.manual_seed(9)
    np.testing.assert_array_equal(numpygpt.randperm(n).numpy(), torch.randperm(n).numpy())
    g, tg = numpygpt.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    np.testing.assert_array_equal(numpygpt.randperm(n, generator=g).numpy(), torch.randperm(n, generator=tg).numpy())


@pytest.mark.parametrize("low, high", [(-0.3, 0.3), (2.5, 7.1), (-1e-3, 5e-4)])
def test_float64_uniform_bounds_match_torch(torch, low: float, high: float) -> None:
    """PyTorch computes u · (high - low) + low as one fused multiply-add in float64."""
    numpygpt.manual_seed(1)
    torch.manual_seed(1)
    ours = numpygpt.default_generator.uniform((5000,), low, high, np.float64)
    np.testing.assert_array_equal(ours, torch.empty(5000, dtype=torch.float64).uniform_(low, high).numpy())


def test_sampler_seed_draw_matches_torch(torch) -> None:
    numpygpt.manual_seed(2)
    torch.manual_seed(2)
    assert numpygpt.default_generator.random_int64() == int(torch.empty((), dtype=torch.int64).random_().item())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_masks_match_torch(torch, dtype: str, p: float) -> None:
    x = np.ones((3, 37), dtype=dtype)
    numpygpt.manual_seed(123)
    torch.manual_seed(123)
    ours = numpygpt.functional.dropout(numpygpt.tensor(x), p).numpy()
    theirs = torch.nn.functional.dropout(torch.from_numpy(x), p).numpy()
    np.testing.assert_array_equal(ours != 0, theirs != 0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    # nn.Dropout in a module, after other draws
    numpygpt.manual_seed(4)
    torch.manual_seed(4)
    np.testing.assert_array_equal(numpygpt.randn(20).numpy() != 0, torch.randn(20).numpy() != 0)
    np.testing.assert_array_equal(nn.Dropout(p)(numpygpt.tensor(x)).numpy() != 0,
                                  torch.nn.Dropout(p)(torch.from_numpy(x)).numpy() != 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exponential_and_multinomial_match_torch(torch, dtype: str) -> None:
    numpygpt.manual_seed(8)
    torch.manual_seed(8)
    ours = numpygpt.default_generator.exponential((4, 9), dtype)
    theirs = torch.empty(4, 9, dtype=getattr(torch, dtype)).exponential_().numpy()
    np.testing.assert_array_equal(ours, theirs)
    probs = np.random.default_rng(0).dirichlet(np.ones(50), size=3).astype(dtype)
    for _ in range(5):
        np.testing.assert_array_equal(numpygpt.default_generator.multinomial(probs, 1),
                                      torch.multinomial(torch.from_numpy(probs), 1).numpy())
    np.testing.assert_array_equal(numpygpt.default_generator.multinomial(probs, 4),
                                  torch.multinomial(torch.from_numpy(probs), 4).numpy())
    np.testing.assert_array_equal(numpygpt.multinomial(numpygpt.tensor(probs[0] * 3), 1).numpy(),
                                  torch.multinomial(torch.from_numpy(probs[0] * 3), 1).numpy())


def _torch_state_dict(module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def test_small_gpt_initialises_as_the_seeds_pytorch_model(torch) -> None:
    import torch_gpt

    for qkv_bias in (False, True):
        cfg = dict(SMALL_GPT, qkv_bias=qkv_bias)
        numpygpt.manual_seed(123)
        ours = GPTModel(cfg).state_dict()
        torch.manual_seed(123)
        theirs = _torch_state_dict(torch_gpt.GPTModel(cfg))
        assert list(ours) == list(theirs)
        for key, value in ours.items():
            if key.endswith("emb.weight"):   # normals: PyTorch's vectorised float32 transcendental functions
                assert ulps(value, theirs[key]) <= 4, key
            else:                            # uniforms, ones, zeros and masks: bit for bit
                np.testing.assert_array_equal(value, theirs[key], err_msg=key)
        numpygpt.manual_seed(0)
        torch.manual_seed(0)
        np.testing.assert_array_equal(numpygpt.rand(4).numpy(), torch.rand(4).numpy())


def test_example_deep_network_initialises_as_pytorch(torch) -> None:
    sizes = [3, 3, 3, 3, 3, 1]
    numpygpt.manual_seed(123)
    ours = ExampleDeepNeuralNetwork(sizes, use_shortcut=True).state_dict()
    torch.manual_seed(123)
    layers = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(sizes[i], sizes[i + 1]), torch.nn.GELU())
                                  for i in range(5)])
    theirs = {f"layers.{k}": v.numpy() for k, v in layers.state_dict().items()}
    assert list(ours) == list(theirs)
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def test_sampled_generation_matches_torch_multinomial(torch) -> None:
    """The book's sampling step, torch.multinomial(softmax(logits / T), 1), draw for draw."""
    from numpygpt.generate import _next_token

    logits = np.random.default_rng(1).standard_normal((2, 300)).astype(np.float32) * 3
    numpygpt.manual_seed(77)
    torch.manual_seed(77)
    for _ in range(10):
        ours = _next_token(logits, 0.8, None, None, numpygpt.default_generator)
        probs = torch.softmax(torch.from_numpy(logits) / 0.8, dim=-1)
        theirs = torch.multinomial(probs, num_samples=1)[:, 0].numpy()
        np.testing.assert_array_equal(ours, theirs)
