"""The train step's fast paths against their plain formulations.

AdamW's in-place chunked kernel against the textbook equations, the fused
cross-entropy against log_softmax + nll_loss, the backward walk's in-place
gradient sums against a graph whose gradients are known, and `nn.init.no_init`.
"""

from __future__ import annotations

import numpy as np
import numpygpt.nn.functional as F
import pytest

import numpygpt as ng
from numpygpt import nn, optim
from numpygpt.model import GPTModel, build_model


def _textbook_adamw(p, grads, lr, betas, eps, weight_decay):
    """AdamW written as in the paper, in float64, one full-size array per line."""
    beta1, beta2 = betas
    p, m, v = p.astype(np.float64), np.zeros(p.shape), np.zeros(p.shape)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        p = p * (1 - lr * weight_decay)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, m, v


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("shape", [(3,), (70_000,), (300, 301)])  # 70,000 > one chunk of 2**16
def test_adamw_kernel_matches_the_textbook_equations(dtype, tol: float, shape) -> None:
    rng = np.random.default_rng(0)
    start = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(4)]
    p = nn.Parameter(start.copy())
    opt = optim.AdamW([p], lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)
    for g in grads:
        p.grad = ng.Tensor(g.copy())
        opt.step()
    expected_p, expected_m, expected_v = _textbook_adamw(start, grads, 1e-2, (0.8, 0.95), 1e-6, 0.1)
    assert p.data.dtype == dtype and opt.state[0]["exp_avg"].dtype == dtype
    np.testing.assert_allclose(p.data, expected_p, rtol=tol, atol=tol)
    np.testing.assert_allclose(opt.state[0]["exp_avg"], expected_m, rtol=tol, atol=tol)
    np.testing.assert_allclose(opt.state[0]["exp_avg_sq"], expected_v, rtol=tol, atol=tol)


def test_adamw_keeps_float32_with_numpy_float64_hyperparameters() -> None:
    p = nn.Parameter(np.ones(5, dtype=np.float32))
    opt = optim.AdamW([p], lr=np.float64(1e-3))
    opt.param_groups[0]["lr"] = np.float64(2e-3)  # as a scheduler might leave it
    p.grad = ng.Tensor(np.full(5, 0.5, dtype=np.float32))
    opt.step()
    assert p.data.dtype == np.float32 and opt.state[0]["exp_avg_sq"].dtype == np.float32
    assert np.all(p.data < 1)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fused_cross_entropy_matches_log_softmax_then_nll(label_smoothing: float, reduction: str) -> None:
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((6, 11)) * 3
    targets = rng.integers(0, 11, 6)
    targets[2] = -100                                                  # one ignored row
    a = ng.tensor(logits, requires_grad=True)
    fused = F.cross_entropy(a, targets, reduction=reduction, label_smoothing=label_smoothing)
    b = ng.tensor(logits, requires_grad=True)
    logp = b.log_softmax(-1)
    q = np.zeros((6, 11))
    q[np.arange(6), np.where(targets == -100, 0, targets)] = 1
    q = (1 - label_smoothing) * q + label_smoothing / 11
    rows = -(logp * ng.tensor(q)).sum(-1) * ng.tensor((targets != -100).astype(np.float64))
    composed = rows.sum() / 5 if reduction == "mean" else rows.sum() if reduction == "sum" else rows
    np.testing.assert_allclose(fused.data, composed.data, rtol=1e-12, atol=1e-12)
    weights = rng.standard_normal(fused.shape)
    (fused * ng.tensor(weights)).sum().backward()
    (composed * ng.tensor(weights)).sum().backward()
    np.testing.assert_allclose(a.grad.data, b.grad.data, rtol=1e-10, atol=1e-12)


def test_cross_entropy_backward_twice_with_retain_graph() -> None:
    x = ng.tensor(np.random.default_rng(2).standard_normal((4, 7)), requires_grad=True)
    loss = F.cross_entropy(x, np.array([1, 2, 3, 4]))
    loss.backward(retain_graph=True)
    first = x.grad.data.copy()
    loss.backward()                                                    # the saved buffer was not overwritten
    np.testing.assert_allclose(x.grad.data, 2 * first, rtol=1e-12)
    assert abs(first.sum()) < 1e-12                                    # each row: softmax - onehot sums to 0


