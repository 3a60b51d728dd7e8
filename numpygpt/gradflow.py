"""Gradient flow: how large each parameter's gradient is after a backward, layer by layer.

    loss.backward()
    flow = numpygpt.gradflow.report(model)
    print(flow.table())          # one row per parameter, then one per layer
    flow.plot("gradflow.png")    # mean |grad| per layer, log scale (needs matplotlib)

A row is (name, grad_norm, mean_abs_grad): the gradient's Euclidean norm
‖g‖ = √(Σ g²) and its mean absolute value Σ|g| / n. `flow.layers()` adds the
rows up per layer, the first numbered module path of each name (`layers.0`,
`trf_blocks.3`) or, for a name with no number in it, its top-level module
(`tok_emb`, `final_norm`): a layer's norm is √(Σ of its rows' ‖g‖²), its mean
is Σ|g| over all of its elements divided by their number.

Two experiments show what the numbers are for, both as "with" against
"without" on the same weights and the same data:

- `seed_experiment()`: the seed's five-layer `ExampleDeepNeuralNetwork`,
  with and without its shortcut connections (`numpygpt tour shortcut`).
- `gpt_experiment()`: a small GPT, with and without its residual connections
  and its LayerNorms (see `plain_blocks`).

Each reports the first layer's mean |grad| as a fraction of the last layer's.
Without the shortcuts the fraction is tiny: the gradient shrinks at every
layer it passes back through (vanishing gradients). With them it stays near
the last layer's size, because `x + f(x)` passes its gradient back unchanged
on the `x` path, whatever `f` does to it.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

from . import nn
from .creation import tensor
from .losses import cross_entropy
from .model import ExampleDeepNeuralNetwork, GPTModel, LayerKVCache, TransformerBlock
from .module import Module
from .random import manual_seed
from .tensor import Tensor

__all__ = ["GradRow", "GradFlow", "Experiment", "report", "layer_of", "plain_blocks",
           "seed_experiment", "gpt_experiment", "plot_experiments", "main", "GPT_EXPERIMENT_CONFIG"]

GPT_EXPERIMENT_CONFIG: dict[str, Any] = {"vocab_size": 97, "context_length": 16, "emb_dim": 32, "n_heads": 4,
                                         "n_layers": 6, "drop_rate": 0.0, "qkv_bias": False}

# ----------------------------------------------------------------------------- one report


class GradRow(NamedTuple):
    """One parameter's (or one layer's) gradient size."""

    name: str
    grad_norm: float      # √(Σ g²)
    mean_abs_grad: float  # Σ |g| / number of elements


def layer_of(name: str) -> str:
    """The layer a parameter belongs to: its path up to the first number, else its top-level module.

    "layers.0.0.weight" -> "layers.0", "trf_blocks.3.att.W_query.weight" -> "trf_blocks.3",
    "tok_emb.weight" -> "tok_emb".
    """
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[:i + 1])
    return parts[0]


@dataclass
class GradFlow:
    """The gradient sizes of a model's parameters after one backward, in the model's order.

    `rows` holds one GradRow per parameter that has a gradient; `sizes` the
    number of elements of each; `without_grad` the names of the parameters that
    have none (a module the forward pass did not use).
    """

    rows: list[GradRow]
    sizes: list[int]
    without_grad: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[GradRow]:  # `for name, grad_norm, mean_abs in report(model)`
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> GradRow:
        return self.rows[i]

    def layers(self) -> list[GradRow]:
        """One GradRow per layer (see `layer_of`), in the order the layers first appear."""
        squares: dict[str, float] = {}
        abs_sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for row, n in zip(self.rows, self.sizes):
            layer = layer_of(row.name)
            squares[layer] = squares.get(layer, 0.0) + row.grad_norm ** 2
            abs_sums[layer] = abs_sums.get(layer, 0.0) + row.mean_abs_grad * n
            counts[layer] = counts.get(layer, 0) + n
        return [GradRow(k, float(np.sqrt(squares[k])), abs_sums[k] / counts[k]) for k in squares]

    def layer(self, name: str) -> GradRow:
        """The totals of the layer called `name`."""
        for row in self.layers():
            if row.name == name:
                return row
        raise KeyError(f"no layer {name!r} with a gradient; the layers are {[r.name for r in self.layers()]}")

    def first_and_last(self) -> tuple[str, str]:
        """The first and last numbered layers ("layers.0" and "layers.4", "trf_blocks.0" and
        "trf_blocks.5"): the stack the gradient travels back through. Without numbered
        layers, the first and last of all."""
        names = [r.name for r in self.layers()]
        numbered = [n for n in names if re.search(r"\.\d+$", n)] or names
        return numbered[0], numbered[-1]

    def first_last_ratio(self) -> float:
        """The first layer's mean |grad| divided by the last layer's (see `first_and_last`)."""
        first, last = self.first_and_last()
        return self.layer(first).mean_abs_grad / self.layer(last).mean_abs_grad

    def table(self, parameters: bool = True) -> str:
        """The rows as a text table: every parameter (with `parameters`), then every layer."""
        lines = []
        if parameters:
            lines += _table_lines("parameter", self.rows)
            lines.append("")
        lines += _table_lines("layer", self.layers())
        if self.without_grad:
            lines.append(textwrap.fill(f"no gradient (not used by the forward pass): {', '.join(self.without_grad)}",
                                       width=100, subsequent_indent="    "))
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike, title: str = "Gradient flow") -> Path:
        """A bar chart of each layer's mean |grad| on a log scale, written to `path` (a PNG).

        Raises ImportError, saying so, when matplotlib is not installed.
        """
        layers = self.layers()
        fig = _figure(1, width=max(4.0, 0.5 * len(layers)))
        _bars(fig.axes[0], [r.name for r in layers], {"mean |grad|": [r.mean_abs_grad for r in layers]}, title)
        return _save(fig, path)


def _table_lines(what: str, rows: Sequence[GradRow]) -> list[str]:
    width = max([len(what)] + [len(r.name) for r in rows]) + 2
    lines = [f"{what:<{width}}{'grad norm':>12}{'mean |grad|':>14}"]
    lines += [f"{r.name:<{width}}{r.grad_norm:>12.4e}{r.mean_abs_grad:>14.4e}" for r in rows]
    return lines


def report(model: Module, only: str | None = None) -> GradFlow:
    """The gradient sizes of `model`'s parameters, as the last backward left them in `.grad`.

    With `only`, just the parameters whose name contains it: `only="weight"` is
    the seed's `if "weight" in name`. The numbers are computed in float64 from
    each `p.grad.data` and copied out, so a later `zero_grad()` or step does
    not change the report.
    """
    rows, sizes, without = [], [], []
    for name, p in model.named_parameters():
        if only is not None and only not in name:
            continue
        if p.grad is None:
            without.append(name)
            continue
        g = np.asarray(p.grad.data, dtype=np.float64)
        rows.append(GradRow(name, float(np.sqrt(np.sum(g * g))), float(np.mean(np.abs(g)))))
        sizes.append(g.size)
    return GradFlow(rows, sizes, without)


# ----------------------------------------------------------------------------- plotting


def _figure(n_axes: int, width: float) -> Any:
    """A matplotlib Figure with `n_axes` side by side (object API: no GUI backend involved)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib, which is not installed (pip install matplotlib)") from None
    fig = Figure(figsize=(width * n_axes, 3.8))
    fig.subplots(1, n_axes, squeeze=False)
    return fig


