"""The ``split`` stage: validation carve-out and the four subsets HL, LL, HH, LH.

A validation split of ``split.val_fraction`` of the training images is drawn per stratum
(grade, or lesion/no lesion for multi-label, crossed with quality), with largest-remainder
rounding so the total is exact; when the manifest has a ``group`` column (patient),
whole groups go to validation so that no patient is in two splits. The remaining
training images form HL (high-quality lesion), LL (low-quality lesion), HH (high-quality
healthy) and LH (low-quality healthy).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from comcl.common import manifest
from comcl.common.atomic import atomic_dir, write_text
from comcl.common.errors import DataError
from comcl.common.params import Params
from comcl.common.seeding import rng_for
from comcl.common.text import plural

SUBSET_RULES = {"HL": ("high", True), "LL": ("low", True), "HH": ("high", False),
                "LH": ("low", False)}


def _stratum(df: pd.DataFrame) -> pd.Series:
    key = df["lesion"].astype(int).astype(str) if manifest.is_multilabel(df) \
        else df["label"].astype(str)
    return key + "|" + df["quality"]


def _quotas(sizes: dict[str, int], fraction: float) -> dict[str, int]:
    """Largest-remainder rounding of fraction * size per stratum to an exact total."""
    exact = {k: fraction * n for k, n in sizes.items()}
    quota = {k: math.floor(v) for k, v in exact.items()}
    rest = int(round(fraction * sum(sizes.values()))) - sum(quota.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - quota[k]), k))[:max(rest, 0)]:
        quota[k] += 1
    return quota


def carve_validation(train: pd.DataFrame, fraction: float, seed: int) -> pd.Series:
    """Boolean Series (index of ``train``): True for the validation images."""
    strata = _stratum(train)
    is_val = pd.Series(False, index=train.index)
    if "group" in train.columns:
        # Whole patients: each group's stratum is that of its first image (sorted by id).
        first = train.sort_values("image_id").groupby("group", sort=True).head(1)
        gsizes = train.groupby("group").size()
        gstrata = pd.Series(strata.loc[first.index].to_numpy(), index=first["group"].to_numpy())
        per = {k: int(gsizes[gstrata.index[gstrata == k]].sum()) for k in sorted(set(gstrata))}
        quota = _quotas(per, fraction)
        chosen = []
        for k in sorted(per):
            groups = np.sort(gstrata.index[gstrata == k].to_numpy(str))
            taken = 0
            for g in groups[rng_for(seed, "val", k).permutation(len(groups))]:
                size = int(gsizes[g])
                if abs(taken + size - quota[k]) < abs(taken - quota[k]):  # closer to quota
                    chosen.append(g)
                    taken += size
        is_val[train["group"].isin(chosen)] = True
        return is_val
    sizes = strata.value_counts().to_dict()
    quota = _quotas(sizes, fraction)
    for k in sorted(sizes):
        ids = train.index[strata == k]
        order = np.argsort(train.loc[ids, "image_id"].to_numpy(str), kind="stable")
        ids = ids[order]
        pick = rng_for(seed, "val", k).permutation(len(ids))[: quota[k]]
        is_val[ids[pick]] = True
    return is_val


def run(params: Params, degraded_manifest: str | Path, out: str | Path,
        metrics_path: str | Path | None) -> dict:
    fraction = params.number("split.val_fraction", 0.0, 1.0, lo_open=True, hi_open=True)
    seed = params.integer("split.seed")
    src = Path(degraded_manifest)
    df = manifest.read(src, splits=("train", "test"))
    train = df[df["split"] == "train"]
    test = df[df["split"] == "test"]
    for name, part in (("train", train), ("test", test)):
        if part.empty:
            raise DataError(f"{src}: the {name} split is empty")
    is_val = carve_validation(train, fraction, seed)
    val = train[is_val].assign(split="val")
    train = train[~is_val]
    if val.empty or train.empty:
        raise DataError(f"{src}: split.val_fraction={fraction} leaves an empty "
                        f"{'validation' if val.empty else 'training'} split "
                        f"({plural(len(train) + len(val), 'training image')})")
    summary: dict = {}
    with atomic_dir(out) as tmp:
        for name, (quality, lesion) in tqdm(SUBSET_RULES.items(), desc="split", unit="subset"):
            part = train[(train["quality"] == quality) & (train["lesion"] == lesion)]
            if part.empty:
                print(f"split: warning: subset {name} is empty (no {quality}-quality "
                      f"{'lesion' if lesion else 'healthy'} training image)")
            manifest.write(part, tmp / f"{name}.parquet")
            summary.setdefault("subsets", {})[name] = len(part)
        manifest.write(val, tmp / "val.parquet")
        manifest.write(test, tmp / "test.parquet")
    for name, part in (("train", train), ("val", val), ("test", test)):
        summary[name] = {"images": len(part),
                         "low_quality_fraction": round(float((part["quality"] == "low").mean()), 4),
                         "lesion_fraction": round(float(part["lesion"].mean()), 4)}
    if metrics_path:
        write_text(metrics_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
