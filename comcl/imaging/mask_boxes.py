"""Lesion masks to boxes: one box per connected component per lesion class."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from comcl.imaging.lesion_classes import LESION_CLASSES

BOX_COLUMNS = ["image_id", "lesion_class", "x0", "y0", "x1", "y1", "area"]


def mask_boxes(mask: np.ndarray, classes=LESION_CLASSES) -> list[dict]:
    """Boxes (x1, y1 exclusive) of the 8-connected components of each class's pixels.

    ``mask`` is a lesion bit mask (bit i = ``classes[i]``).
    """
    out = []
    for i, name in enumerate(classes):
        pixels = ((mask >> i) & 1).astype(np.uint8)
        if not pixels.any():
            continue
        n, _, stats, _ = cv2.connectedComponentsWithStats(pixels, connectivity=8)
        for x, y, w, h, area in stats[1:n]:
            out.append({"lesion_class": name, "x0": int(x), "y0": int(y),
                        "x1": int(x + w), "y1": int(y + h), "area": int(area)})
    return out


def boxes_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=BOX_COLUMNS)
    return df.astype({"x0": "int32", "y0": "int32", "x1": "int32", "y1": "int32",
                      "area": "int64", "image_id": "str", "lesion_class": "str"})
