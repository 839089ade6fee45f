"""The training and validation images of the diagnosis model (shared by ``finetune`` and
``linear_probe``): the four training subsets, sorted by image id, and the validation split."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from comcl.common import manifest
from comcl.common.errors import DataError

TRAIN_SUBSETS = ("HL", "LL", "HH", "LH")


def read_training(splits: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = pd.concat([manifest.read(splits / f"{s}.parquet", splits=("train",))
                       for s in TRAIN_SUBSETS], ignore_index=True)
    val = manifest.read(splits / "val.parquet", splits=("val",))
    if train.empty or val.empty:
        raise DataError(f"{splits}: the {'training' if train.empty else 'validation'} split is empty")
    return train.sort_values("image_id", kind="stable").reset_index(drop=True), val
