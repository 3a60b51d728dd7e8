"""Training parity with PyTorch: the same tiny GPT, batches and optimiser, ten steps.

numpygpt's `train_model` (AdamW over the decay / no-decay groups, gradient
clipping) against a plain PyTorch loop on the seed's model (tests/torch_gpt.py)
with `torch.optim.AdamW` and `torch.nn.utils.clip_grad_norm_`. The weights
start equal (moved through state_dict); dropout is off. The loss of every step
must agree (float64 to 1e-10 relative, float32 to 1e-5), and so must the
parameters at the end.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_gpt  # noqa: E402
from conftest import rel_err  # noqa: E402

import numpygpt  # noqa: E402
from numpygpt import train as T  # noqa: E402
from numpygpt.model import GPTModel  # noqa: E402
from numpygpt.optim import AdamW, param_groups_for_weight_decay  # noqa: E402
from numpygpt.tokenizer import get_encoding  # noqa: E402

# A vocabulary of 97 keeps the test fast; "a" (GPT-2 id 64) is a valid start context for it.
CFG = {"vocab_size": 97, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
       "drop_rate": 0.0, "qkv_bias": False}
STEPS, LR, WEIGHT_DECAY, MAX_NORM = 10, 3e-3, 0.1, 0.5


def batches(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ids = rng.integers(0, CFG["vocab_size"], (2, CFG["context_length"] + 1))
        out.append((ids[:, :-1], ids[:, 1:]))                                  # (2, 8) inputs, shifted targets
    return out


@pytest.mark.parametrize("dtype, loss_tol, param_tol", [(np.float64, 1e-10, 1e-12), (np.float32, 1e-5, 1e-5)])
def test_ten_training_steps_match_pytorch(dtype, loss_tol: float, param_tol: float) -> None:
    numpygpt.set_default_dtype(dtype)
    numpygpt.manual_seed(4)  # a seed whose ten steps lower the loss in both dtypes
    model = GPTModel(CFG)
    groups = param_groups_for_weight_decay(model, WEIGHT_DECAY)
    decay_ids = {id(p) for p in groups[0]["params"]}
    decay_names = {name for name, p in model.named_parameters() if id(p) in decay_ids}
    optimizer = AdamW(groups, lr=LR)

    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    tmodel = torch_gpt.GPTModel(CFG).to(torch_dtype)
    torch_gpt.load_numpy_state_dict(tmodel, model.state_dict())
    tmodel.train()                                                              # dropout is 0 anyway
    named = dict(tmodel.named_parameters())
    assert set(named) == {name for name, _ in model.named_parameters()}
    toptimizer = torch.optim.AdamW(
        [{"params": [p for n, p in named.items() if n in decay_names], "weight_decay": WEIGHT_DECAY},
         {"params": [p for n, p in named.items() if n not in decay_names], "weight_decay": 0.0}],
        lr=LR, foreach=False)

    data = batches(STEPS)
    history = T.train_model(model, data, data[:1], optimizer, num_epochs=1, eval_freq=STEPS, eval_iter=1,
                            start_context="a", tokenizer=get_encoding("gpt2"), max_grad_norm=MAX_NORM,
                            progress=False, sample_tokens=0)

    torch_losses, norms = [], []
    for x, y in data:
        toptimizer.zero_grad()
        logits = tmodel(torch.from_numpy(x))                                     # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), torch.from_numpy(y).flatten())
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(tmodel.parameters(), MAX_NORM)))
        toptimizer.step()
        torch_losses.append(loss.item())

    assert max(norms) > MAX_NORM                                                # clipping did something
    assert len(history.step_losses) == STEPS
    for step, (ours, theirs) in enumerate(zip(history.step_losses, torch_losses), 1):
        assert abs(ours - theirs) <= loss_tol * abs(theirs), f"step {step}: {ours} vs {theirs}"
    assert history.step_losses[-1] < history.step_losses[0]
    theirs = torch_gpt.numpy_state_dict(tmodel)
    for name, ours in model.state_dict().items():
        assert rel_err(ours, theirs[name]) <= param_tol, name
