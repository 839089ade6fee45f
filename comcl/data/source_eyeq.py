"""EyeQ (``data.source: eyeq``): DR grading on EyePACS photographs with quality labels.

Reads ``Label_EyeQ_train.csv`` / ``Label_EyeQ_test.csv`` (first column an unnamed index;
``image``, ``quality``, ``DR_grade``) and an images folder holding the EyePACS
``<id>_<eye>.jpeg`` files, or EyeQ's preprocessed ``.png`` files of the same stem (DESIGN
§3). Quality 0 (Good) is high quality, 1 (Usable) and 2 (Reject) low quality; the raw
code is kept in ``quality_code``. ``label`` is the DR grade (0-4), ``lesion`` is grade > 0,
``group`` the patient (the number before ``_left``/``_right``: both eyes stay in one
split). Each image is cropped to its field of view and resized to ``data.image_size``
(``comcl.data.fundus_fov``); the circular FOV mask is stored. Large JPEGs are decoded at
1/2-1/8 scale by the decoder (``read_photo``), 3x faster than a full decode.

Listed but absent and present but unlisted images follow ``data.on_missing``. With
``data.eyeq.test_csv: null`` the test split is held out of the training CSV instead:
``data.eyeq.test_holdout`` of its patients (those present), chosen by a hash of the
patient id (no seed needed, stable when images are added).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from comcl.common.errors import DataError
from comcl.common.params import Params
from comcl.common.text import plural
from comcl.common.seeding import stable_hash
from comcl.data import fundus_fov
from comcl.data.source_files import (
    ImageIndex,
    RealDataSettings,
    check_files,
    dataset_path,
    dataset_root,
    read_table,
    relative_to_root,
    safe_name,
)
from comcl.data.source_types import FileJob, Source, manifest_row
from comcl.imaging.codec import check_encoded, decode_image, read_bytes

COLUMNS = ("image", "quality", "DR_grade")
QUALITY_NAMES = {0: "Good", 1: "Usable", 2: "Reject"}
STEM_EXTENSIONS = (".png", ".jpeg", ".jpg", ".tif", ".tiff")


@dataclass(frozen=True)
class EyeQConfig:
    root: Path
    train_csv: Path
    test_csv: Path | None
    images: Path
    test_holdout: float
    settings: RealDataSettings

    @classmethod
    def from_params(cls, p: Params) -> "EyeQConfig":
        root = dataset_root(p, "eyeq")
        return cls(root=root,
                   train_csv=dataset_path(p, root, "data.eyeq.train_csv"),
                   test_csv=dataset_path(p, root, "data.eyeq.test_csv", allow_none=True),
                   images=dataset_path(p, root, "data.eyeq.images", kind="dir"),
                   test_holdout=p.number("data.eyeq.test_holdout", 0.0, 1.0, lo_open=True,
                                         hi_open=True),
                   settings=RealDataSettings.from_params(p))


def read_labels(path: str | Path) -> pd.DataFrame:
    """An EyeQ label CSV as ``image`` (str), ``quality_code`` (0-2), ``label`` (0-4)."""
    path = Path(path)
    df = read_table(path, COLUMNS, "; expected EyeQ's ',image,quality,DR_grade'")
    out = pd.DataFrame({"image": df["image"].str.strip()})
    if (out["image"] == "").any():
        row = int(np.flatnonzero(out["image"] == "")[0])
        raise DataError(f"{path}: column 'image' is empty in data row {row + 1}")
    for column, name, allowed in (("quality", "quality_code", (0, 1, 2)),
                                  ("DR_grade", "label", (0, 1, 2, 3, 4))):
        values = pd.to_numeric(df[column].str.strip(), errors="coerce")
        bad = ~values.isin(allowed)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: column {column!r} must be one of {list(allowed)}, got "
                            f"{df[column].iloc[i]!r} for {out['image'].iloc[i]} "
                            f"(data row {i + 1}; {plural(int(bad.sum()), 'bad row')})")
        out[name] = values.astype("int64")
    dup = out["image"].duplicated()
    if dup.any():
        raise DataError(f"{path}: image {out['image'][dup].iloc[0]!r} is listed twice")
    return out


def summarize(df: pd.DataFrame) -> dict:
    """Row count, low-quality count and fraction, count per raw quality code."""
    low = int((df["quality_code"] > 0).sum())
    return {"rows": len(df), "low_quality": low,
            "low_quality_fraction": low / len(df) if len(df) else 0.0,
            "by_code": {int(k): int(v) for k, v in
                        df["quality_code"].value_counts().sort_index().items()}}


def patient_of(stem: str) -> str:
    """EyePACS ``<patient>_<left|right>``: the patient id; otherwise the stem itself."""
    head, sep, tail = stem.rpartition("_")
    return head if sep and tail.lower() in ("left", "right") else stem


@dataclass(frozen=True)
class Job(FileJob):
    label: int
    quality_code: int
    group: str
    size: int


def plan(cfg: EyeQConfig) -> tuple[list[Job], list[str]]:
    """Jobs for the images present (CSV order: train, then test) and notes; reads no image."""
    notes: list[str] = []
    tables = [("train", cfg.train_csv, read_labels(cfg.train_csv))]
    if cfg.test_csv is not None:
        tables.append(("test", cfg.test_csv, read_labels(cfg.test_csv)))
        both = set(tables[0][2]["image"]) & set(tables[1][2]["image"])
        if both:
            raise DataError(f"{cfg.test_csv}: {plural(len(both), 'image')} also listed in "
                            f"{cfg.train_csv}, e.g. {sorted(both)[0]}")
    index = ImageIndex(cfg.images)
    found: dict[str, str] = {}
    missing: list[str] = []
    rows = []
    for split, csv_path, df in tables:
        for image, quality, label in zip(df["image"], df["quality_code"], df["label"]):
            name = safe_name(image, str(csv_path), "image")
            rel = index.find(name, STEM_EXTENSIONS)
            if rel is None:
                missing.append(name)
                continue
            if rel in found:
                raise DataError(f"{index.path(rel)}: matches two listed images, "
                                f"{found[rel]!r} and {name!r}")
            found[rel] = name
            rows.append((split, name, rel, int(quality), int(label)))
    unlisted = [rel for rel in index.by_rel if rel not in found]
    listed_in = " and ".join(str(p) for _, p, _ in tables)
    check_files(missing, unlisted, listed_in, cfg.images, cfg.settings.on_missing, notes)
    jobs = []
    for split, name, rel, quality, label in rows:
        stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        path = index.path(rel)
        jobs.append(Job(stem, split, str(path), relative_to_root(path, cfg.root), label,
                        quality, patient_of(stem), cfg.settings.image_size))
    ids = pd.Series([j.image_id for j in jobs], dtype=object)
    if ids.duplicated().any():
        raise DataError(f"{cfg.images}: two listed image files share the stem "
                        f"{ids[ids.duplicated()].iloc[0]!r}")
    if cfg.test_csv is None:
        jobs, note = _hold_out(jobs, cfg.test_holdout)
        notes.append(note)
    return jobs, notes


def _hold_out(jobs: list[Job], fraction: float) -> tuple[list[Job], str]:
    patients = sorted({j.group for j in jobs}, key=lambda g: (stable_hash(f"eyeq-test:{g}"), g))
    n = min(max(1, int(round(fraction * len(patients)))), len(patients) - 1)
    held = set(patients[:n])
    out = [Job(j.image_id, "test" if j.group in held else j.split, j.path, j.source, j.label,
               j.quality_code, j.group, j.size) for j in jobs]
    n_img = sum(j.group in held for j in jobs)
    return out, (f"data.eyeq.test_csv is null: {plural(n_img, 'image')} of {n} of "
                 f"{plural(len(patients), 'patient')} held out of the training CSV as the test split")


def read_photo(path: str | Path, size: int) -> tuple[np.ndarray, int, tuple[int, int]]:
    """(RGB image, decode factor, original (height, width)) of a fundus photograph.

    A corrupt or truncated file is a DataError naming it. A JPEG much larger than needed
    is decoded at 1/2, 1/4 or 1/8 size by the decoder itself (DCT scaling), keeping at
    least 1.5x ``size`` on the shorter side: a 4752 x 3168 EyePACS file decodes in 40 ms
    instead of 185 ms."""
    data = read_bytes(path)
    check_encoded(data, str(path))
    factor, shape = 1, None
    if data[:2] == b"\xff\xd8":
        from PIL import Image
        try:
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                shape = (im.size[1], im.size[0])
        except Exception:  # noqa: BLE001 - the full decode below names a bad file
            shape = None
        while shape and factor < 8 and min(shape) / (2 * factor) >= 1.5 * size:
            factor *= 2
    image = decode_image(data, str(path), strict=True, reduce=factor)
    if factor == 1:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        return image, 1, image.shape[:2]
    return image, factor, shape


def render(job: Job) -> dict:
    """Read, crop to the field of view, resize; the manifest row and encoded arrays."""
    image, factor, (h, w) = read_photo(job.path, job.size)
    out, fov, circle = fundus_fov.preprocess(image, job.size)
    c = circle.as_dict()
    meta = {"orig_height": int(h), "orig_width": int(w), "decode_factor": factor,
            "fov": {**c, **{k: round(c[k] * factor, 2) for k in ("cx", "cy", "radius")}}}
    return manifest_row(
        image_id=job.image_id, split=job.split, quality_code=job.quality_code,
        lesion=job.label > 0, label=job.label, group=job.group, source=job.source,
        size=job.size, meta=meta, image=out, fov=fov)


def info(image_size: int) -> dict:
    return {"source": "eyeq", "modality": "fundus", "task": "grading", "num_classes": 5,
            "classes": ["0", "1", "2", "3", "4"], "channels": 3, "image_size": image_size,
            "lesion_masks": False}


def main_source(params: Params):

    cfg = EyeQConfig.from_params(params)
    jobs, notes = plan(cfg)
    for split in ("train", "test"):
        if not any(j.split == split for j in jobs):
            hint = (" (none of the images it lists is present; set data.eyeq.test_csv: null "
                    "to hold out data.eyeq.test_holdout of the training patients instead)"
                    if split == "test" else "")
            raise DataError(f"data.source=eyeq: the {split} split is empty{hint}")
    return Source(jobs, render, info(cfg.settings.image_size), notes)
