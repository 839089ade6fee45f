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

from comcl.common.atomic import write_text
from comcl.common.params import Params
from comcl.common.placement import Placement, default_device, setup_threads
from comcl.diagnosis import predictions
from comcl.diagnosis.logistic_probe import ProbeConfig, features, probe_images


def run(params: Params, splits: str | Path, degraded: str | Path, encoder: str | Path,
        metrics_out: str | Path, workers: int | None = None, progress: bool = True,
        predictions_out: str | Path | None = None) -> dict:
    conf = ProbeConfig.from_params(params)
    setup_threads()
    place = Placement.resolve(default_device())
    info, train, test = probe_images(Path(splits), Path(degraded), conf.fraction, conf.seed)
    cfg, x_train, x_test = features(encoder, info, Path(degraded), train, test, conf.size,
                                    place, workers, progress, seed=conf.seed)
    result, frame = conf.probe().report(cfg, x_train, x_test, train, test, conf.n_boot)
    result.update(label_fraction=conf.fraction)
    if predictions_out:   # per-image, as evaluate's: the claims are decided per protocol
        predictions.write(frame, cfg.task, cfg.classes, predictions_out)
    write_text(metrics_out, json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result
