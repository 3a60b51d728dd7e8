"""numpygpt.bugs: each mistake shows first where the catalogue says, `diagnose` names it, and
`inject` leaves the model exactly as it found it.

- numpygpt with a bug injected against the clean numpygpt: the first divergent tensor is
  the bug's `shows_at`, and `diagnose` on that recording names that bug and no other;
- the seed's PyTorch model (tests/torch_gpt.py) with six of the bugs written in PyTorch,
  recorded with forward hooks under numpygpt's names, float64: `diagnose` names each;
- a clean model, numpygpt's or PyTorch's, gives no divergence and `diagnose` returns [];
- the bugs that cannot be told apart on some inputs (a mask off by one on two tokens is no
  mask; with one head the head split and the width scaling are no bugs at all).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

import numpygpt
from numpygpt import bugs, reference
from numpygpt.compare import compare
from numpygpt.model import GPTModel, MultiHeadAttention

CFG = {"vocab_size": 97, "context_length": 16, "emb_dim": 16, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0,
       "qkv_bias": True, "tie_embeddings": True}
RNG = np.random.default_rng(7)
IDS, TARGETS = RNG.integers(0, CFG["vocab_size"], size=(2, 2, 8))


def tiny(seed: int = 0, **overrides: Any) -> GPTModel:
    """A float64 model in eval mode: dropout 0.1 for the dropout bug, 0 for the others."""
    numpygpt.manual_seed(seed)
    return GPTModel({**CFG, **overrides}).double().eval()


def model_for(bug: bugs.Bug) -> GPTModel:
    return tiny(drop_rate=0.1) if bug.needs == "dropout" else tiny()


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Bit for bit: the same names in the same order, the same arrays."""
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- the catalogue


REQUIRED = ["ln_unbiased", "ln_eps_outside", "no_scale", "mask_off_by_one", "mask_missing", "gelu_erf",
            "softmax_dim", "c_proj_not_transposed", "qk_swapped", "positions_from_1", "tied_grad_once",
            "dropout_in_eval"]


def test_the_catalogue_holds_the_required_bugs_each_described() -> None:
    assert set(REQUIRED) <= set(bugs.BUGS) and len(bugs.BUGS) >= 12
    names = set(reference.record(tiny(), IDS, TARGETS))
    for name, bug in bugs.BUGS.items():
        assert bug.name == name and name.isidentifier() and name.islower()
        assert bug.description and bug.why and bug.shows_at in names
        assert bugs.describe(name) == bug.description and bugs.get(name) is bug and bugs.get(bug) is bug
    assert bugs.describe("ln_unbiased") == "LayerNorm with the unbiased (n − 1) variance"
    with pytest.raises(KeyError, match="unknown bug 'nope'"):
        bugs.get("nope")


@pytest.mark.parametrize("name", list(bugs.BUGS))
def test_each_bug_first_shows_where_it_says_and_diagnose_names_it(name: str) -> None:
    bug = bugs.BUGS[name]
    model = model_for(bug)
    clean = reference.record(model, IDS, TARGETS)
    with bugs.inject(model, name) as injected:
        buggy = reference.record(model, IDS, TARGETS)
    assert injected is bug
    assert same(reference.record(model, IDS, TARGETS), clean), "the injection was not undone"
    first = compare(clean, buggy).first
    assert first is not None and first.name == bug.shows_at
    assert bugs.fingerprint(model, name, IDS, TARGETS).name == bug.shows_at
    assert [b.name for b in bugs.diagnose(model, IDS, TARGETS, buggy)] == [name]  # no look-alike here


def test_a_forward_only_recording_is_diagnosed_too() -> None:
    model = tiny()
    with bugs.inject(model, "no_scale"):
        buggy = reference.record(model, IDS)
    assert [b.name for b in bugs.diagnose(model, IDS, None, buggy)] == ["no_scale"]
    with bugs.inject(model, "tied_grad_once"):  # a gradient bug: no trace in the forward
        assert bugs.diagnose(model, IDS, None, reference.record(model, IDS)) == []


