"""The seeds' PyTorch programs, run unchanged on numpygpt but for their import lines.

tests/seed_programs/ holds every code block of both seeds, and the book's
chapter-2 and chapter-5 code they build on, as programs written for PyTorch
(`import torch`, `import torch.nn as nn`, `from torch.nn import GELU`, ...).
Each test rewrites only the import lines, as a learner would:

    import torch                    ->  import numpygpt as torch
    import torch.nn as nn           ->  import numpygpt.nn as nn
    from torch.nn import X          ->  from numpygpt.nn import X
    from torch import nn            ->  from numpygpt import nn
    from torch.utils.data import X  ->  from numpygpt.utils.data import X
    import tiktoken                 ->  import numpygpt.tokenizer as tiktoken

and runs the program in a fresh interpreter in which `import torch` fails, as
on a machine without PyTorch. Its output must be what PyTorch 2.13 printed for
the unchanged program (tests/seed_programs/expected/, recorded on this
project's CI machine): the same text, and the same numbers to the printed
digits, allowing float32 rounding (the order of a sum's additions is not
PyTorch's, so a float32 result may differ in its last bit or two). Where
PyTorch is installed, the unchanged program is also run on it and compared
the same way. (PyTorch's side also takes numpygpt's tokenizer: tiktoken itself
would download its BPE files, and numpygpt's tokenizer is tiktoken's Encoding
built offline from the same files.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from numpygpt.recipe import default_text

PROGRAMS = Path(__file__).parent / "seed_programs"
EXPECTED = PROGRAMS / "expected"
SEED_PROGRAMS = ["architecture", "gpt_step_by_step", "gelu_plot", "book_ch2_dataloader", "book_ch5_training"]

TO_NUMPYGPT = [  # (pattern, replacement) over whole lines, any indentation
    (r"import torch\.nn as nn", "import numpygpt.nn as nn"),
    (r"import torch", "import numpygpt as torch"),
    (r"from torch\.nn import (.+)", r"from numpygpt.nn import \1"),
    (r"from torch import nn", "from numpygpt import nn"),
    (r"from torch\.utils\.data import (.+)", r"from numpygpt.utils.data import \1"),
    (r"import tiktoken", "import numpygpt.tokenizer as tiktoken"),
]
OFFLINE_TOKENIZER = TO_NUMPYGPT[-1:]

# Runs a program as `python program.py` would, with `import torch` failing when asked to.
LAUNCHER = """
import runpy, sys
if sys.argv[1] == "no-torch":
    sys.modules["torch"] = None
