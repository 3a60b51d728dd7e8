"""trace_backward: every step of the engine's walk, in its order, with the gradients it saw."""

from __future__ import annotations

import inspect
import io

import numpy as np
import pytest

import numpygpt
from numpygpt import autograd, functional, graph, losses, ops, reductions
from numpygpt import functional as F
from numpygpt.autograd import Context, Function, topological_order
from numpygpt.model import GPTModel
from numpygpt.trace import LEAF_OP, gradient_formula, input_names, trace_backward

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.2, -0.3]])
W = np.array([[0.3, -0.2, 0.1, 0.7], [0.4, 0.25, -0.5, 0.0], [-0.6, 0.1, 0.2, 0.3]])
B = np.array([0.1, -0.1, 0.0, 0.2])
Q = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])


def _expression(lib, x, w, b):
    """The same expression for numpygpt and torch: a layer norm, softmax, a square and a mean,
    with a broadcast bias and a tensor used twice. Returns the intermediates and the loss."""
    h = x @ w                                                   # MatMul
    z = h + b                                                   # Add (b broadcast over the rows)
    y = lib.layer_norm(z, (4,))                                 # LayerNorm
    p = y.softmax(-1)                                           # Softmax
    s = p * p                                                   # Mul (p used twice)
    m = s * lib.q                                               # Mul (a constant)
    loss = m.mean()                                             # Mean
    return [h, z, y, p, s, m, loss]


class _Numpygpt:
    layer_norm = staticmethod(F.layer_norm)
    q = numpygpt.tensor(Q)


def _leaves():
    return [numpygpt.tensor(a, dtype=np.float64, requires_grad=True) for a in (X, W, B)]


def _function_classes():
    for module in (ops, reductions, functional, losses):
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Function) and cls is not Function and cls.__module__ == module.__name__:
                yield cls


# ----------------------------------------------------------------------------- the walk


def test_the_trace_lists_every_node_in_the_engines_order():
    x, w, b = _leaves()
    tensors = _expression(_Numpygpt, x, w, b)
    loss = tensors[-1]
    walk = topological_order(loss.grad_fn)[::-1]                # what autograd.backward visits
    with trace_backward(file=None) as tracer:
        loss.backward()
    assert [s.node for s in tracer.steps] == walk
    assert [s.index for s in tracer.steps] == list(range(1, len(walk) + 1))
    assert [s.op for s in tracer.steps if s.op != LEAF_OP] == ["Mean", "Mul", "Mul", "Softmax", "LayerNorm", "Add",
                                                             "MatMul"]
    assert tracer._observe not in autograd.backward_observers
    for step in tracer.steps:
        if step.op == LEAF_OP:  # a leaf's step carries the sum that went into its .grad
            assert step.grad_out_norm == pytest.approx(np.linalg.norm(step.node.grad.numpy()), rel=1e-12)


def test_trace_norms_equal_what_pytorch_hooks_see():
    torch = pytest.importorskip("torch")

    class Torch:
        layer_norm = staticmethod(torch.nn.functional.layer_norm)
        q = torch.tensor(Q)

    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (X, W, B))
    t_tensors = _expression(Torch, tx, tw, tb)
    seen: dict[int, float] = {}
    for i, t in enumerate(t_tensors):
        t.register_hook(lambda g, i=i: seen.__setitem__(i, float(g.norm())))
    t_tensors[-1].backward()

    x, w, b = _leaves()
    tensors = _expression(_Numpygpt, x, w, b)
    which = {id(t.grad_fn): i for i, t in enumerate(tensors)}
    with trace_backward(file=None) as tracer:
        tensors[-1].backward()
    ops_seen = [s for s in tracer.steps if s.op != LEAF_OP]
    assert len(ops_seen) == len(t_tensors)
    for step in ops_seen:  # dL/d(each op's output): the gradient torch's hook on that tensor receives
        assert step.grad_out_norm == pytest.approx(seen[which[id(step.node)]], rel=1e-10), step.op
    matmul = ops_seen[-1]  # what MatMul passes on is the leaves' gradients in torch
    assert matmul.passed_norms == pytest.approx([float(tx.grad.norm()), float(tw.grad.norm())], rel=1e-10)
    add = next(s for s in ops_seen if s.op == "Add")  # b's gradient, already summed back over the rows
    assert add.passed_shapes == [(2, 4), (4,)] and add.passed_norms[1] == pytest.approx(float(tb.grad.norm()))


