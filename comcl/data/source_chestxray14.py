"""NIH ChestX-ray14 (``data.source: chestxray14``, ``data.aux_source: chestxray14_boxes``).

Main set: ``Data_Entry_2017.csv`` (``Image Index``, ``Finding Labels`` pipe-separated or
``No Finding``, ``Patient ID``; the 2017 file's header and rows may end with a trailing
comma, the v2020 file says ``Patient Sex`` for ``Patient Gender``: only the three
columns above are read, by name), the official ``train_val_list.txt`` / ``test_list.txt``
for the split, and the PNG images (in one folder or its sub-folders). The task is the
8-disease multi-label one of ChestX-ray8 (``comcl.imaging.lesion_classes.CHEST_DISEASES``): ``labels`` is
the list of those diseases found (the other six findings of ChestX-ray14 are not labels),
``lesion`` is any of them, ``group`` the patient (``comcl.data.split`` carves validation by
patient; a patient in both official lists is an error). Quality comes from
``data.quality_csv`` when given (``quality`` high/low, or EyeQ-style codes 0 = high,
1-2 = low), else every image is high quality and ``degrade`` sets the ratio. Images are
read as one grey channel and resized to ``data.image_size`` (a non-square image is
centred on a black square; the FOV is the image area: all ones for a square image).

Auxiliary set (the boxes): ``comcl.data.source_chestxray14_boxes``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from comcl.common.errors import DataError
from comcl.common.params import Params
from comcl.common.text import plural
from comcl.data.source_files import (
    SHOW,
    ImageIndex,
    RealDataSettings,
    check_files,
    csv_header,
    dataset_path,
    dataset_root,
    read_table,
    relative_to_root,
    safe_name,
)
from comcl.data.source_types import FileJob, Source, manifest_row
from comcl.imaging.codec import read_image_file
from comcl.imaging.lesion_classes import CHEST_DISEASES

ENTRY_COLUMNS = ("Image Index", "Finding Labels", "Patient ID")
OTHER_FINDINGS = ("Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
                  "Hernia", "No Finding")
KNOWN_FINDINGS = frozenset(CHEST_DISEASES + OTHER_FINDINGS)
BOX_NAMES = {**{d: d for d in CHEST_DISEASES}, "Infiltrate": "Infiltration"}
BOX_FRAME = 1024  # the boxes' coordinate frame: the released 1024 x 1024 PNGs


@dataclass(frozen=True)
class ChestConfig:
    root: Path
    data_entry: Path
    train_list: Path
    test_list: Path
    images: Path
    quality_csv: Path | None
    settings: RealDataSettings

    @classmethod
    def from_params(cls, p: Params) -> "ChestConfig":
        root = dataset_root(p, "chestxray14")
        return cls(root=root,
                   data_entry=dataset_path(p, root, "data.chestxray14.data_entry"),
                   train_list=dataset_path(p, root, "data.chestxray14.train_list"),
                   test_list=dataset_path(p, root, "data.chestxray14.test_list"),
                   images=dataset_path(p, root, "data.chestxray14.images", kind="dir"),
                   quality_csv=dataset_path(p, root, "data.quality_csv", allow_none=True),
                   settings=RealDataSettings.from_params(p))


def read_data_entry(path: str | Path) -> pd.DataFrame:
    """``Data_Entry_2017.csv`` (2017 or v2020) as ``image``, ``patient``, ``labels``
    (the CHEST_DISEASES found, in that order) and ``findings`` (the raw text)."""
    path = Path(path)
    df = read_table(path, ENTRY_COLUMNS, only_required=True)
    df = df.apply(lambda s: s.str.strip())
    for column in ENTRY_COLUMNS:
        empty = df[column] == ""
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise DataError(f"{path}: column {column!r} is empty in data row {i + 1} "
                            f"({plural(int(empty.sum()), 'such row')})")
    dup = df["Image Index"].duplicated()
    if dup.any():
        raise DataError(f"{path}: image {df['Image Index'][dup].iloc[0]!r} is listed twice")
    # Parse each distinct label string once (a few hundred of them for 112,120 rows).
    parsed = {}
    for text in df["Finding Labels"].unique():
        parts = [t.strip() for t in text.split("|")]
        unknown = [t for t in parts if t not in KNOWN_FINDINGS]
        if unknown:
            row = int(np.flatnonzero(df["Finding Labels"] == text)[0])
            raise DataError(f"{path}: column 'Finding Labels' has the unknown finding "
                            f"{unknown[0]!r} ({df['Image Index'].iloc[row]}, data row {row + 1})")
        parsed[text] = [d for d in CHEST_DISEASES if d in parts]
    return pd.DataFrame({"image": df["Image Index"], "patient": df["Patient ID"],
                         "labels": df["Finding Labels"].map(parsed),
                         "findings": df["Finding Labels"]})


def read_list(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    return list(dict.fromkeys(x.strip() for x in lines if x.strip()))


def assign_splits(entries: pd.DataFrame, train: list[str], test: list[str],
                  where: dict) -> pd.Series:
    """The official split of each Data_Entry row; every inconsistency is a DataError."""
    both = set(train) & set(test)
    if both:
        raise DataError(f"{where['test']}: {plural(len(both), 'image')} also in {where['train']}, "
                        f"e.g. {sorted(both)[0]}")
    known = set(entries["image"])
    for name, listed in (("train", train), ("test", test)):
        absent = [x for x in listed if x not in known]
        if absent:
            raise DataError(f"{where[name]}: {plural(len(absent), 'listed image')} without a row in "
                            f"{where['entries']}, e.g. {', '.join(sorted(absent)[:SHOW])}")
    lookup = {**dict.fromkeys(train, "train"), **dict.fromkeys(test, "test")}
    split = pd.Series([lookup.get(x) for x in entries["image"]], index=entries.index,
                      dtype=object)
    none = split.isna()
    if none.any():
        raise DataError(f"{where['entries']}: {plural(int(none.sum()), 'image')} in neither "
                        f"{where['train']} nor {where['test']}, e.g. "
                        f"{', '.join(sorted(entries['image'][none])[:SHOW])}")
    per = pd.DataFrame({"patient": entries["patient"], "split": split})
    mixed = per.groupby("patient")["split"].nunique()
    mixed = mixed[mixed > 1]
    if len(mixed):
        raise DataError(f"{where['train']} / {where['test']}: {plural(len(mixed), 'patient')} with "
                        f"images in both splits, e.g. Patient ID {sorted(mixed.index)[0]}")
    return split


def read_quality(path: Path, images: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(quality high/low, quality_code) per image from a user CSV (see module docstring)."""
    header = csv_header(path)
    image_col = next((c for c in ("Image Index", "image", "image_id") if c in header), None)
    if image_col is None or "quality" not in header:
        raise DataError(f"{path}: needs an image column ('Image Index', 'image' or "
                        f"'image_id') and a 'quality' column (header: {','.join(header)})")
    q = read_table(path)
    key = q[image_col].str.strip()
    key = key.where(key.str.lower().str.endswith(".png"), key + ".png")
    text = q["quality"].str.strip().str.lower()
    code = text.map({"high": 0, "low": 1, "0": 0, "1": 1, "2": 2})
    if code.isna().any():
        i = int(np.flatnonzero(code.isna())[0])
        raise DataError(f"{path}: column 'quality' must be high/low or 0/1/2, got "
                        f"{q['quality'].iloc[i]!r} (data row {i + 1})")
    codes = pd.Series(code.astype(int).to_numpy(), index=key.to_numpy())
    if codes.index.duplicated().any():
        raise DataError(f"{path}: image {codes.index[codes.index.duplicated()][0]!r} "
                        "is listed twice")
    absent = ~images.isin(codes.index)
    if absent.any():
        raise DataError(f"{path}: no quality for {plural(int(absent.sum()), 'image')}, e.g. "
                        f"{', '.join(sorted(images[absent])[:SHOW])}")
    got = codes.reindex(images.to_numpy()).to_numpy()
    return (pd.Series(np.where(got == 0, "high", "low"), index=images.index),
            pd.Series(got, index=images.index))


