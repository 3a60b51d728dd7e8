"""The seed's GPT-2 in numpygpt: its numbers, its claims, its gradients and its errors.

- The seed's figures: parameter counts and memory of the 124M model, the logits
  shape of the seed's batch, an untrained model's loss near ln(vocab_size).
- The state_dict has the PyTorch model's keys and shapes, in order.
- Properties on tiny float64 models drawn by hypothesis: causal masking,
  attention rows, LayerNorm's mean 0 / variance 1, dropout in train and eval.
- Finite differences through the whole model, and composed twins (built from
  primitive ops) of the fused LayerNorm, GELU, FeedForward and attention.
- Bad input fails with a clear error; generate_text_simple; the seed's scaffolding
  (DummyGPTModel) and its vanishing-gradient experiment.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpygpt
import numpygpt.nn.functional as F
from conftest import arrays, rel_err, seeds
from numpygpt.generate import generate_text_simple
from numpygpt.model import (
    GPT_CONFIG_124M,
    REQUIRED_KEYS,
    DummyGPTModel,
    FeedForward,
    GELU,
    GPTModel,
    LayerNorm,
    MultiHeadAttention,
    count_parameters,
    get_config,
)
from numpygpt.tour import shortcut_gradients

SEED_BATCH = np.array([[6109, 3626, 6100, 345],    # "Every effort moves you"
                       [6109, 1110, 6622, 257]])   # "Every day holds a"


# ----------------------------------------------------------------------------- helpers


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """A config small enough to build in a millisecond."""
    cfg = {"vocab_size": 13, "context_length": 6, "emb_dim": 8, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": False}
    cfg.update(overrides)
    return cfg


def build(cfg: dict[str, Any], seed: int = 0, dtype: Any = np.float64, cls: type = GPTModel) -> Any:
    """`cls(cfg)` initialised from `seed`, with parameters in `dtype` (the default dtype is restored)."""
    previous = numpygpt.get_default_dtype()
    numpygpt.set_default_dtype(dtype)
    try:
        numpygpt.manual_seed(seed)
        return cls(cfg)
    finally:
        numpygpt.set_default_dtype(previous)


@st.composite
def tiny_configs(draw: Any, **fixed: Any) -> dict[str, Any]:
    """Tiny GPT configs: 1-3 heads of size 1-3, 1-2 layers, a short context, a small vocabulary."""
    n_heads = draw(st.integers(1, 3))
    cfg = {
        "vocab_size": draw(st.integers(2, 17)),
        "context_length": draw(st.integers(2, 7)),
        "emb_dim": n_heads * draw(st.integers(1, 3)),
        "n_heads": n_heads,
        "n_layers": draw(st.integers(1, 2)),
        "drop_rate": 0.0,
        "qkv_bias": draw(st.booleans()),
    }
    cfg.update(fixed)
    return cfg


def random_ids(rng: np.random.Generator, cfg: dict[str, Any], batch: int, tokens: int) -> np.ndarray:
    return rng.integers(0, cfg["vocab_size"], size=(batch, tokens))


def upstream(shape: tuple[int, ...], *arrays_: np.ndarray) -> np.ndarray:
    """A random upstream gradient seeded by the inputs (so hypothesis replays it)."""
    seed = zlib.crc32(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays_))
    return np.random.default_rng(seed).standard_normal(shape)


def snapshot(model: Any) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- the seed's numbers


@pytest.fixture(scope="module")
def gpt124() -> GPTModel:
    """GPTModel(GPT_CONFIG_124M), float32, eval mode: built once for the module (it takes seconds)."""
    model = build(GPT_CONFIG_124M, seed=123, dtype=np.float32)
    model.eval()
    return model


def test_parameter_count_of_the_124m_model(gpt124: GPTModel) -> None:
    c = count_parameters(gpt124)
    assert c["total"] == 163_009_536
    assert c["total_tied"] == 124_412_160
    assert f"{c['size_mb_float32']:.2f}" == "621.83"
    # the state_dict adds one (1024, 1024) causal mask per block
    assert sum(v.size for v in gpt124.state_dict().values()) == c["total"] + 12 * 1024 * 1024
    assert sum(p.numel() for p in gpt124.parameters()) == c["total"]
    assert all(p.dtype == np.float32 for p in gpt124.parameters())


def test_parameter_totals_from_the_config_alone() -> None:
    assert figures(count_parameters(GPT_CONFIG_124M)) == count_parameters_of_config(GPT_CONFIG_124M)
    t = count_parameters(GPT_CONFIG_124M)
    assert (t["total"], t["total_tied"]) == (163_009_536, 124_412_160)
    t = count_parameters({**GPT_CONFIG_124M, "qkv_bias": True})
    assert (t["total"], t["total_tied"]) == (163_037_184, 124_439_808)
    # OpenAI's four sizes with qkv_bias, out_head tied: the figures of the published checkpoints
    published = {"gpt2-small": 124_439_808, "gpt2-medium": 354_823_168,
                 "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200}
    for name, n in published.items():
        assert count_parameters(get_config(name, qkv_bias=True))["total_tied"] == n, name


def count_parameters_of_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The seed's figures worked out by hand for an untied config."""
    V, T, C, L = cfg["vocab_size"], cfg["context_length"], cfg["emb_dim"], cfg["n_layers"]
    block = 4 * C * C + C + (3 * C if cfg["qkv_bias"] else 0) + 8 * C * C + 5 * C + 4 * C
    total = V * C + T * C + L * block + 2 * C + V * C
    return {"total": total, "total_tied": total - V * C, "size_mb_float32": total * 4 / 2**20}


