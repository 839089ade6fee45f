"""The ``detect`` stage: lesion windows on the HL and LL training images.

The detector runs batched under ``torch.inference_mode`` (on CUDA when there is one, else on
all cores). A box is kept when
its score is above ``detect.conf``, its longer side is at most ``patches.size`` and it
lies at least ``detect.border`` px from every image edge; the best
``detect.max_per_image`` boxes per image are expanded to a ``patches.size`` square window
that contains the box, inside the image, at a random offset (seeded per image and box).
Writes ``data/patches/lesion_boxes.parquet`` and ``metrics/detect.json`` (counts, images
without a kept box and, when the data has lesion masks, window precision and lesion
recall). The stage fails, writing nothing, when ``patches.size`` is larger than the
images or when no window at all is kept (naming ``detect.conf`` and the best score seen,
or the size and border rules that refused the boxes above it).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from comcl.common import manifest, paths
from comcl.common.atomic import write_text
from comcl.common.errors import DataError, PipelineError
from comcl.common.params import Params
from comcl.common.placement import default_device, setup_threads
from comcl.common.seeding import rng_for
from comcl.common.text import plural
from comcl.detection import detector as det
from comcl.detection.box_figure import draw_detect_windows
from comcl.detection.windows import check_fits, window_around
from comcl.imaging.imagestore import ImageStore
from comcl.imaging.mask_boxes import mask_boxes

LESION_COLUMNS = ["image_id", "x0", "y0", "x1", "y1", "score", "lesion_class", "subset",
                  "quality", "box_x0", "box_y0", "box_x1", "box_y1"]


def keep_boxes(pred: dict, conf: float, size: int, border: int, width: int, height: int,
               limit: int) -> list[tuple]:
    """(box, score, label) of the predictions passing the score, size and border rules."""
    boxes, scores, labels = pred["boxes"].numpy(), pred["scores"].numpy(), pred["labels"].numpy()
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    ok = (scores > conf) & (side <= size) & (boxes[:, 0] >= border) & (boxes[:, 1] >= border) \
        & (boxes[:, 2] <= width - border) & (boxes[:, 3] <= height - border)
    idx = np.flatnonzero(ok)
    idx = idx[np.argsort(-scores[idx], kind="stable")][:limit]
    return [(boxes[i], float(scores[i]), int(labels[i])) for i in idx]


def lesion_coverage(windows: pd.DataFrame, masks: dict[str, np.ndarray],
                    mask_classes=None) -> dict:
    """Window precision (windows holding a lesion pixel) and lesion recall (lesion
    components whose box lies inside some window), from ground-truth masks."""
    hits = []
    for w in windows.itertuples():
        m = masks[w.image_id]
        hits.append(bool(m[w.y0:w.y1, w.x0:w.x1].any()))
    comps = covered = 0
    per_class: dict[str, list[int]] = {}
    for iid, m in masks.items():
        wins = windows[windows["image_id"] == iid][["x0", "y0", "x1", "y1"]].to_numpy()
        for b in mask_boxes(m, *([mask_classes] if mask_classes else [])):
            inside = bool(len(wins)) and bool(((wins[:, 0] <= b["x0"]) & (wins[:, 1] <= b["y0"])
                                               & (wins[:, 2] >= b["x1"]) & (wins[:, 3] >= b["y1"])).any())
            comps += 1
            covered += inside
            c = per_class.setdefault(b["lesion_class"], [0, 0])
            c[0] += 1
            c[1] += inside
    return {"window_precision": round(float(np.mean(hits)), 4) if hits else None,
            "lesion_recall": round(covered / comps, 4) if comps else None,
            "lesion_components": comps,
            "lesion_recall_per_class": {k: round(v[1] / v[0], 4) for k, v in sorted(per_class.items())}}


def run(params: Params, splits: str | Path, degraded: str | Path, model_path: str | Path,
        out: str | Path, metrics_out: str | Path | None, figure: str | Path | None = None,
        progress: bool = True) -> dict:
    conf = params.number("detect.conf", 0.0, 1.0, hi_open=True)
    border = params.integer("detect.border", lo=0)
    limit = params.integer("detect.max_per_image", lo=1)
    batch = params.integer("detect.batch_size", lo=1)
    seed = params.integer("detect.seed")
    size = params.integer("patches.size", lo=8)
    setup_threads()
    model, cfg = det.load(model_path, default_device())
    images = manifest.read_subsets(Path(splits), ("HL", "LL"))
    if images.empty:
        raise DataError(f"{splits}: HL and LL are both empty: no lesion image to detect on")
    store = ImageStore(Path(degraded) / paths.IMAGES)
    rows, masks, without, best, above = _detect_all(
        params, model, cfg, store, images, (conf, size, border, limit, batch, seed), progress)
    if not rows:
        raise _no_window_error(params, model_path, len(images), best, above, conf, size,
                               border)
    boxes = pd.DataFrame(rows, columns=LESION_COLUMNS).astype(
        {"x0": "int32", "y0": "int32", "x1": "int32", "y1": "int32", "score": "float32"})
    manifest.write(boxes, out)
    summary = {"images": len(images), "windows": len(boxes),
               "images_without_window": len(without),
               "windows_per_subset": {s: int((boxes["subset"] == s).sum()) for s in ("HL", "LL")},
               "windows_per_class": {c: int((boxes["lesion_class"] == c).sum()) for c in cfg.classes},
               "conf": conf}
    mask_classes = manifest.read_info(Path(degraded)).get("mask_classes")
    if masks:
        summary.update(lesion_coverage(boxes, masks, mask_classes))
    if without:
        print(f"detect: {len(without)} of {plural(len(images), 'lesion image')} "
              f"{'has' if len(without) == 1 else 'have'} no kept box "
              f"(first: {', '.join(without[:5])})")
    if metrics_out:
        write_text(metrics_out, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if figure:
        draw_detect_windows(store, boxes, images, best, conf, cfg.classes, figure,
                            mask_classes)
    return summary


def _detect_all(params: Params, model, cfg, store: ImageStore, images: pd.DataFrame, rules,
                progress: bool):
    """Window rows, lesion masks, images without a window, the best score per image and
    the number of boxes above ``detect.conf`` (before the size and border rules)."""
    conf, size, border, limit, batch, seed = rules
    rows, masks, without = [], {}, []
    best: dict[str, float | None] = {}
    above = 0
    with tqdm(total=len(images), desc="detect", unit="img", disable=not progress) as bar:
        for start in range(0, len(images), batch):
            chunk = images.iloc[start:start + batch]
            recs = [store.record(i) for i in chunk["image_id"]]
            for r in recs:  # before the (slow) detector runs
                check_fits(params, size, r.image.shape[1], r.image.shape[0], r.image_id)
            for r, (_, row), pred in zip(recs, chunk.iterrows(), _predict(model, cfg, recs)):
                h, w = r.image.shape[:2]
                scores = pred["scores"]
                best[r.image_id] = float(scores.max()) if len(scores) else None
                above += int((scores > conf).sum())
                n_before = len(rows)
                for k, (box, score, label) in enumerate(
                        keep_boxes(pred, conf, size, border, w, h, limit)):
                    win = window_around(box, size, w, h, rng_for(seed, r.image_id, k))
                    if win is not None:
                        rows.append(_window_row(r.image_id, win, box, score,
                                                cfg.classes[label - 1], row))
                if len(rows) == n_before:
                    without.append(r.image_id)
                if r.lesion_mask is not None:
                    masks[r.image_id] = r.lesion_mask
            bar.update(len(chunk))
    return rows, masks, without, best, above


def _no_window_error(params: Params, model_path, n_images: int, best: dict, above: int,
                     conf: float, size: int, border: int) -> PipelineError:
    """Why no window was kept: no box at all, none above ``detect.conf`` (with the best
    score seen), or none passing the size and border rules."""
    seen = [b for b in best.values() if b is not None]
    where = plural(n_images, "HL/LL image")
    if not seen:
        return DataError(f"{model_path}: the detector found no box at all on the {where}; "
                         "retrain it (train_detector) or check the detector params")
    if not above:
        return params.error("detect.conf", f"= {conf:g} kept no box on the {where}: the "
                                            f"best score seen is {max(seen):.4f}; set "
                                            "detect.conf below it")
    return params.error("patches.size", f"= {size}: {plural(above, 'box', 'boxes')} scored "
                                        f"above detect.conf = {conf:g}, but none has its "
                                        f"longer side within patches.size and lies "
                                        f"detect.border = {border} px inside the image")


def _predict(model, cfg, recs) -> list[dict]:
    """The detector's predictions for image records, boxes in stored-image pixels."""
    inputs, scales = [], []
    for r in recs:
        h, w = r.image.shape[:2]
        inputs.append(det.to_tensor(det.prepare_input(r.image, cfg, r.fov), det.device_of(model)))
        scales.append(np.array([w, h, w, h], np.float32) / cfg.image_size)
    with torch.inference_mode():
        preds = model(inputs)
    out = []
    for pred, scale in zip(preds, scales):
        pred = {k: v.cpu() for k, v in pred.items()}
        pred["boxes"] = pred["boxes"] * torch.from_numpy(scale)
        out.append(pred)
    return out


def _window_row(image_id: str, win, box, score: float, lesion_class: str, row) -> dict:
    return {"image_id": image_id, "x0": win[0], "y0": win[1], "x1": win[2], "y1": win[3],
            "score": score, "lesion_class": lesion_class, "subset": row["subset"],
            "quality": row["quality"], "box_x0": float(box[0]), "box_y0": float(box[1]),
            "box_x1": float(box[2]), "box_y1": float(box[3])}
