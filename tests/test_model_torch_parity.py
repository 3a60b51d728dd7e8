"""numpygpt's GPT-2 against the seed's model in PyTorch (tests/torch_gpt.py), same weights.

Weights move through state_dict both ways with strict=True: numpy -> torch with
`torch.from_numpy`, torch -> numpy with `.numpy()`. Then the logits, the
cross-entropy loss and every parameter's gradient must agree:

- float64, small configs (with and without qkv_bias): relative error <= 1e-10;
- float32, the full 124M config: relative error <= 1e-4;
- each layer on its own (LayerNorm, GELU, FeedForward, MultiHeadAttention,
  TransformerBlock), forward and gradients, float64, <= 1e-10;
- greedy generation gives the same ids.

Relative error is max|a - b| / max(max|a|, max|b|), per tensor (conftest.rel_err).
One gradient is 0 in exact arithmetic and rounding noise in both libraries:
W_key.bias's, because adding q·b_k to a whole row of attention scores leaves
its softmax unchanged. Such a gradient is measured against the largest gradient
of the model (`grad_errors`) and checked to be noise-sized.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpygpt
import numpygpt.nn.functional as F
from conftest import rel_err, seeds
from numpygpt import model as M
from numpygpt.generate import generate_text_simple

torch = pytest.importorskip("torch")
import torch_gpt  # noqa: E402  (needs torch)

SMALL = {"vocab_size": 97, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 2,
         "drop_rate": 0.1, "qkv_bias": False}
F64, F32 = 1e-10, 1e-4


# ----------------------------------------------------------------------------- helpers


def build_numpygpt(cls: type, *args: Any, dtype: Any = np.float64, seed: int = 0) -> Any:
    """`cls(*args)` with parameters in `dtype`; the default dtype is put back afterwards."""
    previous = numpygpt.get_default_dtype()
    numpygpt.set_default_dtype(dtype)
    try:
        numpygpt.manual_seed(seed)
        return cls(*args)
    finally:
        numpygpt.set_default_dtype(previous)


def build_torch(cls: type, *args: Any, dtype: Any = torch.float64, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return cls(*args).to(dtype)


def numpy_to_torch(ours: Any, theirs: Any) -> None:
    """Our weights into the torch module: torch.from_numpy, strict=True."""
    theirs.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ours.state_dict().items()},
                           strict=True)


def torch_to_numpy(theirs: Any, ours: Any) -> None:
    """The torch module's weights into ours: .numpy(), strict=True."""
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()}, strict=True)


def move_weights(ours: Any, theirs: Any, direction: str) -> None:
    if direction == "numpy->torch":
        numpy_to_torch(ours, theirs)
    else:
        torch_to_numpy(theirs, ours)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert np.array_equal(a[k], b[k].numpy()), f"{k} differs after the move"


def grad_errors(ours: Any, theirs: Any) -> dict[str, float]:
    """name -> relative error of that parameter's gradient, ours against torch's.

    A gradient's scale is floored at 1e-3 × the largest gradient of the module, so a
    gradient that is exactly 0 in theory (W_key.bias) is compared as the noise it is."""
    mine = dict(ours.named_parameters())
    ref = {k: p.grad for k, p in theirs.named_parameters()}
    assert list(mine) == list(ref), "parameter names differ"
    for name, p in mine.items():
        assert p.grad is not None, f"{name}: no gradient in numpygpt"
        assert ref[name] is not None, f"{name}: no gradient in torch"
        assert p.grad.shape == tuple(ref[name].shape), name
        assert p.grad.dtype == p.dtype, name
    largest = max(float(ref[k].abs().max()) for k in ref)
    floor = 1e-3 * largest
    errors = {}
    for name, p in mine.items():
        a, b = p.grad.numpy(), ref[name].numpy()
        scale = max(float(np.abs(a).max()), float(np.abs(b).max()), floor, 1e-300)
        errors[name] = float(np.abs(a - b).max()) / scale
        if name.endswith("W_key.bias"):
            eps = float(np.finfo(p.dtype).eps)
            assert np.abs(a).max() <= 1e4 * eps * largest, f"{name}: gradient should be rounding noise"
    return errors


