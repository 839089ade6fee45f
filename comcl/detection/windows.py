"""Patch windows: placing a fixed-size window around a box, and checking windows.

A window is (x0, y0, x1, y1) with x1 = x0 + size, y1 = y0 + size, inside the image.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def check_fits(params, size: int, width: int, height: int, image_id: str) -> None:
    """A ``patches.size`` window must fit in every image (a ParamError naming the key)."""
    if size > min(width, height):
        raise params.error("patches.size", f"= {size} px is larger than the {width}x{height} "
                                           f"px image {image_id}: no window fits; set it "
                                           f"to at most {min(width, height)}")


def window_around(box, size: int, width: int, height: int, rng: np.random.Generator):
    """A size x size window containing ``box`` (x0, y0, x1, y1 floats), inside the image,
    at a random (seeded) offset; None when the box cannot fit."""
    bx0, by0, bx1, by1 = box
    if size > width or size > height:
        return None
    lo_x, hi_x = max(0, math.ceil(bx1) - size), min(int(math.floor(bx0)), width - size)
    lo_y, hi_y = max(0, math.ceil(by1) - size), min(int(math.floor(by0)), height - size)
    if lo_x > hi_x or lo_y > hi_y:
        return None
    x0 = int(rng.integers(lo_x, hi_x + 1))
    y0 = int(rng.integers(lo_y, hi_y + 1))
    return x0, y0, x0 + size, y0 + size


def integral(mask: np.ndarray) -> np.ndarray:
    return cv2.integral(mask.astype(np.uint8))


def window_sum(ii: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> int:
    return int(ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0])


def random_windows(fov: np.ndarray, size: int, count: int, fov_min: float,
                   rng: np.random.Generator, tries: int = 200) -> list[tuple[int, int, int, int]]:
    """Up to ``count`` random windows with at least ``fov_min`` of their pixels in the FOV."""
    h, w = fov.shape
    if size > w or size > h:
        return []
    ii = integral(fov)
    need = fov_min * size * size
    out = []
    for _ in range(count * tries):
        if len(out) == count:
            break
        x0, y0 = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
        if window_sum(ii, x0, y0, x0 + size, y0 + size) >= need - 1e-6:
            out.append((x0, y0, x0 + size, y0 + size))
    return out