def test_a_gpt_trace_matches_pytorch_module_by_module():
    torch = pytest.importorskip("torch")
    import torch_gpt

    model, loss = _gpt(double=True)
    t_model = torch_gpt.GPTModel(graph.TINY_GPT_CONFIG).double()
    torch_gpt.load_numpy_state_dict(t_model, model.state_dict())
    seen: dict[str, float] = {}

    def hook(path):
        def on_output(module, args, out) -> None:
            out.register_hook(lambda g: seen.__setitem__(path, float(g.norm())))
        return on_output

    for path, module in t_model.named_modules():
        if path:
            module.register_forward_hook(hook(path))
    ids = torch.tensor(graph.TINY_GPT_IDS)
    t_logits = t_model(ids[:, :-1])
    torch.nn.functional.cross_entropy(t_logits.flatten(0, 1), ids[:, 1:].flatten()).backward()

    params = dict(model.named_parameters())
    with trace_backward(file=None, params=params) as tracer:
        loss.backward()
    outputs = [s for s in tracer.steps if s.op in {"Linear", "LayerNorm", "GELUTanh", "Embedding"}]
    assert len(outputs) == 13  # 7 Linear, 3 LayerNorm, 1 GELU, 2 Embedding
    for step in outputs:  # each of these ops is its module's output
        assert step.grad_out_norm == pytest.approx(seen[step.scope], rel=1e-9), step.scope
    t_params = dict(t_model.named_parameters())
    accumulated = [s for s in tracer.steps if s.op == LEAF_OP]
    assert {s.name for s in accumulated} == set(params)
    for step in accumulated:
        assert step.grad_out_norm == pytest.approx(float(t_params[step.name].grad.norm()), rel=1e-9), step.name


def _gpt(double: bool = False):
    numpygpt.manual_seed(123)
    model = GPTModel(graph.TINY_GPT_CONFIG)
    if double:
        model.double()
    with graph.module_scopes(model):
        logits = model(graph.TINY_GPT_IDS[:, :-1])
    return model, F.cross_entropy(logits, graph.TINY_GPT_IDS[:, 1:])


# ----------------------------------------------------------------------------- filters and printing


def test_filters_keep_a_module_or_some_ops():
    model, loss = _gpt()
    params = dict(model.named_parameters())
    loss.backward(retain_graph=True)
    with trace_backward("trf_blocks.0.att", file=None, params=params) as att:
        loss.backward(retain_graph=True)
    assert att.steps and all(s.scope.startswith("trf_blocks.0.att") for s in att.steps)
    assert {"Softmax", "MatMul", "Linear", LEAF_OP} <= {s.op for s in att.steps}
    assert {s.name for s in att.steps if s.op == LEAF_OP} == {f"trf_blocks.0.att.{n}" for n in (
        "W_query.weight", "W_key.weight", "W_value.weight", "out_proj.weight", "out_proj.bias")}
    with trace_backward({"LayerNorm", "Softmax"}, file=None) as some:
        loss.backward(retain_graph=True)
    assert [s.op for s in some.steps] == ["LayerNorm", "LayerNorm", "Softmax", "LayerNorm"]
    assert [s.scope for s in some.steps] == ["final_norm", "trf_blocks.0.norm2", "trf_blocks.0.att", "trf_blocks.0.norm1"]
    with trace_backward(file=None, scope="trf_blocks.0", ops={"LayerNorm"}, leaves=False) as both:
        loss.backward(retain_graph=True)
    assert [s.scope for s in both.steps] == ["trf_blocks.0.norm2", "trf_blocks.0.norm1"]
    with trace_backward(lambda s: s.grad_out_norm > 1, file=None) as big:
        loss.backward()
    assert big.steps and all(s.grad_out_norm > 1 for s in big.steps)
    assert [s.index for s in some.steps] == sorted(s.index for s in some.steps)  # the engine's numbers
    assert some.steps[-1].index - some.steps[0].index > 3


