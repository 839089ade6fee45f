"""train_detector's figure of held-out predictions reads alone."""
import numpy as np
import pytest
import torch

from comcl.detection import box_figure
from comcl.detection.train_detector import draw_predictions


def _pred(boxes, labels, scores):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "scores": torch.tensor(scores, dtype=torch.float32)}


@pytest.fixture
def figures(monkeypatch):
    """(figure, panel texts, panel titles) of each figure box_figure saves."""
    import matplotlib.pyplot as plt

    saved = []
    real_save = box_figure.save

    def keep(fig, path, dpi=90):
        saved.append((fig, [t.get_text() for ax in fig.axes for t in ax.texts],
                      [ax.get_title() for ax in fig.axes]))
        real_save(fig, path, dpi)

    monkeypatch.setattr(box_figure, "save", keep)
    yield saved
    plt.close("all")


def test_held_out_figure_has_legend_threshold_and_says_when_nothing_passed(tmp_path, figures):
    classes = ["MA", "HE", "EX", "SE"]
    images = [np.zeros((64, 64, 3), np.uint8)] * 3
    targets = [(np.array([[5, 5, 9, 9], [20, 20, 40, 40]], np.float32), np.array([1, 3])),
               (np.array([[10, 10, 30, 30]], np.float32), np.array([2])),
               (np.zeros((0, 4), np.float32), np.zeros(0, np.int64))]
    preds = [_pred([[20, 21, 40, 40], [1, 1, 5, 5]], [3, 1], [0.9, 0.2]),
             _pred([[10, 10, 30, 30]], [2], [0.31]),
             _pred([], [], [])]
    out = tmp_path / "predictions.png"
    draw_predictions(images, targets, preds, classes, out, conf=0.5, ids=["a", "b", "c"])

    assert out.stat().st_size > 0
    fig, texts, titles = figures[0]
    assert texts == ["EX 0.90", "no prediction above 0.5 (best score 0.31)",
                     "no prediction above 0.5 (none at all)"]
    assert titles == ["a: 2 true, 1 predicted", "b: 1 true, 0 predicted",
                      "c: 0 true, 0 predicted"]
    assert "0.5" in fig._suptitle.get_text()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == classes + ["ground truth", "detector box"]


def test_a_panel_with_hundreds_of_boxes_prints_no_label_per_box(tmp_path, figures):
    # a real IDRiD image has hundreds of exudates: labels would cover it
    n = box_figure.MAX_LABELS + 1
    boxes = [[2 * i, 2 * i, 2 * i + 4, 2 * i + 4] for i in range(n)]
    draw_predictions([np.zeros((128, 128, 3), np.uint8)],
                     [(np.array(boxes, np.float32), np.full(n, 3))],
                     [_pred(boxes, [3] * n, [0.9] * n)], ["MA", "HE", "EX"],
                     tmp_path / "p.png", conf=0.5, ids=["dense"])
    assert figures[0][1] == [f"{n} boxes: the colour gives the class, scores not printed"]
