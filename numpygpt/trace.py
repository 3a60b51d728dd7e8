"""Watch backward work: each step of the chain rule printed as the engine takes it.

    with numpygpt.trace_backward():
        loss.backward()

prints, for every node the walk visits (in the engine's own order, from the
loss back to the leaves), the op, the module that made it, the gradient that
arrived (`g`, dL/d(its output): shape and norm), the gradient it passes on to
each input (`dx`, `dw`, ...), and the formula that computed them, read from
the op's `Function` docstring:

       6  Linear  @ trf_blocks.0.ff.layers.2
            g (1, 6, 8) ‖0.2262‖  →  dx (1, 6, 32) ‖0.1384‖,  dw (8, 32) ‖0.4263‖,  db (8,) ‖0.2068‖
            flattening the leading dims into rows (x2: (N, in), g2: (N, out)):
            dx = g W            (N, out) @ (out, in)
            ...

(step 6 of the tiny GPT of `numpygpt.graph.example("gpt")`).

A leaf (a parameter, or any tensor made with requires_grad=True) appears as
PyTorch names it, `AccumulateGrad`: the step at which the sum of the
gradients its uses passed on is added into its `.grad`.

The trace is an observer of the engine (`autograd.backward_observers`), so it
changes nothing: the same gradients come out, with or without it. A GPT's
backward has dozens of steps; `scope="trf_blocks.0"` keeps one block's,
`ops={"LayerNorm", "Softmax"}` only those ops. Every step kept is also in
`tracer.steps`, for code (and tests) to read.

Op nodes carry their module path only when the forward ran inside
`numpygpt.autograd.scope(...)`; `numpygpt.graph.module_scopes(model)` opens
one around every module's forward.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping, TextIO

import numpy as np

from . import autograd
from .autograd import Context

class _Stdout:
    """The default `file`: whatever `sys.stdout` is when a step is printed, so that
    `contextlib.redirect_stdout` and test capture see the trace."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def __repr__(self) -> str:
        return "sys.stdout"


STDOUT: Any = _Stdout()
LEAF_OP = "AccumulateGrad"
LEAF_FORMULA = ".grad += g   (g: the sum of the gradients its uses passed on)"

# ----------------------------------------------------------------------------- reading an op's docstring


def gradient_formula(fn: type) -> str:
    """The gradient formula stated in a `Function`'s docstring, e.g. "da = g * b,  db = g * a".

    The ops' docstrings state it in one of a few ways, tried in this order:
      1. a "backward:" (or "backward, ...:") paragraph: that paragraph, without the word;
      2. "out = <forward>;  <gradients>" in the first paragraph: the part after the ';';
      3. lines that start with a d-term ("dx = ...", "dy/dx = ..."): those lines;
      4. a paragraph that says where "the gradient" goes: that paragraph.
    Returns "" when the docstring says none of these.
    """
    doc = inspect.getdoc(fn) or ""
    paragraphs = [p for p in doc.split("\n\n") if p.strip()]
    section = _backward_section(paragraphs)
    if section:
        return section
    if paragraphs and ";" in paragraphs[0]:
        return _tidy(paragraphs[0].split(";", 1)[1])
    d_lines = [line.strip() for line in doc.splitlines() if re.match(r"\s*d[^\s=]*\s*=|\s*d\w*/d\w+", line)]
    if d_lines:
        return "\n".join(d_lines)
    return next((_tidy(p) for p in paragraphs if "gradient" in p), "")


def _backward_section(paragraphs: list[str]) -> str:
    """The paragraph that starts with "backward" followed by ':' or ',', without that word."""
    for paragraph in paragraphs:
        match = re.match(r"\s*backward\s*[,:]\s*", paragraph)
        if match:
            return _tidy(paragraph[match.end():])
    return ""


def _tidy(text: str) -> str:
    """The first line stripped, the others dedented together (so a line of carets still points
    at the terms above it), without empty lines."""
    head, _, rest = text.partition("\n")
    lines = [head.strip(), *textwrap.dedent(rest).splitlines()]
    return "\n".join(line.rstrip() for line in lines if line.strip())


def input_names(fn: type, count: int) -> list[str]:
    """The names of a Function's first `count` positional inputs, from its `forward` signature
    ("a", "b" for Mul; "x", "w", "b" for Linear; "xs[0]", "xs[1]" for Cat's *xs)."""
    params = list(inspect.signature(fn.forward).parameters.values())[1:]  # after ctx
    names: list[str] = []
    for p in params:
        if len(names) == count:
            break
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            names += [f"{p.name}[{i}]" for i in range(count - len(names))]
        elif p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
    return names + [f"input{i}" for i in range(len(names), count)]


