"""Learning-rate schedule shared by the training stages: linear warmup, then cosine decay
(or, with ``schedule="constant"``, the base rate after the warmup)."""
from __future__ import annotations

import math


SCHEDULES = ("cosine", "constant")


def lr_at(step: int, total: int, base: float, warmup: int, schedule: str = "cosine") -> float:
    """Learning rate at ``step`` (0-based) of ``total``, after ``warmup`` warmup steps."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if schedule == "constant":
        return base
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * t))
