"""The nn and functional names a learner reaches for: Module.apply, named_modules,
ModuleDict, Identity, Softmax, Tanh, Sigmoid; nn.init; F.nll_loss, F.one_hot, F.pad,
F.scaled_dot_product_attention and cross_entropy's label smoothing and
class-probability targets.

Three kinds of test: finite differences in float64 over hypothesis-drawn shapes,
parity with PyTorch (values and gradients, float32 and float64; nn.init's numbers
after the same seed), and bookkeeping against torch.nn's names. The PyTorch ones
skip cleanly without it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpygpt
import numpygpt.nn.functional as F
from numpygpt import gradcheck, nn
from conftest import arrays, leaf, rel_err, seeds, shapes

TOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]


@pytest.fixture
def torch() -> Any:
    return pytest.importorskip("torch")


def ulps(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest difference in units of the last place of `theirs`' dtype."""
    spacing = np.spacing(np.abs(theirs).astype(theirs.dtype)).astype(np.float64)
    return float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)) / spacing, initial=0))


def _compare(torch: Any, ours: numpygpt.Tensor, theirs: Any, our_leaves: list, their_leaves: list,
             dtype: Any) -> None:
    """Values, then the gradients of Σ w ⊙ out (w the same fixed random weights), leaf by leaf."""
    tol = TOL[np.dtype(dtype)]
    assert ours.dtype == np.dtype(dtype)
    assert rel_err(ours.data, theirs.detach().numpy()) <= tol
    w = np.random.default_rng(0).standard_normal(ours.shape).astype(dtype)
    (ours * numpygpt.tensor(w)).sum().backward()
    (theirs * torch.from_numpy(w)).sum().backward()
    for a, b in zip(our_leaves, their_leaves):
        assert rel_err(a.grad, b.grad.numpy()) <= tol


def _pair(torch: Any, array: np.ndarray, dtype: Any) -> tuple[numpygpt.Tensor, Any]:
    array = np.asarray(array, dtype=dtype)
    return leaf(array), torch.tensor(array, requires_grad=True)


# ----------------------------------------------------------------------------- the module tree