def grad_norm(array: Any) -> float:
    """The Euclidean (Frobenius) norm of a gradient, computed in float64."""
    a = np.asarray(array, dtype=np.float64)
    return float(np.sqrt(np.sum(a * a)))


def _formula_of(fn: type, cache: dict[type, str] = {}) -> str:  # noqa: B006 (a cache, on purpose)
    if fn not in cache:
        cache[fn] = gradient_formula(fn)
    return cache[fn]


# ----------------------------------------------------------------------------- the steps


@dataclass
class Step:
    """One step of a backward walk: an op applying its local chain rule, or a leaf's accumulation.

    `index` counts every node the walk visited (1 = the loss's own node), so the
    numbers of the steps kept by a filter show where the others were.
    `passed_shapes` / `passed_norms` hold one entry per input of the op, None
    where no gradient goes (an input that needs none, like integer targets).
    """

    index: int
    op: str
    scope: str | None
    grad_out_shape: tuple[int, ...]
    grad_out_norm: float
    inputs: list[str] = field(default_factory=list)
    passed_shapes: list[tuple[int, ...] | None] = field(default_factory=list)
    passed_norms: list[float | None] = field(default_factory=list)
    formula: str = ""
    node: Any = None
    name: str | None = None

    def describe(self, formulas: bool = True) -> str:
        """The step as the trace prints it: a header, the gradients, then the formula."""
        where = f"  {self.name} {self.grad_out_shape}" if self.op == LEAF_OP else ""
        where += f"  @ {self.scope}" if self.scope and self.op != LEAF_OP else ""
        passed = [f"d{n} None" if s is None else f"d{n} {s} ‖{v:.4g}‖"
                  for n, s, v in zip(self.inputs, self.passed_shapes, self.passed_norms)]
        flow = f"g {self.grad_out_shape} ‖{self.grad_out_norm:.4g}‖  →  " + (",  ".join(passed) or ".grad")
        lines = [f"{self.index:>4}  {self.op}{where}", f"        {flow}"]
        if formulas and self.formula:
            lines += [f"        {line}" for line in self.formula.splitlines()]
        return "\n".join(lines)


@dataclass
class _Walk:
    """One backward call as the engine walks it: its order, how far it got, the leaves' sums."""

    order: list[Any]
    position: dict[int, int]
    cursor: int
    leaf_sums: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def starting_at(cls, root: Context) -> _Walk:
        order = autograd.topological_order(root)  # the very order `autograd.backward` walks, reversed
        return cls(order, {id(n): i for i, n in enumerate(order)}, len(order))


# ----------------------------------------------------------------------------- the tracer