def test_gradient_sums_do_not_write_into_shared_arrays() -> None:
    # a + a hands one array to both uses; x feeds four ops: the sums made in place must not reach it
    x = ng.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = ng.tensor(np.ones((2, 3)), requires_grad=True)
    s = x + y                                                          # backward passes g to x and y
    out = (s + x + x * 2 + x * x).sum()
    out.backward()
    np.testing.assert_array_equal(x.grad.data, 1 + 1 + 2 + 2 * x.data)
    np.testing.assert_array_equal(y.grad.data, np.ones((2, 3)))


def test_a_second_backward_adds_into_the_kept_gradient() -> None:
    x = ng.tensor(np.ones(3), requires_grad=True)
    for _ in range(2):
        (x * 3 + x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [8.0, 8.0, 8.0])


def test_no_init_draws_nothing_and_writes_nothing() -> None:
    ng.manual_seed(0)
    expected = ng.randn(3).data
    ng.manual_seed(0)
    marker = np.full((4, 5), 7.0, dtype=np.float32)
    p = nn.Parameter(marker.copy())
    with nn.init.no_init():
        nn.init.normal_(p)
        nn.init.kaiming_uniform_(p, a=5**0.5)
        nn.init.zeros_(p)
        layer = nn.Linear(5, 4)
    np.testing.assert_array_equal(p.data, marker)
    np.testing.assert_array_equal(ng.randn(3).data, expected)         # the generator did not move
    assert layer.weight.shape == (4, 5)
    nn.init.zeros_(p)                                                  # outside the block it fills again
    assert not p.data.any()


def test_build_model_then_strict_load_equals_the_source_model() -> None:
    cfg = {"vocab_size": 50, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0, "qkv_bias": False}
    ng.manual_seed(3)
    source = GPTModel(cfg)
    ng.manual_seed(4)
    expected = ng.randn(3).data
    ng.manual_seed(4)
    built = build_model(cfg, np.float32)
    np.testing.assert_array_equal(ng.randn(3).data, expected)         # building drew no random number
    built.load_state_dict(source.state_dict())
    expected, got = source.state_dict(), built.state_dict()
    assert set(expected) == set(got)
    for name, a in expected.items():
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(a), err_msg=name)


def test_load_state_dict_assign_takes_the_arrays_themselves() -> None:
    layer = nn.Linear(3, 2)
    weight, bias = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(2, dtype=np.float64)
    layer.load_state_dict({"weight": weight, "bias": bias}, assign=True)
    assert layer.weight.data is weight                                 # adopted, no copy
    assert layer.bias.data is not bias and layer.bias.dtype == np.float32  # another dtype: cast, a copy
    other = nn.Linear(3, 2)
    other.load_state_dict({"weight": weight, "bias": bias})            # default: copies
    assert not np.shares_memory(other.weight.data, weight)


def test_load_state_dict_assign_never_gives_one_array_to_two_parameters() -> None:
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False))
    shared = np.eye(2, dtype=np.float32)
    model.load_state_dict({"0.weight": shared, "1.weight": shared}, assign=True)
    assert not np.shares_memory(model[0].weight.data, model[1].weight.data)
    np.testing.assert_array_equal(model[1].weight.data, shared)


def test_from_pretrained_parameters_are_their_own_arrays(tmp_path) -> None:
    cfg = {"vocab_size": 50, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0, "qkv_bias": False}
    ng.manual_seed(5)
    GPTModel(cfg).save_pretrained(tmp_path)
    ng.manual_seed(5)
    source = GPTModel(cfg)
    loaded = GPTModel.from_pretrained(tmp_path)
    params = list(loaded.parameters())
    for i, p in enumerate(params):
        assert p.data.flags.c_contiguous and p.data.flags.writeable
        assert not any(np.shares_memory(p.data, q.data) for q in params[i + 1:])
    expected, got = source.state_dict(), loaded.state_dict()
    assert set(expected) <= set(got)                                   # HF's files add zero qkv biases
    for name, a in expected.items():
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(a), err_msg=name)
