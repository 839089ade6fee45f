"""Field of view (FOV) of real fundus photographs: detect the circle, crop, pad, resize.

A fundus camera image is a bright disc (the retina) on a black frame; the disc may be
clipped at the top and bottom (EyePACS, IDRiD) and may carry a small notch marker. A
fixed threshold ("pixels > 10") fails on dark or badly exposed photographs, whose retina
is partly as dark as a fixed cut and whose frame is not exactly black (JPEG noise). So:

1. work on a copy at most ``WORK_SIZE`` px, on the channel maximum, lightly smoothed;
2. estimate the background level and noise from the four image corners (the darkest
   corner: a corner can hold a label) and the foreground level as the median of the
   clearly-above-background pixels; threshold between them, relative to both
   (``_threshold``), never a fixed grey level (smoothed float values: a retina a few
   grey levels above a black frame still separates);
3. keep the largest connected component, fill it, take its convex hull (dark retina
   near the rim dents the component inwards; the hull bridges the dents);
4. fit a circle to the hull boundary, leaving out the parts that run along the image
   border (a clipped disc): RANSAC over point triples (fixed seed), so that the notch
   and the chords across dark dents are outliers, then least squares on the inliers;
   when the arc is too short to trust, the minimum enclosing circle of the hull.

``preprocess`` then crops the square around the circle (zero padding where the disc is
clipped), resizes it (``INTER_AREA``) and returns the circular mask (the disc, minus the
clipped parts), with the image zeroed outside it. ``crop_array`` applies the same
geometry to other arrays of the image (lesion masks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

WORK_SIZE = 512          # detection runs on a copy at most this large (longest side)
CORNER_FRACTION = 0.06   # corner patches (fraction of the shorter side) for the background
MIN_RADIUS_FRACTION = 0.2  # of the shorter side: a smaller "disc" is not a fundus FOV


@dataclass(frozen=True)
class Circle:
    """The FOV disc in source-image pixels (float centre and radius)."""
    cx: float
    cy: float
    radius: float
    height: int
    width: int
    method: str = "fit"   # "fit" (circle fit), "enclosing" (fallback) or "full" (no frame)

    def crop_square(self) -> tuple[int, int, int]:
        """(x0, y0, side) of the square around the disc, in source pixels (may overhang)."""
        side = max(int(round(2 * self.radius)), 1)
        if self.method == "full":  # no frame: the square around the whole image
            side = max(self.height, self.width)
        return int(round(self.cx - side / 2)), int(round(self.cy - side / 2)), side

    def as_dict(self) -> dict:
        return {"cx": round(self.cx, 2), "cy": round(self.cy, 2),
                "radius": round(self.radius, 2), "method": self.method}


def _max_channel(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else image.max(axis=2)


def _work_copy(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Float channel maximum at most WORK_SIZE px, lightly smoothed (noise, JPEG blocks)."""
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIZE / max(h, w))
    if scale < 1.0:  # shrink first (cheap), then take the channel maximum
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    v = np.ascontiguousarray(_max_channel(image)).astype(np.float32)
    return cv2.GaussianBlur(v, (0, 0), 1.5), scale


def _threshold(v: np.ndarray) -> tuple[float, float, float]:
    """(threshold, background level, foreground level) of the smoothed channel maximum."""
    h, w = v.shape
    c = max(4, int(CORNER_FRACTION * min(h, w)))
    corners = [v[:c, :c], v[:c, -c:], v[-c:, :c], v[-c:, -c:]]
    levels = [float(np.percentile(p, 90)) for p in corners]
    k = int(np.argmin(levels))
    bg = levels[k]
    noise = float(corners[k].std())
    above = v[v > bg + max(1.0, 4 * noise)]
    fg = float(np.median(above)) if above.size else bg
    # A fifth of the way from the background to the typical retina, and clear of the
    # background noise: a dark retina (fg ~ 5-40) still separates from a frame at ~0-3.
    t = bg + max(0.5, 4 * noise, 0.2 * (fg - bg))
    return t, bg, fg


