"""A cross-batch memory of past views' embeddings for the contrastive levels (XBM-style).

``pretrain.memory`` = M > 0 keeps the last M views' embeddings (detached) with their pool
ids. Each level then also counts them as positives and negatives of this step's anchors
by pool (``contrastive.level_loss(..., bank=...)``): an L2 anchor of 24 HL views at
``per_pool`` 12 meets 23 positives and 24 negatives in the batch, and M / 4 more of each
from the memory, without another forward pass (Wang et al., "Cross-Batch Memory for
Embedding Learning", CVPR 2020). The memory is a buffer: checkpoints hold it, so a resumed
run continues with the same one. Empty slots have pool id -1 and match nothing.
"""
from __future__ import annotations

import torch
from torch import nn


class ViewMemory(nn.Module):
    def __init__(self, size: int, dim: int, device: torch.device | str = "cpu"):
        super().__init__()
        self.register_buffer("z", torch.zeros(size, dim, device=device))
        self.register_buffer("pool", torch.full((size,), -1, dtype=torch.long, device=device))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long, device=device))

    def bank(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings, pool ids) of every slot (empty ones have pool id -1)."""
        return self.z, self.pool

    @torch.no_grad()
    def push(self, z: torch.Tensor, pool: torch.Tensor) -> None:
        """Write this step's views over the oldest slots (a ring; the newest M are kept)."""
        size = self.pool.numel()
        z, pool = z.detach().float(), pool.detach()
        if z.shape[0] >= size:
            z, pool = z[-size:], pool[-size:]
        idx = (int(self.ptr) + torch.arange(z.shape[0], device=self.z.device)) % size
        self.z[idx] = z.to(self.z.device)
        self.pool[idx] = pool.to(self.pool.device, torch.long)
        self.ptr.fill_((int(self.ptr) + z.shape[0]) % size)