def test_a_clean_recording_has_no_divergence_and_no_diagnosis() -> None:
    model = tiny(drop_rate=0.1)
    clean = reference.record(model, IDS, TARGETS)
    assert compare(clean, clean).ok
    assert bugs.diagnose(model, IDS, TARGETS, clean) == []


def test_a_divergence_no_bug_explains_gives_an_empty_list() -> None:
    model = tiny()
    theirs = dict(reference.record(model, IDS, TARGETS))
    theirs["trf_blocks.1.ff.layers.0"] = theirs["trf_blocks.1.ff.layers.0"] * 1.01
    assert bugs.diagnose(model, IDS, TARGETS, theirs) == []


# ----------------------------------------------------------------------------- injecting and undoing


def snapshot(model: GPTModel) -> list[Any]:
    """What a module holds: its own attributes, parameters (and their arrays), buffers, hooks, mode."""
    out = []
    for name, m in model.named_modules():
        attrs = {k: id(v) for k, v in vars(m).items() if k not in ("_parameters", "_buffers", "_modules")}
        params = {k: (id(p), id(p.data)) for k, p in m._parameters.items() if p is not None}
        hooks = (list(m._forward_pre_hooks), list(m._forward_hooks), list(m._backward_hooks))
        out.append((name, attrs, params, {k: id(b) for k, b in m._buffers.items()}, hooks, m.training))
    return out


@pytest.mark.parametrize("name", list(bugs.BUGS))
def test_inject_restores_every_attribute_weight_buffer_and_hook(name: str) -> None:
    model = model_for(bugs.BUGS[name])
    reference.record(model, IDS)  # record leaves each attention's `observer` attribute set to None
    before = snapshot(model)
    with bugs.inject(model, name):
        assert snapshot(model) != before
    assert snapshot(model) == before
    with pytest.raises(RuntimeError, match="inside"), bugs.inject(model, name):
        raise RuntimeError("inside")
    assert snapshot(model) == before


def test_bugs_the_model_cannot_have_are_refused_and_skipped() -> None:
    untied = tiny(tie_embeddings=False)
    for name, need in [("tied_grad_once", "tied embeddings"), ("dropout_in_eval", "dropout")]:
        assert not bugs.BUGS[name].applies(untied)
        with pytest.raises(ValueError, match=f"{name}: this model cannot have the bug; it needs {need}"):
            with bugs.inject(untied, name):
                pass
    with bugs.inject(untied, "ln_unbiased"):
        buggy = reference.record(untied, IDS, TARGETS)
    assert [b.name for b in bugs.diagnose(untied, IDS, TARGETS, buggy)] == ["ln_unbiased"]


def test_diagnose_leaves_the_model_s_modes_and_gradients_as_they_were() -> None:
    model = tiny(drop_rate=0.1).train()
    model.trf_blocks[0].eval()
    modes = [m.training for m in model.modules()]
    with bugs.inject(model, "softmax_dim"):
        buggy = reference.record(model.eval(), IDS, TARGETS)
    model.train()
    model.trf_blocks[0].eval()
    grads = {k: p.grad for k, p in model.named_parameters()}
    assert all(g is not None for g in grads.values())
    assert bugs.diagnose(model, IDS, TARGETS, buggy)[0].name == "softmax_dim"
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is grads[k] for k, p in model.named_parameters())


def test_the_attention_copy_with_the_right_steps_is_the_seed_s_forward_bit_for_bit() -> None:
    model = tiny()
    clean = reference.record(model, IDS, TARGETS)
    undo = bugs._set_forward(bugs._modules(model, MultiHeadAttention), bugs._attention)
    try:
        copied = reference.record(model, IDS, TARGETS)
    finally:
        undo()
    assert same(copied, clean)


def test_the_recording_puts_the_attention_dropout_after_the_weights() -> None:
    """Where the forward makes it, so that a bug in the scores first shows in attn_scores."""
    names = list(reference.record(tiny(), IDS, TARGETS))
    for suffix in ("", ".grad"):
        att = "trf_blocks.0.att."
        i = names.index(f"{att}attn_weights{suffix}")
        assert names[i + 1] == f"{att}dropout{suffix}" and names[i + 2] == f"{att}context_vec{suffix}"


