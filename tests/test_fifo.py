"""Only regular files are opened: a FIFO where a file is expected is refused at once, never read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")

CALLS = {
    "load_checkpoint": "from numpygpt.checkpoint import load_checkpoint; load_checkpoint(path)",
    "load_state_dict_file": "from numpygpt.files import load_state_dict_file; load_state_dict_file(path)",
    "read_safetensors": "from numpygpt.files import read_safetensors; read_safetensors(path)",
    "read_json": "from numpygpt.files import read_json; read_json(path, 'config')",
    "reference.load": "from numpygpt import reference; reference.load(path)",
    "train text": "from numpygpt.recipe import _read_text; _read_text(path)",
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_fifo_is_refused_without_blocking(call: str, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code = f"path = {str(fifo)!r}\ntry:\n    {CALLS[call]}\nexcept ValueError as e:\n    print(e)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "FIFO" in done.stdout and str(fifo) in done.stdout


def test_the_cli_refuses_a_fifo_checkpoint(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "numpygpt", "generate", "--checkpoint", str(fifo)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "FIFO" in done.stderr and "Traceback" not in done.stderr
