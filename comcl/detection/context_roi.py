"""RoI pooling with a minimum context window (``detector.roi_context``).

torchvision's box head pools every proposal to 7 x 7 cells whatever its size, so a 6 px
microaneurysm and a 14 px dot haemorrhage, which IDRiD's graders tell apart by size,
reach the classifier as the same resampled dark dot. ``ContextRoIAlign`` pools each box
enlarged about its centre to at least ``min_side`` pixels (at the working size): a small
lesion then fills a part of the 7 x 7 grid proportional to its real size, so size and the
surrounding tissue become visible to the box head. Boxes already larger are pooled as they
are, and the regression targets still refer to the proposals, not to the pooled windows.
``min_side`` 0 is torchvision's pooling.
"""
from __future__ import annotations

import torch
from torchvision.ops import MultiScaleRoIAlign

FEATMAP_NAMES = ["0", "1", "2", "3"]  # torchvision's default for the box head


def expand_to_min_side(boxes: torch.Tensor, min_side: float) -> torch.Tensor:
    """``boxes`` (N x 4, x1 y1 x2 y2) grown about their centres to sides >= ``min_side``."""
    if min_side <= 0 or boxes.numel() == 0:
        return boxes
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = torch.clamp(boxes[:, 2:] - boxes[:, :2], min=min_side) / 2
    return torch.cat([centre - half, centre + half], dim=1)


class ContextRoIAlign(MultiScaleRoIAlign):
    """``MultiScaleRoIAlign`` over boxes enlarged to at least ``min_side`` pixels."""

    def __init__(self, min_side: float, output_size: int = 7, sampling_ratio: int = 2):
        super().__init__(FEATMAP_NAMES, output_size, sampling_ratio)
        self.min_side = float(min_side)

    def forward(self, x, boxes, image_shapes):
        return super().forward(x, [expand_to_min_side(b, self.min_side) for b in boxes],
                               image_shapes)
