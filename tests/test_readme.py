"""The README's examples run and print what the README shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


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
    assert out.getvalue() == shown


def test_first_taste_runs() -> None:
    program = re.search(r"```python\n(.*?)```", _section("A first taste of the engine"), re.S).group(1)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(program, "README: A first taste", "exec"), {})
