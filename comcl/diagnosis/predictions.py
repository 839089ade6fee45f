"""Per-image test predictions, written by ``evaluate`` (``metrics/predictions.parquet``)
so that experiments can be compared image by image without re-training
(``comcl.experiments.compare``).

One row per test image, in the test manifest's order: ``image_id``, ``quality``
(high / low), and
- grading: ``label`` and ``prediction`` (grades), ``score_<class>`` (class probabilities,
  or ``score_value`` for the regression loss);
- multi-label: ``label_<class>``, ``pred_<class>`` (0/1) and ``score_<class>``.
The parquet's metadata holds ``task`` and ``classes``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from comcl.common.atomic import atomic_file

META_KEY = b"comcl"


def frame(task: str, classes: list[str], test: pd.DataFrame, y: np.ndarray,
          pred: np.ndarray, prob: np.ndarray) -> pd.DataFrame:
    out = {"image_id": test["image_id"].to_numpy(), "quality": test["quality"].to_numpy()}
    if task == "multilabel":
        for j, c in enumerate(classes):
            out[f"label_{c}"] = y[:, j].astype(np.int8)
            out[f"pred_{c}"] = pred[:, j].astype(np.int8)
            out[f"score_{c}"] = prob[:, j].astype(np.float32)
    else:
        out["label"] = y.astype(np.int16)
        out["prediction"] = pred.astype(np.int16)
        names = classes if prob.shape[1] == len(classes) else ["value"]
        for j, c in enumerate(names):
            out[f"score_{c}"] = prob[:, j].astype(np.float32)
    return pd.DataFrame(out)


def write(df: pd.DataFrame, task: str, classes: list[str], path: str | Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = {**(table.schema.metadata or {}),
            META_KEY: json.dumps({"task": task, "classes": list(classes)}).encode()}
    with atomic_file(path) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)


def read(source) -> tuple[pd.DataFrame, dict]:
    """(frame, {"task", "classes"}) from a path or a file-like object."""
    table = pq.read_table(source)
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    return table.to_pandas(), meta