class BackwardTrace:
    """The context manager `trace_backward` returns: it observes every backward run inside it.

    `steps` lists the steps kept by the filter, in the engine's order. Leaves
    are reported once the walk has passed them (a leaf's sum is complete only
    after all its uses have been visited); the last ones when the `with` block ends.
    """

    def __init__(self, filter: Any = None, file: TextIO | None = STDOUT, formulas: bool = True, *,
                 scope: str | None = None, ops: Collection[str] | None = None,
                 params: Mapping[str, Any] | None = None, leaves: bool = True) -> None:
        self.scope, self.ops, self.predicate = _split_filter(filter, scope, ops)
        self.file, self.formulas, self.leaves = file, formulas, leaves
        self.names = {id(t): name for name, t in (params or {}).items()}
        self.steps: list[Step] = []
        self._visited, self._leaf_shown = 0, False
        self._walk: _Walk | None = None

    def __enter__(self) -> BackwardTrace:
        autograd.backward_observers.append(self._observe)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._finish_walk()
        finally:
            autograd.backward_observers.remove(self._observe)

    def keeps(self, step: Step) -> bool:
        """Whether the filter keeps `step`: its scope under the prefix, its op among `ops`, the predicate."""
        if self.scope is not None and not _under(step.scope, self.scope):
            return False
        if self.ops is not None and step.op not in self.ops:
            return False
        return self.predicate is None or bool(self.predicate(step))

    def _observe(self, node: Context, g: np.ndarray, passed: list[Any]) -> None:
        """The engine's observer: called for each op node, before its gradients are passed on."""
        walk = self._walk
        position = walk.position.get(id(node)) if walk is not None else None
        if walk is None or position is None or position >= walk.cursor:  # a new backward call
            self._finish_walk()
            walk = self._walk = _Walk.starting_at(node)
            position = walk.position[id(node)]
        self._flush_leaves(walk, stop=position)
        for parent, grad in zip(node.parents, passed):
            if grad is not None and parent is not None and not isinstance(parent, Context):
                key = id(parent)
                walk.leaf_sums[key] = walk.leaf_sums[key] + grad if key in walk.leaf_sums else grad.copy()
        names = input_names(node.fn, len(passed))
        self._record(Step(
            index=0, op=node.fn.__name__, scope=node.scope, grad_out_shape=tuple(g.shape),
            grad_out_norm=grad_norm(g), inputs=names,
            passed_shapes=[None if p is None else tuple(p.shape) for p in passed],
            passed_norms=[None if p is None else grad_norm(p) for p in passed],
            formula=_formula_of(node.fn), node=node))

    def _flush_leaves(self, walk: _Walk, stop: int) -> None:
        """Report the leaves the engine accumulated since the last op: those above `stop` in the order."""
        for i in range(walk.cursor - 1, stop, -1):
            leaf = walk.order[i]
            total = walk.leaf_sums.pop(id(leaf), None) if not isinstance(leaf, Context) else None
            if total is not None:
                name = self.names.get(id(leaf), "leaf")
                self._record(Step(
                    index=0, op=LEAF_OP, scope=name.rpartition(".")[0] or None, grad_out_shape=tuple(total.shape),
                    grad_out_norm=grad_norm(total), formula=LEAF_FORMULA, node=leaf, name=name),
                    is_leaf=True)
        walk.cursor = stop

    def _finish_walk(self) -> None:
        """The walk is over (the `with` ends, or another backward starts): report its last leaves."""
        if self._walk is not None:
            self._flush_leaves(self._walk, stop=-1)
            self._walk = None

    def _record(self, step: Step, is_leaf: bool = False) -> None:
        self._visited += 1
        step.index = self._visited
        if (is_leaf and not self.leaves) or not self.keeps(step):
            return
        self.steps.append(step)
        if self.file is not None:  # a leaf's formula is the same for all: it is printed once
            print(step.describe(self.formulas and not (is_leaf and self._leaf_shown)), file=self.file)
            self._leaf_shown = self._leaf_shown or is_leaf


def trace_backward(filter: Any = None, file: TextIO | None = STDOUT, formulas: bool = True, *,
                   scope: str | None = None, ops: Collection[str] | None = None,
                   params: Mapping[str, Any] | None = None, leaves: bool = True) -> BackwardTrace:
    """Print each step of every backward run inside `with trace_backward(): ...` (see the module doc).

    filter   keeps fewer steps: a module path prefix ("trf_blocks.0" keeps that block and the
             modules inside it), a collection of op names ({"LayerNorm", "Softmax"}; a leaf's
             op is "AccumulateGrad"), or a function step -> bool. `scope=` and `ops=` give
             the first two by name, and may be combined: a step must pass every one given.
    file     where to print: sys.stdout by default, None to print nothing and only collect
             `tracer.steps`.
    formulas print each op's gradient formula under its step.
    params   names for the leaves, e.g. dict(model.named_parameters()).
    leaves   report the leaves' accumulations too.

    `with trace_backward() as tracer:` gives the `BackwardTrace`, whose `steps` list the steps kept.
    """
    return BackwardTrace(filter, file, formulas, scope=scope, ops=ops, params=params, leaves=leaves)


def _split_filter(filter: Any, scope: str | None, ops: Collection[str] | None
                  ) -> tuple[str | None, frozenset[str] | None, Callable[[Step], Any] | None]:
    """`filter` as (scope prefix, op names, predicate), merged with the explicit `scope` and `ops`."""
    predicate = None
    if isinstance(filter, str):
        if scope is not None:
            raise ValueError("trace_backward: give the module prefix once, as filter or as scope=")
        scope = filter
    elif callable(filter):
        predicate = filter
    elif filter is not None:
        if ops is not None:
            raise ValueError("trace_backward: give the op names once, as filter or as ops=")
        ops = filter
    if isinstance(ops, str):
        ops = {ops}
    return scope, (frozenset(ops) if ops is not None else None), predicate


def _under(scope: str | None, prefix: str) -> bool:
    """Whether module path `scope` is `prefix` or inside it ("a.b.c" is under "a.b", not under "a.bc")."""
    return scope is not None and (scope == prefix or scope.startswith(prefix + "."))
