"""`compare` names the first tensor that disagrees; `precision` measures numpygpt's own rounding;
the `reference` and `compare` commands write and read bundles."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import numpygpt
from numpygpt import reference
from numpygpt.cli import main
from numpygpt.compare import compare, default_tolerance, ulp_distance
from numpygpt.model import GPTModel
from numpygpt.precision import measure, worst_float32

CFG = {"vocab_size": 97, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0,
       "qkv_bias": True}
IDS = np.array([[15, 11, 31, 71, 25]])
TARGETS = np.array([[11, 31, 71, 25, 33]])


def _recording(seed: int = 0, dtype: str = "float32") -> OrderedDict:
    numpygpt.manual_seed(seed)
    model = GPTModel(CFG).eval()
    model = model.double() if dtype == "float64" else model
    return reference.record(model, IDS, TARGETS)


def test_identical_recordings_agree() -> None:
    rec = _recording()
    result = compare(rec, rec)
    assert result.ok and result.first is None and len(result.rows) == len(rec)
    assert result.verdict().startswith("no divergence")
    assert all(r.ulp == 0 for r in result.rows)


def test_the_first_divergence_is_named_and_what_comes_before_agrees() -> None:
    ours = _recording()
    theirs = OrderedDict((k, v.copy()) for k, v in ours.items())
    theirs["trf_blocks.1.norm2"] = theirs["trf_blocks.1.norm2"] * 1.03
    theirs["final_norm"] = theirs["final_norm"] + 1.0  # later divergences do not hide the first
    result = compare(ours, theirs)
    assert not result.ok and result.first.name == "trf_blocks.1.norm2"
    assert result.first.max_rel == pytest.approx(0.03 / 1.03, rel=1e-3)
    verdict = result.verdict()
    assert verdict.startswith("first divergence: trf_blocks.1.norm2 (max rel 2.9e-02") and "everything before it" in verdict
    assert "trf_blocks.1.norm2" in result.report(all_rows=False).splitlines()[-2 if result.looks_like else -1]


def test_float32_against_float64_is_within_the_default_tolerance() -> None:
    ours, theirs = _recording(dtype="float32"), _recording(dtype="float64")
    result = compare(ours, theirs)
    assert (result.rtol, result.atol) == default_tolerance(np.float32)
    assert result.ok, result.verdict()
    assert not compare(ours, theirs, rtol=1e-12, atol=0).ok  # float32 is not float64


def test_zero_gradients_are_measured_against_the_largest_gradient() -> None:
    """W_key.bias's gradient is 0 in exact arithmetic: rounding noise in float32 and float64 alike."""
    result = compare(_recording(dtype="float32"), _recording(dtype="float64"))
    row = next(r for r in result.rows if r.name == "trf_blocks.0.att.W_key.bias.grad")
    assert row.ok and row.max_rel < 1e-4


def test_nan_shape_and_ulp() -> None:
    a = np.array([1.0, 2.0], dtype=np.float32)
    result = compare({"x": a, "y": a, "z": a}, {"x": np.array([1.0, np.nan], np.float32), "y": a[:1], "z": a})
    x, y, z = result.rows
    assert not x.ok and "nan" in x.note and not y.ok and "shape" in y.note and z.ok
    one = np.float32(1.0)
    assert ulp_distance(np.array([one]), np.array([np.nextafter(one, np.float32(2))])) == 1
    tiny = np.float32(1e-45)  # the smallest subnormal: -tiny, 0, tiny are one ulp apart
    assert ulp_distance(np.array([-tiny], np.float32), np.array([tiny], np.float32)) == 2


def test_a_bundle_written_by_other_code_loads(tmp_path: Path) -> None:
    path = tmp_path / "theirs.safetensors"
    safetensors.numpy.save_file({"logits": np.ones((1, 2, 3), np.float32), "tok_emb": np.zeros((1, 2, 4), np.float32)},
                                str(path))
    rec = reference.load(path)
    meta = rec.metadata
    assert set(rec) == {"logits", "tok_emb"} and meta == {}


def test_precision_measures_all_three_checks() -> None:
    rows = measure(CFG, tokens=6)
    checks = {r.check for r in rows}
    assert checks == {"float32 vs float64", "cached vs full", "batched vs single"}
    worst = worst_float32(rows)
    assert 0 < worst.max_rel < default_tolerance(np.float32)[0] / 10 * 3  # the tolerance has room
    assert all(r.max_rel < 1e-5 for r in rows if r.check != "float32 vs float64")


# ----------------------------------------------------------------------------- the commands


def test_reference_and_compare_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(CFG))
    bundle = tmp_path / "ours.safetensors"
    assert main(["reference", str(bundle), "--config", str(config), "--seed", "3", "--ids", "15,11,31,71,25,33"]) == 0
    rec = reference.load(bundle)
    meta = rec.metadata
    assert meta["format"] == "numpygpt.reference" and json.loads(meta["config"])["emb_dim"] == 16
    assert {"inputs", "targets", "logits", "loss", "tok_emb.weight.grad"} <= set(rec)
    capsys.readouterr()

    assert main(["compare", str(bundle), "--config", str(config), "--seed", "3"]) == 0
    assert "no divergence" in capsys.readouterr().out

    assert main(["compare", str(bundle), "--config", str(config), "--seed", "4"]) == 1
    assert "first divergence: tok_emb " in capsys.readouterr().out  # other weights: the embedding differs

    other = tmp_path / "float64.safetensors"
    assert main(["reference", str(other), "--config", str(config), "--seed", "3", "--ids", "15,11,31,71,25,33",
                 "--dtype", "float64", "--adamw-steps", "2"]) == 0
    assert reference.load(other)["adamw.losses"].shape == (2,)
    capsys.readouterr()
    assert main(["compare", str(bundle), str(other)]) == 0
    assert "no divergence" in capsys.readouterr().out


def test_llmc_commands_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from numpygpt import llmc

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(dict(CFG, tie_embeddings=True)))
    model_file, state_file, out = tmp_path / "m.bin", tmp_path / "d.bin", tmp_path / "hf"
    assert main(["llmc", "write", str(model_file), "--config", str(config), "--seed", "7",
                 "--debug-state", str(state_file), "--batch", "2", "--tokens", "5"]) == 0
    assert "B=2, T=5" in capsys.readouterr().out
    assert main(["llmc", "read", str(model_file), "--out", str(out)]) == 0
    numpygpt.manual_seed(7)
    original = GPTModel(dict(CFG, tie_embeddings=True))
    back = GPTModel.from_pretrained(out)
    for key, value in original.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value, err_msg=key)
    state = llmc.read_debug_state(state_file, model_file)
    assert state["logits"].shape == (2, 5, CFG["vocab_size"])


def test_compare_names_a_known_mistake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bundle from a run with LayerNorm's unbiased variance, against a live clean run of the same weights."""
    from numpygpt import bugs

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(CFG))
    numpygpt.manual_seed(9)
    model = GPTModel(CFG).eval()
    with bugs.inject(model, "ln_unbiased"):
        rec = reference.record(model, IDS, TARGETS)
    rec["inputs"], rec["targets"] = IDS, TARGETS
    reference.save(rec, tmp_path / "theirs.safetensors", config=CFG)
    assert main(["compare", str(tmp_path / "theirs.safetensors"), "--config", str(config), "--seed", "9"]) == 1
    out = capsys.readouterr().out
    assert "first divergence: trf_blocks.0.norm1 " in out and "everything before it is identical" in out
    assert "looks like: LayerNorm with the unbiased (n − 1) variance" in out
