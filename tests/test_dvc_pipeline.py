"""DVC behaviour in a throwaway clone: repro, no-op repro, and what an ablation re-runs."""
import json
import re
import shutil
import sys

import pandas as pd
import pytest
from conftest import clone_repo, run_cmd

from comcl.common import code_deps

pytestmark = pytest.mark.slow


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([\w@-]+)'", output)


@pytest.fixture(scope="module")
def pipeline_clone(tmp_path_factory):
    repo = clone_repo(tmp_path_factory.mktemp("clone") / "repo")
    first = run_cmd(["dvc", "repro"], cwd=repo)
    return repo, first.stdout


def test_repro_runs_every_stage_in_dependency_order(pipeline_clone):
    repo, out = pipeline_clone
    stages = ran_stages(out)
    order = ["prepare", "degrade", "split", "detect", "build_patches"]
    assert [s for s in stages if s in order] == order
    assert stages.index("train_detector") < stages.index("detect")
    assert stages.index("crop_healthy") < stages.index("build_patches")
    assert (repo / "data" / "splits" / "HL.parquet").exists()
    assert (repo / "data" / "patches" / "store" / "patches.npy").exists()


def test_second_repro_does_nothing(pipeline_clone):
    repo, _ = pipeline_clone
    out = run_cmd(["dvc", "repro"], cwd=repo).stdout
    assert ran_stages(out) == []
    status = run_cmd(["dvc", "status"], cwd=repo).stdout
    assert "up to date" in status


def test_a_change_to_the_lr_schedule_module_reruns_the_stages_that_import_it(pipeline_clone):
    repo, _ = pipeline_clone
    module = repo / "comcl" / "common" / "lr_schedule.py"
    text = module.read_text()
    module.write_text(text + "\n# a change\n")
    try:
        status = json.loads(run_cmd(["dvc", "status", "--json"], cwd=repo).stdout)
        out = run_cmd(["dvc", "repro", "--dry"], cwd=repo).stdout
    finally:
        module.write_text(text)
    importers = {s for s in ("prepare", "degrade", "split", "train_detector", "detect",
                             "crop_healthy", "build_patches", "pretrain", "finetune", "linear_probe",
                             "evaluate")
                 if "comcl/common/lr_schedule.py" in code_deps.closure(f"stages.{s}")}
    assert {"pretrain", "finetune"} <= importers
    assert set(status) == importers
    assert {"pretrain", "finetune"} <= set(ran_stages(out))
    assert "prepare" not in ran_stages(out)
    assert ran_stages(run_cmd(["dvc", "repro", "--dry"], cwd=repo).stdout) == []


def test_target_ratio_experiment_reruns_only_degrade_and_after(pipeline_clone):
    repo, _ = pipeline_clone
    out = run_cmd(["dvc", "exp", "run", "-S", "degrade.target_ratio=0.7"], cwd=repo).stdout
    stages = ran_stages(out)
    assert stages[:2] == ["degrade", "split"]
    assert "prepare" not in stages and "train_detector" not in stages
    df = pd.read_parquet(repo / "data" / "degraded" / "manifest.parquet")
    for _, part in df.groupby("split"):
        assert abs((part["quality"] == "low").sum() - 0.7 * len(part)) <= 1


def test_spl_ablation_reruns_pretrain_and_after_and_is_comparable(pipeline_clone, tmp_path):
    repo, _ = pipeline_clone
    base = tmp_path / "base" / "metrics"
    base.mkdir(parents=True)
    shutil.copy(repo / "metrics" / "predictions.parquet", base)
    out = run_cmd(["dvc", "exp", "run", "-n", "no-spl", "-S", "spl.enabled=false"], cwd=repo).stdout
    stages = ran_stages(out)
    assert stages[0] == "pretrain" and stages[-1] == "evaluate"
    assert sorted(stages) == ["evaluate", "finetune", "linear_probe", "pretrain"]
    diff = run_cmd(["dvc", "metrics", "diff", "--all", "--json"], cwd=repo).stdout
    show = run_cmd(["dvc", "exp", "show", "--json"], cwd=repo).stdout
    for part in ("overall", "high_quality", "low_quality"):
        for metric in ("kappa", "accuracy"):
            assert f"{part}.{metric}" in diff
            assert f'"{metric}"' in show
    text = run_cmd(["dvc", "exp", "show", "--no-pager", "--md"], cwd=repo).stdout
    assert "overall.kappa" in text and "low_quality.accuracy" in text and "no-spl" in text
    # per-image comparison of the experiment (by name, from git) with the run before it
    report = run_cmd([sys.executable, "-m", "comcl.experiments.compare", str(base.parent),
                      "no-spl", "--bootstrap", "50", "--permutations", "50",
                      "--out", str(tmp_path / "r.json")], cwd=repo).stdout
    assert "no-spl" in report and "low_quality" in report
    parts = json.loads((tmp_path / "r.json").read_text())["parts"]
    d = parts["overall"]["vs_reference"]["no-spl"]["kappa"]
    assert d["ci95"][0] <= d["ci95"][1] and 0 <= d["p_permutation"] <= 1


def test_detect_conf_experiment_does_not_retrain_the_detector(pipeline_clone):
    repo, _ = pipeline_clone
    # The tiny detector is untrained: at 0.8 it keeps no box, so the experiment stops at
    # detect itself, naming detect.conf and the best score (last test of the module: it
    # leaves detect.conf=0.8 in the clone's workspace). The detector is not retrained.
    with pytest.raises(AssertionError) as failed:
        run_cmd(["dvc", "exp", "run", "-S", "detect.conf=0.8", "build_patches"], cwd=repo)
    text = str(failed.value)
    assert "detect.conf` = 0.8 kept no box" in text and "best score seen is" in text
    assert ran_stages(text) == ["detect"]