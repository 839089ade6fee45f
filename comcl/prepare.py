"""The ``prepare`` stage: the chosen data source to image shards and manifests.

Writes ``data/prepared/``: ``images/part-*.parquet`` (PNG shards), ``manifest.parquet``,
``dataset.json`` (task, classes, modality) and the auxiliary lesion-annotated set for the
detector in ``aux/`` (``images/``, ``manifest.parquet``, ``boxes.parquet``). The output
folder appears only when everything succeeded.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from comcl import manifest, paths
from comcl.atomic import atomic_dir
from comcl.boxes import boxes_frame
from comcl.errors import DataError
from comcl.imagestore import write_store
from comcl.parallel import ordered_map
from comcl.params import Params

SOURCES = ("synthetic",)
AUX_SOURCES = ("synthetic",)


def _write_aux(results, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    boxes = []

    def strip(results):
        for res in results:
            res = dict(res)
            for box in res.pop("boxes"):
                boxes.append({"image_id": res["image_id"], **box})
            yield res

    rows = write_store(strip(results), folder / paths.IMAGES)
    return pd.DataFrame(rows), boxes_frame(boxes)


def run(params: Params, out: str | Path, workers: int | None = None,
        progress: bool = True) -> dict:
    source = params.choice("data.source", SOURCES)
    aux_source = params.choice("data.aux_source", AUX_SOURCES)
    out = Path(out)
    with atomic_dir(out) as tmp:
        if source == "synthetic":
            from comcl import synth_dataset as sd
            cfg = sd.SynthConfig.from_params(params)
            jobs, aux_jobs = sd.plan(cfg)
            rows = write_store(ordered_map(sd.render, jobs, workers, "prepare: synthetic",
                                           progress=progress), tmp / paths.IMAGES)
            info = sd.dataset_info(cfg)
        df = pd.DataFrame(rows)
        for split in ("train", "test"):
            if not (df["split"] == split).any():
                raise DataError(f"{source}: the {split} split is empty")
        manifest.write(manifest.validate(df, f"{source} manifest"), tmp / paths.MANIFEST)
        if aux_source == "synthetic":
            aux_rows, aux_boxes = _write_aux(
                ordered_map(sd.render_aux, aux_jobs, workers, "prepare: auxiliary set",
                            progress=progress), tmp / paths.AUX)
        (tmp / paths.AUX).mkdir(exist_ok=True)
        manifest.write(aux_rows, tmp / paths.AUX / paths.MANIFEST)
        manifest.write(aux_boxes, tmp / paths.AUX / paths.AUX_BOXES)
        info["aux_source"] = aux_source
        info["counts"] = {s: int((df["split"] == s).sum()) for s in ("train", "test")}
        (tmp / paths.DATASET_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info