def figures(counts: dict[str, Any]) -> dict[str, Any]:
    """What count_parameters returns, without its per-module rows."""
    return {k: v for k, v in counts.items() if k != "rows"}


def test_parameter_breakdown_of_the_124m_model(gpt124: GPTModel) -> None:
    rows = dict(count_parameters(GPT_CONFIG_124M)["rows"])
    assert rows["tok_emb"] == gpt124.tok_emb.num_parameters()
    assert rows["pos_emb"] == gpt124.pos_emb.num_parameters()
    assert rows["trf_blocks (12 x TransformerBlock)"] == gpt124.trf_blocks.num_parameters()
    assert rows["  per block: att"] == gpt124.trf_blocks[0].att.num_parameters()
    assert rows["  per block: ff"] == gpt124.trf_blocks[0].ff.num_parameters()
    assert rows["  per block: norm1 + norm2"] == (gpt124.trf_blocks[0].norm1.num_parameters()
                                                  + gpt124.trf_blocks[0].norm2.num_parameters())
    assert rows["final_norm"] == gpt124.final_norm.num_parameters()
    assert rows["out_head"] == gpt124.out_head.num_parameters()


@pytest.mark.parametrize("qkv_bias", [False, True])
@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("sizes", [(13, 6, 8, 2, 2), (50, 9, 12, 3, 1), (7, 3, 6, 6, 3)])
def test_parameter_figures_equal_built_models(sizes: tuple[int, ...], tie: bool, qkv_bias: bool) -> None:
    V, T, C, nh, L = sizes
    cfg = tiny_config(vocab_size=V, context_length=T, emb_dim=C, n_heads=nh, n_layers=L,
                      qkv_bias=qkv_bias, tie_embeddings=tie)
    model = build(cfg)
    built = count_parameters(model)
    predicted = count_parameters(cfg)
    assert predicted["total"] == built["total"] == model.num_parameters()
    assert predicted["total_tied"] == built["total_tied"]
    assert predicted["size_mb_float32"] == pytest.approx(built["size_mb_float32"])
    if not tie:
        assert figures(predicted) == count_parameters_of_config(cfg)
    else:
        assert model.out_head.weight is model.tok_emb.weight
        assert built["total"] == built["total_tied"]
    rows = predicted["rows"]
    top = {name.split(" ")[0]: n for name, n in rows if not name.startswith("  ")}
    for name, child in model.named_children():
        if name == "out_head" and tie:
            assert top[name] == 0  # shared with tok_emb, counted there
        else:
            assert top.get(name, 0) == child.num_parameters(), name


