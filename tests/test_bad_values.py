"""Bad values given to the public API: the exception PyTorch would raise, and a message
that names the argument and the value.

One table, one row per case: (case id, the call, the exception type, a piece
of text the message must contain). Where PyTorch has the same function, a
second test checks that it raises the same type for the same value.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pytest

import numpygpt
from numpygpt.data import GPTDataset, create_dataloader
from numpygpt.generate import generate
from numpygpt.model import GPTModel
from numpygpt.nn import Parameter
from numpygpt.optim import SGD, AdamW
from numpygpt.random import get_rng_state, set_rng_state
from numpygpt.tokenizer import token_ids_to_text

CFG = {"vocab_size": 50, "context_length": 8, "emb_dim": 8, "n_heads": 2, "n_layers": 1,
       "drop_rate": 0.0, "qkv_bias": False}
IDS = np.array([[1, 2, 3]])
RAGGED = [[1, 2], [3]]
TEXT = "Every effort moves you forward, one token at a time. " * 8


@cache
def model() -> GPTModel:
    """A tiny GPT in eval mode, built without disturbing the global generator."""
    state = get_rng_state()
    numpygpt.manual_seed(0)
    gpt = GPTModel(CFG).eval()
    set_rng_state(state)
    return gpt


def params() -> list[Parameter]:
    return [Parameter(np.zeros(3, dtype=np.float32))]


def gen(**kwargs: Any) -> Callable[[], Any]:
    """generate() on the tiny model, with these arguments changed."""
    args = {"idx": IDS, "max_new_tokens": 2, "context_size": 8, **kwargs}
    return lambda: generate(model(), **args)


def adamw(**kwargs: Any) -> Callable[[], Any]:
    """AdamW over a fresh parameter, with these arguments changed (params too, if given)."""
    return lambda: AdamW(**{"params": params(), **kwargs})


CASES: list[tuple[str, Callable[[], Any], type[BaseException], str]] = [
    # generate: the seed, the sampling options, the counts
    ("seed=-1", gen(seed=-1), ValueError, "seed must be a non-negative integer, got -1"),
    ("seed=1.5", gen(seed=1.5), TypeError, "seed must be a non-negative integer, got 1.5"),
    ("seed='1'", gen(seed="1"), TypeError, "seed must be a non-negative integer, got '1'"),
    ("top_k='5'", gen(temperature=1.0, top_k="5"), TypeError, "top_k must be a positive integer or None, got '5'"),
    ("top_k=0", gen(temperature=1.0, top_k=0), ValueError, "top_k must be a positive integer or None, got 0"),
    ("top_p='0.5'", gen(temperature=1.0, top_p="0.5"), TypeError, "top_p must be a number in (0, 1] or None, got str"),
    ("top_p=1.5", gen(temperature=1.0, top_p=1.5), ValueError, "top_p must be in (0, 1] or None, got 1.5"),
    ("temperature=None", gen(temperature=None), TypeError, "temperature must be a number, got NoneType None"),
    ("temperature='hot'", gen(temperature="hot"), TypeError, "temperature must be a number, got str 'hot'"),
    ("temperature=nan", gen(temperature=float("nan")), ValueError, "temperature must be a finite number >= 0"),
    ("temperature=inf", gen(temperature=float("inf")), ValueError, "got inf"),
    ("temperature=-1", gen(temperature=-1.0), ValueError, "got -1.0"),
    ("max_new_tokens='3'", gen(max_new_tokens="3"), TypeError, "max_new_tokens must be a non-negative integer, got '3'"),
    ("max_new_tokens=-1", gen(max_new_tokens=-1), ValueError, "max_new_tokens must be a non-negative integer, got -1"),
    ("max_new_tokens=None", gen(max_new_tokens=None), TypeError, "max_new_tokens must be a non-negative integer, got None"),
    ("context_size='8'", gen(context_size="8"), TypeError, "context_size must be a positive integer, got '8'"),
    ("eos_id=10**20", gen(eos_id=10**20), ValueError, "eos_id 100000000000000000000 is not a token id"),
    ("eos_id='a'", gen(eos_id="a"), TypeError, "eos_id must be a non-negative integer or None, got 'a'"),
    ("eos_id=-1", gen(eos_id=-1), ValueError, "eos_id must be a non-negative integer or None, got -1"),
    # ragged token ids, wherever ids go in
    ("ragged ids to generate", gen(idx=RAGGED), ValueError, "the rows have different lengths: [[1, 2], [3]]"),
    ("ragged ids to the model", lambda: model()(RAGGED), ValueError, "the rows have different lengths"),
    ("ragged ids to token_ids_to_text", lambda: token_ids_to_text(RAGGED), ValueError, "the rows have different lengths"),
    ("ragged ids to GPTDataset", lambda: GPTDataset(RAGGED, 1, 1), ValueError, "the rows have different lengths"),
    ("ragged ids to create_dataloader", lambda: create_dataloader(RAGGED, batch_size=1, max_length=1, stride=1),
     ValueError, "the rows have different lengths"),
    # the tokenizer of create_dataloader (the book's create_dataloader_v1)
    ("tokenizer='gpt2'", lambda: create_dataloader(TEXT, batch_size=2, max_length=4, stride=4, tokenizer="gpt2"),
     TypeError, "tokenizer must be an encoding with an encode() method"),
    ("tokenizer=5", lambda: create_dataloader(TEXT, batch_size=2, max_length=4, stride=4, tokenizer=5),
     TypeError, "got int 5"),
    # AdamW's hyperparameters: PyTorch's words, plus the argument's name
    ("lr='0.1'", adamw(lr="0.1"), TypeError, "Invalid learning rate: '0.1' (lr must be a number, got str)"),
    ("lr=None", adamw(lr=None), TypeError, "lr must be a number, got NoneType"),
    ("lr=-1", adamw(lr=-1), ValueError, "Invalid learning rate: -1 (lr must be >= 0)"),
    ("lr=nan", adamw(lr=float("nan")), ValueError, "Invalid learning rate: nan"),
    ("betas=(0.9,)", adamw(betas=(0.9,)), ValueError, "betas must be a pair of numbers (beta1, beta2), got 1: (0.9,)"),
    ("betas=(0.9, 0.99, 0.999)", adamw(betas=(0.9, 0.99, 0.999)), ValueError, "got 3"),
    ("betas=(0.9, 1.0)", adamw(betas=(0.9, 1.0)), ValueError, "Invalid beta parameter at index 1: 1.0"),
    ("betas=(-0.1, 0.9)", adamw(betas=(-0.1, 0.9)), ValueError, "betas[0] must be in [0, 1)"),
    ("betas=('a', 'b')", adamw(betas=("a", "b")), TypeError, "Invalid beta parameter at index 0: 'a'"),
    ("betas='ab'", adamw(betas="ab"), TypeError, "betas must be a pair of numbers (beta1, beta2), got str 'ab'"),
    ("betas=0.9", adamw(betas=0.9), TypeError, "betas must be a pair of numbers (beta1, beta2), got float 0.9"),
    ("eps=-1", adamw(eps=-1), ValueError, "Invalid epsilon value: -1 (eps must be >= 0)"),
    ("eps='x'", adamw(eps="x"), TypeError, "eps must be a number, got str"),
    ("weight_decay=-1", adamw(weight_decay=-1), ValueError, "Invalid weight_decay value: -1"),
    ("weight_decay='x'", adamw(weight_decay="x"), TypeError, "weight_decay must be a number, got str"),
    ("SGD momentum='x'", lambda: SGD(params(), momentum="x"), TypeError, "momentum must be a number, got str"),
    # AdamW's params
    ("params=a Tensor", adamw(params=numpygpt.tensor([1.0])), TypeError, "got a single Tensor; wrap it in a list"),
    ("params=a Parameter", adamw(params=params()[0]), TypeError, "got a single Parameter"),
    ("params=an empty generator", adamw(params=(p for p in [])), ValueError, "optimizer got an empty parameter list"),
    ("params=[]", adamw(params=[]), ValueError, "optimizer got an empty parameter list"),
    ("params=a group without params", adamw(params=[{"lr": 0.1}]), KeyError,
     'parameter group 0 has no "params" entry (its keys: lr)'),
    ("params=a dict", adamw(params={"params": params()}), TypeError, "got a dict; wrap one parameter group in a list"),
    ("params=5", adamw(params=5), TypeError, "got int 5"),
    ("params=the model", adamw(params=model()), TypeError, "pass model.parameters(), not the model"),
    ("params=[a str]", adamw(params=["w"]), TypeError, "parameter 0 of group 0"),
]


@pytest.mark.parametrize("call, error, text", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_value_is_refused_by_name(call: Callable[[], Any], error: type[BaseException], text: str) -> None:
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)


def test_a_missing_params_entry_is_also_a_value_error() -> None:
    """KeyError as PyTorch raises, ValueError as numpygpt raised before: both catch it."""
    with pytest.raises(ValueError, match='no "params" entry'):
        AdamW([{"lr": 0.1}])


# The same bad values given to torch.optim.AdamW: (case id, the keyword arguments or params).
TORCH_CASES = [
    ("lr='0.1'", {"lr": "0.1"}), ("lr=None", {"lr": None}), ("lr=-1", {"lr": -1}), ("lr=nan", {"lr": float("nan")}),
    ("betas=(0.9, 1.0)", {"betas": (0.9, 1.0)}), ("betas=('a', 'b')", {"betas": ("a", "b")}),
    ("eps=-1", {"eps": -1}), ("eps='x'", {"eps": "x"}), ("weight_decay=-1", {"weight_decay": -1}),
    ("weight_decay='x'", {"weight_decay": "x"}),
    ("params=a Tensor", {"params": "tensor"}), ("params=an empty generator", {"params": "empty"}),
    ("params=a group without params", {"params": "no-params"}), ("params=5", {"params": 5}),
]


@pytest.mark.parametrize("case, kwargs", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_the_exception_type_is_pytorchs(case: str, kwargs: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    kwargs = dict(kwargs)
    given = kwargs.pop("params", None)
    torch_params = {None: [torch.zeros(3, requires_grad=True)], "tensor": torch.zeros(3),
                    "empty": (p for p in []), "no-params": [{"lr": 0.1}]}.get(given, given)
    with pytest.raises(Exception) as theirs:
        torch.optim.AdamW(torch_params, **kwargs)
    ours_call = next(call for name, call, _, _ in CASES if name == case)
    with pytest.raises(Exception) as ours:
        ours_call()
    assert isinstance(ours.value, type(theirs.value)), (type(ours.value), type(theirs.value))


# Values that are not errors but have a defined result: (case id, the call, the call it must equal).
SAME_AS = [
    ("temperature=1e-310 is greedy", gen(temperature=1e-310, max_new_tokens=5), gen(max_new_tokens=5)),
    ("temperature=5e-324 is greedy", gen(temperature=5e-324, max_new_tokens=5), gen(max_new_tokens=5)),
    ("temperature=1e-310 with top_k is greedy", gen(temperature=1e-310, top_k=3, max_new_tokens=5),
     gen(max_new_tokens=5)),
]


@pytest.mark.parametrize("call, same_as", [c[1:] for c in SAME_AS], ids=[c[0] for c in SAME_AS])
def test_a_limit_value_gives_the_limits_result(call: Callable[[], Any], same_as: Callable[[], Any]) -> None:
    got, expected = call(), same_as()
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
