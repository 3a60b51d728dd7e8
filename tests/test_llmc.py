"""llm.c's model and debug-state files (numpygpt.llmc).

A tiny GPT-2 (vocabulary 300, padded to 384) goes to an llm.c model file and
back with every weight equal, and its debug state holds exactly numpygpt's
logits, loss and gradients. The files are also read here a second way,
independently of numpygpt.llmc: by byte offsets worked out the way llm.c's C
code (train_gpt2.c, test_gpt2.c) works them out, and by a NumPy forward pass
written after llm.c's C one, which must reproduce numpygpt's logits from
the file alone. Foreign, truncated and over-long files, and models llm.c
cannot hold, are refused with errors that name the problem.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

import numpygpt
from numpygpt import llmc
from numpygpt.losses import cross_entropy
from numpygpt.model import GPTModel

V, VP, MAXT, C, NH, L = 300, 384, 16, 32, 2, 2
CFG = {"vocab_size": V, "context_length": MAXT, "emb_dim": C, "n_heads": NH, "n_layers": L,
       "drop_rate": 0.0, "qkv_bias": True, "tie_embeddings": True}
B, T = 3, 8
# train_gpt2.c's fill_in_parameter_sizes, in the file's order
SIZES = [("wte", VP * C), ("wpe", MAXT * C), ("ln1w", L * C), ("ln1b", L * C), ("qkvw", L * 3 * C * C),
         ("qkvb", L * 3 * C), ("attprojw", L * C * C), ("attprojb", L * C), ("ln2w", L * C), ("ln2b", L * C),
         ("fcw", L * 4 * C * C), ("fcb", L * 4 * C), ("fcprojw", L * C * 4 * C), ("fcprojb", L * C),
         ("lnfw", C), ("lnfb", C)]
NUM_PARAMETERS = sum(n for _, n in SIZES)


def tiny_model(seed: int = 0, **overrides) -> GPTModel:
    """A tiny GPT-2 with every parameter random (biases and LayerNorms too), so a misplaced tensor shows."""
    numpygpt.manual_seed(seed)
    model = GPTModel({**CFG, **overrides})
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = (p.data + 0.1 * rng.standard_normal(p.shape)).astype(p.dtype)
    return model.eval()


def batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.random.default_rng(seed).integers(0, V, size=(B, T + 1))
    return tokens[:, :-1], tokens[:, 1:]


def forward_backward(model: GPTModel, idx: np.ndarray, targets: np.ndarray):
    """numpygpt's own logits, loss and gradients, computed here without numpygpt.llmc."""
    model.zero_grad()
    logits = model(idx)
    loss = cross_entropy(logits.flatten(0, 1), targets.reshape(-1))
    loss.backward()
    grads = {name: p.grad.data.copy() for name, p in model.named_parameters()}
    model.zero_grad()
    return logits.data, loss.item(), grads


@pytest.fixture
def files(tmp_path):
    """(model, model file, debug-state file, idx, targets) for the tiny model."""
    model = tiny_model()
    idx, targets = batch()
    model_file, state_file = tmp_path / "gpt2_124M.bin", tmp_path / "gpt2_124M_debug_state.bin"
    llmc.write_model(model, model_file)
    llmc.write_debug_state(model, idx, targets, state_file)
    return model, model_file, state_file, idx, targets


# ----------------------------------------------------------------------------- read as llm.c's C code reads


def c_header(path) -> list[int]:
    with open(path, "rb") as f:
        return list(struct.unpack("<256i", f.read(1024)))


def c_parameters(path, offset: int = 1024) -> dict[str, np.ndarray]:
    """The 16 flat tensors at llm.c's offsets (malloc_and_point_parameters), from `offset` on."""
    flat = np.fromfile(path, dtype="<f4", count=NUM_PARAMETERS, offset=offset)
    out, start = {}, 0
    for name, n in SIZES:
        out[name] = flat[start:start + n]
        start += n
    return out


