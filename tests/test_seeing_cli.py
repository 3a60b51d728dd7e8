"""`numpygpt gradflow` and `numpygpt attention` from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

import numpygpt
from numpygpt.cli import main
from numpygpt.model import GPTModel


def test_gradflow_command_spells_out_the_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gradflow"]) == 0
    out = capsys.readouterr().out
    assert "without shortcuts the first layer's (layers.0) mean |grad| is 0.04 of the last's (layers.4)" in out
    assert "without residual connections and LayerNorms the first layer's (trf_blocks.0)" in out


def test_attention_command_writes_the_heatmap_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    numpygpt.manual_seed(0)
    cfg = {"vocab_size": 50257, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": True}
    GPTModel(cfg).save_pretrained(tmp_path / "hf")
    png = tmp_path / "maps.png"
    assert main(["attention", "--weights", str(tmp_path / "hf"), "The cat sat", "--out", str(png)]) == 0
    assert png.stat().st_size > 0 and "2 layers x 2 heads" in capsys.readouterr().out