def test_logits_of_the_seed_batch(gpt124: GPTModel) -> None:
    with numpygpt.no_grad():
        logits = gpt124(SEED_BATCH)
    assert isinstance(logits, numpygpt.Tensor)
    assert logits.shape == (2, 4, 50257)
    assert logits.dtype == np.float32
    assert np.all(np.isfinite(logits.data))
    with numpygpt.no_grad():  # a Tensor of ids works the same
        again = gpt124(numpygpt.tensor(SEED_BATCH))
    np.testing.assert_array_equal(again.data, logits.data)


def test_untrained_loss_is_near_ln_vocab_size(gpt124: GPTModel) -> None:
    # Why 0.5: after the final LayerNorm each row has unit variance, and out_head's
    # weights are U(-1/√C, 1/√C) (variance 1/(3C)), so each logit has variance about
    # C · 1 · 1/(3C) = 1/3. For near-Gaussian logits of variance σ², E[loss] ≈ ln V + σ²/2
    # ≈ 10.82 + 0.17 = 10.99; seeds 0..4 give 11.03 to 11.15.
    ids = np.array([[6109, 3626, 6100, 345, 2651, 13, 6109, 1110, 6622, 257, 649, 11483, 13]])
    with numpygpt.no_grad():
        loss = F.cross_entropy(gpt124(ids[:, :-1]), ids[:, 1:]).item()
    assert abs(loss - math.log(50257)) < 0.5, loss
    # and above ln V: by Jensen, random zero-mean logits do worse than uniform ones on average
    assert loss > math.log(50257), loss


# ----------------------------------------------------------------------------- state_dict against PyTorch's


def _torch_state_dict_shapes(cfg: dict[str, Any], meta: bool) -> list[tuple[str, tuple[int, ...]]]:
    torch = pytest.importorskip("torch")
    import torch_gpt

    if meta:  # shapes only: nothing is allocated
        with torch.device("meta"):
            model = torch_gpt.GPTModel(cfg)
    else:
        model = torch_gpt.GPTModel(cfg)
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def test_state_dict_keys_and_shapes_of_the_124m_model(gpt124: GPTModel) -> None:
    expected = _torch_state_dict_shapes(GPT_CONFIG_124M, meta=True)
    ours = [(k, v.shape) for k, v in gpt124.state_dict().items()]
    assert ours == expected
    assert "trf_blocks.11.att.mask" in dict(ours)
    assert len(ours) == 1 + 1 + 12 * 14 + 2 + 1


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_state_dict_keys_in_order_and_mask_values(qkv_bias: bool) -> None:
    pytest.importorskip("torch")
    import torch_gpt

    cfg = tiny_config(qkv_bias=qkv_bias)
    ours = build(cfg, dtype=np.float32).state_dict()
    theirs = torch_gpt.GPTModel(cfg).state_dict()
    assert list(ours) == list(theirs)
    for k in ours:
        assert ours[k].shape == tuple(theirs[k].shape), k
        assert ours[k].dtype == np.float32, k
    for i in range(cfg["n_layers"]):
        key = f"trf_blocks.{i}.att.mask"
        np.testing.assert_array_equal(ours[key], theirs[key].numpy())


# ----------------------------------------------------------------------------- properties of the seed's claims


@given(cfg=tiny_configs(), seed=seeds(), data=st.data())
def test_causal_masking(cfg: dict[str, Any], seed: int, data: Any) -> None:
    """Changing the tokens after position t changes no logit at or before t."""
    model = build(cfg, seed % 2**16)
    model.eval()
    rng = np.random.default_rng(seed)
    T = data.draw(st.integers(2, cfg["context_length"]), label="T")
    t = data.draw(st.integers(0, T - 2), label="t")
    ids = random_ids(rng, cfg, 2, T)
    changed = ids.copy()
    shift = rng.integers(1, cfg["vocab_size"], size=changed[:, t + 1:].shape)
    changed[:, t + 1:] = (changed[:, t + 1:] + shift) % cfg["vocab_size"]  # every later token differs
    with numpygpt.no_grad():
        a, b = model(ids).data, model(changed).data
    np.testing.assert_allclose(b[:, :t + 1], a[:, :t + 1], rtol=0, atol=1e-12 * max(1.0, np.abs(a).max()))
    if cfg["emb_dim"] >= 3:  # (the final LayerNorm maps every 1-dim row to 0, and 2-dim rows to ±1)
        assert not np.allclose(b[:, t + 1], a[:, t + 1]), "the changed token did not change its own logits"