def _bars(ax: Any, labels: list[str], series: dict[str, list[float]], title: str) -> None:
    """Grouped bars, one group per label and one bar per series, on a log y axis.
    A missing value (NaN, a layer without a gradient) leaves its bar out."""
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("mean |grad| (log scale)")
    ax.set_title(title, fontsize=10)
    if len(series) > 1:
        top = np.nanmax([v for values in series.values() for v in values])
        ax.set_ylim(top=top * 30)  # headroom for the legend above the tallest bar
        ax.legend(fontsize=8, loc="upper left")


def _save(fig: Any, path: str | os.PathLike) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png", dpi=100)
    return path


# ----------------------------------------------------------------------------- the experiments


@dataclass
class Experiment:
    """One architecture run twice on the same weights and data: "with" and "without" its shortcuts.

    `reports` and `ratios` are keyed "with" and "without"; a ratio is the first
    layer's mean |grad| over the last's (`GradFlow.first_last_ratio`).
    """

    title: str
    removed: str
    reports: dict[str, GradFlow]
    ratios: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.ratios = {k: r.first_last_ratio() for k, r in self.reports.items()}

    @property
    def finding(self) -> str:
        """The result in one sentence, with the numbers."""
        first, last = self.reports["with"].first_and_last()
        growth = self.reports["with"].layer(first).mean_abs_grad / self.reports["without"].layer(first).mean_abs_grad
        return (f"without {self.removed} the first layer's ({first}) mean |grad| is {self.ratios['without']:.2g} "
                f"of the last's ({last}); with them {self.ratios['with']:.2g}, and the first layer's "
                f"mean |grad| is {growth:,.0f} times larger")

    def table(self) -> str:
        """The layers side by side: mean |grad| with and without, and their quotient."""
        with_, without = self.reports["with"].layers(), {r.name: r for r in self.reports["without"].layers()}
        width = max(len(r.name) for r in with_) + 2
        lines = [f"{'layer':<{width}}{'with':>12}{'without':>12}{'without/with':>14}"]
        for r in with_:
            other = without.get(r.name)
            if other is None:
                lines.append(f"{r.name:<{width}}{r.mean_abs_grad:>12.3e}{'(no grad)':>12}")
            else:
                lines.append(f"{r.name:<{width}}{r.mean_abs_grad:>12.3e}{other.mean_abs_grad:>12.3e}"
                             f"{other.mean_abs_grad / r.mean_abs_grad:>14.3g}")
        return "\n".join(lines)


