"""The autograd graph drawn as DOT: nodes, names, clusters, gradients, rendering and the examples."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import numpygpt
from numpygpt import autograd, graph, nn
from numpygpt import functional as F
from numpygpt.autograd import Context
from numpygpt.graph import GradientWatch, module_scopes, to_dot
from numpygpt.model import GPTModel

HAS_DOT = shutil.which("dot") is not None
DOCS_SVG = Path(__file__).resolve().parent.parent / "docs" / "graph.svg"


def _loss():
    numpygpt.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 1))
    return m, nn.MSELoss()(m(numpygpt.randn(2, 3)), numpygpt.zeros(2, 1))


def _tiny_gpt(scoped: bool = True):
    """The tiny GPT of `graph.example("gpt")`, its logits (retaining their grad) and loss."""
    numpygpt.manual_seed(123)
    model = GPTModel(graph.TINY_GPT_CONFIG)
    ids = graph.TINY_GPT_IDS
    if scoped:
        with module_scopes(model):
            logits = model(ids[:, :-1])
    else:
        logits = model(ids[:, :-1])
    logits.retain_grad()
    return model, logits, F.cross_entropy(logits, ids[:, 1:])


def _walk(output: numpygpt.Tensor) -> tuple[list[Context], list[numpygpt.Tensor]]:
    """Distinct nodes and leaves reachable from `output`, found independently of the engine."""
    nodes, leaves, seen, stack = [], [], set(), [output.grad_fn]
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, Context):
            nodes.append(n)
            stack.extend(n.parents)
        else:
            leaves.append(n)
    return nodes, leaves


def _statements(dot: str) -> dict[str, str]:
    """Each drawn node's id and its DOT statement."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^\s*(n\d+) \[.*\];$", dot, re.MULTILINE)}


def _label(dot: str, first_line: str) -> str:
    """The label of the node whose label starts with `first_line`."""
    (label,) = re.findall(r'label="(' + re.escape(first_line) + r'\\n[^"]*)"', dot)
    return label


# ----------------------------------------------------------------------------- the drawing


def test_dot_names_every_op_and_parameter():
    m, loss = _loss()
    dot = to_dot(loss, dict(m.named_parameters()))
    assert dot.startswith("digraph autograd {") and dot.rstrip().endswith("}")
    for op in ("Mean", "Pow", "Sub", "Linear", "GELU"):
        assert f'label="{op}\\n' in dot
    for name, p in m.named_parameters():
        assert f"{name}\\n{tuple(p.shape)} float32" in dot
    # 6 ops (Linear twice) and 4 parameters, each drawn once; no gradient without `grads`
    assert dot.count("shape=box") == 6 and dot.count('fillcolor="#dbeafe"') == 4
    assert "‖grad‖" not in dot and "| grad" not in dot


def test_dot_refuses_graphs_it_cannot_draw():
    _, loss = _loss()
    with pytest.raises(ValueError, match="no graph"):
        to_dot(numpygpt.tensor(np.ones(2)))
    loss.backward()
    with pytest.raises(ValueError, match="freed.*retain_graph=True"):
        to_dot(loss)
    with pytest.raises(TypeError):
        to_dot(np.ones(2))
    with pytest.raises(ValueError, match="values"):
        to_dot(_loss()[1], values="some")