def attention_weights(mha: MultiHeadAttention, x: numpygpt.Tensor) -> numpygpt.Tensor:
    """The module's attention weights (B, nh, T, T), recomputed from its parts as its forward does."""
    b, T, _ = x.shape
    nh, hs = mha.num_heads, mha.head_dim
    q = mha.W_query(x).view(b, T, nh, hs).transpose(1, 2)            # (B, nh, T, hs)
    k = mha.W_key(x).view(b, T, nh, hs).transpose(1, 2)              # (B, nh, T, hs)
    scores = (q @ k.transpose(2, 3)).masked_fill(mha.mask[:T, :T].bool(), -np.inf)
    return F.softmax(scores / hs ** 0.5, dim=-1)                     # (B, nh, T, T)


@given(seed=seeds(), nh=st.integers(1, 3), hs=st.integers(1, 4), d_in=st.integers(1, 5),
       T=st.integers(1, 6), B=st.integers(1, 2), qkv_bias=st.booleans())
def test_attention_weights_are_causal_and_rows_sum_to_one(seed: int, nh: int, hs: int, d_in: int, T: int, B: int,
                                                         qkv_bias: bool) -> None:
    numpygpt.set_default_dtype(np.float64)
    numpygpt.manual_seed(seed)
    mha = MultiHeadAttention(d_in, nh * hs, context_length=6, dropout=0.0, num_heads=nh, qkv_bias=qkv_bias)
    x = numpygpt.tensor(np.random.default_rng(seed).uniform(-2, 2, (B, T, d_in)))
    with numpygpt.no_grad():
        w = attention_weights(mha, x).data
        v = mha.W_value(x).view(B, T, nh, hs).transpose(1, 2)
        out = mha.out_proj((numpygpt.tensor(w) @ v).transpose(1, 2).contiguous().view(B, T, nh * hs))
        expected = mha(x)
    # these are the module's weights: they reproduce its output
    np.testing.assert_allclose(out.data, expected.data, rtol=0, atol=1e-12)
    assert np.all(w[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0), "a token sees the future"
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(w[..., 0, 0], 1.0)  # the first token sees only itself


@given(x=arrays(st.tuples(st.integers(1, 4), st.integers(2, 9))), scale=st.floats(0.1, 100), offset=st.floats(-50, 50))
def test_layer_norm_gives_mean_0_and_variance_1(x: np.ndarray, scale: float, offset: float) -> None:
    x = x * scale + offset
    v = x.var(axis=-1)
    if np.any(v < 1e-6):
        return  # a (nearly) constant row normalises to 0, not to variance 1
    ln = LayerNorm(x.shape[-1])
    ln.to(np.float64)
    out = ln(numpygpt.tensor(x))
    mean = out.mean(dim=-1)
    var = out.var(dim=-1, unbiased=False)
    np.testing.assert_allclose(mean.data, 0.0, rtol=0, atol=1e-10)
    # exactly v / (v + eps): 1 up to the eps in the denominator
    np.testing.assert_allclose(var.data, v / (v + ln.eps), rtol=1e-10)
    assert np.all(np.abs(var.data - 1) <= ln.eps / v + 1e-12)


@given(cfg=tiny_configs(drop_rate=0.5).filter(lambda c: c["emb_dim"] >= 3), seed=seeds())
def test_dropout_in_train_and_eval(cfg: dict[str, Any], seed: int) -> None:
    model = build(cfg, seed % 2**16)
    ids = random_ids(np.random.default_rng(seed), cfg, 2, cfg["context_length"])
    model.train()
    numpygpt.manual_seed(seed)
    first = model(ids).data
    second = model(ids).data
    assert not np.array_equal(first, second), "dropout did not change the output in train()"
    numpygpt.manual_seed(seed)
    np.testing.assert_array_equal(model(ids).data, first)  # reproducible from the seed

    model.eval()
    a, b = model(ids).data, model(ids).data
    np.testing.assert_array_equal(a, b)
    twin = build({**cfg, "drop_rate": 0.0}, seed % 2**16)  # same weights, no dropout at all
    twin.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(twin(ids).data, a)
    assert model.training is False and all(not m.training for m in model.modules())


# ----------------------------------------------------------------------------- finite differences, whole model


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_gradcheck_whole_model(tie: bool) -> None:
    # tied: out_head and tok_emb share one array, whose gradient sums both uses (one block is enough)
    cfg = {"vocab_size": 11, "context_length": 6, "emb_dim": 8, "n_heads": 2, "n_layers": 1 if tie else 2,
           "drop_rate": 0.0, "qkv_bias": True, "tie_embeddings": tie}
    model = build(cfg, seed=3)
    rng = np.random.default_rng(3)
    ids = random_ids(rng, cfg, 2, 5)
    targets = random_ids(rng, cfg, 2, 5)
    params = list(model.parameters())
    assert all(p.dtype == np.float64 for p in params)
    assert numpygpt.gradcheck(lambda *ps: F.cross_entropy(model(ids), targets), params, atol=1e-7, rtol=1e-5)
    # the loss's gradients reach every parameter
    for p in params:
        p.grad = None
    F.cross_entropy(model(ids), targets).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and (p.grad != 0).any(), name


# ----------------------------------------------------------------------------- composed twins of the fused layers


def seed_layer_norm(x: numpygpt.Tensor, scale: numpygpt.Tensor, shift: numpygpt.Tensor, eps: float) -> numpygpt.Tensor:
    """The seed's LayerNorm.forward, written with primitive ops."""
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    norm_x = (x - mean) / (var + eps).sqrt()
    return scale * norm_x + shift


def seed_gelu(x: numpygpt.Tensor) -> numpygpt.Tensor:
    """The seed's GELU.forward, written with primitive ops."""
    return 0.5 * x * (1 + (math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)).tanh())


