"""Pretraining batches: the stratified four-pool sampler and the two views of each patch.

Every step draws ``per_pool`` patches from each of P_HL, P_LL, P_HH, P_LH: each pool is
read in a seeded random order, one permutation per pass, so a step's batch is a pure
function of (seed, step) and resuming needs only the step number. Under DDP each rank
takes every ``world``-th patch of each pool's share (``per_pool`` must divide evenly),
so the global batch is the same for any number of processes.

View 1 is the patch; view 2 is the patch, or, with probability ``quality_view_p``, the
patch degraded by the same model as ``degrade`` (``degrade_patch``), drawn as part of a
virtual image of the dataset's size so that blur, spots and illumination have their
real scale.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from comcl import degradation
from comcl.seeding import rng_for

POOL_IDS = {"HL": 0, "LL": 1, "HH": 2, "LH": 3}


def degrade_patch(patch: np.ndarray, rng: np.random.Generator, modality: str,
                  image_size: int) -> np.ndarray:
    """A uint8 patch (S, S, C) degraded as if cut from a degraded ``image_size`` image."""
    grey = patch.shape[2] == 1
    img = patch[..., 0] if grey else patch
    fov = np.ones(img.shape[:2], bool)
    if modality == "xray":
        from comcl import degradation_xray
        params = degradation_xray.sample(rng, image_size, image_size, fov)
        out = degradation_xray.apply(img, fov, params)
    else:
        size = float(image_size)
        cx = cy = size / 2
        radius = 0.46 * size
        params = degradation.sample(rng, image_size, image_size, None, geometry=(cx, cy, radius))
        r, t = 0.7 * radius * math.sqrt(rng.random()), 2 * math.pi * rng.random()
        s = img.shape[0]
        offset = (cx + r * math.cos(t) - s / 2, cy + r * math.sin(t) - s / 2)
        out = degradation.apply(img, fov, params, offset=offset)
    return out[..., None] if grey else out


@dataclass
class Batch:
    views: torch.Tensor      # uint8 (2n, C, S, S): view 1 of n patches, then view 2
    pool: torch.Tensor       # (2n,) pool id of each view
    instance: torch.Tensor   # (2n,) global batch position of the view's patch
    positions: np.ndarray    # (n,) global batch positions of this rank's patches


class PoolSampler:
    def __init__(self, index: pd.DataFrame, per_pool: int, seed: int):
        self.per_pool = per_pool
        self.seed = seed
        self.pools = {name: np.flatnonzero(index["pool"].to_numpy() == name)
                      for name in POOL_IDS}

    def steps_per_pass(self) -> int:
        sizes = [len(v) for v in self.pools.values() if len(v)]
        return math.ceil(max(sizes) / self.per_pool) if sizes else 0

    def _take(self, name: str, step: int) -> np.ndarray:
        members = self.pools[name]
        n = len(members)
        if n == 0:
            return members
        out = []
        start = step * self.per_pool
        for pos in range(start, start + self.per_pool):
            epoch, k = divmod(pos, n)
            out.append(members[self._perm(name, epoch, n)[k]])
        return np.asarray(out)

    def _perm(self, name: str, epoch: int, n: int) -> np.ndarray:
        key = (name, epoch)
        cache = self.__dict__.setdefault("_perms", {})
        if key not in cache:
            if len(cache) > 16:
                cache.clear()
            cache[key] = rng_for(self.seed, "pool", name, epoch).permutation(n)
        return cache[key]

    def global_batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(store indices, pool ids) of the whole step, pool by pool."""
        idx, pools = [], []
        for name, pid in POOL_IDS.items():
            taken = self._take(name, step)
            idx.append(taken)
            pools.append(np.full(len(taken), pid))
        return np.concatenate(idx).astype(np.int64), np.concatenate(pools).astype(np.int64)

    def local_positions(self, pools: np.ndarray, rank: int, world: int) -> np.ndarray:
        """Global batch positions that belong to ``rank``: every world-th of each pool."""
        out = []
        for pid in POOL_IDS.values():
            pos = np.flatnonzero(pools == pid)
            out.append(pos[rank::world])
        return np.concatenate(out)


def make_batch(store: np.ndarray, sampler: PoolSampler, step: int, rank: int, world: int,
               quality_view_p: float, seed: int, modality: str, image_size: int) -> Batch:
    idx, pools = sampler.global_batch(step)
    flags = rng_for(seed, "quality-view", step).random(len(idx)) < quality_view_p
    positions = sampler.local_positions(pools, rank, world)
    patches = np.ascontiguousarray(store[idx[positions]])  # (n, S, S, C) uint8
    second = patches.copy()
    for j, pos in enumerate(positions):
        if flags[pos]:
            second[j] = degrade_patch(patches[j], rng_for(seed, "degrade-view", step, int(pos)),
                                      modality, image_size)
    views = torch.from_numpy(np.concatenate([patches, second])).permute(0, 3, 1, 2)
    pool_t = torch.from_numpy(np.concatenate([pools[positions], pools[positions]]))
    inst = torch.from_numpy(np.concatenate([positions, positions]))
    return Batch(views.contiguous(), pool_t, inst, positions)


def global_meta(sampler: PoolSampler, step: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool ids and instances of all views, in the order ``distributed.gather`` produces."""
    _, pools = sampler.global_batch(step)
    pool_parts, inst_parts = [], []
    for rank in range(world):
        pos = sampler.local_positions(pools, rank, world)
        pool_parts.append(np.concatenate([pools[pos], pools[pos]]))
        inst_parts.append(np.concatenate([pos, pos]))
    return torch.from_numpy(np.concatenate(pool_parts)), torch.from_numpy(np.concatenate(inst_parts))