@dataclass(frozen=True)
class Job(FileJob):
    labels: tuple[str, ...]
    group: str
    quality_code: int
    size: int
    boxes: tuple = field(default=())  # auxiliary: (disease, x, y, w, h) in the 1024 frame


def plan(cfg: ChestConfig) -> tuple[list[Job], list[str], dict]:
    """Jobs for the images present (Data_Entry order), notes and counts; reads no image."""
    notes: list[str] = []
    entries = read_data_entry(cfg.data_entry)
    where = {"entries": str(cfg.data_entry), "train": str(cfg.train_list),
             "test": str(cfg.test_list)}
    entries["split"] = assign_splits(entries, read_list(cfg.train_list),
                                     read_list(cfg.test_list), where)
    if cfg.quality_csv is not None:
        entries["quality"], entries["quality_code"] = read_quality(cfg.quality_csv,
                                                                   entries["image"])
    else:
        entries["quality"], entries["quality_code"] = "high", 0
    counts = {"rows": len(entries),
              "split": {k: int(v) for k, v in entries["split"].value_counts().items()}}
    index = ImageIndex(cfg.images)
    names = [safe_name(n, str(cfg.data_entry), "Image Index") for n in entries["image"]]
    rels = [index.find(n) for n in names]
    present = np.array([r is not None for r in rels])
    missing = [n for n, ok in zip(names, present) if not ok]
    matched = {r for r in rels if r is not None}
    unlisted = [r for r in index.by_rel if r not in matched]
    check_files(missing, unlisted, str(cfg.data_entry), cfg.images, cfg.settings.on_missing, notes)
    jobs = []
    for (row, rel) in zip(entries[present].itertuples(index=False),
                          [r for r in rels if r is not None]):
        path = index.path(rel)
        jobs.append(Job(rel.rsplit("/", 1)[-1].rsplit(".", 1)[0], row.split, str(path),
                        relative_to_root(path, cfg.root), tuple(row.labels), str(row.patient),
                        int(row.quality_code), cfg.settings.image_size))
    return jobs, notes, counts


