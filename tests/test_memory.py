"""The cross-batch memory (pretrain.memory): levels against a naive loop, the ring buffer,
the objective writing it after the step, and the held-out metric ignoring it."""
import math

import pytest
import torch

from comcl.common.distributed import DistInfo
from comcl.pretraining import contrastive as C
from comcl.pretraining.memory import ViewMemory
from comcl.pretraining.objectives import LevelObjective, StepMeta

from test_contrastive import batch


def naive_with_bank(z, pool, instance, zb, pb, level, tau):
    """l_i over the batch's anchors; the memory's views join P(i) and N(i) by pool only."""
    n = len(pool)
    allz = torch.cat([z, zb])
    allp = [int(p) for p in pool] + [int(p) for p in pb]
    losses = []
    for i in range(n):
        lesion_i = allp[i] in (C.HL, C.LL)
        pos, neg = [], []
        for j in range(len(allp)):
            if j == i or allp[j] < 0:
                continue
            same = j < n and int(instance[j]) == int(instance[i])
            if level == "l1" and lesion_i:
                pos += [j] if same else []
                neg += [j] if allp[j] == C.LH else []
            elif level == "l2" and allp[i] == C.HL:
                pos += [j] if allp[j] == C.HL else []
                neg += [j] if allp[j] == C.HH else []
            elif level == "l3" and allp[i] == C.LL:
                pos += [j] if allp[j] == C.LL else []
                neg += [j] if allp[j] == C.LH else []
        if not pos or not neg:
            continue
        s = {j: float(allz[i] @ allz[j]) / tau for j in pos + neg}
        dn = sum(math.exp(s[j]) for j in neg)
        losses.append(-sum(math.log(math.exp(s[p]) / (math.exp(s[p]) + dn)) for p in pos) / len(pos))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("level", ["l1", "l2", "l3"])
def test_level_loss_with_bank_equals_naive_loop(level):
    z, pool, inst = batch(3, seed=1)
    zb, pb, _ = batch(2, seed=2)
    pb = pb.clone()
    pb[:3] = -1                                   # empty slots match nothing
    got, stats = C.level_loss(z, pool, inst, level, 0.2, bank=(zb, pb))
    want = naive_with_bank(z, pool, inst, zb, pb, level, 0.2)
    assert abs(float(got) - want) < 1e-5                             # float32 logits
    assert stats["anchors"] == {"l1": 12, "l2": 6, "l3": 6}[level]   # batch views only
    alone, _ = C.level_loss(z, pool, inst, level, 0.2)
    assert abs(float(got) - float(alone)) > 1e-3                    # the bank counts


def test_spl_counts_the_banks_negatives():
    z, pool, inst = batch(3, seed=1)
    zb, pb, _ = batch(2, seed=2)
    spl = {"step": 1, "total_steps": 100, "min_fraction": 0.5, "order": "easy_first"}
    _, stats = C.level_loss(z, pool, inst, "l2", 0.2, spl, bank=(zb, pb))
    assert stats["negatives"] == 6 + 4 and stats["k"] == 5          # ceil(0.5 x 10)


def test_memory_is_a_ring_of_the_newest_views():
    mem = ViewMemory(5, 2)
    assert (mem.bank()[1] == -1).all()
    mem.push(torch.ones(3, 2), torch.tensor([0, 1, 2]))
    mem.push(2 * torch.ones(3, 2), torch.tensor([3, 3, 3]))
    z, p = mem.bank()
    assert p.tolist() == [3, 1, 2, 3, 3] and z[0, 0] == 2 and z[1, 0] == 1
    mem.push(3 * torch.ones(7, 2), torch.arange(7) % 4)             # more than it holds
    assert mem.bank()[1].tolist() == [2, 2, 3, 0, 1]                  # the last 5 of 0..6 % 4
    assert (mem.bank()[0] == 3).all() and int(mem.ptr) == (1 + 5) % 5


def test_objective_writes_the_memory_after_the_step_and_checkpoints_it():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4))
    fwd = lambda x: torch.nn.functional.normalize(net(x), dim=1)  # noqa: E731
    z0, pool, inst = batch(2)
    views = torch.randn(len(pool), 3, 2, 2)
    meta = StepMeta(pool, inst, 1, 10)
    obj = LevelObjective(fwd, [("l2", 1.0)], 0.1, None, DistInfo(), memory=32, dim=4)
    first, _ = obj(views, meta)
    assert (obj.memory.pool == -1).all()                            # nothing before the step
    obj.after_step()
    assert int((obj.memory.pool >= 0).sum()) == len(pool)
    second, _ = obj(views, meta)                                    # same views, now a bank too
    z = fwd(views)
    want, _ = C.level_loss(z, pool, inst, "l2", 0.1, bank=(z.detach(), pool))
    assert torch.allclose(second, want) and not torch.allclose(first, second)
    again = LevelObjective(fwd, [("l2", 1.0)], 0.1, None, DistInfo(), memory=32, dim=4)
    again.load_state_dict(obj.state_dict())
    assert torch.equal(again.memory.z, obj.memory.z)
    off = LevelObjective(fwd, [("l2", 1.0)], 0.1, None, DistInfo())
    assert len(off.state_dict()) == 0                               # old checkpoints still load


def test_memory_with_an_objective_that_ignores_it_is_an_error():
    import yaml
    from pathlib import Path
    from comcl.common.errors import ParamError
    from comcl.common.params import Params
    from comcl.pretraining.config import PretrainConfig

    data = yaml.safe_load(Path("params.yaml").read_text())
    data["pretrain"].update(method="moco", memory=256)
    with pytest.raises(ParamError, match="pretrain.memory"):
        PretrainConfig.from_params(Params(data))
    data["pretrain"].update(method="simclr")
    assert PretrainConfig.from_params(Params(data)).memory == 256