def composed_linear(x: numpygpt.Tensor, lin: Any) -> numpygpt.Tensor:
    y = x @ lin.weight.transpose(0, 1)
    return y + lin.bias if lin.bias is not None else y


def seed_feed_forward(x: numpygpt.Tensor, ff: FeedForward) -> numpygpt.Tensor:
    return composed_linear(seed_gelu(composed_linear(x, ff.layers[0])), ff.layers[2])


def seed_attention(x: numpygpt.Tensor, mha: MultiHeadAttention) -> numpygpt.Tensor:
    """Causal multi-head attention with the softmax written as exp / sum (shifted by a constant max)."""
    b, T, _ = x.shape
    nh, hs = mha.num_heads, mha.head_dim
    q = composed_linear(x, mha.W_query).reshape(b, T, nh, hs).permute(0, 2, 1, 3)   # (B, nh, T, hs)
    k = composed_linear(x, mha.W_key).reshape(b, T, nh, hs).permute(0, 2, 1, 3)
    v = composed_linear(x, mha.W_value).reshape(b, T, nh, hs).permute(0, 2, 1, 3)
    scores = (q @ k.permute(0, 1, 3, 2)) / math.sqrt(hs)                           # (B, nh, T, T)
    scores = scores.masked_fill(np.triu(np.ones((T, T), bool), 1), -np.inf)
    e = (scores - numpygpt.tensor(scores.data.max(axis=-1, keepdims=True))).exp()   # softmax is shift-invariant
    weights = e / e.sum(dim=-1, keepdim=True)
    ctx = (weights @ v).permute(0, 2, 1, 3).reshape(b, T, nh * hs)                  # (B, T, C)
    return composed_linear(ctx, mha.out_proj)


