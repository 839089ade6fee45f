"""The ``train_detector`` stage: Faster R-CNN on the auxiliary set's lesion boxes.

The auxiliary images (``data/prepared/aux``) are resized to ``detector.image_size``;
the source's own test set (IDRiD's), or else ``detector.holdout_fraction`` of them
(seeded), is held out; images that are test images of the main dataset are left out
(``detector.exclude_test_images``). Training draws random
``detector.crop`` x ``detector.crop`` crops, most of them around a random lesion box,
with flips; AdamW with linear warmup and cosine decay for ``detector.steps`` steps.
The held-out images give AP@0.5 per class and their mean (torchmetrics'
MeanAveragePrecision, COCO-style 101-point interpolation) in ``metrics/detector.json``,
and a figure of predictions against ground truth.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from comcl.common import manifest, paths
from comcl.common.atomic import write_text
from comcl.common.errors import DataError
from comcl.common.live_log import open_live
from comcl.common.lr_schedule import lr_at
from comcl.common.params import Params
from comcl.common.placement import setup_threads
from comcl.common.seeding import rng_for
from comcl.detection import box_figure
from comcl.detection import detector as det
from comcl.imaging.imagestore import ImageStore


def load_aux(prepared: Path, size: int):
    """Aux images resized to ``size`` and their boxes scaled alike, keyed by image id."""
    info = manifest.read_info(prepared)
    aux = prepared / paths.AUX
    rows = pd.read_parquet(aux / paths.MANIFEST)
    boxes = pd.read_parquet(aux / paths.AUX_BOXES)
    manifest.require_columns(boxes, ["image_id", "lesion_class", "x0", "y0", "x1", "y1"],
                             str(aux / paths.AUX_BOXES))
    classes = list(info.get("aux_classes") or sorted(boxes["lesion_class"].unique()))
    unknown = set(boxes["lesion_class"]) - set(classes)
    if unknown:
        raise DataError(f"{aux / paths.AUX_BOXES}: unknown lesion_class {sorted(unknown)}")
    store = ImageStore(aux / paths.IMAGES)
    images, targets = {}, {}
    by_id = dict(tuple(boxes.groupby("image_id")))
    for iid in tqdm(rows["image_id"], desc="train_detector: load", unit="img"):
        img = store.image(iid)
        h, w = img.shape[:2]
        images[iid] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) \
            if (h, w) != (size, size) else img
        b = by_id.get(iid)
        if b is None:
            xyxy, labels = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        else:
            xyxy = b[["x0", "y0", "x1", "y1"]].to_numpy(np.float32) * \
                np.array([size / w, size / h, size / w, size / h], np.float32)
            labels = np.array([classes.index(c) + 1 for c in b["lesion_class"]], np.int64)
        targets[iid] = (xyxy, labels)
    return images, targets, classes, rows


def usable_aux_ids(rows: pd.DataFrame, prepared: Path, exclude_test: bool) -> list[str]:
    """Auxiliary images the detector may see: not test images of the main dataset."""
    ids = sorted(rows["image_id"])
    if not exclude_test:
        return ids
    main = pd.read_parquet(prepared / paths.MANIFEST, columns=["image_id", "split"])
    test = set(main.loc[main["split"] == "test", "image_id"])
    kept = [i for i in ids if i not in test]
    if not kept:
        raise DataError(f"{prepared / paths.AUX}: all {len(ids)} auxiliary images are test images "
                        "of the main dataset (as ChestX-ray14's boxes are); training the detector "
                        "on them would leak test images into pretraining. Set "
                        "detector.exclude_test_images: false to accept that knowingly.")
    if len(kept) < len(ids):
        print(f"train_detector: left out {len(ids) - len(kept)} auxiliary images that are test "
              "images of the main dataset")
    return kept


def holdout_split(ids: list[str], fraction: float, seed: int,
                  given: list[str] | None = None) -> tuple[list[str], list[str]]:
    """The source's own test set when it has one (IDRiD), else a seeded fraction."""
    ids = sorted(ids)
    if given:
        hold = sorted(set(given) & set(ids))
        if hold and len(hold) < len(ids):
            return [i for i in ids if i not in set(hold)], hold
    n_hold = max(1, int(round(fraction * len(ids)))) if fraction > 0 else 0
    if n_hold >= len(ids):
        raise DataError(f"auxiliary set has {len(ids)} images: too few to hold "
                        f"{fraction:.0%} out and still train")
    order = rng_for(seed, "holdout").permutation(len(ids))
    hold = sorted(ids[i] for i in order[:n_hold])
    return [i for i in ids if i not in set(hold)], hold


def sample_crop(rng, image, target, crop, min_side=1.0):
    """A crop (around a random box with probability 0.8) with the boxes inside it."""
    h, w = image.shape[:2]
    xyxy, labels = target
    c = min(crop, h, w)
    if len(xyxy) and rng.random() < 0.8:
        bx = xyxy[rng.integers(len(xyxy))]
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


