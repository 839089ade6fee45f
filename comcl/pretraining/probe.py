"""Online probes of the encoder on held-out patches: kNN lesion vs healthy, and the
held-out objective (``comcl.pretraining.heldout``).

Patches of ``pretrain.probe_fraction`` of the images (chosen by a seeded hash of the
image id, so a held-out image's patches never enter training) form the probe set; a
sample of the training patches is the kNN memory. Features are the backbone's pooled
features of the unaugmented patch, computed with BatchNorm statistics re-estimated on
the memory patches, the same way at step 0 and after training (like for like).

Reported, as balanced accuracy (chance 0.5): lesion vs healthy over all probe patches
(``balanced_accuracy``), among low-quality patches only (``lq_balanced_accuracy``: LL vs
LH), and lesion (HL, LL) vs low-quality healthy (LH) (``lesion_vs_lq_healthy``: the
quality level's claim). ``accuracy`` and its majority-class ``chance`` too.
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
from comcl.pretraining.heldout import HeldOutObjective, bn_recalibrated

PROBE_MEMORY = 1024  # training patches the kNN probe compares against


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


def knn_predict(train_x, train_y, test_x, k: int = 5) -> np.ndarray:
    clf = KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric="cosine")
    clf.fit(train_x, train_y)
    return clf.predict(test_x)


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 5) -> dict:
    return scores(test_y, knn_predict(train_x, train_y, test_x, k))


def scores(test_y, pred) -> dict:
    """Accuracy, balanced accuracy and the majority-class chance of predictions."""
    majority = max(np.mean(test_y), 1 - np.mean(test_y))
    return {"accuracy": float(np.mean(pred == test_y)),
            "balanced_accuracy": float(balanced_accuracy_score(test_y, pred)),
            "chance": float(majority)}


def _balanced(y, pred, rows) -> float | None:
    y, pred = y[rows], pred[rows]
    if len(np.unique(y)) < 2:
        return None
    return float(balanced_accuracy_score(y, pred))


class Probe:
    """The probe set, the kNN memory and the held-out objective of one run."""

    def __init__(self, arr: np.ndarray, index: pd.DataFrame, held_out: np.ndarray,
                 size: int, place: Placement, seed: int, heldout: HeldOutObjective | None):
        self.size, self.place, self.heldout = size, place, heldout
        mem = np.flatnonzero(~held_out)
        self.mem_rows = np.sort(np.random.default_rng(seed).permutation(mem)[:PROBE_MEMORY])
        lesion = index["lesion"].to_numpy().astype(int)
        pool = index["pool"].to_numpy()
        self.x, self.y = arr[held_out], lesion[held_out]
        self.pool = pool[held_out]
        self.mem_x, self.mem_y = arr[self.mem_rows], lesion[self.mem_rows]
        self.active = bool(held_out.any() and len(self.mem_rows))

    def _predict(self, model: torch.nn.Module):
        """(BN-recalibrated copy of ``model``, kNN prediction per probe patch)."""
        net = bn_recalibrated(model, self.mem_x, self.size, self.place)
        mem = features(net.backbone, self.mem_x, self.size, self.place)
        test = features(net.backbone, self.x, self.size, self.place)
        return net, knn_predict(mem, self.mem_y, test)

    def __call__(self, model: torch.nn.Module) -> dict:
        """``model``: a ContrastiveModel (backbone + head). Returns the probe's numbers."""
        net, pred = self._predict(model)
        out = {k: round(v, 4) for k, v in scores(self.y, pred).items()}
        for name, pools in (("lq_balanced_accuracy", ("LL", "LH")),
                            ("lesion_vs_lq_healthy", ("HL", "LL", "LH"))):
            val = _balanced(self.y, pred, np.isin(self.pool, pools))
            if val is not None:
                out[name] = round(val, 4)
        if self.heldout is not None and self.heldout.usable():
            out["heldout"] = self.heldout.evaluate(net)
        return out

    def correct(self, model: torch.nn.Module) -> pd.DataFrame:
        """Per probe patch: pool, label and whether the kNN got it right (for paired tests)."""
        _, pred = self._predict(model)
        return pd.DataFrame({"pool": self.pool, "lesion": self.y, "pred": pred,
                             "correct": pred == self.y})
