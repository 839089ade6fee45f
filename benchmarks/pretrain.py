"""Pretraining throughput: a full CoMCL step with real loading vs the same on resident tensors.

"real": draw the four-pool batch from the memory-mapped patch store, degrade the quality
views (threads, one step ahead, as the stage does), copy to the device (pinned,
non-blocking on CUDA), augment on the device, forward,
the three-level SPL loss, backward, Adam step. "resident": the same forward/loss/backward/
step on a batch already augmented and on the device. The ratio real/resident says how much
of the step the loader and augmentation cost (1.0 = they are free). Both measured in one
run. On a CUDA GPU the defaults become the paper's scale: ResNet-50, 128 px, batch 400,
bf16 autocast, channels_last.

Usage: python benchmarks/pretrain.py [--store data/patches/store] [--steps 6]
       [--backbone resnet18] [--input-size 64] [--per-pool 12]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comcl.common.distributed import DistInfo  # noqa: E402
from comcl.common.placement import Placement, default_device  # noqa: E402
from comcl.imaging import augment  # noqa: E402
from comcl.pretraining import contrastive  # noqa: E402
from comcl.pretraining.encoder import ContrastiveModel, build_backbone  # noqa: E402
from comcl.pretraining.objectives import LevelObjective, StepMeta  # noqa: E402
from comcl.pretraining.pool_sampler import BatchMaker, OneAhead, PoolSampler  # noqa: E402
from comcl.pretraining.views import two_views  # noqa: E402


def synthetic_store(n_per_pool: int = 256, size: int = 128):
    rng = np.random.default_rng(0)
    arr = (rng.random((4 * n_per_pool, size, size, 3)) * 255).astype(np.uint8)
    index = pd.DataFrame({"pool": np.repeat(["HL", "LL", "HH", "LH"], n_per_pool),
                          "image_id": [f"i{i}" for i in range(4 * n_per_pool)]})
    return arr, index


def main() -> None:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="data/patches/store")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--backbone", default="resnet50" if cuda else "resnet18")
    ap.add_argument("--input-size", type=int, default=128 if cuda else 64)
    ap.add_argument("--per-pool", type=int, default=100 if cuda else 12)
    ap.add_argument("--quality-view-p", type=float, default=0.5)
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    args = ap.parse_args()
    place = Placement.resolve(default_device(), args.precision)
    if (Path(args.store) / "patches.npy").exists():
        arr = np.load(Path(args.store) / "patches.npy", mmap_mode="r")
        index = pd.read_parquet(Path(args.store) / "index.parquet")
        source = args.store
    else:
        arr, index = synthetic_store()
        source = "random patches (no store found)"
    batches = BatchMaker(arr, PoolSampler(index, args.per_pool, seed=0), args.quality_view_p, 0)
    model, net = place.model(ContrastiveModel(build_backbone(args.backbone)), DistInfo())
    spl = {"min_fraction": 0.2, "order": "easy_first"}
    objective = LevelObjective(net, [(lv, 1.0) for lv in contrastive.LEVELS], 0.07, spl,
                               DistInfo())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    aug = augment.AugmentConfig(args.input_size)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def train_step(x, meta):
        with place.autocast():
            loss, _ = objective(x, meta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ahead = OneAhead(batches, args.steps + 1)

    def batch(step):
        b = ahead(step)
        x = two_views(b.views, b.positions, len(b.positions), aug, 0, step, place)
        return x, StepMeta(b.pool.to(place.device), b.instance.to(place.device), 1, 2)

    x_res, meta_res = batch(0)  # warm-up, and the resident batch below
    n = len(x_res) // 2
    train_step(x_res, meta_res)
    sync()

    start = time.perf_counter()
    for s in range(1, args.steps + 1):
        train_step(*batch(s))
    sync()
    real = args.steps * n / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(args.steps):
        train_step(x_res, meta_res)
    sync()
    resident = args.steps * n / (time.perf_counter() - start)
    name = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"pretrain step on {name}: {args.backbone}, {args.input_size} px, batch {n} patches "
          f"({2 * n} views), {place.precision}, channels_last={place.channels_last}; "
          f"patches from {source}")
    print(f"real loading + augmentation : {real:8.1f} patches/s")
    print(f"device-resident tensors     : {resident:8.1f} patches/s")
    print(f"ratio real / resident       : {real / resident:8.2f}")


if __name__ == "__main__":
    main()
