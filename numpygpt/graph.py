"""The autograd graph as Graphviz DOT, for drawing what backward will walk.

    dot = numpygpt.graph.to_dot(loss, params=dict(model.named_parameters()))
    open("graph.dot", "w").write(dot)       # then: dot -Tpng graph.dot -o graph.png

Boxes are ops (their `Function` name, the shape they produced), ellipses are
leaves (named when `params` gives them a name). Edges point from an input
towards the op that used it, the direction of the forward pass.
"""

from __future__ import annotations

from typing import Any, Mapping

from .tensor import Tensor


def to_dot(output: Tensor, params: Mapping[str, Tensor] | None = None, max_nodes: int = 5000) -> str:
    """DOT source for the graph that produced `output` (before backward frees it)."""
    if not isinstance(output, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(output).__name__}")
    if output.grad_fn is None:
        raise ValueError("to_dot: this tensor has no graph (a leaf, or made under no_grad())")
    if output.grad_fn.freed:
        raise ValueError("to_dot: the graph was freed by backward(); draw it before calling backward, "
                         "or pass retain_graph=True")
    names = {id(p): name for name, p in (params or {}).items()}
    lines = ["digraph autograd {", '  rankdir="LR";', '  node [fontname="Helvetica", fontsize=10];']
    ids: dict[int, str] = {}

    def node_id(node: Any) -> str:
        if id(node) not in ids:
            ids[id(node)] = f"n{len(ids)}"
            if isinstance(node, Tensor):
                label = names.get(id(node), "leaf") + f"\\n{tuple(node.shape)}"
                lines.append(f'  {ids[id(node)]} [label="{label}", shape=ellipse, style=filled, fillcolor="#dbeafe"];')
            else:
                label = node.fn.__name__
                lines.append(f'  {ids[id(node)]} [label="{label}", shape=box];')
        return ids[id(node)]

    root = output.grad_fn
    lines.append(f'  out [label="output\\n{tuple(output.shape)}", shape=ellipse, style=filled, fillcolor="#dcfce7"];')
    lines.append(f"  {node_id(root)} -> out;")
    stack, seen = [root], {id(root)}
    while stack:
        if len(ids) > max_nodes:
            lines.append(f'  truncated [label="... more than {max_nodes} nodes", shape=plaintext];')
            break
        node = stack.pop()
        if isinstance(node, Tensor):
            continue
        for parent, shape in zip(node.parents, node.input_shapes):
            if parent is None:
                continue
            lines.append(f'  {node_id(parent)} -> {node_id(node)} [label="{tuple(shape)}", fontsize=8];')
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    lines.append("}")
    return "\n".join(lines) + "\n"
