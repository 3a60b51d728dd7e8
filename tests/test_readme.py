"""The README's examples run and print what the README shows."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

README_DIR = Path(__file__).resolve().parent.parent
README = (README_DIR / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def test_paste_the_seed_example_prints_its_output() -> None:
    section = _section("Paste the seed")
    program = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"```\n(layers.*?)```", section, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(program, "README: Paste the seed", "exec"), {})
    line = re.compile(r"(\S+) has gradient mean of (\S+)")
    got, expected = line.findall(out.getvalue()), line.findall(shown)
    assert [name for name, _ in got] == [name for name, _ in expected] and len(expected) == 5
    # the last float32 digits depend on the CPU: NumPy picks its float32 routines by instruction set
    np.testing.assert_allclose([float(v) for _, v in got], [float(v) for _, v in expected], rtol=1e-6)


def test_first_taste_runs() -> None:
    program = re.search(r"```python\n(.*?)```", _section("A first taste of the engine"), re.S).group(1)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(program, "README: A first taste", "exec"), {})


def test_cross_checking_snippet_writes_a_bundle_compare_accepts(tmp_path: Path, monkeypatch: Any) -> None:
    """The README's PyTorch snippet, on the seed's model in PyTorch with numpygpt's weights: no divergence."""
    torch = pytest.importorskip("torch")
    from torch_gpt import GPTModel as TorchGPT

    import numpygpt
    from numpygpt.cli import main
    from numpygpt.model import GPTModel

    cfg = {"vocab_size": 50257, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": True}
    (tmp_path / "tiny.json").write_text(json.dumps(cfg))
    numpygpt.manual_seed(5)
    ours = GPTModel(cfg)
    model = TorchGPT(cfg).eval()
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ours.state_dict().items()})
    section = _section("Cross-checking your implementation")
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README: Cross-checking", "exec"), {"model": model})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["compare", "theirs.safetensors", "--config", "tiny.json", "--seed", "5"])
    assert status == 0, out.getvalue()[-2000:]
    assert "no divergence" in out.getvalue()


def test_write_the_backward_exercise_runs_and_prints_its_failure() -> None:
    """docs/write_the_backward.md: the pattern, the LayerNorm solution passing gradcheck, the wrong one failing."""
    text = (README_DIR / "docs" / "write_the_backward.md").read_text(encoding="utf-8")
    namespace: dict[str, Any] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in re.findall(r"```python\n(.*?)```", text, re.S):
            exec(compile(block, "docs/write_the_backward.md", "exec"), namespace)
    printed = out.getvalue().splitlines()
    assert printed[0] == "tensor([ 2., -4.,  6.], dtype=torch.float64)"
    failure = printed[-1]
    assert failure in text  # the doc shows exactly what gradcheck says
    for part in ("input 0", "worst element", "analytic", "numeric", "relative error"):
        assert part in failure