def compare_with_twin(module: Any, twin: Callable[[numpygpt.Tensor], numpygpt.Tensor], x: np.ndarray,
                      tol: float = 1e-10) -> None:
    """Forward and every gradient (input and parameters) of `module` against `twin`, in float64."""
    params = list(module.parameters())
    for p in params:
        p.data = np.random.default_rng(zlib.crc32(x.tobytes())).uniform(-1, 1, p.shape) + p.data
    xs = [numpygpt.tensor(x, requires_grad=True) for _ in range(2)]
    outs = [module(xs[0]), twin(xs[1])]
    assert outs[0].shape == outs[1].shape
    err = rel_err(outs[0], outs[1])
    assert err <= tol, f"forward rel err {err:.3g}"
    g = upstream(outs[0].shape, x)
    grads = []
    for x_, out in zip(xs, outs):
        for p in params:
            p.grad = None
        out.backward(g)
        grads.append([x_.grad.numpy()] + [p.grad.numpy().copy() for p in params])
    # A gradient that is 0 in exact arithmetic is rounding noise in both (W_key.bias's is:
    # adding q·b_k to a whole row of scores leaves its softmax unchanged), so its error is
    # measured against the largest gradient of the module rather than against its own noise.
    largest = max(float(np.abs(g_).max()) for g_ in grads[0] + grads[1])
    floor = 1e-3 * largest
    for i, (a, b) in enumerate(zip(*grads)):
        err = float(np.abs(a - b).max()) / max(float(np.abs(a).max()), float(np.abs(b).max()), floor, 1e-300)
        assert err <= tol, f"gradient {i} ({'input' if i == 0 else 'parameter'}): rel err {err:.3g}"
    if isinstance(module, MultiHeadAttention) and module.W_key.bias is not None:
        key_bias = 1 + [id(p) for p in params].index(id(module.W_key.bias))
        assert np.abs(grads[0][key_bias]).max() <= 1e-12 * largest, "W_key.bias should get no gradient"


@given(x=arrays(st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(3, 8))),
       scale=st.floats(0.01, 100), eps=st.sampled_from([1e-5, 1e-2]))
def test_layer_norm_equals_its_composed_twin(x: np.ndarray, scale: float, eps: float) -> None:
    # rows of 3 or more: a row of 2 normalises to ±1 whatever its values, so its input
    # gradient is 0 up to eps, and both sides would be comparing rounding noise
    numpygpt.set_default_dtype(np.float64)
    ln = LayerNorm(x.shape[-1], eps=eps)
    compare_with_twin(ln, lambda t: seed_layer_norm(t, ln.scale, ln.shift, eps), x * scale)


@given(x=arrays(st.tuples(st.integers(1, 3), st.integers(1, 5)), low=-6, high=6))
def test_gelu_equals_its_composed_twin(x: np.ndarray) -> None:
    compare_with_twin(GELU(), seed_gelu, x)


@given(x=arrays(st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 5))), seed=seeds())
def test_feed_forward_equals_its_composed_twin(x: np.ndarray, seed: int) -> None:
    numpygpt.set_default_dtype(np.float64)
    numpygpt.manual_seed(seed)
    ff = FeedForward({"emb_dim": x.shape[-1]})
    compare_with_twin(ff, lambda t: seed_feed_forward(t, ff), x)


@given(B=st.integers(1, 2), T=st.integers(1, 5), d_in=st.integers(1, 4), nh=st.integers(1, 3),
       hs=st.integers(1, 3), qkv_bias=st.booleans(), seed=seeds())
def test_attention_equals_its_composed_twin(B: int, T: int, d_in: int, nh: int, hs: int, qkv_bias: bool,
                                            seed: int) -> None:
    numpygpt.set_default_dtype(np.float64)
    numpygpt.manual_seed(seed)
    mha = MultiHeadAttention(d_in, nh * hs, context_length=5, dropout=0.0, num_heads=nh, qkv_bias=qkv_bias)
    x = np.random.default_rng(seed).uniform(-2, 2, (B, T, d_in))
    compare_with_twin(mha, lambda t: seed_attention(t, mha), x)


# ----------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def tiny() -> GPTModel:
    return build(tiny_config(), dtype=np.float32)


def test_float_ids_are_rejected(tiny: GPTModel) -> None:
    with pytest.raises(TypeError, match="integers"):
        tiny(np.array([[1.0, 2.0]]))
    with pytest.raises(TypeError, match="integers"):
        tiny(numpygpt.tensor([[1.5, 2.0]]))


@pytest.mark.parametrize("bad", [13, 1000, -1])
def test_ids_out_of_range_are_rejected(tiny: GPTModel, bad: int) -> None:
    # an IndexError, as torch.nn.Embedding raises for the same mistake
    with pytest.raises(IndexError, match=rf"id {bad} at position \(0, 1\) is out of range \[0, 13\)"):
        tiny(np.array([[1, bad, 2]]))


@pytest.mark.parametrize("shape", [(3,), (1, 2, 3), ()])
def test_ids_must_be_2d(tiny: GPTModel, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"shape \(batch, num_tokens\)"):
        tiny(np.ones(shape, dtype=np.int64))


