"""The ``degrade`` stage: raise each split's low-quality fraction to ``degrade.target_ratio``.

Reads ``data/prepared``; writes ``data/degraded`` (all images, the chosen ones degraded,
the others copied byte for byte; ``manifest.parquet`` with ``degraded`` and
``degradation`` JSON; ``dataset.json`` with the ``degrade.severity`` in force) and a
preview figure. Strengths are ``degrade.severity`` times the model's (``comcl.data.severity``). Each image's parameters come from its own
seed (``degrade.seed`` and its id), so the output is byte-identical for the same params
whatever the number of workers.
"""
from __future__ import annotations

import json
from pathlib import Path

from comcl.common import manifest, paths
from comcl.common.atomic import atomic_dir, atomic_file, write_text
from comcl.common.errors import DataError
from comcl.common.parallel import ordered_map
from comcl.common.params import Params
from comcl.common.seeding import rng_for
from comcl.data import degradation_fundus, severity
from comcl.data.target_ratio import choose_to_degrade
from comcl.imaging.codec import check_encoded, decode_image, encode_png
from comcl.imaging.imagestore import ImageStore, write_store


def model_for(modality: str):
    """The degradation module for an image modality (fundus photographs or X-rays)."""
    if modality == "fundus":
        return degradation_fundus
    if modality == "xray":
        from comcl.data import degradation_xray
        return degradation_xray
    raise ValueError(f"no degradation model for modality {modality!r}")


def _job(args) -> dict:
    row, selected, seed, types, modality, sev = args
    iid = row["image_id"]
    if not selected:  # copied byte for byte, but never a corrupt file passed on silently
        check_encoded(row["image"], f"image {iid}")
        return {**row, "degraded": False, "degradation": ""}
    image = decode_image(row["image"], f"image {iid}")
    fov = decode_image(row["fov"], f"fov of {iid}", grey=True) > 0
    out, params = model_for(modality).degrade(image, fov, rng_for(seed, "degrade", iid),
                                               allowed=types, severity=sev)
    return {**row, "image": encode_png(out), "degraded": True,
            "degradation": json.dumps(params, sort_keys=True)}


def run(params: Params, prepared: str | Path, out: str | Path, preview: str | Path | None,
        workers: int | None = None, progress: bool = True) -> dict:
    target = params.number("degrade.target_ratio", 0.0, 1.0, allow_none=True)
    seed = params.integer("degrade.seed")
    info = manifest.read_info(prepared)
    model = model_for(info["modality"])
    types = list(model.TYPES) if params.raw("degrade.types", None) is None \
        else params.subset_list("degrade.types", model.TYPES)
    sev = severity.severity_of(severity.read(params), model.TYPES)
    prepared = Path(prepared)
    df = manifest.read(prepared / paths.MANIFEST, splits=("train", "test"))
    for split in ("train", "test"):
        if not (df["split"] == split).any():
            raise DataError(f"{prepared / paths.MANIFEST}: the {split} split is empty")
    chosen = choose_to_degrade(df, target, seed)
    store = ImageStore(prepared / paths.IMAGES)
    ids = df["image_id"].tolist()
    jobs = ((row, row["image_id"] in chosen, seed, types, info["modality"], sev)
            for row in store.iter_raw(ids))
    with atomic_dir(out) as tmp:
        rows = write_store(ordered_map(_job, jobs, workers, "degrade", total=len(ids),
                                       progress=progress), tmp / paths.IMAGES)
        flags = {r["image_id"]: (r["degraded"], r["degradation"]) for r in rows}
        df["degraded"] = [flags[i][0] for i in ids]
        df["degradation"] = [flags[i][1] for i in ids]
        df.loc[df["degraded"], "quality"] = "low"
        manifest.write(df, tmp / paths.MANIFEST)
        info[severity.INFO_KEY] = sev  # what pretraining's quality view degrades with
        write_text(tmp / paths.DATASET_INFO, json.dumps(info, indent=2, sort_keys=True) + "\n")
    if preview:
        write_preview(store, df, info["modality"], types, seed, preview, sev)
    return {s: float((g["quality"] == "low").mean()) for s, g in df.groupby("split")}


def write_preview(store: ImageStore, df, modality: str, types: list[str], seed: int,
                  path: str | Path, sev: dict | None = None, n_images: int = 3) -> None:
    """The same few high-quality images before and after each degradation type."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = model_for(modality)
    pool = df[(df["split"] == "train") & ~df["degraded"] & (df["quality"] == "high")]
    ids = sorted(pool["image_id"])[:n_images] or sorted(df["image_id"])[:n_images]
    columns = ["original"] + types + (["all"] if len(types) > 1 else [])
    fig, axes = plt.subplots(len(ids), len(columns), squeeze=False,
                             figsize=(2.4 * len(columns), 2.4 * len(ids)))
    for r, iid in enumerate(ids):
        rec = store.record(iid)
        for c, col in enumerate(columns):
            img = rec.image
            if col != "original":
                chosen = types if col == "all" else [col]
                img, _ = model.degrade(rec.image, rec.fov, rng_for(seed, "preview", iid, col),
                                       types=chosen, severity=sev)
            ax = axes[r][c]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(col, fontsize=10)
            if c == 0:
                ax.set_ylabel(iid, fontsize=7)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=100, metadata={"Software": None})
    plt.close(fig)
