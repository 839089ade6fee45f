"""The diagnosis model: the (pretrained) ResNet encoder with a task head.

Tasks (``dataset.json``): ``grading`` (5 DR grades) with ``finetune.loss: ce`` (softmax,
cross-entropy) or ``mse`` (one output regressed on the grade and rounded at k - 0.5, as
the public DR baselines do); ``multilabel`` (one sigmoid output per disease, BCE).
``models/classifier.pt`` holds the config and the state dict (``weights_only`` loading).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from comcl.common.atomic import atomic_file
from comcl.common.errors import DataError
from comcl.pretraining.encoder import build_backbone, load_encoder

LOSSES = ("ce", "mse")
CLASS_WEIGHTS = ("none", "balanced")


@dataclass
class ClassifierConfig:
    backbone: str
    task: str
    classes: list[str]
    loss: str
    image_size: int
    init: str            # pretraining method the weights came from ("none": random)

    @property
    def outputs(self) -> int:
        if self.task == "multilabel":
            return len(self.classes)
        return 1 if self.loss == "mse" else len(self.classes)


class Classifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone)
        self.fc = nn.Linear(self.backbone.feature_dim, cfg.outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))


def from_encoder(encoder_path: str | Path, task: str, classes: list[str], loss: str,
                 image_size: int) -> Classifier:
    blob = load_encoder(encoder_path)
    cfg = ClassifierConfig(blob["backbone"], task, list(classes), loss, image_size,
                           blob.get("method", "none"))
    model = Classifier(cfg)
    model.pixel_scale = blob.get("pixel_scale")   # None: random init or an older encoder
    if "state_dict" in blob:
        missing, unexpected = model.backbone.load_state_dict(blob["state_dict"], strict=False)
        if missing or unexpected:
            raise DataError(f"{encoder_path}: encoder does not match a {cfg.backbone} "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model


def class_weights(y: np.ndarray, n_classes: int, mode: str) -> torch.Tensor | None:
    """Cross-entropy class weights from the training labels: ``none``, or ``balanced``
    (scikit-learn's rule, n / (K n_k); a class absent from training gets weight 0).
    With ``none`` the 5-way softmax on the synthetic default never predicts grade 1
    (microaneurysms only): it is the rarest non-zero grade and looks almost like grade 0."""
    if mode not in CLASS_WEIGHTS:
        raise ValueError(f"class weights must be one of {CLASS_WEIGHTS}, got {mode!r}")
    if mode == "none":
        return None
    counts = np.bincount(np.asarray(y, np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(w, dtype=torch.float32)


def positive_weights(y: np.ndarray, mode: str) -> torch.Tensor | None:
    """Multi-label BCE ``pos_weight`` per label from the training labels: ``none``, or
    ``balanced`` (n_negative / n_positive, so that each label's positives and negatives weigh
    the same in the loss; a label with no positive or no negative in training gets 1)."""
    if mode not in CLASS_WEIGHTS:
        raise ValueError(f"class weights must be one of {CLASS_WEIGHTS}, got {mode!r}")
    if mode == "none":
        return None
    y = np.asarray(y, np.float64)
    pos = y.sum(axis=0)
    neg = len(y) - pos
    w = np.ones(y.shape[1])
    both = (pos > 0) & (neg > 0)
    w[both] = neg[both] / pos[both]
    return torch.tensor(w, dtype=torch.float32)


def loss_fn(cfg: ClassifierConfig, weight: torch.Tensor | None = None):
    """The task's loss; ``weight``: per class for grading with ``ce`` (``class_weights``), per
    label ``pos_weight`` for multi-label BCE (``positive_weights``)."""
    if cfg.task == "multilabel":
        return lambda out, y: nn.functional.binary_cross_entropy_with_logits(
            out.float(), y.float(), pos_weight=None if weight is None else weight.to(out.device))
    if cfg.loss == "mse":
        return lambda out, y: nn.functional.mse_loss(out.float().squeeze(1), y.float())
    return lambda out, y: nn.functional.cross_entropy(
        out.float(), y.long(), weight=None if weight is None else weight.to(out.device))


def decode(cfg: ClassifierConfig, out: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(predicted labels, scores): grades and class probabilities (or the regressed value),
    or 0/1 per disease and sigmoid probabilities."""
    out = out.float()
    if cfg.task == "multilabel":
        prob = torch.sigmoid(out).cpu().numpy()
        return (prob >= 0.5).astype(int), prob
    if cfg.loss == "mse":
        value = out.squeeze(1).cpu().numpy()
        # Round at k - 0.5: below 0.5 is grade 0, [0.5, 1.5) grade 1, ...
        grade = np.clip(np.floor(value + 0.5), 0, len(cfg.classes) - 1).astype(int)
        return grade, value[:, None]
    prob = torch.softmax(out, 1).cpu().numpy()
    return prob.argmax(1), prob


def targets(df, cfg: ClassifierConfig) -> np.ndarray:
    """Training targets from a manifest: grades, or a (N, L) 0/1 matrix of diseases."""
    if cfg.task == "multilabel":
        index = {c: i for i, c in enumerate(cfg.classes)}
        y = np.zeros((len(df), len(cfg.classes)), np.float32)
        for r, labels in enumerate(df["labels"]):
            for name in labels:
                if name in index:
                    y[r, index[name]] = 1.0
        return y
    return df["label"].to_numpy().astype(np.int64)


def save(model: Classifier, path: str | Path) -> None:
    with atomic_file(path) as tmp:
        torch.save({"config": asdict(model.cfg),
                    "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}},
                   tmp)


def load(path: str | Path) -> Classifier:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: classifier not found; run `finetune` first")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = Classifier(ClassifierConfig(**blob["config"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()