def test_empty_input_is_rejected(tiny: GPTModel) -> None:
    with pytest.raises(ValueError, match="no tokens"):
        tiny(np.zeros((1, 0), dtype=np.int64))


def test_too_many_tokens_are_rejected(tiny: GPTModel) -> None:
    tiny(np.zeros((1, 6), dtype=np.int64))  # context_length is fine
    with pytest.raises(ValueError, match="7 tokens exceed context_length 6"):
        tiny(np.zeros((1, 7), dtype=np.int64))


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_config_missing_a_key(key: str) -> None:
    cfg = tiny_config()
    del cfg[key]
    with pytest.raises(ValueError, match=rf"missing key\(s\): {key} \("):
        GPTModel(cfg)


def test_config_emb_dim_not_divisible_by_n_heads() -> None:
    with pytest.raises(ValueError, match=r"emb_dim \(10\) must be divisible by n_heads \(3\)"):
        GPTModel(tiny_config(emb_dim=10, n_heads=3))


@pytest.mark.parametrize("key", ["vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"])
@pytest.mark.parametrize("value", [0, -2, 2.5, True, "8"])
def test_config_sizes_must_be_positive_integers(key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"{key}.*positive integer"):
        GPTModel(tiny_config(**{key: value}))


@pytest.mark.parametrize("value", [-0.1, 1.0, "0.1"])
def test_config_drop_rate_range(value: Any) -> None:
    with pytest.raises(ValueError, match="drop_rate"):
        GPTModel(tiny_config(drop_rate=value))


def test_config_unknown_key() -> None:
    with pytest.raises(ValueError, match="unknown key.*n_head\\b"):
        GPTModel({**tiny_config(), "n_head": 2})


def test_config_not_a_dict() -> None:
    with pytest.raises(TypeError, match="dict"):
        GPTModel([("vocab_size", 3)])


def test_get_config_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown config 'gpt3'.*gpt2-small"):
        get_config("gpt3")
    assert get_config("124M") == get_config("gpt2-small")


def test_load_state_dict_names_each_bad_key(tiny: GPTModel) -> None:
    before = snapshot(tiny)
    good = {k: v + 1 for k, v in before.items()}  # if anything were loaded, it would show

    missing = dict(good)
    del missing["final_norm.scale"]
    with pytest.raises(ValueError, match="missing keys: final_norm.scale"):
        tiny.load_state_dict(missing)

    unexpected = {**good, "trf_blocks.9.att.W_key.weight": np.zeros((8, 8), np.float32)}
    with pytest.raises(ValueError, match=r"unexpected keys: trf_blocks\.9\.att\.W_key\.weight"):
        tiny.load_state_dict(unexpected)

    misshapen = {**good, "tok_emb.weight": np.zeros((13, 9), np.float32)}
    with pytest.raises(ValueError, match=r"tok_emb\.weight: shape \(13, 9\) in the state_dict, \(13, 8\) in the model"):
        tiny.load_state_dict(misshapen)

    all_three = {**misshapen, "extra": np.zeros(1)}
    del all_three["out_head.weight"]
    with pytest.raises(ValueError) as info:
        tiny.load_state_dict(all_three)
    for name in ("tok_emb.weight", "extra", "out_head.weight"):
        assert name in str(info.value)

    after = snapshot(tiny)
    assert list(after) == list(before)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)

    tiny.load_state_dict(good)  # and a good one loads
    np.testing.assert_array_equal(tiny.state_dict()["final_norm.scale"], before["final_norm.scale"] + 1)
    tiny.load_state_dict(before)


# ----------------------------------------------------------------------------- generate_text_simple


@pytest.fixture(scope="module")
def short_context() -> GPTModel:
    model = build(tiny_config(vocab_size=13, context_length=4), seed=7)
    model.eval()
    return model


def manual_greedy(model: GPTModel, ids: np.ndarray, n: int, context: int) -> np.ndarray:
    for _ in range(n):
        with numpygpt.no_grad():
            logits = model(ids[:, -context:]).data[:, -1, :]
        ids = np.concatenate([ids, logits.argmax(-1)[:, None]], axis=1)
    return ids


