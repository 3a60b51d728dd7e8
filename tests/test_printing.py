"""`print(tensor)` prints what PyTorch prints: the values, their layout and the suffixes.

Two kinds of test: the seeds' printed outputs, rebuilt from the same values
with the same ops and checked as PyTorch 2.13 prints them (no torch needed;
the seed text lost its spaces when it was copied, so the expected strings are
PyTorch's own); and `repr` of many tensors and ops compared character for
character with torch's, under several print options (skipped without torch).
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

import numpy as np
import pytest

import numpygpt
import numpygpt.functional as F
from numpygpt import _printing
from numpygpt._printing import Size, get_printoptions, printoptions, set_printoptions


@pytest.fixture(autouse=True)
def default_printoptions():
    """Every test starts and ends with PyTorch's default options (torch's too, when installed)."""
    set_printoptions(profile="default")
    yield
    set_printoptions(profile="default")
    try:
        import torch
    except ImportError:
        return
    torch.set_printoptions(profile="default")


def t(data: Any, requires_grad: bool = False) -> numpygpt.Tensor:
    return numpygpt.tensor(np.asarray(data, dtype=np.float32), requires_grad=requires_grad)


# ----------------------------------------------------------------------------- the seeds' outputs


def test_seed_token_batch() -> None:
    batch = numpygpt.tensor([[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]])
    assert repr(batch) == ("tensor([[6109, 3626, 6100,  345],\n"
                           "        [6109, 1110, 6622,  257]])")
    assert str(batch) == repr(batch)


def test_seed_generated_ids() -> None:
    out = numpygpt.tensor([[15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267]])
    assert repr(out) == ("tensor([[15496,    11,   314,   716, 27018, 24086, 47843, 30961, 42348,  7267]])")


SEED_LOGIT_EDGES = [  # the seed's printed (2, 4, 50257) logits: 3 values at each end of each row
    [[-0.9289, 0.2748, -0.7557, -1.6070, 0.2702, -0.5888], [-0.4476, 0.1726, 0.5354, -0.3932, 1.5285, 0.8557],
     [0.5680, 1.6053, -0.2155, 1.1624, 0.1380, 0.7425], [0.0448, 2.4787, -0.8843, 1.3219, -0.0864, -0.5856]],
    [[-1.5474, -0.0542, -1.0571, -1.8061, -0.4494, -0.6747], [-0.8422, 0.8243, -0.1098, -0.1434, 0.2079, 1.2046],
     [0.1355, 1.1858, -0.1453, 0.0869, -0.1590, 0.1552], [0.1666, -0.8138, 0.2307, 2.5035, -0.3055, -0.3083]],
]


def test_seed_logits_are_summarised_with_unsafe_view() -> None:
    """The output head `nn.Linear(768, 50257, bias=False)` on a (2, 4, C) batch: 402,056 values, summarised.
    Rebuilt exactly: one-hot inputs pick a column of the weight, which holds the seed's values."""
    V, edges = 50257, np.array(SEED_LOGIT_EDGES, dtype=np.float32).reshape(8, 6)
    w = np.zeros((V, 8), dtype=np.float32)
    w[[0, 1, 2, V - 3, V - 2, V - 1], :] = edges.T
    x = t(np.eye(8).reshape(2, 4, 8), requires_grad=True)
    logits = F.linear(x, numpygpt.nn.Parameter(w))
    assert repr(logits.shape) == "torch.Size([2, 4, 50257])"
    assert repr(logits) == (
        "tensor([[[-0.9289,  0.2748, -0.7557,  ..., -1.6070,  0.2702, -0.5888],\n"
        "         [-0.4476,  0.1726,  0.5354,  ..., -0.3932,  1.5285,  0.8557],\n"
        "         [ 0.5680,  1.6053, -0.2155,  ...,  1.1624,  0.1380,  0.7425],\n"
        "         [ 0.0448,  2.4787, -0.8843,  ...,  1.3219, -0.0864, -0.5856]],\n"
        "\n"
        "        [[-1.5474, -0.0542, -1.0571,  ..., -1.8061, -0.4494, -0.6747],\n"
        "         [-0.8422,  0.8243, -0.1098,  ..., -0.1434,  0.2079,  1.2046],\n"
        "         [ 0.1355,  1.1858, -0.1453,  ...,  0.0869, -0.1590,  0.1552],\n"
        "         [ 0.1666, -0.8138,  0.2307,  ...,  2.5035, -0.3055, -0.3083]]],\n"
        "       grad_fn=<UnsafeViewBackward0>)")


