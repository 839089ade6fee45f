"""The synthetic chest profile: findings with masks and boxes, and the multi-label path
through prepare -> degrade -> split."""
import json

import numpy as np
import pandas as pd
import pytest
from conftest import write_params

from comcl.common import manifest
from comcl.common.params import Params
from comcl.data import degrade, prepare, split
from comcl.data.synth_chest import render_chest
from comcl.imaging.imagestore import ImageStore
from comcl.imaging.lesion_classes import CHEST_DISEASES
from comcl.imaging.mask_boxes import mask_boxes

CHEST = {"synthetic": {"profile": "chest", "image_size": 64, "n_train": 24, "n_test": 12,
                       "n_aux": 4},
         "degrade": {"types": ["noise", "blur", "contrast"], "target_ratio": 0.6}}


@pytest.mark.parametrize("disease", CHEST_DISEASES)
def test_each_finding_has_its_mask_and_box(disease):
    for seed in range(3):
        grey, fov, mask, meta = render_chest(np.random.default_rng(seed), 192, [disease])
        assert grey.shape == (192, 192) and grey.dtype == np.uint8 and fov.all()
        boxes = mask_boxes(mask, CHEST_DISEASES)
        assert boxes and {b["lesion_class"] for b in boxes} == {disease}
        assert meta["diseases"] == [disease]
        healthy, _, hmask, _ = render_chest(np.random.default_rng(seed), 192, [])
        region = (mask > 0)
        if disease != "Pneumothorax":  # opacities brighten; pneumothorax darkens
            assert grey[region].mean() > healthy[region].mean()
        else:
            assert grey[region].mean() < healthy[region].mean()
        assert hmask.max() == 0


def test_cardiomegaly_enlarges_the_heart():
    for seed in range(5):
        _, _, mask, meta = render_chest(np.random.default_rng(seed), 128, ["Cardiomegaly"])
        assert meta["heart_factor"] >= 1.35
        _, _, _, normal = render_chest(np.random.default_rng(seed), 128, [])
        assert normal["heart_factor"] <= 1.05


def test_render_is_deterministic_and_multilabel():
    a = render_chest(np.random.default_rng(3), 128, ["Mass", "Effusion", "Pneumothorax"])
    b = render_chest(np.random.default_rng(3), 128, ["Mass", "Effusion", "Pneumothorax"])
    assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3]))
    assert {bx["lesion_class"] for bx in mask_boxes(a[2], CHEST_DISEASES)} == \
        {"Mass", "Effusion", "Pneumothorax"}


def test_chest_profile_runs_prepare_degrade_split(tmp_path):
    params = Params.load(write_params(tmp_path / "params.yaml", CHEST))
    info = prepare.run(params, tmp_path / "prepared", workers=1, progress=False)
    assert info["task"] == "multilabel" and info["modality"] == "xray"
    assert info["channels"] == 1 and info["num_classes"] == 8
    assert info["aux_classes"] == list(CHEST_DISEASES)
    df = manifest.read(tmp_path / "prepared" / "manifest.parquet", splits=("train", "test"))
    assert "label" not in df.columns and manifest.is_multilabel(df)
    assert len(df) == 36 and (df["lesion"] == (df["labels"].map(len) > 0)).all()
    assert set(np.concatenate(df["labels"].to_numpy())) <= set(CHEST_DISEASES)
    assert (df["labels"].map(len) >= 2).any() and (~df["lesion"]).any()
    for _, g in df.groupby("split"):
        assert (g["quality"] == "low").sum() == round(0.33 * len(g))
    native = df.loc[df["quality"] == "low", "native_degradation"].map(json.loads)
    assert all(set(p["types"]) <= {"noise", "blur", "contrast"} for p in native)
    store = ImageStore(tmp_path / "prepared" / "images")
    rec = store.record(df["image_id"].iloc[0])
    assert rec.image.shape == (64, 64) and rec.fov.all() and rec.lesion_mask is not None
    boxes = pd.read_parquet(tmp_path / "prepared" / "aux" / "boxes.parquet")
    assert len(boxes) and set(boxes["lesion_class"]) <= set(CHEST_DISEASES)
    degrade.run(params, tmp_path / "prepared", tmp_path / "degraded", tmp_path / "preview.png",
                workers=1, progress=False)
    deg = manifest.read(tmp_path / "degraded" / "manifest.parquet", splits=("train", "test"))
    for _, g in deg.groupby("split"):
        assert abs((g["quality"] == "low").sum() - 0.6 * len(g)) <= 1
    for p in deg.loc[deg["degraded"], "degradation"].map(json.loads):
        assert p["types"] and set(p["types"]) <= {"noise", "blur", "contrast"}
    assert (tmp_path / "preview.png").stat().st_size > 0
    summary = split.run(params, tmp_path / "degraded" / "manifest.parquet",
                        tmp_path / "splits", tmp_path / "data.json")
    hl = pd.read_parquet(tmp_path / "splits" / "HL.parquet")
    assert hl["lesion"].all() and (hl["labels"].map(len) > 0).all()
    assert summary["val"]["images"] == round(0.2 * 24)  # conftest.TINY val_fraction