def _seed_flow(use_shortcut: bool, seed: int) -> GradFlow:
    """The seed's `print_gradients`: one backward of MSE(model([[1, 0, -1]]), [[0]]),
    reporting the weights (as the seed prints them; the biases are left out)."""
    manual_seed(seed)
    model = ExampleDeepNeuralNetwork([3, 3, 3, 3, 3, 1], use_shortcut=use_shortcut)
    output = model(tensor([[1.0, 0.0, -1.0]]))
    loss = nn.MSELoss()(output, tensor([[0.0]]))
    loss.backward()
    return report(model, only="weight")


def seed_experiment(seed: int = 123) -> Experiment:
    """The seed's shortcut experiment: its five-layer network, built after `manual_seed(seed)`
    each time (so with the same weights), with and without its shortcut connections."""
    return Experiment("the seed's ExampleDeepNeuralNetwork([3, 3, 3, 3, 3, 1]), MSE loss on one input",
                      "shortcuts", {"without": _seed_flow(False, seed), "with": _seed_flow(True, seed)})


def _plain_block_forward(self: TransformerBlock, x: Tensor, kv_cache: LayerKVCache | None = None) -> Tensor:
    """A TransformerBlock without its two shortcut connections and its two LayerNorms:
    ff(att(x)) where the block computes x + att(norm1(x)), then x + ff(norm2(x))."""
    x = self.drop_shortcut(self.att(x, kv_cache))  # no norm1, no "+ shortcut"
    x = self.drop_shortcut(self.ff(x))              # no norm2, no "+ shortcut"
    return x


def _identity(x: Tensor) -> Tensor:
    return x