class Tree(nn.Module):
    """A shared child, a ModuleDict, an Identity and activations, registered in a known order."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(3, 3)
        self.heads = nn.ModuleDict({"tanh": nn.Sequential(self.shared, nn.Tanh()), "sig": nn.Sigmoid()})
        self.skip = nn.Identity(54, unused=True)
        self.out = nn.Softmax(dim=-1)


def _torch_tree(torch: Any) -> Any:
    tnn = torch.nn

    class Tree(tnn.Module):  # the same class name, so type names compare
        def __init__(self) -> None:
            super().__init__()
            self.shared = tnn.Linear(3, 3)
            self.heads = tnn.ModuleDict({"tanh": tnn.Sequential(self.shared, tnn.Tanh()), "sig": tnn.Sigmoid()})
            self.skip = tnn.Identity(54, unused=True)
            self.out = tnn.Softmax(dim=-1)

    return Tree()


def test_named_modules_and_state_dict_keys_match_torch(torch) -> None:
    ours, theirs = Tree(), _torch_tree(torch)
    for kwargs in ({}, {"prefix": "model"}, {"remove_duplicate": False}):
        assert [n for n, _ in ours.named_modules(**kwargs)] == [n for n, _ in theirs.named_modules(**kwargs)]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [type(m).__name__ for m in ours.modules()] == [type(m).__name__ for m in theirs.modules()]


def test_named_modules_memo_skips_what_was_seen() -> None:
    tree = Tree()
    memo: set[int] = set()
    first = [n for n, _ in tree.heads.named_modules(memo)]
    assert first == ["", "tanh", "tanh.0", "tanh.1", "sig"]
    assert [n for n, _ in tree.named_modules(memo)] == ["", "skip", "out"]   # the heads were seen


def test_modules_are_named_modules_without_the_names() -> None:
    tree = Tree()                                              # a shared Linear: listed once
    assert [id(m) for m in tree.modules()] == [id(m) for _, m in tree.named_modules()]
    ring = nn.Sequential(nn.ReLU())
    ring.add_module("back", ring)                              # a module that contains itself
    assert list(ring.modules()) == [ring, ring[0]]


def test_apply_visits_children_before_parents_as_torch(torch) -> None:
    ours, theirs = Tree(), _torch_tree(torch)
    seen: list[str] = []
    assert ours.apply(lambda m: seen.append(type(m).__name__)) is ours
    expected: list[str] = []
    theirs.apply(lambda m: expected.append(type(m).__name__))
    assert seen == expected          # the shared Linear twice, as in PyTorch


def test_apply_initialises_weights() -> None:
    def init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)
            nn.init.zeros_(m.bias)

    tree = Tree().apply(init_weights)
    assert np.all(tree.shared.weight.data == 0.5) and np.all(tree.heads["tanh"][0].bias.data == 0)


def test_reprs_match_torch(torch) -> None:
    for ours, theirs in [(nn.Identity(), torch.nn.Identity()), (nn.Tanh(), torch.nn.Tanh()),
                         (nn.Sigmoid(), torch.nn.Sigmoid()), (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
                         (nn.LogSoftmax(dim=-1), torch.nn.LogSoftmax(dim=-1)),
                         (nn.ModuleDict({"a": nn.Tanh()}), torch.nn.ModuleDict({"a": torch.nn.Tanh()}))]:
        assert repr(ours) == repr(theirs)


def test_module_dict_behaves_as_a_dict() -> None:
    d = nn.ModuleDict([("b", nn.Linear(2, 2)), ("a", nn.Tanh())])
    assert list(d) == ["b", "a"] and list(d.keys()) == ["b", "a"] and len(d) == 2 and "a" in d
    assert d.b is d["b"] and list(d.state_dict()) == ["b.weight", "b.bias"]
    d["c"] = nn.Linear(2, 1)
    d.update({"a": nn.Sigmoid()})                      # replaces, keeps its place
    assert [type(m).__name__ for m in d.values()] == ["Linear", "Sigmoid", "Linear"]
    assert isinstance(d.pop("b"), nn.Linear) and list(d) == ["a", "c"]
    del d["a"]
    assert [k for k, _ in d.items()] == ["c"] and list(d.state_dict()) == ["c.weight", "c.bias"]
    d.clear()
    assert len(d) == 0 and d.num_parameters() == 0


@pytest.mark.parametrize("make, error", [
    (lambda: nn.ModuleDict({"a.b": nn.Identity()}), KeyError),
    (lambda: nn.ModuleDict({"": nn.Identity()}), KeyError),
    (lambda: nn.ModuleDict({"keys": nn.Identity()}), KeyError),
    (lambda: nn.ModuleDict({1: nn.Identity()}), TypeError),
    (lambda: nn.ModuleDict({"a": 3}), TypeError),
    (lambda: nn.ModuleDict(3), TypeError),
    (lambda: nn.ModuleDict([nn.Identity()]), TypeError),
    (lambda: nn.ModuleDict([("a", nn.Identity(), 1)]), ValueError),
])
def test_module_dict_errors_are_torchs(make: Any, error: type) -> None:
    with pytest.raises(error):
        make()


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_modules_match_torch(torch, dtype: Any) -> None:
    x = np.random.default_rng(1).standard_normal((3, 4)) * 3
    for ours, theirs in [(nn.Softmax(dim=0), torch.nn.Softmax(dim=0)), (nn.Softmax(-1), torch.nn.Softmax(-1)),
                         (nn.LogSoftmax(1), torch.nn.LogSoftmax(1)), (nn.Tanh(), torch.nn.Tanh()),
                         (nn.Identity(), torch.nn.Identity())]:
        a, b = _pair(torch, x, dtype)
        _compare(torch, ours(a), theirs(b), [a], [b], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_module_matches_torch(torch, dtype: Any) -> None:
    if not hasattr(numpygpt.Tensor, "sigmoid"):
        pytest.skip("Tensor.sigmoid is not there yet")
    a, b = _pair(torch, np.linspace(-30, 30, 13), dtype)
    _compare(torch, nn.Sigmoid()(a), torch.nn.Sigmoid()(b), [a], [b], dtype)


def test_softmax_without_dim_warns_and_picks_torchs_dim(torch) -> None:
    for shape in [(4,), (2, 3), (2, 3, 4), (2, 3, 4, 5)]:
        x = np.random.default_rng(0).standard_normal(shape)
        with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
            ours = nn.Softmax()(numpygpt.tensor(x))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = torch.nn.Softmax()(torch.tensor(x))
        assert rel_err(ours.data, theirs.numpy()) <= 1e-12


def test_zero_grad_with_ndarray_or_tensor_grads() -> None:
    layer = nn.Linear(2, 2)
    layer.weight.grad = np.ones((2, 2), dtype=np.float32)  # an array assigned is wrapped in a Tensor
    weight_grad = layer.weight.grad
    assert isinstance(weight_grad, numpygpt.Tensor)
    layer.bias.grad = numpygpt.ones(2)                      # a Tensor gradient, as PyTorch's
    bias_array = layer.bias.grad.data
    layer.zero_grad(set_to_none=False)
    assert layer.weight.grad is weight_grad and np.all(weight_grad.numpy() == 0)
    assert layer.bias.grad.data is bias_array and np.all(bias_array == 0)
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_zero_grad_and_clipping_on_a_0d_parameter() -> None:
    p = nn.Parameter(numpygpt.tensor(2.0))
    (p * p).backward()
    assert isinstance(p.grad.data, np.ndarray) and p.grad.shape == () and p.grad.item() == 4.0
    numpygpt.optim.clip_grad_norm_([p], 1.0)
    assert p.grad.item() == pytest.approx(1.0, rel=1e-6)
    numpygpt.optim.SGD([p], lr=0.1).zero_grad(set_to_none=False)
    assert p.grad.item() == 0.0
    layer = nn.Linear(1, 1)
    layer.bias = nn.Parameter(numpygpt.tensor(0.5))
    layer.bias.grad = np.float32(3.0)                       # a NumPy scalar becomes a 0-d array
    layer.zero_grad(set_to_none=False)
    assert layer.bias.grad.shape == () and layer.bias.grad.item() == 0.0


# ----------------------------------------------------------------------------- nn.init

UNIFORM_INITS = [("uniform_", {"a": -1.5, "b": 2.0}), ("uniform_", {}), ("xavier_uniform_", {}),
                 ("xavier_uniform_", {"gain": 5 / 3}), ("kaiming_uniform_", {}),
                 ("kaiming_uniform_", {"a": math.sqrt(5)}),
                 ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}), ("constant_", {"val": 0.3}),
                 ("ones_", {}), ("zeros_", {})]
NORMAL_INITS = [("normal_", {}), ("normal_", {"mean": 0.5, "std": 0.02}), ("xavier_normal_", {}),
                ("kaiming_normal_", {}), ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "tanh"})]
INIT_SHAPES = [(3, 4), (7, 5), (16, 33), (4, 3, 5)]


def _init_both(torch: Any, name: str, kwargs: dict, shape: tuple[int, ...], dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    ours = numpygpt.zeros(*shape, dtype=dtype)
    theirs = torch.zeros(*shape, dtype=getattr(torch, np.dtype(dtype).name))
    numpygpt.manual_seed(11)
    torch.manual_seed(11)
    assert getattr(nn.init, name)(ours, **kwargs) is ours
    getattr(torch.nn.init, name)(theirs, **kwargs)
    # the generators are in step afterwards: the next draw agrees too
    np.testing.assert_array_equal(numpygpt.rand(3, dtype=dtype).numpy(), torch.rand(3, dtype=theirs.dtype).numpy())
    return ours.data, theirs.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", INIT_SHAPES, ids=str)
@pytest.mark.parametrize("name, kwargs", UNIFORM_INITS, ids=lambda v: str(v))
def test_uniform_and_constant_inits_match_torch_bit_for_bit(torch, name: str, kwargs: dict, shape: tuple,
                                                           dtype: Any) -> None:
    ours, theirs = _init_both(torch, name, kwargs, shape, dtype)
    assert ours.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(ours, theirs)


def test_eye_matches_torch(torch) -> None:
    for shape in [(3, 3), (2, 5), (4, 1)]:
        np.testing.assert_array_equal(nn.init.eye_(numpygpt.ones(*shape)).numpy(),
                                      torch.nn.init.eye_(torch.ones(*shape)).numpy())
    with pytest.raises(ValueError, match="2 dimensions"):
        nn.init.eye_(numpygpt.ones(2, 2, 2))


def test_float64_uniform_with_bounds_is_bit_for_bit(torch) -> None:
    ours, theirs = _init_both(torch, "uniform_", {"a": -1.5, "b": 2.0}, (40, 50), np.float64)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", INIT_SHAPES, ids=str)
@pytest.mark.parametrize("name, kwargs", NORMAL_INITS, ids=lambda v: str(v))
def test_normal_inits_match_torch_within_a_few_ulp(torch, name: str, kwargs: dict, shape: tuple, dtype: Any) -> None:
    ours, theirs = _init_both(torch, name, kwargs, shape, dtype)
    assert ulps(ours, theirs) <= 4


@pytest.mark.parametrize("nonlinearity, param", [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                                                 ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
                                                 ("leaky_relu", 3), ("selu", None)])
def test_calculate_gain_is_torchs(torch, nonlinearity: str, param: Any) -> None:
    assert nn.init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)


def test_init_errors_are_torchs() -> None:
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        nn.init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a valid number"):
        nn.init.calculate_gain("leaky_relu", True)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(numpygpt.zeros(3))
    with pytest.raises(ValueError, match="Mode fan_sideways not supported"):
        nn.init.kaiming_uniform_(numpygpt.zeros(3, 3), mode="fan_sideways")
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        nn.init.normal_(numpygpt.zeros(3), std=-1.0)
    with pytest.raises(NotImplementedError):
        nn.init.uniform_(numpygpt.zeros(3, dtype=np.int64))
    empty = numpygpt.zeros(3, 0)
    with pytest.warns(UserWarning, match="zero-element"):
        out = nn.init.kaiming_uniform_(empty)
    assert out is empty


def test_init_writes_in_place_without_a_graph() -> None:
    p = nn.Parameter(np.zeros((4, 5)))
    array = p.data
    nn.init.kaiming_normal_(p)
    assert p.data is array and p.grad_fn is None and p.requires_grad and np.any(array != 0)


def test_init_draws_from_the_given_generator() -> None:
    g = numpygpt.Generator().manual_seed(5)
    numpygpt.manual_seed(5)
    a = nn.init.xavier_normal_(numpygpt.zeros(6, 7), generator=g).numpy()
    b = nn.init.xavier_normal_(numpygpt.zeros(6, 7)).numpy()
    np.testing.assert_array_equal(a, b)
    numpygpt.manual_seed(5)
    nn.init.uniform_(numpygpt.zeros(4), generator=numpygpt.Generator().manual_seed(0))
    np.testing.assert_array_equal(numpygpt.rand(3).numpy(), numpygpt.Generator().manual_seed(5).uniform((3,)))


def test_linear_and_embedding_initialise_through_nn_init() -> None:
    numpygpt.manual_seed(2)
    layer = nn.Linear(5, 3)
    emb = nn.Embedding(20, 4)
    numpygpt.manual_seed(2)
    w = nn.init.kaiming_uniform_(nn.Parameter(np.empty((3, 5), dtype=np.float32)), a=math.sqrt(5))
    b = nn.init.uniform_(nn.Parameter(np.empty(3, dtype=np.float32)), -1 / math.sqrt(5), 1 / math.sqrt(5))
    e = nn.init.normal_(nn.Parameter(np.empty((20, 4), dtype=np.float32)))
    for ours, expected in [(layer.weight, w), (layer.bias, b), (emb.weight, e)]:
        np.testing.assert_array_equal(ours.data, expected.data)
    numpygpt.manual_seed(2)
    layer.reset_parameters()
    np.testing.assert_array_equal(layer.weight.data, w.data)


# ----------------------------------------------------------------------------- nll_loss and cross_entropy


@st.composite
def _logits_and_targets(draw: Any, ignore: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Logits (..., V) and integer targets (...), some of them -100 when `ignore`."""
    lead = draw(shapes(min_dims=0, max_dims=2, max_side=4))
    v = draw(st.integers(min_value=1, max_value=5))
    x = draw(arrays(lead + (v,), low=-3.0, high=3.0))
    rng = np.random.default_rng(draw(seeds()))
    t = rng.integers(0, v, lead)
    if ignore and t.size > 1:
        t.reshape(-1)[0] = -100
    return x, t


