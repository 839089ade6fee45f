"""The learning-rate schedule: linear warmup, then cosine decay to 0 or a constant rate."""
import math

import pytest

from comcl.common.lr_schedule import lr_at


def test_warmup_is_linear_and_then_cosine_decays_to_zero():
    lrs = [lr_at(s, 10, 1.0, 2) for s in range(10)]
    assert lrs[:2] == [0.5, 1.0]
    assert lrs[2] == 1.0
    assert lrs[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))


def test_constant_schedule_keeps_the_base_rate_after_the_warmup():
    assert [lr_at(s, 10, 2e-3, 2, "constant") for s in range(5)] == [1e-3, 2e-3, 2e-3, 2e-3, 2e-3]
    assert lr_at(9, 10, 2e-3, 0, "constant") == 2e-3
