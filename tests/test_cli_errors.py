"""The `numpygpt` command's error policy, command by command.

A bad argument or a failing command prints one line on stderr,
`numpygpt <command>: error: <message>`, and exits 2; `--debug` (before or
after the command's name) adds the traceback. Ctrl-C exits 130 and SIGTERM
143, each with one line; `numpygpt train` writes its checkpoint on both.

Most cases run in-process through `numpygpt.cli.main`. The signals are sent
to a real `python -m numpygpt` in a session of its own, once it has printed
something (so the signal arrives while it works, not before Python has
started), and start-up is made slow on purpose with a stand-in for tqdm that
waits, so that the signal arrives while numpygpt is being imported.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from numpygpt.checkpoint import load_checkpoint
from numpygpt.cli import main
from numpygpt.recipe import default_text

REPO = Path(__file__).resolve().parent.parent
TINY_TRAIN = ["--batch-size", "2", "--context-length", "8", "--stride", "8", "--eval-freq", "2", "--no-progress"]


def one_error_line(err: str, command: str) -> str:
    """The single line of `err`, checked to be `command`'s error line; returns the message."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{command}: error: "), err
    return lines[0][len(f"{command}: error: "):]


# ----------------------------------------------------------------------------- a bad argument, per command


def bad_arguments(tmp: Path) -> list[tuple[str, list[str], str]]:
    """(command, argv, what the message must contain) for every command."""
    return [
        ("generate", ["generate", "--max-new-tokens", "-1"], "--max-new-tokens: must be a non-negative integer, got '-1'"),
        ("generate", ["generate", "Hello", "--temperature", "nan"], "temperature must be a finite number"),
        ("info", ["info", "--config", "gpt3"], "unknown config 'gpt3'"),
        ("tour", ["tour", "nope"], "invalid choice: 'nope'"),
        ("train", ["train", "--epochs", "0"], "--epochs: must be a positive integer, got '0'"),
        ("train", ["train", "--text", str(tmp / "missing.txt"), "--out", str(tmp / "run")], "no such text file"),
        ("reference", ["reference", str(tmp / "r.safetensors"), "--config", "gpt3"], "unknown config 'gpt3'"),
        ("compare", ["compare", str(tmp / "missing.safetensors"), str(tmp / "other.safetensors")], "missing"),
        ("precision", ["precision", "--config", "gpt3"], "gpt3"),
        ("llmc", ["llmc", "read", str(tmp / "missing.bin")], "missing.bin"),
        ("graph", ["graph", "--example", "nope"], "invalid choice: 'nope'"),
        ("gradflow", ["gradflow", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        ("attention", ["attention", "The cat", "--weights", str(tmp / "no-such-dir")], "no-such-dir"),
    ]


CASES = [(command, i) for i, (command, _, _) in enumerate(bad_arguments(Path("/x")))]


@pytest.mark.parametrize("command, index", CASES, ids=[f"{c}-{i}" for c, i in CASES])
def test_a_bad_argument_is_one_line_and_exit_2(command: str, index: int, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _, argv, wanted = bad_arguments(tmp_path)[index]
    assert main(argv) == 2
    message = one_error_line(capsys.readouterr().err, f"numpygpt {command}")
    assert wanted in message
    assert list(tmp_path.iterdir()) == []     # nothing written for a bad command line


@pytest.mark.parametrize("error, line", [
    (RuntimeError("the engine stalled"), "numpygpt info: error: the engine stalled"),
    (MemoryError("Unable to allocate 4.00 GiB for an array"), "numpygpt info: error: Unable to allocate 4.00 GiB for an array"),
    (OSError("disk full"), "numpygpt info: error: disk full"),
    (KeyError("emb_dim"), "numpygpt info: error: KeyError: 'emb_dim'"),
    (ZeroDivisionError("division by zero"), "numpygpt info: error: ZeroDivisionError: division by zero"),
    (ValueError("two\nlines"), "numpygpt info: error: two lines"),
    (ValueError(), "numpygpt info: error: ValueError"),
])
def test_any_exception_is_one_line(error: Exception, line: str, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(args: object) -> int:
        raise error
    monkeypatch.setattr("numpygpt.cli._cmd_info", fail)
    assert main(["info"]) == 2
    assert capsys.readouterr().err == line + "\n"


def test_the_error_starts_a_line_of_its_own_after_a_progress_bar(capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tqdm import tqdm

    def fail(args: object) -> int:
        bar = tqdm(total=10, desc="working")
        bar.update(3)
        raise ValueError("boom")                                    # the bar is still open
    monkeypatch.setattr("numpygpt.cli._cmd_info", fail)
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert "working" in err
    assert err.endswith("\nnumpygpt info: error: boom\n")


def test_a_closed_stdout_ends_quietly_with_141(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")                    # as print() raises after `| head` has quit
    monkeypatch.setattr("numpygpt.cli._cmd_info", fail)
    assert main(["info"]) == 141
    assert capsys.readouterr().err == ""


def test_python_m_numpygpt_reports_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "numpygpt", "generate", "--max-new-tokens", "-1"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert one_error_line(done.stderr, "numpygpt generate").startswith("argument --max-new-tokens:")
    assert done.stdout == ""


@pytest.mark.parametrize("argv", [["--debug", "generate", ""], ["generate", "", "--debug"]])
def test_debug_before_or_after_the_command_adds_the_traceback(argv: list[str],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "raise ValueError" in err
    assert err.splitlines()[-1] == "numpygpt generate: error: the prompt encodes to no tokens; give some text"


def test_debug_is_not_taken_for_llmc_debug_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # argparse would expand an unknown --debug to llmc's --debug-state and eat the next argument
    assert main(["llmc", "read", str(tmp_path / "missing.bin"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("numpygpt llmc: error: ")
    assert not list(tmp_path.iterdir())


def test_numpy_warnings_are_silenced_without_debug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A learning rate that blows the loss up: only the clear message, no RuntimeWarning with file paths."""
    text = tmp_path / "zen.txt"
    text.write_text(default_text(), encoding="utf-8")
    argv = ["train", "--text", str(text), "--lr", "1e4", "--max-steps", "40", *TINY_TRAIN, "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    message = one_error_line(capsys.readouterr().err, "numpygpt train")
    assert re.match(r"the training loss is (nan|inf|-inf) at step \d+", message), message


def test_a_long_prompt_is_cropped_with_a_notice(capsys: pytest.CaptureFixture[str]) -> None:
    from numpygpt.model import get_config
    context = get_config("gpt2-small")["context_length"]
    prompt = " hello" * (context + 5)                                 # one token per " hello"
    assert main(["generate", prompt, "--max-new-tokens", "0"]) == 0
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if "note:" in line]
    assert notes == [(f"numpygpt generate: note: the prompt has {context + 5} tokens, more than the model's "
                      f"context of {context}; its first 5 are dropped")]
    assert "building an untrained gpt2-small (163,009,536 parameters)..." in captured.err
    assert "Output length:" in captured.out                          # stdout keeps only the output


def test_resuming_a_finished_run_says_how_to_train_more(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "zen.txt"
    text.write_text(default_text(), encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "--text", str(text), "--epochs", "1", *TINY_TRAIN, "--eval-freq", "1000", "--eval-iter", "1",
                 "--out", str(out)]) == 0
    checkpoint = out / "checkpoint.safetensors"
    before = checkpoint.read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", str(checkpoint), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    steps = load_checkpoint(checkpoint)["step"]
    assert printed.strip() == (f"{checkpoint} holds a finished run: 1 epoch ({steps} steps), nothing left to "
                               f"train. To train longer: numpygpt train --resume {checkpoint} --epochs 2 (or more)")
    assert checkpoint.read_bytes() == before


# ----------------------------------------------------------------------------- Ctrl-C and SIGTERM


def start(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m numpygpt ARGV` in a session of its own (a signal to it reaches no one else)."""
    return subprocess.Popen([sys.executable, "-m", "numpygpt", *argv], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def wait_for(stream, pattern: str, timeout: float = 90.0) -> list[str]:  # type: ignore[no-untyped-def]
    """Read lines from `stream` until one contains `pattern`; return the lines read."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if pattern in line:
            return seen
    raise AssertionError(f"{pattern!r} never came; read {seen}")


def stop(process: subprocess.Popen, signum: int) -> tuple[str, str]:
    process.send_signal(signum)
    out, err = process.communicate(timeout=90)
    return out, err


SIGNALS = [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")]
SIGNAL_IDS = ["ctrl-c", "sigterm"]


@pytest.mark.parametrize("signum, status, said", SIGNALS, ids=SIGNAL_IDS)
def test_generate_while_building_the_model(signum: int, status: int, said: str, tmp_path: Path) -> None:
    process = start(["generate"], tmp_path)
    wait_for(process.stderr, "building an untrained gpt2-small")   # the 124M model takes seconds to build
    _, err = stop(process, signum)
    assert process.returncode == status
    assert err == f"numpygpt generate: {said}\n"


@pytest.mark.parametrize("signum, status, said", SIGNALS, ids=SIGNAL_IDS)
def test_tour(signum: int, status: int, said: str, tmp_path: Path) -> None:
    process = start(["tour"], tmp_path)
    wait_for(process.stdout, "== dummy:")                          # busy with a 124M-sized dummy model
    _, err = stop(process, signum)
    assert process.returncode == status
    assert err == f"numpygpt tour: {said}\n"


@pytest.mark.parametrize("signum, status, said", SIGNALS, ids=SIGNAL_IDS)
def test_at_start_up(signum: int, status: int, said: str, tmp_path: Path) -> None:
    """While numpygpt is still being imported: a stand-in tqdm says so, then waits."""
    (tmp_path / "tqdm").mkdir()
    (tmp_path / "tqdm" / "__init__.py").write_text(
        "import sys, time\nprint('importing tqdm', flush=True)\ntime.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    process = start(["info"], tmp_path, env=env)
    wait_for(process.stdout, "importing tqdm")
    _, err = stop(process, signum)
    assert process.returncode == status
    assert err == f"numpygpt: {said}\n"


@pytest.mark.parametrize("signum, status, said", SIGNALS, ids=SIGNAL_IDS)
def test_train_saves_a_checkpoint_that_resume_continues(signum: int, status: int, said: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "zen.txt"
    text.write_text(default_text(), encoding="utf-8")
    out = tmp_path / "run"
    process = start(["train", "--text", str(text), *TINY_TRAIN, "--out", str(out)], tmp_path)
    wait_for(process.stdout, "Ep 1 (Step 000002)")                 # training has begun
    stdout, err = stop(process, signum)
    assert process.returncode == status
    kept = re.fullmatch(rf"{re.escape(said[0].upper() + said[1:])}: the state after step (\d+) is kept in (.*)\n", err)
    assert kept, err                                                # reported once, on stderr
    assert "nterrupted" not in stdout and "erminated" not in stdout
    checkpoint = out / "checkpoint.safetensors"
    assert Path(kept.group(2)) == checkpoint
    saved = load_checkpoint(checkpoint)
    assert saved["step"] == int(kept.group(1)) >= 2
    assert saved["extra"]["history"]["interrupted"]

    assert main(["train", "--resume", str(checkpoint), "--max-steps", str(saved["step"] + 2), "--no-progress"]) == 0
    assert "resuming from" in capsys.readouterr().out
    resumed = load_checkpoint(checkpoint)
    assert resumed["step"] == saved["step"] + 2
    assert resumed["extra"]["history"]["step_losses"][: saved["step"]] == saved["extra"]["history"]["step_losses"]


# ----------------------------------------------------------------------------- the README shows real messages


def readme_errors_examples() -> list[tuple[str, list[str]]]:
    """Each `$ numpygpt ...` line of the README's "## Errors" section and the lines shown under it."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Errors\n"):readme.index("\n## ", readme.index("## Errors\n") + 1)]
    examples: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```\n(.*?)```", section, re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ numpygpt "):
                examples.append((line[2:], []))
            elif examples:
                examples[-1][1].append(line)
    return examples


def test_the_readme_shows_what_the_command_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    examples = readme_errors_examples()
    assert len(examples) >= 2
    for command_line, shown in examples:
        status = main(shlex.split(command_line)[1:])
        assert status == 2, command_line
        assert capsys.readouterr().err.splitlines() == shown, command_line
