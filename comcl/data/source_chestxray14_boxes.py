"""NIH ChestX-ray14 boxes (``data.aux_source: chestxray14_boxes``): the detector's set.

``BBox_List_2017.csv`` (``Image Index``, ``Finding Label``, ``Bbox [x,y,w,h]``;
``Infiltrate`` there is ``Infiltration``), the images of it that are present, one box per
row in stored pixels. The boxes are given on the released 1024 x 1024 PNGs; a smaller
copy of an image (some mirrors ship 256 px) is scaled to that frame. All 880 box images
of the official release are in ``test_list.txt``: the auxiliary manifest records that
split, so that a detector can leave them out. Images are read and stored as in
``comcl.data.source_chestxray14``.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from comcl.common.errors import DataError
from comcl.common.params import Params
from comcl.data.source_chestxray14 import (
    BOX_FRAME,
    BOX_NAMES,
    Job,
    fit_square,
    read_list,
    stored_row,
)
from comcl.data.source_files import (
    ImageIndex,
    RealDataSettings,
    check_files,
    dataset_path,
    dataset_root,
    relative_to_root,
    safe_name,
)
from comcl.data.source_types import AuxSource
from comcl.imaging.codec import read_image_file
from comcl.imaging.lesion_classes import CHEST_DISEASES


def read_boxes(path: str | Path) -> pd.DataFrame:
    """``BBox_List_2017.csv`` as ``image``, ``disease``, ``x``, ``y``, ``w``, ``h``."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    if not rows or [h.strip() for h in rows[0][:2]] != ["Image Index", "Finding Label"]:
        raise DataError(f"{path}: expected the header 'Image Index,Finding Label,Bbox "
                        f"[x,y,w,h]', got {','.join(rows[0]) if rows else 'an empty file'!r}")
    out = []
    for i, row in enumerate(rows[1:], start=1):
        if not any(c.strip() for c in row):
            continue
        if len(row) < 6:
            raise DataError(f"{path}: data row {i} has {len(row)} fields, expected 6 "
                            "(image, finding, x, y, w, h)")
        image, finding = row[0].strip(), row[1].strip()
        if finding not in BOX_NAMES:
            raise DataError(f"{path}: column 'Finding Label' has the unknown disease "
                            f"{finding!r} (data row {i}, {image})")
        try:
            x, y, w, h = (float(v) for v in row[2:6])
        except ValueError:
            raise DataError(f"{path}: column 'Bbox [x,y,w,h]' is not numeric in data row "
                            f"{i} ({image}): {row[2:6]}") from None
        if not (w > 0 and h > 0) or not all(np.isfinite([x, y, w, h])):
            raise DataError(f"{path}: column 'Bbox [x,y,w,h]' has an empty box in data row "
                            f"{i} ({image}): {row[2:6]}")
        out.append((image, BOX_NAMES[finding], x, y, w, h))
    return pd.DataFrame(out, columns=["image", "disease", "x", "y", "w", "h"])


def aux_plan(p: Params) -> tuple[list[Job], list[str]]:
    root = dataset_root(p, "chestxray14")
    settings = RealDataSettings.from_params(p)
    bbox = dataset_path(p, root, "data.chestxray14.bbox_csv")
    images = dataset_path(p, root, "data.chestxray14.images", kind="dir")
    boxes = read_boxes(bbox)
    split_of: dict[str, str] = {}
    for key, name in (("data.chestxray14.train_list", "train"),
                      ("data.chestxray14.test_list", "test")):
        try:
            listed = dataset_path(p, root, key)
        except DataError:
            continue  # the lists are optional here: the split column then says train
        split_of.update(dict.fromkeys(read_list(listed), name))
    notes: list[str] = []
    index = ImageIndex(images)
    jobs, missing = [], []
    for image, part in boxes.groupby("image", sort=False):
        name = safe_name(image, str(bbox), "Image Index")
        rel = index.find(name)
        if rel is None:
            missing.append(name)
            continue
        path = index.path(rel)
        labels = tuple(d for d in CHEST_DISEASES if d in set(part["disease"]))
        jobs.append(Job(rel.rsplit("/", 1)[-1].rsplit(".", 1)[0],
                        split_of.get(image, "train"), str(path), relative_to_root(path, root),
                        labels, "", 0, settings.aux_image_size,
                        tuple(part[["disease", "x", "y", "w", "h"]].itertuples(index=False,
                                                                              name=None))))
    # Images without boxes are the normal case here: only missing box images count.
    check_files(missing, [], str(bbox), images, settings.on_missing, notes, what="box image")
    return jobs, notes


def render_aux(job: Job) -> dict:
    """An auxiliary image and its boxes, scaled from the 1024 frame to stored pixels."""
    image = read_image_file(job.path, grey=True)
    out, fov, (kx, ky, ox, oy) = fit_square(image, job.size)
    h, w = image.shape
    fx, fy = w / BOX_FRAME * kx, h / BOX_FRAME * ky
    boxes = []
    for disease, x, y, bw, bh in job.boxes:
        x0 = int(np.clip(np.floor(x * fx + ox), 0, job.size))
        y0 = int(np.clip(np.floor(y * fy + oy), 0, job.size))
        x1 = int(np.clip(np.ceil((x + bw) * fx + ox), 0, job.size))
        y1 = int(np.clip(np.ceil((y + bh) * fy + oy), 0, job.size))
        if x1 > x0 and y1 > y0:
            boxes.append({"lesion_class": disease, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                          "area": (x1 - x0) * (y1 - y0)})
    res = stored_row(job, image, out, fov)
    res["boxes"] = boxes
    return res


def aux_source(params: Params):

    jobs, notes = aux_plan(params)
    if not jobs:
        raise DataError("data.aux_source=chestxray14_boxes: none of the images of "
                        "BBox_List_2017.csv is present (the auxiliary set would be empty)")
    return AuxSource(jobs, render_aux, list(CHEST_DISEASES), notes)