def c_forward(p: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Logits (B, T, V) from llm.c's tensors, step by step as train_gpt2.c's gpt2_forward, in float64."""
    p = {k: v.astype(np.float64) for k, v in p.items()}
    wte, wpe = p["wte"].reshape(VP, C), p["wpe"].reshape(MAXT, C)

    def layernorm(x, w, b):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * w + b

    def matmul(x, w, b, oc):  # out[o] = b[o] + Σ_i w[o*C_in + i] x[i]
        return x @ w.reshape(oc, x.shape[-1]).T + b

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

    x = wte[idx] + wpe[:idx.shape[1]]
    t, hs = idx.shape[1], C // NH
    causal = np.tril(np.ones((t, t), dtype=bool))
    for i in range(L):
        lay = {k: v.reshape(L, -1)[i] for k, v in p.items() if k not in ("wte", "wpe", "lnfw", "lnfb")}
        qkv = matmul(layernorm(x, lay["ln1w"], lay["ln1b"]), lay["qkvw"], lay["qkvb"], 3 * C)
        q, k, v = (qkv[..., j * C:(j + 1) * C].reshape(B, t, NH, hs).transpose(0, 2, 1, 3) for j in range(3))
        scores = np.where(causal, q @ k.transpose(0, 1, 3, 2) / np.sqrt(hs), -np.inf)
        att = np.exp(scores - scores.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(0, 2, 1, 3).reshape(B, t, C)
        x = x + matmul(y, lay["attprojw"], lay["attprojb"], C)
        h = gelu(matmul(layernorm(x, lay["ln2w"], lay["ln2b"]), lay["fcw"], lay["fcb"], 4 * C))
        x = x + matmul(h, lay["fcprojw"], lay["fcprojb"], C)
    return (layernorm(x, p["lnfw"], p["lnfb"]) @ wte.T)[..., :V]


# ----------------------------------------------------------------------------- the model file


def test_padded_vocab_size():
    assert [llmc.padded_vocab_size(n) for n in (50257, 300, 384, 1)] == [50304, 384, 384, 128]


def test_model_header_and_size(files):
    _, model_file, _, _, _ = files
    header = c_header(model_file)
    assert header[:8] == [20240326, 3, MAXT, V, L, NH, C, VP]
    assert header[8:] == [0] * 248
    assert os.path.getsize(model_file) == 1024 + 4 * NUM_PARAMETERS
    assert llmc.read_model_header(model_file) == {
        "version": 3, "max_seq_len": MAXT, "vocab_size": V, "num_layers": L, "num_heads": NH,
        "channels": C, "padded_vocab_size": VP}


def test_tensors_sit_where_llm_c_reads_them(files):
    model, model_file, _, _, _ = files
    p, sd = c_parameters(model_file), model.state_dict()
    wte = p["wte"].reshape(VP, C)
    assert np.array_equal(wte[:V], sd["tok_emb.weight"]) and not wte[V:].any()
    qkvw = p["qkvw"].reshape(L, 3 * C, C)[1]  # block 1: rows q, then k, then v, each (out, in)
    for j, name in enumerate(("W_query", "W_key", "W_value")):
        assert np.array_equal(qkvw[j * C:(j + 1) * C], sd[f"trf_blocks.1.att.{name}.weight"])
        assert np.array_equal(p["qkvb"].reshape(L, 3 * C)[1, j * C:(j + 1) * C], sd[f"trf_blocks.1.att.{name}.bias"])
    assert np.array_equal(p["fcprojw"].reshape(L, C, 4 * C)[0], sd["trf_blocks.0.ff.layers.2.weight"])
    assert np.array_equal(p["ln2b"].reshape(L, C)[1], sd["trf_blocks.1.norm2.shift"])
    assert np.array_equal(p["lnfb"], sd["final_norm.shift"])


def test_llm_c_forward_from_the_file_gives_numpygpt_logits(files):
    model, model_file, _, idx, _ = files
    logits = c_forward(c_parameters(model_file), idx)
    np.testing.assert_allclose(logits, model(idx).data, rtol=0, atol=1e-4)


def test_round_trip_is_exact(files):
    model, model_file, _, idx, _ = files
    loaded = llmc.load_model(model_file)
    assert not loaded.training and loaded.tok_emb.weight.dtype == np.float32
    assert {k: loaded.cfg[k] for k in CFG} == CFG and loaded.cfg["ln_eps"] == 1e-5
    assert loaded.out_head.weight is loaded.tok_emb.weight
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert list(ours) == list(theirs)
    for key in ours:
        assert np.array_equal(ours[key], theirs[key]), key
    assert np.array_equal(model(idx).data, loaded(idx).data)


def test_float64_model_is_written_as_float32(tmp_path):
    model = tiny_model().double()
    llmc.write_model(model, tmp_path / "m.bin")
    loaded = llmc.load_model(tmp_path / "m.bin")
    assert np.array_equal(loaded.state_dict()["pos_emb.weight"], model.state_dict()["pos_emb.weight"].astype(np.float32))


def test_bfloat16_file(tmp_path):
    model = tiny_model()
    llmc.write_model(model, tmp_path / "m.bin", dtype="bfloat16")
    assert c_header(tmp_path / "m.bin")[:2] == [20240326, 5]
    assert os.path.getsize(tmp_path / "m.bin") == 1024 + 2 * NUM_PARAMETERS
    loaded = llmc.load_model(tmp_path / "m.bin")
    w = model.state_dict()["trf_blocks.0.ff.layers.0.weight"]
    got = loaded.state_dict()["trf_blocks.0.ff.layers.0.weight"]
    assert not (got.view(np.uint32) & 0xFFFF).any()               # bfloat16: the low 16 bits are zero
    assert np.all(np.abs(got - w) <= np.abs(w) * 2.0**-8)          # rounded to nearest: half a bfloat16 ulp


def test_bfloat16_rounding_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ties = np.array([0x3F808000, 0x3F818000, 0x3F80FFFF, 0x7F7FFFFF, 0x00000001, 0x80008000], dtype=np.uint32)
    values = np.concatenate([rng.standard_normal(10000).astype(np.float32) * 10.0 ** rng.integers(-40, 38, 10000),
                             ties.view(np.float32), np.array([np.inf, -np.inf, 0.0, -0.0, np.nan], np.float32)])
    expected = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(llmc._bfloat16_bits(values), expected)


# ----------------------------------------------------------------------------- the debug state


def test_debug_state_layout_as_test_gpt2_reads_it(files):
    model, _, state_file, idx, targets = files
    logits, loss, grads = forward_backward(model, idx, targets)
    assert c_header(state_file)[:4] == [20240327, 2, B, T] and c_header(state_file)[4:] == [0] * 252
    assert os.path.getsize(state_file) == 1024 + 4 * (2 * B * T + B * T * V + 1 + NUM_PARAMETERS)
    ints = np.fromfile(state_file, dtype="<i4", count=2 * B * T, offset=1024)
    assert np.array_equal(ints[:B * T], idx.ravel()) and np.array_equal(ints[B * T:], targets.ravel())
    offset = 1024 + 8 * B * T
    file_logits = np.fromfile(state_file, dtype="<f4", count=B * T * V, offset=offset)
    assert np.array_equal(file_logits, logits.ravel())             # (B, T, V): the unpadded vocabulary
    file_loss = np.fromfile(state_file, dtype="<f4", count=1, offset=offset + 4 * B * T * V)[0]
    assert file_loss == np.float32(loss)
    g = c_parameters(state_file, offset + 4 * B * T * V + 4)
    dwte = g["wte"].reshape(VP, C)
    assert np.array_equal(dwte[:V], grads["tok_emb.weight"]) and not dwte[V:].any()
    dqkvw = g["qkvw"].reshape(L, 3 * C, C)[0]
    assert np.array_equal(dqkvw[C:2 * C], grads["trf_blocks.0.att.W_key.weight"])
    assert np.array_equal(g["lnfw"], grads["final_norm.scale"])


def test_debug_state_holds_numpygpt_logits_loss_and_gradients(files):
    model, model_file, state_file, idx, targets = files
    logits, loss, grads = forward_backward(model, idx, targets)
    for sizes in (model_file, model.cfg):
        state = llmc.read_debug_state(state_file, sizes)
        assert np.array_equal(state["inputs"], idx) and state["inputs"].dtype == np.int32
        assert np.array_equal(state["targets"], targets)
        assert np.array_equal(state["logits"], logits) and state["logits"].shape == (B, T, V)
        assert state["loss"] == np.float32(loss)
        assert list(state["grads"]) == list(grads)
        for name, grad in grads.items():
            assert np.array_equal(state["grads"][name], grad), name


def test_tied_gradient_is_the_sum_of_both_uses(files):
    model, _, state_file, idx, targets = files
    untied = tiny_model(tie_embeddings=False)
    untied.load_state_dict({**model.state_dict(), "out_head.weight": model.state_dict()["tok_emb.weight"].copy()})
    _, _, grads = forward_backward(untied, idx, targets)
    dwte = llmc.read_debug_state(state_file, model.cfg)["grads"]["tok_emb.weight"]
    np.testing.assert_allclose(dwte, grads["tok_emb.weight"] + grads["out_head.weight"], rtol=0, atol=1e-6)


def test_write_debug_state_returns_what_it_wrote_and_leaves_the_model_alone(tmp_path):
    model = tiny_model(drop_rate=0.5).train()
    idx, targets = batch(1)
    p = model.pos_emb.weight
    p.grad = np.full(p.shape, 7.0, dtype=np.float32)
    written = llmc.write_debug_state(model, idx, targets, tmp_path / "s.bin")
    assert model.training and np.all(p.grad.data == 7.0) and model.tok_emb.weight.grad is None
    state = llmc.read_debug_state(tmp_path / "s.bin", model.cfg)
    assert written["loss"] == state["loss"]
    for key in ("inputs", "targets", "logits"):
        assert np.array_equal(written[key], state[key])
    assert all(np.array_equal(written["grads"][k], state["grads"][k]) for k in state["grads"])
    model.eval()                                                   # eval semantics: no dropout
    assert np.array_equal(state["logits"], model(idx).data)


# ----------------------------------------------------------------------------- refusals and damaged files


@pytest.mark.parametrize("overrides, words", [
    ({"qkv_bias": False}, "qkv_bias=False"),
    ({"tie_embeddings": False}, "not tied"),
    ({"ln_eps": 1e-6}, "eps"),
])
def test_models_llm_c_cannot_hold_are_refused(tmp_path, overrides, words):
    model = GPTModel({**CFG, **overrides})
    with pytest.raises(ValueError, match=words):
        llmc.write_model(model, tmp_path / "m.bin")
    with pytest.raises(ValueError, match=words):
        llmc.write_debug_state(model, *batch(), tmp_path / "s.bin")
    assert not list(tmp_path.iterdir())


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="GPTModel"):
        llmc.write_model(object(), tmp_path / "m.bin")
    with pytest.raises(ValueError, match="dtype"):
        llmc.write_model(tiny_model(), tmp_path / "m.bin", dtype="float16")
    with pytest.raises(ValueError, match="shape"):
        llmc.write_debug_state(tiny_model(), np.zeros((2, 4), int), np.zeros((2, 5), int), tmp_path / "s.bin")


def test_truncated_and_long_files_are_refused(files, tmp_path):
    _, model_file, state_file, _, _ = files
    data, state = model_file.read_bytes(), state_file.read_bytes()
    load = llmc.load_model
    cases = [(data[:-1], load, "truncated or corrupt.*1 too short"),
             (data + b"\0", load, "1 too long"),
             (data[:1000], load, "fewer than the 1024-byte header"),
             (state[:-4], lambda p: llmc.read_debug_state(p, model_file), "4 too short")]
    for content, read, message in cases:
        (tmp_path / "bad.bin").write_bytes(content)
        with pytest.raises(ValueError, match=message):
            read(tmp_path / "bad.bin")


def test_foreign_files_are_refused(files, tmp_path):
    _, model_file, state_file, _, _ = files
    with pytest.raises(ValueError, match="not an llm.c model file.*debug-state file"):
        llmc.load_model(state_file)
    with pytest.raises(ValueError, match="not an llm.c debug-state file"):
        llmc.read_debug_state(model_file, model_file)
    (tmp_path / "x.bin").write_bytes(b"PK\x03\x04" + bytes(2000))
    with pytest.raises(ValueError, match="not an llm.c model file: it starts with 67324752"):
        llmc.load_model(tmp_path / "x.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="it is empty"):
        llmc.load_model(tmp_path / "empty.bin")


@pytest.mark.parametrize("field, value, message", [
    (1, 4, "version 4"),
    (7, 256, "padded_vocab_size 256 is less than vocab_size 300"),
    (5, 3, "not divisible by num_heads"),
    (4, 0, "num_layers is 0"),
])
def test_impossible_headers_are_refused(files, tmp_path, field, value, message):
    _, model_file, _, _, _ = files
    data = bytearray(model_file.read_bytes())
    data[4 * field:4 * field + 4] = struct.pack("<i", value)
    (tmp_path / "bad.bin").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=message):
        llmc.load_model(tmp_path / "bad.bin")


def test_debug_state_header_is_checked(files, tmp_path):
    _, model_file, state_file, _, _ = files
    data = bytearray(state_file.read_bytes())
    data[12:16] = struct.pack("<i", MAXT + 1)   # T beyond max_seq_len
    (tmp_path / "bad.bin").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="max_seq_len"):
        llmc.read_debug_state(tmp_path / "bad.bin", model_file)


def test_an_interrupted_write_leaves_the_previous_file(files, monkeypatch):
    _, model_file, _, _, _ = files
    before = model_file.read_bytes()
    calls = []

    def failing(array, dtype):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return np.ascontiguousarray(array, dtype="<f4")

    monkeypatch.setattr(llmc, "_encode", failing)
    with pytest.raises(KeyboardInterrupt):
        llmc.write_model(tiny_model(seed=1), model_file)
    assert model_file.read_bytes() == before
    assert sorted(p.name for p in model_file.parent.iterdir()) == ["gpt2_124M.bin", "gpt2_124M_debug_state.bin"]
