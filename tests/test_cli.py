"""The `numpygpt` command: generate (the seed's demo), info, tour, and its errors.

Commands run in-process through `numpygpt.cli.main([...])`; one test runs
`python -m numpygpt` in a subprocess. Building the untrained 124M model takes
seconds, so the seed's demo runs once per module (`demo`) and a few more times
where a test needs a fresh build.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numpygpt.cli import main
from numpygpt.tokenizer import get_encoding
from numpygpt.tour import SECTIONS

DEMO = ["generate", "Hello, I am", "--max-new-tokens", "6", "--seed", "123"]


def output_ids(stdout: str) -> list[int]:
    """The ids printed between "Output:" and "Output length:"."""
    m = re.search(r"^Output:(.*?)^Output length:", stdout, re.S | re.M)
    assert m, f"no Output: line in\n{stdout}"
    return [int(s) for s in re.findall(r"-?\d+", m.group(1))]


@pytest.fixture(scope="module")
def demo() -> str:
    """stdout of the seed's demo, `numpygpt generate "Hello, I am" --max-new-tokens 6 --seed 123`."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(DEMO) == 0
    return buf.getvalue()


# ----------------------------------------------------------------------------- generate


def test_generate_prints_the_seed_demo(demo: str) -> None:
    lines = demo.splitlines()
    assert lines[0] == "encoded: [15496, 11, 314, 716]"
    assert lines[1] == "encoded_tensor.shape: torch.Size([1, 4])"  # as the seed prints it
    assert lines[2] == "Output: tensor([[15496,    11,   314,   716, 27018, 24086, 47843, 30961, 42348,  7267]])"
    assert "Output length: 10" in lines
    ids = output_ids(demo)
    assert len(ids) == 10
    assert ids[:4] == [15496, 11, 314, 716]
    assert all(0 <= i < 50257 for i in ids)
    text = lines[-1]
    assert text.startswith("Hello, I am")
    assert text == get_encoding("gpt2").decode(ids)


def test_generate_same_seed_same_output(demo: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(DEMO) == 0
    assert capsys.readouterr().out == demo


def test_generate_zero_new_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "Hello, I am", "--max-new-tokens", "0"]) == 0
    out = capsys.readouterr().out
    assert output_ids(out) == [15496, 11, 314, 716]
    assert "Output length: 4" in out
    assert out.splitlines()[-1] == "Hello, I am"


# ----------------------------------------------------------------------------- info


def test_info_gpt2_small(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--config", "gpt2-small"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^total\s+163,009,536$", out, re.M)
    assert re.search(r"^total with out_head tied to tok_emb\s+124,412,160$", out, re.M)
    assert re.search(r"^memory in float32\s+621\.83 MB$", out, re.M)
    assert "emb_dim 768, n_layers 12, n_heads 12" in out
    assert main(["info"]) == 0  # gpt2-small is the default
    assert capsys.readouterr().out == out


# the book's figures for the larger sizes (no qkv_bias, out_head untied)
@pytest.mark.parametrize("name, total, mb", [
    ("gpt2-medium", "406,212,608", "1549.58"),
    ("gpt2-large", "838,220,800", "3197.56"),
    ("gpt2-xl", "1,637,792,000", "6247.68"),
])
def test_info_other_presets(name: str, total: str, mb: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--config", name]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{name}: ")
    assert re.search(rf"^total\s+{total}$", out, re.M)
    assert re.search(rf"^memory in float32\s+{mb} MB$", out, re.M)


# ----------------------------------------------------------------------------- tour


