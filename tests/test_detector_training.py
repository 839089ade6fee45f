"""Detector training parts: class-balanced lesion crops, the held-out list, window precision."""
import numpy as np
import pandas as pd
import pytest
import torch

from comcl.common.errors import ParamError
from comcl.common.params import Params
from comcl.common.seeding import rng_for
from comcl.detection.crop_sampling import CropSampler, crop_at
from comcl.detection.detector_eval import window_precision
from comcl.detection.train_detector import _holdout, _settings


def _targets():
    # image a: 9 boxes of class 1; image b: 1 box of class 2; image c: none
    a = (np.array([[10 * i, 10, 10 * i + 4, 14] for i in range(9)], np.float32),
         np.ones(9, np.int64))
    b = (np.array([[50, 50, 56, 56]], np.float32), np.array([2], np.int64))
    c = (np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    return {"a": a, "b": b, "c": c}


def _centre_classes(mode, n=2000):
    targets = _targets()
    sampler = CropSampler(targets, ["a", "b", "c"], mode, lesion_p=1.0)
    rng = rng_for(0, "t")
    counts = {1: 0, 2: 0, None: 0}
    for iid in sampler.images(rng, n):
        iid, box = sampler.box(rng, iid)
        counts[None if box is None else int(targets[iid][1][box])] += 1
    return counts


def test_class_sampling_centres_crops_on_each_class_equally_box_sampling_per_image():
    by_class = _centre_classes("class")
    assert by_class[None] == 0 and abs(by_class[1] - by_class[2]) < 200
    by_image = _centre_classes("box")       # c has no box: its crops are uniform
    assert abs(by_image[1] - 2000 / 3) < 100 and abs(by_image[None] - 2000 / 3) < 100


def test_crop_around_a_box_contains_it_and_keeps_its_label():
    rng = rng_for(1, "t")
    image = np.zeros((100, 100, 3), np.uint8)
    img, tgt = crop_at(rng, image, _targets()["b"], 32, 0)
    assert img.shape == (3, 32, 32) and tgt["labels"].tolist() == [2]
    w, h = (tgt["boxes"][0, 2:] - tgt["boxes"][0, :2]).tolist()
    assert (w, h) == (6.0, 6.0)


def test_holdout_images_are_held_out_and_unknown_ones_named():
    ids = [f"IDRiD_{i:02d}" for i in range(1, 11)]
    rows = pd.DataFrame({"image_id": ids, "split": "train"})
    p = Params({"detector": {"holdout_images": ["IDRiD_09", "IDRiD_10"]}})
    base = {"steps": 1, "batch_size": 1, "crop": 32, "lr": 1e-3, "holdout_fraction": 0.2,
            "seed": 0, "weights": None, "exclude_test_images": True}
    p = Params({"detector": {**base, "holdout_images": ["IDRiD_09", "IDRiD_10"]}})
    train, hold = _holdout(p, rows, ids, _settings(p))
    assert hold == ["IDRiD_09", "IDRiD_10"] and len(train) == 8
    p = Params({"detector": {**base, "holdout_images": ["IDRiD_99"]}})
    with pytest.raises(ParamError, match="detector.holdout_images.*IDRiD_99"):
        _holdout(p, rows, ids, _settings(p))


def test_window_precision_counts_windows_centred_on_boxes_that_hold_a_lesion_pixel():
    mask = np.zeros((100, 100), bool)
    mask[10, 10] = True
    pred = {"boxes": torch.tensor([[8.0, 8, 12, 12], [80, 80, 84, 84], [40, 40, 44, 44]]),
            "scores": torch.tensor([0.9, 0.6, 0.2])}
    out = window_precision([pred], [mask], side=20, confs=(0.1, 0.5, 0.95))
    assert out["0.1"] == {"windows": 3, "precision": round(1 / 3, 4)}
    assert out["0.5"] == {"windows": 2, "precision": 0.5}
    assert out["0.95"] == {"windows": 0, "precision": None}


def test_average_precision_counts_every_detection_not_cocos_100_per_image():
    # one image with 150 lesions of class 1, each detected exactly: AP 1 over all the
    # detections; COCO's cap of 100 per image and class recalls 100 of 150 at most
    from comcl.detection.detector_eval import average_precision

    boxes = np.array([[8 * i, 8 * j, 8 * i + 6, 8 * j + 6] for i in range(15)
                      for j in range(10)], np.float32)
    labels = np.ones(150, np.int64)
    pred = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels),
            "scores": torch.linspace(1.0, 0.5, 150)}
    res = average_precision([pred], [(boxes, labels)], ["EX"])
    assert res["ap50"]["EX"] == pytest.approx(1.0)
    # 101-point interpolation: precision 1 up to recall 100/150, 0 beyond
    assert res["ap50_max100"]["EX"] == pytest.approx(67 / 101, abs=1e-3)
    assert res["map50"] == res["ap50"]["EX"]
