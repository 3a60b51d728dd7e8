"""Optimisers, gradient clipping and schedules.

Parity with torch.optim: the same float64 start values and the same random
gradient at every step, 10 steps, agreement to 1e-12 relative. Resuming from
`state_dict()` must be bit-identical to not stopping at all.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from conftest import rel_err, seeds
from hypothesis import given
from hypothesis import strategies as st

from numpygpt import nn, optim
from numpygpt.nn import Parameter

# Sizes include one bigger than AdamW's chunk (2**16 values) and a 0-d parameter.
SHAPES = [(3, 4), (5,), (300, 257), (2, 3, 4), ()]


def make_params(shapes=SHAPES, seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s)) for s in shapes]


def set_grads(params, rng, skip=()):
    """Fresh random gradients (None for the indices in `skip`); returns them."""
    grads = []
    for i, p in enumerate(params):
        g = None if i in skip else rng.standard_normal(p.data.shape)
        p.grad = None if g is None else g.copy()
        grads.append(g)
    return grads


def run_parity(make_ours, make_torch, shapes=SHAPES, steps=10, seed=0, skip=lambda step: ()):
    """Step our optimiser and torch's side by side; return (ours, torch) final values."""
    torch = pytest.importorskip("torch")
    ours = make_params(shapes, seed)
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt, topt = make_ours(ours), make_torch(theirs)
    rng = np.random.default_rng(seed + 1)
    for step in range(steps):
        grads = set_grads(ours, rng, skip(step))
        for t, g in zip(theirs, grads):
            t.grad = None if g is None else torch.tensor(g)
        opt.step()
        topt.step()
    return [p.data for p in ours], [t.detach().numpy() for t in theirs]


def assert_close(ours, theirs, tol=1e-12):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape
        assert rel_err(a, b) < tol, f"parameter {i}: rel_err {rel_err(a, b):.3g}"


def split_groups(params):
    return [{"params": params[:2]}, {"params": params[2:], "weight_decay": 0.0, "lr": 3e-3}]


# ----------------------------------------------------------------------------- AdamW


def test_adamw_matches_torch_with_weight_decay():
    torch = pytest.importorskip("torch")
    ours, theirs = run_parity(
        lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
        lambda ts: torch.optim.AdamW(ts, lr=1e-2, weight_decay=0.1, foreach=False),
    )
    assert_close(ours, theirs)


