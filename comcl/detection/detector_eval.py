"""How well the detector does on whole images: AP@0.5 per class and window precision.

``average_precision`` is torchmetrics' MeanAveragePrecision (COCO-style 101-point
interpolation) at IoU 0.5, per class and the mean over the classes the ground truth has.
``window_precision`` asks what ``detect`` will do with the boxes: of the square windows
centred on the boxes scoring above a threshold, the fraction that holds a lesion pixel of
the ground-truth masks.
"""
from __future__ import annotations

import numpy as np
import torch

from comcl.detection import detector as det

REPORT_CONFS = (0.3, 0.5, 0.7)  # thresholds window precision is reported at


@torch.inference_mode()
def predict(model, images: list[np.ndarray], batch_size: int = 4) -> list[dict]:
    model.eval()
    device = det.device_of(model)
    out = []
    for i in range(0, len(images), batch_size):
        out.extend({k: v.cpu() for k, v in o.items()}
                   for o in model([det.to_tensor(im, device) for im in images[i:i + batch_size]]))
    return out


def average_precision(preds: list[dict], targets: list[tuple], classes: list[str]) -> dict:
    """AP@0.5 per class and mean over classes present in the ground truth."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_type="bbox", iou_thresholds=[0.5], class_metrics=True,
                                  box_format="xyxy")
    metric.update(preds, [{"boxes": torch.from_numpy(b), "labels": torch.from_numpy(l)}
                          for b, l in targets])
    res = metric.compute()
    per_class = {}
    ids = res["classes"].tolist() if res["classes"].ndim else [int(res["classes"])]
    values = res["map_per_class"].tolist() if res["map_per_class"].ndim else \
        [float(res["map_per_class"])]
    for cid, ap in zip(ids, values):
        if ap >= 0:
            per_class[classes[cid - 1]] = round(float(ap), 4)
    mean = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return {"ap50": per_class, "map50": round(mean, 4)}


def window_precision(preds: list[dict], masks: list[np.ndarray], side: int,
                     confs=REPORT_CONFS) -> dict:
    """Per threshold: windows (``side`` px, centred on each box above it, inside the
    image) and the fraction holding a lesion pixel."""
    out = {}
    for conf in confs:
        hits = []
        for pred, mask in zip(preds, masks):
            h, w = mask.shape
            c = min(side, h, w)
            for b in pred["boxes"][pred["scores"] > conf].numpy():
                x0 = int(np.clip((b[0] + b[2]) / 2 - c / 2, 0, w - c))
                y0 = int(np.clip((b[1] + b[3]) / 2 - c / 2, 0, h - c))
                hits.append(bool(mask[y0:y0 + c, x0:x0 + c].any()))
        out[f"{conf:g}"] = {"windows": len(hits),
                            "precision": round(float(np.mean(hits)), 4) if hits else None}
    return out