sys.path.insert(0, ".")
runpy.run_path(sys.argv[2], run_name="__main__")
"""


def rewrite(source: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        source = re.sub(rf"(?m)^(\s*){pattern}$", lambda m, r=replacement, p=pattern:
                        m.group(1) + re.sub(p, r, m.group(0).strip()), source)
    return source


def run(name: str, where: Path, on_numpygpt: bool) -> str:
    """Copy the programs into `where` (imports rewritten), run `name` there, return its output."""
    where.mkdir()
    for program in PROGRAMS.glob("*.py"):
        rules = TO_NUMPYGPT if on_numpygpt else OFFLINE_TOKENIZER
        (where / program.name).write_text(rewrite(program.read_text(encoding="utf-8"), rules), encoding="utf-8")
    (where / "the-verdict.txt").write_text(default_text() * 8, encoding="utf-8")  # the book's text file
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, "-c", LAUNCHER, "no-torch" if on_numpygpt else "torch", f"{name}.py"],
                          cwd=where, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{name} failed on {'numpygpt' if on_numpygpt else 'torch'}:\n{done.stderr[-3000:]}"
    return done.stdout


NUMBER = re.compile(r"-?(?:\d+\.\d*(?:e[+-]?\d+)?|\d+e[+-]?\d+|\d+|inf|nan)")


def _tolerance(printed: str) -> float:
    """One unit in the last printed digit of a fixed-point number (0.3203 against 0.3204 is float32
    noise on a rounding boundary); other numbers are held to float32 rounding alone."""
    if "." in printed and "e" not in printed:
        digits = len(printed.split(".")[1])
        if digits <= 6:
            return 1.01 * 10.0**-digits
    return 0.0


def assert_same_output(ours: str, theirs: str, what: str) -> None:
    """The same text, and the same numbers up to float32 rounding, line by line."""
    ours_lines, their_lines = ours.splitlines(), theirs.splitlines()
    assert len(ours_lines) == len(their_lines), f"{what}: {len(ours_lines)} lines, expected {len(their_lines)}"
    for n, (a, b) in enumerate(zip(ours_lines, their_lines), 1):
        if a == b:
            continue
        skeleton_a, skeleton_b = NUMBER.sub("#", a).replace(" ", ""), NUMBER.sub("#", b).replace(" ", "")
        assert skeleton_a == skeleton_b, f"{what}, line {n}:\n  ours:     {a}\n  expected: {b}"
        for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)):
            fx, fy = float(x), float(y)
            close = fx == fy or abs(fx - fy) <= max(_tolerance(y), 2e-5 * abs(fy), 1e-6)
            assert close, f"{what}, line {n}: {x} where PyTorch printed {y}\n  ours:     {a}\n  expected: {b}"


def _needs(name: str) -> None:
    if name == "gelu_plot":
        pytest.importorskip("matplotlib")


@pytest.mark.parametrize("name", SEED_PROGRAMS)
def test_seed_program_on_numpygpt_prints_what_pytorch_printed(name: str, tmp_path: Path) -> None:
    _needs(name)
    ours = run(name, tmp_path / "numpygpt", on_numpygpt=True)
    assert_same_output(ours, (EXPECTED / f"{name}.txt").read_text(encoding="utf-8"), name)


@pytest.mark.parametrize("name", SEED_PROGRAMS)
def test_seed_program_on_numpygpt_matches_pytorch_live(name: str, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    _needs(name)
    theirs = run(name, tmp_path / "torch", on_numpygpt=False)
    ours = run(name, tmp_path / "numpygpt", on_numpygpt=True)
    assert_same_output(ours, theirs, name)


def test_the_seeds_own_printed_numbers() -> None:
    """Numbers printed in the seeds themselves (their PyTorch version) that PyTorch 2.13 still prints."""
    expected = (EXPECTED / "gpt_step_by_step.txt").read_text(encoding="utf-8")
    for line in ["tensor([[6109, 3626, 6100,  345],", "        [6109, 1110, 6622,  257]])",
                 " tensor([[ 0.6159,  1.4126, -0.8719,  0.5872, -0.8719, -0.8719],",
                 "tensor([[0.2260, 0.3470, 0.0000, 0.2216, 0.0000, 0.0000],",
                 "Input shape: torch.Size([2, 4, 768])"]:
        assert line in expected.splitlines()
    seed = {"layers.0.0.weight": 0.0002017411752603948, "layers.4.0.weight": 0.005049605388194323}
    for key, value in seed.items():
        printed = re.search(rf"{re.escape(key)} has gradinet mean of (\S+)", expected).group(1)
        assert float(printed) == pytest.approx(value, rel=2e-6)


def test_rewrite_changes_only_the_import_lines() -> None:
    source = (PROGRAMS / "gpt_step_by_step.py").read_text(encoding="utf-8")
    rewritten = rewrite(source, TO_NUMPYGPT)
    changed = [(a, b) for a, b in zip(source.splitlines(), rewritten.splitlines()) if a != b]
    assert changed and all(a.strip().startswith(("import ", "from ")) for a, _ in changed)
    assert "import numpygpt as torch" in rewritten and "from numpygpt.nn import GELU" in rewritten
    assert "from numpygpt import nn" in rewritten and "import numpygpt.tokenizer as tiktoken" in rewritten
