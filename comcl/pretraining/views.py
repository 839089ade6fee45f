"""The two augmented views of a pretraining batch, on the training device.

Augmentation parameters are drawn for the whole global batch from generators seeded by
(seed, step) and each rank takes its patches' rows, so the views do not depend on the
number of processes.
"""
from __future__ import annotations

import numpy as np
import torch

from comcl.common.placement import Placement
from comcl.imaging import augment


def two_views(raw: torch.Tensor, positions: np.ndarray, n_global: int,
              aug: augment.AugmentConfig, seed: int, step: int, place: Placement) -> torch.Tensor:
    """uint8 (2n, C, S, S) host views -> float views (2n, C, s, s) on the device."""
    raw = place.to_device(raw)
    n = len(positions)
    gen1 = torch.Generator().manual_seed(seed * 1_000_003 + step * 2)
    gen2 = torch.Generator().manual_seed(seed * 1_000_003 + step * 2 + 1)
    p1 = augment.select(augment.sample_params(n_global, aug, gen1), positions)
    p2 = augment.select(augment.sample_params(n_global, aug, gen2), positions)
    x = torch.cat([augment.augment(raw[:n], p1, aug), augment.augment(raw[n:], p2, aug)])
    return place.memory_format(x)