def test_seed_relu_layer_then_mean_and_var() -> None:
    pre = t([[0.2260, 0.3470, -0.5, 0.2216, -0.1, -0.2], [0.2133, 0.2394, -0.3, 0.5198, 0.3297, -0.4]], True)
    out = pre.relu()
    assert str(out.shape) == "torch.Size([2, 6])"
    assert repr(out) == ("tensor([[0.2260, 0.3470, 0.0000, 0.2216, 0.0000, 0.0000],\n"
                         "        [0.2133, 0.2394, 0.0000, 0.5198, 0.3297, 0.0000]],\n"
                         "       grad_fn=<ReluBackward0>)")
    assert repr(out.mean(dim=-1, keepdim=True)) == ("tensor([[0.1324],\n"
                                                    "        [0.2170]], grad_fn=<MeanBackward1>)")
    assert repr(out.var(dim=-1, keepdim=True)) == ("tensor([[0.0231],\n"
                                                   "        [0.0398]], grad_fn=<VarBackward0>)")


def test_seed_normalized_outputs_and_sci_mode_off() -> None:
    x = t([[0.6159, 1.4126, -0.8719, 0.5872, -0.8719, -0.8719],
           [-0.0189, 0.1121, -1.0876, 1.5173, 0.5647, -1.0876]], True)
    out_norm = x / 1.0
    assert repr(out_norm) == ("tensor([[ 0.6159,  1.4126, -0.8719,  0.5872, -0.8719, -0.8719],\n"
                              "        [-0.0189,  0.1121, -1.0876,  1.5173,  0.5647, -1.0876]],\n"
                              "       grad_fn=<DivBackward0>)")
    mean = t([[2.9802e-08], [1.9868e-08]], True).mean(dim=-1, keepdim=True)
    var = t([[0.0, 1.4142135], [0.0, 1.4142134]], True).var(dim=-1, keepdim=True)
    assert repr(mean) == "tensor([[2.9802e-08],\n        [1.9868e-08]], grad_fn=<MeanBackward1>)"
    assert repr(var) == "tensor([[1.0000],\n        [1.0000]], grad_fn=<VarBackward0>)"
    set_printoptions(sci_mode=False)
    assert repr(mean) == "tensor([[0.0000],\n        [0.0000]], grad_fn=<MeanBackward1>)"
    assert repr(var) == "tensor([[1.0000],\n        [1.0000]], grad_fn=<VarBackward0>)"
    # the LayerNorm check: a mean that rounds to minus zero keeps its sign and widens the column
    ln_mean = t([[-2.9802e-08], [0.0]], True).mean(dim=-1, keepdim=True)
    assert repr(ln_mean) == "tensor([[-0.0000],\n        [ 0.0000]], grad_fn=<MeanBackward1>)"


def test_seed_shapes() -> None:
    assert str(numpygpt.zeros(2, 3, 768).shape) == "torch.Size([2, 3, 768])"
    assert f"Input shape: {numpygpt.zeros(2, 4, 768).shape}" == "Input shape: torch.Size([2, 4, 768])"


def test_seed_gradient_means_format_as_numbers() -> None:
    """`print(f"... {param.grad.abs().mean()}")`: a 0-d tensor formats as its Python number."""
    mean = t([0.0002017411752603948, 0.0002017411752603948]).abs().mean()
    assert _printing.tensor_format(mean, "") == "0.0002017411752603948"
    assert _printing.tensor_format(mean, ".3e") == "2.017e-04"
    assert _printing.tensor_format(t([1.0, 2.0]), "") == "tensor([1., 2.])"
    with pytest.raises(TypeError):
        _printing.tensor_format(t([1.0, 2.0]), ".3f")


# ----------------------------------------------------------------------------- layout, without torch


@pytest.mark.parametrize("data, expected", [
    (np.float32(3.0), "tensor(3.)"),
    (np.float32(2.5), "tensor(2.5000)"),
    (np.int64(7), "tensor(7)"),
    (np.array(True), "tensor(True)"),
    (np.zeros(0, np.float32), "tensor([])"),
    (np.zeros((0, 3), np.float32), "tensor([], size=(0, 3))"),
    (np.zeros(0, np.int64), "tensor([], dtype=torch.int64)"),
    (np.array([True, False]), "tensor([ True, False])"),
    (np.array([1.0, 2.0]), "tensor([1., 2.], dtype=torch.float64)"),
    (np.float32([np.nan, np.inf, -np.inf, 0.0, 1.25]), "tensor([   nan,    inf,   -inf, 0.0000, 1.2500])"),
    (np.float32([1e-5, 1.0]), "tensor([1.0000e-05, 1.0000e+00])"),
    (np.arange(2000), "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])"),
])
def test_repr_examples(data: np.ndarray, expected: str) -> None:
    assert repr(numpygpt.Tensor(data)) == expected