def _fit_circle(pts: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kasa) least-squares circle through points (N x 2, float)."""
    x, y = pts[:, 0], pts[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    r2 = sol[2] + cx * cx + cy * cy
    return float(cx), float(cy), float(math.sqrt(max(r2, 0.0)))


def _circumcircles(p: np.ndarray):
    """Circles through point triples p (K x 3 x 2): centres (K x 2), radii (K)."""
    a, b, c = p[:, 0], p[:, 1], p[:, 2]
    d = 2 * (a[:, 0] * (b[:, 1] - c[:, 1]) + b[:, 0] * (c[:, 1] - a[:, 1])
             + c[:, 0] * (a[:, 1] - b[:, 1]))
    d = np.where(np.abs(d) < 1e-9, np.nan, d)
    sa, sb, sc = (a ** 2).sum(1), (b ** 2).sum(1), (c ** 2).sum(1)
    ux = (sa * (b[:, 1] - c[:, 1]) + sb * (c[:, 1] - a[:, 1]) + sc * (a[:, 1] - b[:, 1])) / d
    uy = (sa * (c[:, 0] - b[:, 0]) + sb * (a[:, 0] - c[:, 0]) + sc * (b[:, 0] - a[:, 0])) / d
    return np.stack([ux, uy], 1), np.hypot(a[:, 0] - ux, a[:, 1] - uy)


def _robust_fit(pts: np.ndarray, min_r: float, max_r: float, tol: float = 2.0,
                trials: int = 400) -> tuple[float, float, float] | None:
    """RANSAC circle (fixed seed: deterministic) refined by least squares on its inliers.

    The outline of a clipped, notched or dented disc is mostly arc; chords across dents,
    notches and noise are the outliers. None when the arc is too short to trust."""
    if len(pts) < 20:
        return None
    rng = np.random.default_rng(0)
    triples = pts[rng.integers(0, len(pts), size=(trials, 3))]
    centres, radii = _circumcircles(triples)
    ok = np.isfinite(radii) & (radii >= min_r) & (radii <= max_r)
    if not ok.any():
        return None
    centres, radii = centres[ok], radii[ok]
    dist = np.hypot(pts[None, :, 0] - centres[:, None, 0], pts[None, :, 1] - centres[:, None, 1])
    best = int(np.argmax((np.abs(dist - radii[:, None]) <= tol).sum(1)))
    fit = (float(centres[best, 0]), float(centres[best, 1]), float(radii[best]))
    for _ in range(3):
        res = np.abs(np.hypot(pts[:, 0] - fit[0], pts[:, 1] - fit[1]) - fit[2])
        inliers = pts[res <= tol]
        if len(inliers) < 20:
            return None
        fit = _fit_circle(inliers)
    # The inliers must cover a good part of the circle, or the fit is poorly determined.
    ang = np.arctan2(inliers[:, 1] - fit[1], inliers[:, 0] - fit[0])
    covered = len(np.unique(((ang + math.pi) / (2 * math.pi) * 36).astype(int) % 36))
    return fit if covered >= 9 else None


def detect(image: np.ndarray) -> Circle:
    """The FOV disc of a fundus photograph (RGB or grey uint8), in its own pixels."""
    h, w = image.shape[:2]
    v, scale = _work_copy(image)
    vh, vw = v.shape
    t, bg, fg = _threshold(v)
    if fg - bg < 2 or bg > 0.5 * fg:  # no dark frame at all: the FOV is the whole image
        return Circle(w / 2, h / 2, math.hypot(w, h) / 2, h, w, "full")
    binary = (v > t).astype(np.uint8)
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return Circle(w / 2, h / 2, min(h, w) / 2, h, w, "full")
    big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    comp = (labels == big).astype(np.uint8)
    contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    filled = np.zeros_like(comp)
    cv2.fillConvexPoly(filled, hull, 1)
    outline, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pts = outline[0][:, 0, :].astype(np.float64)
    inner = ((pts[:, 0] > 1) & (pts[:, 0] < vw - 2) & (pts[:, 1] > 1) & (pts[:, 1] < vh - 2))
    fit = _robust_fit(pts[inner], MIN_RADIUS_FRACTION * min(vh, vw), max(vh, vw))
    method = "fit"
    if fit is not None:
        cx, cy, r = fit
        plausible = (-0.25 * vw <= cx <= 1.25 * vw and -0.25 * vh <= cy <= 1.25 * vh
                     and np.hypot(pts[:, 0] - cx, pts[:, 1] - cy).max() <= 1.1 * r + 3)
        if not plausible:
            fit = None
    if fit is None:
        (cx, cy), r = cv2.minEnclosingCircle(hull)
        method = "enclosing"
    # Back to source pixels (pixel centres: x_src + 0.5 = (x_work + 0.5) / scale).
    return Circle((cx + 0.5) / scale - 0.5, (cy + 0.5) / scale - 0.5, (r + 0.5) / scale,
                  h, w, method)


def crop_array(array: np.ndarray, circle: Circle, size: int,
               interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """The square around the disc (zero outside the source image), resized to size."""
    x0, y0, side = circle.crop_square()
    h, w = array.shape[:2]
    canvas = np.zeros((side, side) + array.shape[2:], array.dtype)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = array[sy0:sy1, sx0:sx1]
    if side == size:
        return canvas
    if side < size and interpolation == cv2.INTER_AREA:
        interpolation = cv2.INTER_LINEAR  # upsampling: AREA is nearest-like
    return cv2.resize(canvas, (size, size), interpolation=interpolation)


def output_mask(circle: Circle, size: int, shrink: float = 0.005) -> np.ndarray:
    """The FOV mask at the output size: the disc (slightly shrunk, off the soft rim)
    intersected with the part of the square that lies inside the source image."""
    x0, y0, side = circle.crop_square()
    k = size / side
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # Output pixel centre -> source coordinates.
    sx = (xx + 0.5) / k - 0.5 + x0
    sy = (yy + 0.5) / k - 0.5 + y0
    inside = np.hypot(sx - circle.cx, sy - circle.cy) <= circle.radius * (1 - shrink)
    inside &= (sx >= -0.5) & (sx <= circle.width - 0.5) & (sy >= -0.5) & \
        (sy <= circle.height - 0.5)
    return inside


def preprocess(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, Circle]:
    """Detect the FOV, crop and resize to ``size`` x ``size``: (image, fov bool, circle).

    The image is zeroed outside the FOV mask (EyeQ's preprocessing: circular mask, crop,
    resize)."""
    circle = detect(image)
    out = crop_array(image, circle, size)
    fov = output_mask(circle, size)
    out[~fov] = 0
    return out, fov, circle
