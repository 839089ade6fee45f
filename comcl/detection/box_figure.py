"""Figures of lesion boxes that read alone.

Each lesion class has one colour; ground truth is dashed, the detector's boxes above the
score threshold are solid (with class and score; above ``MAX_LABELS`` boxes in a panel, as
on a real IDRiD image with hundreds of exudates, the labels would cover the image, so the
colour alone gives the class and a line says so), patch windows dotted; one legend says
so, the threshold is in the title, and a panel where no box passed the threshold says
that in a line of text (with the best score seen). ``draw_boxes_panel`` draws one image;
``draw_detect_windows`` is the ``detect`` stage's figure (``train_detector``'s figure of
predictions against ground truth can use the same panel).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from comcl.common.atomic import atomic_file
from comcl.imaging.mask_boxes import mask_boxes

WINDOW_COLOR = "yellow"
MAX_LABELS = 40  # more predicted boxes than this in a panel: no text label per box


def class_colors(classes) -> dict[str, tuple]:
    """A fixed colour per class name (tab10, in the order given)."""
    from matplotlib import colormaps
    cmap = colormaps["tab10"]
    return {c: cmap(i % 10) for i, c in enumerate(classes)}


def draw_boxes_panel(ax, image: np.ndarray, colors: dict, truth=(), predicted=(),
                     windows=(), conf: float | None = None, best: float | None = None,
                     title: str = "", what: str = "box") -> None:
    """One image with ground-truth boxes ``(x0, y0, x1, y1, class)``, predicted boxes
    ``(x0, y0, x1, y1, class, score)`` and windows ``(x0, y0, x1, y1)``; when nothing was
    predicted, a line saying no ``what`` passed ``conf`` (and the best score ``best``)."""
    from matplotlib import patheffects
    from matplotlib.patches import Rectangle

    outline = [patheffects.withStroke(linewidth=1.2, foreground="black")]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    for x0, y0, x1, y1 in windows:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=WINDOW_COLOR,
                               lw=0.8, ls=":"))
    for x0, y0, x1, y1, cls in truth:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colors[cls],
                               lw=1.0, ls="--"))
    labelled = len(predicted) <= MAX_LABELS
    for x0, y0, x1, y1, cls, score in predicted:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colors[cls], lw=1.2))
        if labelled:
            ax.text(x0, y0 - 2, f"{cls} {score:.2f}", color=colors[cls], fontsize=6,
                    path_effects=outline)
    if not labelled:
        _panel_note(ax, f"{len(predicted)} boxes: the colour gives the class, scores not "
                        "printed")
    if not len(predicted) and conf is not None:
        # rounded down, so that a best score below conf never reads as conf
        seen = "none at all" if best is None else \
            f"best score {np.floor(best * 100 + 1e-6) / 100:.2f}"
        _panel_note(ax, f"no {what} above {conf:g} ({seen})")
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def _panel_note(ax, text: str) -> None:
    """One line of text on a white band at the bottom of a panel."""
    ax.text(0.5, 0.04, text, transform=ax.transAxes, ha="center", va="bottom", fontsize=7,
            color="black", bbox={"facecolor": "white", "alpha": 0.85, "lw": 0})


def add_legend(fig, colors: dict, windows: bool = False, truth: bool = True) -> None:
    """Class colours and line styles, in one row below the panels."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=2, label=name) for name, c in colors.items()]
    if truth:
        handles.append(Line2D([], [], color="black", ls="--", label="ground truth"))
    handles.append(Line2D([], [], color="black", ls="-", label="detector box"))
    if windows:
        handles.append(Line2D([], [], color=WINDOW_COLOR, ls=":", label="patch window"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8),
               fontsize=7, frameon=False)


def save(fig, path: str | Path, dpi: int = 90) -> None:
    """Atomically, without a timestamp, nothing cut off."""
    import matplotlib.pyplot as plt

    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=dpi, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)


def draw_detect_windows(store, boxes, images, best: dict, conf: float, classes, path,
                        mask_classes=None, n: int = 4) -> None:
    """A few HL/LL images: the kept boxes (score > ``conf``) with their windows and, when
    the data has lesion masks, the ground-truth lesions."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = []
    for subset in ("HL", "LL"):
        picks += sorted(images.loc[images["subset"] == subset, "image_id"])[: n // 2]
    picks = picks or sorted(images["image_id"])[:n]
    colors = class_colors(classes)
    fig, axes = plt.subplots(1, len(picks), figsize=(3.4 * len(picks), 4.0), squeeze=False,
                             layout="constrained")
    has_truth = False
    for ax, iid in zip(axes[0], picks):
        rec = store.record(iid)
        truth = []
        if rec.lesion_mask is not None:
            has_truth = True
            truth = [(b["x0"], b["y0"], b["x1"], b["y1"], b["lesion_class"])
                     for b in mask_boxes(rec.lesion_mask, *([mask_classes] if mask_classes
                                                             else []))
                     if b["lesion_class"] in colors]
        mine = boxes[boxes["image_id"] == iid]
        predicted = [(b.box_x0, b.box_y0, b.box_x1, b.box_y1, b.lesion_class, b.score)
                     for b in mine.itertuples()]
        windows = [(b.x0, b.y0, b.x1, b.y1) for b in mine.itertuples()]
        sub = images.loc[images["image_id"] == iid, "subset"].iloc[0]
        draw_boxes_panel(ax, rec.image, colors, truth, predicted, windows, conf,
                         best.get(iid), f"{iid} ({sub})")
    fig.suptitle(f"detect: boxes with score > {conf:g} and their patch windows", fontsize=9)
    add_legend(fig, colors, windows=True, truth=has_truth)
    save(fig, path)