def fit_square(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Resize to ``size`` x ``size``, centring a non-square image on black:
    (image, fov bool, (x scale, y scale, x offset, y offset)): stored = file * scale + offset."""
    h, w = image.shape[:2]
    k = size / max(h, w)
    nw, nh = max(1, round(w * k)), max(1, round(h * k))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    small = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.zeros((size, size), np.uint8)
    fov = np.zeros((size, size), bool)
    ox, oy = (size - nw) // 2, (size - nh) // 2
    out[oy:oy + nh, ox:ox + nw] = small
    fov[oy:oy + nh, ox:ox + nw] = True
    return out, fov, (nw / w, nh / h, ox, oy)


def stored_row(job: Job, image: np.ndarray, out: np.ndarray, fov: np.ndarray) -> dict:
    return manifest_row(
        image_id=job.image_id, split=job.split, quality_code=job.quality_code,
        lesion=bool(job.labels), labels=job.labels, group=job.group, source=job.source,
        size=job.size, meta={"orig_height": int(image.shape[0]),
                             "orig_width": int(image.shape[1])},
        image=out, fov=fov)


def render(job: Job) -> dict:
    """Read as one grey channel, resize; the manifest row and encoded arrays."""
    image = read_image_file(job.path, grey=True)
    out, fov, _ = fit_square(image, job.size)
    return stored_row(job, image, out, fov)


def info(image_size: int) -> dict:
    return {"source": "chestxray14", "modality": "xray", "task": "multilabel",
            "num_classes": len(CHEST_DISEASES), "classes": list(CHEST_DISEASES),
            "channels": 1, "image_size": image_size, "lesion_masks": False}


def main_source(params: Params):

    cfg = ChestConfig.from_params(params)
    jobs, notes, _ = plan(cfg)
    for split, listed in (("train", cfg.train_list), ("test", cfg.test_list)):
        if not any(j.split == split for j in jobs):
            raise DataError(f"data.source=chestxray14: no image of {cfg.images} is in the "
                            f"{split} split ({listed})")
    return Source(jobs, render, info(cfg.settings.image_size), notes)


# --- auxiliary set: BBox_List_2017.csv -------------------------------------------------
