"""The paper's claims decided from paired comparisons of grid cells (comcl.experiments.claims)."""
import numpy as np
import pytest

from comcl.common.errors import DataError
from comcl.experiments import claims
from comcl.experiments.compare import Run


def _run(name, labels, preds, quality):
    n = len(labels)
    return Run(name, np.array([f"i{i}" for i in range(n)]), np.asarray(quality),
               np.asarray(labels)[:, None], np.asarray(preds)[:, None], 5)


def _cells(rng, n=200):
    labels = rng.integers(0, 5, n)
    quality = np.where(np.arange(n) % 3 == 0, "low", "high")
    noisy = lambda p: np.where(rng.random(n) < p, rng.integers(0, 5, n), labels)  # noqa: E731
    good = [_run(f"good-s{k}", labels, noisy(0.1), quality) for k in range(3)]
    bad = [_run(f"bad-s{k}", labels, noisy(0.7), quality) for k in range(3)]
    return labels, quality, good, bad


def _better_on_lq(rng, n=300):
    """(CoMCL runs, baseline runs): CoMCL = the baseline on high-quality images, far better
    on low-quality ones."""
    labels, quality, good, bad = _cells(rng, n)
    lq = quality == "low"
    comcl = [_run(f"c{k}", labels, np.where(lq, g.preds[:, 0], b.preds[:, 0]), quality)
             for k, (g, b) in enumerate(zip(good, bad))]
    return comcl, bad


def test_a_better_cell_is_decided_for_a_worse_one_against_and_a_cell_with_itself_undecided():
    rng = np.random.default_rng(0)
    _, _, good, bad = _cells(rng)
    cells = {"t1-native-comcl": good, "t1-native-baseline": bad,       # CoMCL far better
             "t1-native-basiccl": good,                                # the same runs: A/A
             "t2-no-spl": [_run("x", r.labels[:, 0], r.preds[:, 0], r.quality) for r in good],
             "t3-v1": good, "t3-v2": bad}                              # v2 worse than v1
    recs = {r["claim"]: r for r in claims.decide(cells, n_boot=300)}
    assert recs["CoMCL > baseline (no pretraining)"]["verdict"] == "decided for"
    aa = recs["CoMCL > basic CL (SimCLR)"]
    assert aa["parts"]["overall"]["delta"] == 0.0 and aa["verdict"] == "undecided"
    assert aa["parts"]["overall"]["ci95"][0] <= 0 <= aa["parts"]["overall"]["ci95"][1]
    assert recs["CoMCL > CoMCL w/o SPL"]["verdict"] == "undecided"
    assert recs["v2 (L1 + L2) > v1 (L2)"]["verdict"] == "decided against"
    assert recs["CoMCL > CoMCL w/o multi-level"]["verdict"] == "not run"
    assert recs["CoMCL > baseline (no pretraining)"]["seeds"] == [3, 3]
    table = claims.markdown(list(recs.values()))
    assert "**decided for**" in table and "**not run**" in table


def test_the_low_quality_claim_compares_the_gain_on_lq_with_the_gain_on_hq():
    rng = np.random.default_rng(1)
    comcl, bad = _better_on_lq(rng)
    def lq_claim(recs):
        return next(r for r in recs if r["claim"].startswith("CoMCL's gain"))
    rec = lq_claim(claims.decide({"t1-native-comcl": comcl, "t1-native-baseline": bad}, n_boot=300))
    assert rec["verdict"] == "decided for"
    assert rec["parts"]["low_quality - high_quality"]["delta"] > 0.3
    same = lq_claim(claims.decide({"t1-native-comcl": bad, "t1-native-baseline": bad}, n_boot=300))
    assert same["verdict"] == "undecided"


def test_table1_ratio_claims_are_decided_on_an_all_low_quality_test_set():
    rng = np.random.default_rng(2)
    labels, _, good, bad = _cells(rng)
    all_lq = lambda runs: [_run(r.name, labels, r.preds[:, 0], ["low"] * len(labels))  # noqa: E731
                           for r in runs]
    recs = {r["claim"]: r for r in claims.decide(
        {"t1-100-comcl": all_lq(good), "t1-100-baseline": all_lq(bad)}, n_boot=300)}
    rec = recs["CoMCL > baseline at 100% low quality"]
    assert rec["verdict"] == "decided for" and rec["seeds"] == [3, 3]
    assert set(rec["parts"]) == {"overall", "low_quality"}     # no high-quality image
    assert rec["parts"]["overall"] == rec["parts"]["low_quality"]
    assert recs["CoMCL > baseline at 70% low quality"]["verdict"] == "not run"
    assert recs["CoMCL > basic CL at 100% low quality"]["verdict"] == "not run"