@torch.inference_mode()
def predict(model, images: list[np.ndarray], batch_size: int = 4) -> list[dict]:
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        out.extend({k: v.cpu() for k, v in o.items()}
                   for o in model([det.to_tensor(im) for im in images[i:i + batch_size]]))
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


def draw_predictions(images, targets, preds, classes, path, conf: float = 0.5, n: int = 4,
                     ids: list[str] | None = None) -> None:
    """A few held-out images: ground truth (dashed) and the boxes scoring above ``conf``
    (solid, with class and score), one colour per class, a legend below the panels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(images))
    colors = box_figure.class_colors(classes)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.6), squeeze=False,
                             layout="constrained")
    for k, ax in enumerate(axes[0]):
        (gt, gl), pr = targets[k], preds[k]
        truth = [(*b.tolist(), classes[int(c) - 1]) for b, c in zip(gt, gl)]
        keep = pr["scores"] > conf
        predicted = [(*b.tolist(), classes[int(c) - 1], float(s)) for b, c, s in
                     zip(pr["boxes"][keep], pr["labels"][keep], pr["scores"][keep])]
        best = float(pr["scores"].max()) if len(pr["scores"]) else None
        name = ids[k] if ids else f"image {k + 1}"
        box_figure.draw_boxes_panel(ax, images[k], colors, truth, predicted, conf=conf,
                                    best=best, what="prediction",
                                    title=f"{name}: {len(truth)} true, "
                                          f"{len(predicted)} predicted")
    fig.suptitle(f"train_detector: held-out auxiliary images, predictions with score > "
                 f"{conf:g}", fontsize=9)
    box_figure.add_legend(fig, colors)
    box_figure.save(fig, path, dpi=110)


def _train_loop(model, opt, images, targets, train_ids, rng, steps, batch, crop, lr, live,
                progress) -> None:
    """AdamW on random crops with warmup + cosine; dvclive every 10 steps."""
    bar = tqdm(range(steps), desc="train_detector", unit="step", disable=not progress)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, max(1, steps // 20))
        ids = [train_ids[i] for i in rng.integers(0, len(train_ids), batch)]
        imgs, tgts = zip(*(sample_crop(rng, images[i], targets[i], crop) for i in ids))
        losses = model(list(imgs), list(tgts))
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise DataError(f"train_detector: loss became {loss.item()} at step {step}; "
                            "lower detector.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if live is not None and (step % 10 == 0 or step == steps - 1):
            live.step = step
            live.log_metric("train/loss", loss.item())
            for k, v in losses.items():
                live.log_metric(f"train/{k}", v.item())
            live.log_metric("train/lr", opt.param_groups[0]["lr"])
            live.next_step()


def run(params: Params, prepared: str | Path, model_out: str | Path, metrics_out: str | Path,
        figure: str | Path | None, live_dir: str | Path | None = None,
        progress: bool = True) -> dict:
    setup_threads()
    prepared = Path(prepared)
    info = manifest.read_info(prepared)
    size = params.integer("detector.image_size", lo=64, hi=4096)
    cfg = det.DetectorConfig.from_params(params, info.get("aux_classes") or [])
    steps = params.integer("detector.steps", lo=1)
    batch = params.integer("detector.batch_size", lo=1)
    crop = params.integer("detector.crop", lo=32)
    lr = params.number("detector.lr", lo=0.0, lo_open=True)
    fraction = params.number("detector.holdout_fraction", 0.0, 1.0, hi_open=True)
    seed = params.integer("detector.seed")
    weights = params.string("detector.weights", allow_none=True)
    exclude_test = params.boolean("detector.exclude_test_images")
    images, targets, classes, rows = load_aux(prepared, size)
    cfg.classes = classes
    ids = usable_aux_ids(rows, prepared, exclude_test)
    given = rows.loc[rows["split"] == "test", "image_id"].tolist() if "split" in rows else []
    train_ids, hold_ids = holdout_split(ids, fraction, seed, given)
    torch.manual_seed(seed)
    model = det.build(cfg)
    if weights:
        det.load_initial_weights(model, weights)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=1e-4)
    rng = rng_for(seed, "crops")
    live = open_live(live_dir)
    start = time.perf_counter()
    det.set_input_size(model, min(crop, size))
    model.train()
    _train_loop(model, opt, images, targets, train_ids, rng, steps, batch, crop, lr, live,
                progress)
    train_seconds = time.perf_counter() - start
    det.set_input_size(model, size)
    hold_images = [images[i] for i in hold_ids]
    hold_targets = [targets[i] for i in hold_ids]
    preds = predict(model, hold_images)
    result = average_precision(preds, hold_targets, classes)
    result.update(holdout_images=len(hold_ids), train_images=len(train_ids), steps=steps,
                  train_seconds=round(train_seconds, 1))
    det.save(model, cfg, model_out)
    write_text(metrics_out, json.dumps(result, indent=2, sort_keys=True) + "\n")
    if figure:
        draw_predictions(hold_images, hold_targets, preds, classes, figure, ids=hold_ids)
    if live is not None:
        live.end()
    return result
