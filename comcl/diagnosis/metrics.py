"""Diagnosis metrics (scikit-learn) with seeded bootstrap confidence intervals.

Grading (single label): quadratic weighted kappa, accuracy, macro F1 and per-class
recall. Multi-label: Cohen's kappa and accuracy per label at threshold 0.5, averaged
over labels, and macro AUROC. ``with_intervals`` adds 95% percentile bootstrap
intervals (``<name>_ci_low`` / ``<name>_ci_high``) from resampled images.

Point estimates come from scikit-learn. Bootstrap resamples of the grading metrics use
``grading_from_confusion``, the same formulas on a confusion matrix built with
``np.bincount`` (about 100x faster than calling scikit-learn a thousand times; equal to
it to 1e-12, ``tests/test_diagnosis_metrics.py``).
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, recall_score, roc_auc_score


def grading_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    labels = list(range(num_classes))
    out = {"kappa": _kappa(y_true, y_pred, labels, "quadratic"),
           "accuracy": float(accuracy_score(y_true, y_pred)),
           "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro",
                                      zero_division=0))}
    rec = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    for c, r in zip(labels, rec):
        out[f"recall_{c}"] = float(r)
    return out


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k).astype(np.float64)


def grading_from_confusion(cm: np.ndarray) -> dict:
    """Quadratic weighted kappa, accuracy, macro F1 and per-class recall of a confusion
    matrix (rows: truth), as scikit-learn computes them."""
    k = cm.shape[0]
    n = cm.sum()
    i, j = np.indices((k, k))
    w = (i - j) ** 2 / (k - 1) ** 2 if k > 1 else np.zeros((k, k))
    expected = np.outer(cm.sum(1), cm.sum(0)) / n
    denom = (w * expected).sum()
    kappa = 1.0 - (w * cm).sum() / denom if denom > 0 else (1.0 if (w * cm).sum() == 0 else 0.0)
    tp = np.diag(cm)
    support, predicted = cm.sum(1), cm.sum(0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k),
                   where=(precision + recall) > 0)
    out = {"kappa": float(kappa), "accuracy": float(tp.sum() / n), "macro_f1": float(f1.mean())}
    for c in range(k):
        out[f"recall_{c}"] = float(recall[c])
    return out


def multilabel_metrics(y_true: np.ndarray, scores: np.ndarray, classes: list[str]) -> dict:
    """``y_true``: (N, L) 0/1; ``scores``: (N, L) probabilities."""
    pred = (scores >= 0.5).astype(int)
    kappas, accs, aucs = [], [], []
    for j in range(y_true.shape[1]):
        kappas.append(_kappa(y_true[:, j], pred[:, j], [0, 1], None))
        accs.append(float(accuracy_score(y_true[:, j], pred[:, j])))
        if 0 < y_true[:, j].sum() < len(y_true):
            aucs.append(float(roc_auc_score(y_true[:, j], scores[:, j])))
    return {"kappa": float(np.mean(kappas)), "accuracy": float(np.mean(accs)),
            "auroc": float(np.mean(aucs)) if aucs else float("nan")}


def _kappa(y_true, y_pred, labels, weights) -> float:
    if len(np.unique(np.concatenate([y_true, y_pred]))) < 2:
        return 1.0 if np.array_equal(y_true, y_pred) else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        k = cohen_kappa_score(y_true, y_pred, labels=labels, weights=weights)
    return 0.0 if np.isnan(k) else float(k)


def with_intervals(metric_fn, arrays: tuple, n_boot: int, seed: int,
                   keys=("kappa", "accuracy", "auroc", "macro_f1"), resample_fn=None) -> dict:
    """Point estimates of ``metric_fn(*arrays)`` plus bootstrap intervals for ``keys``
    (computed with ``resample_fn`` when given: a faster equivalent of ``metric_fn``)."""
    point = metric_fn(*arrays)
    resample_fn = resample_fn or metric_fn
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    samples = {k: [] for k in keys if k in point}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        res = resample_fn(*(a[idx] for a in arrays))
        for k in samples:
            if not np.isnan(res[k]):
                samples[k].append(res[k])
    out = {k: round(v, 4) if isinstance(v, float) and not np.isnan(v) else v
           for k, v in point.items()}
    for k, vals in samples.items():
        if vals:
            lo, hi = np.percentile(vals, [2.5, 97.5])
            out[f"{k}_ci_low"], out[f"{k}_ci_high"] = round(float(lo), 4), round(float(hi), 4)
    out["images"] = n
    return out