def test_robustness_claim_pairs_the_same_images_across_ratios():
    rng = np.random.default_rng(3)
    labels, quality, good, bad = _cells(rng, 300)
    worse = [_run(f"w{k}", labels, np.where(rng.random(300) < 0.9, rng.integers(0, 5, 300),
                                            labels), ["low"] * 300) for k in range(3)]
    def lq(runs):
        return [_run(r.name, labels, r.preds[:, 0], ["low"] * 300) for r in runs]
    # CoMCL keeps its predictions at 100% LQ, the baseline gets worse: CoMCL loses less
    cells = {"t1-native-comcl": good, "t1-native-baseline": bad,
             "t1-100-comcl": lq(good), "t1-100-baseline": worse}
    recs = {r["claim"]: r for r in claims.decide(cells, n_boot=300)}
    rec = recs["CoMCL loses less than the baseline at 100% low quality (vs native)"]
    part = rec["parts"]["ratio lead - native lead"]
    assert rec["verdict"] == "decided for" and part["delta"] > 0.1
    assert recs["CoMCL loses less than the baseline at 70% low quality (vs native)"][
        "verdict"] == "not run"
    # nothing changes with the ratio: the interval holds 0
    same = {**cells, "t1-100-baseline": lq(bad)}
    rec = {r["claim"]: r for r in claims.decide(same, n_boot=300)}[rec["claim"]]
    assert rec["parts"]["ratio lead - native lead"]["delta"] == 0.0
    assert rec["verdict"] == "undecided"
    # another test set at 100%: a clear error naming both runs
    shifted = [_run(f"o{k}", np.roll(labels, 1), labels, ["low"] * 300) for k in range(2)]
    other = {**cells, "t1-100-comcl": shifted[:1], "t1-100-baseline": shifted[1:]}
    with pytest.raises(DataError, match="not evaluated on the same test images"):
        claims.decide(other, n_boot=10)


def test_ablation_claims_at_a_ratio_are_listed_only_where_they_ran():
    rng = np.random.default_rng(4)
    comcl, bad = _better_on_lq(rng)
    cells = {"t1-70-comcl": comcl, "t2-70-no-spl": bad, "t1-70-baseline": bad}
    recs = {r["claim"]: r for r in claims.decide(cells, n_boot=300)}
    rec = recs["CoMCL > CoMCL w/o SPL at 70% low quality"]
    assert (rec["better"], rec["worse"], rec["verdict"]) == ("t1-70-comcl", "t2-70-no-spl",
                                                              "decided for")
    assert rec["seeds"] == [3, 3]
    # the native claim is still listed (not run); the other ratio claims are not listed
    assert recs["CoMCL > CoMCL w/o SPL"]["verdict"] == "not run"
    assert "CoMCL > CoMCL w/o multi-level at 70% low quality" not in recs
    assert not any("100% low quality" in c and "w/o" in c for c in recs)
    # the gain-on-LQ claim at 70%: CoMCL = the baseline on HQ images, better on LQ ones
    gain = recs["CoMCL's gain over the baseline is larger on low-quality images, at 70% "
                "low quality"]
    assert gain["verdict"] == "decided for"
    assert gain["parts"]["low_quality - high_quality"]["delta"] > 0.3
    assert claims.at_ratio("t1-native-basiccl", "100") == "t1-100-basiccl"
    assert claims.at_ratio("t3-v1", "native") == "t3-v1"


def test_the_claims_table_marks_intervals_that_hold_no_seed_variation():
    rng = np.random.default_rng(6)
    labels, quality, good, bad = _cells(rng)
    cells = {"t1-native-comcl": good, "t1-native-baseline": bad[:1],   # 3 seeds vs 1
             "t1-native-basiccl": bad[1:2], "t1-70-comcl": good[:1], "t1-70-baseline": bad[:1]}
    recs = {r["claim"]: r for r in claims.decide(cells, n_boot=100)}
    assert recs["CoMCL > baseline (no pretraining)"]["interval_over"] == \
        "images and the seeds of one side"
    assert recs["CoMCL > baseline at 70% low quality"]["interval_over"] == "images only"
    robust = recs["CoMCL loses less than the baseline at 70% low quality (vs native)"]
    assert robust["seeds"] == [1, 1, 3, 1]
    assert robust["interval_over"] == "images and the seeds of some cells"
    table = claims.markdown(list(recs.values()))
    row = next(line for line in table.splitlines() if line.startswith("| CoMCL > baseline at 70%"))
    assert row.count(" ¹") == 3                       # overall, high and low quality
    assert "(1 vs 1; native 3 vs 1)" in table
    for note in ("¹ One seed a side", "² One side has one seed", "³ Some of the four cells"):
        assert note in table
    full = {"t1-native-comcl": good, "t1-native-baseline": bad}
    plain = claims.markdown(claims.decide(full, n_boot=100))
    assert not any(m in plain for m in "¹²³")
