"""Deterministic per-item random generators: independent of worker count and order."""
from __future__ import annotations

import hashlib

import numpy as np


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator determined by a seed and any keys (image id, split, purpose)."""
    parts = [int(seed)] + [stable_hash(k) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(parts)
