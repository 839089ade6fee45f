"""Batched view augmentation on the training device, with per-sample random parameters.

The public lesion-based CL recipe: random resized crop, horizontal and vertical flips,
rotation, colour jitter (brightness, contrast, saturation; with probability 0.8) and
random greyscale (probability 0.2). Crop, flips and rotation are one affine map per
sample, applied to the whole batch by ``grid_sample``; colour operations are batched
tensor arithmetic. Parameters are drawn on the CPU from a generator seeded by the step
and the view, for the whole global batch, so every sample's augmentation is the same
whatever the number of processes it is split over (and on a GPU or a CPU).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GREY = (0.299, 0.587, 0.114)
MEAN, STD = 0.5, 0.25  # input normalisation (fundus and X-ray patches alike)


@dataclass(frozen=True)
class AugmentConfig:
    out_size: int
    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotate_degrees: float = 180.0
    right_angles: bool = False    # rotate by multiples of 90 degrees only (no resampling blur)
    hflip_p: float = 0.5
    vflip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    grey_p: float = 0.2


def sample_params(n: int, cfg: AugmentConfig, generator: torch.Generator) -> dict:
    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)

    area = u(*cfg.scale)
    log_ratio = u(math.log(cfg.ratio[0]), math.log(cfg.ratio[1]))
    w = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)
    h = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
    jitter = torch.rand(n, generator=generator, dtype=torch.float64) < cfg.jitter_p
    return {
        "w": w, "h": h,
        "cx": (1 - w) * u(-1, 1), "cy": (1 - h) * u(-1, 1),
        "angle": (torch.randint(0, 4, (n,), generator=generator).double() * (math.pi / 2)
                  if cfg.right_angles else u(-cfg.rotate_degrees, cfg.rotate_degrees) * math.pi / 180),
        "hflip": torch.rand(n, generator=generator, dtype=torch.float64) < cfg.hflip_p,
        "vflip": torch.rand(n, generator=generator, dtype=torch.float64) < cfg.vflip_p,
        "brightness": torch.where(jitter, u(1 - cfg.brightness, 1 + cfg.brightness), 1.0),
        "contrast": torch.where(jitter, u(1 - cfg.contrast, 1 + cfg.contrast), 1.0),
        "saturation": torch.where(jitter, u(1 - cfg.saturation, 1 + cfg.saturation), 1.0),
        "grey": torch.rand(n, generator=generator, dtype=torch.float64) < cfg.grey_p,
    }


def select(params: dict, index) -> dict:
    return {k: v[index] for k, v in params.items()}


def affine_matrices(p: dict) -> torch.Tensor:
    """(N, 2, 3) maps from output to input normalised coordinates: crop, rotate, flip."""
    cos, sin = torch.cos(p["angle"]), torch.sin(p["angle"])
    fx = torch.where(p["hflip"], -1.0, 1.0)
    fy = torch.where(p["vflip"], -1.0, 1.0)
    sx, sy = p["w"] * fx, p["h"] * fy
    row0 = torch.stack([cos * sx, -sin * sy, p["cx"]], 1)
    row1 = torch.stack([sin * sx, cos * sy, p["cy"]], 1)
    return torch.stack([row0, row1], 1)


def augment(x: torch.Tensor, p: dict, cfg: AugmentConfig) -> torch.Tensor:
    """uint8 (N, C, S, S) on any device -> normalised float (N, 3, out, out)."""
    dev = x.device
    x = x.float().div_(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    theta = affine_matrices(p).to(dev, torch.float32)
    grid = F.affine_grid(theta, [x.shape[0], 3, cfg.out_size, cfg.out_size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    w = torch.tensor(GREY, device=dev).view(1, 3, 1, 1)

    def col(name):
        return p[name].to(dev, torch.float32).view(-1, 1, 1, 1)

    x = x * col("brightness")
    grey = (x * w).sum(1, keepdim=True)
    mean = grey.mean((2, 3), keepdim=True)
    x = (x - mean) * col("contrast") + mean
    grey = (x * w).sum(1, keepdim=True)
    x = grey + (x - grey) * col("saturation")
    grey = (x * w).sum(1, keepdim=True)
    x = torch.where(p["grey"].to(dev).view(-1, 1, 1, 1), grey.expand_as(x), x)
    return x.clamp_(0.0, 1.0).sub_(MEAN).div_(STD)


def plain(x: torch.Tensor, out_size: int) -> torch.Tensor:
    """No augmentation: resize and normalise (probe and evaluation features)."""
    x = x.float().div(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != out_size:
        x = F.interpolate(x, size=(out_size, out_size), mode="bilinear", align_corners=False,
                          antialias=True)
    return x.sub(MEAN).div(STD)
