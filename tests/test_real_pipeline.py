"""`dvc repro split` on the real-data fixtures, in a throwaway clone (needs the adapters
committed: the clone sees committed files only)."""
import json

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES, clone_repo, run_cmd

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (FIXTURES / "eyeq").is_dir() or not (FIXTURES / "chestxray14").is_dir()
                       or not (FIXTURES / "idrid").is_dir(),
                       reason=f"real-data fixtures not found at {FIXTURES} (they live beside "
                              "the repository, not in it)"),
]


def repro(tmp_path, overrides):
    repo = clone_repo(tmp_path / "repo", overrides)
    out = run_cmd(["dvc", "repro", "split"], cwd=repo)
    return repo, out.stdout + out.stderr


def test_eyeq_and_idrid_fixtures(tmp_path):
    repo, out = repro(tmp_path, {
        "data": {"source": "eyeq", "aux_source": "idrid", "image_size": 256,
                 "on_missing": "skip",
                 "eyeq": {"root": str(FIXTURES / "eyeq"), "test_csv": None},
                 "idrid": {"root": str(FIXTURES / "idrid")}},
        "degrade": {"target_ratio": 0.7},
        "detector": {"image_size": 256, "crop": 128, "steps": 4}})
    assert "skipped: 12533 images listed" in out
    prepared = pd.read_parquet(repo / "data" / "prepared" / "manifest.parquet")
    labels = pd.read_csv(FIXTURES / "eyeq" / "Label_EyeQ_train.csv").set_index("image")
    names = sorted(p.stem for p in (FIXTURES / "eyeq" / "images").glob("*.jpeg"))
    assert sorted(prepared["image_id"]) == names
    truth = labels.loc[prepared["image_id"] + ".jpeg"]
    assert prepared["label"].tolist() == truth["DR_grade"].tolist()
    assert prepared["quality_code"].tolist() == truth["quality"].tolist()
    info = json.loads((repo / "data" / "prepared" / "dataset.json").read_text())
    assert info["source"] == "eyeq" and info["aux_source"] == "idrid"
    boxes = pd.read_parquet(repo / "data" / "prepared" / "aux" / "boxes.parquet")
    assert boxes["image_id"].nunique() == 10
    assert set(boxes["lesion_class"]) == {"MA", "HE", "EX", "SE"}
    deg = pd.read_parquet(repo / "data" / "degraded" / "manifest.parquet")
    assert deg["degraded"].sum() >= 2
    for _, part in deg.groupby("split"):
        assert abs((part["quality"] == "low").sum() - 0.7 * len(part)) <= 1
    preview = cv2.imread(str(repo / "plots" / "degrade" / "preview.png"))
    assert preview is not None and preview.shape[1] > preview.shape[0]
    summary = json.loads((repo / "metrics" / "data.json").read_text())
    assert summary["train"]["images"] + summary["val"]["images"] + summary["test"]["images"] == 10
    assert (repo / "data" / "splits" / "HL.parquet").exists()
    # The detector trains on the IDRiD fixture masks (256 px, a few steps) and `detect`
    # runs on the real EyeQ photographs, drawing its boxes.
    out = run_cmd(["dvc", "repro", "build_patches"], cwd=repo).stdout
    for stage in ("train_detector", "detect", "crop_healthy", "build_patches"):
        assert f"Running stage '{stage}'" in out
    det = json.loads((repo / "metrics" / "detector.json").read_text())
    assert det["train_images"] + det["holdout_images"] == 10
    windows = pd.read_parquet(repo / "data" / "patches" / "lesion_boxes.parquet")
    assert set(windows["subset"]) <= {"HL", "LL"}
    figure = cv2.imread(str(repo / "plots" / "detect" / "windows.png"))
    assert figure is not None and figure.shape[1] > figure.shape[0]


def test_chestxray14_fixtures(tmp_path):
    repo, out = repro(tmp_path, {
        "data": {"source": "chestxray14", "aux_source": "synthetic", "image_size": 256,
                 "on_missing": "skip", "chestxray14": {"root": str(FIXTURES / "chestxray14")}},
        "synthetic": {"profile": "chest", "image_size": 256, "n_aux": 4},
        "degrade": {"types": ["noise", "blur", "contrast"], "target_ratio": 0.5},
        "split": {"val_fraction": 0.3}})
    assert "skipped: 112110 images listed" in out
    prepared = pd.read_parquet(repo / "data" / "prepared" / "manifest.parquet")
    assert len(prepared) == 10 and "labels" in prepared and "label" not in prepared
    assert prepared.groupby("split").size().to_dict() == {"test": 4, "train": 6}
    info = json.loads((repo / "data" / "prepared" / "dataset.json").read_text())
    assert info["modality"] == "xray" and info["channels"] == 1 and info["num_classes"] == 8
    deg = pd.read_parquet(repo / "data" / "degraded" / "manifest.parquet")
    types = set()
    for p in deg.loc[deg["degraded"], "degradation"].map(json.loads):
        types |= set(p["types"])
    assert deg["degraded"].sum() == 5 and types <= {"noise", "blur", "contrast"}
    parts = {n: pd.read_parquet(repo / "data" / "splits" / f"{n}.parquet")
             for n in ("HL", "LL", "HH", "LH", "val", "test")}
    train_groups = set().union(*(set(parts[n]["group"]) for n in ("HL", "LL", "HH", "LH")))
    assert not train_groups & set(parts["val"]["group"])
    assert not train_groups & set(parts["test"]["group"])
    preview = cv2.imread(str(repo / "plots" / "degrade" / "preview.png"), cv2.IMREAD_UNCHANGED)
    assert preview is not None and np.ptp(preview) > 100


def test_smoke_preset_on_eyeq_and_idrid_fixtures_runs_to_evaluate(tmp_path):
    """presets/real_smoke.yaml, one command, in a throwaway clone: every stage runs on the
    real photographs and the lesion pools (HL, LL) are not empty."""
    repo = clone_repo(tmp_path / "repo")
    out = run_cmd(["python", "scripts/run_preset.py", "presets/real_smoke.yaml",
                   "-S", f"data.eyeq.root={FIXTURES / 'eyeq'}",
                   "-S", f"data.idrid.root={FIXTURES / 'idrid'}"], cwd=repo)
    log = out.stdout + out.stderr
    for stage in ("prepare", "train_detector", "detect", "build_patches", "pretrain",
                  "finetune", "linear_probe", "evaluate"):
        assert f"Running stage '{stage}'" in log
    pools = json.loads((repo / "metrics" / "pretrain.json").read_text())["pools"]
    assert pools["HL"] > 0 and pools["LL"] > 0, pools
    det = json.loads((repo / "metrics" / "detector.json").read_text())
    assert (det["train_images"], det["holdout_images"]) == (8, 2)
    assert set(det["train_ap50"]) >= {"MA", "HE", "EX"}
    evaluation = json.loads((repo / "metrics" / "eval.json").read_text())
    assert evaluation
    for fig in ("plots/detector/predictions.png", "plots/detect/windows.png"):
        assert cv2.imread(str(repo / fig)) is not None, fig
