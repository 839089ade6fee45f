"""The ``evaluate`` stage: test-split metrics overall and per quality, with intervals.

Grading: quadratic weighted kappa, accuracy, macro F1, per-class recall; multi-label:
per-label kappa and accuracy averaged, macro AUROC (``comcl.diagnosis.metrics``). Each
overall and on the high- and low-quality test images, with 95% bootstrap intervals
(``evaluate.bootstrap`` resamples, ``evaluate.seed``), nested in ``metrics/eval.json`` so
that ``dvc metrics diff`` lists them. dvclive plots: the confusion matrix (grading) or a
ROC curve per disease (multi-label). Grad-CAM saliency of a fixed set of test lesion
images (the paper's Fig. 3) in ``plots/evaluate/gradcam.png``.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import cv2
import numpy as np
import torch

from comcl.common import manifest, paths
from comcl.common.atomic import atomic_file, write_text
from comcl.common.errors import DataError
from comcl.common.live_log import open_live
from comcl.common.params import Params
from comcl.common.placement import Placement, default_device, setup_threads
from comcl.diagnosis import classifier, predictions
from comcl.diagnosis.per_quality import evaluate_predictions
from comcl.imaging import augment
from comcl.imaging.image_cache import resized
from comcl.imaging.imagestore import ImageStore
from comcl.imaging.inference import predict




def grad_cam(model: classifier.Classifier, x: torch.Tensor) -> np.ndarray:
    """Grad-CAM on the last residual stage for the predicted class (or top disease)."""
    acts, grads = {}, {}
    layer = model.backbone.layer4
    h1 = layer.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
    h2 = layer.register_full_backward_hook(lambda m, gi, go: grads.__setitem__("g", go[0]))
    try:
        model.zero_grad(set_to_none=True)
        out = model(x)
        if out.shape[1] == 1:
            target = out[:, 0]
        else:
            target = out.gather(1, out.argmax(1, keepdim=True))[:, 0]
        target.sum().backward()
    finally:
        h1.remove()
        h2.remove()
    w = grads["g"].mean((2, 3), keepdim=True)
    cam = torch.relu((w * acts["a"]).sum(1)).detach()
    cam = cam / cam.flatten(1).amax(1).clamp_min(1e-8).view(-1, 1, 1)
    return cam.cpu().numpy()


def draw_gradcam(model, store: ImageStore, rows: list[dict], size: int, path,
                 per_block: int = 4) -> None:
    """Each picked image (top) and its Grad-CAM inside the field of view (below), titled
    with the true and the predicted class; lesion outlines in cyan where known."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.eval()
    n = len(rows)
    cols, blocks = min(n, per_block), -(-n // per_block)
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(2.6 * cols + 0.8, 5.4 * blocks),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.set_axis_off()
    heat = None
    for k, row in enumerate(rows):
        rec = store.record(row["image_id"])
        img = cv2.resize(rec.image, (size, size), interpolation=cv2.INTER_AREA)
        x = augment.plain(torch.from_numpy(img if img.ndim == 3 else img[..., None])
                          .permute(2, 0, 1)[None].contiguous(), size)
        cam = cv2.resize(grad_cam(model, x)[0], (size, size), interpolation=cv2.INTER_CUBIC)
        fov = cv2.resize(rec.fov.astype(np.uint8), (size, size),
                         interpolation=cv2.INTER_NEAREST) > 0
        top, bottom = axes[2 * (k // per_block)][k % per_block], \
            axes[2 * (k // per_block) + 1][k % per_block]
        for r, ax in enumerate((top, bottom)):
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            if r == 1:  # the heat only inside the field of view
                heat = ax.imshow(np.ma.masked_where(~fov, np.clip(cam, 0, 1)), cmap="jet",
                                 alpha=0.45, vmin=0, vmax=1)
            if rec.lesion_mask is not None:
                m = cv2.resize((rec.lesion_mask > 0).astype(np.uint8), (size, size),
                               interpolation=cv2.INTER_NEAREST)
                if m.any():
                    ax.contour(m, levels=[0.5], colors="cyan", linewidths=0.5)
        top.set_title(f"{row['image_id']} ({row['quality']} quality)\n"
                      f"true: {row['true_text']}", fontsize=7)
        bottom.set_title(f"predicted: {row['pred_text']}", fontsize=7)
    if heat is not None:
        fig.colorbar(heat, ax=axes[1::2, :].ravel().tolist(), shrink=0.6,
                     label="Grad-CAM of the predicted class (0-1)")
    fig.suptitle("Grad-CAM on test images (cyan: lesion outlines where known)", fontsize=9)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=80, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)


def _class_text(cfg: classifier.ClassifierConfig, value) -> str:
    """A grade, or the names of the diseases (``none`` when there is none)."""
    if cfg.task == "multilabel":
        names = [c for c, v in zip(cfg.classes, value) if v]
        return textwrap.shorten(", ".join(names) or "none", 40, placeholder=" ...")
    name = str(cfg.classes[int(value)])
    return f"grade {name}" if name.isdigit() else name


def gradcam_rows(test, n: int, cfg: classifier.ClassifierConfig, y, pred) -> list[dict]:
    """A fixed set of ``min(n, len(test))`` test images: lesion images, high and low
    quality alternately (sorted by id; one quality filling in when the other runs out),
    then images without a lesion; each with its true (``y``) and predicted (``pred``,
    both in ``test`` order) class as text."""
    test = test.assign(_pos=np.arange(len(test))).sort_values("image_id", kind="stable")
    lesion = test[test["lesion"]]
    queues = [lesion[lesion["quality"] == q].to_dict("records") for q in ("high", "low")]
    picks = []
    while any(queues) and len(picks) < n:
        for queue in queues:
            if queue and len(picks) < n:
                picks.append(queue.pop(0))
    picks += test[~test["lesion"]].head(n - len(picks)).to_dict("records")
    for row in picks:
        row["true_text"] = _class_text(cfg, y[row["_pos"]])
        row["pred_text"] = _class_text(cfg, pred[row["_pos"]])
    return picks


def run(params: Params, splits: str | Path, degraded: str | Path, model_path: str | Path,
        metrics_out: str | Path, live_dir: str | Path | None = None,
        figure: str | Path | None = None, workers: int | None = None,
        progress: bool = True, predictions_out: str | Path | None = None) -> dict:
    n_boot = params.integer("evaluate.bootstrap", lo=0)
    seed = params.integer("evaluate.seed")
    n_cam = params.integer("evaluate.gradcam_images", lo=0)
    setup_threads()
    place = Placement.resolve(default_device())
    model = place.memory_format_model(classifier.load(model_path))
    cfg = model.cfg
    test = manifest.read(Path(splits) / "test.parquet", splits=("test",))
    if test.empty:
        raise DataError(f"{splits}/test.parquet: the test split is empty")
    store_dir = Path(degraded) / paths.IMAGES
    with resized(store_dir, test["image_id"].tolist(), cfg.image_size, workers,
                 "evaluate: test images", progress) as images:
        out = predict(model, images.array, cfg.image_size, place)
    pred, prob = classifier.decode(cfg, out)
    y = classifier.targets(test, cfg)
    result = evaluate_predictions(cfg, y, pred, prob, test["quality"].to_numpy(), n_boot, seed)
    write_text(metrics_out, json.dumps(result, indent=2, sort_keys=True) + "\n")
    if predictions_out:
        predictions.write(predictions.frame(cfg.task, cfg.classes, test, y, pred, prob),
                          cfg.task, cfg.classes, predictions_out)
    if live_dir:
        with open_live(live_dir) as live:
            if cfg.task == "multilabel":
                for j, name in enumerate(cfg.classes):
                    if 0 < y[:, j].sum() < len(y):
                        live.log_sklearn_plot("roc", y[:, j], prob[:, j], name=f"roc/{name}.json")
            else:
                live.log_sklearn_plot("confusion_matrix", y.tolist(), pred.tolist(),
                                      name="confusion_matrix.json")
    if figure and n_cam:
        draw_gradcam(model.to("cpu"), ImageStore(store_dir),
                     gradcam_rows(test, n_cam, cfg, y, pred), cfg.image_size, figure)
    return result
