"""The training loop: losses, evaluation, samples, checkpoints, exact resume, Ctrl-C,
non-finite losses, the loss plot and the `numpygpt train` command.

Every test uses a GPT with GPT-2's vocabulary (the tokenizer needs it) but a
tiny width, so a step takes milliseconds.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import numpygpt
from numpygpt import recipe as R
from numpygpt import train as T
from numpygpt.checkpoint import load_checkpoint
from numpygpt.cli import main
from numpygpt.data import DataLoader, GPTDataset
from numpygpt.model import GPTModel
from numpygpt.optim import AdamW, CosineWithWarmup, param_groups_for_weight_decay
from numpygpt.tokenizer import get_encoding

V = 50257
TINY = {"vocab_size": V, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
        "drop_rate": 0.1, "qkv_bias": False}


@pytest.fixture(scope="module")
def tokenizer():
    return get_encoding("gpt2")


@pytest.fixture(scope="module")
def zen() -> str:
    return R.default_text()


class Run:
    """A fresh model, optimizer, scheduler and loaders, built the same way every time
    (as a new process would build them before resuming)."""

    def __init__(self, text: str, tokenizer: Any, cfg: dict = TINY, lr: float = 5e-3, loader_seed: int | None = 7,
                 scheduler: bool = True, batch_size: int = 4, stride: int = 4, build_seed: int = 123):
        numpygpt.manual_seed(build_seed)
        self.model = GPTModel(cfg)
        self.optimizer = AdamW(param_groups_for_weight_decay(self.model, 0.1), lr=lr)
        self.train_loader, self.val_loader = R.create_train_val_loaders(
            text, tokenizer, batch_size, cfg["context_length"], stride, seed=loader_seed)
        self.scheduler = CosineWithWarmup(self.optimizer, 3, 40, min_lr=lr / 10) if scheduler else None
        self.tokenizer = tokenizer

    def train(self, num_epochs: int = 3, **kwargs: Any) -> T.TrainingHistory:
        kwargs.setdefault("max_grad_norm", 1.0)
        kwargs.setdefault("progress", False)
        kwargs.setdefault("sample_tokens", 5)
        return T.train_model(self.model, self.train_loader, self.val_loader, self.optimizer, num_epochs, 3, 2,
                             "Beautiful is", self.tokenizer, scheduler=self.scheduler, **kwargs)

    def params(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.model.state_dict().items()}


def assert_same_params(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not different, f"parameters differ: {different}"


def assert_same_history(a: T.TrainingHistory, b: T.TrainingHistory) -> None:
    da, db = a.to_dict(), b.to_dict()
    da.pop("interrupted"), db.pop("interrupted")
    assert da == db


# ----------------------------------------------------------------------------- losses


def test_loss_falls_well_below_ln_vocab(zen: str, tokenizer: Any) -> None:
    cfg = {**TINY, "emb_dim": 32, "drop_rate": 0.0}
    run = Run(zen, tokenizer, cfg=cfg, lr=1e-2, scheduler=False)
    history = run.train(num_epochs=3)
    assert len(history.step_losses) == 3 * len(run.train_loader)
    first, last = history.train_losses[0], history.train_losses[-1]
    assert first > math.log(V) - 1.0                  # an untrained GPT is near ln V ≈ 10.8
    assert last < math.log(V) - 5.0, history.train_losses
    assert history.steps == sorted(history.steps) and history.steps[0] == 1
    assert history.tokens_seen[-1] == history.steps[-1] * 4 * 8
    assert len(history.samples) == 3 and all(s.startswith("Beautiful is") for s in history.samples)
    assert len(history.lrs) == len(history.step_losses) and set(history.lrs) == {1e-2}


def test_calc_loss_batch_is_cross_entropy(tokenizer: Any) -> None:
    numpygpt.manual_seed(0)
    model = GPTModel({**TINY, "drop_rate": 0.0}).eval()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, (2, 8)), rng.integers(0, V, (2, 8))
    loss = T.calc_loss_batch(x, y, model)
    logits = model(x).data.astype(np.float64).reshape(-1, V)
    shifted = logits - logits.max(axis=1, keepdims=True)
    expected = np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(16), y.reshape(-1)])
    assert loss.shape == () and abs(loss.item() - expected) < 1e-5 * expected
    with pytest.raises(ValueError, match="shape"):
        T.calc_loss_batch(x, y[:, :4], model)


def test_calc_loss_loader_num_batches(tokenizer: Any) -> None:
    numpygpt.manual_seed(0)
    model = GPTModel({**TINY, "drop_rate": 0.0}).eval()
    ids = np.random.default_rng(1).integers(0, V, 60)
    loader = DataLoader(GPTDataset(ids, 8, 8), batch_size=2, shuffle=True, seed=3)   # 7 windows: 4 batches
    assert len(loader) == 4
    per_batch = [T.calc_loss_batch(x, y, model).item() for x, y in loader]   # the epoch after is reordered,
    loader = DataLoader(GPTDataset(ids, 8, 8), batch_size=2, shuffle=True, seed=3)   # so start again
    assert T.calc_loss_loader(loader, model, num_batches=2) == pytest.approx(np.mean(per_batch[:2]), rel=1e-6)
    loader = DataLoader(GPTDataset(ids, 8, 8), batch_size=2, shuffle=False)
    per_batch = [T.calc_loss_batch(x, y, model).item() for x, y in loader]
    assert T.calc_loss_loader(loader, model) == pytest.approx(np.mean(per_batch), rel=1e-6)
    assert T.calc_loss_loader(loader, model, num_batches=100) == pytest.approx(np.mean(per_batch), rel=1e-6)
    assert T.calc_loss_loader(loader, model, num_batches=1) == pytest.approx(per_batch[0], rel=1e-6)
    assert math.isnan(T.calc_loss_loader([], model))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_batches"):
            T.calc_loss_loader(loader, model, num_batches=bad)
    # it records no graph and leaves a loader mid-epoch where it was
    it = iter(loader)
    next(it)
    before = loader.state_dict()
    T.calc_loss_loader(loader, model, num_batches=2)
    assert loader.state_dict()["epoch"] == before["epoch"] and loader.state_dict()["batch_index"] == 1


def test_evaluate_model_modes(zen: str, tokenizer: Any) -> None:
    run = Run(zen, tokenizer)
    run.model.train()
    train_loss, val_loss = T.evaluate_model(run.model, run.train_loader, run.val_loader, 2)
    assert run.model.training and all(m.training for m in run.model.modules())
    assert math.isfinite(train_loss) and math.isfinite(val_loss)
    # eval mode means no dropout: the same number twice, while training-mode losses vary
    again = T.evaluate_model(run.model, run.train_loader, run.val_loader, 2)
    assert again[1] == val_loss


def test_generate_and_print_sample(zen: str, tokenizer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run = Run(zen, tokenizer)
    run.model.train()
    text = T.generate_and_print_sample(run.model, tokenizer, "Beautiful is\nbetter", max_new_tokens=4)
    out = capsys.readouterr().out
    assert text.startswith("Beautiful is\nbetter") and len(tokenizer.encode(text)) >= 4
    assert out == text.replace("\n", " ") + "\n"
    assert run.model.training
    # greedy: the same text every time, and what generate_text_simple gives
    assert T.generate_and_print_sample(run.model, tokenizer, "Beautiful is\nbetter", max_new_tokens=4) == text


def test_default_text_is_the_zen_of_python(capsys: pytest.CaptureFixture[str]) -> None:
    text = R.default_text()
    assert text.startswith("The Zen of Python, by Tim Peters\n\nBeautiful is better than ugly.")
    assert "Namespaces are one honking great idea" in text
    assert capsys.readouterr().out == ""


def test_train_settings() -> None:
    s = R.train_settings()
    assert s["config"] == "tiny" and s["model"]["vocab_size"] == V
    assert s["model"]["context_length"] == s["context_length"]
    s = R.train_settings("gpt2-small", context_length=64)
    assert s["model"]["emb_dim"] == 768 and s["model"]["context_length"] == 64 and s["stride"] == 64
    with pytest.raises(ValueError, match="unknown training config"):
        R.train_settings("gpt5")
    with pytest.raises(ValueError, match="batch_size"):
        R.train_settings(batch_size=0)


def test_loaders_too_short(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match=r"too short.*needs 17"):
        R.create_train_val_loaders("short text " * 5, tokenizer, 2, 8, 8)
    with pytest.raises(ValueError, match="empty"):
        R.create_train_val_loaders("  \n", tokenizer, 2, 8, 8)


# ----------------------------------------------------------------------------- checkpoints and exact resume


@pytest.mark.parametrize("loader_seed", [7, None])
def test_resume_mid_epoch_is_bit_exact(zen: str, tokenizer: Any, tmp_path: Path, loader_seed: int | None) -> None:
    full = Run(zen, tokenizer, loader_seed=loader_seed)
    assert len(full.train_loader) == 11
    expected = full.train(num_epochs=2)
    n = len(expected.step_losses)

    ckpt = tmp_path / "ckpt.safetensors"
    first = Run(zen, tokenizer, loader_seed=loader_seed)
    part = first.train(num_epochs=2, checkpoint_path=ckpt, max_steps=7)    # stops inside the first epoch
    assert len(part.step_losses) == 7 and not part.interrupted
    state = load_checkpoint(ckpt)
    assert state["step"] == 7 and state["extra"]["epoch"] == 0 and state["extra"]["train_loader"]["batch_index"] == 7

    numpygpt.manual_seed(999)                                              # another process: other randomness
    second = Run(zen, tokenizer, loader_seed=loader_seed, build_seed=5)
    resumed = second.train(num_epochs=2, checkpoint_path=ckpt, resume=ckpt)
    assert len(resumed.step_losses) == n
    assert_same_params(second.params(), full.params())
    assert_same_history(resumed, expected)
    for a, b in zip(second.optimizer.state.values(), full.optimizer.state.values()):
        assert np.array_equal(a["exp_avg"], b["exp_avg"]) and np.array_equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert load_checkpoint(ckpt)["step"] == n


def test_resume_after_the_end_trains_more_epochs_exactly(zen: str, tokenizer: Any, tmp_path: Path) -> None:
    full = Run(zen, tokenizer, scheduler=False)
    expected = full.train(num_epochs=3)
    ckpt = tmp_path / "ckpt.safetensors"
    Run(zen, tokenizer, scheduler=False).train(num_epochs=1, checkpoint_path=ckpt)
    assert load_checkpoint(ckpt)["extra"]["epoch"] == 1
    second = Run(zen, tokenizer, scheduler=False, build_seed=9)
    state = load_checkpoint(ckpt, second.model, second.optimizer)          # the dict form of `resume`
    resumed = second.train(num_epochs=3, resume=state)
    assert_same_params(second.params(), full.params())
    assert_same_history(resumed, expected)


def test_checkpoint_every(zen: str, tokenizer: Any, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt.safetensors"
    steps_saved = []
    run = Run(zen, tokenizer)
    run.train(num_epochs=1, checkpoint_path=ckpt, checkpoint_every=4,
              on_step=lambda step, loss: steps_saved.append(load_checkpoint(ckpt)["step"] if ckpt.exists() else None))
    assert steps_saved[:9] == [None, None, None, 4, 4, 4, 4, 8, 8]
    assert load_checkpoint(ckpt)["step"] == 11                            # and at the end
    extra = load_checkpoint(ckpt)["extra"]
    assert extra["run"] == {} and extra["num_epochs"] == 1 and extra["tokens_seen"] == 11 * 4 * 8
    assert T.TrainingHistory.from_dict(extra["history"]).steps == [1, 3, 6, 9]


class InterruptingLoader:
    """A DataLoader that raises KeyboardInterrupt when asked for batch number `at`
    (counting from 1, over all iterations, evaluation's included)."""

    def __init__(self, loader: DataLoader, at: int):
        self.loader, self.at, self.served = loader, at, 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            self.served += 1
            if self.served == self.at:
                raise KeyboardInterrupt
            yield batch

    def state_dict(self):
        return self.loader.state_dict()

    def load_state_dict(self, state):
        self.loader.load_state_dict(state)


@pytest.mark.parametrize("how", ["on_step", "loader", "signal"])
def test_ctrl_c_saves_and_resumes_exactly(zen: str, tokenizer: Any, tmp_path: Path, how: str) -> None:
    full = Run(zen, tokenizer)
    expected = full.train(num_epochs=2)

    ckpt = tmp_path / "ckpt.safetensors"
    first = Run(zen, tokenizer)
    kwargs: dict[str, Any] = {}
    k = 13                                                                  # inside the second epoch
    if how == "on_step":
        def on_step(step: int, loss: float) -> None:
            if step == k:
                raise KeyboardInterrupt
        kwargs["on_step"] = on_step
    elif how == "loader":
        # the loader raises when training asks for batch k + 1
        first.train_loader = InterruptingLoader(first.train_loader, at=10**9)

        def arm(step: int, loss: float) -> None:
            if step == k:
                first.train_loader.at = first.train_loader.served + 1
        kwargs["on_step"] = arm
    else:
        # a real SIGINT in the middle of the update: deferred until the step is complete
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            pytest.skip("SIGINT has a custom handler here")
        sched_step = first.scheduler.step

        def step_and_signal() -> None:
            sched_step()
            if first.scheduler.last_epoch == k:
                signal.raise_signal(signal.SIGINT)
        first.scheduler.step = step_and_signal
    history = first.train(num_epochs=2, checkpoint_path=ckpt, **kwargs)
    assert history.interrupted
    assert len(history.step_losses) == k
    assert load_checkpoint(ckpt)["step"] == k

    numpygpt.manual_seed(31)
    second = Run(zen, tokenizer, build_seed=1)
    resumed = second.train(num_epochs=2, checkpoint_path=ckpt, resume=ckpt)
    assert not resumed.interrupted
    assert_same_params(second.params(), full.params())
    assert_same_history(resumed, expected)


def test_sigterm_under_the_command_saves_and_resumes_exactly(zen: str, tokenizer: Any, tmp_path: Path) -> None:
    """SIGTERM in the middle of an update, with the command's handlers: deferred to the end of the
    step, then handled as Ctrl-C (a checkpoint of that step), and `terminated` says it was SIGTERM."""
    from numpygpt._signals import command_signals
    full = Run(zen, tokenizer)
    expected = full.train(num_epochs=2)
    ckpt = tmp_path / "ckpt.safetensors"
    first = Run(zen, tokenizer)
    k = 13
    sched_step = first.scheduler.step

    def step_and_signal() -> None:
        sched_step()
        if first.scheduler.last_epoch == k:
            signal.raise_signal(signal.SIGTERM)
    first.scheduler.step = step_and_signal
    before = signal.getsignal(signal.SIGTERM)
    with command_signals():
        history = first.train(num_epochs=2, checkpoint_path=ckpt)
    assert signal.getsignal(signal.SIGTERM) is before              # the handlers are put back
    assert history.interrupted and history.terminated
    assert len(history.step_losses) == k and load_checkpoint(ckpt)["step"] == k

    numpygpt.manual_seed(31)
    second = Run(zen, tokenizer, build_seed=1)
    resumed = second.train(num_epochs=2, checkpoint_path=ckpt, resume=ckpt)
    assert not resumed.interrupted and not resumed.terminated
    assert_same_params(second.params(), full.params())
    assert_same_history(resumed, expected)


def test_ctrl_c_without_a_checkpoint_path_returns_history(zen: str, tokenizer: Any) -> None:
    def on_step(step: int, loss: float) -> None:
        if step == 2:
            raise KeyboardInterrupt
    history = Run(zen, tokenizer).train(num_epochs=1, on_step=on_step)
    assert history.interrupted and len(history.step_losses) == 2


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(zen: str, tokenizer: Any, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt.safetensors"
    run = Run(zen, tokenizer)
    saved: dict[str, Any] = {}

    def poison(step: int, loss: float) -> None:
        if step == 4:
            saved["bytes"], saved["mtime"] = ckpt.read_bytes(), os.stat(ckpt).st_mtime_ns
        if step == 5:
            run.model.trf_blocks[0].ff.layers[0].weight.data[0, 0] = np.nan
    with pytest.raises(T.NonFiniteLossError, match=r"loss is nan at step 6") as info:
        run.train(num_epochs=2, checkpoint_path=ckpt, checkpoint_every=4, on_step=poison)
    assert isinstance(info.value, ValueError)
    assert info.value.step == 6 and math.isnan(info.value.loss)
    assert len(info.value.history.step_losses) == 5
    assert ckpt.read_bytes() == saved["bytes"] and os.stat(ckpt).st_mtime_ns == saved["mtime"]
    assert load_checkpoint(ckpt)["step"] == 4


def test_huge_learning_rate_is_a_non_finite_loss(zen: str, tokenizer: Any) -> None:
    run = Run(zen, tokenizer, lr=1e30, scheduler=False)
    with np.errstate(all="ignore"), pytest.raises(T.NonFiniteLossError, match="loss is (nan|inf) at step 2"):
        run.train(num_epochs=1, max_grad_norm=None)


def test_bad_arguments(zen: str, tokenizer: Any, tmp_path: Path) -> None:
    run = Run(zen, tokenizer)
    with pytest.raises(ValueError, match="num_epochs"):
        run.train(num_epochs=0)
    with pytest.raises(ValueError, match="max_grad_norm"):
        run.train(num_epochs=1, max_grad_norm=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run.train(num_epochs=1, checkpoint_path=tmp_path / "no" / "ckpt.safetensors")
    with pytest.raises(TypeError, match="resume"):
        run.train(num_epochs=1, resume=42)


# ----------------------------------------------------------------------------- the plot


def test_plot_losses_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    history = T.TrainingHistory(train_losses=[10.0, 6.0, 3.0], val_losses=[10.1, 7.0, 6.5],
                                tokens_seen=[32, 320, 640], steps=[1, 10, 20])
    path = T.plot_losses(history, tmp_path / "loss.png")
    assert path == tmp_path / "loss.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_losses_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert T.plot_losses(T.TrainingHistory(), tmp_path / "loss.png") is None
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not (tmp_path / "loss.png").exists()


# ----------------------------------------------------------------------------- the command


TINY_CLI = ["--batch-size", "2", "--context-length", "8", "--stride", "8", "--eval-freq", "2", "--no-progress"]


@pytest.fixture
def text_file(tmp_path: Path, zen: str) -> Path:
    path = tmp_path / "zen.txt"
    path.write_text(zen, encoding="utf-8")
    return path


def test_cli_train_then_generate(text_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "--text", str(text_file), "--epochs", "1", "--max-steps", "3", *TINY_CLI,
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Ep 1 (Step 000002): Train loss" in printed and ", Val loss" in printed
    assert "Final losses" in printed
    assert f"numpygpt generate --checkpoint {out / 'checkpoint.safetensors'}" in printed
    assert f"numpygpt train --resume {out / 'checkpoint.safetensors'}" in printed
    history = json.loads((out / "history.json").read_text())
    assert history["steps"] == [1, 2] and len(history["step_losses"]) == 3
    assert load_checkpoint(out / "checkpoint.safetensors")["step"] == 3
    try:
        import matplotlib  # noqa: F401
        assert (out / "loss.png").exists()
    except ImportError:
        pass

    assert main(["generate", "--checkpoint", str(out / "checkpoint.safetensors"), "Beautiful is",
                 "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.startswith("Beautiful is")

    # --resume continues with the stored settings; only --epochs may change
    assert main(["train", "--resume", str(out / "checkpoint.safetensors"), "--max-steps", "5", "--no-progress"]) == 0
    assert "resuming from" in capsys.readouterr().out
    resumed = load_checkpoint(out / "checkpoint.safetensors")
    assert resumed["step"] == 5
    # ... exactly: the same weights as 5 steps in one go
    assert main(["train", "--text", str(text_file), "--epochs", "1", "--max-steps", "5", *TINY_CLI,
                 "--out", str(tmp_path / "straight")]) == 0
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.safetensors")
    assert_same_params(resumed["model"].state_dict(), straight["model"].state_dict())
    assert main(["train", "--resume", str(out / "checkpoint.safetensors"), "--lr", "0.5", "--no-progress"]) == 2
    assert "keeps its settings" in capsys.readouterr().err


def test_cli_train_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)                          # the default --out is relative
    assert main(["train", "--text", str(tmp_path / "missing.txt"), *TINY_CLI]) == 2
    assert "no such text file" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    assert main(["train", "--text", str(empty), *TINY_CLI]) == 2
    assert "is empty" in capsys.readouterr().err
    short = tmp_path / "short.txt"
    short.write_text("Beautiful is better than ugly.", encoding="utf-8")
    assert main(["train", "--text", str(short), *TINY_CLI]) == 2
    err = capsys.readouterr().err
    assert "too short" in err and "tokens" in err
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00abc")
    assert main(["train", "--text", str(binary), *TINY_CLI]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()              # nothing is written for a bad text


def test_an_unexpected_error_keeps_the_training_done_so_far(zen: str, tokenizer: Any, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt.safetensors"
    run = Run(zen, tokenizer)

    def fail(step: int, loss: float) -> None:
        if step == 5:
            raise RuntimeError("disk on fire")
    with pytest.raises(RuntimeError, match="disk on fire"):
        run.train(num_epochs=2, checkpoint_path=ckpt, on_step=fail)
    assert load_checkpoint(ckpt)["step"] == 5  # the five completed steps were saved


def test_a_bad_start_context_fails_before_any_step(zen: str, tokenizer: Any, tmp_path: Path) -> None:
    run = Run(zen, tokenizer)
    before = run.params()
    with pytest.raises(ValueError, match="start_context"):
        T.train_model(run.model, run.train_loader, run.val_loader, run.optimizer, 1, 3, 2, "", tokenizer,
                      progress=False, checkpoint_path=tmp_path / "c.safetensors")
    assert_same_params(run.params(), before)
    assert not (tmp_path / "c.safetensors").exists()


def test_cli_train_never_overwrites_an_earlier_run(text_file: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["train", "--text", str(text_file), "--epochs", "1", "--max-steps", "2", *TINY_CLI, "--out", str(out)]
    assert main(args) == 0
    first = (out / "checkpoint.safetensors").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "holds an earlier run" in err and "--resume" in err and "--overwrite" in err
    assert (out / "checkpoint.safetensors").read_bytes() == first
    assert main([*args, "--overwrite", "--seed", "5"]) == 0
    assert (out / "checkpoint.safetensors").read_bytes() != first
