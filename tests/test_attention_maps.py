"""numpygpt.attention: the attention weights of every layer and head, read from the forward pass.

Each map is a causal softmax: rows sum to 1 and the upper triangle is exactly 0.
The maps equal numpygpt.reference.record's `attn_weights` and, for the same
weights, those PyTorch's seed model (tests/torch_gpt.py) computes, to 1e-10
in float64. The plot and the command are checked on files in tmp_path.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import numpygpt
from conftest import rel_err
from numpygpt import attention, reference
from numpygpt.checkpoint import save_checkpoint
from numpygpt.model import GPTModel

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")

CFG = {"vocab_size": 97, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 3,
       "drop_rate": 0.1, "qkv_bias": True}
IDS = np.array([5, 17, 3, 96, 0, 42, 42, 7, 11, 60])


@pytest.fixture(scope="module")
def model() -> GPTModel:
    numpygpt.manual_seed(123)
    return GPTModel(CFG).double()


def test_shape_rows_and_causal_zeros(model: GPTModel) -> None:
    maps = attention.attention_maps(model, IDS)
    T = len(IDS)
    assert maps.shape == (CFG["n_layers"], CFG["n_heads"], T, T) and maps.dtype == np.float64
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    upper = np.triu(np.ones((T, T), dtype=bool), k=1)
    assert np.all(maps[..., upper] == 0.0)
    assert np.all(maps[..., ~upper] > 0.0)


def test_runs_in_eval_mode_and_puts_the_model_back(model: GPTModel) -> None:
    model.train()  # dropout 0.1 is on, but the maps are taken without it
    first = attention.attention_maps(model, IDS)
    second = attention.attention_maps(model, IDS[None, :])
    np.testing.assert_array_equal(first, second)
    assert all(m.training for m in model.modules())
    assert all(b.att.observer is None for b in model.trf_blocks)
    model.eval()


def test_equal_to_the_recorded_attention_weights(model: GPTModel) -> None:
    rec = reference.record(model.eval(), IDS[None, :])
    maps = attention.attention_maps(model, IDS)
    for layer in range(CFG["n_layers"]):
        np.testing.assert_array_equal(maps[layer], rec[f"trf_blocks.{layer}.att.attn_weights"][0])


def test_one_sequence_only(model: GPTModel) -> None:
    with pytest.raises(ValueError, match="one sequence"):
        attention.attention_maps(model, np.stack([IDS, IDS]))


def test_equal_to_pytorchs_seed_model(model: GPTModel) -> None:
    torch = pytest.importorskip("torch")
    import torch_gpt

    theirs = torch_gpt.GPTModel(CFG).double().eval()
    theirs.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in model.state_dict().items()},
                           strict=True)
    projections: dict[tuple[int, str], torch.Tensor] = {}
    for i, block in enumerate(theirs.trf_blocks):
        for name in ("W_query", "W_key"):
            getattr(block.att, name).register_forward_hook(
                lambda module, args, output, key=(i, name): projections.__setitem__(key, output.detach()))
    with torch.no_grad():
        theirs(torch.from_numpy(IDS[None, :]))
    T, nh, hs = len(IDS), CFG["n_heads"], CFG["emb_dim"] // CFG["n_heads"]
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    ours = attention.attention_maps(model, IDS)
    for i in range(CFG["n_layers"]):
        q = projections[i, "W_query"].view(1, T, nh, hs).transpose(1, 2)   # (1, nh, T, hs)
        k = projections[i, "W_key"].view(1, T, nh, hs).transpose(1, 2)
        scores = (q @ k.transpose(2, 3)).masked_fill(future, -torch.inf) / hs ** 0.5
        weights = torch.softmax(scores, dim=-1)[0].numpy()                 # (nh, T, T)
        assert rel_err(ours[i], weights) <= 1e-10


@needs_matplotlib
def test_plot_writes_a_png(model: GPTModel, tmp_path) -> None:
    maps = attention.attention_maps(model, IDS)
    tokens = [f"t{i}" for i in IDS]
    path = attention.plot_maps(maps, tokens, tmp_path / "all.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    some = attention.plot_maps(maps, tokens, tmp_path / "some.png", layers=[0, 2], heads="1,3")
    assert some.stat().st_size > 0
    with pytest.raises(ValueError, match="layers must be among 0 .. 2"):
        attention.plot_maps(maps, tokens, tmp_path / "bad.png", layers=[3])
    with pytest.raises(ValueError, match="T = 3 tokens"):
        attention.plot_maps(maps, tokens[:3], tmp_path / "bad.png")


def test_token_strings_decode_each_token() -> None:
    from numpygpt.tokenizer import get_encoding
    ids = get_encoding("gpt2").encode("Every effort\nmoves you")
    assert attention.token_strings(ids) == ["Every", " effort", "\\n", "m", "oves", " you"]


# ----------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def tiny_gpt2() -> GPTModel:
    """A GPT with GPT-2's vocabulary, small enough to write and read quickly."""
    numpygpt.manual_seed(0)
    cfg = {"vocab_size": 50257, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": True}
    return GPTModel(cfg).eval()


@needs_matplotlib
def test_main_with_a_hugging_face_directory(tiny_gpt2: GPTModel, tmp_path, capsys) -> None:
    tiny_gpt2.save_pretrained(tmp_path / "gpt")
    out = tmp_path / "attention.png"
    assert attention.main("Every effort moves you", weights=tmp_path / "gpt", out=out) == 0
    printed = capsys.readouterr().out
    assert "4 tokens: ['Every', ' effort', ' moves', ' you']" in printed
    assert f"wrote {out}: 2 layers x 2 heads, 4 x 4 weights each" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_matplotlib
def test_main_with_a_checkpoint_and_a_choice_of_layers(tiny_gpt2: GPTModel, tmp_path, capsys) -> None:
    save_checkpoint(tmp_path / "ckpt.safetensors", tiny_gpt2)
    out = tmp_path / "a.png"
    assert attention.main("Hello, I am", checkpoint=tmp_path / "ckpt.safetensors", out=out, layers="1", heads=[0]) == 0
    assert f"wrote {out}: 1 layers x 1 heads" in capsys.readouterr().out


def test_main_needs_exactly_one_model_source(tmp_path) -> None:
    with pytest.raises(ValueError, match="either weights"):
        attention.main("Hello")
    with pytest.raises(ValueError, match="either weights"):
        attention.main("Hello", weights=tmp_path, checkpoint=tmp_path / "c")
    with pytest.raises(ValueError, match="no tokens"):
        attention.main("", weights=tmp_path)
