"""Degradation throughput at 512 px: images/s on 1 worker and the speedup of 2 over 1.

For each degradation type alone and for all three together, measured in one run:
- ``apply``: the degradation function on in-memory images;
- ``stage``: what one `degrade` job does (PNG decode, degrade, PNG encode);
- ``fullres``: the same model with its smooth fields (halo, hole, spots) drawn as hard
  shapes and smoothed with full-size Gaussian kernels, and the blur done directly, as
  the public reference implementation does; the ratio shows what the coarse-grid fields
  and the half-size blur buy.

Usage: python benchmarks/degrade.py [--size 512] [--images 16] [--repeat 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comcl.data import degradation_fundus as D  # noqa: E402
from comcl.data.synth_fundus import render_fundus
from comcl.imaging.codec import decode_image, encode_png

CONFIGS = {"illumination": ["illumination"], "spots": ["spots"], "blur": ["blur"],
           "all three": ["illumination", "spots", "blur"]}
_STATE: dict = {}


def fullres_apply(image: np.ndarray, fov: np.ndarray, p: dict) -> np.ndarray:
    """The model with full-size Gaussian smoothing of hard shapes (reference-style cost)."""
    img = image.astype(np.float32) / 255.0
    h, w = fov.shape
    if "illumination" in p["types"]:
        q = p["illumination"]
        grey = img @ D.GREY
        m = float(grey[fov].mean())
        img = cv2.transform(img, D._colour_matrix(q["brightness"], q["contrast"],
                                                  q["saturation"], m))
        ring = np.zeros((h, w), np.float32)
        cv2.circle(ring, tuple(int(v) for v in q["halo_center"]), int(q["halo_radius"]), 1.0,
                   max(1, int(q["halo_width"])))
        halo = q["halo_strength"] * cv2.GaussianBlur(ring, (0, 0), q["halo_width"])
        disc = np.zeros((h, w), np.float32)
        cv2.circle(disc, tuple(int(v) for v in q["hole_center"]), int(q["hole_diameter"] / 2),
                   1.0, -1)
        hole = q["hole_depth"] * cv2.GaussianBlur(disc, (0, 0),
                                                  q["hole_softness"] * q["hole_diameter"] / 2)
        img = img * (1 - hole)[..., None]
        img = img + halo[..., None] * (1 - img)
    if "spots" in p["types"]:
        colour = np.array([1.0, 0.97, 0.88], np.float32)
        for sp in p["spots"]:
            disc = np.zeros((h, w), np.float32)
            cv2.circle(disc, (int(sp["x"]), int(sp["y"])), int(sp["radius"]), 1.0, -1)
            a = sp["strength"] * cv2.GaussianBlur(disc, (0, 0), sp["softness"] * sp["radius"])
            img = img * (1 - a[..., None]) + a[..., None] * colour
    if "blur" in p["types"]:
        m = fov.astype(np.float32)
        s = p["blur"]["sigma"]
        img = cv2.GaussianBlur(img * m[..., None], (0, 0), s) / \
            np.maximum(cv2.GaussianBlur(m, (0, 0), s), 1e-3)[..., None]
    out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    out[~fov] = 0
    return out


def _setup(size: int, n_images: int) -> None:
    cv2.setNumThreads(1)
    images = [render_fundus(np.random.default_rng(i), size, i % 5)[:2] for i in range(n_images)]
    jobs = {}
    for name, types in CONFIGS.items():
        jobs[name] = [D.sample(np.random.default_rng(1000 + i), size, size, fov, types=types)
                      for i, (_, fov) in enumerate(images)]
    pngs = [(encode_png(img), encode_png(fov.astype(np.uint8) * 255)) for img, fov in images]
    _STATE.update(images=images, jobs=jobs, pngs=pngs)


def _run_one(args) -> int:
    mode, name, i = args
    img, fov = _STATE["images"][i]
    p = _STATE["jobs"][name][i]
    if mode == "apply":
        D.apply(img, fov, p)
    elif mode == "fullres":
        fullres_apply(img, fov, p)
    else:  # stage: decode, degrade, encode
        png, fov_png = _STATE["pngs"][i]
        image = decode_image(png)
        mask = decode_image(fov_png, grey=True) > 0
        encode_png(D.apply(image, mask, p))
    return i


def throughput(pool, mode: str, name: str, n_images: int, repeat: int) -> float:
    tasks = [(mode, name, i) for _ in range(repeat) for i in range(n_images)]
    start = time.perf_counter()
    if pool is None:
        for t in tasks:
            _run_one(t)
    else:
        list(pool.map(_run_one, tasks, chunksize=2))
    return len(tasks) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    _setup(args.size, args.images)
    print(f"degradation throughput at {args.size} px, {args.images} images x {args.repeat}")
    print(f"{'type':<14}{'mode':<9}{'1 worker img/s':>16}{'2 workers img/s':>17}"
          f"{'speedup':>9}{'vs fullres':>12}")
    with ProcessPoolExecutor(2, initializer=_setup, initargs=(args.size, args.images)) as pool:
        list(pool.map(_run_one, [("apply", "blur", 0)] * 4))  # warm up both workers
        for name in CONFIGS:
            one = {m: throughput(None, m, name, args.images, args.repeat)
                   for m in ("apply", "stage", "fullres")}
            for mode in ("apply", "stage", "fullres"):
                two = throughput(pool, mode, name, args.images, args.repeat)
                ratio = f"{one[mode] / one['fullres']:.2f}x" if mode == "apply" else ""
                print(f"{name:<14}{mode:<9}{one[mode]:>16.1f}{two:>17.1f}"
                      f"{two / one[mode]:>8.2f}x{ratio:>12}")


if __name__ == "__main__":
    main()
