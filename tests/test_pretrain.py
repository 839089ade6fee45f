"""Pretraining: sampler, views, augmentation, variants, resume, and DDP equivalence."""
import json
import socket
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, run_cmd, write_params

from comcl.common.params import Params
from comcl.detection import patch_store
from comcl.imaging import augment
from comcl.pretraining.encoder import load_encoder
from comcl.pretraining import pool_sampler
from comcl.pretraining.pool_sampler import (POOL_IDS, BatchMaker, OneAhead, PoolSampler,
                                             degrade_patch)
from comcl.pretraining.pretrain import run

FAST = {}  # conftest.TINY already holds tiny pretraining settings


def pretrain_in(tmp_path, store, *overrides, stop_after=None, ckpt="ckpt"):
    params = Params.load(write_params(tmp_path / "params.yaml", FAST, *overrides))
    return run(params, store / "store", store / "degraded" / "dataset.json",
               tmp_path / "encoder.pt", tmp_path / "pretrain.json", tmp_path / ckpt,
               tmp_path / "live", stop_after=stop_after, progress=False, device_kind="cpu")


def test_sampler_draws_per_pool_from_every_pool_deterministically(tiny_patches):
    _, index = patch_store.load(tiny_patches / "store")
    sampler = PoolSampler(index, 2, seed=0)
    idx, pools = sampler.global_batch(5)
    for name, pid in POOL_IDS.items():
        if len(sampler.pools[name]):
            assert (pools == pid).sum() == 2
            assert (index["pool"].to_numpy()[idx[pools == pid]] == name).all()
    again, _ = PoolSampler(index, 2, seed=0).global_batch(5)
    assert np.array_equal(idx, again)
    # a full pass visits every patch of the largest pool once
    big = max(sampler.pools, key=lambda k: len(sampler.pools[k]))
    seen = np.concatenate([sampler._take(big, s) for s in range(sampler.steps_per_pass())])
    assert set(seen[: len(sampler.pools[big])]) == set(sampler.pools[big])
    # ranks split the global batch exactly
    parts = [sampler.local_positions(pools, r, 2) for r in range(2)]
    assert sorted(np.concatenate(parts)) == list(range(len(idx)))


def test_second_view_is_degraded_only_when_flagged(tiny_patches):
    arr, index = patch_store.load(tiny_patches / "store")
    sampler = PoolSampler(index, 2, seed=0)
    b = BatchMaker(arr, sampler, 1.0, 0, "fundus", 128)(0)
    n = len(b.positions)
    assert b.views.shape == (2 * n, 3, 48, 48) and b.views.dtype == torch.uint8
    hq = np.isin(b.pool[:n].numpy(), (POOL_IDS["HL"], POOL_IDS["HH"]))
    assert hq.any() and (~hq).any()
    # high-quality patches: degraded (p = 1); low-quality ones are never degraded twice
    assert all(torch.equal(b.views[i], b.views[n + i]) != hq[i] for i in range(n))
    b0 = BatchMaker(arr, sampler, 0.0, 0, "fundus", 128)(0)
    assert torch.equal(b0.views[:n], b0.views[n:])
    assert torch.equal(b0.instance, torch.from_numpy(np.concatenate([b0.positions] * 2)))
    # two ranks: the global labels are each rank's (view 1, view 2) in rank order
    ranks = [BatchMaker(arr, sampler, 0.0, 0, "fundus", 128, r, 2)(0) for r in range(2)]
    assert torch.equal(ranks[0].instance, ranks[1].instance)
    want = np.concatenate([np.concatenate([r.positions] * 2) for r in ranks])
    assert torch.equal(ranks[0].instance, torch.from_numpy(want))


def test_threaded_quality_views_and_one_ahead_batches_equal_the_plain_ones(tiny_patches):
    from comcl.common.seeding import rng_for
    arr, index = patch_store.load(tiny_patches / "store")
    make = BatchMaker(arr, PoolSampler(index, 4, seed=0), 1.0, 0, "fundus", 128)
    for step in range(2):
        b = make(step)
        n = len(b.positions)
        for j, pos in enumerate(b.positions):   # one patch after the other, by hand
            first = b.views[j].permute(1, 2, 0).numpy()
            want = (degrade_patch(first, rng_for(0, "degrade-view", step, int(pos)), "fundus",
                                  128) if int(b.pool[j]) in pool_sampler.HIGH_QUALITY_POOLS
                    else first)
            assert np.array_equal(b.views[n + j].permute(1, 2, 0).numpy(), want)
    ahead = OneAhead(make, total=5)
    got = [ahead(s).views for s in (0, 1, 2, 4, 0)]   # in order, then a jump, then back
    assert all(torch.equal(g, make(s).views) for g, s in zip(got, (0, 1, 2, 4, 0)))


