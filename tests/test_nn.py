"""Tests for numpygpt.nn: Module bookkeeping, state_dict, initialisation, and parity
with torch.nn layers after copying weights through state_dict.

The bookkeeping tests need no PyTorch; the ones comparing with it skip cleanly
without it (`pytest.importorskip` inside the test or fixture).
"""

from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np
import pytest

import numpygpt
from numpygpt import nn
from conftest import rel_err

TOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]


@pytest.fixture
def torch() -> Any:
    return pytest.importorskip("torch")


# ----------------------------------------------------------------------------- a small tree of modules


class Block(nn.Module):
    """Own parameters, buffers (persistent, non-persistent, integer) and children, interleaved."""

    def __init__(self, dim: int = 3):
        super().__init__()
        self.register_buffer("running", np.zeros(dim, dtype=np.float32))
        self.proj = nn.Linear(dim, dim)
        self.scale = nn.Parameter(np.ones(dim, dtype=np.float32))
        self.register_buffer("mask", np.triu(np.ones((dim, dim), dtype=np.float32)), persistent=False)
        self.norm = nn.LayerNorm(dim)
        self.register_buffer("steps", np.zeros((), dtype=np.int64))
        self.label = "a plain attribute"

    def forward(self, x: numpygpt.Tensor) -> numpygpt.Tensor:
        return self.norm(self.proj(x) * self.scale)


class Net(nn.Module):
    def __init__(self, dim: int = 3):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim), Block(dim)])
        self.gain = nn.Parameter(np.ones(1, dtype=np.float32))
        self.head = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(approximate="tanh"), nn.Dropout(0.5), nn.Linear(2 * dim, dim))

    def forward(self, x: numpygpt.Tensor) -> numpygpt.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x) * self.gain


NET_PARAMETERS = [
    "gain",
    "blocks.0.scale", "blocks.0.proj.weight", "blocks.0.proj.bias", "blocks.0.norm.weight", "blocks.0.norm.bias",
    "blocks.1.scale", "blocks.1.proj.weight", "blocks.1.proj.bias", "blocks.1.norm.weight", "blocks.1.norm.bias",
    "head.0.weight", "head.0.bias", "head.3.weight", "head.3.bias",
]


