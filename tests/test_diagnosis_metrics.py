"""Diagnosis metrics against scikit-learn and hand-computed examples; bootstrap intervals."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, recall_score

from comcl.diagnosis.metrics import (
    confusion,
    grading_from_confusion,
    grading_metrics,
    multilabel_metrics,
    with_intervals,
)

Y_TRUE = np.array([0, 0, 1, 2, 2, 3, 4, 4, 1, 0, 2, 3, 3, 4, 0])
Y_PRED = np.array([0, 1, 1, 2, 3, 3, 4, 2, 0, 0, 2, 4, 3, 4, 0])


def test_grading_metrics_equal_scikit_learn():
    m = grading_metrics(Y_TRUE, Y_PRED, 5)
    assert m["kappa"] == pytest.approx(cohen_kappa_score(Y_TRUE, Y_PRED, weights="quadratic"))
    assert m["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED)) == 10 / 15
    assert m["macro_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    rec = recall_score(Y_TRUE, Y_PRED, average=None)
    assert [m[f"recall_{c}"] for c in range(5)] == pytest.approx(list(rec))


@pytest.mark.parametrize("seed", range(10))
def test_confusion_formulas_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, 60)
    p = np.where(rng.random(60) < 0.6, y, rng.integers(0, 5, 60))
    fast = grading_from_confusion(confusion(y, p, 5))
    slow = grading_metrics(y, p, 5)
    for k in slow:
        assert fast[k] == pytest.approx(slow[k], abs=1e-12)


def test_multilabel_metrics_match_a_hand_computed_example():
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    scores = np.array([[0.9, 0.2], [0.4, 0.8], [0.1, 0.6], [0.3, 0.7]])
    m = multilabel_metrics(y, scores, ["A", "B"])
    # Label A: predictions 1,0,0,0 vs 1,1,0,0 -> accuracy 3/4; kappa: po = 0.75,
    # pe = (1/4 * 2/4) + (3/4 * 2/4) = 0.5 -> kappa 0.5. AUROC A: scores of positives
    # (0.9, 0.4) beat negatives (0.1, 0.3) -> 1.0.
    # Label B: predictions 0,1,1,1 vs 0,1,0,1 -> accuracy 3/4; po = 0.75,
    # pe = (3/4 * 2/4) + (1/4 * 2/4) = 0.5 -> kappa 0.5. AUROC B: positives 0.8, 0.7 vs
    # negatives 0.2, 0.6 -> 1.0.
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["kappa"] == pytest.approx(0.5)
    assert m["auroc"] == pytest.approx(1.0)
    scores2 = scores.copy()
    scores2[2, 1] = 0.75  # now a negative of B outranks the positive 0.7: AUROC B = 3/4
    assert multilabel_metrics(y, scores2, ["A", "B"])["auroc"] == pytest.approx((1.0 + 0.75) / 2)


def test_bootstrap_interval_contains_the_point_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    p = np.where(rng.random(200) < 0.7, y, rng.integers(0, 5, 200))
    fn = lambda a, b: grading_metrics(a, b, 5)  # noqa: E731
    fast = lambda a, b: grading_from_confusion(confusion(a, b, 5))  # noqa: E731
    res = with_intervals(fn, (y, p), 300, seed=1, resample_fn=fast)
    for k in ("kappa", "accuracy", "macro_f1"):
        assert res[f"{k}_ci_low"] <= res[k] <= res[f"{k}_ci_high"]
        assert res[f"{k}_ci_high"] - res[f"{k}_ci_low"] < 0.3
    assert res == with_intervals(fn, (y, p), 300, seed=1, resample_fn=fast)
    assert res["images"] == 200
