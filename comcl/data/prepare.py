"""The ``prepare`` stage: the chosen data source to image shards and manifests.

Writes ``data/prepared/``: ``images/part-*.parquet`` (PNG shards), ``manifest.parquet``,
``dataset.json`` (task, classes, modality) and the auxiliary lesion-annotated set for the
detector in ``aux/`` (``images/``, ``manifest.parquet``, ``boxes.parquet``). The output
folder appears only when everything succeeded. Sources are described in
``comcl.data.sources``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from comcl.common import manifest, paths
from comcl.common.atomic import atomic_dir
from comcl.common.errors import DataError
from comcl.common.parallel import ordered_map
from comcl.common.params import Params
from comcl.data import sources
from comcl.imaging.imagestore import write_store
from comcl.imaging.mask_boxes import boxes_frame


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
    name = params.choice("data.source", sources.MAIN_SOURCES)
    aux_name = params.choice("data.aux_source", sources.AUX_SOURCES)
    main = sources.main_source(name, params)
    aux = sources.aux_source(aux_name, params)
    for note in main.notes + aux.notes:
        print(f"prepare: {note}")
    out = Path(out)
    with atomic_dir(out) as tmp:
        rows = write_store(ordered_map(main.render, main.jobs, workers, f"prepare: {name}",
                                       progress=progress), tmp / paths.IMAGES)
        df = pd.DataFrame(rows)
        for split in ("train", "test"):
            if df.empty or not (df["split"] == split).any():
                raise DataError(f"data.source={name}: the {split} split is empty")
        manifest.write(manifest.validate(df, f"{name} manifest", splits=("train", "test")),
                       tmp / paths.MANIFEST)
        aux_rows, aux_boxes = _write_aux(
            ordered_map(aux.render, aux.jobs, workers, f"prepare: {aux_name} (auxiliary)",
                        progress=progress), tmp / paths.AUX)
        if aux_rows.empty:
            raise DataError(f"data.aux_source={aux_name}: no auxiliary images")
        manifest.write(aux_rows, tmp / paths.AUX / paths.MANIFEST)
        manifest.write(aux_boxes, tmp / paths.AUX / paths.AUX_BOXES)
        info = dict(main.info, aux_source=aux_name, aux_classes=list(aux.classes),
                    counts={s: int((df["split"] == s).sum()) for s in ("train", "test")})
        (tmp / paths.DATASET_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info