def test_adamw_matches_torch_with_param_groups():
    torch = pytest.importorskip("torch")
    ours, theirs = run_parity(
        lambda ps: optim.AdamW(split_groups(ps), lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
        lambda ts: torch.optim.AdamW(split_groups(ts), lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1,
                                     foreach=False),
    )
    assert_close(ours, theirs)


def test_adamw_skips_params_without_grad_like_torch():
    torch = pytest.importorskip("torch")
    # Parameter 1 has no gradient on even steps, parameter 3 never has one.
    ours, theirs = run_parity(
        lambda ps: optim.AdamW(ps, lr=1e-2),
        lambda ts: torch.optim.AdamW(ts, lr=1e-2, foreach=False),
        skip=lambda step: (1, 3) if step % 2 == 0 else (3,),
    )
    assert_close(ours, theirs)
    assert np.array_equal(ours[3], make_params()[3].data)


def test_adamw_non_contiguous_parameter_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    base = rng.standard_normal((6, 5))
    ours = Parameter(base.T)  # a transposed view: not C-contiguous
    assert not ours.data.flags.c_contiguous
    theirs = torch.tensor(base.T.copy(), requires_grad=True)
    opt = optim.AdamW([ours], lr=1e-2, weight_decay=0.1)
    topt = torch.optim.AdamW([theirs], lr=1e-2, weight_decay=0.1, foreach=False)
    for _ in range(10):
        g = rng.standard_normal((5, 6))
        ours.grad, theirs.grad = g.copy(), torch.tensor(g)
        opt.step()
        topt.step()
    assert ours.data.base is base  # still the same storage, updated in place
    assert rel_err(ours.data, theirs.detach().numpy()) < 1e-12


def test_adamw_updates_in_place_and_keeps_float32():
    p = Parameter(np.ones((4, 3), dtype=np.float32))
    data = p.data
    p.grad = np.full((4, 3), 0.5, dtype=np.float32)
    opt = optim.AdamW([p], lr=0.1)
    opt.step()
    assert p.data is data and p.data.dtype == np.float32
    assert opt.state[0]["exp_avg"].dtype == np.float32
    # First step: m̂ = g, v̂ = g², so p = p (1 - lr wd) - lr g / (|g| + eps).
    expected = 1 * (1 - 0.1 * 0.01) - 0.1 * 0.5 / (0.5 + 1e-8)
    np.testing.assert_allclose(p.data, expected, rtol=1e-6)


def test_adamw_state_is_views_of_one_buffer_per_dtype_each_its_own_numbers():
    rng = np.random.default_rng(4)
    ps = [Parameter(rng.standard_normal(shape).astype(dtype)) for shape, dtype in
          [((3, 4), np.float32), ((5,), np.float64), ((2, 2), np.float32), ((), np.float32), ((0, 3), np.float32)]]
    late = Parameter(np.ones(2, dtype=np.float32))                   # its first gradient comes a step later
    opt = optim.AdamW([*ps, late], lr=1e-2)
    grads = [rng.standard_normal(p.data.shape).astype(p.data.dtype) for p in ps]
    for p, g in zip(ps, grads):
        p.grad = g
    opt.step()
    m = [opt.state[i]["exp_avg"] for i in range(len(ps))]
    assert 5 not in opt.state                                      # no gradient, no state (as PyTorch)
    assert m[0].base is m[2].base is m[3].base and m[1].base is not m[0].base
    for i in range(len(ps)):
        for j in range(i + 1, len(ps)):
            assert not np.shares_memory(m[i], m[j])
        assert m[i].shape == ps[i].data.shape and m[i].dtype == ps[i].data.dtype
        np.testing.assert_allclose(m[i], 0.1 * grads[i], rtol=1e-6)  # m = (1 - beta1) g after one step
        np.testing.assert_allclose(opt.state[i]["exp_avg_sq"], 0.001 * grads[i] ** 2, rtol=1e-5)
    late.grad = np.ones(2, dtype=np.float32)
    opt.step()
    assert opt.state[5]["step"] == 1 and opt.state[0]["step"] == 2
    np.testing.assert_allclose(opt.state[5]["exp_avg"], 0.1, rtol=1e-6)


# ----------------------------------------------------------------------------- SGD


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lr=0.1),
        dict(lr=0.1, momentum=0.9),
        dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01),
        dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02),
    ],
)
def test_sgd_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = run_parity(
        lambda ps: optim.SGD(ps, **kwargs),
        lambda ts: torch.optim.SGD(ts, foreach=False, **kwargs),
        skip=lambda step: (0,) if step == 3 else (),
    )
    assert_close(ours, theirs)


def test_sgd_matches_torch_with_param_groups():
    torch = pytest.importorskip("torch")
    ours, theirs = run_parity(
        lambda ps: optim.SGD(split_groups(ps), lr=0.1, momentum=0.9, weight_decay=0.1),
        lambda ts: torch.optim.SGD(split_groups(ts), lr=0.1, momentum=0.9, weight_decay=0.1, foreach=False),
    )
    assert_close(ours, theirs)


# ----------------------------------------------------------------------------- clip_grad_norm_


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for _ in range(3):
        ours = make_params(seed=int(rng.integers(1000)))
        grads = set_grads(ours, rng, skip=(1,))
        theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
        for t, g in zip(theirs, grads):
            t.grad = None if g is None else torch.tensor(g)
        total = optim.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
        ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
        assert isinstance(total, float)
        assert abs(total - ttotal.item()) <= 1e-12 * ttotal.item()
        assert ours[1].grad is None
        for p, t in zip(ours, theirs):
            if p.grad is not None:
                assert rel_err(p.grad, t.grad.numpy()) < 1e-12


@given(seed=seeds(), max_norm=st.floats(1e-3, 10.0))
def test_clip_grad_norm_bounds_the_norm(seed, max_norm):
    rng = np.random.default_rng(seed)
    params = make_params([(4, 3), (7,)], seed)
    before = [g.copy() for g in set_grads(params, rng)]
    total = optim.clip_grad_norm_(params, max_norm)
    assert total == pytest.approx(math.sqrt(sum(float(np.sum(g**2)) for g in before)), rel=1e-12)
    after = math.sqrt(sum(float((p.grad**2).sum()) for p in params))
    assert after <= max_norm * (1 + 1e-12)
    if total <= max_norm:  # small enough already: left alone
        assert all(np.array_equal(p.grad.numpy(), g) for p, g in zip(params, before))


