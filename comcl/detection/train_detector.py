"""The ``train_detector`` stage: Faster R-CNN on the auxiliary set's lesion boxes.

The auxiliary images (``data/prepared/aux``) are resized to ``detector.image_size`` and
preprocessed (``detector.preprocess``, ``comcl.detection.detector.prepare_input``). Held
out: ``detector.holdout_images`` when listed, else the source's own test set (IDRiD's),
else ``detector.holdout_fraction`` of them (seeded); images that are test images of the
main dataset are left out (``detector.exclude_test_images``). Training draws
``detector.crop`` squares, ``detector.lesion_crop_p`` of them around a lesion box
(``detector.lesion_crop_sampling``: per image or class-balanced,
``comcl.detection.crop_sampling``), with flips; AdamW with linear warmup and cosine decay
for ``detector.steps`` steps. Every ``detector.eval_every`` steps (0: at the end only) and
at the end, AP@0.5 per class on the held-out and on the training images goes to dvclive;
``metrics/detector.json`` has both, and, where the source has lesion masks, the held-out
window precision (``comcl.detection.detector_eval``); a figure shows held-out predictions
against ground truth.
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
from comcl.common.placement import default_device, setup_threads
from comcl.common.seeding import rng_for
from comcl.detection import box_figure
from comcl.detection import detector as det
from comcl.detection.crop_sampling import SAMPLING, CropSampler, crop_at
from comcl.detection.detector_eval import average_precision, predict, window_precision
from comcl.imaging.imagestore import ImageStore


def load_aux(prepared: Path, cfg: det.DetectorConfig):
    """Aux images at the working size, preprocessed as ``detector.preprocess`` says, their
    boxes scaled alike and their lesion masks (None where the source has none), by id."""
    size = cfg.image_size
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
    images, targets, masks = {}, {}, {}
    by_id = dict(tuple(boxes.groupby("image_id")))
    for iid in tqdm(rows["image_id"], desc="train_detector: load", unit="img"):
        rec = store.record(iid)
        h, w = rec.image.shape[:2]
        images[iid] = det.prepare_input(rec.image, cfg, rec.fov)
        masks[iid] = None if rec.lesion_mask is None else \
            lesion_mask_at(rec.lesion_mask, size)
        b = by_id.get(iid)
        if b is None:
            xyxy, labels = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        else:
            xyxy = b[["x0", "y0", "x1", "y1"]].to_numpy(np.float32) * \
                np.array([size / w, size / h, size / w, size / h], np.float32)
            labels = np.array([classes.index(c) + 1 for c in b["lesion_class"]], np.int64)
        targets[iid] = (xyxy, labels)
    return images, targets, masks, classes, rows


def lesion_mask_at(mask: np.ndarray, size: int) -> np.ndarray:
    """A lesion mask (any class) at ``size`` x ``size``; a pixel is lesion when any source
    pixel under it is, so that 1-2 px lesions survive downsizing."""
    m = (mask > 0).astype(np.uint8) * 255
    if m.shape[:2] != (size, size):
        m = cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA)
    return m > 0


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


def draw_predictions(images, targets, preds, classes, path, conf: float = 0.5, n: int = 4,
                     ids: list[str] | None = None) -> None:
    """A few held-out images: ground truth (dashed) and the boxes scoring above ``conf``
    (solid, with class and score), one colour per class, a legend below the panels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(images))
    colors = box_figure.class_colors(classes)
    side = 4.2 if max(im.shape[0] for im in images[:n]) <= 768 else 7.0  # 1536 px: 8 px boxes
    fig, axes = plt.subplots(1, n, figsize=(side * n, side + 0.4), squeeze=False,
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


def _train_loop(model, opt, images, targets, sampler, rng, schedule, live, progress,
                evaluate=None) -> None:
    """AdamW on lesion-centred crops with warmup + cosine; dvclive every 10 steps, and
    ``evaluate(step)`` every ``eval_every`` steps (0: never)."""
    steps, batch, crop, lr, eval_every = schedule
    device = det.device_of(model)
    bar = tqdm(range(steps), desc="train_detector", unit="step", disable=not progress)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, max(1, steps // 20))
        crops = []
        for iid in sampler.images(rng, batch):
            iid, box = sampler.box(rng, iid)
            crops.append(crop_at(rng, images[iid], targets[iid], crop, box))
        imgs = [im.to(device) for im, _ in crops]
        tgts = [{k: v.to(device) for k, v in t.items()} for _, t in crops]
        losses = model(imgs, tgts)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise DataError(f"train_detector: loss became {loss.item()} at step {step}; "
                            "lower detector.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        row = live is not None and (step % 10 == 0 or step == steps - 1)
        due = evaluate is not None and eval_every and step and step % eval_every == 0
        if live is not None and (row or due):
            live.step = step
        if row:
            live.log_metric("train/loss", loss.item())
            for k, v in losses.items():
                live.log_metric(f"train/{k}", v.item())
            live.log_metric("train/lr", opt.param_groups[0]["lr"])
        if due:
            evaluate(step)
        if live is not None and (row or due):
            live.next_step()


def _log_ap(live, split: str, result: dict) -> None:
    if live is None:
        return
    live.log_metric(f"{split}/map50", result["map50"])
    for c, ap in result["ap50"].items():
        live.log_metric(f"{split}/ap50_{c}", ap)


def _id_list(params: Params, key: str) -> list[str]:
    """A list of image ids (null or absent: empty)."""
    value = params.raw(key, None)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise params.error(key, f"must be a list of image ids, got {value!r}")
    return [str(v) for v in value]


def _settings(params: Params) -> dict:
    return {
        "steps": params.integer("detector.steps", lo=1),
        "batch": params.integer("detector.batch_size", lo=1),
        "crop": params.integer("detector.crop", lo=32),
        "lr": params.number("detector.lr", lo=0.0, lo_open=True),
        "fraction": params.number("detector.holdout_fraction", 0.0, 1.0, hi_open=True),
        "holdout_images": _id_list(params, "detector.holdout_images"),
        "sampling": params.choice("detector.lesion_crop_sampling", SAMPLING, default="box"),
        "lesion_p": params.number("detector.lesion_crop_p", 0.0, 1.0, default=0.8),
        "eval_every": params.integer("detector.eval_every", lo=0, default=0),
        "seed": params.integer("detector.seed"),
        "weights": params.string("detector.weights", allow_none=True),
        "exclude_test": params.boolean("detector.exclude_test_images"),
    }


def _holdout(params: Params, rows: pd.DataFrame, ids: list[str], st: dict):
    """Held-out ids: ``detector.holdout_images`` when given (each must exist), else the
    source's own test set, else a seeded fraction."""
    given = [str(i) for i in st["holdout_images"]]
    if given:
        missing = sorted(set(given) - set(ids))
        if missing:
            raise params.error("detector.holdout_images",
                               f"names images the auxiliary set does not have (or that are "
                               f"left out as test images): {', '.join(missing[:5])}")
        if len(given) >= len(ids):
            raise params.error("detector.holdout_images", "holds out every auxiliary image")
        return holdout_split(ids, st["fraction"], st["seed"], given)
    source_test = rows.loc[rows["split"] == "test", "image_id"].tolist() if "split" in rows \
        else []
    return holdout_split(ids, st["fraction"], st["seed"], source_test)


def run(params: Params, prepared: str | Path, model_out: str | Path, metrics_out: str | Path,
        figure: str | Path | None, live_dir: str | Path | None = None,
        progress: bool = True) -> dict:
    setup_threads()
    prepared = Path(prepared)
    info = manifest.read_info(prepared)
    cfg = det.DetectorConfig.from_params(params, info.get("aux_classes") or [])
    st = _settings(params)
    size = cfg.image_size
    images, targets, masks, classes, rows = load_aux(prepared, cfg)
    cfg.classes = classes
    ids = usable_aux_ids(rows, prepared, st["exclude_test"])
    train_ids, hold_ids = _holdout(params, rows, ids, st)
    torch.manual_seed(st["seed"])
    model = det.build(cfg)
    if st["weights"]:
        det.load_initial_weights(model, st["weights"])
    model.to(default_device())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=st["lr"],
                            weight_decay=1e-4)
    rng = rng_for(st["seed"], "crops")
    sampler = CropSampler(targets, train_ids, st["sampling"], st["lesion_p"])
    live = open_live(live_dir)
    crop = min(st["crop"], size)

    def evaluate(step=None, split_ids=(("holdout", hold_ids), ("train", train_ids))):
        det.set_input_size(model, size)
        out = {}
        for split, sids in split_ids:
            preds = predict(model, [images[i] for i in sids])
            out[split] = (preds, average_precision(preds, [targets[i] for i in sids], classes))
            _log_ap(live, split, out[split][1])
        det.set_input_size(model, crop)
        model.train()
        return out

    start = time.perf_counter()
    det.set_input_size(model, crop)
    model.train()
    _train_loop(model, opt, images, targets, sampler, rng,
                (st["steps"], st["batch"], st["crop"], st["lr"], st["eval_every"]), live,
                progress, evaluate)
    train_seconds = time.perf_counter() - start
    if live is not None:
        live.step = st["steps"]
    final = evaluate()
    det.set_input_size(model, size)
    model.eval()
    preds, result = final["holdout"]
    result = dict(result)
    result.update(train_ap50=final["train"][1]["ap50"], train_map50=final["train"][1]["map50"],
                  train_ap50_max100=final["train"][1]["ap50_max100"],
                  holdout_images=len(hold_ids), train_images=len(train_ids),
                  steps=st["steps"], train_seconds=round(train_seconds, 1))
    hold_masks = [masks[i] for i in hold_ids]
    if hold_ids and all(m is not None for m in hold_masks):
        result["holdout_window_precision"] = {
            f"{side}px": window_precision(preds, hold_masks, side)
            for side in sorted({128, size // 4})}
    det.save(model, cfg, model_out)
    write_text(metrics_out, json.dumps(result, indent=2, sort_keys=True) + "\n")
    if figure:
        draw_predictions([images[i] for i in hold_ids], [targets[i] for i in hold_ids], preds,
                         classes, figure, ids=hold_ids)
    if live is not None:
        live.end()
    return result