def test_leaf_and_result_suffixes() -> None:
    x = t([1.5, -2.0], requires_grad=True)
    assert repr(x) == "tensor([ 1.5000, -2.0000], requires_grad=True)"
    assert repr(x * 2.0) == "tensor([ 3., -4.], grad_fn=<MulBackward0>)"
    with numpygpt.no_grad():
        assert repr(x * 2.0) == "tensor([ 3., -4.])"
    assert repr(numpygpt.nn.Parameter(np.zeros(2, dtype=np.float32))) == (
        "Parameter containing:\ntensor([0., 0.], requires_grad=True)")


def test_grad_fn_name_survives_backward() -> None:
    x = t([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    m = x.mean(dim=-1)
    s = x.sum()
    (m.sum() + s).backward()
    assert "grad_fn=<MeanBackward1>" in repr(m) and "grad_fn=<SumBackward0>" in repr(s)


def test_set_printoptions_profiles_and_context() -> None:
    set_printoptions(precision=2, sci_mode=True)
    assert get_printoptions() == {"precision": 2, "threshold": 1000, "edgeitems": 3, "linewidth": 80, "sci_mode": True}
    set_printoptions(profile="short")  # sci_mode goes back to automatic, as in PyTorch
    assert get_printoptions() == {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80, "sci_mode": None}
    set_printoptions(profile="full")
    assert get_printoptions()["threshold"] == float("inf")
    set_printoptions(profile="default")
    with printoptions(threshold=5):
        assert repr(numpygpt.arange(10)) == "tensor([0, 1, 2,  ..., 7, 8, 9])"
    assert repr(numpygpt.arange(10)) == "tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])"
    with pytest.raises(ValueError, match="profile"):
        set_printoptions(profile="long")


def test_size() -> None:
    s = numpygpt.zeros(2, 4, 5).shape
    assert isinstance(s, Size) and isinstance(s, tuple) and s == (2, 4, 5)
    assert repr(s) == str(s) == "torch.Size([2, 4, 5])" and repr(Size()) == "torch.Size([])"
    assert s.numel() == 40 and Size().numel() == 1
    assert repr(s[1:]) == "torch.Size([4, 5])" and s[-1] == 5 and type(s[0]) is int
    assert isinstance(s + (1,), Size) and isinstance((1,) + s, Size) and isinstance(s * 2, Size)
    assert pickle.loads(pickle.dumps(s)) == s and type(pickle.loads(pickle.dumps(s))) is Size
    x = numpygpt.zeros(2, 3)
    assert isinstance(x.size(), Size) and x.size() == (2, 3) and x.size(-1) == 3 and type(x.size(0)) is int
    with pytest.raises(TypeError):
        Size([2.5])


# ----------------------------------------------------------------------------- against torch


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    f32 = np.float32
    return [
        np.array([1, 2, 3]), np.array([[1, -20], [300, 4]]), np.arange(2000), np.arange(24).reshape(2, 3, 4),
        rng.integers(-10**12, 10**12, (50, 30)), np.int32([1, 2]), np.uint8([255, 0]),
        f32([1.5, -2.0]), f32([1.0, 2.0, 3.0]), f32([-0.0, 1.0]), f32([1e-5, 1.0]), f32([1e9, 1.0]),
        f32([123456.0, 0.5]), f32([100000.0, 1.0]), f32([1e20, -1e-20]), f32([[2.9802e-08], [1.9868e-08]]),
        f32([np.nan, np.inf, -np.inf, 0.0, 1.25]), f32([np.nan, 0.0]), f32([np.inf, -2.0]),
        np.array(f32(3.0)), np.array(f32(2.5)), np.array(f32(1e-8)), np.array(np.int64(7)), np.array(True),
        np.zeros(0, f32), np.zeros((0, 3), f32), np.zeros((2, 0), np.int64), np.zeros(0, np.int64),
        np.zeros(0, np.float64), np.zeros((0,), bool),
        rng.standard_normal((2, 4, 50257)).astype(f32), rng.standard_normal((40, 40)).astype(f32),
        rng.standard_normal(1001).astype(f32), rng.standard_normal(100).astype(f32),
        rng.standard_normal((3, 4, 5, 6)).astype(f32) * 100, rng.standard_normal((10, 11, 12)).astype(f32),
        rng.standard_normal((5, 30)), np.exp(rng.standard_normal((4, 7)) * 10).astype(f32),
        np.array([True, False]), rng.random((30, 40)) > 0.5, np.float16([1.5, 2.25]),
        np.complex64([1 + 2j, -3.5 - 1j]), np.array(np.complex64(1.5)),
    ]


OPTIONS = [{}, {"sci_mode": False}, {"sci_mode": True}, {"precision": 2}, {"precision": 0}, {"threshold": 5},
           {"edgeitems": 1}, {"edgeitems": 0}, {"linewidth": 40}, {"profile": "short"}, {"profile": "full"}]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_repr_matches_torch(torch, options: dict[str, Any]) -> None:
    torch.set_printoptions(**options)
    set_printoptions(**options)
    for a in _arrays():
        if options.get("profile") == "full" and a.size > 5000:
            continue
        ours, theirs = numpygpt.Tensor(a), torch.from_numpy(a.copy())
        assert repr(ours) == repr(theirs), (a.dtype, a.shape)
        leaf = numpygpt.Tensor(a, requires_grad=a.dtype.kind == "f")
        assert repr(leaf) == repr(theirs.requires_grad_(a.dtype.kind == "f")), (a.dtype, a.shape)


def test_repr_with_float64_default_matches_torch(torch) -> None:
    before = torch.get_default_dtype()
    numpygpt.set_default_dtype(np.float64)
    torch.set_default_dtype(torch.float64)
    try:
        for a in (np.float32([1.5]), np.array([1.5]), np.zeros(0, np.float32), np.complex128([1j]), np.complex64([1j])):
            assert repr(numpygpt.Tensor(a)) == repr(torch.from_numpy(a.copy()))
    finally:
        numpygpt.set_default_dtype(np.float32)
        torch.set_default_dtype(before)


def _op_cases(torch) -> list[tuple[str, Callable[[Any, Any], Any], list[tuple[int, ...]]]]:
    """(name, f(lib, *tensors), input shapes): f runs the same code on numpygpt and on torch."""
    tF = torch.nn.functional

    def fn(lib: Any) -> Any:
        return F if lib is numpygpt else tF
    return [
        ("add", lambda lib, x, y: x + y, [(2, 3), (2, 3)]), ("sub", lambda lib, x, y: x - y, [(2, 3), (3,)]),
        ("mul", lambda lib, x: 2 * x, [(2, 3)]), ("div", lambda lib, x: x / 2, [(2, 3)]),
        ("neg", lambda lib, x: -x, [(4,)]), ("pow", lambda lib, x: x ** 3, [(2, 3)]),
        ("pow tensor", lambda lib, x, y: x.abs() ** y, [(3,), (3,)]),
        ("exp", lambda lib, x: x.exp(), [(2, 3)]), ("log", lambda lib, x: x.abs().log(), [(2, 3)]),
        ("sqrt", lambda lib, x: x.abs().sqrt(), [(2, 3)]), ("tanh", lambda lib, x: x.tanh(), [(2, 3)]),
        ("relu", lambda lib, x: x.relu(), [(2, 3)]), ("F.relu", lambda lib, x: fn(lib).relu(x), [(2, 3)]),
        ("double", lambda lib, x: x.double(), [(2, 3)]),
        ("softmax", lambda lib, x: x.softmax(dim=-1), [(2, 3)]),
        ("log_softmax", lambda lib, x: x.log_softmax(dim=-1), [(2, 3)]),
        ("sum", lambda lib, x: x.sum(), [(2, 3)]), ("sum dim", lambda lib, x: x.sum(dim=-1), [(2, 3)]),
        ("mean", lambda lib, x: x.mean(), [(2, 3)]), ("mean dim", lambda lib, x: x.mean(dim=-1, keepdim=True), [(2, 3)]),
        ("var", lambda lib, x: x.var(dim=-1, keepdim=True), [(2, 3)]),
        ("var biased", lambda lib, x: x.var(dim=-1, keepdim=True, unbiased=False), [(2, 3)]),
        ("max", lambda lib, x: x.max(), [(2, 3)]), ("max dim", lambda lib, x: x.max(dim=-1)[0], [(2, 3)]),
        ("matmul", lambda lib, x, y: x @ y, [(2, 3), (3, 4)]), ("bmm", lambda lib, x, y: x @ y, [(2, 2, 3), (2, 3, 4)]),
        ("3d@2d", lambda lib, x, y: x @ y, [(2, 2, 3), (3, 4)]), ("mv", lambda lib, x, y: x @ y, [(2, 3), (3,)]),
        ("dot", lambda lib, x, y: x @ y, [(3,), (3,)]),
        ("view", lambda lib, x: x.view(3, 2, 4), [(2, 3, 4)]), ("reshape", lambda lib, x: x.reshape(-1), [(2, 3)]),
        ("flatten", lambda lib, x: x.flatten(), [(2, 3)]), ("unsqueeze", lambda lib, x: x.unsqueeze(0), [(2, 3)]),
        ("squeeze dim", lambda lib, x: x.squeeze(1), [(2, 1, 3)]), ("squeeze", lambda lib, x: x.squeeze(), [(1, 2, 1, 3)]),
        ("transpose", lambda lib, x: x.transpose(1, 2), [(2, 3, 4)]),
        ("permute", lambda lib, x: x.permute(2, 0, 1), [(2, 3, 4)]),
        ("contiguous", lambda lib, x: x.transpose(0, 1).contiguous(), [(2, 3)]),
        ("expand", lambda lib, x: x.expand(2, 3, 4), [(3, 1)]),
        ("select", lambda lib, x: x[:, -1, :], [(2, 3, 4)]), ("slice", lambda lib, x: x[:, :2], [(2, 3, 4)]),
        ("index", lambda lib, x: x[[0, 1]], [(3, 4)]), ("mask index", lambda lib, x: x[x > 0], [(3, 4)]),
        ("new axis", lambda lib, x: x[None], [(3, 4)]),
        ("masked_fill", lambda lib, x: x.masked_fill(x > 0, 0.0), [(3, 4)]),
        ("cat", lambda lib, x, y: lib.cat([x, y], dim=0), [(2, 3), (1, 3)]),
        ("stack", lambda lib, x, y: lib.stack([x, y]), [(2, 3), (2, 3)]),
        ("where", lambda lib, x, y: lib.where(x > 0, x, y), [(2, 3), (2, 3)]),
        ("linear 2d", lambda lib, x, w, b: fn(lib).linear(x, w, b), [(2, 3), (4, 3), (4,)]),
        ("linear 3d", lambda lib, x, w, b: fn(lib).linear(x, w, b), [(2, 2, 3), (4, 3), (4,)]),
        ("linear 3d no bias", lambda lib, x, w: fn(lib).linear(x, w), [(2, 2, 3), (4, 3)]),
        ("linear 2d no bias", lambda lib, x, w: fn(lib).linear(x, w), [(2, 3), (4, 3)]),
        ("layer_norm", lambda lib, x: fn(lib).layer_norm(x, (3,)), [(2, 3)]),
        ("gelu", lambda lib, x: fn(lib).gelu(x), [(2, 3)]),
        ("gelu tanh", lambda lib, x: fn(lib).gelu(x, approximate="tanh"), [(2, 3)]),
        ("cross_entropy", lambda lib, x: fn(lib).cross_entropy(x, lib.tensor([0, 2])), [(2, 3)]),
    ]


def test_grad_fn_repr_matches_torch(torch) -> None:
    """Results of the ops the seeds use print with torch's values and torch's grad_fn names."""
    rng = np.random.default_rng(1)
    for name, f, shapes in _op_cases(torch):
        arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        ours = f(numpygpt, *[numpygpt.tensor(a, requires_grad=True) for a in arrays])
        theirs = f(torch, *[torch.tensor(a, requires_grad=True) for a in arrays])
        assert repr(ours) == repr(theirs), name


def test_embedding_and_dropout_grad_fn_match_torch(torch) -> None:
    w = np.arange(12, dtype=np.float32).reshape(4, 3)
    ours = F.embedding(numpygpt.tensor([1, 3]), numpygpt.nn.Parameter(w.copy()))
    theirs = torch.nn.functional.embedding(torch.tensor([1, 3]), torch.nn.Parameter(torch.from_numpy(w)))
    assert repr(ours) == repr(theirs)
    x = numpygpt.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    assert _printing.grad_fn_name(F.dropout(x, 0.5)) == type(
        torch.nn.functional.dropout(torch.ones(2, 3, requires_grad=True), 0.5).grad_fn).__name__
