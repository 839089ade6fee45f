"""One lesion class per proposal: ``detector.labels_per_box: top``.

torchvision's Faster R-CNN returns, for every proposal, a box for *each* class whose
softmax score passes ``box_score_thresh``: a microaneurysm found with MA 0.8 also comes
back as a haemorrhage at 0.15, and these second-choice boxes rank above real
haemorrhages that score lower (docs/datasets.md measured it on IDRiD: 43 of 103
haemorrhage boxes above 0.3 sat on microaneurysms). With ``top`` each proposal keeps
only its most probable lesion class, at its unchanged probability; the other classes'
probability goes to the background, so the rest of torchvision's post-processing
(score threshold, per-class NMS, the per-image cap) runs as before.
"""
from __future__ import annotations

import torch
from torchvision.models.detection.roi_heads import RoIHeads

LABELS_PER_BOX = ("all", "top")


def top_class_logits(class_logits: torch.Tensor) -> torch.Tensor:
    """Logits whose softmax keeps each row's most probable foreground class (column >= 1)
    at its probability, moves every other foreground class's probability to the
    background (column 0), and leaves nothing else."""
    p = torch.softmax(class_logits.float(), -1)
    fg = p[:, 1:]
    if fg.shape[1] == 0:
        return class_logits
    keep = torch.zeros_like(fg, dtype=torch.bool)
    keep.scatter_(1, fg.argmax(1, keepdim=True), True)
    out = torch.cat([p[:, :1] + (fg * ~keep).sum(1, keepdim=True), fg * keep], 1)
    return torch.log(out.clamp_min(1e-30))


class TopLabelRoIHeads(RoIHeads):
    """RoIHeads that give each proposal one class (see the module docstring)."""

    def postprocess_detections(self, class_logits, box_regression, proposals, image_shapes):
        return super().postprocess_detections(top_class_logits(class_logits), box_regression,
                                              proposals, image_shapes)


def apply(model, labels_per_box: str) -> None:
    """Switch ``model.roi_heads`` to one class per proposal (``top``) or torchvision's
    every-class output (``all``); the weights are the same either way."""
    if labels_per_box not in LABELS_PER_BOX:
        raise ValueError(f"labels_per_box must be one of {LABELS_PER_BOX}, got {labels_per_box!r}")
    model.roi_heads.__class__ = TopLabelRoIHeads if labels_per_box == "top" else RoIHeads
