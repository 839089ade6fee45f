"""finetune and evaluate: the classifier, its decoding, metrics files, resume, multi-label."""
import json

import numpy as np
import pytest
import torch
from conftest import write_params

from comcl.common.params import Params
from comcl.data import degrade, prepare, split
from comcl.diagnosis import classifier, evaluate, finetune
from comcl.pretraining import pretrain


def test_mse_regression_rounds_at_k_minus_half():
    cfg = classifier.ClassifierConfig("resnet18", "grading", list("01234"), "mse", 32, "none")
    out = torch.tensor([[-0.3], [0.49], [0.5], [1.49], [3.6], [5.2]])
    grade, value = classifier.decode(cfg, out)
    assert grade.tolist() == [0, 0, 1, 1, 4, 4]
    assert value[:, 0].tolist() == pytest.approx(out[:, 0].tolist())


def test_balanced_class_weights_equal_sklearn_and_weight_the_loss():
    from sklearn.utils.class_weight import compute_class_weight
    y = np.array([0] * 6 + [1] * 1 + [2] * 3 + [4] * 2)   # grade 3 absent
    w = classifier.class_weights(y, 5, "balanced")
    ref = compute_class_weight("balanced", classes=np.array([0, 1, 2, 4]), y=y)
    assert w[[0, 1, 2, 4]].tolist() == pytest.approx(ref.tolist()) and w[3] == 0
    assert classifier.class_weights(y, 5, "none") is None
    cfg = classifier.ClassifierConfig("resnet18", "grading", list("01234"), "ce", 32, "none")
    torch.manual_seed(0)
    out, yt = torch.randn(12, 5), torch.from_numpy(y)
    naive = sum(w[k] * -torch.log_softmax(out, 1)[i, k] for i, k in enumerate(y)) / w[y].sum()
    assert float(classifier.loss_fn(cfg, w)(out, yt)) == pytest.approx(float(naive), rel=1e-5)
    assert float(classifier.loss_fn(cfg)(out, yt)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(out, yt)), rel=1e-6)


def test_balanced_positive_weights_weight_each_labels_positives_like_its_negatives():
    y = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 0]], np.float32)  # label 1: no positive
    w = classifier.positive_weights(y, "balanced")
    assert w.tolist() == pytest.approx([3.0, 1.0, 1.0])
    assert classifier.positive_weights(y, "none") is None
    cfg = classifier.ClassifierConfig("resnet18", "multilabel", list("abc"), "bce", 32, "none")
    torch.manual_seed(0)
    out, yt = torch.randn(4, 3), torch.from_numpy(y)
    ls = torch.nn.functional.logsigmoid
    naive = -sum(w[j] * yt[i, j] * ls(out[i, j]) + (1 - yt[i, j]) * ls(-out[i, j])
                 for i in range(4) for j in range(3)) / 12
    assert float(classifier.loss_fn(cfg, w)(out, yt)) == pytest.approx(float(naive), rel=1e-5)


def test_finetune_starts_from_the_pretrained_encoder(tiny_models):
    from comcl.pretraining.encoder import load_encoder
    enc = load_encoder(tiny_models / "encoder.pt")["state_dict"]
    model = classifier.from_encoder(tiny_models / "encoder.pt", "grading", list("01234"), "ce", 32)
    for k, v in enc.items():
        assert torch.equal(model.backbone.state_dict()[k], v)
    assert model.cfg.init == "comcl"


def test_finetune_writes_the_best_validation_model(tiny_models):
    res = json.loads((tiny_models / "finetune.json").read_text())
    assert 1 <= res["best_epoch"] <= 2 and -1 <= res["best_val_kappa"] <= 1
    model = classifier.load(tiny_models / "classifier.pt")
    assert model.cfg.task == "grading" and model.cfg.outputs == 5
    assert (tiny_models / "dvclive_finetune" / "plots" / "metrics").exists()


def test_evaluate_reports_every_metric_overall_and_per_quality(tiny_models):
    res = json.loads((tiny_models / "eval.json").read_text())
    assert set(res) == {"overall", "high_quality", "low_quality"}
    assert res["overall"]["images"] == 20
    assert res["high_quality"]["images"] + res["low_quality"]["images"] == 20
    for part in res.values():
        for k in ("kappa", "accuracy", "macro_f1"):
            assert part[f"{k}_ci_low"] <= part[k] + 1e-9 and part[k] <= part[f"{k}_ci_high"] + 1e-9
        assert all(f"recall_{c}" in part for c in range(5))
    cm = tiny_models / "dvclive_evaluate" / "plots" / "sklearn" / "confusion_matrix.json"
    pairs = json.loads(cm.read_text())  # one {"actual", "predicted"} per test image
    assert len(pairs) == 20 and {"actual", "predicted"} <= set(pairs[0])
    assert (tiny_models / "gradcam.png").stat().st_size > 0


def test_grad_cam_is_a_normalised_map():
    cfg = classifier.ClassifierConfig("resnet18", "grading", list("01234"), "ce", 64, "none")
    torch.manual_seed(0)
    cam = evaluate.grad_cam(classifier.Classifier(cfg).eval(), torch.randn(2, 3, 64, 64))
    assert cam.shape == (2, 2, 2) and cam.min() >= 0 and np.allclose(cam.max((1, 2)), 1.0)