REDUCTIONS = ["mean", "sum", "none"]


@given(_logits_and_targets(), st.sampled_from(REDUCTIONS), st.sampled_from([0.0, 0.1, 1.0]))
def test_cross_entropy_with_label_smoothing_gradcheck(xt: tuple, reduction: str, eps: float) -> None:
    x, t = xt
    gradcheck(lambda a: F.cross_entropy(a, t, reduction=reduction, label_smoothing=eps), [leaf(x)])


@given(_logits_and_targets(), st.sampled_from(REDUCTIONS), st.sampled_from([0.0, 0.2]), seeds())
def test_cross_entropy_with_probability_targets_gradcheck(xt: tuple, reduction: str, eps: float, seed: int) -> None:
    x, _ = xt
    q = np.random.default_rng(seed).random(x.shape)
    gradcheck(lambda a, b: F.cross_entropy(a, b, reduction=reduction, label_smoothing=eps), [leaf(x), leaf(q)])


@given(_logits_and_targets(), st.sampled_from(REDUCTIONS))
def test_nll_loss_gradcheck(xt: tuple, reduction: str) -> None:
    x, t = xt
    gradcheck(lambda a: F.nll_loss(a.log_softmax(-1), t, reduction=reduction), [leaf(x)])


@given(_logits_and_targets(), st.sampled_from([0.0, 0.3]))
def test_smoothed_cross_entropy_is_its_composed_twin(xt: tuple, eps: float) -> None:
    """(1 - ε) nll + ε · mean over classes of -log p, averaged over the counted rows."""
    x, t = xt
    a, b = leaf(x), leaf(x)
    fused = F.cross_entropy(a, t, label_smoothing=eps, reduction="sum")
    logp = b.log_softmax(-1)
    kept = numpygpt.tensor((t != -100).astype(np.float64))
    composed = (1 - eps) * F.nll_loss(logp, t, reduction="sum") - eps * (logp.mean(-1) * kept).sum()
    assert rel_err(fused.data, composed.data) <= 1e-12
    fused.backward()
    composed.backward()
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12, atol=1e-14)   # V = 1: both are 0 up to rounding