def test_prefix_filter_matches_whole_path_components():
    _, loss = _gpt()
    with trace_backward("trf_blocks.0.att.W", file=None) as tracer:
        loss.backward()
    assert tracer.steps == []


def test_the_printout_names_ops_gradients_and_formulas():
    model, loss = _gpt()
    out = io.StringIO()
    with trace_backward(file=out, params=dict(model.named_parameters())):
        loss.backward()
    text = out.getvalue()
    assert text.startswith("   1  CrossEntropy\n        g () ‖1‖  →  dlogits (6, 17) ‖")
    assert "dlogits = (probs - q) * (the weight each row has in the reduction)," in text
    assert "dtargets None" in text
    assert "Softmax  @ trf_blocks.0.att" in text and "dx = out ⊙ (g - Σⱼ gⱼ outⱼ)" in text
    assert "AccumulateGrad  tok_emb.weight (17, 8)" in text and ".grad += g" in text
    quiet = io.StringIO()
    with trace_backward(file=quiet, formulas=False):
        _gpt()[1].backward()
    assert "dx = out ⊙" not in quiet.getvalue() and "Softmax" in quiet.getvalue()


def test_the_trace_prints_to_stdout_by_default(capsys):
    x = numpygpt.tensor([1.0, 2.0], requires_grad=True)
    with trace_backward():
        (x * x).sum().backward()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "   1  Sum" and lines[3] == "   2  Mul" and lines[-3].startswith("   3  AccumulateGrad  leaf (2,)")


def test_two_backward_calls_in_one_trace_are_two_walks():
    x, w, b = _leaves()
    loss = _expression(_Numpygpt, x, w, b)[-1]
    with trace_backward(file=None) as tracer:
        loss.backward(retain_graph=True)
        loss.backward()
    leaves = [s for s in tracer.steps if s.op == LEAF_OP]
    assert len(tracer.steps) == 2 * 10 and len(leaves) == 6
    assert [s.node for s in tracer.steps[:10]] == [s.node for s in tracer.steps[10:]]


def test_the_observer_is_removed_when_backward_fails():
    x = numpygpt.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"), trace_backward(file=None):
        y.backward()
    assert autograd.backward_observers == []


# ----------------------------------------------------------------------------- formulas


def test_every_function_states_a_gradient_formula():
    classes = list(_function_classes())
    assert len(classes) >= 45
    for cls in classes:
        formula = gradient_formula(cls)
        assert formula, f"{cls.__name__}: no gradient formula in its docstring"
        assert any(t in formula for t in ("d", "∂", "gradient")), cls.__name__


def test_formulas_are_read_from_each_docstring_style():
    assert gradient_formula(ops.Mul) == "da = g * b,  db = g * a"                  # after the ';'
    assert gradient_formula(ops.Maximum).startswith("da = g where a > b")          # on the next line
    assert gradient_formula(ops.Softmax).splitlines()[-1] == "dx = out ⊙ (g - Σⱼ gⱼ outⱼ)"  # backward:
    layer_norm = gradient_formula(functional.LayerNorm).splitlines()
    assert layer_norm[0] == "per row of n normalised elements:" and layer_norm[1].startswith("db = Σ_rows g")
    assert layer_norm[-1].startswith("     ^ direct term")                        # the carets keep their place
    assert "gradient goes to the index" in gradient_formula(reductions.Max)        # a paragraph about it
    assert gradient_formula(Function) == ""


def test_input_names_come_from_forward():
    assert input_names(ops.Mul, 2) == ["a", "b"]
    assert input_names(functional.Linear, 3) == ["x", "w", "b"]
    assert input_names(ops.Cat, 3) == ["xs[0]", "xs[1]", "xs[2]"]
    assert input_names(losses.CrossEntropy, 2) == ["logits", "targets"]
    assert isinstance(numpygpt.tensor([1.0], requires_grad=True).sum().grad_fn, Context)
