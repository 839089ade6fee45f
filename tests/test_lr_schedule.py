"""The learning-rate schedule: linear warmup, then cosine decay to 0 or a constant rate; the
pretrain stage's ``pretrain.lr_schedule`` choice."""
import math

import pytest
from conftest import write_params

from comcl.common.errors import ParamError
from comcl.common.lr_schedule import lr_at
from comcl.common.params import Params
from comcl.pretraining.config import PretrainConfig


def test_warmup_is_linear_and_then_cosine_decays_to_zero():
    lrs = [lr_at(s, 10, 1.0, 2) for s in range(10)]
    assert lrs[:2] == [0.5, 1.0]
    assert lrs[2] == 1.0
    assert lrs[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))


def test_constant_schedule_keeps_the_base_rate_after_the_warmup():
    assert [lr_at(s, 10, 2e-3, 2, "constant") for s in range(5)] == [1e-3, 2e-3, 2e-3, 2e-3, 2e-3]
    assert lr_at(9, 10, 2e-3, 0, "constant") == 2e-3


def _config(tmp_path, schedule: str) -> PretrainConfig:
    path = write_params(tmp_path / "params.yaml", {"pretrain": {"lr_schedule": schedule}})
    return PretrainConfig.from_params(Params.load(path))


def test_pretrain_lr_schedule_is_read_and_a_bad_value_names_the_key(tmp_path):
    for schedule in ("cosine", "constant"):
        assert _config(tmp_path, schedule).lr_schedule == schedule
    with pytest.raises(ParamError, match=r"pretrain.lr_schedule.*cosine, constant"):
        _config(tmp_path, "step")