def _torch_net(torch: Any, dim: int = 3) -> Any:
    """The same tree in torch.nn, registered in the same order."""
    tnn = torch.nn

    class TBlock(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("running", torch.zeros(dim))
            self.proj = tnn.Linear(dim, dim)
            self.scale = tnn.Parameter(torch.ones(dim))
            self.register_buffer("mask", torch.triu(torch.ones(dim, dim)), persistent=False)
            self.norm = tnn.LayerNorm(dim)
            self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    class TNet(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = tnn.ModuleList([TBlock(), TBlock()])
            self.gain = tnn.Parameter(torch.ones(1))
            self.head = tnn.Sequential(tnn.Linear(dim, 2 * dim), tnn.GELU(approximate="tanh"), tnn.Dropout(0.5),
                                       tnn.Linear(2 * dim, dim))

    return TNet()


def _snapshot(module: nn.Module) -> dict[str, np.ndarray]:
    """Copies of every parameter and buffer (persistent or not)."""
    out = {name: p.data.copy() for name, p in module.named_parameters()}
    out.update({f"buffer:{name}": np.array(b, copy=True) for name, b in module.named_buffers()})
    return out


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- registration


def test_attribute_assignment_registers_parameters_children_and_buffers() -> None:
    b = Block()
    assert [name for name, _ in b.named_parameters()] == [
        "scale", "proj.weight", "proj.bias", "norm.weight", "norm.bias"]
    assert list(b.children()) == [b.proj, b.norm]
    assert [name for name, _ in b.named_children()] == ["proj", "norm"]
    assert list(b.modules()) == [b, b.proj, b.norm]
    assert [name for name, _ in b.named_buffers()] == ["running", "mask", "steps"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in b.parameters())
    assert b.label == "a plain attribute"
    assert "label" not in dict(b.named_parameters()) and "label" not in b.state_dict()
    assert isinstance(b.running, numpygpt.Tensor) and b.steps.dtype == np.int64  # buffers are Tensors, as PyTorch's


def test_named_parameters_and_modules_of_a_tree() -> None:
    net = Net()
    assert [name for name, _ in net.named_parameters()] == NET_PARAMETERS
    assert len(list(net.parameters())) == len(NET_PARAMETERS)
    assert [name for name, _ in net.named_modules()] == [
        "", "blocks", "blocks.0", "blocks.0.proj", "blocks.0.norm", "blocks.1", "blocks.1.proj", "blocks.1.norm",
        "head", "head.0", "head.1", "head.2", "head.3"]
    assert [name for name, _ in net.named_parameters(recurse=False)] == ["gain"]


def test_named_parameters_match_torch(torch: Any) -> None:
    assert [name for name, _ in _torch_net(torch).named_parameters()] == NET_PARAMETERS
    assert [name for name, _ in _torch_net(torch).named_modules()] == [name for name, _ in Net().named_modules()]


def test_reassignment_and_deletion() -> None:
    m = nn.Module()
    m.w = 3.0                                   # a plain attribute first ...
    p = nn.Parameter(np.ones(2))
    m.w = p                                     # ... then a parameter of the same name
    assert m.w is p and [name for name, _ in m.named_parameters()] == ["w"]
    m.w = nn.Linear(2, 2)                       # a parameter replaced by a module
    assert isinstance(m.w, nn.Linear)
    assert [name for name, _ in m.named_parameters()] == ["w.weight", "w.bias"]
    m.w = "plain"                               # and by a plain value again
    assert m.w == "plain" and list(m.parameters()) == [] and list(m.children()) == []
    m.child = nn.Linear(2, 2)
    del m.child
    assert list(m.children()) == [] and not hasattr(m, "child")
    m.register_buffer("buf", np.zeros(2))
    m.buf = np.ones(2)                          # assigning to a buffer name updates the buffer
    assert np.array_equal(m.buf, np.ones(2)) and "buf" in m.state_dict()


def test_plain_attribute_then_buffer() -> None:
    m = nn.Module()
    m.stats = 1
    m.register_buffer("stats", np.arange(3))
    assert np.array_equal(m.stats, np.arange(3)) and list(m.state_dict()) == ["stats"]


def test_module_needs_super_init() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            self.w = nn.Parameter(np.ones(1))

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_tied_parameters_counted_once() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.out = nn.Linear(4, 10, bias=False)
            self.out.weight = self.emb.weight

    m = Tied()
    assert [name for name, _ in m.named_parameters()] == ["emb.weight"]
    assert m.num_parameters() == 40
    assert list(m.state_dict()) == ["emb.weight", "out.weight"]  # the state_dict lists every name, as torch
    logits = m.out(m.emb(np.array([1, 2, 2])))
    logits.sum().backward()
    assert m.emb.weight.grad.shape == (10, 4)  # both uses flow into one gradient


# ----------------------------------------------------------------------------- containers


def test_sequential_naming_indexing_and_order() -> None:
    seq = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    assert [name for name, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(seq) == 3 and isinstance(seq[1], nn.GELU) and seq[-1] is list(seq)[2]

    class WithLayers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = seq

    assert list(WithLayers().state_dict()) == ["layers.0.weight", "layers.0.bias", "layers.2.weight",
                                               "layers.2.bias"]
    x = numpygpt.randn(5, 4)
    expected = seq[2](seq[1](seq[0](x)))
    assert np.array_equal(seq(x).data, expected.data)


def test_module_list_naming_and_list_behaviour() -> None:
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])
    ml.append(nn.LayerNorm(2))
    ml.extend([nn.Linear(2, 3)])
    assert len(ml) == 4 and isinstance(ml[2], nn.LayerNorm) and ml[-1].out_features == 3
    assert [type(m).__name__ for m in ml] == ["Linear", "Linear", "LayerNorm", "Linear"]
    assert [name for name, _ in ml.named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias", "3.weight", "3.bias"]


# ----------------------------------------------------------------------------- modes and gradients


def test_train_eval_propagate_and_dropout_follows() -> None:
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    drop = net.head[2]
    x = numpygpt.tensor(np.ones((20, 50), dtype=np.float32))
    assert np.array_equal(drop(x).data, x.data)
    assert net.train() is net and all(m.training for m in net.modules())
    y = drop(x).data
    assert np.any(y == 0) and np.allclose(y[y != 0], 2.0)
    net.train(False)
    assert not any(m.training for m in net.modules())
    numpygpt.manual_seed(0)
    x3 = numpygpt.tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    assert np.array_equal(net(x3).data, net(x3).data)  # eval: deterministic


def test_zero_grad() -> None:
    net = Net().eval()
    x = numpygpt.tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    net(x).sum().backward()
    first = {name: p.grad.numpy().copy() for name, p in net.named_parameters()}
    assert all(g is not None for g in first.values())
    net(x).sum().backward()  # gradients accumulate until zeroed
    for name, p in net.named_parameters():
        assert np.allclose(p.grad, 2 * first[name], rtol=1e-6, atol=1e-7)
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


# ----------------------------------------------------------------------------- state_dict


def test_state_dict_order_equals_torch(torch: Any) -> None:
    """Own parameters, then own persistent buffers, then each child; non-persistent buffers left out."""
    ours, theirs = Net().state_dict(), _torch_net(torch).state_dict()
    assert list(ours) == list(theirs)
    assert list(ours)[:8] == ["gain", "blocks.0.scale", "blocks.0.running", "blocks.0.steps",
                              "blocks.0.proj.weight", "blocks.0.proj.bias", "blocks.0.norm.weight",
                              "blocks.0.norm.bias"]
    assert not any(k.endswith("mask") for k in ours)
    for k in ours:
        assert ours[k].shape == tuple(theirs[k].shape), k


def test_state_dict_round_trip_with_torch(torch: Any) -> None:
    tnet, net = _torch_net(torch), Net()
    net.load_state_dict(tnet.state_dict())  # torch tensors directly
    for k, v in tnet.state_dict().items():
        assert np.array_equal(net.state_dict()[k], v.numpy()), k
    net2 = Net()
    tnet.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in net2.state_dict().items()})  # and back
    for k, v in tnet.state_dict().items():
        assert np.array_equal(net2.state_dict()[k], v.numpy()), k


