"""Detector, lesion windows, healthy windows and the patch store."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from comcl.common.errors import ParamError
from comcl.common.params import Params
from comcl.detection import detector as det
from comcl.detection.detect import keep_boxes, lesion_coverage
from comcl.detection.patch_store import load
from comcl.detection.windows import random_windows, window_around
from comcl.imaging.imagestore import ImageStore
from comcl.imaging.lesion_classes import class_bit


@pytest.mark.parametrize("seed", range(20))
def test_window_contains_the_box_and_stays_inside(seed):
    rng = np.random.default_rng(seed)
    w, h = 200, 150
    bx0, by0 = rng.uniform(0, w - 40), rng.uniform(0, h - 40)
    box = (bx0, by0, bx0 + rng.uniform(1, 40), by0 + rng.uniform(1, 40))
    win = window_around(box, 64, w, h, np.random.default_rng(seed))
    x0, y0, x1, y1 = win
    assert x1 - x0 == 64 and y1 - y0 == 64
    assert 0 <= x0 and 0 <= y0 and x1 <= w and y1 <= h
    assert x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]
    assert window_around(box, 64, w, h, np.random.default_rng(seed)) == win  # seeded


def test_window_refuses_a_box_larger_than_the_window():
    assert window_around((10, 10, 90, 20), 64, 200, 200, np.random.default_rng(0)) is None


def test_random_windows_respect_the_fov_fraction():
    yy, xx = np.mgrid[0:128, 0:128]
    fov = (xx - 64) ** 2 + (yy - 64) ** 2 <= 60 ** 2
    for fov_min in (1.0, 0.7):
        wins = random_windows(fov, 32, 10, fov_min, np.random.default_rng(1))
        assert len(wins) == 10
        for x0, y0, x1, y1 in wins:
            assert fov[y0:y1, x0:x1].mean() >= fov_min - 1e-9


def test_keep_boxes_applies_score_size_border_and_limit():
    pred = {"boxes": torch.tensor([[10., 10., 20., 20.],    # kept
                                   [2., 10., 12., 20.],     # too close to the left edge
                                   [30., 30., 120., 40.],   # longer side 90 > 64
                                   [40., 40., 50., 50.],    # score too low
                                   [60., 60., 70., 70.]]),  # kept, higher score
            "scores": torch.tensor([0.6, 0.9, 0.9, 0.4, 0.8]),
            "labels": torch.tensor([1, 2, 3, 4, 2])}
    kept = keep_boxes(pred, conf=0.5, size=64, border=5, width=128, height=128, limit=8)
    assert [round(s, 2) for _, s, _ in kept] == [0.8, 0.6]
    assert len(keep_boxes(pred, 0.5, 64, 5, 128, 128, limit=1)) == 1


def test_lesion_coverage_counts_precision_and_recall():
    mask = np.zeros((100, 100), np.uint8)
    mask[10:13, 10:13] = class_bit("MA")      # covered by window 1
    mask[80:90, 80:90] = class_bit("HE")      # covered by no window
    windows = pd.DataFrame({"image_id": ["a", "a"], "x0": [0, 40], "y0": [0, 40],
                            "x1": [32, 72], "y1": [32, 72]})
    res = lesion_coverage(windows, {"a": mask})
    assert res["window_precision"] == 0.5 and res["lesion_recall"] == 0.5
    assert res["lesion_recall_per_class"] == {"HE": 0.0, "MA": 1.0}


@pytest.mark.parametrize("arch", ["mobilenet_v3", "resnet50"])
def test_detector_builds_and_round_trips(tmp_path, arch):
    cfg = det.DetectorConfig(arch, ["MA", "HE", "EX", "SE"], 96, [8, 16, 32], 50, 50, 10)
    torch.manual_seed(0)
    model = det.build(cfg).eval()
    det.save(model, cfg, tmp_path / "d.pt")
    loaded, cfg2 = det.load(tmp_path / "d.pt")
    assert cfg2 == cfg
    x = [torch.rand(3, 96, 96)]
    with torch.inference_mode():
        a, b = model(x)[0], loaded(x)[0]
    assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])


def test_detector_initialises_from_a_local_backbone_file(tmp_path):
    cfg = det.DetectorConfig("mobilenet_v3", ["MA"], 96, [8, 16], 50, 50, 10)
    torch.manual_seed(1)
    donor = det.build(cfg)
    torch.save(donor.backbone.body.state_dict(), tmp_path / "body.pt")
    torch.manual_seed(2)
    model = det.build(cfg)
    det.load_initial_weights(model, tmp_path / "body.pt")
    for k, v in donor.backbone.body.state_dict().items():
        assert torch.equal(model.backbone.body.state_dict()[k], v)
    with pytest.raises(ParamError, match="detector.weights"):
        det.load_initial_weights(model, tmp_path / "missing.pt")


def test_train_detector_reports_ap_per_class(tiny_patches):
    res = json.loads((tiny_patches / "detector.json").read_text())
    assert set(res["ap50"]) <= {"MA", "HE", "EX", "SE"}
    assert 0.0 <= res["map50"] <= 1.0 and res["holdout_images"] == 2
    assert (tiny_patches / "detector.png").stat().st_size > 0
    assert (tiny_patches / "dvclive_detector" / "metrics.json").exists()


def test_lesion_windows_follow_the_rules(tiny_patches):
    params = Params.load(tiny_patches / "params.yaml")
    size = params.integer("patches.size")
    boxes = pd.read_parquet(tiny_patches / "lesion_boxes.parquet")
    assert len(boxes) > 0 and set(boxes["subset"]) <= {"HL", "LL"}
    assert ((boxes["x1"] - boxes["x0"]) == size).all() and ((boxes["y1"] - boxes["y0"]) == size).all()
    assert (boxes["x0"] <= boxes["box_x0"]).all() and (boxes["x1"] >= boxes["box_x1"]).all()
    assert (boxes["y0"] <= boxes["box_y0"]).all() and (boxes["y1"] >= boxes["box_y1"]).all()
    assert (boxes["box_x0"] >= 2).all() and (boxes["box_x1"] <= 128 - 2).all()
    assert (boxes.groupby("image_id").size() <= 4).all()
    summary = json.loads((tiny_patches / "detect.json").read_text())
    assert summary["windows"] == len(boxes)
    assert 0 <= summary["window_precision"] <= 1 and 0 <= summary["lesion_recall"] <= 1


def test_healthy_windows_are_inside_the_fov_and_lesion_free(tiny_patches):
    boxes = pd.read_parquet(tiny_patches / "healthy_boxes.parquet")
    store = ImageStore(tiny_patches / "degraded" / "images")
    assert set(boxes["subset"]) == {"HH", "LH"}
    assert (boxes.groupby("image_id").size() == 2).all()
    for b in boxes.itertuples():
        rec = store.record(b.image_id)
        assert rec.fov[b.y0:b.y1, b.x0:b.x1].mean() >= 0.9
        assert not rec.lesion_mask[b.y0:b.y1, b.x0:b.x1].any()


def test_patch_store_holds_exactly_the_windows(tiny_patches):
    arr, index = load(tiny_patches / "store")
    lesion = pd.read_parquet(tiny_patches / "lesion_boxes.parquet")
    healthy = pd.read_parquet(tiny_patches / "healthy_boxes.parquet")
    assert arr.shape == (len(lesion) + len(healthy), 48, 48, 3) and arr.dtype == np.uint8
    assert list(index["pool"].unique()) == [p for p in ("HL", "LL", "HH", "LH")
                                             if p in set(index["pool"])]
    assert (index["lesion"] == index["pool"].isin(["HL", "LL"])).all()
    store = ImageStore(tiny_patches / "degraded" / "images")
    for i in range(0, len(index), 7):
        r = index.iloc[i]
        img = store.image(r["image_id"])
        assert np.array_equal(arr[i], img[r.y0:r.y1, r.x0:r.x1])
