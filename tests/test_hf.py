"""Hugging Face GPT-2 import and export (numpygpt.hf), checked against transformers.

A tiny random `GPT2LMHeadModel` saved by transformers loads into numpygpt with
the same logits, and numpygpt's `save_pretrained` output loads back into
transformers with the same logits, tied or not, sharded or not. numpygpt
itself never imports torch; the tests use it only to run the peer.
Set NUMPYGPT_GPT2_DIR to a directory with OpenAI's 124M weights
(config.json + model.safetensors) to run the greedy-generation check too.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import safetensors
from conftest import rel_err

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import numpygpt  # noqa: E402
from numpygpt.hf import cfg_to_hf_config, hf_config_to_cfg, hf_to_state_dict, state_dict_to_hf  # noqa: E402
from numpygpt.model import GPTModel  # noqa: E402

transformers.logging.set_verbosity_error()
logging.getLogger("transformers").setLevel(logging.ERROR)

VOCAB = 100
HF_TINY = dict(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4,
               resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)
OURS_TINY = {"vocab_size": VOCAB, "context_length": 32, "emb_dim": 32, "n_heads": 4, "n_layers": 2,
             "drop_rate": 0.0, "qkv_bias": True}


def hf_model(dtype=torch.float32, **overrides):
    """A tiny random GPT2LMHeadModel in eval mode (biases and LayerNorms randomised too)."""
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**{**HF_TINY, **overrides}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.to(dtype).eval()


def ids(batch=2, length=16, seed=0):
    return np.random.default_rng(seed).integers(0, VOCAB, size=(batch, length))


def hf_logits(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).logits.numpy()


def our_logits(model, x):
    with numpygpt.no_grad():
        return model(x).data


@pytest.fixture(scope="module")
def tied_dir(tmp_path_factory):
    """(the transformers model, the directory it saved itself to)."""
    model = hf_model()
    path = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    model.save_pretrained(path)
    return model, path


# ----------------------------------------------------------------------------- transformers -> numpygpt


def test_load_pretrained_matches_transformers(tied_dir):
    hf, path = tied_dir
    assert (path / "model.safetensors").is_file() and not (path / "pytorch_model.bin").exists()
    model = GPTModel.from_pretrained(path)
    assert isinstance(model, GPTModel) and not model.training
    assert model.cfg["tie_embeddings"] and model.out_head.weight is model.tok_emb.weight
    assert model.tok_emb.weight.dtype == np.float32
    x = ids()
    assert rel_err(our_logits(model, x), hf_logits(hf, x)) < 1e-5


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_ids_equal_transformers_generate(tied_dir, use_cache):
    from numpygpt.generate import generate

    hf, path = tied_dir
    model = GPTModel.from_pretrained(path)
    prompt = ids(batch=1, length=5, seed=3)
    with torch.no_grad():
        expected = hf.generate(torch.from_numpy(prompt), max_new_tokens=20, do_sample=False, use_cache=True,
                               pad_token_id=VOCAB - 1, eos_token_id=None).numpy()
    got = generate(model, prompt, 20, model.cfg["context_length"], use_cache=use_cache)
    np.testing.assert_array_equal(got, expected)


def test_gptmodel_methods_round_trip(tied_dir, tmp_path):
    hf, path = tied_dir
    model = GPTModel.from_pretrained(path)
    model.save_pretrained(tmp_path / "again")
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "again").eval()
    x = ids(seed=4)
    assert rel_err(hf_logits(back, x), our_logits(model, x)) < 1e-5


def test_load_pretrained_keeps_float64(tmp_path):
    hf = hf_model(torch.float64)
    hf.save_pretrained(tmp_path)
    model = GPTModel.from_pretrained(tmp_path)
    assert model.tok_emb.weight.dtype == np.float64
    x = ids()
    assert rel_err(our_logits(model, x), hf_logits(hf, x)) < 1e-12
    assert GPTModel.from_pretrained(tmp_path, dtype=np.float32).tok_emb.weight.dtype == np.float32


def test_load_pretrained_widens_bfloat16(tmp_path):
    hf = hf_model(torch.bfloat16)
    hf.save_pretrained(tmp_path)
    model = GPTModel.from_pretrained(tmp_path)
    assert model.tok_emb.weight.dtype == np.float32
    x = ids()
    assert rel_err(our_logits(model, x), hf_logits(hf.float(), x)) < 1e-5   # bf16 -> f32 is exact


def test_load_pretrained_untied(tmp_path):
    hf = hf_model(tie_word_embeddings=False)
    hf.save_pretrained(tmp_path)
    model = GPTModel.from_pretrained(tmp_path)
    assert not model.cfg["tie_embeddings"] and model.out_head.weight is not model.tok_emb.weight
    x = ids()
    assert rel_err(our_logits(model, x), hf_logits(hf, x)) < 1e-5


def test_sharded_checkpoint(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert not (tmp_path / "model.safetensors").exists()
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    x = ids()
    assert rel_err(our_logits(GPTModel.from_pretrained(tmp_path), x), hf_logits(hf, x)) < 1e-5

    shard = sorted(set(index["weight_map"].values()))[0]
    (tmp_path / shard).unlink()
    with pytest.raises(FileNotFoundError, match=shard):
        GPTModel.from_pretrained(tmp_path)


# ----------------------------------------------------------------------------- numpygpt -> transformers


def from_pretrained(path):
    model, info = transformers.GPT2LMHeadModel.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("qkv_bias", [True, False])
def test_save_pretrained_loads_in_transformers(tmp_path, tie, qkv_bias):
    numpygpt.manual_seed(0)
    model = GPTModel({**OURS_TINY, "tie_embeddings": tie, "qkv_bias": qkv_bias}).eval()
    model.save_pretrained(tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == ["config.json", "model.safetensors"]
    with safetensors.safe_open(tmp_path / "out" / "model.safetensors", "np") as f:
        assert f.metadata() == {"format": "pt"}
        assert ("lm_head.weight" in f.keys()) == (not tie)

    hf = from_pretrained(tmp_path / "out")
    assert hf.config.tie_word_embeddings == tie
    assert (hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()) == tie
    np.testing.assert_array_equal(hf.lm_head.weight.detach().numpy(), model.out_head.weight.data)
    x = ids()
    assert rel_err(hf_logits(hf, x), our_logits(model, x)) < 1e-5


def test_save_pretrained_float64_and_reload(tmp_path):
    numpygpt.set_default_dtype(np.float64)
    numpygpt.manual_seed(1)
    model = GPTModel({**OURS_TINY, "tie_embeddings": True}).eval()
    model.save_pretrained(tmp_path)
    hf = from_pretrained(tmp_path)
    x = ids()
    assert rel_err(hf_logits(hf.double(), x), our_logits(model, x)) < 1e-12
    again = GPTModel.from_pretrained(tmp_path)
    assert again.tok_emb.weight.dtype == np.float64
    np.testing.assert_array_equal(our_logits(again, x), our_logits(model, x))


def test_transformers_round_trip_through_numpygpt(tied_dir, tmp_path):
    hf, path = tied_dir
    GPTModel.from_pretrained(path).save_pretrained(tmp_path)
    again = from_pretrained(tmp_path)
    for (k, a), (k2, b) in zip(hf.state_dict().items(), again.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_config_json_is_a_gpt2_config(tmp_path):
    numpygpt.manual_seed(0)
    cfg = {**OURS_TINY, "drop_rate": 0.1, "ln_eps": 1e-6, "tie_embeddings": False}
    GPTModel(cfg).save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["model_type"] == "gpt2" and raw["architectures"] == ["GPT2LMHeadModel"]
    config = transformers.GPT2Config.from_pretrained(tmp_path)
    sizes = (config.n_positions, config.n_embd, config.n_head, config.n_layer, config.vocab_size)
    assert sizes == (32, 32, 4, 2, VOCAB)
    assert config.layer_norm_epsilon == 1e-6 and config.activation_function == "gelu_new"
    assert config.resid_pdrop == config.embd_pdrop == config.attn_pdrop == 0.1
    assert config.tie_word_embeddings is False
    assert hf_config_to_cfg(raw) == numpygpt.model.validate_config(cfg)
    big = cfg_to_hf_config(numpygpt.model.GPT_CONFIG_124M)
    assert big["bos_token_id"] == big["eos_token_id"] == 50256


# ----------------------------------------------------------------------------- the converters


def test_hf_config_to_cfg_matches_gpt2config_defaults():
    cfg = hf_config_to_cfg(transformers.GPT2Config().to_dict())
    assert cfg == {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12, "n_layers": 12,
                   "drop_rate": 0.1, "qkv_bias": True, "ln_eps": 1e-5, "tie_embeddings": True}
    minimal = {"vocab_size": 10, "n_ctx": 8, "n_embd": 4, "n_head": 2, "n_layer": 1}
    assert hf_config_to_cfg(minimal)["context_length"] == 8
    assert hf_config_to_cfg(minimal)["drop_rate"] == 0.0


@pytest.mark.parametrize("key, value", [
    ("activation_function", "relu"),
    ("n_inner", 64),
    ("scale_attn_weights", False),
    ("add_cross_attention", True),
    ("reorder_and_upcast_attn", True),
    ("scale_attn_by_inverse_layer_idx", True),
    ("model_type", "llama"),
])
def test_unrepresentable_configs(key, value):
    hf = {**transformers.GPT2Config(**HF_TINY).to_dict(), key: value}
    with pytest.raises(ValueError, match=key if key != "model_type" else "llama"):
        hf_config_to_cfg(hf)
    assert hf_config_to_cfg({**hf, key: transformers.GPT2Config().to_dict()[key]})  # the default is fine


def test_gelu_pytorch_tanh_and_explicit_n_inner_are_accepted():
    hf = {**transformers.GPT2Config(**HF_TINY).to_dict(), "activation_function": "gelu_pytorch_tanh", "n_inner": 128}
    assert hf_config_to_cfg(hf)["emb_dim"] == 32
    with pytest.raises(ValueError, match="missing n_embd"):
        hf_config_to_cfg({"vocab_size": 10, "n_positions": 8, "n_head": 2, "n_layer": 1})


def hf_numpy_state_dict(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("tie", [True, False])
def test_converters_are_inverse(tie):
    hf = hf_model(tie_word_embeddings=tie)
    cfg = hf_config_to_cfg(hf.config.to_dict())
    hf_sd = hf_numpy_state_dict(hf)
    if tie:
        hf_sd.pop("lm_head.weight", None)
    sd = hf_to_state_dict(hf_sd, cfg)
    numpygpt.manual_seed(0)
    model = GPTModel(cfg)
    assert list(sd) == list(model.state_dict())
    model.load_state_dict(sd, strict=True)
    back = state_dict_to_hf(sd, cfg)
    assert list(back) == list(hf_sd)
    for k, v in hf_sd.items():
        assert back[k].dtype == v.dtype and back[k].flags.c_contiguous, k
        np.testing.assert_array_equal(back[k], v, err_msg=k)
    again = hf_to_state_dict(back, cfg)
    for k, v in sd.items():
        np.testing.assert_array_equal(again[k], v, err_msg=k)


def test_unprefixed_keys_and_mask_buffers(tied_dir):
    """GPT2Model-style names (OpenAI's converted checkpoints) with the old attn.bias buffers."""
    hf, _ = tied_dir
    cfg = hf_config_to_cfg(hf.config.to_dict())
    plain = {k.removeprefix("transformer."): v for k, v in hf_numpy_state_dict(hf).items() if k != "lm_head.weight"}
    for i in range(cfg["n_layers"]):
        plain[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, 32, 32), dtype=bool))
        plain[f"h.{i}.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    sd = hf_to_state_dict(plain, cfg)
    model = GPTModel(cfg).eval()
    model.load_state_dict(sd)
    x = ids()
    assert rel_err(our_logits(model, x), hf_logits(hf, x)) < 1e-5
    np.testing.assert_array_equal(sd["trf_blocks.1.att.mask"], np.triu(np.ones((32, 32), np.float32), 1))


def test_converter_errors_name_the_keys(tied_dir):
    hf, _ = tied_dir
    cfg = hf_config_to_cfg(hf.config.to_dict())
    good = hf_numpy_state_dict(hf)

    missing = {k: v for k, v in good.items() if k != "transformer.h.1.mlp.c_fc.bias"}
    with pytest.raises(ValueError, match=r"missing keys: h\.1\.mlp\.c_fc\.bias"):
        hf_to_state_dict(missing, cfg)
    with pytest.raises(ValueError, match=r"unexpected keys: transformer\.h\.2\.ln_1\.weight"):
        hf_to_state_dict({**good, "transformer.h.2.ln_1.weight": np.ones(32, np.float32)}, cfg)
    with pytest.raises(ValueError, match=r"transformer\.wpe\.weight: shape \(16, 32\), expected \(32, 32\)"):
        hf_to_state_dict({**good, "transformer.wpe.weight": good["transformer.wpe.weight"][:16]}, cfg)
    with pytest.raises(ValueError, match="twice"):
        hf_to_state_dict({**good, "wte.weight": good["transformer.wte.weight"]}, cfg)
    with pytest.raises(ValueError, match="lm_head.weight differs"):
        hf_to_state_dict({**good, "lm_head.weight": good["lm_head.weight"] + 1}, cfg)
    untied = {**cfg, "tie_embeddings": False}
    with pytest.raises(ValueError, match="missing keys: lm_head.weight"):
        hf_to_state_dict({k: v for k, v in good.items() if k != "lm_head.weight"}, untied)
    with pytest.raises(ValueError, match="qkv_bias=False"):
        hf_to_state_dict(good, {**cfg, "qkv_bias": False})

    sd = hf_to_state_dict(good, cfg)
    with pytest.raises(ValueError, match=r"missing keys: trf_blocks\.0\.norm1\.scale"):
        state_dict_to_hf({k: v for k, v in sd.items() if k != "trf_blocks.0.norm1.scale"}, cfg)
    with pytest.raises(ValueError, match="out_head.weight differs"):
        state_dict_to_hf({**sd, "out_head.weight": sd["tok_emb.weight"] + 1}, cfg)


# ----------------------------------------------------------------------------- bad directories


def test_missing_directory_and_config(tmp_path, tied_dir):
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        GPTModel.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        GPTModel.from_pretrained(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps(transformers.GPT2Config(**HF_TINY).to_dict()))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        GPTModel.from_pretrained(tmp_path / "empty")
    with pytest.raises(NotADirectoryError):
        GPTModel.from_pretrained(tied_dir[1] / "model.safetensors")


def test_pytorch_bin_only_directory_is_refused(tmp_path, tied_dir, monkeypatch):
    hf, _ = tied_dir
    hf.config.save_pretrained(tmp_path)
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    with pytest.raises(ValueError, match=r"pytorch_model\.bin.*pickle.*safetensors"):
        GPTModel.from_pretrained(tmp_path)


def test_other_model_types_are_refused(tmp_path, tied_dir):
    _, good = tied_dir
    config = json.loads((good / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    (tmp_path / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="model_type 'llama'"):
        GPTModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        GPTModel.from_pretrained(tmp_path)


def test_corrupt_weights_name_the_file(tmp_path, tied_dir):
    _, good = tied_dir
    (tmp_path / "config.json").write_text((good / "config.json").read_text())
    data = (good / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) - 10])
    with pytest.raises(ValueError, match="model.safetensors is truncated or corrupt"):
        GPTModel.from_pretrained(tmp_path)


# ----------------------------------------------------------------------------- OpenAI's 124M weights


def test_real_gpt2_greedy_continuation():
    directory = os.environ.get("NUMPYGPT_GPT2_DIR")
    if not directory:
        pytest.skip("set NUMPYGPT_GPT2_DIR to a Hugging Face gpt2 directory (config.json + model.safetensors)")
    from numpygpt.generate import generate_text_simple
    from numpygpt.tokenizer import text_to_token_ids, token_ids_to_text

    model = GPTModel.from_pretrained(Path(directory))
    assert model.num_parameters() == 124_439_808
    prompt = "Alan Turing theorized that computers would one day become"
    idx = text_to_token_ids(prompt)
    out = generate_text_simple(model, idx, max_new_tokens=40, context_size=model.cfg["context_length"])
    continuation = token_ids_to_text(out[:, idx.shape[1]:])
    assert continuation.startswith(" the most powerful machines on the planet."), continuation