def _fresh_state(net: nn.Module) -> dict[str, np.ndarray]:
    """A state_dict whose every value differs from `net`'s, so a partial load would show."""
    return {k: (v + 1).astype(v.dtype) for k, v in net.state_dict().items()}


def test_load_state_dict_missing_key() -> None:
    net = Net()
    before = _snapshot(net)
    sd = _fresh_state(net)
    del sd["blocks.1.proj.weight"], sd["gain"]
    with pytest.raises(ValueError, match="missing") as e:
        net.load_state_dict(sd)
    assert "blocks.1.proj.weight" in str(e.value) and "gain" in str(e.value)
    assert _same(before, _snapshot(net))


def test_load_state_dict_unexpected_key() -> None:
    net = Net()
    before = _snapshot(net)
    sd = _fresh_state(net)
    sd["head.7.weight"] = np.zeros((3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"unexpected.*head\.7\.weight"):
        net.load_state_dict(sd)
    assert _same(before, _snapshot(net))


def test_load_state_dict_misshapen_key() -> None:
    net = Net()
    before = _snapshot(net)
    sd = _fresh_state(net)
    sd["head.0.weight"] = np.zeros((3, 6), dtype=np.float32)  # transposed: (out, in) is (6, 3)
    for strict in (True, False):  # a wrong shape is an error even when not strict, as in torch
        with pytest.raises(ValueError, match=re.escape("head.0.weight")) as e:
            net.load_state_dict(sd, strict=strict)
        assert "(3, 6)" in str(e.value) and "(6, 3)" in str(e.value)
        assert _same(before, _snapshot(net))


def test_load_state_dict_names_every_problem_at_once() -> None:
    net = Net()
    sd = _fresh_state(net)
    del sd["gain"]
    sd["bogus"] = np.zeros(1)
    sd["blocks.0.scale"] = np.zeros(4, dtype=np.float32)
    with pytest.raises(ValueError) as e:
        net.load_state_dict(sd)
    for key in ("gain", "bogus", "blocks.0.scale"):
        assert key in str(e.value)


def test_load_state_dict_not_strict_returns_missing_and_unexpected() -> None:
    net = Net()
    sd = _fresh_state(net)
    del sd["blocks.0.norm.bias"]
    sd["extra"] = np.zeros(2)
    result = net.load_state_dict(sd, strict=False)
    missing, unexpected = result
    assert missing == result.missing_keys == ["blocks.0.norm.bias"]
    assert unexpected == result.unexpected_keys == ["extra"]
    state = net.state_dict()
    for k, v in sd.items():
        if k in state:
            assert np.array_equal(state[k], v), k  # everything present was loaded
    assert net.load_state_dict(net.state_dict()) == ([], [])


def test_load_state_dict_rejects_non_mappings() -> None:
    with pytest.raises(TypeError, match="mapping"):
        Net().load_state_dict([("gain", np.ones(1))])


def test_loading_casts_to_the_module_dtype(torch: Any) -> None:
    net = Net()  # float32
    source64 = {k: v.astype(np.float64) + 0.1 if v.dtype.kind == "f" else v
                for k, v in net.state_dict().items()}
    net.load_state_dict(source64)
    for k, v in net.state_dict().items():
        assert v.dtype == (np.float32 if source64[k].dtype.kind == "f" else np.int64), k
        assert np.array_equal(v, source64[k].astype(v.dtype)), k
    source64["gain"][...] = 99.0  # loading copied: the source is not shared
    assert net.gain.data[0] != 99.0

    tnet = _torch_net(torch).double()
    net.load_state_dict(tnet.state_dict())  # torch float64 tensors into float32
    assert net.blocks[0].proj.weight.dtype == np.float32
    assert np.array_equal(net.blocks[0].proj.weight.data, tnet.blocks[0].proj.weight.detach().numpy().astype(np.float32))


def test_to_float64_converts_parameters_and_float_buffers() -> None:
    net = Net()
    net.eval()(numpygpt.randn(2, 3)).sum().backward()
    assert net.to(np.float64) is net
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in net.parameters())
    b = net.blocks[0]
    assert b.running.dtype == np.float64 and b.mask.dtype == np.float64  # persistent or not
    assert b.steps.dtype == np.int64  # integer buffers keep their type
    x = numpygpt.tensor(np.random.default_rng(0).standard_normal((2, 3)))
    assert net(x).dtype == np.float64
    assert all(v.dtype == np.float64 for k, v in net.state_dict().items() if not k.endswith("steps"))
    net.to(np.float32)
    assert all(p.dtype == np.float32 for p in net.parameters()) and b.mask.dtype == np.float32
    with pytest.raises(TypeError, match="floating"):
        net.to(np.int32)


