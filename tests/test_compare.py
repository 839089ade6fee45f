"""The paired comparison of experiments: bootstrap, permutation, test-set check, CLI."""
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import cohen_kappa_score

from comcl.common.errors import DataError
from comcl.diagnosis import predictions
from comcl.experiments import compare as cmp


def run(name, labels, preds, quality=None, k=5):
    n = len(labels)
    quality = np.array(quality or ["high"] * n)
    return cmp.Run(name, np.array([f"img{i}" for i in range(n)]), quality,
                   np.asarray(labels)[:, None], np.asarray(preds)[:, None], k)


def test_weighted_confusion_metrics_equal_scikit_learn_on_the_resampled_images():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 40), rng.integers(0, 5, 40)
    draw = rng.integers(0, 40, 40)
    w = np.bincount(draw, minlength=40).astype(float)
    got = cmp.metric_values(y[:, None], p[:, None], 5, w)
    assert got["kappa"] == pytest.approx(cohen_kappa_score(y[draw], p[draw], labels=range(5),
                                                           weights="quadratic"))
    assert got["accuracy"] == pytest.approx(np.mean(y[draw] == p[draw]))


def test_paired_bootstrap_equals_a_naive_loop_with_the_same_draws():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 30)
    a = [run("a", y, np.where(rng.random(30) < 0.7, y, rng.integers(0, 5, 30)))]
    b = [run("b", y, rng.integers(0, 5, 30))]
    rows = np.arange(30)
    boot = cmp.paired_bootstrap(a, b, rows, 50, np.random.default_rng(7))
    naive_rng = np.random.default_rng(7)
    for i in range(50):
        d = naive_rng.integers(0, 30, 30)
        want = np.mean(y[d] == a[0].preds[d, 0]) - np.mean(y[d] == b[0].preds[d, 0])
        assert boot["accuracy"][i] == pytest.approx(want)


def test_hand_computed_case_always_right_against_always_wrong():
    # 3 images: a right on all, b wrong on all. Accuracy difference 1 in every resample;
    # exact permutation over the 2^3 swaps: |diff| = |3 - 2|S|| / 3 >= 1 only for S empty
    # or all, so p = 2/8.
    y = [0, 1, 2]
    a, b = [run("a", y, y)], [run("b", y, [1, 2, 0])]
    rows = np.arange(3)
    boot = cmp.paired_bootstrap(a, b, rows, 200, np.random.default_rng(0))
    assert np.all(boot["accuracy"] == 1.0)
    p = cmp.paired_permutation(a, b, rows, 2000, np.random.default_rng(0))
    assert p["accuracy"] == pytest.approx(0.25)


def test_a_configuration_against_itself_gives_zero_in_the_interval_and_p_one():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 5, 60)
    q = ["high"] * 30 + ["low"] * 30
    seeds = [run(f"s{i}", y, rng.integers(0, 5, 60), q) for i in range(3)]
    report = cmp.compare({"A": seeds, "A again": seeds}, n_boot=200, n_perm=200)
    for part in ("overall", "high_quality", "low_quality"):
        for m in cmp.METRICS:
            d = report["parts"][part]["vs_reference"]["A again"][m]
            assert d["delta"] == 0 and d["ci95"][0] <= 0 <= d["ci95"][1]
            assert d["p_permutation"] == 1.0
        assert report["parts"][part]["configs"]["A"]["kappa"]["sd"] is not None


def test_different_test_sets_are_an_error_naming_both():
    a, b = run("exp-a", [0, 1, 2], [0, 1, 2]), run("exp-b", [0, 1, 3], [0, 1, 2])
    with pytest.raises(DataError, match="exp-a and exp-b .*different test sets.*labels"):
        cmp.check_same_test_set([a, b])
    c = run("exp-c", [0, 1, 2], [0, 1, 2], ["high", "low", "high"])
    with pytest.raises(DataError, match="exp-a and exp-c .*quality labels"):
        cmp.check_same_test_set([a, c])


def _write(folder, y, pred, quality):
    test = pd.DataFrame({"image_id": [f"i{j}" for j in range(len(y))], "quality": quality})
    prob = np.eye(5)[pred]
    (folder / "metrics").mkdir(parents=True)
    predictions.write(predictions.frame("grading", list("01234"), test, np.array(y),
                                        np.array(pred), prob),
                      "grading", list("01234"), folder / "metrics" / "predictions.parquet")


