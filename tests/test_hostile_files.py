"""Hostile files: every loader refuses a file that lies about its sizes, types or nesting, fast and
with a documented exception whose message names the key and the value at fault.

The table `CASES` lists (case id, builder, expected exception type, substring of the message):
each builder writes a small file (or calls a loader) and returns a function that loads it. The
property tests at the end run hypothesis in a subprocess under a 2 GiB address-space limit and
check that random bytes, mutated checkpoint metadata (with the checksums recomputed) and hostile
config.json values only ever load or raise one of the documented exception types.
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.numpy
from safetensors import safe_open

import numpygpt
from numpygpt import checkpoint, files, hf, llmc
from numpygpt import random as nprandom
from numpygpt.checkpoint import load_checkpoint, save_checkpoint
from numpygpt.config import validate_config
from numpygpt.files import load_state_dict_file
from numpygpt.model import GPTModel
from numpygpt.optim import AdamW

TINY = {"vocab_size": 32, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
        "drop_rate": 0.0, "qkv_bias": True}
MESSAGE_LIMIT = 2000  # characters: a message about a hostile file stays readable


# ----------------------------------------------------------------------------- building hostile files


def tiny_model(**overrides: Any) -> GPTModel:
    numpygpt.manual_seed(0)
    return GPTModel({**TINY, **overrides})


def tiny_checkpoint(path: Path, with_optimizer: bool = True, **overrides: Any) -> Path:
    model = tiny_model(**overrides)
    optimizer = AdamW(model.parameters(), lr=1e-3) if with_optimizer else None
    save_checkpoint(path, model, optimizer, step=3, extra={"note": "tiny"})
    return path


def rewrite_checkpoint(src: Path, dst: Path, metadata: dict[str, str] | None = None,
                       arrays: dict[str, np.ndarray] | None = None, drop: tuple[str, ...] = ()) -> Path:
    """A copy of checkpoint `src` with metadata entries / arrays replaced, and its CRC-32s recomputed,
    so only the loader's own checks stand between the change and a model."""
    with safe_open(str(src), framework="np") as f:
        meta = dict(f.metadata())
        stored = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (a safe_open handle, not a dict)
    meta.update(metadata or {})
    stored.update(arrays or {})
    for name in drop:
        stored.pop(name)
    meta["crc32"] = json.dumps({"metadata": checkpoint._metadata_crc32(meta),
                                "arrays": {n: checkpoint._crc32(a) for n, a in stored.items()}})
    safetensors.numpy.save_file(stored, str(dst), metadata=meta)
    return dst


def with_cfg(tmp: Path, **changes: Any) -> Path:
    """A tiny checkpoint whose stored config has `changes` (checksums recomputed)."""
    src = tiny_checkpoint(tmp / "src.safetensors")
    return rewrite_checkpoint(src, tmp / "ckpt.safetensors", {"cfg": json.dumps({**validate_config(TINY), **changes})})


def with_field(tmp: Path, key: str, text: str) -> Path:
    """A tiny checkpoint whose metadata entry `key` holds `text` (checksums recomputed)."""
    src = tiny_checkpoint(tmp / "src.safetensors")
    return rewrite_checkpoint(src, tmp / "ckpt.safetensors", {key: text})


def with_optimizer_group(tmp: Path, **changes: Any) -> Path:
    src = tiny_checkpoint(tmp / "src.safetensors")
    with safe_open(str(src), framework="np") as f:
        optimizer = json.loads(f.metadata()["optimizer"])
    optimizer["state_dict"]["param_groups"][0].update(changes)
    return rewrite_checkpoint(src, tmp / "ckpt.safetensors", {"optimizer": json.dumps(optimizer)})


