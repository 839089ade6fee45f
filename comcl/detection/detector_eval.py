"""How well the detector does on whole images: AP@0.5 per class and window precision.

``average_precision`` is torchmetrics' MeanAveragePrecision (COCO-style 101-point
interpolation) at IoU 0.5, per class and the mean over the classes the ground truth has,
counting every detection the model returns. COCO counts at most 100 detections per image
and class: right for COCO's photographs, but an IDRiD image has up to 378 exudate boxes,
so under that cap the exudate recall, and with it AP, could not exceed 0.39 on the two
held-out fixture images (docs/datasets.md). The capped value is reported beside it
(``ap50_max100``) for comparison with COCO-style numbers.
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
    """AP@0.5 per class and mean over classes present in the ground truth, over all the
    detections (``ap50``, ``map50``) and under COCO's 100 per image and class
    (``ap50_max100``, ``map50_max100``). One COCO evaluation per class gives both: its
    precision table holds every detection limit asked for. (pycocotools' headline AP, and
    torchmetrics' ``map_per_class`` with it, is fixed at 100 detections and reads -1 for
    any other limit, hence the table.)"""
    from torchmetrics.detection import MeanAveragePrecision

    most = max([len(p["boxes"]) for p in preds] + [101])
    full, capped = {}, {}
    for cid, name in enumerate(classes, start=1):
        truth = [{"boxes": torch.from_numpy(b[l == cid]).reshape(-1, 4),
                  "labels": torch.from_numpy(l[l == cid])} for b, l in targets]
        if not sum(len(t["labels"]) for t in truth):
            continue
        found = [{k: p[k][p["labels"] == cid] for k in ("boxes", "labels", "scores")}
                 for p in preds]
        metric = MeanAveragePrecision(iou_type="bbox", iou_thresholds=[0.5],
                                      box_format="xyxy", extended_summary=True,
                                      max_detection_thresholds=[1, 100, most])
        metric.update(found, truth)
        # (IoU, recall, class, area, limit); -1 where nothing was detected: AP 0
        precision = metric.compute()["precision"][0, :, 0, 0, :].clamp(min=0)
        capped[name] = round(float(precision[:, 1].mean()), 4)
        full[name] = round(float(precision[:, 2].mean()), 4)
    return {"ap50": full, "map50": _mean(full), "ap50_max100": capped,
            "map50_max100": _mean(capped)}


def _mean(per_class: dict) -> float:
    return round(float(np.mean(list(per_class.values()))), 4) if per_class else 0.0


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