def test_command_reads_folders_and_fails_on_different_test_sets(tmp_path):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 20)
    q = ["high", "low"] * 10
    _write(tmp_path / "base", y, rng.integers(0, 5, 20), q)
    _write(tmp_path / "new", y, y, q)
    _write(tmp_path / "other", (y + 1) % 5, y, q)
    res = CliRunner().invoke(cmp.main, [str(tmp_path / "base"), str(tmp_path / "new"),
                                        "--bootstrap", "100", "--permutations", "100",
                                        "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "low_quality (10)" in res.output and "kappa" in res.output
    res = CliRunner().invoke(cmp.main, [str(tmp_path / "base"), str(tmp_path / "other")])
    assert res.exit_code == 1
    assert "base" in res.output and "other" in res.output and "different test sets" in res.output


def test_protocol_linear_probe_reads_the_linear_probes_predictions(tmp_path):
    y = np.arange(10) % 5
    for name in ("a", "b"):
        _write(tmp_path / name, y, y, ["high"] * 10)          # the fine-tuned: all right
        folder = tmp_path / name / "metrics"
        frame = predictions.frame("grading", list("01234"), pd.DataFrame(
            {"image_id": [f"i{i}" for i in range(10)], "quality": ["high"] * 10}),
            y, (y + 1) % 5, np.full((10, 5), 0.2))
        predictions.write(frame, "grading", list("01234"),
                          folder / "linear_probe_predictions.parquet")
    run = cmp.load_run(str(tmp_path / "a"), file=cmp.PROTOCOLS["linear_probe"])
    assert (run.preds[:, 0] == (y + 1) % 5).all()
    res = CliRunner().invoke(cmp.main, [str(tmp_path / "a"), str(tmp_path / "b"),
                                        "--protocol", "linear_probe", "--bootstrap", "50",
                                        "--permutations", "50"])
    assert res.exit_code == 0, res.output
    missing = CliRunner().invoke(cmp.main, [str(tmp_path / "a"), str(tmp_path)])
    assert missing.exit_code == 1 and "no metrics/predictions.parquet" in missing.output


def test_with_several_seeds_the_runs_are_permuted_and_seeds_resampled():
    # 2 + 2 seeds: a's runs always right, b's always wrong. Of the C(4, 2) = 6 splits of
    # the pooled runs only the two that keep the groups give |diff| >= 1: p = 2/6.
    y = [0, 1, 2, 3]
    right, wrong = run("r", y, y), run("w", y, [1, 2, 3, 0])
    rows = np.arange(4)
    p = cmp.paired_permutation([right, right], [wrong, wrong], rows, 100,
                               np.random.default_rng(0))
    assert p["accuracy"] == pytest.approx(2 / 6)
    # Seeds that disagree widen the interval beyond what the images alone give.
    rng = np.random.default_rng(4)
    y = rng.integers(0, 5, 80)
    noisy = [run(f"s{i}", y, np.where(rng.random(80) < f, y, rng.integers(0, 5, 80)))
             for i, f in enumerate((0.3, 0.9))]
    ref = [run("ref", y, np.where(rng.random(80) < 0.6, y, rng.integers(0, 5, 80)))]
    both = cmp.paired_bootstrap(noisy, ref, np.arange(80), 300, np.random.default_rng(0))
    assert np.ptp(np.percentile(both["accuracy"], [2.5, 97.5])) > 0.2


def test_the_report_says_what_each_interval_is_over():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 5, 40)
    q = ["high"] * 20 + ["low"] * 20
    one = [run("a", y, rng.integers(0, 5, 40), q)]
    two = [run(f"b{i}", y, rng.integers(0, 5, 40), q) for i in range(2)]
    report = cmp.compare({"ref": one, "one": one, "two": two}, n_boot=50, n_perm=50)
    got = report["parts"]["overall"]["vs_reference"]
    assert got["one"]["kappa"]["interval_over"] == "images only"
    assert got["two"]["kappa"]["interval_over"] == "images and the seeds of one side"
    assert cmp.interval_over(two, two) == "images and seeds"
    text = cmp.markdown(report)
    assert "¹ One seed a side" in text and "² One side has one seed" in text
    both = cmp.markdown(cmp.compare({"ref": two, "again": two}, n_boot=50, n_perm=50))
    assert "¹" not in both and "²" not in both
