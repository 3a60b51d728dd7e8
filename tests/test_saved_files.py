"""Files written by an earlier numpygpt still load, with the same contents.

`tests/data/` holds a training checkpoint, a plain state_dict file and a Hugging
Face directory written by numpygpt 0.1.0 (commit b2dffc8) for a tiny GPT that
took two AdamW steps, and `expected_v1.npz` with what they held when written:
the weights, the AdamW moments and the model's logits on two token sequences.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import numpygpt
from numpygpt.checkpoint import load_checkpoint
from numpygpt.files import load_state_dict_file
from numpygpt.model import GPTModel
from numpygpt.optim import AdamW

DATA = Path(__file__).parent / "data"
CFG = dict(vocab_size=11, context_length=6, emb_dim=4, n_heads=2, n_layers=1, drop_rate=0.0, qkv_bias=True)


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(DATA / "expected_v1.npz", allow_pickle=False) as f:
        return dict(f)


def _logits(model: GPTModel, ids: np.ndarray) -> np.ndarray:
    with numpygpt.no_grad():
        return model(ids).data


def _assert_same_logits(actual: np.ndarray, desired: np.ndarray) -> None:
    """The weights must load bit for bit; the logits computed from them agree to float32
    rounding, since the forward's order of operations may change between versions."""
    np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-6)


def test_training_checkpoint_v1_loads(expected: dict[str, np.ndarray]) -> None:
    state = numpygpt.get_rng_state()
    contents = load_checkpoint(DATA / "checkpoint_v1.safetensors", restore_rng=False)
    assert numpygpt.get_rng_state() == state  # restore_rng=False leaves the generator alone
    model = contents["model"]
    assert contents["cfg"] == {**CFG, "ln_eps": 1e-5, "tie_embeddings": False}
    assert contents["step"] == 2
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, expected[f"sd.{key}"], err_msg=key)
    _assert_same_logits(_logits(model, expected["ids"]), expected["logits"])

    extra = contents["extra"]
    assert extra["note"] == ("a", 1)  # tuples come back as tuples
    np.testing.assert_array_equal(extra["array"], np.arange(3.0))
    assert extra["scheduler"]["last_epoch"] == 2 and extra["scheduler"]["total_steps"] == 5


def test_training_checkpoint_v1_resumes_the_optimizer(expected: dict[str, np.ndarray]) -> None:
    model = GPTModel(CFG)
    optimizer = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    load_checkpoint(DATA / "checkpoint_v1.safetensors", model, optimizer, restore_rng=False)
    state = optimizer.state_dict()
    group = state["param_groups"][0]
    assert group["lr"] == pytest.approx(0.008535533905932738, rel=0, abs=0)
    assert group["betas"] == (0.9, 0.999) and group["weight_decay"] == 0.1
    assert len(state["state"]) == len(list(model.parameters()))
    for i, s in state["state"].items():
        assert s["step"] == 2
        np.testing.assert_array_equal(s["exp_avg"], expected[f"exp_avg.{i}"])
        np.testing.assert_array_equal(s["exp_avg_sq"], expected[f"exp_avg_sq.{i}"])


def test_state_dict_file_v1_loads(expected: dict[str, np.ndarray]) -> None:
    sd = load_state_dict_file(DATA / "state_dict_v1.safetensors")
    model = GPTModel(CFG)
    model.load_state_dict(sd, strict=True)
    _assert_same_logits(_logits(model, expected["ids"]), expected["logits"])


def test_hugging_face_directory_v1_loads(expected: dict[str, np.ndarray]) -> None:
    model = GPTModel.from_pretrained(DATA / "hf_gpt2_v1")
    assert model.cfg["tie_embeddings"] and model.out_head.weight is model.tok_emb.weight
    assert not model.training
    _assert_same_logits(_logits(model, expected["ids"]), expected["tied_logits"])


def test_training_checkpoint_v1_loads_and_says_its_generator_state_is_not_restored(
        expected: dict[str, np.ndarray]) -> None:
    state = numpygpt.get_rng_state()
    with pytest.warns(UserWarning, match="random state is not restored"):
        contents = load_checkpoint(DATA / "checkpoint_v1.safetensors")
    assert numpygpt.get_rng_state() == state  # the generator is left as it was
    _assert_same_logits(_logits(contents["model"], expected["ids"]), expected["logits"])
