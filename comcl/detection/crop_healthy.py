"""The ``crop_healthy`` stage: random windows from the HH and LH training images.

``patches.healthy_per_image`` windows of ``patches.size`` px per image, each with at least
``patches.fov_min`` of its pixels inside the field of view, at seeded random positions.
When the images carry lesion masks, windows that touch a lesion pixel are refused (a
healthy image has none; the check guards against label noise). Writes
``data/patches/healthy_boxes.parquet``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from comcl.common import manifest, paths
from comcl.common.atomic import write_text
from comcl.common.errors import DataError
from comcl.common.params import Params
from comcl.common.text import plural
from comcl.common.seeding import rng_for
from comcl.detection.windows import check_fits, random_windows
from comcl.imaging.imagestore import ImageStore

HEALTHY_COLUMNS = ["image_id", "x0", "y0", "x1", "y1", "score", "lesion_class", "subset",
                   "quality"]


def run(params: Params, splits: str | Path, degraded: str | Path, out: str | Path,
        metrics_out: str | Path | None = None, progress: bool = True) -> dict:
    size = params.integer("patches.size", lo=8)
    per_image = params.integer("patches.healthy_per_image", lo=1)
    fov_min = params.number("patches.fov_min", 0.0, 1.0)
    seed = params.integer("patches.seed")
    images = manifest.read_subsets(Path(splits), ("HH", "LH"))
    if images.empty:
        raise DataError(f"{splits}: HH and LH are both empty: no healthy image to crop")
    store = ImageStore(Path(degraded) / paths.IMAGES)
    rows, short = [], []
    for row in tqdm(images.itertuples(), total=len(images), desc="crop_healthy", unit="img",
                    disable=not progress):
        rec = store.record(row.image_id)
        check_fits(params, size, rec.fov.shape[1], rec.fov.shape[0], row.image_id)
        usable = rec.fov if rec.lesion_mask is None else rec.fov & (rec.lesion_mask == 0)
        # Windows are sampled where usable pixels are; a window touching a lesion is refused.
        wins = random_windows(usable, size, per_image, fov_min, rng_for(seed, row.image_id))
        if rec.lesion_mask is not None:
            wins = [w for w in wins if not rec.lesion_mask[w[1]:w[3], w[0]:w[2]].any()]
        if len(wins) < per_image:
            short.append(row.image_id)
        for x0, y0, x1, y1 in wins:
            rows.append({"image_id": row.image_id, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                         "score": float("nan"), "lesion_class": "healthy",
                         "subset": row.subset, "quality": row.quality})
    boxes = pd.DataFrame(rows, columns=HEALTHY_COLUMNS).astype(
        {"x0": "int32", "y0": "int32", "x1": "int32", "y1": "int32", "score": "float32"})
    if boxes.empty:
        raise DataError(f"crop_healthy: no {size}px window with {fov_min:.0%} inside the field "
                        "of view in any HH/LH image; lower patches.fov_min or patches.size")
    manifest.write(boxes, out)
    if short:
        print(f"crop_healthy: {plural(len(short), 'image')} gave fewer than "
              f"{plural(per_image, 'window')} "
              f"(first: {', '.join(short[:5])})")
    summary = {"images": len(images), "windows": len(boxes),
               "windows_per_subset": {s: int((boxes["subset"] == s).sum()) for s in ("HH", "LH")},
               "images_short_of_windows": len(short)}
    if metrics_out:
        write_text(metrics_out, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
