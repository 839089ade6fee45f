"""Image-quality statistics inside the field of view, to calibrate synthetic low quality
against real low-quality photographs (EyeQ "Usable" / "Reject").

On the grey image (ITU-R 601 luma, 0-255) at the stored size (512 px, FOV-cropped as the
pipeline stores it), over the FOV eroded by 3 % of its radius (so that the FOV border is
not counted as an edge):
- ``brightness``: mean grey;
- ``contrast``: standard deviation of grey (RMS contrast);
- ``sharpness``: variance of the Laplacian of the grey image (OpenCV, 3x3), the usual
  focus measure; divided by contrast squared too (``sharpness_norm``), so that a dark or
  flat image does not read as blurred.
"""
from __future__ import annotations

import cv2
import numpy as np

STATS = ("brightness", "contrast", "sharpness", "sharpness_norm")


def grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image.astype(np.float32)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def inner_fov(fov: np.ndarray, fraction: float = 0.03) -> np.ndarray:
    radius = np.sqrt(fov.sum() / np.pi)
    k = max(1, int(round(fraction * radius)))
    return cv2.erode(fov.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8)) > 0


def image_stats(image: np.ndarray, fov: np.ndarray) -> dict:
    g = grey(image)
    inside = inner_fov(fov)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    contrast = float(g[inside].std())
    sharp = float(lap[inside].var())
    return {"brightness": float(g[inside].mean()), "contrast": contrast,
            "sharpness": sharp, "sharpness_norm": sharp / max(contrast ** 2, 1e-6)}