def test_tiny_gpt_node_count_is_ops_plus_leaves_and_names_every_parameter():
    model, _, loss = _tiny_gpt()
    params = dict(model.named_parameters())
    dot = to_dot(loss, params)
    nodes, leaves = _walk(loss)
    assert len(_statements(dot)) == len(nodes) + len(leaves)
    assert dot.count("shape=box") == len(nodes) and len(leaves) == len(params)
    for name, p in params.items():
        assert f'label="{name}\\n{tuple(p.shape)} float32' in dot
    edges = re.findall(r"^\s*n\d+ -> n\d+", dot, re.MULTILINE)
    assert len(edges) == sum(p is not None for n in nodes for p in n.parents)


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_tiny_gpt_dot_parses_in_graphviz(tmp_path: Path):
    model, _, loss = _tiny_gpt()
    dot = to_dot(loss, dict(model.named_parameters()))
    done = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    svg = graph.render(dot, tmp_path / "g.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "trf_blocks.0.att.W_query.weight" in svg


def test_module_scopes_label_ops_with_the_innermost_module_and_clean_up():
    model, _, loss = _tiny_gpt()
    nodes, _ = _walk(loss)
    scopes = {n.scope for n in nodes}
    assert {"tok_emb", "pos_emb", "trf_blocks.0.norm1", "trf_blocks.0.att", "trf_blocks.0.att.W_query",
            "trf_blocks.0.ff.layers.1", "final_norm", "out_head", None} <= scopes
    by_op = {(n.fn.__name__, n.scope) for n in nodes}
    assert ("Softmax", "trf_blocks.0.att") in by_op          # the outer path is back after W_query's forward
    assert ("CrossEntropy", None) in by_op                   # the loss ran outside the model
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    assert getattr(autograd._state, "scope", None) is None


def test_module_scopes_restore_the_scope_when_a_forward_fails():
    numpygpt.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(4, 1))
    with pytest.raises(ValueError), module_scopes(m):
        m(numpygpt.randn(1, 3))
    assert getattr(autograd._state, "scope", None) is None
    assert all(not c._forward_pre_hooks for c in m.modules())


def test_clusters_follow_module_paths():
    model, _, loss = _tiny_gpt()
    dot = to_dot(loss, dict(model.named_parameters()))
    labels = re.findall(r'subgraph cluster_\d+ \{\s*label="([^"]+)"', dot)
    assert {"trf_blocks.0", "att", "W_query", "norm1", "ff.layers", "tok_emb", "final_norm", "out_head"} <= set(labels)
    assert "trf_blocks" not in labels  # a path with one sub-path and nothing of its own draws no box
    att = dot[dot.index('label="att"'):]
    assert att.index("Softmax") < att.index('label="trf_blocks.0.norm2')  # Softmax sits inside att
    assert "subgraph" not in to_dot(loss, clusters=False)
    assert "subgraph" not in to_dot(_tiny_gpt(scoped=False)[2])


# ----------------------------------------------------------------------------- gradients


def test_grad_norms_are_the_gradients_norms():
    model, logits, loss = _tiny_gpt()
    watch = GradientWatch()
    with watch:
        loss.backward(retain_graph=True)
    assert watch._observe not in autograd.backward_observers
    params = dict(model.named_parameters())
    dot = to_dot(loss, {**params, "logits": logits}, grads=watch)
    for name in ("trf_blocks.0.att.W_query.weight", "out_head.weight", "final_norm.shift"):
        norm = float(np.linalg.norm(params[name].grad.numpy().astype(np.float64)))
        assert f"‖grad‖ {norm:.4g}" in _label(dot, name)
    norm = float(np.linalg.norm(logits.grad.numpy().astype(np.float64)))
    assert watch.norm(logits.grad_fn) == pytest.approx(norm, rel=1e-12)
    assert f"‖grad‖ {norm:.4g}" in _label(dot, "logits = Linear")
    assert "data 2.9" in _label(dot, "CrossEntropy") and "| grad 1" in _label(dot, "CrossEntropy")


def test_grads_true_shows_leaves_and_retained_grads_without_a_watch():
    numpygpt.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 1))
    pred = m(numpygpt.randn(2, 3))
    pred.retain_grad()
    loss = nn.MSELoss()(pred, numpygpt.zeros(2, 1))
    loss.backward(retain_graph=True)
    dot = to_dot(loss, {**dict(m.named_parameters()), "pred": pred}, grads=True)
    norm = float(np.linalg.norm(m[0].weight.grad.numpy().astype(np.float64)))
    assert f"‖grad‖ {norm:.4g}" in _label(dot, "0.weight")      # 12 elements: the norm
    g = pred.grad.numpy()
    assert f"grad [[{g[0, 0]:.4f}]," in _label(dot, "pred = Linear")  # 2 elements: the values
    assert "grad" not in _label(dot, "GELU")                      # no watch, no retain_grad: unknown


