"""Training crops for the detector: most of them centred near a lesion box.

``detector.lesion_crop_sampling`` says which box: ``box`` draws a random training image
and one of its boxes (images with many boxes of one class dominate: IDRiD's haemorrhages
and microaneurysms outnumber its exudate specks), ``class`` draws a class uniformly among
those the training images have, then one of its boxes over all images (class-balanced).
``detector.lesion_crop_p`` of the crops are lesion-centred, the rest uniform over the image.
"""
from __future__ import annotations

import numpy as np
import torch

from comcl.detection import detector as det

SAMPLING = ("box", "class")


class CropSampler:
    """Draws (image id, box index or None) for one training crop."""

    def __init__(self, targets: dict, train_ids: list[str], mode: str, lesion_p: float):
        if mode not in SAMPLING:
            raise ValueError(f"crop sampling must be one of {SAMPLING}, got {mode!r}")
        self.train_ids, self.targets, self.mode, self.lesion_p = train_ids, targets, mode, lesion_p
        self.by_class: dict[int, list[tuple[str, int]]] = {}
        for iid in train_ids:
            for k, lab in enumerate(targets[iid][1]):
                self.by_class.setdefault(int(lab), []).append((iid, k))
        self.classes = sorted(self.by_class)

    def images(self, rng, batch: int) -> list[str | None]:
        """The images of a batch (``box``), or None per crop (``class``: ``box`` picks)."""
        if self.mode == "class" and self.classes:
            return [None] * batch
        return [self.train_ids[i] for i in rng.integers(0, len(self.train_ids), batch)]

    def box(self, rng, iid: str | None) -> tuple[str, int | None]:
        """The image and the box a crop centres on (None: a uniform crop)."""
        if iid is None:
            if rng.random() < self.lesion_p:
                pool = self.by_class[self.classes[rng.integers(len(self.classes))]]
                return pool[rng.integers(len(pool))]
            return self.train_ids[rng.integers(len(self.train_ids))], None
        n = len(self.targets[iid][0])
        if n and rng.random() < self.lesion_p:
            return iid, int(rng.integers(n))
        return iid, None


def crop_at(rng, image: np.ndarray, target: tuple, crop: int, box: int | None,
            min_side: float = 1.0):
    """A ``crop`` square (around box ``box`` at a random offset, or anywhere when None),
    randomly flipped, with the boxes whose centre lies inside it, as detector tensors."""
    h, w = image.shape[:2]
    xyxy, labels = target
    c = min(crop, h, w)
    if box is not None:
        bx = xyxy[box]
        cx, cy = (bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2
        x0 = int(np.clip(cx - rng.uniform(0.1, 0.9) * c, 0, w - c))
        y0 = int(np.clip(cy - rng.uniform(0.1, 0.9) * c, 0, h - c))
    else:
        x0, y0 = int(rng.integers(0, w - c + 1)), int(rng.integers(0, h - c + 1))
    img = image[y0:y0 + c, x0:x0 + c]
    boxes = xyxy - np.array([x0, y0, x0, y0], np.float32)
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    keep = (centre_x >= 0) & (centre_x < c) & (centre_y >= 0) & (centre_y < c)
    boxes = np.clip(boxes[keep], 0, c)
    lab = labels[keep]
    ok = ((boxes[:, 2] - boxes[:, 0]) >= min_side) & ((boxes[:, 3] - boxes[:, 1]) >= min_side)
    boxes, lab = boxes[ok], lab[ok]
    if rng.random() < 0.5:
        img = img[:, ::-1]
        boxes = np.stack([c - boxes[:, 2], boxes[:, 1], c - boxes[:, 0], boxes[:, 3]], 1)
    if rng.random() < 0.5:
        img = img[::-1]
        boxes = np.stack([boxes[:, 0], c - boxes[:, 3], boxes[:, 2], c - boxes[:, 1]], 1)
    return det.to_tensor(img), {"boxes": torch.from_numpy(boxes.reshape(-1, 4).astype(np.float32)),
                                "labels": torch.from_numpy(lab.astype(np.int64))}
