"""Pretraining batches: the stratified four-pool sampler and the two views of each patch.

Every step draws ``per_pool`` patches from each of P_HL, P_LL, P_HH, P_LH: each pool is
read in a seeded random order, one permutation per pass, so a step's batch is a pure
function of (seed, step) and resuming needs only the step number. Under DDP each rank
takes every ``world``-th patch of each pool's share (``per_pool`` must divide evenly),
so the global batch is the same for any number of processes.

View 1 is the patch; view 2 is the patch, or, for a high-quality patch (P_HL, P_HH) with
probability ``quality_view_p``, the patch degraded by the same model as ``degrade`` (``degrade_patch``) at
``pretrain.quality_view_severity`` times its strength, drawn as part of a virtual image
of the dataset's size so that blur, spots and illumination have their real scale.
Low-quality patches are not degraded a second time: a twice-degraded lesion can vanish,
leaving a "positive" pair with no lesion evidence in common.

The quality views are degraded by a pool of threads (OpenCV releases the GIL), each patch
with its own generator keyed by (seed, step, position), so the batch does not depend on
the number of threads. Measured on an H200 at the paper's batch, degrading them one after
the other took twice the GPU step (docs/benchmark.md).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from comcl.common.seeding import rng_for
from comcl.data import degradation_fundus

POOL_IDS = {"HL": 0, "LL": 1, "HH": 2, "LH": 3}
HIGH_QUALITY_POOLS = (POOL_IDS["HL"], POOL_IDS["HH"])
_THREADS: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    """The process's thread pool for quality views (one thread per core, made once)."""
    global _THREADS
    if _THREADS is None:
        _THREADS = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1),
                                      thread_name_prefix="quality-view")
    return _THREADS


def degrade_patch(patch: np.ndarray, rng: np.random.Generator, modality: str,
                  image_size: int, severity: float | dict = 1.0) -> np.ndarray:
    """A uint8 patch (S, S, C) degraded as if cut from a degraded ``image_size`` image, at
    ``severity`` (one number or per type) times the strength of ``degrade``'s model
    (``with_severity``)."""
    grey = patch.shape[2] == 1
    img = patch[..., 0] if grey else patch
    fov = np.ones(img.shape[:2], bool)
    if modality == "xray":
        from comcl.data import degradation_xray
        params = degradation_xray.with_severity(
            degradation_xray.sample(rng, image_size, image_size, fov), severity)
        out = degradation_xray.apply(img, fov, params)
    else:
        size = float(image_size)
        cx = cy = size / 2
        radius = 0.46 * size
        params = degradation_fundus.with_severity(degradation_fundus.sample(
            rng, image_size, image_size, None, geometry=(cx, cy, radius)), severity)
        r, t = 0.7 * radius * math.sqrt(rng.random()), 2 * math.pi * rng.random()
        s = img.shape[0]
        offset = (cx + r * math.cos(t) - s / 2, cy + r * math.sin(t) - s / 2)
        out = degradation_fundus.apply(img, fov, params, offset=offset)
    return out[..., None] if grey else out


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


@dataclass
class Batch:
    views: torch.Tensor      # uint8 (2n, C, S, S): view 1 of this rank's n patches, then view 2
    positions: np.ndarray    # (n,) global batch positions of this rank's patches
    pool: torch.Tensor       # (2V,) pool id of every view of the global batch, gather order
    instance: torch.Tensor   # (2V,) global batch position of each of those views' patch


@dataclass
class BatchMaker:
    """Step -> this rank's two views and the global batch's pool/instance labels, in the
    order ``distributed.gather`` concatenates the ranks' embeddings."""
    store: np.ndarray
    sampler: PoolSampler
    quality_view_p: float
    seed: int
    modality: str = "fundus"
    image_size: int = 512
    rank: int = 0
    world: int = 1
    severity: float = 1.0    # of the quality view's degradation, times data_severity
    data_severity: dict | None = None   # the data's degrade.severity (dataset.json)

    def view_severity(self) -> dict | float:
        """The quality view's strength per degradation type."""
        if not self.data_severity:
            return self.severity
        return {t: v * self.severity for t, v in self.data_severity.items()}

    def __call__(self, step: int) -> Batch:
        idx, pools = self.sampler.global_batch(step)
        flags = rng_for(self.seed, "quality-view", step).random(len(idx)) < self.quality_view_p
        flags &= np.isin(pools, HIGH_QUALITY_POOLS)  # LL / LH are degraded already
        positions = self.sampler.local_positions(pools, self.rank, self.world)
        patches = np.ascontiguousarray(self.store[idx[positions]])  # (n, S, S, C) uint8
        second = patches.copy()
        severity = self.view_severity()

        def degraded(j: int) -> np.ndarray:
            rng = rng_for(self.seed, "degrade-view", step, int(positions[j]))
            return degrade_patch(patches[j], rng, self.modality, self.image_size, severity)

        jobs = [j for j, pos in enumerate(positions) if flags[pos]]
        for j, out in zip(jobs, _threads().map(degraded, jobs) if len(jobs) > 1
                          else map(degraded, jobs)):
            second[j] = out
        views = torch.from_numpy(np.concatenate([patches, second])).permute(0, 3, 1, 2)
        pool_parts, inst_parts = [], []
        for rank in range(self.world):
            pos = self.sampler.local_positions(pools, rank, self.world)
            pool_parts.append(np.concatenate([pools[pos], pools[pos]]))
            inst_parts.append(np.concatenate([pos, pos]))
        return Batch(views.contiguous(), positions,
                     torch.from_numpy(np.concatenate(pool_parts)),
                     torch.from_numpy(np.concatenate(inst_parts)))


class OneAhead:
    """``make(step)`` one step ahead: returns the step's batch and starts the next one's in
    a thread, so the loader works while the device trains. A batch is a pure function of
    its step, so this changes no number; a step out of sequence is made on the spot."""

    def __init__(self, make, total: int):
        self.make, self.total = make, total
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="next-batch")
        self.next = None   # (step, future)

    def __call__(self, step: int):
        ahead, self.next = self.next, None
        batch = ahead[1].result() if ahead and ahead[0] == step else self.make(step)
        if step + 1 < self.total:
            self.next = (step + 1, self.thread.submit(self.make, step + 1))
        return batch
