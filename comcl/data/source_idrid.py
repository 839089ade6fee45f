"""IDRiD segmentation part (``data.aux_source: idrid``): the detector's lesion boxes.

Layout under ``data.idrid.root`` (the folder holding ``A. Segmentation``, or that folder
itself; DESIGN §3)::

    A. Segmentation/1. Original Images/{a. Training Set,b. Testing Set}/IDRiD_NN.jpg
    A. Segmentation/2. All Segmentation Groundtruths/{a. Training Set,b. Testing Set}/
        {1. Microaneurysms,2. Haemorrhages,3. Hard Exudates,4. Soft Exudates,5. Optic Disc}/
        IDRiD_NN_{MA,HE,EX,SE,OD}.tif

Masks are found by their file name anywhere under the set's ground-truth folder. The
lesion classes are MA, HE, EX, SE (``comcl.imaging.lesion_classes.LESION_CLASSES``); the optic disc is
anatomy and only shows that an image is annotated. A missing mask file means no lesion
of that class (IDRiD has SE for about half the images). Masks are 1-bit palette TIFFs
(or 8-bit / RGB ones): any non-black pixel is lesion. Masks whose image is absent, and
images with no mask file at all, follow ``data.on_missing``.

Each image is cropped to its field of view and resized to ``data.image_size`` exactly
as the EyeQ images (``comcl.data.fundus_fov``), and its masks with the same geometry, by area
averaging then "> 0", so that a one-pixel microaneurysm survives the downscale; the
boxes are the connected components of each class at the stored size
(``comcl.imaging.mask_boxes.mask_boxes``). The ``split`` column follows IDRiD's training/testing sets.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from comcl.common.errors import DataError
from comcl.common.params import Params
from comcl.data import fundus_fov
from comcl.data.source_files import RealDataSettings, check_files, dataset_root, relative_to_root
from comcl.data.source_types import AuxSource, FileJob, manifest_row
from comcl.imaging.codec import read_image_file
from comcl.imaging.lesion_classes import LESION_CLASSES
from comcl.imaging.mask_boxes import mask_boxes

SEGMENTATION = "A. Segmentation"
IMAGES = "1. Original Images"
GROUNDTRUTHS = "2. All Segmentation Groundtruths"
MASK_CLASSES = LESION_CLASSES + ("OD",)
IMAGE_RE = re.compile(r"^(IDRiD_\d+)\.(jpe?g|png|tiff?)$", re.IGNORECASE)
MASK_RE = re.compile(r"^(IDRiD_\d+)_(MA|HE|EX|SE|OD)\.(tiff?|png|gif|bmp)$", re.IGNORECASE)
MAX_MASK_FRACTION = 0.5  # a "lesion" mask covering more is inverted or not a mask


def segmentation_root(root: Path) -> Path:
    for cand in (root / SEGMENTATION, root):
        if (cand / IMAGES).is_dir():
            return cand
    raise DataError(f"{root}: no IDRiD segmentation layout here: expected "
                    f"'{SEGMENTATION}/{IMAGES}/' (or '{IMAGES}/') below data.idrid.root "
                    "(see docs/datasets.md)")


def _split_of(set_name: str) -> str:
    return "test" if "test" in set_name.lower() else "train"


@dataclass(frozen=True)
class Job(FileJob):
    masks: tuple[tuple[str, str], ...]   # (lesion class, mask path), OD left out
    size: int


def plan(p: Params) -> tuple[list[Job], list[str]]:
    """Jobs (by set, then image id) and notes; reads no image."""
    root = dataset_root(p, "idrid")
    settings = RealDataSettings.from_params(p)
    seg = segmentation_root(root)
    notes: list[str] = []
    images: dict[str, tuple[str, Path]] = {}
    for set_dir in sorted(d for d in (seg / IMAGES).iterdir() if d.is_dir()):
        for fn in sorted(os.listdir(set_dir)):
            m = IMAGE_RE.match(fn)
            if m:
                images[f"{set_dir.name}/{m.group(1)}"] = (set_dir.name, set_dir / fn)
    masks: dict[str, dict[str, Path]] = {}
    for dirpath, dirnames, filenames in os.walk(seg / GROUNDTRUTHS):
        dirnames.sort()
        rel = Path(dirpath).relative_to(seg / GROUNDTRUTHS)
        if not rel.parts:
            continue
        for fn in sorted(filenames):
            m = MASK_RE.match(fn)
            if m:
                key = f"{rel.parts[0]}/{m.group(1)}"
                cls = m.group(2).upper()
                if cls in masks.setdefault(key, {}):
                    raise DataError(f"{Path(dirpath) / fn}: a second {cls} mask for "
                                    f"{m.group(1)} (also {masks[key][cls]})")
                masks[key][cls] = Path(dirpath) / fn
    missing = [f"{k} (masks {', '.join(sorted(masks[k]))})" for k in sorted(masks)
               if k not in images]
    unannotated = [k for k in sorted(images) if k not in masks]
    check_files(missing, unannotated, f"the masks of {seg / GROUNDTRUTHS}",
                seg / IMAGES, settings.on_missing, notes)
    jobs = []
    for key in sorted(k for k in images if k in masks):
        set_name, path = images[key]
        jobs.append(Job(key.split("/", 1)[1], _split_of(set_name), str(path),
                        relative_to_root(path, root),
                        tuple((c, str(masks[key][c])) for c in LESION_CLASSES if c in masks[key]),
                        settings.aux_image_size))
    ids = [j.image_id for j in jobs]
    if len(set(ids)) != len(ids):
        raise DataError(f"{seg / IMAGES}: an image id appears in two sets")
    return jobs, notes


def read_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A lesion mask file as a bool array (any non-black pixel), checked against the
    image's (height, width); 1-bit palette TIFFs read correctly."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mask = np.asarray(im.convert("L")) > 0
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read the mask (corrupt or truncated file: {exc})") \
            from None
    if shape is not None and mask.shape != tuple(shape):
        raise DataError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, its image "
                        f"{shape[1]}x{shape[0]}")
    if mask.mean() > MAX_MASK_FRACTION:
        raise DataError(f"{path}: {mask.mean():.0%} of the mask is lesion: an inverted "
                        "mask, or not a lesion mask")
    return mask


def render(job: Job) -> dict:
    """Crop and resize image and masks; the row, encoded arrays and the boxes."""
    image = read_image_file(job.path)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    circle = fundus_fov.detect(image)
    out = fundus_fov.crop_array(image, circle, job.size)
    fov = fundus_fov.output_mask(circle, job.size)
    out[~fov] = 0
    bits = np.zeros((job.size, job.size), np.uint8)
    for cls, path in job.masks:
        mask = read_mask(path, image.shape[:2])
        small = fundus_fov.crop_array(mask.astype(np.float32), circle, job.size) > 0
        bits |= small.astype(np.uint8) << LESION_CLASSES.index(cls)
    boxes = mask_boxes(bits)
    meta = {"orig_height": int(image.shape[0]), "orig_width": int(image.shape[1]),
            "fov": circle.as_dict(), "mask_classes": [c for c, _ in job.masks]}
    return {**manifest_row(image_id=job.image_id, split=job.split, quality_code=0,
                           lesion=bool(bits.any()), source=job.source, size=job.size,
                           meta=meta, image=out, fov=fov, lesion_mask=bits),
            "boxes": boxes}


def aux_source(params: Params):

    jobs, notes = plan(params)
    if not jobs:
        raise DataError("data.aux_source=idrid: no annotated IDRiD image found below "
                        f"{params.raw('data.idrid.root')}")
    return AuxSource(jobs, render, list(LESION_CLASSES), notes)
