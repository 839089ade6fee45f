"""The paper's claims decided from paired comparisons of grid cells (comcl.experiments.claims)."""
import numpy as np

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
    labels, quality, good, bad = _cells(rng, 300)
    lq = quality == "low"
    # CoMCL = the baseline on high-quality images, far better on low-quality ones
    comcl = [_run(f"c{k}", labels, np.where(lq, g.preds[:, 0], b.preds[:, 0]), quality)
             for k, (g, b) in enumerate(zip(good, bad))]
    rec = claims.decide({"t1-native-comcl": comcl, "t1-native-baseline": bad}, n_boot=300)[-1]
    assert rec["claim"].startswith("CoMCL's gain") and rec["verdict"] == "decided for"
    assert rec["parts"]["low_quality - high_quality"]["delta"] > 0.3
    same = claims.decide({"t1-native-comcl": bad, "t1-native-baseline": bad}, n_boot=300)[-1]
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