def test_probability_targets_of_one_hots_are_class_targets() -> None:
    x, t = np.random.default_rng(3).standard_normal((4, 5)), np.array([0, 4, 2, 2])
    q = np.eye(5)[t]
    for eps in (0.0, 0.25):
        assert rel_err(F.cross_entropy(numpygpt.tensor(x), q, label_smoothing=eps).data,
                       F.cross_entropy(numpygpt.tensor(x), t, label_smoothing=eps).data) <= 1e-14


def test_every_target_ignored_gives_nan_loss_and_zero_gradients() -> None:
    for fn in (lambda a, t: F.cross_entropy(a, t), lambda a, t: F.cross_entropy(a, t, label_smoothing=0.1),
               lambda a, t: F.nll_loss(a, t)):
        a = leaf(np.ones((3, 4)))
        loss = fn(a, np.full(3, -100))
        assert math.isnan(loss.item())
        loss.backward()
        assert np.array_equal(a.grad, np.zeros((3, 4)))


def _torch_class_last(torch: Any, x: Any) -> Any:
    """(N, V) stays; (B, T, V) becomes PyTorch's (B, V, T)."""
    return x if x.ndim <= 2 else x.movedim(-1, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5,), (6, 5), (2, 3, 5)], ids=str)
def test_losses_match_torch(torch, shape: tuple, reduction: str, dtype: Any) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape) * 2
    t = rng.integers(0, shape[-1], shape[:-1])
    if t.size > 1:
        t.reshape(-1)[1] = -100
    q = rng.random(shape).astype(dtype)
    tt, tq = torch.from_numpy(t), _torch_class_last(torch, torch.from_numpy(q))
    for eps in (0.0, 0.1):
        a, b = _pair(torch, x, dtype)
        _compare(torch, F.cross_entropy(a, t, reduction=reduction, label_smoothing=eps),
                 torch.nn.functional.cross_entropy(_torch_class_last(torch, b), tt, reduction=reduction,
                                                   label_smoothing=eps), [a], [b], dtype)
        a, b = _pair(torch, x, dtype)
        _compare(torch, F.cross_entropy(a, q, reduction=reduction, label_smoothing=eps),
                 torch.nn.functional.cross_entropy(_torch_class_last(torch, b), tq, reduction=reduction,
                                                   label_smoothing=eps), [a], [b], dtype)
    a, b = _pair(torch, x, dtype)
    _compare(torch, F.nll_loss(a, t, reduction=reduction),
             torch.nn.functional.nll_loss(_torch_class_last(torch, b), tt, reduction=reduction), [a], [b], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_modules_match_torch(torch, dtype: Any) -> None:
    rng = np.random.default_rng(5)
    x, t = rng.standard_normal((6, 4)), np.array([0, 3, -1, 2, 1, -1])
    a, b = _pair(torch, x, dtype)
    _compare(torch, nn.CrossEntropyLoss(ignore_index=-1, label_smoothing=0.2)(a, t),
             torch.nn.CrossEntropyLoss(ignore_index=-1, label_smoothing=0.2)(b, torch.from_numpy(t)), [a], [b], dtype)
    a, b = _pair(torch, x, dtype)
    _compare(torch, nn.NLLLoss(ignore_index=-1, reduction="sum")(a, t),
             torch.nn.NLLLoss(ignore_index=-1, reduction="sum")(b, torch.from_numpy(t)), [a], [b], dtype)


def test_loss_errors() -> None:
    x = numpygpt.zeros(4, 3)
    with pytest.raises(IndexError, match="target 3 is out of range"):
        F.nll_loss(x, np.array([0, 1, 3, 2]))
    with pytest.raises(ValueError, match="targets of shape"):
        F.nll_loss(x, np.zeros(2, dtype=np.int64))
    with pytest.raises(RuntimeError, match="label_smoothing"):
        F.cross_entropy(x, np.zeros(4, dtype=np.int64), label_smoothing=1.5)
    with pytest.raises(TypeError, match="class probabilities|integer"):
        F.cross_entropy(x, np.zeros((4, 2)))


# ----------------------------------------------------------------------------- one_hot


def test_one_hot_matches_torch(torch) -> None:
    ids = np.array([[0, 3], [1, 1], [2, 0]])
    for n in (-1, 4, 6):
        ours = F.one_hot(ids, n)
        theirs = torch.nn.functional.one_hot(torch.from_numpy(ids), n)
        assert ours.dtype == np.int64 and not ours.requires_grad
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(F.one_hot(numpygpt.tensor(2), 3).numpy(), [0, 0, 1])


@pytest.mark.parametrize("ids, n, message", [
    (np.array([1.0]), -1, "LongTensor"), (np.array([-1]), 3, "non-negative"), (np.array([3]), 3, "smaller than"),
    (np.zeros(0, dtype=np.int64), -1, "empty tensor")])
def test_one_hot_errors_are_torchs(ids: np.ndarray, n: int, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        F.one_hot(ids, n)


# ----------------------------------------------------------------------------- pad


@st.composite
def _shape_and_pad(draw: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A shape and (before, after) widths for some trailing dims; negative widths crop."""
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    widths: list[int] = []
    for n in reversed(shape[len(shape) - draw(st.integers(min_value=1, max_value=len(shape))):]):
        lo = draw(st.integers(min_value=-(n - 1), max_value=2))
        hi = draw(st.integers(min_value=-(n - 1 + min(lo, 0)), max_value=2))
        widths += [lo, hi]
    return shape, tuple(widths)


@given(_shape_and_pad(), seeds(), st.sampled_from([0.0, -1.5]))
def test_pad_gradcheck(sp: tuple, seed: int, value: float) -> None:
    shape, widths = sp
    x = np.random.default_rng(seed).standard_normal(shape)
    gradcheck(lambda a: F.pad(a, widths, value=value), [leaf(x)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("widths", [(1, 2), (0, 0, 2, 1), (-1, 2, 1, -2), (1, 1, 1, 1, 1, 1), (-3, 0)], ids=str)
def test_pad_matches_torch(torch, widths: tuple, dtype: Any) -> None:
    x = np.random.default_rng(6).standard_normal((2, 3, 4))
    a, b = _pair(torch, x, dtype)
    _compare(torch, F.pad(a, widths, value=0.5), torch.nn.functional.pad(b, widths, value=0.5), [a], [b], dtype)


def test_pad_errors() -> None:
    x = numpygpt.zeros(2, 2)
    with pytest.raises(RuntimeError, match="divisible by 2"):
        F.pad(x, (1,))
    with pytest.raises(RuntimeError, match="less than or equal to two times"):
        F.pad(x, (1,) * 6)
    with pytest.raises(RuntimeError, match="negative size"):
        F.pad(x, (-2, -1))
    with pytest.raises(NotImplementedError, match="constant"):
        F.pad(x, (1, 1), mode="reflect")


# ----------------------------------------------------------------------------- scaled_dot_product_attention


def _sdpa_composed(q: numpygpt.Tensor, k: numpygpt.Tensor, v: numpygpt.Tensor, causal: bool) -> numpygpt.Tensor:
    """The seed's attention: scores masked above the diagonal, softmax, times values."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        L, S = scores.shape[-2:]
        scores = scores.masked_fill(np.triu(np.ones((L, S), dtype=bool), k=1), float("-inf"))
    return scores.softmax(-1) @ v


@st.composite
def _qkv(draw: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batch = draw(shapes(min_dims=0, max_dims=2, max_side=3))
    L, S, E, Ev = (draw(st.integers(min_value=1, max_value=4)) for _ in range(4))
    return (draw(arrays(batch + (L, E))), draw(arrays(batch + (S, E))), draw(arrays(batch + (S, Ev))))


@given(_qkv(), st.booleans(), st.sampled_from([None, 0.7]))
def test_sdpa_gradcheck(qkv: tuple, causal: bool, scale: Any) -> None:
    gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale),
              [leaf(a) for a in qkv])


@given(_qkv(), seeds())
def test_sdpa_gradcheck_with_masks(qkv: tuple, seed: int) -> None:
    q, k, v = qkv
    rng = np.random.default_rng(seed)
    keep = rng.random((q.shape[-2], k.shape[-2])) < 0.6          # rows with no key allowed give zeros
    gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=keep), [leaf(x) for x in qkv])
    bias = rng.standard_normal((q.shape[-2], k.shape[-2]))
    gradcheck(lambda a, b, c, m: F.scaled_dot_product_attention(a, b, c, attn_mask=m),
              [leaf(x) for x in (q, k, v, bias)])