def test_clip_grad_norm_edge_cases():
    p = Parameter(np.zeros(3))
    assert optim.clip_grad_norm_([p], 1.0) == 0.0  # no gradients at all
    p.grad = np.array([3.0, 4.0, 0.0])
    assert optim.clip_grad_norm_(p, 1.0) == 5.0  # a single parameter is accepted
    np.testing.assert_allclose(p.grad, [0.6, 0.8, 0.0], rtol=1e-6)
    p.grad = np.array([np.inf, 1.0, 0.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type"):
        optim.clip_grad_norm_([p], 1.0, norm_type=0)


# ----------------------------------------------------------------------------- state_dict


def train(opt, params, rng, steps):
    for _ in range(steps):
        set_grads(params, rng)
        opt.step()


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: optim.AdamW(split_groups(ps), lr=1e-2, weight_decay=0.1),
        lambda ps: optim.SGD(split_groups(ps), lr=0.1, momentum=0.9, nesterov=True),
    ],
)
def test_state_dict_round_trip_is_bit_identical(make):
    straight = make_params()
    opt = make(straight)
    train(opt, straight, np.random.default_rng(5), 10)

    resumed = make_params()
    opt = make(resumed)
    rng = np.random.default_rng(5)
    train(opt, resumed, rng, 5)
    saved = copy.deepcopy(opt.state_dict())
    values = [p.data.copy() for p in resumed]

    fresh = [Parameter(v) for v in values]
    opt = make(fresh)
    opt.load_state_dict(saved)
    train(opt, fresh, rng, 5)
    for a, b in zip(fresh, straight):
        assert np.array_equal(a.data, b.data)


def test_state_dict_is_plain_and_survives_json():
    params = make_params()
    opt = optim.AdamW(split_groups(params), lr=1e-2)
    train(opt, params, np.random.default_rng(0), 3)
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert sd["param_groups"][0]["params"] == [0, 1]
    assert sd["param_groups"][1]["params"] == [2, 3, 4]
    assert sd["param_groups"][1]["weight_decay"] == 0.0 and sd["param_groups"][1]["lr"] == 3e-3
    assert sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sorted(sd["state"]) == [0, 1, 2, 3, 4]
    assert sd["state"][2]["step"] == 3 and type(sd["state"][2]["step"]) is int
    assert sd["state"][2]["exp_avg"].shape == (300, 257)

    # What a checkpoint does: arrays to a tensor file, everything else to JSON.
    arrays = {f"{i}.{k}": v for i, s in sd["state"].items() for k, v in s.items() if isinstance(v, np.ndarray)}
    meta = json.loads(json.dumps({
        "param_groups": sd["param_groups"],
        "state": {i: {k: v for k, v in s.items() if not isinstance(v, np.ndarray)} for i, s in sd["state"].items()},
    }))
    for key, value in arrays.items():
        i, name = key.split(".")
        meta["state"][i][name] = value.copy()

    other = optim.AdamW(split_groups(make_params()), lr=1.0)
    other.load_state_dict(meta)
    assert other.param_groups[0]["betas"] == (0.9, 0.999) and other.param_groups[0]["lr"] == 1e-2
    assert other.state[2]["step"] == 3
    assert np.array_equal(other.state[2]["exp_avg_sq"], sd["state"][2]["exp_avg_sq"])
    assert other.state[2]["exp_avg_sq"] is not sd["state"][2]["exp_avg_sq"]  # copied on load


def test_load_state_dict_validates():
    params = make_params()
    opt = optim.AdamW(split_groups(params), lr=1e-2)
    train(opt, params, np.random.default_rng(0), 1)
    good = opt.state_dict()

    with pytest.raises(ValueError, match="2 parameter groups, but the optimizer has 1"):
        optim.AdamW(make_params()).load_state_dict(good)
    with pytest.raises(ValueError, match="group 1 has 3 parameters .* but 2"):
        optim.AdamW(split_groups(make_params()[:4])).load_state_dict(good)
    bad = copy.deepcopy(good)
    bad["state"][0]["exp_avg"] = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"exp_avg of parameter 0 has shape \(4, 3\), but the parameter has shape \(3, 4\)"):
        opt.load_state_dict(bad)
    bad = copy.deepcopy(good)
    del bad["state"][1]["exp_avg_sq"]
    with pytest.raises(ValueError, match="parameter 1 is missing exp_avg_sq"):
        opt.load_state_dict(bad)
    bad = copy.deepcopy(good)
    bad["state"][9] = bad["state"][0]
    with pytest.raises(ValueError, match="parameter 9"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="missing 'state'"):
        opt.load_state_dict({"param_groups": good["param_groups"]})
    with pytest.raises(TypeError):
        opt.load_state_dict([1, 2])
    # A failed load leaves the optimiser untouched.
    assert np.array_equal(opt.state[0]["exp_avg"], good["state"][0]["exp_avg"])


