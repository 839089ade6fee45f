"""Online probe: lesion vs healthy k-nearest-neighbour accuracy on held-out patches.

Patches of ``pretrain.probe_fraction`` of the images (chosen by a seeded hash of the
image id, so a held-out image's patches never enter training) form the probe set; a
sample of the training patches is the kNN memory. Features are the backbone's pooled
features of the unaugmented patch. Chance is the majority-class fraction of the probe
set; balanced accuracy (chance 0.5) is reported too.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier

from comcl.common.placement import Placement
from comcl.common.seeding import stable_hash
from comcl.imaging.inference import predict


def probe_split(index: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of probe (held-out) patches, whole images at a time."""
    if fraction <= 0:
        return np.zeros(len(index), bool)
    u = index["image_id"].map(lambda i: (stable_hash(f"{seed}:{i}") % 10_000) / 10_000.0)
    return (u < fraction).to_numpy()


@torch.no_grad()
def features(backbone: torch.nn.Module, patches: np.ndarray, size: int, place: Placement,
             batch: int = 256) -> np.ndarray:
    if not len(patches):
        return np.zeros((0, 1), np.float32)
    f = predict(backbone, patches, size, place, batch)
    return torch.nn.functional.normalize(f, dim=1).numpy()


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 5) -> dict:
    clf = KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric="cosine")
    clf.fit(train_x, train_y)
    pred = clf.predict(test_x)
    majority = max(np.mean(test_y), 1 - np.mean(test_y))
    return {"accuracy": float(np.mean(pred == test_y)),
            "balanced_accuracy": float(balanced_accuracy_score(test_y, pred)),
            "chance": float(majority)}
