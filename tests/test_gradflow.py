"""numpygpt.gradflow: gradient sizes per parameter and per layer, and the two shortcut experiments.

The seed's experiment must give the seed's printed numbers (to float32
rounding), and both experiments must show vanishing gradients without the
shortcuts: the first layer's mean |grad| far below the last's.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

import numpygpt
from numpygpt import gradflow, nn
from numpygpt.gradflow import GradFlow, GradRow, layer_of, plain_blocks, report
from numpygpt.losses import cross_entropy
from numpygpt.model import GPTModel

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")

# What the seed prints: each weight's mean |grad| (PyTorch, float32, torch.manual_seed(123))
SEED_WITHOUT = [0.0002017411752603948, 0.00012011770741082728, 0.0007152436301112175,
                0.0013988513965159655, 0.005049605388194323]
SEED_WITH = [0.22186797857284546, 0.20709273219108582, 0.32923877239227295,
             0.2667772173881531, 1.3268063068389893]
FLOAT32_ROUNDING = 2e-6  # a few float32 ulps: PyTorch adds in another order

SMALL = {"vocab_size": 97, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 3,
         "drop_rate": 0.0, "qkv_bias": True}


def small_gpt_after_backward(seed: int = 0) -> GPTModel:
    numpygpt.manual_seed(seed)
    model = GPTModel(SMALL)
    tokens = np.random.default_rng(seed).integers(0, SMALL["vocab_size"], (2, SMALL["context_length"] + 1))
    cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].reshape(-1)).backward()
    return model


@pytest.fixture(scope="module")
def seed_exp() -> gradflow.Experiment:
    return gradflow.seed_experiment()


@pytest.fixture(scope="module")
def gpt_exp() -> gradflow.Experiment:
    return gradflow.gpt_experiment()


# ----------------------------------------------------------------------------- the report


def test_rows_are_in_model_order_with_numpys_norm_and_mean() -> None:
    model = small_gpt_after_backward()
    flow = report(model)
    params = list(model.named_parameters())
    assert [r.name for r in flow.rows] == [name for name, _ in params]
    assert flow.without_grad == []
    for row, size, (name, p) in zip(flow.rows, flow.sizes, params):
        g = p.grad.data
        assert row.grad_norm == pytest.approx(float(np.linalg.norm(g)), rel=1e-6)
        assert row.mean_abs_grad == pytest.approx(float(np.mean(np.abs(g))), rel=1e-6)
        assert size == g.size


def test_the_report_is_a_copy() -> None:
    model = small_gpt_after_backward()
    flow = report(model)
    before = list(flow.rows)
    model.zero_grad()
    assert flow.rows == before


def test_only_keeps_matching_names() -> None:
    flow = report(small_gpt_after_backward(), only="weight")
    assert flow.rows and all("weight" in r.name for r in flow.rows)


def test_layer_of_takes_the_first_numbered_path_or_the_top_level_name() -> None:
    assert layer_of("layers.0.0.weight") == "layers.0"
    assert layer_of("trf_blocks.3.att.W_query.weight") == "trf_blocks.3"
    assert layer_of("trf_blocks.11.norm1.scale") == "trf_blocks.11"
    assert layer_of("tok_emb.weight") == "tok_emb"
    assert layer_of("final_norm.shift") == "final_norm"
    assert layer_of("0.weight") == "0"


def test_layer_totals_add_up_the_rows() -> None:
    model = small_gpt_after_backward()
    flow = report(model)
    layers = flow.layers()
    assert [r.name for r in layers] == ["tok_emb", "pos_emb", "trf_blocks.0", "trf_blocks.1", "trf_blocks.2",
                                        "final_norm", "out_head"]
    for layer in layers:
        grads = [p.grad.data.ravel() for name, p in model.named_parameters() if layer_of(name) == layer.name]
        g = np.concatenate(grads).astype(np.float64)
        assert layer.grad_norm == pytest.approx(float(np.linalg.norm(g)), rel=1e-9)
        assert layer.mean_abs_grad == pytest.approx(float(np.mean(np.abs(g))), rel=1e-9)
    assert flow.layer("trf_blocks.1") == layers[3]
    assert flow.first_and_last() == ("trf_blocks.0", "trf_blocks.2")
    with pytest.raises(KeyError, match="no layer"):
        flow.layer("nope")


def test_parameters_without_a_gradient_are_listed_not_rowed() -> None:
    numpygpt.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    model[1](numpygpt.ones(1, 2)).sum().backward()
    flow = report(model)
    assert [r.name for r in flow.rows] == ["1.weight", "1.bias"]
    assert flow.without_grad == ["0.weight", "0.bias"]
    assert "no gradient" in flow.table() and "0.weight" in flow.table()


def test_table_lists_parameters_then_layers() -> None:
    flow = GradFlow([GradRow("layers.0.w", 3.0, 0.5), GradRow("layers.0.b", 4.0, 2.0), GradRow("head.w", 1.0, 1.0)],
                    sizes=[3, 1, 2])
    assert flow.layers() == [GradRow("layers.0", 5.0, 0.875), GradRow("head", 1.0, 1.0)]
    lines = flow.table().splitlines()
    assert lines[0].split() == ["parameter", "grad", "norm", "mean", "|grad|"]
    assert lines[1].split() == ["layers.0.w", "3.0000e+00", "5.0000e-01"]
    assert lines[5].split()[0] == "layer" and lines[6].split() == ["layers.0", "5.0000e+00", "8.7500e-01"]
    assert "layers.0.w" not in flow.table(parameters=False)


# ----------------------------------------------------------------------------- the seed's experiment


def test_the_seed_experiment_gives_the_seeds_numbers(seed_exp: gradflow.Experiment) -> None:
    for key, printed in (("without", SEED_WITHOUT), ("with", SEED_WITH)):
        rows = seed_exp.reports[key].rows
        assert [r.name for r in rows] == [f"layers.{i}.0.weight" for i in range(5)]
        np.testing.assert_allclose([r.mean_abs_grad for r in rows], printed, rtol=FLOAT32_ROUNDING)


def test_without_shortcuts_the_first_layers_gradient_vanishes(seed_exp: gradflow.Experiment) -> None:
    ratios = seed_exp.ratios
    assert ratios["without"] == pytest.approx(SEED_WITHOUT[0] / SEED_WITHOUT[-1], rel=1e-5)  # 0.040
    assert ratios["with"] == pytest.approx(SEED_WITH[0] / SEED_WITH[-1], rel=1e-5)           # 0.167
    assert ratios["without"] < 0.05 and ratios["with"] > 0.1 and ratios["with"] > 4 * ratios["without"]
    first = {k: r.layer("layers.0").mean_abs_grad for k, r in seed_exp.reports.items()}
    assert first["with"] > 1000 * first["without"]
    assert "without shortcuts the first layer's (layers.0) mean |grad| is 0.04 of the last's (layers.4)" \
        in seed_exp.finding
    assert "with them 0.17" in seed_exp.finding and "1,100 times larger" in seed_exp.finding


# ----------------------------------------------------------------------------- the GPT's experiment


def test_plain_blocks_removes_shortcuts_and_norms_and_puts_them_back() -> None:
    model = small_gpt_after_backward()
    ids = np.arange(8)[None, :]
    before = model(ids).data
    block = model.trf_blocks[0]
    x = numpygpt.randn(1, 8, SMALL["emb_dim"])
    with plain_blocks(model):
        np.testing.assert_array_equal(block(x).data, block.ff(block.att(x)).data)
        assert model.final_norm(x) is x
        model.zero_grad()
        cross_entropy(model(ids).flatten(0, 1), ids.reshape(-1)).backward()
        unused = report(model).without_grad
    assert unused == [f"trf_blocks.{i}.norm{j}.{p}" for i in range(3) for j in (1, 2) for p in ("scale", "shift")] \
        + ["final_norm.scale", "final_norm.shift"]
    assert "forward" not in block.__dict__ and "forward" not in model.final_norm.__dict__
    np.testing.assert_array_equal(model(ids).data, before)


def test_the_gpt_shows_the_same_pattern(gpt_exp: gradflow.Experiment) -> None:
    ratios = gpt_exp.ratios
    assert gpt_exp.reports["with"].first_and_last() == ("trf_blocks.0", "trf_blocks.5")
    assert ratios["without"] < 1e-4           # about 1.2e-06: six blocks of shrinking gradients
    assert 0.5 < ratios["with"] < 2.0          # about 0.98: every block's gradient the same size
    assert "final_norm.scale" in gpt_exp.reports["without"].without_grad
    assert "without residual connections and LayerNorms the first layer's (trf_blocks.0)" in gpt_exp.finding
    table = gpt_exp.table().splitlines()
    assert table[0].split() == ["layer", "with", "without", "without/with"]
    assert any(line.startswith("final_norm") and "(no grad)" in line for line in table)


# ----------------------------------------------------------------------------- plots and the command


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_matplotlib
def test_plots_are_written(tmp_path, seed_exp: gradflow.Experiment, gpt_exp: gradflow.Experiment) -> None:
    assert _is_png(seed_exp.reports["with"].plot(tmp_path / "one.png"))
    assert _is_png(gradflow.plot_experiments([seed_exp, gpt_exp], tmp_path / "both.png"))


def test_without_matplotlib_plotting_says_so(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    flow = report(small_gpt_after_backward())
    with pytest.raises(ImportError, match="pip install matplotlib"):
        flow.plot(tmp_path / "g.png")
    assert gradflow.main(plot=tmp_path / "g.png") == 0
    assert "pip install matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()


@needs_matplotlib
def test_main_prints_both_experiments_and_writes_the_plot(tmp_path, capsys) -> None:
    assert gradflow.main(out=tmp_path) == 0
    printed = capsys.readouterr().out
    assert "layers.0.0.weight" in printed and "trf_blocks.5" in printed
    assert "without shortcuts the first layer's (layers.0) mean |grad| is 0.04" in printed
    assert "without residual connections and LayerNorms" in printed
    assert _is_png(tmp_path / "gradflow.png") and str(tmp_path / "gradflow.png") in printed