def test_repr_is_readable() -> None:
    text = repr(Net())
    for piece in ("Net(", "(blocks): ModuleList(", "(0): Block(", "(proj): Linear(in_features=3, out_features=3, bias=True)",
                  "(norm): LayerNorm(", "(head): Sequential(", "GELU(", "Dropout(p=0.5)",
                  "Linear(in_features=3, out_features=6, bias=True)"):
        assert piece in text, piece
    head = Net().head
    assert f"{head.num_parameters():,} parameters" in text  # 3*6+6 + 6*3+3 = 45
    assert head.num_parameters() == 45
    big = nn.Sequential(nn.Linear(1000, 1000))

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = big

    assert "1,001,000 parameters" in repr(Wrap())


# ----------------------------------------------------------------------------- Linear and Embedding


def test_linear_shapes_and_bias_option() -> None:
    lin = nn.Linear(5, 7)
    assert lin.weight.shape == (7, 5) and lin.bias.shape == (7,)
    assert lin.weight.dtype == np.float32
    assert lin(numpygpt.randn(2, 3, 5)).shape == (2, 3, 7)
    nobias = nn.Linear(5, 7, bias=False)
    assert nobias.bias is None
    assert list(nobias.state_dict()) == ["weight"] and [n for n, _ in nobias.named_parameters()] == ["weight"]
    with pytest.raises(ValueError, match="linear"):
        lin(numpygpt.randn(2, 4))