def check_model(ours: M.GPTModel, theirs: Any, ids: np.ndarray, targets: np.ndarray, tol: float) -> None:
    """Logits, cross-entropy loss and every parameter's gradient of the two models."""
    ours.zero_grad()
    theirs.zero_grad()
    logits = ours(ids)
    loss = F.cross_entropy(logits, targets)
    t_logits = theirs(torch.from_numpy(ids))
    t_loss = torch.nn.functional.cross_entropy(t_logits.flatten(0, 1), torch.from_numpy(targets).flatten())
    assert logits.dtype == np.dtype(str(t_logits.dtype).removeprefix("torch."))
    err = rel_err(logits, t_logits.detach().numpy())
    assert err <= tol, f"logits: rel err {err:.3g}"
    err = rel_err(loss, t_loss.detach().numpy())
    assert err <= tol, f"loss {loss.item()} vs {t_loss.item()}: rel err {err:.3g}"
    loss.backward()
    t_loss.backward()
    errors = grad_errors(ours, theirs)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= tol, f"gradient of {worst}: rel err {errors[worst]:.3g}"


# ----------------------------------------------------------------------------- the whole model, float64


@pytest.mark.parametrize("direction", ["numpy->torch", "torch->numpy"])
@pytest.mark.parametrize("qkv_bias", [False, True], ids=["no_qkv_bias", "qkv_bias"])
@pytest.mark.parametrize("T", [1, 7, 16])
def test_gpt_model_float64(direction: str, qkv_bias: bool, T: int) -> None:
    cfg = {**SMALL, "qkv_bias": qkv_bias}
    ours = build_numpygpt(M.GPTModel, cfg, seed=T)
    theirs = build_torch(torch_gpt.GPTModel, cfg, seed=T)
    move_weights(ours, theirs, direction)
    ours.eval()
    theirs.eval()
    rng = np.random.default_rng(T)
    ids = rng.integers(0, cfg["vocab_size"], size=(3, T))
    targets = rng.integers(0, cfg["vocab_size"], size=(3, T))
    check_model(ours, theirs, ids, targets, F64)


# ----------------------------------------------------------------------------- the whole model, float32, 124M


def test_gpt_model_124m_float32() -> None:
    cfg = M.GPT_CONFIG_124M
    ours = build_numpygpt(M.GPTModel, cfg, dtype=np.float32, seed=123)
    with torch.device("meta"):  # no initialisation: every weight comes from ours
        theirs = torch_gpt.GPTModel(cfg)
    theirs = theirs.to_empty(device="cpu")
    move_weights(ours, theirs, "numpy->torch")
    ours.eval()
    theirs.eval()
    ids = np.array([[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]])   # the seed's batch
    targets = np.array([[3626, 6100, 345, 11], [1110, 6622, 257, 13]])
    check_model(ours, theirs, ids, targets, F32)


# ----------------------------------------------------------------------------- layer by layer, float64


def check_layer(ours: Any, theirs: Any, x: np.ndarray, tol: float = F64) -> None:
    """Forward and the gradients of the input and every parameter, for the same random upstream gradient."""
    numpy_to_torch(ours, theirs)
    xa = numpygpt.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out, ref = ours(xa), theirs(xt)
    assert out.shape == tuple(ref.shape)
    err = rel_err(out, ref.detach().numpy())
    assert err <= tol, f"forward: rel err {err:.3g}"
    g = np.random.default_rng(zlib.crc32(x.tobytes())).standard_normal(out.shape)
    out.backward(g)
    ref.backward(torch.from_numpy(g))
    err = rel_err(xa.grad, xt.grad.numpy())
    assert err <= tol, f"input gradient: rel err {err:.3g}"
    if list(ours.parameters()):
        errors = grad_errors(ours, theirs)
        worst = max(errors, key=errors.get)
        assert errors[worst] <= tol, f"gradient of {worst}: rel err {errors[worst]:.3g}"


def inputs(seed: int, *shape: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape) * scale


def perturbed(module: Any, seed: int) -> Any:
    """Move every parameter off its initial value (LayerNorm starts at ones and zeros)."""
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data = p.data + rng.uniform(-0.5, 0.5, p.shape)
    return module


