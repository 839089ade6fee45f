"""The ``linear_probe`` stage: the transfer protocol that fits only a linear classifier.

The encoder (``models/encoder.pt``) stays frozen. Its BatchNorm statistics are first
re-estimated on the training images (cumulative averages over one pass, no gradient), so
that an encoder pretrained on patches is read at whole-image statistics; then its pooled
features of the training and test images at ``linear_probe.image_size`` are standardised
(on train) and a logistic regression is fitted on the training images, its inverse
regularisation C chosen from ``linear_probe.Cs`` by stratified ``linear_probe.cv_folds``-fold
cross-validation on the training images only (never on validation or test images), scored by
``linear_probe.scoring`` (``SCORINGS``: ``log_loss`` or the task's own ``kappa``, quadratic
weighted for grading; docs/benchmark.md measures both);
multi-label data: one such regression per label. ``linear_probe.class_weights``
(``none`` | ``balanced``) as ``finetune.class_weights``. ``linear_probe.label_fraction`` probes
with a stratified fraction of the training images (``comcl.diagnosis.label_fraction``).
Test metrics overall and per quality with bootstrap intervals, as ``evaluate`` writes them,
in ``metrics/linear_probe.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

from comcl.common import manifest
from comcl.common.atomic import write_text
from comcl.common.errors import DataError
from comcl.common.params import Params
from comcl.common.placement import Placement, default_device, setup_threads
from comcl.diagnosis import classifier, predictions
from comcl.diagnosis.label_fraction import label_subset
from comcl.diagnosis.logistic_probe import SCORINGS, Probe, features
from comcl.diagnosis.training_set import read_training


def run(params: Params, splits: str | Path, degraded: str | Path, encoder: str | Path,
        metrics_out: str | Path, workers: int | None = None, progress: bool = True,
        predictions_out: str | Path | None = None) -> dict:
    size = params.integer("linear_probe.image_size", lo=32, hi=2048)
    cs = params.number_list("linear_probe.Cs", lo=1e-6)
    folds = params.integer("linear_probe.cv_folds", lo=2)
    fraction = params.number("linear_probe.label_fraction", 0.0, 1.0, lo_open=True)
    n_boot = params.integer("linear_probe.bootstrap", lo=0)
    seed = params.integer("linear_probe.seed")
    weights = params.choice("linear_probe.class_weights", classifier.CLASS_WEIGHTS,
                            default="none")
    class_weight = None if weights == "none" else weights
    scoring = params.choice("linear_probe.scoring", tuple(SCORINGS), default="log_loss")
    if not cs:
        raise params.error("linear_probe.Cs", "must list at least one value")
    setup_threads()
    place = Placement.resolve(default_device())
    splits, degraded = Path(splits), Path(degraded)
    info = manifest.read_info(degraded)
    train, _ = read_training(splits)
    train = label_subset(train, fraction, seed)
    test = manifest.read(splits / "test.parquet", splits=("test",))
    if test.empty:
        raise DataError(f"{splits}/test.parquet: the test split is empty")
    cfg, x_train, x_test = features(encoder, info, degraded, train, test, size, place,
                                    workers, progress)
    probe = Probe(cs, folds, seed, class_weight, scoring)
    result, frame = probe.report(cfg, x_train, x_test, train, test, n_boot)
    result.update(label_fraction=fraction)
    if predictions_out:   # per-image, as evaluate's: the claims are decided per protocol
        predictions.write(frame, cfg.task, cfg.classes, predictions_out)
    write_text(metrics_out, json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result
