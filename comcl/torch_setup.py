"""Torch runtime setup shared by the training and inference stages: threads and device."""
from __future__ import annotations

import torch

from comcl.parallel import default_workers


def setup_threads(n: int | None = None) -> None:
    """Use every core the process may run on (torch defaults to physical cores)."""
    torch.set_num_threads(n or default_workers())


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
