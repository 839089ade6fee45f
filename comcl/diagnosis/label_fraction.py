"""The low-label protocol: fine-tune on ``finetune.label_fraction`` of the training images.

The subset is drawn per stratum (the grade, or the label set for multi-label data, crossed
with the image quality), ceil(fraction x stratum size) images from each, seeded by
``finetune.seed``, so it keeps the class and quality balance of the full training set and
every stratum keeps at least one image. Fraction 1 returns the set unchanged.
"""
from __future__ import annotations

import math

import pandas as pd

from comcl.common.errors import DataError
from comcl.common.seeding import rng_for


def strata(train: pd.DataFrame) -> pd.Series:
    label = train["label"].astype(str) if "label" in train else train["labels"].astype(str)
    quality = train["quality"].astype(str) if "quality" in train else ""
    return label + "|" + quality


def label_subset(train: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """A seeded, stratified ``fraction`` of ``train`` (rows in their original order)."""
    if fraction >= 1.0:
        return train
    if train.empty:
        raise DataError("finetune.label_fraction: the training set is empty")
    keep = []
    for key, part in train.groupby(strata(train), sort=True):
        n = max(1, math.ceil(fraction * len(part)))
        order = rng_for(seed, "label_fraction", key).permutation(len(part))
        keep.extend(part.index[order[:n]])
    return train.loc[sorted(keep)]
