"""Procedural fundus-like images with known lesions: the embedded default dataset.

Each image: black background; a circular field of view (FOV) with a reddish-orange,
unevenly lit retina and a smooth choroidal texture; an optic disc with its cup; a darker
macula and fovea; arteries and veins branching from the disc in two temporal arcades and
two nasal trunks; and lesions of the four IDRiD classes at random plausible positions,
each painted into a per-pixel bit mask (``comcl.imaging.lesion_classes``):

- MA, microaneurysms: small dark-red dots (radius 1.8-3 px at 512 px: 1-1.6 px at the
  272 px finetune; at 1-2 px they fell below a pixel there and grade 1 was never
  recalled, docs/results.md);
- HE, haemorrhages: dark-red blots, unions of 1-3 small ellipses (3.5-8 px semi-axes);
- EX, hard exudates: clusters of 3-12 small bright-yellow specks;
- SE, soft exudates (cotton-wool spots): pale, fuzzy, low-contrast patches.

Sizes are given at 512 px and scale with the image size. Lesions are deliberately small
and low in contrast, so that blur hides them and bright spots or uneven illumination
mimic them (what the paper's low-quality factors do to real photographs).

DR grade is a function of the lesion load (``grade_from_load``), a simplified
international clinical DR scale:

- 0: no lesion;
- 1 (mild): microaneurysms only;
- 2 (moderate): any haemorrhage or hard exudate, below the severe thresholds;
- 3 (severe): at least 10 haemorrhages;
- 4 (proliferative stand-in): at least 10 haemorrhages and at least 3 soft exudates.

``render_fundus`` samples a lesion load consistent with the requested grade
(``LOAD_RANGES``) and checks the rule on what it drew.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from comcl.imaging.lesion_classes import class_bit

# Inclusive ranges of (MA count, HE count, EX cluster count, SE count) per DR grade.
LOAD_RANGES = {
    0: ((0, 0), (0, 0), (0, 0), (0, 0)),
    1: ((1, 8), (0, 0), (0, 0), (0, 0)),
    2: ((1, 10), (0, 6), (0, 3), (0, 0)),
    3: ((3, 14), (12, 24), (0, 4), (0, 2)),
    4: ((5, 16), (14, 28), (1, 5), (3, 6)),
}
SEVERE_HE = 10
PROLIFERATIVE_SE = 3


def grade_from_load(ma: int, he: int, ex: int, se: int) -> int:
    """DR grade 0..4 from lesion counts (EX counts clusters); see the module docstring."""
    if ma + he + ex + se == 0:
        return 0
    if he + ex + se == 0:
        return 1
    if he >= SEVERE_HE and se >= PROLIFERATIVE_SE:
        return 4
    if he >= SEVERE_HE:
        return 3
    return 2


def sample_load(rng: np.random.Generator, grade: int) -> tuple[int, int, int, int]:
    while True:
        load = tuple(int(rng.integers(lo, hi + 1)) for lo, hi in LOAD_RANGES[grade])
        if grade_from_load(*load) == grade:
            return load  # type: ignore[return-value]


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _soft_disc(dist: np.ndarray, radius: float, edge: float) -> np.ndarray:
    return np.clip((radius - dist) / max(edge, 1e-3) + 0.5, 0.0, 1.0)


class _Canvas:
    """The float RGB image, its lesion bit mask, and local blending helpers."""

    def __init__(self, img: np.ndarray):
        self.img = img
        self.h, self.w = img.shape[:2]
        self.mask = np.zeros((self.h, self.w), np.uint8)

    def window(self, x: float, y: float, reach: float):
        x0, x1 = max(int(x - reach), 0), min(int(x + reach) + 2, self.w)
        y0, y1 = max(int(y - reach), 0), min(int(y + reach) + 2, self.h)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        return (slice(y0, y1), slice(x0, x1)), xx - x, yy - y

    def blend(self, sl, alpha: np.ndarray, color, strength: float, bit: int = 0,
              mask_at: float = 0.3) -> None:
        a = (alpha * strength)[..., None]
        patch = self.img[sl]
        patch *= 1.0 - a
        patch += a * np.asarray(color, np.float32)
        if bit:
            self.mask[sl][alpha >= mask_at] |= bit


def _draw_vessels(rng, size, od_x, od_y, side, R, s) -> tuple[np.ndarray, np.ndarray]:
    """Vein and artery coverage masks (float 0..1): branching random walks from the disc."""
    veins = np.zeros((size, size), np.uint8)
    arteries = np.zeros((size, size), np.uint8)
    cx = cy = size / 2.0

    def walk(canvas, x, y, heading, target, width, length, depth):
        step = 3.0 * s
        travelled = 0.0
        while travelled < length and width >= 0.6 * s:
            heading += 0.05 * (target - heading) + rng.normal(0, 0.07)
            nx, ny = x + step * math.cos(heading), y + step * math.sin(heading)
            if math.hypot(nx - cx, ny - cy) > 0.98 * R:
                return
            thick = max(1, int(round(width)))
            shade = 255 if width >= 1 else int(255 * width)
            p = (int(round(x * 16)), int(round(y * 16)))
            q = (int(round(nx * 16)), int(round(ny * 16)))
            cv2.line(canvas, p, q, shade, thick, cv2.LINE_AA, shift=4)
            x, y, travelled = nx, ny, travelled + step
            width *= 0.996
            if depth < 3 and width > 1.1 * s and rng.random() < 0.03:
                turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.45, 1.0)
                child = heading + turn
                walk(canvas, x, y, child, child + 0.3 * turn, width * rng.uniform(0.5, 0.72),
                     length * rng.uniform(0.3, 0.6), depth + 1)
                width *= 0.88

    # Headings for a disc on the right (temporal side = left); mirrored for side = -1.
    trunks = [(-math.pi / 2 - 0.35, -math.pi), (math.pi / 2 + 0.35, math.pi),
              (-math.pi / 2 + 0.55, -0.25), (math.pi / 2 - 0.55, 0.25)]
    for i, (start, target) in enumerate(trunks):
        if side < 0:
            start, target = math.pi - start, math.pi - target
        scale = 1.0 if i < 2 else 0.75
        for canvas, width, offset in ((veins, 4.2 * s, 0.1), (arteries, 3.0 * s, -0.1)):
            walk(canvas, od_x, od_y, start + offset + rng.normal(0, 0.08), target,
                 width * scale * rng.uniform(0.9, 1.1), R * rng.uniform(1.2, 1.7) * scale, 0)
    vein = cv2.GaussianBlur(veins, (0, 0), 0.6 * s).astype(np.float32) / 255.0
    artery = cv2.GaussianBlur(arteries, (0, 0), 0.6 * s).astype(np.float32) / 255.0
    return vein, artery


def _lesion_position(rng, cx, cy, R, od, fovea, near_fovea: bool) -> tuple[float, float]:
    for _ in range(100):
        if near_fovea:
            r, t = R * rng.uniform(0.08, 0.45), rng.uniform(0, 2 * math.pi)
            x, y = fovea[0] + r * math.cos(t), fovea[1] + r * math.sin(t)
        else:
            r, t = R * math.sqrt(rng.uniform(0, 0.85 ** 2)), rng.uniform(0, 2 * math.pi)
            x, y = cx + r * math.cos(t), cy + r * math.sin(t)
        if math.hypot(x - od[0], y - od[1]) > 1.6 * od[2] and math.hypot(x - cx, y - cy) < 0.88 * R:
            return x, y
    return fovea[0] + 0.2 * R, fovea[1]


def render_fundus(rng: np.random.Generator, size: int, grade: int):
    """Draw one fundus image of the given DR grade.

    Returns (rgb uint8 HxWx3, fov bool HxW, lesion bit mask uint8 HxW, meta dict).
    """
    s = size / 512.0
    cx = size / 2 + rng.uniform(-0.01, 0.01) * size
    cy = size / 2 + rng.uniform(-0.01, 0.01) * size
    R = rng.uniform(0.45, 0.48) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = (xx - cx) / R, (yy - cy) / R
    d2 = dx * dx + dy * dy
    d = np.sqrt(d2)
    img, light = _retina(rng, size, dx, dy, d2)
    canvas = _Canvas(img)
    side = 1.0 if rng.random() < 0.5 else -1.0
    od = (cx + side * rng.uniform(0.33, 0.4) * R, cy + rng.uniform(-0.06, 0.06) * R,
          rng.uniform(0.085, 0.105) * R)
    fovea = (cx - side * rng.uniform(0.02, 0.08) * R, cy + rng.uniform(-0.04, 0.04) * R)
    _anatomy(rng, canvas, light, size, cx, cy, R, od, fovea, side, s)

    ma, he, ex, se = sample_load(rng, grade)
    geo = (cx, cy, R, od, fovea, s)
    _draw_ma(rng, canvas, ma, geo)
    _draw_he(rng, canvas, he, geo)
    _draw_ex(rng, canvas, ex, geo)
    _draw_se(rng, canvas, se, geo)
    grade_drawn = grade_from_load(ma, he, ex, se)
    assert grade_drawn == grade, (grade_drawn, grade)
    fov = d <= 1.0
    edge = np.clip((1.0 - d) * R + 0.5, 0.0, 1.0)
    img *= edge[..., None]
    rgb = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgb[~fov] = 0
    canvas.mask[~fov] = 0
    meta = {"ma": ma, "he": he, "ex_clusters": ex, "se": se,
            "fov_center": [round(cx, 2), round(cy, 2)], "fov_radius": round(R, 2),
            "optic_disc": [round(v, 2) for v in od], "eye": "right" if side > 0 else "left"}
    return rgb, fov, canvas.mask, meta


def _retina(rng, size, dx, dy, d2):
    """Retina colour, vignetting, a gentle illumination gradient and choroidal texture."""
    base = np.array([rng.uniform(0.74, 0.9), rng.uniform(0.30, 0.42), rng.uniform(0.10, 0.2)],
                    np.float32)
    a = rng.uniform(0, 2 * math.pi)
    light = (1 - rng.uniform(0.25, 0.4) * d2) * (1 + rng.uniform(-0.08, 0.08) *
                                                   (dx * math.cos(a) + dy * math.sin(a)))
    light *= 1 + 0.05 * _smooth_noise(rng, size, 10) + 0.02 * _smooth_noise(rng, size, 40)
    img = light[..., None] * base
    img += 0.006 * rng.standard_normal((size, size, 1), dtype=np.float32)  # sensor noise
    return img, light


def _anatomy(rng, canvas, light, size, cx, cy, R, od, fovea, side, s) -> None:
    """Macula, vessels, then the optic disc (vessels emerge from under its rim)."""
    img = canvas.img
    # Macula: a broad darker zone around the fovea (negligible beyond 3 widths).
    sl, ox, oy = canvas.window(fovea[0], fovea[1], 0.17 * R * 3)
    img[sl] *= (1 - rng.uniform(0.15, 0.28) * np.exp(-(ox * ox + oy * oy) / (0.17 * R) ** 2))[..., None]
    vein, artery = _draw_vessels(rng, size, od[0], od[1], side, R, s)
    vcol = np.array([0.42, 0.06, 0.05], np.float32)
    acol = np.array([0.62, 0.14, 0.08], np.float32)
    for cover, colour, opacity in ((vein, vcol, 0.75), (artery, acol, 0.55)):
        where = np.nonzero(cover)  # vessels cover a small part of the image
        a = (opacity * cover[where])[:, None]
        img[where] = img[where] * (1 - a) + a * colour * light[where][:, None]
    sl, ox, oy = canvas.window(od[0], od[1], od[2] * 1.4)
    dist = np.sqrt(ox * ox + oy * oy)
    canvas.blend(sl, _soft_disc(dist, od[2], 0.25 * od[2]),
                 (0.97, 0.80, 0.55), rng.uniform(0.6, 0.8))
    canvas.blend(sl, _soft_disc(dist, od[2] * rng.uniform(0.35, 0.5), 0.3 * od[2]),
                 (1.0, 0.94, 0.80), rng.uniform(0.5, 0.75))


def _draw_ma(rng, canvas, n, geo) -> None:
    cx, cy, R, od, fovea, s = geo
    for _ in range(n):
        x, y = _lesion_position(rng, cx, cy, R, od, fovea, False)
        r = rng.uniform(1.8, 3.0) * s
        sl, ox, oy = canvas.window(x, y, r + 2)
        canvas.blend(sl, _soft_disc(np.sqrt(ox * ox + oy * oy), r, 0.8 * s),
                     (0.40, 0.05, 0.04), rng.uniform(0.45, 0.75), class_bit("MA"))


def _draw_he(rng, canvas, n, geo) -> None:
    cx, cy, R, od, fovea, s = geo
    for _ in range(n):
        x, y = _lesion_position(rng, cx, cy, R, od, fovea, False)
        alpha_parts = []
        sl, ox, oy = canvas.window(x, y, 14 * s)
        for _ in range(int(rng.integers(1, 4))):
            ax, ay = rng.uniform(3.5, 8.0) * s, 0
            ay = ax * rng.uniform(0.5, 1.0)
            t = rng.uniform(0, math.pi)
            px, py = ox - rng.uniform(-3, 3) * s, oy - rng.uniform(-3, 3) * s
            u = (px * math.cos(t) + py * math.sin(t)) / ax
            v = (-px * math.sin(t) + py * math.cos(t)) / ay
            alpha_parts.append(_soft_disc(np.sqrt(u * u + v * v), 1.0, 0.35))
        canvas.blend(sl, np.maximum.reduce(alpha_parts), (0.33, 0.04, 0.03),
                     rng.uniform(0.5, 0.8), class_bit("HE"))


def _draw_ex(rng, canvas, n, geo) -> None:
    cx, cy, R, od, fovea, s = geo
    for _ in range(n):
        x0, y0 = _lesion_position(rng, cx, cy, R, od, fovea, rng.random() < 0.6)
        spread = rng.uniform(5, 16) * s
        strength = rng.uniform(0.5, 0.85)
        for _ in range(int(rng.integers(3, 13))):
            x, y = x0 + rng.normal(0, spread / 2), y0 + rng.normal(0, spread / 2)
            if math.hypot(x - cx, y - cy) > 0.9 * R:
                continue
            r = rng.uniform(0.8, 2.8) * s
            sl, ox, oy = canvas.window(x, y, r + 2)
            canvas.blend(sl, _soft_disc(np.sqrt(ox * ox + oy * oy), r, 0.7 * s),
                         (0.98, 0.88, 0.42), strength, class_bit("EX"))


def _draw_se(rng, canvas, n, geo) -> None:
    cx, cy, R, od, fovea, s = geo
    for _ in range(n):
        x, y = _lesion_position(rng, cx, cy, R, od, fovea, False)
        sx = rng.uniform(4.5, 9.0) * s
        sy = sx * rng.uniform(0.6, 1.0)
        t = rng.uniform(0, math.pi)
        sl, ox, oy = canvas.window(x, y, 3 * sx)
        u = (ox * math.cos(t) + oy * math.sin(t)) / sx
        v = (-ox * math.sin(t) + oy * math.cos(t)) / sy
        canvas.blend(sl, np.exp(-0.5 * (u * u + v * v)), (0.93, 0.88, 0.78),
                     rng.uniform(0.35, 0.55), class_bit("SE"), mask_at=0.35)
