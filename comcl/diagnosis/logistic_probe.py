"""The linear probe's parts, shared by the ``linear_probe`` stage and
``comcl.experiments.probe_scoring``: BatchNorm re-estimation on whole images, the frozen
encoder's standardised features, and the logistic regression with C chosen by
cross-validation on the training images, scored by ``SCORINGS`` (``Probe``); the
``linear_probe.*`` params read once (``ProbeConfig.from_params``) and the images the probe
reads (``probe_images``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score, make_scorer
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler
from torch import nn

from comcl.common import manifest, paths
from comcl.common.errors import DataError
from comcl.common.params import Params
from comcl.common.placement import Placement
from comcl.diagnosis import classifier, predictions
from comcl.diagnosis.label_fraction import label_subset
from comcl.diagnosis.training_set import read_training
from comcl.diagnosis.per_quality import evaluate_predictions
from comcl.imaging import augment
from comcl.imaging.image_cache import resized
from comcl.imaging.inference import predict


@torch.no_grad()
def reestimate_batchnorm(backbone: nn.Module, images: np.ndarray, size: int,
                         place: Placement, batch: int = 32) -> None:
    """Running BatchNorm statistics replaced by the cumulative mean / variance over
    ``images`` (train-mode forward passes; weights untouched)."""
    bns = [m for m in backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    backbone.train()
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch])).permute(0, 3, 1, 2)
        with place.autocast():
            backbone(place.memory_format(augment.plain(x.to(place.device), size)))
    backbone.eval()


# How a C is scored in cross-validation. log_loss rewards calibrated probabilities: with
# weak features it picks the smallest C, whose near-uniform probabilities make argmax
# close to random; kappa scores the decisions the test metric scores.
SCORINGS = {"log_loss": "neg_log_loss",
            "kappa": make_scorer(cohen_kappa_score, weights="quadratic")}


def fit_logistic(x: np.ndarray, y: np.ndarray, cs: list[float], folds: int, seed: int,
                 class_weight: str | None = None, scoring: str = "log_loss"):
    """A logistic regression with C chosen by stratified cross-validation on (x, y),
    scored by ``SCORINGS[scoring]``; a fixed C (the middle of ``cs``) when some class has
    fewer than 2 images (no fold can hold it out) or ``cs`` holds one value. ``class_weight``: None or
    ``"balanced"`` (scikit-learn's)."""
    counts = np.unique(y, return_counts=True)[1]
    k = int(min(folds, counts.min())) if len(counts) > 1 else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if len(counts) < 2:
            return None
        if k < 2 or len(cs) == 1:   # nothing to choose between: no cross-validation fits
            middle = float(sorted(cs)[len(cs) // 2])
            return LogisticRegression(C=middle, max_iter=2000,
                                      class_weight=class_weight).fit(x, y)
        cv = StratifiedKFold(k, shuffle=True, random_state=seed)
        search = GridSearchCV(LogisticRegression(max_iter=2000, class_weight=class_weight),
                              {"C": list(cs)}, cv=cv,
                              scoring=SCORINGS[scoring]).fit(x, y)
        return search.best_estimator_


def class_probabilities(model, x: np.ndarray, classes: np.ndarray, k: int) -> np.ndarray:
    """(N, k) probabilities; classes the training images lack get 0."""
    prob = np.zeros((len(x), k))
    if model is None:
        prob[:, int(classes[0])] = 1.0
        return prob
    prob[:, model.classes_.astype(int)] = model.predict_proba(x)
    return prob


def features(encoder: str | Path, info: dict, degraded: Path, train, test, size: int,
             place: Placement, workers: int | None = None, progress: bool = True,
             seed: int = 0):
    """(classifier config, standardised training features, test features): the frozen
    encoder's pooled features at ``size`` after its BatchNorm statistics are re-estimated
    on the training images; the scaler is fitted on the training features. ``seed`` draws
    the weights of a random-init encoder (``pretrain.method: none``, no state dict): without
    it the baseline's probe read whatever state torch's global generator was in (the same
    params gave kappa 0.145 and 0.194, docs/benchmark.md)."""
    torch.manual_seed(seed)
    model = classifier.from_encoder(encoder, info["task"], info["classes"], "ce", size)
    cfg, backbone = model.cfg, model.backbone.to(place.device)
    store = degraded / paths.IMAGES
    with resized(store, train["image_id"].tolist(), size, workers,
                 "linear_probe: train images", progress) as images:
        reestimate_batchnorm(backbone, images.array, size, place)
        f_train = predict(backbone, images.array, size, place).numpy()
    with resized(store, test["image_id"].tolist(), size, workers,
                 "linear_probe: test images", progress) as images:
        f_test = predict(backbone, images.array, size, place).numpy()
    scaler = StandardScaler().fit(f_train)
    return cfg, scaler.transform(f_train), scaler.transform(f_test)


@dataclass
class Probe:
    """The regression part of the protocol: C by cross-validation (``scoring``), one
    regression per label for multi-label data."""
    cs: list[float]
    folds: int
    seed: int
    class_weight: str | None = None
    scoring: str = "log_loss"

    def fit_predict(self, cfg, x_train, y_train, x_test) -> tuple[np.ndarray, np.ndarray, dict]:
        """(test predictions, test probabilities, the chosen C per regression)."""
        fit = lambda y: fit_logistic(x_train, y.astype(int), self.cs, self.folds,  # noqa: E731
                                     self.seed, self.class_weight, self.scoring)
        if cfg.task == "multilabel":
            prob, chosen = np.zeros((len(x_test), len(cfg.classes))), {}
            for j, name in enumerate(cfg.classes):
                lr = fit(y_train[:, j])
                prob[:, j] = class_probabilities(lr, x_test, np.unique(y_train[:, j]), 2)[:, 1]
                chosen[name] = _c_of(lr)
            return (prob > 0.5).astype(int), prob, chosen
        lr = fit(y_train)
        prob = class_probabilities(lr, x_test, np.unique(y_train), len(cfg.classes))
        return prob.argmax(1), prob, {"C": _c_of(lr)}

    def report(self, cfg, x_train, x_test, train, test, n_boot: int) -> tuple[dict, object]:
        """(test metrics overall and per quality as ``evaluate`` writes them, the
        per-image predictions frame)."""
        y_train, y_test = classifier.targets(train, cfg), classifier.targets(test, cfg)
        pred, prob, chosen = self.fit_predict(cfg, x_train, y_train, x_test)
        result = evaluate_predictions(cfg, y_test, pred, prob, test["quality"].to_numpy(),
                                      n_boot, self.seed)
        result.update(train_images=len(train), chosen_C=chosen, scoring=self.scoring,
                      encoder=cfg.init)
        return result, predictions.frame(cfg.task, cfg.classes, test, y_test, pred, prob)


@dataclass(frozen=True)
class ProbeConfig:
    """The ``linear_probe.*`` params, checked: what the stage and ``probe_scoring`` read."""
    size: int
    cs: list[float]
    folds: int
    fraction: float
    n_boot: int
    seed: int
    class_weight: str | None
    scoring: str

    @classmethod
    def from_params(cls, params: Params) -> "ProbeConfig":
        cs = params.number_list("linear_probe.Cs", lo=1e-6)
        if not cs:
            raise params.error("linear_probe.Cs", "must list at least one value")
        weights = params.choice("linear_probe.class_weights", classifier.CLASS_WEIGHTS,
                                default="none")
        return cls(size=params.integer("linear_probe.image_size", lo=32, hi=2048), cs=cs,
                   folds=params.integer("linear_probe.cv_folds", lo=2),
                   fraction=params.number("linear_probe.label_fraction", 0.0, 1.0,
                                          lo_open=True),
                   n_boot=params.integer("linear_probe.bootstrap", lo=0),
                   seed=params.integer("linear_probe.seed"),
                   class_weight=None if weights == "none" else weights,
                   scoring=params.choice("linear_probe.scoring", tuple(SCORINGS),
                                         default="log_loss"))

    def probe(self, scoring: str | None = None, cs: list[float] | None = None) -> Probe:
        """The regression with these params (``scoring`` / ``cs`` replace the params')."""
        return Probe(self.cs if cs is None else cs, self.folds, self.seed, self.class_weight,
                     self.scoring if scoring is None else scoring)


def probe_images(splits: Path, degraded: Path, fraction: float, seed: int):
    """(dataset info, training images kept by ``label_fraction``, test images); an empty
    test split is a DataError naming its file."""
    info = manifest.read_info(degraded)
    train = label_subset(read_training(splits)[0], fraction, seed)
    test = manifest.read(splits / "test.parquet", splits=("test",))
    if test.empty:
        raise DataError(f"{splits}/test.parquet: the test split is empty")
    return info, train, test


def _c_of(model) -> float | None:
    if model is None:
        return None
    return float(model.C)