def test_linear_init_is_uniform_within_the_bound() -> None:
    numpygpt.manual_seed(0)
    n_in = 64
    lin = nn.Linear(n_in, 4096)
    bound = 1 / np.sqrt(n_in)
    w, b = lin.weight.data.astype(np.float64), lin.bias.data.astype(np.float64)
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    # U(-a, a) has std a/√3 = 1/√(3·in); for 262,144 draws the sample std is within 0.2% of it
    assert abs(w.std() / np.sqrt(1 / (3 * n_in)) - 1) <= 0.02
    assert abs(w.mean()) <= 0.01 * bound
    assert abs(b.std() / np.sqrt(1 / (3 * n_in)) - 1) <= 0.06
    # roughly uniform: ten equal bins get about a tenth each (normal init would not)
    counts, _ = np.histogram(w, bins=10, range=(-bound, bound))
    assert np.all(np.abs(counts / w.size - 0.1) <= 0.005)
    assert w.min() < -0.99 * bound and w.max() > 0.99 * bound


def test_embedding_init_is_standard_normal() -> None:
    numpygpt.manual_seed(0)
    emb = nn.Embedding(2000, 128)
    w = emb.weight.data.astype(np.float64)
    assert emb.weight.shape == (2000, 128) and emb.weight.dtype == np.float32
    assert abs(w.mean()) <= 0.01 and abs(w.std() - 1) <= 0.01
    assert abs(np.mean(np.abs(w) <= 1) - 0.6827) <= 0.005  # normal, not uniform


def test_init_is_reproducible_with_manual_seed() -> None:
    numpygpt.manual_seed(5)
    a = nn.Linear(4, 4).weight.data.copy()
    numpygpt.manual_seed(5)
    assert np.array_equal(a, nn.Linear(4, 4).weight.data)
    assert not np.array_equal(a, nn.Linear(4, 4).weight.data)


def test_set_default_dtype_makes_float64_layers() -> None:
    numpygpt.set_default_dtype(np.float64)
    assert nn.Linear(2, 3).weight.dtype == np.float64
    assert nn.Embedding(4, 2).weight.dtype == np.float64
    assert nn.LayerNorm(2).bias.dtype == np.float64


# ----------------------------------------------------------------------------- parity with torch.nn


def _parity(torch: Any, ours: nn.Module, theirs: Any, x: np.ndarray, dtype: Any,
            loss: Callable[[Any], Any] | None = None) -> None:
    """Copy `theirs`'s weights into `ours` through state_dict, then compare the outputs,
    the gradients of every parameter (by name) and, for float inputs, of the input."""
    dtype = np.dtype(dtype)
    tol = TOL[dtype]
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    ours.to(dtype)
    result = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert result == ([], [])
    float_input = x.dtype.kind == "f"
    xs = numpygpt.tensor(x.astype(dtype), requires_grad=True) if float_input else x
    xt = torch.tensor(x.astype(dtype), requires_grad=True) if float_input else torch.from_numpy(x)

    out, ref = ours(xs), theirs(xt)
    assert out.dtype == dtype and out.shape == tuple(ref.shape)
    assert rel_err(out.data, ref.detach().numpy()) <= tol
    g = np.random.default_rng(0).standard_normal(out.shape).astype(dtype)
    out.backward(g)
    ref.backward(torch.from_numpy(g))
    ours_grads = {name: p.grad for name, p in ours.named_parameters()}
    their_grads = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    assert ours_grads.keys() == their_grads.keys()
    for name, grad in ours_grads.items():
        assert grad is not None and grad.dtype == dtype, name
        err = rel_err(grad, their_grads[name])
        assert err <= tol, f"{name}: rel err {err:.3g}"
    if float_input:
        assert rel_err(xs.grad, xt.grad.numpy()) <= tol


