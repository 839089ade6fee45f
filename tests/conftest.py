"""Shared test helpers: tiny params, in-process stage runs, throwaway clones."""
from __future__ import annotations

import copy
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
VENV_BIN = Path(sys.executable).parent

# Small enough for seconds, big enough for every split and subset to be non-empty.
TINY = {
    "synthetic": {"image_size": 128, "n_train": 40, "n_test": 20, "n_aux": 8},
    "split": {"val_fraction": 0.2},
    "detector": {"image_size": 128, "crop": 96, "steps": 2, "batch_size": 2,
                 "anchor_sizes": [8, 16, 32], "holdout_fraction": 0.25},
    "detect": {"conf": 0.0, "max_per_image": 4, "border": 2},  # untrained: keep its boxes
    "patches": {"size": 48, "healthy_per_image": 2, "fov_min": 0.9},
    "pretrain": {"backbone": "resnet18", "input_size": 32, "per_pool": 2, "epochs": 2,
                 "steps_per_epoch": 2, "probe_every": 1, "log_every": 1,
                 "moco": {"queue": 16, "momentum": 0.9}},
    "finetune": {"image_size": 32, "epochs": 2, "batch_size": 8},
    "evaluate": {"bootstrap": 50, "gradcam_images": 2},
}


def deep_update(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = v
    return out


def write_params(path: Path, *overrides: dict) -> Path:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    for o in (TINY,) + overrides:
        data = deep_update(data, o)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under a folder, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """prepare -> degrade -> split on tiny params, once per session (read-only for tests)."""
    from comcl.common.params import Params
    from comcl.data import degrade, prepare, split

    root = tmp_path_factory.mktemp("tiny")
    params = Params.load(write_params(root / "params.yaml"))
    prepare.run(params, root / "prepared", workers=1, progress=False)
    degrade.run(params, root / "prepared", root / "degraded", root / "preview.png",
                workers=1, progress=False)
    split.run(params, root / "degraded" / "manifest.parquet", root / "splits",
              root / "data.json")
    return root


@pytest.fixture(scope="session")
def tiny_patches(tiny_data):
    """train_detector -> detect -> crop_healthy -> build_patches on the tiny data."""
    from comcl.common.params import Params
    from comcl.detection import crop_healthy, detect, patch_store, train_detector

    root = tiny_data
    params = Params.load(root / "params.yaml")
    train_detector.run(params, root / "prepared", root / "detector.pt", root / "detector.json",
                       root / "detector.png", root / "dvclive_detector", progress=False)
    detect.run(params, root / "splits", root / "degraded", root / "detector.pt",
               root / "lesion_boxes.parquet", root / "detect.json", root / "detect.png",
               progress=False)
    crop_healthy.run(params, root / "splits", root / "degraded", root / "healthy_boxes.parquet",
                     progress=False)
    patch_store.build(root / "lesion_boxes.parquet", root / "healthy_boxes.parquet",
                      root / "degraded", root / "store", root / "windows.png", progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_models(tiny_patches):
    """pretrain -> finetune -> evaluate on the tiny data."""
    from comcl.common.params import Params
    from comcl.diagnosis import evaluate, finetune
    from comcl.pretraining import pretrain

    root = tiny_patches
    params = Params.load(root / "params.yaml")
    pretrain.run(params, root / "store", root / "degraded" / "dataset.json", root / "encoder.pt",
                 root / "pretrain.json", root / "pretrain_ckpt", root / "dvclive_pretrain",
                 progress=False, device_kind="cpu")
    finetune.run(params, root / "splits", root / "degraded", root / "encoder.pt",
                 root / "classifier.pt", root / "finetune.json", root / "finetune_ckpt",
                 root / "dvclive_finetune", workers=1, progress=False, device_kind="cpu")
    evaluate.run(params, root / "splits", root / "degraded", root / "classifier.pt",
                 root / "eval.json", root / "dvclive_evaluate", root / "gradcam.png", workers=1,
                 progress=False)
    return root


def run_cmd(args, cwd, env=None, timeout=1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "DVC_NO_ANALYTICS": "1", **(env or {})}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def clone_repo(dest: Path, *overrides: dict) -> Path:
    """A throwaway git clone of the committed repository, with params overridden and
    committed (experiments only see committed files)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    run_cmd(["git", "clone", "-q", str(REPO), str(dest)], cwd=REPO.parent)
    for key, value in (("user.email", "tests@example.com"), ("user.name", "tests")):
        run_cmd(["git", "config", key, value], cwd=dest)
    write_params(dest / "params.yaml", *overrides)
    run_cmd(["git", "commit", "-qam", "tiny params for a test"], cwd=dest)
    return dest
