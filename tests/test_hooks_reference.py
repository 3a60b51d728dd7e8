"""Hooks (PyTorch's semantics) and `numpygpt.reference.record`, against PyTorch for the same weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import numpygpt
from numpygpt import reference
from numpygpt.model import GPTModel

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
CFG = {"vocab_size": 61, "context_length": 8, "emb_dim": 12, "n_heads": 3, "n_layers": 2, "drop_rate": 0.0,
       "qkv_bias": True}
IDS = np.array([[3, 17, 5, 42, 8], [60, 0, 9, 9, 1]])
TARGETS = np.array([[17, 5, 42, 8, 2], [0, 9, 9, 1, 33]])


def _libs() -> list[Any]:
    return [numpygpt] + ([torch] if torch is not None else [])


def _np(t: Any) -> np.ndarray:
    return np.asarray(t.detach().numpy() if hasattr(t, "detach") else t, dtype=np.float64)


# ----------------------------------------------------------------------------- tensor hooks


def test_tensor_hooks_replace_gradients_as_pytorch() -> None:
    results = []
    for T in _libs():
        x = T.tensor([0.5, -1.0, 2.0], dtype=T.float64, requires_grad=True)
        seen = []
        x.register_hook(lambda g: g * 2)                 # a leaf's hook runs before accumulation
        y = x.exp()
        h = y.register_hook(lambda g: seen.append(_np(g)))  # returns None: the gradient is unchanged
        z = y * y
        z.register_hook(lambda g: g + 1)
        z.sum().backward()
        h.remove()
        x.grad = None
        (x.exp() * 3).sum().backward()                  # the leaf's hook is still there
        results.append((seen[0], _np(x.grad)))
    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(results[0][0], 2 * np.exp(x) * 2)
    np.testing.assert_allclose(results[0][1], 2 * 3 * np.exp(x))
    for ours, theirs in zip(results[0], results[-1]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-14)


def test_register_hook_needs_a_tensor_that_requires_grad() -> None:
    for T in _libs():
        with pytest.raises(RuntimeError):
            T.ones(2).register_hook(lambda g: g)


# ----------------------------------------------------------------------------- module hooks


def test_module_hooks_as_pytorch() -> None:
    results = []
    for T in _libs():
        T.manual_seed(0)
        lin = T.nn.Linear(3, 2).double()
        x = T.tensor([[1.0, -2.0, 0.5]], dtype=T.float64, requires_grad=True)
        calls: list[Any] = []
        pre = lin.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
        post = lin.register_forward_hook(lambda m, args, out: out + 1)
        back = lin.register_full_backward_hook(
            lambda m, gi, go: calls.append((_np(gi[0]), _np(go[0]))) or (gi[0] * 10,))
        out = lin(x)
        (out * T.tensor([[1.0, 3.0]], dtype=T.float64)).sum().backward()
        results.append((_np(out), _np(x.grad), *calls[0]))
        for handle in (pre, post, back):
            handle.remove()
        assert lin(x).shape == (1, 2) and len(calls) == 1
    for ours, theirs in zip(results[0], results[-1]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-14)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # PyTorch says what it does
def test_full_backward_hook_when_no_gradient_flows_into_the_input() -> None:
    for T in _libs():
        lin = T.nn.Linear(2, 2)
        seen = []
        lin.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go[0].shape)))
        lin(T.ones(1, 2)).sum().backward()
        assert seen == [((None,), (1, 2))]


# ----------------------------------------------------------------------------- reference.record


def _models() -> tuple[GPTModel, Any]:
    from torch_gpt import GPTModel as TorchGPT

    numpygpt.manual_seed(1)
    ours = GPTModel(CFG).double().eval()
    theirs = TorchGPT(CFG).double().eval()
    theirs.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ours.state_dict().items()})
    return ours, theirs


def _torch_recording(model: Any) -> dict[str, np.ndarray]:
    """What a PyTorch user gets from forward hooks and retain_grad() on the same model."""
    outputs: dict[str, Any] = {}

    def hook(name: str):
        def keep(module: Any, args: Any, output: Any) -> None:
            output.retain_grad()
            outputs.setdefault(name, output)
        return keep

    for name, module in model.named_modules():
        if name:
            module.register_forward_hook(hook(name))
    ids, targets = torch.from_numpy(IDS), torch.from_numpy(TARGETS)
    logits = model(ids)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    loss.backward()
    rec = {name: _np(t) for name, t in outputs.items()}
    rec.update({f"{name}.grad": _np(t.grad) for name, t in outputs.items() if t.grad is not None})
    rec.update({f"{name}.grad": _np(p.grad) for name, p in model.named_parameters()})
    rec["logits"], rec["loss"] = _np(logits), _np(loss)
    return rec


@needs_torch
def test_record_matches_pytorch_hooks_for_every_module_and_gradient() -> None:
    ours_model, theirs_model = _models()
    ours = reference.record(ours_model, IDS, TARGETS)
    theirs = _torch_recording(theirs_model)
    shared = [k for k in ours if k in theirs]
    modules = [k for k, _ in ours_model.named_modules() if k]
    params = [f"{k}.grad" for k, _ in ours_model.named_parameters()]
    assert set(modules) <= set(shared) and set(params) <= set(shared) and {"logits", "loss"} <= set(shared)
    assert sum(k.endswith(".grad") for k in shared) >= len(modules)
    for k in shared:  # W_key.bias's gradient is 0 in exact arithmetic, rounding noise of 1e-18 in both
        scale = max(np.abs(theirs[k]).max(), 1e-6)
        assert np.abs(ours[k] - theirs[k]).max() / scale <= 1e-10, k


@needs_torch
def test_recorded_attention_variables_match_pytorch() -> None:
    ours_model, theirs_model = _models()
    ours = reference.record(ours_model, IDS)
    att = theirs_model.trf_blocks[1].att
    with torch.no_grad():
        x = torch.from_numpy(ours["trf_blocks.1.norm1"])
        b, t, _ = x.shape
        split = lambda y: y.view(b, t, att.num_heads, att.head_dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(att.W_query(x)), split(att.W_key(x)), split(att.W_value(x))
        scores = (q @ k.transpose(2, 3)).masked_fill(att.mask.bool()[:t, :t], -torch.inf) / att.head_dim**0.5
        weights = torch.softmax(scores, dim=-1)
        context = (weights @ v).transpose(1, 2).contiguous().view(b, t, -1)
    for name, value in [("queries", q), ("keys", k), ("values", v), ("attn_scores", scores),
                        ("attn_weights", weights), ("context_vec", context)]:
        np.testing.assert_allclose(ours[f"trf_blocks.1.att.{name}"], _np(value), rtol=1e-12, atol=1e-14, err_msg=name)


def test_record_order_names_and_bundles(tmp_path: Any) -> None:
    numpygpt.manual_seed(2)
    model = GPTModel(CFG).eval()
    rec = reference.record(model, IDS, TARGETS)
    names = list(rec)
    first = ["tok_emb", "pos_emb", "drop_emb", "trf_blocks.0.norm1", "trf_blocks.0.att.W_key"]
    assert names[:5] == first and names.index("final_norm") < names.index("out_head") < names.index("logits")
    assert names.index("trf_blocks.0.att.queries") < names.index("trf_blocks.0.att.out_proj")
    assert rec["trf_blocks.0.att.attn_weights"].sum(axis=-1) == pytest.approx(1.0)
    assert all(p.grad is not None for p in model.parameters())  # the backward happened
    hf = reference.to_hf_names(rec)
    assert {"transformer.wte", "transformer.h.0.ln_1", "transformer.h.1.attn.c_proj", "transformer.h.0.mlp.c_fc",
            "transformer.ln_f", "lm_head", "transformer.h.0.ln_1.weight.grad"} <= set(hf)
    path = tmp_path / "bundle.safetensors"
    reference.save(rec, path, config=CFG)
    back = reference.load(path)
    meta = back.metadata
    assert list(back) == names and all(np.array_equal(back[k], rec[k]) for k in names)
    assert meta["format"] == "numpygpt.reference" and meta["numpygpt_version"] == numpygpt.__version__
    assert not any(isinstance(m.observer, object) and m.observer for m in model.modules()
                   if isinstance(m, numpygpt.model.MultiHeadAttention))
    assert not any(m._forward_hooks for m in model.modules())  # the recording's hooks are gone


def test_record_without_targets_keeps_no_graph() -> None:
    numpygpt.manual_seed(3)
    model = GPTModel(CFG).eval()
    rec = reference.record(model, IDS)
    assert "loss" not in rec and not any(k.endswith(".grad") for k in rec)
    assert all(p.grad is None for p in model.parameters())