def _randomise(torch: Any, module: Any) -> Any:
    """Non-trivial values for every torch parameter (LayerNorm starts at ones and zeros)."""
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-1.0, 1.0)
    return module


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_parity(torch: Any, dtype: Any, bias: bool) -> None:
    torch.manual_seed(0)
    x = np.random.default_rng(1).standard_normal((2, 5, 8))
    _parity(torch, nn.Linear(8, 6, bias=bias), torch.nn.Linear(8, 6, bias=bias), x, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_parity(torch: Any, dtype: Any) -> None:
    torch.manual_seed(0)
    x = np.random.default_rng(1).standard_normal((3, 4, 16)) * 2 + 1
    _parity(torch, nn.LayerNorm(16), _randomise(torch, torch.nn.LayerNorm(16)), x, dtype)
    _parity(torch, nn.LayerNorm((4, 16)), _randomise(torch, torch.nn.LayerNorm((4, 16))), x, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_parity(torch: Any, dtype: Any) -> None:
    torch.manual_seed(0)
    ids = np.random.default_rng(1).integers(0, 10, size=(3, 7))  # repeated ids accumulate
    _parity(torch, nn.Embedding(10, 5), torch.nn.Embedding(10, 5), ids, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_feed_forward_sequential_parity(torch: Any, dtype: Any) -> None:
    """The seed's FeedForward shape: Linear, tanh-GELU, Linear."""
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Linear(8, 32), nn.GELU(approximate="tanh"), nn.Linear(32, 8))
    theirs = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.GELU(approximate="tanh"), torch.nn.Linear(32, 8))
    x = np.random.default_rng(1).standard_normal((2, 3, 8))
    _parity(torch, ours, theirs, x, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_loss_parity(torch: Any, dtype: Any) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 5)).astype(dtype), rng.standard_normal((4, 5)).astype(dtype)
    for reduction in ("mean", "sum", "none"):
        xs = numpygpt.tensor(x, requires_grad=True)
        xt = torch.tensor(x, requires_grad=True)
        out = nn.MSELoss(reduction)(xs, y)
        ref = torch.nn.MSELoss(reduction=reduction)(xt, torch.from_numpy(y))
        assert out.dtype == dtype and out.shape == tuple(ref.shape)
        assert rel_err(out.data, ref.detach().numpy()) <= TOL[np.dtype(dtype)]
        g = rng.standard_normal(out.shape).astype(dtype)
        out.backward(g)
        ref.backward(torch.from_numpy(g))
        assert rel_err(xs.grad, xt.grad.numpy()) <= TOL[np.dtype(dtype)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_whole_tree_parity(torch: Any, dtype: Any) -> None:
    """The Block/Net tree above, in eval mode, against its torch twin."""
    torch.manual_seed(0)
    theirs = _randomise(torch, _torch_net(torch, dim=6)).eval()

    class TorchForward(torch.nn.Module):  # torch's Net has no forward of its own
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any) -> Any:
            for block in self.net.blocks:
                x = block.norm(block.proj(x) * block.scale)
            return self.net.head(x) * self.net.gain

    class OursWrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = Net(dim=6).eval()

        def forward(self, x: numpygpt.Tensor) -> numpygpt.Tensor:
            return self.net(x)

    x = np.random.default_rng(1).standard_normal((2, 4, 6))
    _parity(torch, OursWrapped(), TorchForward(theirs), x, dtype)


@pytest.mark.parametrize("make, message", [
    (lambda: nn.Linear(-1, 3), "Linear: in_features"),
    (lambda: nn.Linear(2.5, 3), "Linear: in_features"),
    (lambda: nn.Embedding(0, 3), "Embedding: num_embeddings"),
    (lambda: nn.LayerNorm(-2), "LayerNorm: normalized_shape"),
])
def test_layer_sizes_are_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()
