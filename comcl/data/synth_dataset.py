"""The embedded synthetic dataset: plan (labels, quality, seeds) and render (images).

The plan is made in the main process from ``synthetic.*`` params; every image is then
rendered from its own seed (``comcl.common.seeding.rng_for``), so the output does not depend on
the number of workers. About ``synthetic.low_quality_fraction`` of each split is made
natively low quality with the degradation model of ``degrade`` (recorded in
``native_degradation``). The auxiliary set (the detector's IDRiD-like mask-annotated
images) holds lesion images of grades 2-4, all of high quality.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from comcl.common.params import Params
from comcl.common.seeding import rng_for
from comcl.data import degradation_fundus, severity
from comcl.data.source_types import AuxSource, Source, manifest_row
from comcl.data.synth_fundus import render_fundus
from comcl.imaging.lesion_classes import LESION_CLASSES

SPLIT_CODES = {"train": 0, "test": 1, "aux": 2}


@dataclass(frozen=True)
class SynthConfig:
    profile: str
    image_size: int
    n_train: int
    n_test: int
    n_aux: int
    low_quality_fraction: float
    grade_probs: tuple[float, ...]
    seed: int
    severity: tuple = ()   # degrade.severity as (type, multiplier) pairs

    @classmethod
    def from_params(cls, p: Params) -> "SynthConfig":
        probs = p.number_list("synthetic.grade_probs", length=5, lo=0.0)
        if sum(probs) <= 0 or probs[0] <= 0 or sum(probs[1:]) <= 0:
            from comcl.common.errors import ParamError
            raise ParamError("synthetic.grade_probs",
                             f"needs a positive weight for grade 0 and for some grade > 0, got {probs}")
        return cls(
            profile=p.choice("synthetic.profile", ["fundus", "chest"]),
            image_size=p.integer("synthetic.image_size", lo=64, hi=4096),
            n_train=p.integer("synthetic.n_train", lo=8),
            n_test=p.integer("synthetic.n_test", lo=4),
            n_aux=p.integer("synthetic.n_aux", lo=4),
            low_quality_fraction=p.number("synthetic.low_quality_fraction", 0.0, 1.0),
            grade_probs=tuple(v / sum(probs) for v in probs),
            seed=p.integer("synthetic.seed"),
            severity=tuple(sorted(severity.read(p).items())),
        )


@dataclass(frozen=True)
class Job:
    image_id: str
    split: str
    grade: int
    low_quality: bool
    size: int
    seed: int
    severity: tuple = ()



def plan(cfg: SynthConfig) -> tuple[list[Job], list[Job]]:
    jobs = []
    for split, n in (("train", cfg.n_train), ("test", cfg.n_test)):
        rng = rng_for(cfg.seed, "plan", split)
        grades = rng.choice(5, size=n, p=cfg.grade_probs)
        low = np.zeros(n, bool)
        low[rng.permutation(n)[: int(round(cfg.low_quality_fraction * n))]] = True
        for i in range(n):
            jobs.append(Job(f"syn_{split}_{i:05d}", split, int(grades[i]), bool(low[i]),
                            cfg.image_size, cfg.seed, cfg.severity))
    rng = rng_for(cfg.seed, "plan", "aux")
    aux_grades = rng.choice([2, 3, 4], size=cfg.n_aux, p=[0.4, 0.35, 0.25])
    aux = [Job(f"synaux_{i:05d}", "train", int(g), False, cfg.image_size, cfg.seed)
           for i, g in enumerate(aux_grades)]
    return jobs, aux


def render(job: Job) -> dict:
    """Render one planned image: manifest row fields plus encoded image, FOV and mask."""
    rgb, fov, mask, meta = render_fundus(rng_for(job.seed, "fundus", job.image_id),
                                         job.size, job.grade)
    native = ""
    if job.low_quality:
        rgb, dparams = degradation_fundus.degrade(rgb, fov, rng_for(job.seed, "native", job.image_id),
                                                   severity=dict(job.severity))
        native = json.dumps(dparams, sort_keys=True)
    return manifest_row(
        image_id=job.image_id, split=job.split, quality_code=int(job.low_quality),
        lesion=job.grade > 0, label=job.grade, source=f"synthetic:fundus:seed={job.seed}",
        size=job.size, native_degradation=native, meta=meta, image=rgb, fov=fov,
        lesion_mask=mask)


def main_source(params: Params):

    cfg = SynthConfig.from_params(params)
    if cfg.profile == "chest":  # greyscale multi-label stand-in: comcl.data.synth_chest
        from comcl.data import synth_chest
        return synth_chest.main_source(params, cfg)
    jobs, _ = plan(cfg)
    info = {"source": "synthetic", "modality": "fundus", "task": "grading",
            "num_classes": 5, "classes": ["0", "1", "2", "3", "4"], "channels": 3,
            "image_size": cfg.image_size, "lesion_masks": True,
            severity.INFO_KEY: severity.severity_of(dict(cfg.severity),
                                                    degradation_fundus.TYPES)}
    return Source(jobs, render, info)


def aux_source(params: Params):

    cfg = SynthConfig.from_params(params)
    if cfg.profile == "chest":
        from comcl.data import synth_chest
        return synth_chest.aux_source(params, cfg)
    _, aux = plan(cfg)
    return AuxSource(aux, render_aux, list(LESION_CLASSES))


def render_aux(job: Job) -> dict:
    """An auxiliary (detector) image: like ``render`` plus its lesion boxes."""
    from comcl.imaging.codec import decode_image
    from comcl.imaging.mask_boxes import mask_boxes

    res = render(job)
    res["boxes"] = mask_boxes(decode_image(res["lesion_mask"], grey=True))
    return res