# ----------------------------------------------------------------------------- bugs that look alike


def test_with_two_tokens_a_mask_off_by_one_masks_nothing() -> None:
    """triu(ones(2, 2), k=2) is all zeros: on two tokens the off-by-one mask is no mask at all and
    the two bugs cannot be told apart (ties keep the catalogue's order). From three tokens on they differ."""
    model = tiny()
    ids, targets = IDS[:, :2], TARGETS[:, :2]
    with bugs.inject(model, "mask_off_by_one"):
        buggy = reference.record(model, ids, targets)
    found = [b.name for b in bugs.diagnose(model, ids, targets, buggy)]
    assert found[:2] == ["mask_off_by_one", "mask_missing"] and len(found) == 2


def test_with_one_head_the_head_split_and_the_width_scaling_are_no_bugs() -> None:
    model = tiny(n_heads=1)
    clean = reference.record(model, IDS, TARGETS)
    for name in ("heads_view", "scale_emb_dim"):
        assert bugs.fingerprint(model, name, IDS, TARGETS) is None
        with bugs.inject(model, name):
            assert compare(clean, reference.record(model, IDS, TARGETS)).ok


# ----------------------------------------------------------------------------- the tour


def test_the_tour_prints_every_fingerprint_fast(capsys: pytest.CaptureFixture[str]) -> None:
    from numpygpt.tour import SECTIONS

    start = time.perf_counter()
    SECTIONS["bugs"][1]()
    assert time.perf_counter() - start < 5
    lines = capsys.readouterr().out.splitlines()
    for bug in bugs.BUGS.values():
        line = next(ln for ln in lines if ln.startswith(bug.name + " "))
        assert bug.shows_at in line.split() and line.endswith(bug.description)


# ----------------------------------------------------------------------------- the same bugs, written in PyTorch


def torch_bugs() -> dict[str, Any]:
    """Six bugs as someone writes them in the seed's PyTorch model: name -> patch(torch model)."""
    torch = pytest.importorskip("torch")
    torch_gpt = pytest.importorskip("torch_gpt")

    class UnbiasedLayerNorm(torch_gpt.LayerNorm):
        def forward(self, x: Any) -> Any:
            mean = x.mean(dim=-1, keepdim=True)
            var = x.var(dim=-1, keepdim=True)                       # torch's default: unbiased
            return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift

    class UnscaledAttention(torch_gpt.MultiHeadAttention):
        def forward(self, x: Any) -> Any:
            b, t, _ = x.shape
            split = lambda y: y.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # noqa: E731
            q, k, v = split(self.W_query(x)), split(self.W_key(x)), split(self.W_value(x))
            scores = (q @ k.transpose(2, 3)).masked_fill(self.mask.bool()[:t, :t], -torch.inf)
            weights = self.dropout(torch.softmax(scores, dim=-1))   # no / hs ** 0.5
            return self.out_proj((weights @ v).transpose(1, 2).contiguous().view(b, t, self.d_out))

    class PositionsFromOne(torch_gpt.GPTModel):
        def forward(self, in_idx: Any) -> Any:
            pos = self.pos_emb(torch.arange(1, in_idx.shape[1] + 1))
            x = self.drop_emb(self.tok_emb(in_idx) + pos)
            return self.out_head(self.final_norm(self.trf_blocks(x)))

    def retype(cls: type, base: type) -> Any:
        def patch(model: Any) -> None:
            for m in model.modules():
                if type(m) is base:
                    m.__class__ = cls
        return patch

    def erf_gelu(model: Any) -> None:
        for block in model.trf_blocks:
            block.ff.layers[1] = torch.nn.GELU()                    # exact by default

    def untransposed_c_proj(model: Any) -> None:
        with torch.no_grad():
            for block in model.trf_blocks:
                block.att.out_proj.weight.copy_(block.att.out_proj.weight.T.clone())

    def dropout_on(model: Any) -> None:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.train()

    return {"ln_unbiased": retype(UnbiasedLayerNorm, torch_gpt.LayerNorm),
            "no_scale": retype(UnscaledAttention, torch_gpt.MultiHeadAttention),
            "positions_from_1": retype(PositionsFromOne, torch_gpt.GPTModel),
            "gelu_erf": erf_gelu, "c_proj_not_transposed": untransposed_c_proj, "dropout_in_eval": dropout_on}


