"""The held-out objective (chance value, all negatives), BN re-estimation, the probe's
per-quality numbers and the pixel-scale contract between pretraining and fine-tuning."""
import math

import numpy as np
import pytest
import torch
from test_pretrain import pretrain_in

from comcl.common.errors import ParamError
from comcl.common.placement import Placement
from comcl.detection import patch_store
from comcl.imaging import augment
from comcl.pretraining import contrastive, heldout, pixel_scale
from comcl.pretraining.contrastive import HH, HL, LH, LL
from comcl.pretraining.encoder import ContrastiveModel, build_backbone, load_encoder
from comcl.pretraining.pool_sampler import BatchMaker, PoolSampler

CPU = Placement(torch.device("cpu"))


@pytest.mark.parametrize("n_neg", [1, 5, 24])
def test_chance_is_log_one_plus_n_for_one_positive_and_n_negatives(n_neg):
    # L1: one lesion patch (two views: the anchor's single positive) and n_neg LH views
    pool = torch.tensor([HL, HL] + [LH] * n_neg)
    instance = torch.tensor([0, 0] + list(range(1, n_neg + 1)))
    assert heldout.chance_loss(pool, instance, "l1") == pytest.approx(math.log(1 + n_neg))
    # equal embeddings give it at any temperature
    z = torch.nn.functional.normalize(torch.ones(len(pool), 8), dim=1)
    loss, _ = contrastive.level_loss(z, pool, instance, "l1", temperature=0.07)
    assert float(loss) == pytest.approx(math.log(1 + n_neg), rel=1e-5)


def test_chance_averages_log_one_plus_n_over_anchors_of_a_mixed_batch():
    pool = torch.tensor([HL, LL, HH, LH, LH, HL, LL, HH, LH, LH])
    instance = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    for level in ("l1", "l2", "l3"):
        anchors, pos, neg = contrastive.level_masks(pool, instance, level)
        valid = pos.any(1) & neg.any(1)
        want = float(torch.log1p(neg.sum(1)[valid].float()).mean())
        assert heldout.chance_loss(pool, instance, level) == pytest.approx(want)


def _objective(tiny_patches, **kw):
    arr, index = patch_store.load(tiny_patches / "store")
    template = BatchMaker(arr, PoolSampler(index, 2, 0), 0.5, 0, "fundus", 128)
    held = np.ones(len(index), bool)
    return heldout.HeldOutObjective.from_store(
        index, held, per_pool=64, template=template, aug=augment.AugmentConfig(32),
        place=CPU, temperature=0.1, **kw), arr


def test_heldout_uses_every_negative_whatever_spl_keeps(tiny_patches):
    obj, _ = _objective(tiny_patches)
    torch.manual_seed(0)
    model = ContrastiveModel(build_backbone("resnet18")).eval()
    res = obj.evaluate(model)
    with torch.no_grad():
        z = model(obj.views)
    for level, vals in res.items():
        full, _ = contrastive.level_loss(z, obj.pool, obj.instance, level, 0.1, spl=None)
        spl, st = contrastive.level_loss(z, obj.pool, obj.instance, level, 0.1,
                                         spl={"step": 1, "total_steps": 100,
                                              "min_fraction": 0.0, "order": "easy_first"})
        assert vals["loss"] == pytest.approx(float(full), abs=1e-4)
        assert st["k"] < st["negatives"] and float(spl) != pytest.approx(float(full), abs=1e-3)
        assert vals["ratio"] == pytest.approx(vals["loss"] / vals["chance"], abs=1e-3)
    # the batch is fixed: two evaluations of the same model agree exactly
    assert obj.evaluate(model) == res


def test_heldout_batch_holds_each_patch_once(tiny_patches):
    obj, _ = _objective(tiny_patches)
    n = len(obj.instance) // 2
    assert len(set(obj.instance[:n].tolist())) == n
    for name, count in obj.counts.items():
        assert int((obj.pool[:n] == contrastive.__dict__[name]).sum()) == min(count, 64)


def test_bn_recalibration_gives_the_mean_of_the_patches():
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    net = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    out = heldout.bn_recalibrated(net, patches, 8, CPU, batch=5)  # mean of equal batches
    x = augment.plain(torch.from_numpy(patches).permute(0, 3, 1, 2), 8)
    assert not out.training and net[0].num_batches_tracked == 0  # original untouched
    torch.testing.assert_close(out[0].running_mean, x.mean((0, 2, 3)), atol=1e-5, rtol=1e-5)


def test_pretrain_reports_heldout_levels_probe_per_quality_and_pixel_scale(tmp_path,
                                                                           tiny_patches):
    res = pretrain_in(tmp_path, tiny_patches,
                      {"pretrain": {"augment": {"crop_scale": [0.5, 1.0]}}})
    last = res["probe_last"]
    assert {"balanced_accuracy", "heldout"} <= set(last)
    for vals in last["heldout"].values():
        assert vals["chance"] > 0 and vals["ratio"] == pytest.approx(
            vals["loss"] / vals["chance"], abs=1e-3)
    blob = load_encoder(tmp_path / "encoder.pt")
    assert blob["pixel_scale"] == pytest.approx(pixel_scale.patch_scale(
        blob["input_size"], 48, (0.5, 1.0)))


def test_mean_crop_side_and_patch_scale():
    assert pixel_scale.mean_side((1.0, 1.0)) == 1.0
    u = np.random.default_rng(0).uniform(0.5, 1.0, 200_000)
    assert pixel_scale.mean_side((0.5, 1.0)) == pytest.approx(np.sqrt(u).mean(), rel=1e-3)
    assert pixel_scale.patch_scale(64, 128, (1.0, 1.0)) == 0.5


def test_scale_contract_warns_or_fails_beyond_one_and_a_half():
    assert pixel_scale.check(0.5, 256, 512, "warn") is None          # equal
    assert pixel_scale.check(0.5, 340, 512, "warn") is None          # 1.33x
    msg = pixel_scale.check(0.5, 160, 512, "warn")                   # 1.6x smaller
    assert "finetune.image_size" in msg and "256" in msg
    assert pixel_scale.check(0.5, 160, 512, "ignore") is None
    assert pixel_scale.check(None, 160, 512, "error") is None        # random init
    with pytest.raises(ParamError, match="finetune.image_size"):
        pixel_scale.check(0.5, 800, 512, "error")


def test_head_out_bn_centres_the_projections_before_normalising():
    import torch
    from torch import nn

    from comcl.pretraining.encoder import ContrastiveModel

    class Flat(nn.Module):
        feature_dim = 12

        def forward(self, x):
            return x.flatten(1)[:, :12] + 5.0   # a shared offset, as a ReLU's mean gives

    torch.manual_seed(0)
    x = torch.randn(64, 3, 2, 2)
    plain, centred = ContrastiveModel(Flat(), 32, 16), ContrastiveModel(Flat(), 32, 16, out_bn=True)
    centred.load_state_dict(plain.state_dict(), strict=False)
    assert isinstance(centred.head[-1], nn.BatchNorm1d) and not centred.head[-1].affine
    pre = centred.head(centred.backbone(x))
    assert pre.mean(0).abs().max() < 1e-4          # zero mean per dimension in a batch
    z = centred(x)
    assert torch.allclose(z.norm(dim=1), torch.ones(64), atol=1e-5)
    # the centred embeddings are less alike than the plain ones
    sim = lambda e: float((e @ e.T).fill_diagonal_(0).sum() / (64 * 63))
    assert sim(z) < sim(plain(x))