def with_stored_mask(tmp: Path, mask: np.ndarray) -> Path:
    """A tiny checkpoint that stores trf_blocks.0.att.mask itself (as format version 1 did)."""
    src = tiny_checkpoint(tmp / "src.safetensors")
    with safe_open(str(src), framework="np") as f:
        computed = json.loads(f.metadata()["computed"])
    computed.remove("trf_blocks.0.att.mask")
    return rewrite_checkpoint(src, tmp / "ckpt.safetensors", {"computed": json.dumps(computed)},
                              {"model.trf_blocks.0.att.mask": mask})


def hf_dir(tmp: Path, **config_changes: Any) -> Path:
    """A tiny Hugging Face directory whose config.json has `config_changes` (None deletes a key)."""
    directory = tmp / "hf"
    tiny_model(tie_embeddings=True).save_pretrained(directory)
    config = json.loads((directory / "config.json").read_text())
    for key, value in config_changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def sharded_dir(tmp: Path, index: Any) -> Path:
    directory = hf_dir(tmp)
    (directory / "model.safetensors").rename(directory / "model-00001-of-00001.safetensors")
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    return directory


def raw_safetensors(path: Path, dtype: str) -> Path:
    """A one-tensor safetensors file of `dtype`, written byte by byte (NumPy has no float8)."""
    header = json.dumps({"w": {"dtype": dtype, "shape": [2], "data_offsets": [0, 2]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x01\x02")
    return path


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def deep_json(depth: int) -> str:
    return "[" * depth + "0" + "]" * depth


def deep_config(tmp: Path, depth: int) -> Path:
    """A tiny HF directory whose config.json holds a value nested `depth` lists deep."""
    directory = hf_dir(tmp)
    text = (directory / "config.json").read_text()
    (directory / "config.json").write_text(text.rstrip()[:-1] + f', "extra": {deep_json(depth)}}}')
    return directory


def llmc_file(tmp: Path, **header: int) -> Path:
    """A real llm.c model file of the tiny model, with header fields replaced."""
    path = tmp / "model.bin"
    llmc.write_model(tiny_model(tie_embeddings=True), path)
    ints = np.fromfile(path, dtype="<i4", count=256)
    for i, name in enumerate(llmc._HEADER_FIELDS):
        if name in header:
            ints[2 + i] = header[name]
    with open(path, "r+b") as f:
        f.write(ints.astype("<i4").tobytes())
    return path


def load_dir(directory: Path) -> Callable[[], Any]:
    return lambda: GPTModel.from_pretrained(directory)


def load_ckpt(path: Path) -> Callable[[], Any]:
    return lambda: load_checkpoint(path)


def resume(path: Path) -> Callable[[], Any]:
    def call() -> Any:
        model = tiny_model()
        return load_checkpoint(path, model, AdamW(model.parameters(), lr=1e-3))
    return call


def ragged_state_dict(tmp: Path) -> Callable[[], Any]:
    model = tiny_model()
    sd = {**model.state_dict(), "pos_emb.weight": [[1.0, 2.0], [3.0]]}
    return lambda: model.load_state_dict(sd)


def deep_extra_save(tmp: Path) -> Callable[[], Any]:
    return lambda: save_checkpoint(tmp / "deep.safetensors", tiny_model(), extra={"a": nested(5000)})


def bad_rng_state(**changes: Any) -> Callable[[Path], Callable[[], Any]]:
    return lambda tmp: lambda: nprandom.set_rng_state({**nprandom.get_rng_state(), **changes})


# (case id, builder(tmp_path) -> loader, expected exception type, substring of the message)
CASES: list[tuple[str, Callable[[Path], Callable[[], Any]], type[BaseException], str]] = [
    # 1. size budgets: the config must describe the stored tensors
    ("ckpt context_length 10**6", lambda t: load_ckpt(with_cfg(t, context_length=10**6)), ValueError,
     "context_length 1,000,000"),
    ("ckpt vocab_size 10**10", lambda t: load_ckpt(with_cfg(t, vocab_size=10**10)), ValueError,
     "vocab_size 10,000,000,000"),
    ("ckpt n_layers 10**7", lambda t: load_ckpt(with_cfg(t, n_layers=10**7)), ValueError, "n_layers 10,000,000"),
    ("ckpt emb_dim changed", lambda t: load_ckpt(with_cfg(t, emb_dim=32)), ValueError, "emb_dim 32"),
    ("ckpt context_length smaller", lambda t: load_ckpt(with_cfg(t, context_length=4)), ValueError,
     "pos_emb.weight: shape (8, 16), expected (4, 16)"),
    ("config.json n_layer 10**8", lambda t: load_dir(hf_dir(t, n_layer=10**8)), ValueError, "n_layers 100,000,000"),
    ("config.json n_layer 10**5", lambda t: load_dir(hf_dir(t, n_layer=10**5)), ValueError, "n_layers 100,000"),
    ("config.json n_positions 10**6", lambda t: load_dir(hf_dir(t, n_positions=10**6, n_ctx=10**6)), ValueError,
     "context_length 1,000,000"),
    ("config.json vocab_size 10**9", lambda t: load_dir(hf_dir(t, vocab_size=10**9)), ValueError,
     "vocab_size 1,000,000,000"),
    ("llm.c num_layers 10**7", lambda t: lambda: llmc.load_model(llmc_file(t, num_layers=10**7)), ValueError,
     "truncated or corrupt"),
    # 2. the causal masks
    ("ckpt mask changed", lambda t: load_ckpt(with_stored_mask(t, np.zeros((8, 8), np.float32))), ValueError,
     "trf_blocks.0.att.mask is not the causal mask"),
    ("ckpt mask misshapen", lambda t: load_ckpt(with_stored_mask(t, np.zeros((9, 9), np.float32))), ValueError,
     "trf_blocks.0.att.mask: shape (9, 9), expected (8, 8)"),
    # 3. documented exception types
    *[(f"safetensors {dt}", lambda t, dt=dt: lambda: load_state_dict_file(raw_safetensors(t / "w.safetensors", dt)),
       ValueError, f"'w' has dtype {dt}; numpygpt reads F32, F64, F16, BF16")
      for dt in ("F8_E4M3", "F8_E5M2", "F8_E8M0")],
    ("index is a JSON list", lambda t: load_dir(sharded_dir(t, ["a", "b"])), ValueError,
     "model.safetensors.index.json has no valid weight_map"),
    ("weight_map of ints", lambda t: load_dir(sharded_dir(t, {"weight_map": {"wte.weight": 1}})), ValueError,
     "model.safetensors.index.json has no valid weight_map"),
    ("weight_map a list", lambda t: load_dir(sharded_dir(t, {"weight_map": [1]})), ValueError,
     "model.safetensors.index.json has no valid weight_map"),
    ("ckpt extra is a list", lambda t: resume(with_field(t, "extra", "[1, 2]")), ValueError, "'extra'"),
    ("ckpt cfg is a list", lambda t: load_ckpt(with_field(t, "cfg", "[1]")), ValueError, "'cfg'"),
    ("ckpt step is a string", lambda t: load_ckpt(with_field(t, "step", '"3"')), ValueError, "step"),
    ("ckpt model_keys a dict", lambda t: load_ckpt(with_field(t, "model_keys", "{}")), ValueError, "'model_keys'"),
    ("ckpt model_keys of ints", lambda t: load_ckpt(with_field(t, "model_keys", "[1]")), ValueError,
     "'model_keys'"),
    ("ckpt aliases a list", lambda t: load_ckpt(with_field(t, "aliases", "[]")), ValueError, "'aliases'"),
    ("ckpt optimizer a list", lambda t: resume(with_field(t, "optimizer", "[]")), ValueError, "'optimizer'"),
    ("ckpt optimizer no class", lambda t: resume(with_field(t, "optimizer", '{"state_dict": {}}')), ValueError,
     "'optimizer'"),
    ("ckpt rng_state a list", lambda t: load_ckpt(with_field(t, "rng_state", "[]")), ValueError, "'rng_state'"),
    ("ckpt computed not a mask", lambda t: load_ckpt(with_field(t, "computed", json.dumps(
        ["trf_blocks.0.att.mask", "trf_blocks.1.att.mask", "tok_emb.weight"]))), ValueError,
     "tok_emb.weight as computed"),
    ("ckpt mask neither stored nor computed", lambda t: load_ckpt(with_field(t, "computed", "[]")), ValueError,
     "trf_blocks.0.att.mask"),
    ("ckpt rng key out of range", lambda t: load_ckpt(with_field(
        t, "rng_state", json.dumps({**nprandom.get_rng_state(), "key": [2**40] * 624}))), ValueError, "key"),
    ("ckpt rng pos a string", lambda t: load_ckpt(with_field(
        t, "rng_state", json.dumps({**nprandom.get_rng_state(), "pos": "x"}))), ValueError, "pos"),
    ("set_rng_state key 2**70", bad_rng_state(key=[2**70] * 624), ValueError, "key"),
    ("set_rng_state key floats", bad_rng_state(key=[1.5] * 624), ValueError, "key"),
    ("set_rng_state seed 2**70", bad_rng_state(seed=2**70), ValueError, "seed"),
    ("set_rng_state pos 2**80", bad_rng_state(pos=2**80), ValueError, "pos"),
    ("set_rng_state next_normal str", bad_rng_state(next_normal="x"), ValueError, "next_normal"),
    ("ckpt extra nested 5000", lambda t: load_ckpt(with_field(t, "extra", deep_json(5000))), ValueError,
     "nested deeper than 100 levels"),
    ("ckpt extra nested 150", lambda t: load_ckpt(with_field(t, "extra", deep_json(150))), ValueError,
     "nested deeper than 100 levels"),
    ("ckpt cfg nested 5000", lambda t: load_ckpt(with_field(t, "cfg", deep_json(5000))), ValueError,
     "nested deeper than 100 levels"),
    ("save extra nested 5000", deep_extra_save, ValueError, "extra is nested deeper than 100 levels"),
    ("config.json nested 5000", lambda t: load_dir(deep_config(t, 5000)), ValueError, "nested deeper than 100"),
    ("config.json nested 150", lambda t: load_dir(deep_config(t, 150)), ValueError, "nested deeper than 100"),
    ("ragged state_dict", ragged_state_dict, ValueError, "pos_emb.weight: not an array"),
    ("empty state_dict for 60 blocks", lambda t: functools.partial(tiny_model(n_layers=60).load_state_dict, {}),
     ValueError, "missing keys: tok_emb.weight, pos_emb.weight"),
    *[(f"config.json n_embd {value!r}", lambda t, value=value: load_dir(hf_dir(t, n_embd=value)), TypeError,
       f"n_embd must be a positive integer, got {value!r}") for value in ("768", 7.5, True, [16])],
    ("config.json n_embd null", lambda t: load_dir(hf_dir(t, n_embd=None)), ValueError, "missing n_embd"),
    ("config.json n_head huge string", lambda t: load_dir(hf_dir(t, n_head="7" * 10**6)), TypeError, "n_head"),
    ("tie_word_embeddings []", lambda t: load_dir(hf_dir(t, tie_word_embeddings=[])), TypeError,
     "tie_word_embeddings must be true or false, got []"),
    ("layer_norm_epsilon a string", lambda t: load_dir(hf_dir(t, layer_norm_epsilon="x")), TypeError,
     "layer_norm_epsilon"),
    ("optimizer lr null", lambda t: resume(with_optimizer_group(t, lr=None)), ValueError, "['lr']"),
    ("optimizer lr null, no optimizer", lambda t: load_ckpt(with_optimizer_group(t, lr=None)), ValueError, "['lr']"),
    ("optimizer betas a string", lambda t: resume(with_optimizer_group(t, betas="x")), ValueError, "['betas']"),
    # 4. ln_eps through every path
    *[(f"config ln_eps {value!r}", lambda t, value=value: lambda: GPTModel({**TINY, "ln_eps": value}), ValueError,
       "ln_eps") for value in (math.nan, math.inf, -1e-5, 0.0, "1e-5", True, None)],
    *[(f"ckpt ln_eps {value!r}", lambda t, value=value: load_ckpt(with_cfg(t, ln_eps=value)), ValueError, "ln_eps")
      for value in (math.nan, math.inf, -1.0)],
    *[(f"config.json layer_norm_epsilon {value!r}", lambda t, value=value: load_dir(
        hf_dir(t, layer_norm_epsilon=value)), ValueError, "ln_eps") for value in (math.nan, math.inf, -1.0)],
    # 6. symlinks out of a model directory
    ("config.json links out", lambda t: load_dir(linked_out(t, "config.json")), ValueError, "is a symlink to"),
    ("model.safetensors links out", lambda t: load_dir(linked_out(t, "model.safetensors")), ValueError,
     "is a symlink to"),
]


def linked_out(tmp: Path, name: str) -> Path:
    """A tiny HF directory whose `name` is a symlink to a copy outside the directory."""
    directory = hf_dir(tmp)
    outside = tmp / f"outside-{name}"
    (directory / name).rename(outside)
    (directory / name).symlink_to(outside)
    return directory


@pytest.mark.parametrize(("case", "build", "error", "words"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_refused(case: str, build: Callable[[Path], Callable[[], Any]],
                                  error: type[BaseException], words: str, tmp_path: Path) -> None:
    load = build(tmp_path)
    state = nprandom.get_rng_state()
    started = time.perf_counter()
    with pytest.raises(error) as caught:
        load()
    assert time.perf_counter() - started < 5, f"{case}: refusing took too long"
    message = str(caught.value)
    assert words in message, f"{case}: {message[:500]}"
    assert 0 < len(message) < MESSAGE_LIMIT, f"{case}: a message of {len(message):,} characters"
    assert nprandom.get_rng_state() == state  # nothing half-restored


def test_deep_extra_save_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tiny_checkpoint(tmp_path / "ckpt.safetensors")
    before = path.read_bytes()
    with pytest.raises(ValueError, match="nested deeper"):
        save_checkpoint(path, tiny_model(), extra={"a": nested(5000)})
    assert path.read_bytes() == before


def test_write_json_refuses_deep_nesting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nested deeper than 100 levels"):
        files.write_json(tmp_path / "x.json", {"a": nested(200)})
    assert not (tmp_path / "x.json").exists()


def test_a_self_containing_extra_is_refused(tmp_path: Path) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested deeper"):
        save_checkpoint(tmp_path / "c.safetensors", tiny_model(), extra={"loop": loop})


# ----------------------------------------------------------------------------- the causal masks


def test_state_dict_keeps_the_mask_key_and_checkpoints_do_not_store_it(tmp_path: Path) -> None:
    model = tiny_model()
    assert "trf_blocks.0.att.mask" in model.state_dict()
    path = tiny_checkpoint(tmp_path / "ckpt.safetensors", with_optimizer=False)
    with safe_open(str(path), framework="np") as f:
        names, meta = list(f.keys()), f.metadata()
    assert not any(name.endswith("att.mask") for name in names)
    assert json.loads(meta["computed"]) == [f"trf_blocks.{i}.att.mask" for i in range(TINY["n_layers"])]
    loaded = load_checkpoint(path)["model"]
    for i in range(TINY["n_layers"]):
        mask = loaded.trf_blocks[i].att.mask.data
        np.testing.assert_array_equal(mask, np.triu(np.ones((8, 8)), 1))
        assert not mask.flags.writeable and mask.base is not None  # the O(T) view, not a (T, T) copy


def test_a_stored_causal_mask_loads_as_a_view(tmp_path: Path) -> None:
    path = with_stored_mask(tmp_path, np.triu(np.ones((8, 8), np.float32), 1))
    loaded = load_checkpoint(path)["model"]
    assert not loaded.trf_blocks[0].att.mask.data.flags.writeable


def test_a_changed_mask_is_kept_in_the_checkpoint(tmp_path: Path) -> None:
    """A mask that is not the causal one is stored (not silently replaced), so loading can refuse it."""
    model = tiny_model()
    model.trf_blocks[0].att.mask = numpygpt.Tensor(np.zeros((8, 8), np.float32))
    save_checkpoint(tmp_path / "c.safetensors", model)
    with pytest.raises(ValueError, match="trf_blocks.0.att.mask is not the causal mask"):
        load_checkpoint(tmp_path / "c.safetensors")


def test_wide_context_one_wide_model_loads_in_little_memory(tmp_path: Path) -> None:
    """A 200 KB directory with n_positions 50000 on a one-wide model: the masks stay O(T) views,
    so it loads under a 1.5 GiB address-space limit (a (T, T) mask per block would be 9.3 GiB)."""
    directory = tmp_path / "wide"
    numpygpt.manual_seed(0)
    GPTModel({"vocab_size": 8, "context_length": 50_000, "emb_dim": 1, "n_heads": 1, "n_layers": 1,
              "drop_rate": 0.0, "qkv_bias": True, "tie_embeddings": True}).save_pretrained(directory)
    assert sum(f.stat().st_size for f in directory.iterdir()) < 300_000
    code = textwrap.dedent(f"""
        import numpy as np
        from numpygpt.model import GPTModel
        for dtype in (None, np.float64):
            model = GPTModel.from_pretrained({str(directory)!r}, dtype=dtype)
            assert model.trf_blocks[0].att.mask.shape == (50000, 50000)
        print("ok")
    """)
    done = run_limited(code, 1536 * 2**20, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


# ----------------------------------------------------------------------------- symlinks


def test_symlink_out_names_the_file_and_its_target(tmp_path: Path) -> None:
    directory = linked_out(tmp_path, "config.json")
    with pytest.raises(ValueError) as caught:
        GPTModel.from_pretrained(directory)
    assert str(directory / "config.json") in str(caught.value)
    assert str((tmp_path / "outside-config.json").resolve()) in str(caught.value)
    assert "follow_symlinks=True" in str(caught.value)
    model = GPTModel.from_pretrained(directory, follow_symlinks=True)
    assert model.cfg["emb_dim"] == TINY["emb_dim"]
    with pytest.raises(ValueError, match="is a symlink to"):
        checkpoint.load_model(weights=directory)
    assert checkpoint.load_model(weights=directory, follow_symlinks=True).cfg == model.cfg


def test_a_shard_linking_out_is_refused(tmp_path: Path) -> None:
    directory = sharded_dir(tmp_path, None)
    shard = directory / "model-00001-of-00001.safetensors"
    names = list(load_state_dict_file(shard))
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {n: shard.name for n in names}}))
    outside = tmp_path / "elsewhere.safetensors"
    shard.rename(outside)
    shard.symlink_to(outside)
    with pytest.raises(ValueError, match="is a symlink to"):
        hf.read_directory(directory)
    cfg, _, _ = hf.read_directory(directory, follow_symlinks=True)
    assert cfg["n_layers"] == TINY["n_layers"]


def test_symlinks_inside_the_directory_are_followed(tmp_path: Path) -> None:
    directory = hf_dir(tmp_path)
    (directory / "model.safetensors").rename(directory / "weights.bin.safetensors")
    (directory / "model.safetensors").symlink_to("weights.bin.safetensors")  # relative, inside
    assert GPTModel.from_pretrained(directory).cfg["emb_dim"] == TINY["emb_dim"]


def test_a_hub_cache_snapshot_links_into_its_blobs(tmp_path: Path) -> None:
    """The hub cache keeps files in models--ORG--NAME/blobs/<hash> and links
    snapshots/<rev>/<name> -> ../../blobs/<hash>: those links are followed."""
    built = hf_dir(tmp_path)
    repo = tmp_path / "hub" / "models--org--tiny"
    snapshot, blobs = repo / "snapshots" / "0123abcd", repo / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    for i, name in enumerate(("config.json", "model.safetensors")):
        (built / name).rename(blobs / f"blob{i}")
        (snapshot / name).symlink_to(Path("..", "..", "blobs", f"blob{i}"))
    assert GPTModel.from_pretrained(snapshot).cfg["emb_dim"] == TINY["emb_dim"]
    other = tmp_path / "hub" / "models--org--other" / "blobs"  # another repository's blobs are outside
    other.mkdir(parents=True)
    (blobs / "blob1").rename(other / "blob1")
    (snapshot / "model.safetensors").unlink()
    (snapshot / "model.safetensors").symlink_to(other / "blob1")
    with pytest.raises(ValueError, match="is a symlink to"):
        GPTModel.from_pretrained(snapshot)


# ----------------------------------------------------------------------------- stale temporaries


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def age(path: Path, seconds: float = 3600) -> Path:
    old = time.time() - seconds
    os.utime(path, (old, old))
    return path


def test_stale_temporaries_of_our_pattern_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.safetensors"
    pid = dead_pid()
    stale = tmp_path / f".ckpt.safetensors.{pid}.abcd_123.tmp"
    stale.write_bytes(b"x" * 1000)
    age(stale)
    fresh = tmp_path / f".ckpt.safetensors.{pid}.fresh000.tmp"  # too young: its writer may be elsewhere
    fresh.write_bytes(b"x")
    alive = tmp_path / f".ckpt.safetensors.{os.getpid()}.alive000.tmp"
    alive.write_bytes(b"x")
    age(alive)
    others = [tmp_path / name for name in (f".other.safetensors.{pid}.abcd_123.tmp", f".ckpt.safetensors.{pid}.x.tmp",
                                           "ckpt.safetensors.tmp", f"ckpt.safetensors.{pid}.abcd_123.tmp",
                                           ".ckpt.safetensors.abcd_123.tmp")]
    for other in others:
        other.write_bytes(b"x")
        age(other)
    tiny_checkpoint(target, with_optimizer=False)
    assert not stale.exists()
    assert fresh.exists() and alive.exists() and all(other.exists() for other in others)
    assert load_checkpoint(target)["step"] == 3


def test_a_killed_writer_leaves_a_temporary_that_the_next_write_removes(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.safetensors"
    code = textwrap.dedent(f"""
        import time
        from numpygpt import files
        def write(tmp):
            open(tmp, "wb").write(b"half a checkpoint")
            print("writing", flush=True)
            time.sleep(60)
        files.atomic_write({str(target)!r}, write)
    """)
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and f".{writer.pid}." in left[0].name
    files.atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert left[0].exists()  # still fresh: it may belong to a writer in another pid namespace
    age(left[0])
    files.atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"newer"))
    assert not left[0].exists() and target.read_bytes() == b"newer"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


# ----------------------------------------------------------------------------- hypothesis, in a subprocess


def run_limited(code: str, limit_bytes: int, timeout: float) -> subprocess.CompletedProcess:
    """Run `code` in a new Python whose address space is capped at `limit_bytes` (RLIMIT_AS)."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit, env=env, cwd=Path(__file__).parent)


FUZZ = r'''
import json, os, sys, tempfile, traceback
from pathlib import Path
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from safetensors import safe_open
import test_hostile_files as T
from numpygpt import checkpoint, files, hf

ALLOWED = (ValueError, TypeError, IndexError, RuntimeError, FileNotFoundError, IsADirectoryError, NotADirectoryError)
tmp = Path(tempfile.mkdtemp())
outcomes = {"loaded": 0, "refused": 0}

def check(load):
    try:
        load()
        outcomes["loaded"] += 1
    except ALLOWED as e:  # anything else (KeyError, AttributeError, RecursionError, ...) fails the run
        message = str(e)
        assert 0 < len(message) < T.MESSAGE_LIMIT, (type(e).__name__, len(message), message[:300])
        outcomes["refused"] += 1

SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")), deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
source = T.tiny_checkpoint(tmp / "source.safetensors")
with safe_open(str(source), framework="np") as f:
    METADATA = dict(f.metadata())
valid_hf = T.hf_dir(tmp / "valid")
HF_CONFIG = json.loads((valid_hf / "config.json").read_text())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8)
    | st.sampled_from([0, 1, 2, 8, 16, 32, 10**6, 10**9, 10**12, -1]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)

@SETTINGS
@given(st.binary(max_size=400), st.sampled_from(["checkpoint", "state_dict", "config.json", "weights"]))
def random_bytes(data, where):
    d = tmp / "bytes"
    d.mkdir(exist_ok=True)
    if where in ("checkpoint", "state_dict"):
        (d / "f").write_bytes(data)
        load = (lambda: checkpoint.load_checkpoint(d / "f")) if where == "checkpoint" else \
            (lambda: files.load_state_dict_file(d / "f"))
    else:
        for name in ("config.json", "model.safetensors"):
            (d / name).write_bytes((valid_hf / name).read_bytes())
        (d / ("config.json" if where == "config.json" else "model.safetensors")).write_bytes(data)
        load = lambda: hf.read_directory(d)
    check(load)

@SETTINGS
@given(st.sampled_from(sorted(k for k in METADATA if k != "crc32")), st.data())
def metadata_mutation(key, data):
    original = json.loads(METADATA[key]) if key not in ("format", "format_version") else METADATA[key]
    if isinstance(original, dict) and original and data.draw(st.booleans()):
        inner = data.draw(st.sampled_from(sorted(original)))
        value = {**original, inner: data.draw(json_values)}
    else:
        value = data.draw(json_values)
    text = value if isinstance(value, str) and key in ("format", "format_version") else json.dumps(value)
    path = T.rewrite_checkpoint(source, tmp / "mutated.safetensors", {key: text})
    resume = data.draw(st.booleans())
    def load():
        if resume:
            model = T.tiny_model()
            return checkpoint.load_checkpoint(path, model, T.AdamW(model.parameters(), lr=1e-3))
        return checkpoint.load_checkpoint(path)
    check(load)

@SETTINGS
@given(st.sampled_from(sorted(T.validate_config(T.TINY))), json_values)
def config_mutation(key, value):
    cfg = {**T.validate_config(T.TINY), key: value}
    path = T.rewrite_checkpoint(source, tmp / "cfg.safetensors", {"cfg": json.dumps(cfg)})
    check(lambda: checkpoint.load_checkpoint(path))

@SETTINGS
@given(st.sampled_from(sorted(HF_CONFIG) + ["n_inner", "model_type"]), json_values)
def hf_config_mutation(key, value):
    d = tmp / "hfmut"
    d.mkdir(exist_ok=True)
    (d / "model.safetensors").write_bytes((valid_hf / "model.safetensors").read_bytes())
    (d / "config.json").write_text(json.dumps({**HF_CONFIG, key: value}))
    check(lambda: hf.read_directory(d))

for test in (random_bytes, metadata_mutation, config_mutation, hf_config_mutation):
    test()
print("outcomes", json.dumps(outcomes))
'''


def test_hypothesis_loaders_only_load_or_refuse_clearly() -> None:
    done = run_limited(FUZZ, 2 * 2**30, timeout=180)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    outcomes = json.loads(done.stdout.split("outcomes", 1)[1])
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0


def test_the_commands_refuse_a_link_out_unless_told(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from numpygpt.cli import main

    directory = linked_out(tmp_path, "config.json")
    out = tmp_path / "bundle.safetensors"
    command = ["reference", str(out), "--weights", str(directory), "--ids", "1,2,3"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "is a symlink to" in err and "--follow-symlinks" in err and err.count("\n") == 1
    assert not out.exists()
    assert main([*command, "--follow-symlinks"]) == 0
    assert out.is_file()