def _numbers(line: str) -> list[float]:
    return [float(s) for s in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", line)]


def check_layernorm(out: str, tmp_path: Path) -> None:
    assert "Mean:" in out and "Variance:" in out
    last = [ln for ln in out.splitlines() if ln.startswith("Mean:")][-1]  # after LayerNorm
    mean_part, var_part = last.split("Variance:")
    assert all(abs(v) < 1e-3 for v in _numbers(mean_part)), last
    variances = _numbers(var_part)
    assert len(variances) == 2 and all(abs(v - 1) < 1e-3 for v in variances), last


def check_gelu(out: str, tmp_path: Path) -> None:
    assert re.search(r"^\s*1\.0\s+0\.84119\s", out, re.M)   # gelu(1) ≈ 0.8411920
    assert re.search(r"^\s*-1\.0\s+-0\.15881\s", out, re.M)  # gelu(-1) ≈ -0.1588080
    png = tmp_path / "gelu_vs_relu.png"
    pytest.importorskip("matplotlib")
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(png) in out


def check_shortcut(out: str, tmp_path: Path) -> None:
    without, with_ = out.split("with shortcut connections:")
    for part in (without, with_):
        lines = [ln for ln in part.splitlines() if "has gradient mean of" in ln]
        assert [ln.split()[0] for ln in lines] == [f"layers.{i}.0.weight" for i in range(5)]
    ratio = float(re.search(r"gradient is (\S+) times larger with shortcuts", out).group(1))
    assert ratio > 1


def check_attention(out: str, tmp_path: Path) -> None:
    lines = out.splitlines()
    i = next(k for k, ln in enumerate(lines) if "attention weights" in ln)
    rows = [_numbers(ln) for ln in lines[i + 1:i + 5]]
    w = np.array(rows)
    assert w.shape == (4, 4)
    assert np.all(w[np.triu_indices(4, 1)] == 0)
    np.testing.assert_allclose(w.sum(1), 1, atol=2e-4)  # printed to 4 decimals
    assert "zero above the diagonal" in out
    assert "output shape: torch.Size([1, 4, 4])" in out


def check_model(out: str, tmp_path: Path) -> None:
    assert "logits torch.Size([2, 4, 50257])" in out
    assert "Total number of parameters: 163,009,536" in out
    assert "124,412,160" in out
    assert "621.83 MB" in out


EXPECTED = {
    "config": ["GPT_CONFIG_124M =", "'vocab_size': 50257,", "'context_length': 1024,", "'qkv_bias': False,"],
    "tokens": ["6109", "3626", "6100", "345", "1110", "6622", "257"],
    "dummy": ["Output shape: torch.Size([2, 4, 50257])"],  # shapes print as the seed's
    "layernorm": [],
    "gelu": [],
    "feedforward": ["input shape: torch.Size([2, 3, 768]) -> output shape: torch.Size([2, 3, 768])"],
    "shortcut": ["without shortcut connections:"],
    "attention": [],
    "block": ["Input shape: torch.Size([2, 4, 768])", "Output shape: torch.Size([2, 4, 768])"],
    "model": [],
    "generate": ["encoded: [15496, 11, 314, 716]", "Output length: 10"],
    "bugs": ["ln_unbiased", "trf_blocks.0.norm1", "tok_emb.weight.grad"],
}
CHECKS = {"layernorm": check_layernorm, "gelu": check_gelu, "shortcut": check_shortcut,
          "attention": check_attention, "model": check_model}


def test_every_section_has_a_test() -> None:
    assert set(EXPECTED) == set(SECTIONS)


@pytest.mark.parametrize("section", list(SECTIONS))
def test_tour_section(section: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      request: pytest.FixtureRequest) -> None:
    assert main(["tour", section, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"== {section}: {SECTIONS[section][0]} ==\n")
    for text in EXPECTED[section]:
        assert text in out, f"{section}: {text!r} missing from\n{out}"
    if section in CHECKS:
        CHECKS[section](out, tmp_path)
    if section == "generate":  # the seed's loop (no cache) and the command (cached) agree
        demo = request.getfixturevalue("demo")
        assert output_ids(out) == output_ids(demo)
        assert out.splitlines()[-1] == demo.splitlines()[-1]


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("argv, command, message", [
    (["tour", "nope"], "numpygpt tour", "invalid choice: 'nope'"),
    (["info", "--config", "gpt3"], "numpygpt info", "argument --config: unknown config 'gpt3'"),
    (["generate", "--config", "gpt3"], "numpygpt generate", "argument --config: unknown config 'gpt3'"),
    (["generate", "--max-new-tokens", "-1"], "numpygpt generate",
     "argument --max-new-tokens: must be a non-negative integer, got '-1'"),
    (["generate", "--max-new-tokens", "many"], "numpygpt generate",
     "argument --max-new-tokens: must be a non-negative integer, got 'many'"),
    (["generate", "--seed", "1.5"], "numpygpt generate", "argument --seed: must be a non-negative integer, got '1.5'"),
    (["generate", "--no-such-option"], "numpygpt generate", "unrecognized arguments: --no-such-option"),
    (["launch"], "numpygpt", "invalid choice: 'launch'"),
    ([], "numpygpt", "required: command"),
])
def test_argparse_errors_are_one_line_and_exit_2(argv: list[str], command: str, message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"{command}: error: ")
    assert message in err
    assert f"(see {command} --help)" in err


@pytest.mark.parametrize("name", ["gpt2", "124M", "355M", "gpt2-medium"])
def test_info_takes_every_name_get_config_takes(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    from numpygpt.model import count_parameters, get_config
    assert main(["info", "--config", name]) == 0
    total = count_parameters(get_config(name))["total"]
    assert f"{total:,}" in capsys.readouterr().out


def test_empty_prompt_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", ""]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "numpygpt generate: error: the prompt encodes to no tokens; give some text"
    assert captured.out == ""


# ----------------------------------------------------------------------------- python -m numpygpt


def test_python_m_numpygpt_info() -> None:
    done = subprocess.run([sys.executable, "-m", "numpygpt", "info"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "163,009,536" in done.stdout and "124,412,160" in done.stdout and "621.83 MB" in done.stdout
    assert done.stderr == ""
    bad = subprocess.run([sys.executable, "-m", "numpygpt", "tour", "nope"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2
    assert "invalid choice: 'nope'" in bad.stderr