@given(_qkv(), st.booleans())
def test_sdpa_is_the_seeds_attention(qkv: tuple, causal: bool) -> None:
    ours = [leaf(a) for a in qkv]
    twin = [leaf(a) for a in qkv]
    out = F.scaled_dot_product_attention(*ours, is_causal=causal)
    ref = _sdpa_composed(*twin, causal)
    assert rel_err(out.data, ref.data) <= 1e-12
    out.sum().backward()
    ref.sum().backward()
    for a, b in zip(ours, twin):
        assert rel_err(a.grad, b.grad) <= 1e-12


SDPA_CASES = ["plain", "causal", "causal_long", "bool_mask", "float_mask", "scale", "blocked_row"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SDPA_CASES)
def test_sdpa_matches_torch(torch, case: str, dtype: Any) -> None:
    rng = np.random.default_rng(7)
    L = 6 if case == "causal_long" else 4
    q, k, v = rng.standard_normal((2, 3, L, 8)), rng.standard_normal((2, 3, 5, 8)), rng.standard_normal((2, 3, 5, 3))
    ours, theirs = zip(*(_pair(torch, a, dtype) for a in (q, k, v)))
    kwargs: dict[str, Any] = {}
    keep = rng.random((L, 5)) < 0.6
    if case.startswith("causal"):
        kwargs = {"is_causal": True}
    elif case == "bool_mask":
        keep[:, 0] = True                                    # every query may attend some key
        kwargs = {"attn_mask": keep}
    elif case == "blocked_row":
        keep[1] = False                                      # query 1 may attend none: zeros, as PyTorch
        kwargs = {"attn_mask": keep}
    elif case == "scale":
        kwargs = {"scale": 0.05}
    tkwargs = {key: torch.from_numpy(val) if isinstance(val, np.ndarray) else val for key, val in kwargs.items()}
    if case == "float_mask":
        bias = rng.standard_normal((L, 5))
        m, tm = _pair(torch, bias, dtype)
        _compare(torch, F.scaled_dot_product_attention(*ours, attn_mask=m),
                 torch.nn.functional.scaled_dot_product_attention(*theirs, attn_mask=tm), [*ours, m], [*theirs, tm],
                 dtype)
        return
    _compare(torch, F.scaled_dot_product_attention(*ours, **kwargs),
             torch.nn.functional.scaled_dot_product_attention(*theirs, **tkwargs), list(ours), list(theirs), dtype)


def test_sdpa_dropout_uses_the_dropout_mask_of_the_weights() -> None:
    q, k, v = (numpygpt.tensor(np.random.default_rng(i).standard_normal((3, 4))) for i in range(3))
    numpygpt.manual_seed(9)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    numpygpt.manual_seed(9)
    weights = F.dropout((q @ k.transpose(-2, -1) / 2).softmax(-1), 0.5)
    assert rel_err(out.data, (weights @ v).data) <= 1e-14


def test_sdpa_errors() -> None:
    q = numpygpt.zeros(2, 3)
    with pytest.raises(RuntimeError, match="is_causal"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((2, 2), dtype=bool), is_causal=True)
    with pytest.raises(RuntimeError, match="shapes"):
        F.scaled_dot_product_attention(q, numpygpt.zeros(2, 4), q)
