"""The ``prepare`` stage: the chosen data source to image shards and manifests.

Writes ``data/prepared/``: ``images/part-*.parquet`` (PNG shards), ``manifest.parquet``,
``dataset.json`` (task, classes, modality) and the auxiliary lesion-annotated set for the
detector in ``aux/`` (``images/``, ``manifest.parquet``, ``boxes.parquet``). The output
folder appears only when everything succeeded. Sources are described in
``comcl.data.sources``.

An image file that is corrupt (``comcl.imaging.codec``: truncated, or decoded only with
damaged data) stops the stage with its name (``data.on_corrupt: error``), or is left out
(``skip``): printed as a note like ``data.on_missing``'s and listed in ``dataset.json``
(``skipped_corrupt``, only when there is one).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd

from comcl.common import manifest, paths
from comcl.common.atomic import atomic_dir
from comcl.common.errors import CorruptImageError, DataError
from comcl.common.parallel import ordered_map
from comcl.common.params import Params
from comcl.common.text import plural
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


SKIPPED = "skipped_corrupt"  # the key of a skipped image's result and in dataset.json


def render_or_skip(render, on_corrupt: str, job) -> dict:
    """``render(job)``; a corrupt image file raises (``data.on_corrupt: error``, the
    message says how to skip it) or gives ``{SKIPPED: message}``."""
    try:
        return render(job)
    except CorruptImageError as exc:
        if on_corrupt == "error":
            raise CorruptImageError(f"{exc}; set data.on_corrupt: skip to leave corrupt "
                                    "images out") from None
        return {SKIPPED: str(exc)}


def _kept(results, skipped: list[str]):
    """The rendered rows, the skipped images' messages moved to ``skipped``."""
    for res in results:
        if SKIPPED in res:
            skipped.append(res[SKIPPED])
        else:
            yield res


def run(params: Params, out: str | Path, workers: int | None = None,
        progress: bool = True) -> dict:
    name = params.choice("data.source", sources.MAIN_SOURCES)
    aux_name = params.choice("data.aux_source", sources.AUX_SOURCES)
    on_corrupt = params.choice("data.on_corrupt", ["error", "skip"], default="error")
    main = sources.main_source(name, params)
    aux = sources.aux_source(aux_name, params)
    for note in main.notes + aux.notes:
        print(f"prepare: {note}")
    out = Path(out)
    skipped: list[str] = []

    def rendered(source, desc):
        fn = functools.partial(render_or_skip, source.render, on_corrupt)
        return _kept(ordered_map(fn, source.jobs, workers, desc, progress=progress), skipped)

    with atomic_dir(out) as tmp:
        rows = write_store(rendered(main, f"prepare: {name}"), tmp / paths.IMAGES)
        df = pd.DataFrame(rows)
        for split in ("train", "test"):
            if df.empty or not (df["split"] == split).any():
                raise DataError(f"data.source={name}: the {split} split is empty")
        manifest.write(manifest.validate(df, f"{name} manifest", splits=("train", "test")),
                       tmp / paths.MANIFEST)
        aux_rows, aux_boxes = _write_aux(rendered(aux, f"prepare: {aux_name} (auxiliary)"),
                                         tmp / paths.AUX)
        if aux_rows.empty:
            raise DataError(f"data.aux_source={aux_name}: no auxiliary images")
        manifest.write(aux_rows, tmp / paths.AUX / paths.MANIFEST)
        manifest.write(aux_boxes, tmp / paths.AUX / paths.AUX_BOXES)
        info = dict(main.info, aux_source=aux_name, aux_classes=list(aux.classes),
                    counts={s: int((df["split"] == s).sum()) for s in ("train", "test")})
        if skipped:
            info[SKIPPED] = skipped
            print(f"prepare: skipped: {plural(len(skipped), 'corrupt image')} "
                  f"(data.on_corrupt: skip; listed in dataset.json): "
                  f"{'; '.join(skipped[:5])}{'; ...' if len(skipped) > 5 else ''}")
        (tmp / paths.DATASET_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info
