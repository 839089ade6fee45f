"""Learning-rate schedule shared by the training stages: linear warmup, then cosine decay."""
from __future__ import annotations

import math


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Learning rate at ``step`` (0-based) of ``total``, after ``warmup`` warmup steps."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * t))