@contextmanager
def plain_blocks(model: GPTModel) -> Iterator[GPTModel]:
    """Inside the `with`, `model` runs without its residual connections and LayerNorms.

    What is removed: in every TransformerBlock both `x + ...` shortcuts and both
    LayerNorms (norm1 and norm2 act as the identity), so a block computes
    ff(att(x)); and the final LayerNorm (`final_norm` is the identity). The
    embeddings, attention, feed-forward layers, dropout and output head are
    untouched, and so are all weights. It works by giving the block instances
    (and final_norm) their own `forward`, which is taken away again on exit.
    """
    patched: list[Module] = []
    try:
        for block in model.trf_blocks:
            block.forward = types.MethodType(_plain_block_forward, block)
            patched.append(block)
        model.final_norm.forward = _identity
        patched.append(model.final_norm)
        yield model
    finally:
        for module in patched:
            del module.forward  # the class's forward shows through again


def gpt_experiment(cfg: dict[str, Any] | None = None, seed: int = 123, batch: int = 2) -> Experiment:
    """A small GPT (GPT_EXPERIMENT_CONFIG: 6 blocks, 32 wide) with and without its residual
    connections and LayerNorms (`plain_blocks`): the same weights, built after
    `manual_seed(seed)`, and the same random token ids, with the next-token
    cross-entropy against the same ids shifted by one."""
    cfg = dict(GPT_EXPERIMENT_CONFIG if cfg is None else cfg)
    manual_seed(seed)
    model = GPTModel(cfg).eval()
    tokens = np.random.default_rng(seed).integers(0, cfg["vocab_size"], (batch, cfg["context_length"] + 1))
    ids, targets = tokens[:, :-1], tokens[:, 1:]

    def flow() -> GradFlow:
        model.zero_grad()
        loss = cross_entropy(model(ids).flatten(0, 1), targets.reshape(-1))
        loss.backward()
        return report(model)

    with_ = flow()
    with plain_blocks(model):
        without = flow()
    title = (f"a GPT with {cfg['n_layers']} blocks, emb_dim {cfg['emb_dim']}, {cfg['n_heads']} heads, "
             f"next-token loss on {batch} x {cfg['context_length']} random tokens")
    return Experiment(title, "residual connections and LayerNorms", {"without": without, "with": with_})


# ----------------------------------------------------------------------------- the command


def plot_experiments(experiments: Sequence[Experiment], path: str | os.PathLike) -> Path:
    """One panel per experiment: each layer's mean |grad| with and without, log scale, as a PNG."""
    fig = _figure(len(experiments), width=6.0)
    for ax, exp in zip(fig.axes, experiments):
        with_ = exp.reports["with"].layers()
        without = {r.name: r.mean_abs_grad for r in exp.reports["without"].layers()}
        series = {"with": [r.mean_abs_grad for r in with_],
                  f"without {exp.removed}": [without.get(r.name, np.nan) for r in with_]}
        _bars(ax, [r.name for r in with_], series, textwrap.fill(exp.title, 60))
    return _save(fig, path)


def main(out: str | os.PathLike | None = None, plot: str | os.PathLike | None = None) -> int:
    """`numpygpt gradflow`: run both experiments and print their tables and findings.

    The plot (both experiments, `plot_experiments`) is written to `plot` if
    given, else to `out`/gradflow.png if a directory `out` is given, else not
    at all; without matplotlib a message says so and the rest still prints.
    """
    seed, gpt = seed_experiment(), gpt_experiment()
    print(f"== {seed.title} ==")
    for key in ("without", "with"):
        print(f"{key} shortcut connections:")
        print(textwrap.indent(seed.reports[key].table(), "    "))
    print(seed.finding)
    print()
    print(f"== {gpt.title} ==")
    print(gpt.table())
    print(gpt.finding)
    print("(removed: both `x + ...` shortcuts and norm1, norm2 in every block, and final_norm)")
    if plot is None and out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        plot = Path(out) / "gradflow.png"
    if plot is not None:
        try:
            print("plot written to", plot_experiments([seed, gpt], plot))
        except ImportError as e:
            print(f"no plot: {e}", file=sys.stderr)
    return 0
