"""The autograd graph as a picture: Graphviz DOT of what backward walks, with gradients.

    loss = ...                                    # a forward pass records the graph
    watch = numpygpt.graph.GradientWatch()
    with watch:
        loss.backward(retain_graph=True)          # keep the graph alive to draw it afterwards
    dot = numpygpt.graph.to_dot(loss, params=dict(model.named_parameters()), grads=watch)
    numpygpt.graph.render(dot, "graph.svg")       # needs Graphviz's `dot`; "graph.dot" does not

Boxes are ops: their `Function` name and the shape and dtype they produced.
Ellipses are leaves, named when `params` names them. An edge points from an
input to the op that used it, the direction of the forward pass; backward
walks the edges the other way. The loss's own op is green. In the SVG, hover
over an op to read its gradient formula.

With `grads`, each node shows ‖grad‖, the norm of dL/d(its output). Small
tensors (≤ 6 elements) show their values and gradients themselves, as
micrograd does ("data -2 | grad 0.5"). The engine keeps no op's output (as in
PyTorch, it is freed as soon as the forward lets go of it), so an op's values
are known only for the output itself, for tensors named in `params`, and
for tensors that called `retain_grad()`.

`module_scopes(model)` records which module made each op, and `to_dot` draws
each module as a cluster. `example(name)` builds the graphs of `numpygpt graph
--example NAME`: a micrograd-style expression of scalars, a 2×3 matrix layer,
and a tiny GPT's loss.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from . import autograd
from . import functional as F
from .autograd import Context, topological_order
from .creation import tensor as _tensor
from .model import GPTModel
from .module import Module
from .random import manual_seed
from .tensor import Tensor
from .trace import grad_norm, gradient_formula, input_names

SMALL = 6  # tensors with at most this many elements show their values (values="small")
_LEAF_FILL, _OUTPUT_FILL = "#dbeafe", "#dcfce7"
_CLUSTER_FILLS = ("#eef2f7", "#f8fafc")  # nested clusters alternate

# ----------------------------------------------------------------------------- recording: scopes and gradients


@contextlib.contextmanager
def module_scopes(model: Module) -> Iterator[Module]:
    """Inside `with module_scopes(model):`, each op recorded in a submodule's forward remembers the
    module's path ("trf_blocks.0.att.W_query") as `ctx.scope`; `to_dot` draws one cluster per path.

    A forward pre-hook on every named submodule opens `autograd.scope(path)` and a forward hook
    closes it, so a nested module's path wins while it runs and the outer one is back after it.
    The hooks are removed when the block ends.
    """
    opened: list[tuple[Module, contextlib.AbstractContextManager]] = []

    def opener(path: str):
        def pre_hook(module: Module, args: tuple[Any, ...]) -> None:
            scope = autograd.scope(path)
            scope.__enter__()
            opened.append((module, scope))
        return pre_hook

    def closer(module: Module, args: tuple[Any, ...], output: Any) -> None:
        while opened:  # its own scope, and any a failed inner forward left open
            owner, scope = opened.pop()
            scope.__exit__(None, None, None)
            if owner is module:
                break

    handles = []
    for path, module in model.named_modules():
        if path:
            handles += [module.register_forward_pre_hook(opener(path)), module.register_forward_hook(closer)]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()
        while opened:
            opened.pop()[1].__exit__(None, None, None)


class GradientWatch:
    """Records, during the backward passes run inside `with watch:`, the gradient that reaches
    each op: dL/d(its output), the `g` of its backward. Pass it to `to_dot(grads=watch)`.

    It keeps each gradient's norm, and the gradient itself when it has at most `max_elements`
    elements (None: always). A node visited by several backward calls keeps the last one's.
    Leaves need no watch: their gradient is their `.grad`.
    """

    def __init__(self, max_elements: int | None = SMALL) -> None:
        self.max_elements = max_elements
        self.norms: dict[int, float] = {}
        self.values: dict[int, np.ndarray] = {}
        self._nodes: dict[int, Context] = {}  # holds each node, so that its id stays its own

    def __enter__(self) -> GradientWatch:
        autograd.backward_observers.append(self._observe)
        return self

    def __exit__(self, *exc: object) -> None:
        autograd.backward_observers.remove(self._observe)

    def _observe(self, node: Context, g: np.ndarray, passed: list[Any]) -> None:
        key = id(node)
        self._nodes[key], self.norms[key] = node, grad_norm(g)
        if self.max_elements is None or g.size <= self.max_elements:
            self.values[key] = g.copy()
        else:
            self.values.pop(key, None)

    def norm(self, node: Context) -> float | None:
        """‖dL/d(node's output)‖, or None if no backward reached the node."""
        return self.norms.get(id(node))

    def value(self, node: Context) -> np.ndarray | None:
        """dL/d(node's output) itself, if it was small enough to keep."""
        return self.values.get(id(node))


# ----------------------------------------------------------------------------- DOT


def to_dot(tensor: Tensor, params: Mapping[str, Tensor] | None = None, grads: GradientWatch | bool | None = None,
           values: str | None = "small", max_nodes: int = 5000, clusters: bool = True) -> str:
    """DOT source for the graph that produced `tensor`: one box per op, one ellipse per leaf.

    params     names for tensors: leaves (`dict(model.named_parameters())`) and, for a small
               expression, intermediate results too (their op then shows the name and values).
    grads      a `GradientWatch` that saw the backward, to label each node with ‖grad‖
               (leaves with their `.grad`); True labels the leaves, and the ops whose output
               called `retain_grad()`, without a watch. Drawing after backward needs the graph
               alive: call `loss.backward(retain_graph=True)`.
    values     "small" (default): values and gradients of tensors with ≤ 6 elements;
               "all": of every tensor (large ones summarised); None: none.
    max_nodes  draw at most this many nodes: the first ones backward meets, nearest the output.
    clusters   draw each module path (`ctx.scope`, see `module_scopes`) as a cluster.
    """
    root = _drawable_root(tensor)
    show = _value_policy(values)
    order = topological_order(root)[::-1]  # the output's op first, as backward meets them
    nodes = order[:max_nodes]
    if any(isinstance(n, Context) and n.freed for n in nodes):
        raise ValueError(_FREED)
    _check_watch(grads, root)
    names, known = _names(params, tensor)
    ids = {id(n): f"n{i}" for i, n in enumerate(nodes)}
    statements = {ids[id(n)]: _node_statement(ids[id(n)], n, n is root, names, known, grads, show) for n in nodes}
    scopes = _node_scopes(nodes, ids, names) if clusters else {}
    lines = ["digraph autograd {", '  rankdir="TB";', '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=8, color="#64748b", fontcolor="#64748b"];']
    lines += _cluster_lines(statements, scopes)
    lines += _edges(nodes, ids)
    if len(order) > len(nodes):
        lines.append(f'  truncated [label="... {len(order) - len(nodes)} more nodes (max_nodes={max_nodes})", '
                     'shape=plaintext];')
    return "\n".join(lines + ["}"]) + "\n"


_FREED = ("to_dot: the graph was freed by backward(); draw it before calling backward, or call "
          "loss.backward(retain_graph=True) to draw it afterwards, with its gradients")


def _drawable_root(tensor: Any) -> Context:
    """The tensor's node, or a clear error for what cannot be drawn."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    if tensor.grad_fn is None:
        raise ValueError("to_dot: this tensor has no graph (a leaf, or made under no_grad())")
    if tensor.grad_fn.freed:
        raise ValueError(_FREED)
    return tensor.grad_fn


def _value_policy(values: str | None) -> str | None:
    if values in (None, False, "none"):
        return None
    if values not in ("small", "all"):
        raise ValueError(f"to_dot: values must be 'small', 'all' or None, got {values!r}")
    return values


def _check_watch(grads: Any, root: Context) -> None:
    """A watch that saw no backward of this graph is a mistake worth naming."""
    if isinstance(grads, GradientWatch) and grads.norm(root) is None:
        raise ValueError("to_dot: the GradientWatch saw no backward of this graph; run "
                         "`with watch: loss.backward(retain_graph=True)` before drawing")


def _names(params: Mapping[str, Tensor] | None, output: Tensor) -> tuple[dict[int, str], dict[int, Tensor]]:
    """Names by id of leaf or node, and the tensors whose values are known, by id of their node."""
    names: dict[int, str] = {}
    known: dict[int, Tensor] = {id(output.grad_fn): output}
    for name, t in (params or {}).items():
        if isinstance(t, Tensor):
            names.setdefault(id(t.grad_fn if t.grad_fn is not None else t), name)  # a tied weight: its first name
            if t.grad_fn is not None:
                known.setdefault(id(t.grad_fn), t)
    return names, known


def _node_statement(nid: str, node: Any, is_output: bool, names: dict[int, str], known: dict[int, Tensor],
                    grads: Any, show: str | None) -> str:
    """The DOT line that declares one node, with its label and tooltip."""
    name = names.get(id(node))
    norm, grad = _grad_of(node, grads)
    if isinstance(node, Context):
        data = known.get(id(node), node.retained_output)
        title = node.fn.__name__ if name is None else f"{name} = {node.fn.__name__}"
        lines = [title, _shape(node.output_shape, node.output_dtype)]
        lines += _value_lines(None if data is None else data.data, grad, norm, show)
        tip = node.fn.__name__ + (f" in {node.scope}" if node.scope else "") + ":\n" + gradient_formula(node.fn)
        fill = _OUTPUT_FILL if is_output else "white"
        return (f'{nid} [label="{_label(lines)}", shape=box, style="rounded,filled", fillcolor="{fill}", '
                f'tooltip="{_escape(tip)}"];')
    lines = [name or "leaf", _shape(node.shape, node.dtype)] + _value_lines(node.data, grad, norm, show)
    return f'{nid} [label="{_label(lines)}", shape=ellipse, style=filled, fillcolor="{_LEAF_FILL}"];'


def _grad_of(node: Any, grads: Any) -> tuple[float | None, np.ndarray | None]:
    """(‖dL/d output‖, the gradient itself when known) of a node or leaf, or Nones."""
    if not grads:
        return None, None
    if not isinstance(node, Context):
        g = None if node.grad is None else node.grad.data
    elif isinstance(grads, GradientWatch):
        return grads.norm(node), grads.value(node)
    else:
        kept = node.retained_output
        g = None if kept is None or kept.grad is None else kept.grad.data
    return (None, None) if g is None else (grad_norm(g), g)


def _value_lines(data: np.ndarray | None, grad: np.ndarray | None, norm: float | None, show: str | None) -> list[str]:
    """The value lines of a label: `data 0.5 | grad -1.2` for a scalar; otherwise `data [[...]]`,
    then `grad [[...]]` or `‖grad‖ 0.1`, each as far as it is known and shown."""
    def shown(a: np.ndarray | None) -> bool:
        return a is not None and show is not None and (show == "all" or a.size <= SMALL)

    if shown(data) and shown(grad) and data.ndim == 0:
        return [f"data {_number(data)} | grad {_number(grad)}"]
    lines = ("data " + _array(data)).splitlines() if shown(data) else []
    if shown(grad):
        lines += ("grad " + _array(grad)).splitlines()
    elif norm is not None:
        lines.append(f"‖grad‖ {norm:.4g}")
    return lines


def _number(a: np.ndarray) -> str:
    return f"{float(a):.4g}"


def _array(a: np.ndarray) -> str:
    """A small array compactly: [[0.1, 0.2, 0.3], [...]] with one row per line."""
    if a.ndim == 0:
        return _number(a)
    return np.array2string(np.asarray(a, dtype=np.float64), precision=4, separator=", ", threshold=24,
                           edgeitems=2, max_line_width=60, suppress_small=True)


def _shape(shape: tuple[int, ...], dtype: Any) -> str:
    return f"{tuple(shape)} {np.dtype(dtype).name}"


def _escape(text: str) -> str:
    """Text inside a DOT string: backslashes and quotes escaped, newlines as DOT's \\n."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _label(lines: list[str]) -> str:
    return "\\n".join(_escape(line) for line in lines)


def _edges(nodes: list[Any], ids: dict[int, str]) -> list[str]:
    """input -> op, labelled with the input's name in the op's forward when it has several inputs."""
    lines = []
    for node in nodes:
        if not isinstance(node, Context):
            continue
        names = input_names(node.fn, len(node.parents))
        for name, parent in zip(names, node.parents):
            if parent is not None and id(parent) in ids:
                label = f' [label="{_escape(name)}"]' if len(node.parents) > 1 else ""
                lines.append(f"  {ids[id(parent)]} -> {ids[id(node)]}{label};")
    return lines


def _node_scopes(nodes: list[Any], ids: dict[int, str], names: dict[int, str]) -> dict[str, str]:
    """The module path to draw each node in: an op's scope; a parameter's module, when ops ran there."""
    scopes = {ids[id(n)]: n.scope for n in nodes if isinstance(n, Context) and n.scope}
    known = {prefix for scope in scopes.values() for prefix in _prefixes(scope)}
    for n in nodes:
        module = names.get(id(n), "").rpartition(".")[0] if not isinstance(n, Context) else ""
        while module and module not in known:
            module = module.rpartition(".")[0]
        if module:
            scopes[ids[id(n)]] = module
    return scopes


def _prefixes(path: str) -> list[str]:
    """The path and every module around it: "a.b.c" gives ["a", "a.b", "a.b.c"]."""
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _cluster_lines(statements: dict[str, str], scopes: dict[str, str]) -> list[str]:
    """The node statements, each inside the nested `subgraph cluster_...` blocks of its module path.

    A path with no node of its own and a single sub-path ("trf_blocks" around "trf_blocks.0")
    draws no box of its own; each box is labelled relative to the box around it."""
    members: dict[str | None, list[str]] = defaultdict(list)
    for nid in statements:
        members[scopes.get(nid)].append(nid)
    children: dict[str | None, list[str]] = defaultdict(list)
    paths = {prefix for path in members if path for prefix in _prefixes(path)}
    for path in sorted(paths):
        children[path.rpartition(".")[0] or None].append(path)
    lines = [f"  {statements[nid]}" for nid in members[None]]

    def emit(path: str, outer: str | None, indent: str) -> None:
        own, inner = members.get(path, []), children.get(path, [])
        if not own and len(inner) == 1:
            return emit(inner[0], outer, indent)
        label = path[len(outer) + 1:] if outer else path
        lines.append(f"{indent}subgraph cluster_{len(lines)} {{")
        lines.append(f'{indent}  label="{_escape(label)}"; labeljust="l"; fontname="Helvetica"; fontsize=9; '
                     f'style="rounded,filled"; color="#94a3b8"; fillcolor="{_CLUSTER_FILLS[len(indent) // 2 % 2]}";')
        lines.extend(f"{indent}  {statements[nid]}" for nid in own)
        for sub in inner:
            emit(sub, path, indent + "  ")
        lines.append(f"{indent}}}")

    for top in children[None]:
        emit(top, None, "  ")
    return lines


# ----------------------------------------------------------------------------- rendering


class GraphvizNotFound(RuntimeError):
    """Graphviz's `dot` program is missing: the DOT source was written to `dot_path` instead."""

    def __init__(self, message: str, dot_path: Path) -> None:
        super().__init__(message)
        self.dot_path = dot_path


_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


def render(dot_source: str, path: str | Path, timeout: float = 60.0) -> Path:
    """Write `dot_source` to `path`: as is for .dot/.gv, or drawn by Graphviz for .svg, .png, .pdf.

    Drawing runs Graphviz's `dot` program. When it is not installed, the source is written
    next to `path` as a .dot file and `GraphvizNotFound` says how to install Graphviz and
    how to draw that file later. Returns the path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".dot", ".gv", *_FORMATS):
        raise ValueError(f"render: cannot write {path.name}: use a .dot, .gv, .svg, .png or .pdf path")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".dot", ".gv"):
        path.write_text(dot_source, encoding="utf-8")
        return path
    exe = shutil.which("dot")
    if exe is None:
        dot_path = path.with_suffix(".dot")
        dot_path.write_text(dot_source, encoding="utf-8")
        raise GraphvizNotFound(
            f"Graphviz's `dot` program is not installed, so {path} was not drawn; the graph was "
            f"written to {dot_path} instead.\nInstall Graphviz (Debian/Ubuntu: apt-get install graphviz; "
            f"macOS: brew install graphviz; conda: conda install graphviz), then draw it with:\n"
            f"  dot -T{_FORMATS[suffix]} {dot_path} -o {path}", dot_path)
    try:
        done = subprocess.run([exe, f"-T{_FORMATS[suffix]}", "-o", str(path)], input=dot_source.encode("utf-8"),
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"render: Graphviz took more than {timeout:g} s to draw {path}; "
                           "write a .dot file, or draw fewer nodes (to_dot's max_nodes)") from error
    if done.returncode != 0:
        raise RuntimeError(f"render: Graphviz failed to draw {path}: {done.stderr.decode(errors='replace').strip()}")
    return path


# ----------------------------------------------------------------------------- the built-in examples

TINY_GPT_CONFIG = {"vocab_size": 17, "context_length": 8, "emb_dim": 8, "n_heads": 2, "n_layers": 1,
                   "drop_rate": 0.0, "qkv_bias": False}
TINY_GPT_IDS = np.array([[3, 1, 4, 1, 5, 9, 2]])  # inputs are ids[:, :-1], targets ids[:, 1:]


def _scalar_example() -> tuple[Tensor, dict[str, Tensor]]:
    """micrograd's README expression, shortened: g = f/2 + 10/f with f = (c - d)², c = a + b,
    d = a·b + b³, for a = -4, b = 2 (g = 4.5; dg/da = -0.5, dg/db = -3.5)."""
    a = _tensor(-4.0, dtype=np.float64, requires_grad=True)
    b = _tensor(2.0, dtype=np.float64, requires_grad=True)
    c = a + b
    ab, b3 = a * b, b**3
    d = ab + b3
    e = c - d
    f = e**2
    half, ten_over = f / 2.0, 10.0 / f
    g = half + ten_over
    return g, {"a": a, "b": b, "c": c, "a*b": ab, "b**3": b3, "d": d, "e": e, "f": f,
               "f/2": half, "10/f": ten_over, "g": g}


def _matrix_example() -> tuple[Tensor, dict[str, Tensor]]:
    """One tanh layer on a batch of two: loss = tanh(x @ w + b).sum(), x (2, 2), w (2, 3), b (3,)."""
    x = _tensor([[0.5, -1.0], [1.5, 0.2]], dtype=np.float64, requires_grad=True)
    w = _tensor([[0.3, -0.2, 0.1], [0.4, 0.25, -0.5]], dtype=np.float64, requires_grad=True)
    b = _tensor([0.1, -0.1, 0.0], dtype=np.float64, requires_grad=True)
    xw = x @ w
    h = xw + b
    t = h.tanh()
    loss = t.sum()
    return loss, {"x": x, "w": w, "b": b, "xw": xw, "h": h, "t": t, "loss": loss}


def _gpt_example() -> tuple[Tensor, dict[str, Tensor]]:
    """A one-block GPT (vocabulary 17, 8 wide, 2 heads) and its cross-entropy on fixed ids,
    recorded under `module_scopes`, so each op knows its module."""
    manual_seed(123)
    model = GPTModel(TINY_GPT_CONFIG)
    with module_scopes(model):
        logits = model(TINY_GPT_IDS[:, :-1])                      # (1, 6, 17)
    loss = F.cross_entropy(logits, TINY_GPT_IDS[:, 1:])
    return loss, dict(model.named_parameters())


EXAMPLES = {"scalar": _scalar_example, "matrix": _matrix_example, "gpt": _gpt_example}


def example(name: str) -> tuple[Tensor, dict[str, Tensor]]:
    """(output, names) of a built-in example: "scalar" (micrograd's expression of scalars),
    "matrix" (tanh(x @ w + b).sum() with a 2×3 result) or "gpt" (a tiny GPT's loss)."""
    return _build(name)


def _build(name: str) -> tuple[Tensor, dict[str, Tensor]]:
    if name not in EXAMPLES:
        raise ValueError(f"the example must be one of {', '.join(EXAMPLES)}; got {name!r}")
    return EXAMPLES[name]()


def main(example: str = "gpt", out: str | Path = "graph.svg", grads: bool = True, values: str | None = "small",
         clusters: bool = True, max_nodes: int = 5000) -> int:
    """`numpygpt graph`: draw a built-in example's graph (after its backward, with `grads`) to `out`.

    Prints what it wrote. Without Graphviz, writes the .dot file, prints how to install
    Graphviz and draw it, and still succeeds. Returns the exit status (2 for a bad argument).
    """
    try:
        output, names = _build(example)
        watch = GradientWatch() if grads else None
        if watch is not None:
            with watch:
                output.backward(retain_graph=True)
        dot = to_dot(output, names, grads=watch, values=values, max_nodes=max_nodes, clusters=clusters)
        written = render(dot, out)
    except GraphvizNotFound as missing:
        print(missing)
        return 0
    except ValueError as error:
        print(f"numpygpt graph: error: {error}", file=sys.stderr)
        return 2
    order = topological_order(output.grad_fn)
    ops = sum(isinstance(n, Context) for n in order)
    print(f"wrote {written}: the {example} example's graph, {ops} ops and {len(order) - ops} leaves")
    return 0