@given(seed=seeds(), B=st.integers(1, 3), T=st.integers(1, 5), C=st.integers(3, 9), scale=st.floats(0.01, 100))
def test_layer_norm(seed: int, B: int, T: int, C: int, scale: float) -> None:
    # C >= 3: a row of 2 normalises to ±1 whatever its values, so its input gradient is
    # 0 up to eps and what is left is rounding noise from cancelling terms
    ours = perturbed(build_numpygpt(M.LayerNorm, C), seed)
    check_layer(ours, build_torch(torch_gpt.LayerNorm, C), inputs(seed, B, T, C, scale=scale))


@given(seed=seeds(), B=st.integers(1, 3), T=st.integers(1, 5), C=st.integers(1, 9))
def test_gelu(seed: int, B: int, T: int, C: int) -> None:
    check_layer(M.GELU(), torch_gpt.GELU(), inputs(seed, B, T, C, scale=3.0))


@given(seed=seeds(), B=st.integers(1, 3), T=st.integers(1, 5), C=st.integers(1, 9))
def test_feed_forward(seed: int, B: int, T: int, C: int) -> None:
    cfg = {"emb_dim": C}
    check_layer(build_numpygpt(M.FeedForward, cfg, seed=seed % 2**16), build_torch(torch_gpt.FeedForward, cfg),
                inputs(seed, B, T, C))


@given(seed=seeds(), B=st.integers(1, 3), T=st.integers(1, 6), d_in=st.integers(1, 6), nh=st.integers(1, 3),
       hs=st.integers(1, 4), qkv_bias=st.booleans())
def test_multi_head_attention(seed: int, B: int, T: int, d_in: int, nh: int, hs: int, qkv_bias: bool) -> None:
    args = (d_in, nh * hs, 6, 0.0, nh, qkv_bias)  # d_in, d_out, context_length, dropout, num_heads, qkv_bias
    check_layer(build_numpygpt(M.MultiHeadAttention, *args, seed=seed % 2**16),
                build_torch(torch_gpt.MultiHeadAttention, *args), inputs(seed, B, T, d_in))


@given(seed=seeds(), B=st.integers(1, 2), T=st.integers(1, 6), nh=st.integers(1, 3), hs=st.integers(1, 4),
       qkv_bias=st.booleans())
def test_transformer_block(seed: int, B: int, T: int, nh: int, hs: int, qkv_bias: bool) -> None:
    cfg = {**SMALL, "context_length": 6, "emb_dim": nh * hs, "n_heads": nh, "qkv_bias": qkv_bias}
    ours = perturbed(build_numpygpt(M.TransformerBlock, cfg, seed=seed % 2**16), seed)
    theirs = build_torch(torch_gpt.TransformerBlock, cfg)
    ours.eval()  # drop_rate 0.1: eval() turns dropout off in both
    theirs.eval()
    check_layer(ours, theirs, inputs(seed, B, T, nh * hs))


# ----------------------------------------------------------------------------- greedy generation


@pytest.mark.parametrize("direction", ["numpy->torch", "torch->numpy"])
def test_greedy_generation_gives_the_same_ids(direction: str) -> None:
    cfg = {**SMALL, "context_length": 8}
    ours = build_numpygpt(M.GPTModel, cfg, seed=5)
    theirs = build_torch(torch_gpt.GPTModel, cfg, seed=5)
    move_weights(ours, theirs, direction)
    ours.eval()
    theirs.eval()
    prompt = np.random.default_rng(5).integers(0, cfg["vocab_size"], size=(2, 3))
    # 3 + 20 tokens > context_length 8: both crop to the last 8 tokens
    mine = generate_text_simple(ours, prompt, max_new_tokens=20, context_size=cfg["context_length"])
    ref = torch_gpt.generate_text_simple(theirs, torch.from_numpy(prompt), max_new_tokens=20,
                                         context_size=cfg["context_length"])
    assert mine.shape == (2, 23)
    np.testing.assert_array_equal(mine, ref.numpy())
    assert len(np.unique(mine[:, 3:])) > 1, "a degenerate continuation checks little"
