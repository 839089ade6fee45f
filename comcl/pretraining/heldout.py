"""The held-out objective: each level's loss on patches training never saw, against chance.

The probe images' patches (``pretrain.probe_fraction``, whole images) form a fixed batch
of at most ``per_pool`` patches of each pool, with two views drawn once (seeded), so that
every evaluation of a run sees the same inputs. The views do not follow the training
recipe, so that recipes are compared on one measure: the run's crop, flips and rotation
at its input size, no colour jitter, and the second view of a high-quality patch degraded
with probability 0.5 at the data's own ``degrade.severity`` (``dataset.json``: what the
data's low-quality images show). Each level is evaluated with **all** its negatives, whatever SPL
keeps in training, on the model in eval mode with BatchNorm statistics re-estimated on
training patches (``bn_recalibrated``), so that the untrained model at step 0 and the
trained one are measured alike.

Chance is the loss of the same batch when every embedding is equal: each positive term
is then -log(e^s / (e^s + N e^s)) = log(1 + N) for an anchor with N negatives, so chance
is the mean of log(1 + N_i) over the level's valid anchors (``chance_loss``). A loss
below chance means the encoder separates a level's positives from its negatives.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch import nn

from comcl.common.placement import Placement
from comcl.imaging import augment
from comcl.pretraining import contrastive
from comcl.pretraining.pool_sampler import BatchMaker, PoolSampler
from comcl.pretraining.views import two_views

EVAL_LEVELS = ("l1", "l2", "l3")   # every method's encoder is measured on CoMCL's levels
HELD_OUT_SEED_OFFSET = 7_919       # the held-out batch's draws differ from training's
QUALITY_VIEW_P = 0.5               # fixed, whatever the recipe: the measure stays comparable


def chance_loss(pool: torch.Tensor, instance: torch.Tensor, level: str) -> float:
    """The level's loss when all embeddings are equal: mean of log(1 + N_i) over anchors."""
    z = torch.nn.functional.normalize(torch.ones(pool.numel(), 4), dim=1)
    loss, _ = contrastive.level_loss(z, pool, instance, level, temperature=1.0, spl=None)
    return float(loss)


@torch.no_grad()
def bn_recalibrated(module: nn.Module, patches: np.ndarray, size: int, place: Placement,
                    batch: int = 128) -> nn.Module:
    """A copy of ``module`` in eval mode whose BatchNorm running statistics are the average
    of its batch statistics over ``patches`` (plain resize; "precise BN"), computed the same
    way before and after training."""
    net = _local_batchnorm(copy.deepcopy(module))
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or not len(patches):
        return net.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None        # cumulative average over all batches
    net.train()
    _forward_batches(net, patches, size, place, batch)
    return net.eval()


class _LocalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Plain BatchNorm of any input rank: a synchronised BN (DistBatchNorm, SyncBatchNorm)
    turned local, since the probe runs on one process and must not wait for the others."""

    def _check_input_dim(self, input):
        pass


def _local_batchnorm(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and \
                type(child) not in (nn.BatchNorm1d, nn.BatchNorm2d):
            local = _LocalBatchNorm(child.num_features, child.eps, child.momentum,
                                    child.affine, child.track_running_stats)
            local.load_state_dict(child.state_dict())
            setattr(module, name, local.to(next(child.buffers()).device))
        else:
            _local_batchnorm(child)
    return module


def _forward_batches(net, patches, size, place, batch):
    for i in range(0, len(patches), batch):
        x = torch.from_numpy(np.ascontiguousarray(patches[i:i + batch])).permute(0, 3, 1, 2)
        x = place.memory_format(augment.plain(place.to_device(x), size))
        with place.autocast():
            net(x)


class _EachOnce(PoolSampler):
    """At most ``per_pool`` distinct patches of each pool (no repeat when a pool is small)."""

    def _take(self, name: str, step: int) -> np.ndarray:
        members = self.pools[name]
        return members[self._perm(name, 0, len(members))[:self.per_pool]] if len(members) \
            else members


class HeldOutObjective:
    """A fixed two-view batch of held-out patches and the levels' losses on it."""

    def __init__(self, held_index, per_pool: int, template: BatchMaker,
                 aug: augment.AugmentConfig, place: Placement, temperature: float,
                 levels: tuple[str, ...] = EVAL_LEVELS):
        """``template``: the training run's BatchMaker (store, quality view, modality)."""
        self.place, self.levels, self.temperature = place, levels, temperature
        seed = template.seed + HELD_OUT_SEED_OFFSET
        self.sampler = _EachOnce(held_index, per_pool, seed)
        self.counts = {k: len(v) for k, v in self.sampler.pools.items()}
        batch = dataclasses.replace(template, sampler=self.sampler, seed=seed, rank=0, world=1,
                                    quality_view_p=QUALITY_VIEW_P, severity=1.0)(0)
        aug = dataclasses.replace(aug, jitter_p=0.0, grey_p=0.0)
        self.views = two_views(batch.views, batch.positions, len(batch.positions), aug, seed,
                               0, place)
        self.pool, self.instance = batch.pool, batch.instance
        self.chance = {lv: chance_loss(self.pool, self.instance, lv) for lv in levels}

    @classmethod
    def from_store(cls, index, held_out: np.ndarray, **kw) -> "HeldOutObjective":
        """Held-out rows keep their pool; all other rows are left out."""
        held_index = index.assign(pool=np.where(held_out, index["pool"], "train"))
        return cls(held_index, **kw)

    def usable(self) -> bool:
        return any(self.counts[p] for p in ("HL", "LL")) and any(
            self.counts[p] for p in ("HH", "LH"))

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict:
        """{level: {"loss", "chance", "ratio"}} for the levels with a valid anchor."""
        z = []
        for i in range(0, len(self.views), 256):
            with self.place.autocast():
                z.append(model(self.views[i:i + 256]).float().cpu())
        z = torch.cat(z)
        out = {}
        for lv in self.levels:
            anchors, pos, neg = contrastive.level_masks(self.pool, self.instance, lv)
            if not bool((pos.any(1) & neg.any(1)).any()):
                continue
            loss, _ = contrastive.level_loss(z, self.pool, self.instance, lv,
                                             temperature=self.temperature, spl=None)
            chance = self.chance[lv]
            out[lv] = {"loss": round(float(loss), 4), "chance": round(chance, 4),
                       "ratio": round(float(loss) / chance, 4)}
        return out