def test_generate_text_simple_crops_the_context(short_context: GPTModel) -> None:
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    out = generate_text_simple(short_context, ids, max_new_tokens=10, context_size=4)
    assert isinstance(out, np.ndarray)
    assert out.shape == (2, 13)
    np.testing.assert_array_equal(out[:, :3], ids)
    np.testing.assert_array_equal(out, manual_greedy(short_context, ids, 10, 4))
    assert out.min() >= 0 and out.max() < 13


def test_generate_text_simple_tensor_in_tensor_out(short_context: GPTModel) -> None:
    ids = np.array([[1, 2, 3]])
    out = generate_text_simple(short_context, numpygpt.tensor(ids), max_new_tokens=5, context_size=4)
    assert isinstance(out, numpygpt.Tensor)
    assert out.shape == (1, 8)
    np.testing.assert_array_equal(out.data, generate_text_simple(short_context, ids, 5, 4))


def test_generate_text_simple_zero_new_tokens(short_context: GPTModel) -> None:
    ids = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(generate_text_simple(short_context, ids, 0, 4), ids)


def test_generate_text_simple_bad_input(short_context: GPTModel) -> None:
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_text_simple(short_context, np.array([[1]]), -1, 4)
    with pytest.raises(ValueError, match="context_size"):
        generate_text_simple(short_context, np.array([[1]]), 1, 0)
    with pytest.raises(TypeError, match="integers"):
        generate_text_simple(short_context, np.array([[1.0]]), 1, 4)
    with pytest.raises(ValueError, match="context_size 5 exceeds the model's context_length 4"):
        generate_text_simple(short_context, np.array([[1, 2, 3, 4, 5]]), 2, 5)  # longer than the model takes


# ----------------------------------------------------------------------------- the seed's scaffolding


def test_dummy_gpt_model_logits_shape() -> None:
    model = build(GPT_CONFIG_124M, seed=123, dtype=np.float32, cls=DummyGPTModel)
    with numpygpt.no_grad():
        logits = model(SEED_BATCH)
    assert logits.shape == (2, 4, 50257)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 123])
def test_shortcuts_keep_the_first_layers_gradient(seed: int) -> None:
    plain = shortcut_gradients(use_shortcut=False, seed=seed)
    short = shortcut_gradients(use_shortcut=True, seed=seed)
    assert [n for n, _ in plain] == [f"layers.{i}.0.weight" for i in range(5)] == [n for n, _ in short]
    assert short[0][1] > plain[0][1], "shortcuts did not enlarge the first layer's gradient"
    assert plain[0][1] < plain[-1][1], "without shortcuts the first layer's gradient should be the smallest end"


def test_blocks_name_the_config_keys_they_miss():
    from numpygpt.model import FeedForward, TransformerBlock

    with pytest.raises(ValueError, match=r"TransformerBlock: config is missing key\(s\): context_length, drop_rate"):
        TransformerBlock({"emb_dim": 8, "n_heads": 2, "qkv_bias": False})
    with pytest.raises(ValueError, match=r"FeedForward: config is missing key\(s\): emb_dim"):
        FeedForward({})


@pytest.mark.parametrize("key, value", [("vocab_size", 10**10), ("context_length", 10**10), ("n_layers", 10**7)])
def test_a_config_too_large_for_memory_is_refused_before_allocating(key: str, value: int) -> None:
    cfg = {"vocab_size": 10, "context_length": 8, "emb_dim": 8, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
           "qkv_bias": False, key: value}
    with pytest.raises(ValueError, match=r"needs [\d,]+ bytes .* GiB available .*" + key):
        GPTModel(cfg)


def test_the_causal_mask_costs_memory_of_the_context_not_its_square() -> None:
    cfg = {"vocab_size": 10, "context_length": 50_000, "emb_dim": 1, "n_heads": 1, "n_layers": 1, "drop_rate": 0.0,
           "qkv_bias": False}
    mask = GPTModel(cfg).trf_blocks[0].att.mask.data
    owner = mask
    while owner.base is not None:  # the array that holds the numbers the view shows
        owner = owner.base
    assert mask.shape == (50_000, 50_000) and owner.nbytes < 10**6
    assert mask[0, 1] == 1 and mask[1, 1] == 0 and mask[49_999, 49_999] == 0 and mask[3, 4:9].all()