# ----------------------------------------------------------------------------- construction


def test_zero_grad():
    params = make_params()
    set_grads(params, np.random.default_rng(0))
    opt = optim.SGD(params, lr=0.1)
    grad = params[0].grad
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is grad and not grad.any()
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_constructor_errors():
    p, q = make_params([(2,), (3,)])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.AdamW([])
    with pytest.raises(TypeError, match="wrap it in a list"):
        optim.AdamW(p)
    with pytest.raises(TypeError, match="Parameter"):
        optim.AdamW([np.zeros(3)])
    with pytest.raises(ValueError, match="more than once"):
        optim.AdamW([{"params": [p]}, {"params": [p, q]}])
    with pytest.raises(ValueError, match="learning rate"):
        optim.AdamW([p], lr=-1.0)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        optim.AdamW([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="assigned grad has shape"):
        p.grad = np.zeros(5)
        optim.SGD([p], lr=0.1).step()


def test_param_groups_for_weight_decay():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.norm = nn.LayerNorm(4)
            self.proj = nn.Linear(4, 8)
            self.head = nn.Linear(8, 10, bias=False)

    model = Tiny()
    decay, no_decay = optim.param_groups_for_weight_decay(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [id(p) for p in decay["params"]] == [id(model.proj.weight), id(model.head.weight)]
    assert {id(p) for p in no_decay["params"]} == {
        id(model.emb.weight), id(model.norm.weight), id(model.norm.bias), id(model.proj.bias)
    }
    optim.AdamW([decay, no_decay], lr=1e-3)  # usable as is

    model.head.weight = model.emb.weight  # weight tying: the shared matrix decays
    decay, no_decay = optim.param_groups_for_weight_decay(model, 0.1)
    assert any(p is model.emb.weight for p in decay["params"])
    assert not any(p is model.emb.weight for p in no_decay["params"])


# ----------------------------------------------------------------------------- schedules


def test_lr_at_warmup_and_cosine_points():
    kw = dict(peak_lr=1e-2, warmup_steps=10, total_steps=110, initial_lr=1e-4, min_lr=1e-5)
    assert optim.lr_at(0, **kw) == 1e-4
    assert optim.lr_at(5, **kw) == pytest.approx((1e-4 + 1e-2) / 2)
    assert optim.lr_at(10, **kw) == pytest.approx(1e-2)
    assert optim.lr_at(60, **kw) == pytest.approx((1e-2 + 1e-5) / 2)  # cosine midpoint
    assert optim.lr_at(110, **kw) == 1e-5
    assert optim.lr_at(500, **kw) == 1e-5
    assert optim.lr_at(0, peak_lr=0.1, warmup_steps=0, total_steps=4) == 0.1  # no warmup


@given(
    warmup=st.integers(0, 50),
    decay=st.integers(0, 200),
    peak=st.floats(1e-5, 1.0),
    floor=st.floats(0.0, 1.0),
    start=st.floats(0.0, 1.0),
)
def test_lr_at_shape(warmup, decay, peak, floor, start):
    total = max(warmup + decay, 1)
    min_lr, initial_lr = floor * peak, start * peak
    lrs = [optim.lr_at(s, peak_lr=peak, warmup_steps=warmup, total_steps=total, initial_lr=initial_lr,
                       min_lr=min_lr) for s in range(total + 3)]
    eps = 1e-12 * peak
    rising = lrs[: warmup + 1] if warmup < total else lrs[:warmup]  # (warmup == total: no decay at all)
    assert all(a <= b + eps for a, b in zip(rising, rising[1:]))
    assert all(a >= b - eps for a, b in zip(lrs[warmup:], lrs[warmup + 1 :]))  # then falls
    assert all(min(min_lr, initial_lr) - eps <= lr <= peak + eps for lr in lrs)
    assert lrs[-1] == min_lr


def test_lr_at_errors():
    with pytest.raises(ValueError, match="must not exceed"):
        optim.lr_at(0, peak_lr=1.0, warmup_steps=5, total_steps=4)
    with pytest.raises(ValueError, match="total_steps"):
        optim.lr_at(0, peak_lr=1.0, warmup_steps=0, total_steps=0)
    with pytest.raises(ValueError, match="step"):
        optim.lr_at(-1, peak_lr=1.0, warmup_steps=0, total_steps=3)


def test_cosine_with_warmup_drives_the_optimizer_and_resumes():
    params = make_params([(2,), (3,)])
    opt = optim.AdamW([{"params": [params[0]]}, {"params": [params[1]], "lr": 2e-3}], lr=1e-3)
    sched = optim.CosineWithWarmup(opt, warmup_steps=4, total_steps=20, initial_lr=1e-5, min_lr=1e-6)
    assert sched.get_last_lr() == [1e-5, 1e-5]
    assert [g["lr"] for g in opt.param_groups] == [1e-5, 1e-5]
    seen = []
    for _ in range(25):
        sched.step()
        seen.append(sched.get_last_lr())
    assert seen[3] == [pytest.approx(1e-3), pytest.approx(2e-3)]  # step 4: the peaks
    assert seen[-1] == [1e-6, 1e-6]
    assert [g["initial_lr"] for g in opt.param_groups] == [1e-3, 2e-3]

    state = json.loads(json.dumps(sched.state_dict()))
    opt2 = optim.AdamW([{"params": [params[0]]}, {"params": [params[1]], "lr": 2e-3}], lr=1e-3)
    sched2 = optim.CosineWithWarmup(opt2, warmup_steps=1, total_steps=2)
    sched2.load_state_dict(state)
    assert sched2.last_epoch == 25 and sched2.warmup_steps == 4
    assert [g["lr"] for g in opt2.param_groups] == [1e-6, 1e-6]
    sched.step()
    sched2.step()
    assert sched.get_last_lr() == sched2.get_last_lr()
    with pytest.raises(ValueError, match="missing"):
        sched2.load_state_dict({"last_epoch": 3})
    with pytest.raises(ValueError, match="must not exceed"):
        sched2.load_state_dict({**state, "warmup_steps": 50})
    assert sched2.warmup_steps == 4


def test_lambda_lr_matches_torch():
    torch = pytest.importorskip("torch")
    ours = optim.SGD(split_groups(make_params()), lr=0.1)
    theirs = torch.optim.SGD(split_groups([torch.zeros(1, requires_grad=True) for _ in SHAPES]), lr=0.1)
    fns = [lambda s: 0.9**s, lambda s: 1 / (1 + s)]
    sched, tsched = optim.LambdaLR(ours, fns), torch.optim.lr_scheduler.LambdaLR(theirs, fns)
    for _ in range(6):
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-15)
        ours.step()
        theirs.step()
        sched.step()
        tsched.step()
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        optim.LambdaLR(ours, [fns[0]])


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_clip_grad_norm_propagates_nan_from_any_parameter(norm_type):
    """A NaN anywhere makes the total norm NaN (as PyTorch), for the inf-norm too."""
    a, b = Parameter(np.ones(3)), Parameter(np.ones(3))
    a.grad, b.grad = np.full(3, 3.0), np.array([1.0, np.nan, 1.0])
    assert math.isnan(optim.clip_grad_norm_([a, b], 1.0, norm_type=norm_type))
    a.grad, b.grad = np.full(3, 3.0), np.array([1.0, np.nan, 1.0])
    with pytest.raises(RuntimeError):
        optim.clip_grad_norm_([a, b], 1.0, norm_type=norm_type, error_if_nonfinite=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adamw_in_threads_gives_the_bits_of_one_thread(monkeypatch, dtype):
    """A parameter of several chunks (optim._CHUNK_BYTES each, the last one short) is updated in
    threads; every number must come out as in one thread, step after step."""
    chunk = optim._CHUNK_BYTES // np.dtype(dtype).itemsize
    shapes = [(5 * chunk + 123,), (300, 257), (7,)]
    results = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("NUMPYGPT_NUM_THREADS", threads)
        params = [Parameter(p.data.astype(dtype)) for p in make_params(shapes, seed=4)]
        opt = optim.AdamW(params, lr=1e-2, weight_decay=0.1)
        rng = np.random.default_rng(5)
        for _ in range(3):
            for p in params:
                p.grad = rng.standard_normal(p.data.shape).astype(dtype)
            opt.step()
        results.append([p.data.tobytes() for p in params] + [opt.state[i][k].tobytes()
                                                             for i in range(3) for k in ("exp_avg", "exp_avg_sq")])
    assert results[0] == results[1] == results[2]