def torch_recording(model: Any, ids: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """What a PyTorch user records with forward hooks and retain_grad(), under the module names
    (numpygpt's, since torch_gpt's modules are named as the seed's)."""
    import torch

    outputs: dict[str, Any] = {}

    def keep(name: str) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            output.retain_grad()
            outputs.setdefault(name, output)
        return hook

    handles = [m.register_forward_hook(keep(name)) for name, m in model.named_modules() if name]
    logits = model(torch.from_numpy(ids))
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), torch.from_numpy(targets).flatten())
    loss.backward()
    for h in handles:
        h.remove()
    rec = {name: t.detach().numpy() for name, t in outputs.items()}
    rec.update({"logits": logits.detach().numpy(), "loss": loss.detach().numpy()})
    rec.update({f"{name}.grad": t.grad.numpy() for name, t in outputs.items() if t.grad is not None})
    rec.update({f"{name}.grad": p.grad.numpy() for name, p in model.named_parameters()})
    return rec


def torch_twin(ours: GPTModel) -> Any:
    """The seed's PyTorch model holding our weights, float64, eval mode."""
    import torch
    torch_gpt = pytest.importorskip("torch_gpt")

    theirs = torch_gpt.GPTModel(ours.cfg).double().eval()
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()}, strict=True)
    return theirs


def test_a_clean_pytorch_model_diagnoses_nothing() -> None:
    ours = tiny(tie_embeddings=False)
    theirs = torch_recording(torch_twin(ours), IDS, TARGETS)
    assert compare(reference.record(ours, IDS, TARGETS), theirs).ok
    assert bugs.diagnose(ours, IDS, TARGETS, theirs) == []


@pytest.mark.parametrize("name", ["ln_unbiased", "no_scale", "positions_from_1", "gelu_erf", "c_proj_not_transposed",
                                  "dropout_in_eval"])
def test_diagnose_names_a_bug_written_in_pytorch(name: str) -> None:
    ours = tiny(tie_embeddings=False, drop_rate=0.1 if name == "dropout_in_eval" else 0.0)
    theirs_model = torch_twin(ours)
    torch_bugs()[name](theirs_model)
    theirs = torch_recording(theirs_model, IDS, TARGETS)
    first = compare(reference.record(ours, IDS, TARGETS), theirs).first
    # PyTorch's hooks see modules only: an attention bug first shows in the attention's dropout output
    expected = "trf_blocks.0.att.dropout" if name == "no_scale" else bugs.BUGS[name].shows_at
    assert first is not None and first.name == expected
    assert [b.name for b in bugs.diagnose(ours, IDS, TARGETS, theirs)] == [name]


def test_diagnose_takes_the_first_divergence_when_known_and_ignores_a_later_backward_mistake() -> None:
    model = tiny()
    clean = reference.record(model, IDS, TARGETS)
    with bugs.inject(model, "gelu_erf"):
        theirs = dict(reference.record(model, IDS, TARGETS))
    theirs["tok_emb.weight.grad"] = theirs["tok_emb.weight.grad"] * 2  # a second mistake, in the backward
    row = compare(clean, theirs).first
    assert row.name == "trf_blocks.0.ff.layers.1"
    for first in (None, row, row.name):
        assert [b.name for b in bugs.diagnose(model, IDS, TARGETS, theirs, first=first)] == ["gelu_erf"]
    with pytest.raises(ValueError, match="'nope' is not a tensor of numpygpt's recording"):
        bugs.diagnose(model, IDS, TARGETS, theirs, first="nope")
