"""Procedural chest-X-ray-like images (``synthetic.profile: chest``): the multi-label path.

A frontal greyscale radiograph stand-in: a soft-tissue torso on dark air, two dark lung
fields with faint vascular markings (denser towards the hila), the bright mediastinum
with spine and heart, curved ribs and clavicles over the lungs, the diaphragm domes, and
findings for the eight ChestX-ray8 diseases (``comcl.imaging.lesion_classes.CHEST_DISEASES``), each
painted into a per-pixel bit mask (bit i = ``CHEST_DISEASES[i]``; the boxes come from
its connected components):

- Atelectasis: a plate-like linear opacity near a lung base;
- Cardiomegaly: the heart shadow 1.35-1.6x its normal width (the whole heart is the mask);
- Effusion: fluid filling a costophrenic angle up to a meniscus;
- Infiltration: a hazy, patchy opacity;
- Mass: a round opacity, radius 3-6% of the image;
- Nodule: a small round opacity, radius 0.8-2%;
- Pneumonia: a dense, patchy consolidation;
- Pneumothorax: a dark rim of pleural air without lung markings along the apex and
  lateral wall, bounded by a thin visceral pleural line.

``labels`` lists the diseases drawn (0-3 per image, ``DISEASE_COUNT_PROBS`` and
``DISEASE_WEIGHTS``); ``lesion`` is any of them. About ``synthetic.low_quality_fraction``
of each split is natively low quality (the X-ray degradation model of ``degrade``,
recorded in ``native_degradation``). The auxiliary set holds images with 1-3 findings
and their boxes. Sizes and counts come from the shared ``synthetic.*`` params.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import cv2
import numpy as np

from comcl.common.params import Params
from comcl.common.seeding import rng_for
from comcl.data import degradation_xray, severity
from comcl.data.source_types import AuxSource, Source, manifest_row
from comcl.imaging.lesion_classes import CHEST_DISEASES

DISEASE_COUNT_PROBS = (0.45, 0.32, 0.16, 0.07)   # 0, 1, 2, 3 diseases per image
DISEASE_WEIGHTS = {"Atelectasis": 0.15, "Cardiomegaly": 0.11, "Effusion": 0.15,
                   "Infiltration": 0.17, "Mass": 0.1, "Nodule": 0.12, "Pneumonia": 0.08,
                   "Pneumothorax": 0.12}


def _bit(name: str) -> int:
    return 1 << CHEST_DISEASES.index(name)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1] from a coarse random grid, cubic upsampled."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC), -1, 1)


def _soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(sigma, 0.3))


class _Anatomy:
    """Geometry of one chest (fractions of the image size s, image left = patient right)."""

    def __init__(self, rng: np.random.Generator, s: int):
        self.s = s
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        self.x, self.y = xx / s, yy / s
        self.cx = 0.5 + rng.uniform(-0.02, 0.02)
        self.lung_w = rng.uniform(0.15, 0.18)
        self.lung_top = rng.uniform(0.14, 0.2)
        self.dome = [rng.uniform(0.72, 0.78), rng.uniform(0.75, 0.8)]  # right dome higher
        self.heart_w = rng.uniform(0.12, 0.14)   # half-width of a normal heart
        self.heart = (self.cx + rng.uniform(0.04, 0.06), rng.uniform(0.62, 0.66))
        self.lungs = [self._lung(side) for side in (0, 1)]

    def _lung(self, side: int) -> np.ndarray:
        sign = -1 if side == 0 else 1
        lx = self.cx + sign * (0.06 + self.lung_w)
        hw = self.lung_w
        base = self.dome[side]
        ny = (self.y - self.lung_top) / (base - self.lung_top)
        # Narrow, rounded apex, widest near the base.
        half = hw * np.sqrt(np.clip(ny, 0, None)) ** 0.6
        inside = (np.abs(self.x - lx) <= half) & (ny >= 0)
        # Diaphragm dome: higher medially, the costophrenic angle deep laterally.
        lateral = np.clip(sign * (self.x - lx) / hw, -1, 1)
        floor = base + 0.05 * lateral - 0.03 * (1 - lateral ** 2)
        return inside & (self.y <= floor)

    def heart_mask(self, factor: float) -> np.ndarray:
        hx, hy = self.heart
        w = self.heart_w * factor
        return ((self.x - hx) / w) ** 2 + ((self.y - hy) / 0.1) ** 2 <= 1.0


def _ribs(an: _Anatomy, rng: np.random.Generator) -> np.ndarray:
    s = an.s
    layer = np.zeros((s, s), np.float32)
    thick = max(1, int(round(0.012 * s)))
    for side in (-1, 1):
        for i in range(9):
            y0 = an.lung_top + 0.02 + i * 0.062 + rng.uniform(-0.006, 0.006)
            centre = (int((an.cx + side * 0.02) * s), int((y0 - 0.02) * s))
            axes = (int(0.24 * s), int((0.07 + 0.01 * i) * s))
            start, end = (0, 100) if side > 0 else (80, 180)
            cv2.ellipse(layer, centre, axes, 0, start, end, 1.0, thick, cv2.LINE_AA)
    for side in (-1, 1):  # clavicles
        p0 = (int((an.cx + side * 0.03) * s), int((an.lung_top + 0.01) * s))
        p1 = (int((an.cx + side * 0.3) * s), int((an.lung_top - 0.05) * s))
        cv2.line(layer, p0, p1, 1.4, max(2, int(0.022 * s)), cv2.LINE_AA)
    return cv2.GaussianBlur(layer, (0, 0), 0.004 * s + 0.5)


def _point_in(mask: np.ndarray, rng: np.random.Generator, margin: int = 0) -> tuple[int, int]:
    m = mask
    if margin > 0:
        m = cv2.erode(mask.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)) > 0
        if not m.any():
            m = mask
    ys, xs = np.nonzero(m)
    i = int(rng.integers(len(xs)))
    return int(xs[i]), int(ys[i])


def render_chest(rng: np.random.Generator, size: int, diseases) -> tuple:
    """(grey uint8 HxW, fov bool HxW (all true), disease bit mask uint8 HxW, meta)."""
    s = size
    an = _Anatomy(rng, s)
    diseases = [d for d in CHEST_DISEASES if d in set(diseases)]
    mask = np.zeros((s, s), np.uint8)
    x, y = an.x, an.y
    # Torso soft tissue on dark air; brighter abdomen below the domes.
    torso = ((x - an.cx) / 0.47) ** 2 + ((y - 0.62) / 0.62) ** 2 <= 1.0
    img = 0.08 + 0.47 * _soft(torso, 0.03 * s)
    img += 0.12 * np.clip((y - 0.7) / 0.2, 0, 1) * torso
    lungs = an.lungs[0] | an.lungs[1]
    lung_soft = _soft(lungs, 0.008 * s)
    markings = 0.5 + 0.5 * _smooth_noise(rng, s, 24)
    hilum = np.exp(-(((x - an.cx) / 0.14) ** 2 + ((y - 0.45) / 0.12) ** 2))
    img -= lung_soft * (0.3 - 0.05 * markings - 0.08 * hilum)
    # Mediastinum, spine, heart.
    img += 0.16 * _soft(np.abs(x - an.cx) <= 0.05, 0.01 * s) * (y > 0.08)
    img += 0.06 * _soft(np.abs(x - an.cx) <= 0.022, 0.004 * s)
    factor = rng.uniform(1.35, 1.6) if "Cardiomegaly" in diseases else rng.uniform(0.92, 1.05)
    heart = an.heart_mask(factor)
    img += 0.12 * _soft(heart, 0.01 * s)
    img += 0.07 * _ribs(an, rng) * (0.4 + 0.6 * lung_soft)
    meta: dict = {"diseases": diseases, "heart_factor": round(float(factor), 3)}
    if "Cardiomegaly" in diseases:
        mask[heart] |= _bit("Cardiomegaly")
    for d in diseases:
        side = int(rng.integers(2))
        lung = an.lungs[side]
        if d == "Cardiomegaly":
            continue
        _draw_finding(d, rng, an, lung, side, img, mask, markings, s)
        meta.setdefault("sides", {})[d] = side
    # Film grain and a faint vignette, then 8 bits.
    img *= 1 - 0.12 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    img += rng.normal(0, 0.008, img.shape).astype(np.float32)
    grey = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return grey, np.ones((s, s), bool), mask, meta


def _draw_finding(d, rng, an, lung, side, img, mask, markings, s) -> None:
    """One finding (not cardiomegaly) drawn into ``img`` and its bit into ``mask``."""
    x, y = an.x, an.y
    if d == "Effusion":
        ys = np.nonzero(lung.any(axis=1))[0]
        bottom = ys.max() / s
        level = bottom - rng.uniform(0.06, 0.14)
        lat = np.clip(((x - (an.cx + (2 * side - 1) * (0.06 + an.lung_w))) *
                       (2 * side - 1)) / an.lung_w, -1, 1)
        fluid = lung & (y >= level - 0.04 * (lat + 1) / 2)  # meniscus up the wall
        img += 0.22 * _soft(fluid, 0.006 * s) * 0.9
        mask[fluid] |= _bit(d)
    elif d == "Pneumothorax":
        dist = cv2.distanceTransform(lung.astype(np.uint8), cv2.DIST_L2, 5) / s
        depth = rng.uniform(0.025, 0.06)
        sign = 2 * side - 1
        lx = an.cx + sign * (0.06 + an.lung_w)
        # Apex and lateral wall only, not along the mediastinum.
        upper = (y < an.lung_top + rng.uniform(0.3, 0.45)) & \
            ((sign * (x - lx) > -0.3 * an.lung_w) | (y < an.lung_top + 0.06))
        air = lung & (dist < depth) & upper
        line = lung & (np.abs(dist - depth) < 0.004) & upper
        img -= 0.07 * _soft(air, 0.003 * s) + 0.04 * markings * air
        img += 0.1 * _soft(line, 0.002 * s)
        mask[air] |= _bit(d)
    else:
        r_lo, r_hi, amp = {"Mass": (0.03, 0.06, 0.24), "Nodule": (0.008, 0.02, 0.2),
                           "Infiltration": (0.06, 0.1, 0.12),
                           "Pneumonia": (0.08, 0.13, 0.22),
                           "Atelectasis": (0.05, 0.09, 0.16)}[d]
        r = rng.uniform(r_lo, r_hi)
        px, py = _point_in(lung, rng, int(0.6 * r * s))
        if d == "Atelectasis":  # thin plate, low in the lung
            ys = np.nonzero(lung[:, px])[0]
            py = int(ys.min() + rng.uniform(0.55, 0.85) * (ys.max() - ys.min()))
            ang = math.radians(rng.uniform(-25, 25))
            thick = rng.uniform(0.012, 0.025)
            u = (x - px / s) * math.cos(ang) + (y - py / s) * math.sin(ang)
            v = -(x - px / s) * math.sin(ang) + (y - py / s) * math.cos(ang)
            region = ((u / r) ** 2 + (v / thick) ** 2 <= 1.0) & lung
            alpha = _soft(region, 0.004 * s)
        else:
            d2 = ((x - px / s) ** 2 + (y - py / s) ** 2) / r ** 2
            if d in ("Mass", "Nodule"):
                region = d2 <= 1.0
                alpha = _soft(region, 0.15 * r * s)
            else:  # patchy: smooth noise inside a soft blob
                patch = 0.5 + 0.5 * _smooth_noise(rng, s, 48 if d == "Infiltration" else 32)
                blob = np.exp(-d2 * 1.5) * (0.35 + 0.65 * patch)
                region = (blob > 0.25) & lung
                alpha = cv2.GaussianBlur(np.where(region, blob, 0).astype(np.float32),
                                         (0, 0), 0.004 * s + 0.3)
        img += amp * alpha
        mask[region] |= _bit(d)


# --- the dataset: plan in the main process, render per image from its own seed -------

@dataclass(frozen=True)
class Job:
    image_id: str
    split: str
    labels: tuple[str, ...]
    low_quality: bool
    size: int
    seed: int
    severity: tuple = ()


def _draw_labels(rng: np.random.Generator, n: int, counts=DISEASE_COUNT_PROBS) -> list[tuple]:
    names = list(DISEASE_WEIGHTS)
    w = np.array([DISEASE_WEIGHTS[d] for d in names])
    out = []
    for k in rng.choice(len(counts), size=n, p=np.asarray(counts) / sum(counts)):
        picked = rng.choice(len(names), size=int(k), replace=False, p=w / w.sum())
        out.append(tuple(d for d in CHEST_DISEASES if d in {names[i] for i in picked}))
    return out


def plan(cfg) -> tuple[list[Job], list[Job]]:
    """Main jobs (train, test) and auxiliary jobs from a ``synth_dataset.SynthConfig``."""
    jobs = []
    for split, n in (("train", cfg.n_train), ("test", cfg.n_test)):
        rng = rng_for(cfg.seed, "chest-plan", split)
        labels = _draw_labels(rng, n)
        low = np.zeros(n, bool)
        low[rng.permutation(n)[: int(round(cfg.low_quality_fraction * n))]] = True
        jobs += [Job(f"chest_{split}_{i:05d}", split, labels[i], bool(low[i]), cfg.image_size,
                     cfg.seed, cfg.severity) for i in range(n)]
    rng = rng_for(cfg.seed, "chest-plan", "aux")
    aux = [Job(f"chestaux_{i:05d}", "train", lab, False, cfg.image_size, cfg.seed)
           for i, lab in enumerate(_draw_labels(rng, cfg.n_aux, (0.0, 0.5, 0.35, 0.15)))]
    return jobs, aux


def render(job: Job) -> dict:
    grey, fov, mask, meta = render_chest(rng_for(job.seed, "chest", job.image_id), job.size,
                                         job.labels)
    native = ""
    if job.low_quality:
        grey, dparams = degradation_xray.degrade(grey, fov,
                                                 rng_for(job.seed, "native", job.image_id),
                                                 severity=dict(job.severity))
        native = json.dumps(dparams, sort_keys=True)
    return manifest_row(
        image_id=job.image_id, split=job.split, quality_code=int(job.low_quality),
        lesion=bool(job.labels), labels=job.labels, source=f"synthetic:chest:seed={job.seed}",
        size=job.size, native_degradation=native, meta=meta, image=grey, fov=fov,
        lesion_mask=mask)


def render_aux(job: Job) -> dict:
    from comcl.imaging.codec import decode_image
    from comcl.imaging.mask_boxes import mask_boxes

    res = render(job)
    res["boxes"] = mask_boxes(decode_image(res["lesion_mask"], grey=True), CHEST_DISEASES)
    return res


def info(image_size: int) -> dict:
    return {"source": "synthetic", "profile": "chest", "modality": "xray",
            "task": "multilabel", "num_classes": len(CHEST_DISEASES),
            "classes": list(CHEST_DISEASES), "channels": 1, "image_size": image_size,
            "lesion_masks": True, "mask_classes": list(CHEST_DISEASES)}


def main_source(params: Params, cfg):

    jobs, _ = plan(cfg)
    sev = severity.severity_of(dict(cfg.severity), degradation_xray.TYPES)
    return Source(jobs, render, {**info(cfg.image_size), severity.INFO_KEY: sev})


def aux_source(params: Params, cfg):

    _, aux = plan(cfg)
    return AuxSource(aux, render_aux, list(CHEST_DISEASES))