def test_degrade_patch_is_seeded_and_keeps_the_shape():
    patch = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    a = degrade_patch(patch, np.random.default_rng(1), "fundus", 512)
    b = degrade_patch(patch, np.random.default_rng(1), "fundus", 512)
    assert a.shape == patch.shape and np.array_equal(a, b) and not np.array_equal(a, patch)


def test_augmentation_is_per_sample_and_split_invariant():
    cfg = augment.AugmentConfig(24)
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    p = augment.sample_params(6, cfg, torch.Generator().manual_seed(0))
    full = augment.augment(x, p, cfg)
    half = augment.augment(x[3:], augment.select(p, slice(3, 6)), cfg)
    assert full.shape == (6, 3, 24, 24)
    torch.testing.assert_close(full[3:], half)
    ident = {"w": torch.ones(1, dtype=torch.float64), "h": torch.ones(1, dtype=torch.float64),
             "cx": torch.zeros(1, dtype=torch.float64), "cy": torch.zeros(1, dtype=torch.float64),
             "angle": torch.zeros(1, dtype=torch.float64), "hflip": torch.tensor([False]),
             "vflip": torch.tensor([False]), "brightness": torch.ones(1, dtype=torch.float64),
             "contrast": torch.ones(1, dtype=torch.float64),
             "saturation": torch.ones(1, dtype=torch.float64), "grey": torch.tensor([False])}
    same = augment.augment(x[:1], ident, augment.AugmentConfig(32))
    torch.testing.assert_close(same, augment.plain(x[:1], 32), atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", ["comcl", "single_level", "simclr", "moco"])
def test_every_method_trains_and_writes_an_encoder(tmp_path, tiny_patches, method):
    res = pretrain_in(tmp_path, tiny_patches, {"pretrain": {"method": method}})
    assert res["steps"] == 4 and np.isfinite(res["final_loss"])
    blob = load_encoder(tmp_path / "encoder.pt")
    assert blob["method"] == method and "conv1.weight" in blob["state_dict"]
    metrics = json.loads((tmp_path / "pretrain.json").read_text())
    assert metrics["method"] == method and "probe_last" in metrics
    assert (tmp_path / "live" / "metrics.json").exists()


def test_method_none_writes_a_random_init_marker(tmp_path, tiny_patches):
    pretrain_in(tmp_path, tiny_patches, {"pretrain": {"method": "none"}})
    blob = load_encoder(tmp_path / "encoder.pt")
    assert blob["method"] == "none" and "state_dict" not in blob
    # every DVC output of the stage exists (an experiment fails otherwise), nothing stale
    assert (tmp_path / "ckpt").is_dir() and not any((tmp_path / "ckpt").iterdir())
    assert json.loads((tmp_path / "live" / "metrics.json").read_text()) == {"method": "none"}
    assert (tmp_path / "live" / "plots").is_dir()


def test_levels_and_spl_switch_the_logged_terms(tmp_path, tiny_patches):
    pretrain_in(tmp_path, tiny_patches, {"pretrain": {"levels": {"l1": False, "l2": True, "l3": False}},
                                         "spl": {"enabled": False}})
    plots = tmp_path / "live" / "plots" / "metrics"
    names = {p.stem for p in (plots / "train").glob("*.tsv")}
    assert "loss_l2" in names and "loss_l1" not in names and "loss_l3" not in names
    # the held-out objective measures every level, trained or not
    assert {p.stem for p in (plots / "heldout").glob("ratio_*.tsv")} >= {"ratio_l2"}
    k = np.loadtxt(plots / "spl" / "k_l2.tsv", skiprows=1, usecols=1)
    n = np.loadtxt(plots / "spl" / "negatives_l2.tsv", skiprows=1, usecols=1)
    assert (k == n).all()  # SPL off: every negative


def test_spl_k_grows_over_training(tmp_path, tiny_patches):
    pretrain_in(tmp_path, tiny_patches,
                {"spl": {"enabled": True, "min_fraction": 0.0, "ramp_fraction": 1.0}})
    plots = tmp_path / "live" / "plots" / "metrics" / "spl"
    k = np.loadtxt(plots / "k_l1.tsv", skiprows=1, usecols=1)
    n = np.loadtxt(plots / "negatives_l1.tsv", skiprows=1, usecols=1)
    steps = np.loadtxt(plots / "k_l1.tsv", skiprows=1, usecols=0)
    assert np.array_equal(k, np.ceil(n * (steps + 1) / 4))


@pytest.mark.parametrize("stop_after", [2, 3])
def test_resume_after_interruption_gives_the_same_weights(tmp_path, tiny_patches, stop_after):
    straight = tmp_path / "straight"
    straight.mkdir()
    pretrain_in(straight, tiny_patches)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    res = pretrain_in(resumed, tiny_patches, stop_after=stop_after)
    assert res["interrupted_at"] == stop_after and not (resumed / "encoder.pt").exists()
    pretrain_in(resumed, tiny_patches)
    a = load_encoder(straight / "encoder.pt")["state_dict"]
    b = load_encoder(resumed / "encoder.pt")["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    ha = json.loads(torch.load(straight / "ckpt" / "last.pt", weights_only=True)["history"])
    hb = json.loads(torch.load(resumed / "ckpt" / "last.pt", weights_only=True)["history"])
    assert ha["loss"] == pytest.approx(hb["loss"], abs=1e-6)


def test_changed_params_do_not_resume_a_foreign_checkpoint(tmp_path, tiny_patches, capsys):
    pretrain_in(tmp_path, tiny_patches, stop_after=2)
    pretrain_in(tmp_path, tiny_patches, {"pretrain": {"lr": 0.0005}})
    assert "starting afresh" in capsys.readouterr().out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_losses(tmp_path, store, nproc: int) -> list[float]:
    params = write_params(tmp_path / f"p{nproc}.yaml", FAST,
                          {"pretrain": {"epochs": 1, "steps_per_epoch": 3, "quality_view_p": 0.5}})
    out = tmp_path / f"run{nproc}"
    run_cmd([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
             "--master_port", str(free_port()), "-m", "stages.pretrain", "--params", str(params),
             "--store", str(store / "store"), "--dataset-info",
             str(store / "degraded" / "dataset.json"), "--encoder", str(out / "encoder.pt"),
             "--metrics", str(out / "pretrain.json"), "--checkpoints", str(out / "ckpt"),
             "--live-dir", "", "--device", "cpu"],
            cwd=REPO, env={"OMP_NUM_THREADS": "1"}, timeout=600)
    state = torch.load(out / "ckpt" / "last.pt", weights_only=True)
    return json.loads(state["history"])["loss"]


def test_two_gloo_processes_give_the_one_process_loss(tmp_path, tiny_patches):
    """Same global batch, same weights: the same loss. Later steps agree more loosely:
    Adam divides each gradient by its magnitude, so float rounding in near-zero
    gradients (summed in a different order over two processes) is amplified."""
    one = torchrun_losses(tmp_path, tiny_patches, 1)
    two = torchrun_losses(tmp_path, tiny_patches, 2)
    assert len(one) == len(two) == 3
    assert two[0] == pytest.approx(one[0], rel=1e-5)
    for a, b in zip(one[1:], two[1:]):
        assert b == pytest.approx(a, rel=5e-3)


@pytest.mark.parametrize("shape", [(6, 4, 5, 5), (6, 4)])
def test_dist_batchnorm_equals_batchnorm_in_one_process(shape):
    from comcl.common.distributed import convert_batchnorm
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(4) if len(shape) == 4 else torch.nn.BatchNorm1d(4)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    dbn = convert_batchnorm(torch.nn.Sequential(bn))[0]
    assert type(dbn).__name__.startswith("DistBatchNorm")
    bn_ref = torch.nn.Sequential(bn)[0]
    x = torch.randn(*shape, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    ref = torch.nn.BatchNorm2d(4) if len(shape) == 4 else torch.nn.BatchNorm1d(4)
    ref.load_state_dict(bn_ref.state_dict())
    a, b = ref(x), dbn(x2)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    (a * torch.arange(a.numel()).view_as(a)).sum().backward()
    (b * torch.arange(b.numel()).view_as(b)).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ref.running_var, dbn.running_var, atol=1e-5, rtol=1e-5)