def test_finetune_resumes_to_the_same_weights(tmp_path, tiny_models):
    params = Params.load(tiny_models / "params.yaml")
    args = (tiny_models / "splits", tiny_models / "degraded", tiny_models / "encoder.pt")
    finetune.run(params, *args, tmp_path / "a.pt", tmp_path / "a.json", tmp_path / "ca",
                 workers=1, progress=False, device_kind="cpu")
    res = finetune.run(params, *args, tmp_path / "b.pt", tmp_path / "b.json", tmp_path / "cb",
                       stop_after_epochs=1, workers=1, progress=False, device_kind="cpu")
    assert res == {"interrupted_after_epoch": 1}
    finetune.run(params, *args, tmp_path / "b.pt", tmp_path / "b.json", tmp_path / "cb",
                 workers=1, progress=False, device_kind="cpu")
    a = classifier.load(tmp_path / "a.pt").state_dict()
    b = classifier.load(tmp_path / "b.pt").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)


def _finetune_with(tmp_path, root, name, stop=None, **finetune_keys):
    raw = Params.load(root / "params.yaml").data
    params = Params({**raw, "finetune": {**raw["finetune"], **finetune_keys}})
    return finetune.run(params, root / "splits", root / "degraded", root / "encoder.pt",
                        tmp_path / f"{name}.pt", tmp_path / f"{name}.json", tmp_path / name,
                        stop_after_epochs=stop, workers=1, progress=False, device_kind="cpu")


def _weights(path):
    return classifier.load(path).state_dict()


def test_finetune_select_last_and_ema_keep_the_end_weights_or_their_average(tmp_path, tiny_models):
    last = _finetune_with(tmp_path, tiny_models, "last", select="last")
    assert last["select"] == "last" and last["selected_val_kappa"] == last["history"][-1]["kappa"]
    # EMA with decay 0 is the last step's weights and BatchNorm statistics
    _finetune_with(tmp_path, tiny_models, "ema0", select="ema", ema_decay=0.0)
    a, b = _weights(tmp_path / "last.pt"), _weights(tmp_path / "ema0.pt")
    for k in a:
        torch.testing.assert_close(a[k].float(), b[k].float(), atol=1e-6, rtol=0)
    # decay 0.5: an average that differs from the end weights, resumed to the same values
    ema = _finetune_with(tmp_path, tiny_models, "ema", select="ema", ema_decay=0.5)
    assert ema["select"] == "ema" and -1 <= ema["selected_val_kappa"] <= 1
    c = _weights(tmp_path / "ema.pt")
    assert any(not torch.allclose(a[k].float(), c[k].float()) for k in a if a[k].is_floating_point())
    assert _finetune_with(tmp_path, tiny_models, "ema_r", stop=1, select="ema", ema_decay=0.5) == \
        {"interrupted_after_epoch": 1}
    _finetune_with(tmp_path, tiny_models, "ema_r", select="ema", ema_decay=0.5)
    d = _weights(tmp_path / "ema_r.pt")
    for k in c:
        torch.testing.assert_close(c[k].float(), d[k].float(), atol=1e-6, rtol=0)


def test_multilabel_chest_path_end_to_end(tmp_path):
    """Synthetic chest profile: greyscale, 8 diseases, BCE, per-label kappa and AUROC."""
    params = Params.load(write_params(tmp_path / "params.yaml", {
        "synthetic": {"profile": "chest", "n_train": 40, "n_test": 24, "n_aux": 4},
        "pretrain": {"method": "none"}, "evaluate": {"bootstrap": 20, "gradcam_images": 2}}))
    prepare.run(params, tmp_path / "prepared", workers=1, progress=False)
    degrade.run(params, tmp_path / "prepared", tmp_path / "degraded", None, workers=1,
                progress=False)
    split.run(params, tmp_path / "degraded" / "manifest.parquet", tmp_path / "splits", None)
    pretrain.run(params, tmp_path / "nostore", tmp_path / "degraded" / "dataset.json",
                 tmp_path / "encoder.pt", tmp_path / "pretrain.json", tmp_path / "ck",
                 progress=False, device_kind="cpu")
    finetune.run(params, tmp_path / "splits", tmp_path / "degraded", tmp_path / "encoder.pt",
                 tmp_path / "clf.pt", tmp_path / "ft.json", tmp_path / "ftck", workers=1,
                 progress=False, device_kind="cpu")
    model = classifier.load(tmp_path / "clf.pt")
    assert model.cfg.task == "multilabel" and model.cfg.outputs == 8 and model.cfg.init == "none"
    res = evaluate.run(params, tmp_path / "splits", tmp_path / "degraded", tmp_path / "clf.pt",
                       tmp_path / "eval.json", tmp_path / "live", tmp_path / "cam.png",
                       workers=1, progress=False)
    for key in ("kappa", "accuracy", "auroc"):
        assert key in res["overall"]
    assert 0 <= res["overall"]["auroc"] <= 1
    assert list((tmp_path / "live" / "plots" / "sklearn" / "roc").glob("*.json"))


def test_finetune_is_bitwise_deterministic_per_seed_on_one_machine(tmp_path, tiny_models):
    # the benchmark's premise: on one machine the same params give the same model
    # (fixed threads; cross-machine differences come from the kernels, docs/benchmark.md)
    _finetune_with(tmp_path, tiny_models, "s0a", epochs=1, seed=0)
    _finetune_with(tmp_path, tiny_models, "s0b", epochs=1, seed=0)
    _finetune_with(tmp_path, tiny_models, "s1", epochs=1, seed=1)
    a, b, c = (_weights(tmp_path / f"{n}.pt") for n in ("s0a", "s0b", "s1"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
