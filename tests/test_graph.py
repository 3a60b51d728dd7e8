"""The DOT export of the autograd graph."""

import numpy as np
import pytest

import numpygpt
from numpygpt import nn
from numpygpt.graph import to_dot


def _loss():
    numpygpt.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 1))
    return m, nn.MSELoss()(m(numpygpt.randn(2, 3)), numpygpt.zeros(2, 1))


def test_dot_names_every_op_and_parameter():
    m, loss = _loss()
    dot = to_dot(loss, dict(m.named_parameters()))
    assert dot.startswith("digraph autograd {") and dot.rstrip().endswith("}")
    for op in ("Mean", "Pow", "Sub", "Linear", "GELU"):
        assert f'label="{op}"' in dot
    for name, p in m.named_parameters():
        assert f"{name}\\n{tuple(p.shape)}" in dot
    # 6 ops (Linear twice) and 4 parameters, each drawn once
    assert dot.count("shape=box") == 6 and dot.count("fillcolor=\"#dbeafe\"") == 4


def test_dot_refuses_graphs_it_cannot_draw():
    m, loss = _loss()
    with pytest.raises(ValueError, match="no graph"):
        to_dot(numpygpt.tensor(np.ones(2)))
    loss.backward()
    with pytest.raises(ValueError, match="freed"):
        to_dot(loss)
    with pytest.raises(TypeError):
        to_dot(np.ones(2))
