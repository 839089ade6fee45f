"""Lesion-detector inference throughput on CPU at the working resolution (default 512 px).

Uses models/detector.pt when it exists (the trained detector: its proposals and
detections are what `detect` really processes), else a randomly initialised detector
built from params.yaml. Prints images/s per batch size and thread count, and the ratio
of each to one image at a time on one thread, all measured in one run.

Usage: python benchmarks/detect.py [--images 16]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comcl.common.params import Params  # noqa: E402
from comcl.data.synth_fundus import render_fundus  # noqa: E402
from comcl.detection import detector as det  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--model", default="models/detector.pt")
    args = ap.parse_args()
    if Path(args.model).exists():
        model, cfg = det.load(args.model)
        source = args.model
    else:
        cfg = det.DetectorConfig.from_params(Params.load("params.yaml"), ["MA", "HE", "EX", "SE"])
        torch.manual_seed(0)
        model, source = det.build(cfg).eval(), "random init"
    size = cfg.image_size
    images = [det.to_tensor(render_fundus(np.random.default_rng(i), size, 3)[0])
              for i in range(args.images)]
    print(f"detector {cfg.arch} ({source}) at {size} px, {args.images} images")
    print(f"{'threads':>8}{'batch':>7}{'img/s':>9}{'ratio':>8}")
    base = None
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (1, 4):
            with torch.inference_mode():
                model(images[:batch])  # warm-up
                start = time.perf_counter()
                for i in range(0, len(images), batch):
                    model(images[i:i + batch])
            rate = len(images) / (time.perf_counter() - start)
            base = base or rate
            print(f"{threads:>8}{batch:>7}{rate:>9.2f}{rate / base:>7.2f}x")


if __name__ == "__main__":
    main()
