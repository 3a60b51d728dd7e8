"""The one random generator behind initialisation, dropout and `randn`/`rand`.

`manual_seed(s)` reseeds it in place, so every module that holds it sees the
new stream. Its state is a plain dict (JSON-able), so checkpoints can save and
restore it and a resumed run draws exactly the numbers an uninterrupted one would.
The numbers differ from PyTorch's for the same seed: another generator (PCG64).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_generator = np.random.Generator(np.random.PCG64())


def default_generator() -> np.random.Generator:
    """The global generator (the same object for the life of the process)."""
    return _generator


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator, as `torch.manual_seed`."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _generator.bit_generator.state = np.random.PCG64(int(seed)).state
    return _generator


def get_rng_state() -> dict[str, Any]:
    """The generator's state as a JSON-able dict."""
    return _generator.bit_generator.state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state from `get_rng_state()`."""
    try:
        _generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"not a valid generator state: {e}") from None
