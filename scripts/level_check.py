"""Targeted check (docs/pretraining.md): does a class-level term learn lesion vs healthy on
the patch store, and what does it need? One loop, the pipeline's model and loss, one
thing changed at a time.

    python scripts/level_check.py --mode l2 --steps 300 --lr 1e-3
    python scripts/level_check.py --mode ce --steps 200            # the supervised reference

``--mode``: ``ce`` (BCE on a linear head over backbone features: lesion vs healthy),
``l2`` (contrastive.level_loss "l2": HL vs HH), ``l2l3`` (L2 + L3), ``comcl`` (L1+L2+L3).
Batches: ``--per-pool`` patches of each pool the mode needs, two views each (crop
``--crop-min``-1, right angles, no colour jitter). Every ``--every`` steps: the kNN probe
and the held-out level losses / chance exactly as the pretrain stage measures them.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from comcl.common.placement import Placement
from comcl.detection import patch_store
from comcl.imaging import augment
from comcl.pretraining import contrastive, probe
from comcl.pretraining.encoder import ContrastiveModel, build_backbone
from comcl.pretraining.heldout import HeldOutObjective
from comcl.pretraining.pool_sampler import POOL_IDS, BatchMaker, PoolSampler
from comcl.pretraining.views import two_views

MODES = {"ce": ("HL", "LL", "HH", "LH"), "l2": ("HL", "HH"), "l2l3": ("HL", "LL", "HH", "LH"),
         "comcl": ("HL", "LL", "HH", "LH")}
TERMS = {"l2": ["l2"], "l2l3": ["l2", "l3"], "comcl": ["l1", "l2", "l3"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=MODES, default="l2")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--tau", type=float, default=0.07)
    ap.add_argument("--per-pool", type=int, default=24)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--crop-min", type=float, default=0.8)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--store", default="data/patches/store")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    place = Placement.resolve(torch.device("cpu"))
    arr, index = patch_store.load(a.store)
    held = probe.probe_split(index, 0.2, a.seed)
    train_index = index.assign(pool=np.where(held, "held-out", index["pool"]))
    sampler = PoolSampler(train_index, a.per_pool, a.seed)
    batches = BatchMaker(arr, sampler, 0.0, a.seed)
    aug = augment.AugmentConfig(a.size, scale=(a.crop_min, 1.0), right_angles=True,
                                jitter_p=0.0, grey_p=0.0)
    heldout = HeldOutObjective.from_store(index, held, per_pool=64, template=batches,
                                          aug=aug, place=place, temperature=a.tau)
    prober = probe.Probe(arr, index, held, a.size, place, a.seed, heldout)
    model = ContrastiveModel(build_backbone("resnet18"))
    head = torch.nn.Linear(512, 1)
    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=a.lr)
    keep = torch.tensor([POOL_IDS[p] for p in MODES[a.mode]])
    lesion = torch.tensor([1.0, 1.0, 0.0, 0.0])
    t0 = time.time()
    report(prober, model, 0, float("nan"), t0)
    for step in range(a.steps):
        b = batches(step)
        x = two_views(b.views, b.positions, len(b.positions), aug, a.seed, step, place)
        rows = torch.isin(b.pool, keep)
        x, pool, inst = x[rows], b.pool[rows], b.instance[rows]
        if a.mode == "ce":
            loss = F.binary_cross_entropy_with_logits(head(model.backbone(x))[:, 0], lesion[pool])
        else:
            z = model(x)
            loss = sum(contrastive.level_loss(z, pool, inst, t, a.tau)[0] for t in TERMS[a.mode])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % a.every == 0 or step + 1 == a.steps:
            report(prober, model, step + 1, float(loss.detach()), t0)


def report(prober, model, step, loss, t0) -> None:
    out = prober(model)
    ratios = " ".join(f"{k} {v['ratio']:.2f}" for k, v in out.get("heldout", {}).items())
    print(f"step {step} loss {loss:.3f} kNN {out['balanced_accuracy']:.3f} "
          f"LQ {out.get('lq_balanced_accuracy', float('nan')):.3f} "
          f"les/LQh {out.get('lesion_vs_lq_healthy', float('nan')):.3f} | held-out/chance "
          f"{ratios} ({time.time() - t0:.0f}s)", flush=True)
    model.train()


if __name__ == "__main__":
    main()
