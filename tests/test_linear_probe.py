"""linear_probe: BatchNorm re-estimation, C by cross-validation on train, the stage itself."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from comcl.common.params import Params
from comcl.common.placement import Placement
from comcl.diagnosis import linear_probe, logistic_probe
from comcl.experiments import compare
from conftest import deep_update


def test_batchnorm_is_reestimated_to_the_mean_and_variance_over_all_images():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    images = np.random.default_rng(0).integers(0, 255, (10, 8, 8, 3), dtype=np.uint8)
    logistic_probe.reestimate_batchnorm(net, images, 8, Placement.resolve(torch.device("cpu")),
                                      batch=3)
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        from comcl.imaging import augment
        act = net[0](augment.plain(torch.from_numpy(images).permute(0, 3, 1, 2), 8))
    assert not net.training
    # cumulative average of per-batch means (batches of 3, 3, 3, 1) over 4 batches
    means = torch.stack([act[i:i + 3].mean((0, 2, 3)) for i in range(0, 10, 3)]).mean(0)
    assert torch.allclose(net[1].running_mean, means, atol=1e-5)
    assert x.shape[0] == 10


def test_logistic_regression_picks_c_by_cross_validation_and_separates_classes():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 30)
    x = rng.normal(size=(90, 5)) + 3 * np.eye(5)[y]
    model = logistic_probe.fit_logistic(x, y, [0.01, 1.0, 100.0], folds=3, seed=0)
    assert model.C in (0.01, 1.0, 100.0)
    assert (model.predict(x) == y).mean() > 0.95
    prob = logistic_probe.class_probabilities(model, x[:4], np.unique(y), 5)
    assert prob.shape == (4, 5) and np.allclose(prob.sum(1), 1) and (prob[:, 3:] == 0).all()


def test_kappa_scoring_picks_the_c_with_the_best_mean_fold_kappa_of_a_naive_loop():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import cohen_kappa_score
    from sklearn.model_selection import StratifiedKFold
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2, 3, 4], 16)
    x = rng.normal(size=(80, 40)) + 0.6 * y[:, None] * (np.arange(40) < 3)
    cs = [1e-4, 1e-2, 1.0]
    model = logistic_probe.fit_logistic(x, y, cs, folds=4, seed=1, scoring="kappa")
    folds = list(StratifiedKFold(4, shuffle=True, random_state=1).split(x, y))
    mean = {c: np.mean([cohen_kappa_score(
        y[te], LogisticRegression(C=c, max_iter=2000).fit(x[tr], y[tr]).predict(x[te]),
        weights="quadratic") for tr, te in folds]) for c in cs}
    assert model.C == max(cs, key=lambda c: mean[c])
    # log loss is a different criterion on the same folds: here it prefers another C
    assert logistic_probe.fit_logistic(x, y, cs, folds=4, seed=1, scoring="log_loss").C != model.C


def test_an_unknown_scoring_is_a_param_error_naming_the_key(tiny_models, tmp_path):
    from comcl.common.errors import ParamError
    base = json.loads(json.dumps(Params.load(tiny_models / "params.yaml").data))
    params = Params(deep_update(base, {"linear_probe": {"scoring": "accuracy"}}))
    with pytest.raises(ParamError, match="linear_probe.scoring"):
        linear_probe.run(params, tiny_models / "splits", tiny_models / "degraded",
                         tiny_models / "encoder.pt", tmp_path / "lp.json", workers=1,
                         progress=False)
    assert not (tmp_path / "lp.json").exists()


def test_linear_probe_stage_reports_test_metrics_per_quality(tiny_models, tmp_path):
    base = json.loads(json.dumps(Params.load(tiny_models / "params.yaml").data))
    params = Params(deep_update(base, {"linear_probe": {
        "image_size": 32, "Cs": [0.1, 1.0], "cv_folds": 2, "label_fraction": 1.0,
        "bootstrap": 20, "seed": 0}}))
    out = tmp_path / "linear_probe.json"
    preds = tmp_path / "linear_probe_predictions.parquet"
    res = linear_probe.run(params, tiny_models / "splits", tiny_models / "degraded",
                           tiny_models / "encoder.pt", out, workers=1, progress=False,
                           predictions_out=preds)
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    # the per-image predictions give back the reported metrics (what compare/claims read)
    run = compare.load_run(str(preds))
    rows = np.arange(len(run.image_id))
    assert len(rows) == 20 and set(run.quality) <= {"high", "low"}
    assert compare.config_metric([run], rows, np.ones(len(rows)))["kappa"] == \
        pytest.approx(res["overall"]["kappa"], abs=1e-3)
    assert {"overall", "high_quality", "low_quality"} <= set(res)
    assert res["overall"]["images"] == 20 and res["chosen_C"]["C"] in (0.1, 1.0)
    assert -1 <= res["overall"]["kappa"] <= 1


def test_probe_scoring_writes_what_the_stage_writes_for_each_scoring(tiny_models, tmp_path):
    import yaml
    from click.testing import CliRunner
    from comcl.experiments import probe_scoring
    lp = {"image_size": 32, "Cs": [0.01, 1.0], "cv_folds": 2, "label_fraction": 1.0,
          "bootstrap": 20, "seed": 0}
    base = json.loads(json.dumps(Params.load(tiny_models / "params.yaml").data))
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(deep_update(base, {"linear_probe": lp})))
    res = CliRunner().invoke(probe_scoring.main, [
        "--params", str(params_file), "--splits", str(tiny_models / "splits"),
        "--degraded", str(tiny_models / "degraded"),
        "--encoder", f"tiny={tiny_models / 'encoder.pt'}", "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    for scoring in logistic_probe.SCORINGS:
        stage = linear_probe.run(
            Params(deep_update(json.loads(json.dumps(base)),
                               {"linear_probe": {**lp, "scoring": scoring}})),
            tiny_models / "splits", tiny_models / "degraded", tiny_models / "encoder.pt",
            tmp_path / f"{scoring}.json", workers=1, progress=False)
        written = json.loads((tmp_path / "out" / "tiny" / scoring / "linear_probe.json").read_text())
        assert written == json.loads(json.dumps(stage))
        assert (tmp_path / "out" / "tiny" / scoring / "linear_probe_predictions.parquet").exists()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report["tiny"]) == set(logistic_probe.SCORINGS)


def test_a_random_init_encoder_is_drawn_from_the_probe_seed(tiny_models, tmp_path):
    """The baseline (``pretrain.method: none``) stores no weights; its probe must not read
    whatever state torch's global generator is in (the same params gave 0.145 and 0.194)."""
    from comcl.pretraining.encoder import load_encoder, save_encoder
    backbone = load_encoder(tiny_models / "encoder.pt")["backbone"]
    save_encoder(None, backbone, "none", tmp_path / "none.pt")
    base = json.loads(json.dumps(Params.load(tiny_models / "params.yaml").data))
    lp = {"image_size": 32, "Cs": [0.1, 1.0], "cv_folds": 2, "label_fraction": 1.0,
          "bootstrap": 20, "seed": 0}
    out = {}
    for name, seed, noise in (("a", 0, 1), ("b", 0, 7), ("c", 3, 1)):
        torch.manual_seed(noise)   # another global state before the run
        torch.rand(noise * 100)
        linear_probe.run(Params(deep_update(json.loads(json.dumps(base)),
                                            {"linear_probe": {**lp, "seed": seed}})),
                         tiny_models / "splits", tiny_models / "degraded", tmp_path / "none.pt",
                         tmp_path / f"{name}.json", workers=1, progress=False,
                         predictions_out=tmp_path / f"{name}.parquet")
        out[name] = pd.read_parquet(tmp_path / f"{name}.parquet")
    assert len(out["a"]) == 20
    assert out["a"].equals(out["b"])       # same seed: the same init, whatever came before
    assert not out["a"].equals(out["c"])   # another seed: another init
