"""Batched inference without augmentation: the classifier on whole images (``finetune``
validation, ``evaluate``) and the backbone on patches (the pretraining probe)."""
from __future__ import annotations

import numpy as np
import torch

from comcl.common.placement import Placement
from comcl.imaging import augment


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, size: int, place: Placement,
            batch: int = 32) -> torch.Tensor:
    """Raw float32 CPU outputs of ``model`` (eval mode) for uint8 (N, S, S, C) images
    resized to ``size``."""
    was = model.training
    model.eval()
    outs = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch])).permute(0, 3, 1, 2)
        x = place.memory_format(augment.plain(x.to(place.device), size))
        with place.autocast():
            outs.append(model(x).float().cpu())
    model.train(was)
    return torch.cat(outs)
