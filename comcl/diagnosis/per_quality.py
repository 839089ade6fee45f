"""Test metrics overall and on the high- and low-quality images, with bootstrap intervals
(shared by ``evaluate`` and ``linear_probe``)."""
from __future__ import annotations

import numpy as np

from comcl.diagnosis import classifier
from comcl.diagnosis.metrics import (
    confusion,
    grading_from_confusion,
    grading_metrics,
    multilabel_metrics,
    with_intervals,
)


def evaluate_predictions(cfg: classifier.ClassifierConfig, y, pred, prob, quality: np.ndarray,
                         n_boot: int, seed: int) -> dict:
    fast = None
    if cfg.task == "multilabel":
        fn, arrays = (lambda yy, pp: multilabel_metrics(yy, pp, cfg.classes)), (y, prob)
    else:
        k = len(cfg.classes)
        fn, arrays = (lambda yy, pp: grading_metrics(yy, pp, k)), (y, pred)
        fast = lambda yy, pp: grading_from_confusion(confusion(yy, pp, k))  # noqa: E731
    out = {}
    for name, mask in (("overall", np.ones(len(y), bool)), ("high_quality", quality == "high"),
                       ("low_quality", quality == "low")):
        if mask.sum() >= 2:
            out[name] = with_intervals(fn, tuple(a[mask] for a in arrays), n_boot, seed,
                                       resample_fn=fast)
    return out
