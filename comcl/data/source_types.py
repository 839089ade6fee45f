"""What a data source gives ``prepare`` (the contract is described in ``comcl.data.sources``)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from comcl.imaging.codec import encode_png


@dataclass(frozen=True)
class FileJob:
    """One image file of a real dataset to render (adapters add their own fields)."""
    image_id: str
    split: str
    path: str
    source: str


@dataclass
class Source:
    jobs: list
    render: Callable[[object], dict]
    info: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. files skipped, printed by prepare


@dataclass
class AuxSource:
    jobs: list
    render: Callable[[object], dict]
    classes: list[str]
    notes: list[str] = field(default_factory=list)


def manifest_row(*, image_id: str, split: str, quality_code: int, lesion: bool, source: str,
                 size: int, meta: dict, image: np.ndarray, fov: np.ndarray,
                 lesion_mask: np.ndarray | None = None, label: int | None = None,
                 labels=None, group: str | None = None,
                 native_degradation: str | None = None) -> dict:
    """One rendered image as ``prepare`` stores it: the manifest fields in the contract's
    column order (grading ``label`` or multi-label ``labels``; ``group``; native
    degradation where the source has one) and the encoded image, FOV and lesion mask.
    Quality code 0 is high quality, any other low."""
    row = {"image_id": image_id, "split": split,
           "quality": "high" if quality_code == 0 else "low",
           "quality_code": int(quality_code), "lesion": bool(lesion)}
    if label is not None:
        row["label"] = label
    if labels is not None:
        row["labels"] = list(labels)
    if group is not None:
        row["group"] = group
    row.update(source=source, width=size, height=size)
    if native_degradation is not None:
        row["native_degradation"] = native_degradation
    row.update(meta=json.dumps(meta, sort_keys=True), image=encode_png(image),
               fov=encode_png(fov.astype(np.uint8) * 255),
               lesion_mask=None if lesion_mask is None else encode_png(lesion_mask))
    return row