def test_a_watch_that_saw_no_backward_is_refused():
    _, loss = _loss()
    with pytest.raises(ValueError, match="saw no backward"):
        to_dot(loss, grads=GradientWatch())


def test_small_values_are_shown_micrograd_style():
    g, names = graph.example("scalar")
    assert g.item() == pytest.approx(4.5)
    watch = GradientWatch()
    with watch:
        g.backward(retain_graph=True)
    dot = to_dot(g, names, grads=watch)
    assert "data -4 | grad -0.5" in _label(dot, "a") and "data 2 | grad -3.5" in _label(dot, "b")
    assert "data 4 | grad -0.125" in _label(dot, "f = Pow")
    assert "data 4.5 | grad 1" in _label(dot, "g = Add")
    assert "data" not in to_dot(g, names, grads=watch, values=None)
    loss, names = graph.example("matrix")
    with GradientWatch() as watch:
        loss.backward(retain_graph=True)
    dot = to_dot(loss, names, grads=watch)
    assert "data [[ 0.5, -1. ],\\n [ 1.5,  0.2]]" in _label(dot, "x")
    assert "grad [[1., 1., 1.],\\n [1., 1., 1.]]" in _label(dot, "t = Tanh")


def test_max_nodes_keeps_the_nodes_nearest_the_output():
    _, loss = _loss()
    dot = to_dot(loss, max_nodes=3)
    assert len(_statements(dot)) == 3 and "more nodes (max_nodes=3)" in dot
    assert 'label="Mean\\n' in dot


# ----------------------------------------------------------------------------- rendering and the command


def test_render_without_graphviz_writes_the_dot_file_and_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    with pytest.raises(graph.GraphvizNotFound) as missing:
        graph.render("digraph { a -> b; }\n", tmp_path / "g.svg")
    message = str(missing.value)
    for hint in ("apt-get install graphviz", "brew install graphviz", "conda install graphviz", "g.dot"):
        assert hint in message
    assert missing.value.dot_path.read_text() == "digraph { a -> b; }\n"
    assert not (tmp_path / "g.svg").exists()
    assert graph.render("digraph {}\n", tmp_path / "plain.dot").read_text() == "digraph {}\n"
    with pytest.raises(ValueError, match="jpg"):
        graph.render("digraph {}\n", tmp_path / "g.jpg")


def test_main_without_graphviz_writes_dot_and_succeeds(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    assert graph.main("scalar", str(tmp_path / "g.svg")) == 0
    out = capsys.readouterr().out
    assert "apt-get install graphviz" in out and (tmp_path / "g.dot").exists()
    assert graph.main("nonsense", str(tmp_path / "h.svg")) == 2
    assert "scalar, matrix, gpt" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_main_draws_each_example(tmp_path, capsys):
    for name in graph.EXAMPLES:
        assert graph.main(name, str(tmp_path / f"{name}.svg")) == 0
        assert f"wrote {tmp_path / name}.svg" in capsys.readouterr().out
        assert (tmp_path / f"{name}.svg").read_text().rstrip().endswith("</svg>")


def test_main_writes_dot_source(tmp_path, capsys):
    assert graph.main("gpt", str(tmp_path / "g.dot")) == 0
    assert "33 ops and 18 leaves" in capsys.readouterr().out
    assert "‖grad‖" in (tmp_path / "g.dot").read_text()


def test_the_committed_picture_is_the_gpt_example():
    svg = DOCS_SVG.read_text(encoding="utf-8")
    assert svg.rstrip().endswith("</svg>")
    for text in ("trf_blocks.0.att.W_query.weight", "CrossEntropy", "Softmax", "‖grad‖"):
        assert text in svg
