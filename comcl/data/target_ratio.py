"""Which high-quality images `degrade` turns into low-quality ones, per split.

For each split of n images with n_low already low quality, ``round(target * n) - n_low``
high-quality images are drawn (seeded, independent of row order) so that the split's
low-quality fraction equals the target to within half an image.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from comcl.common.errors import ParamError
from comcl.common.seeding import rng_for
from comcl.common.text import plural


def choose_to_degrade(df: pd.DataFrame, target: float | None, seed: int) -> set[str]:
    if target is None:
        return set()
    chosen: set[str] = set()
    for split in sorted(df["split"].unique()):
        part = df[df["split"] == split]
        n = len(part)
        n_low = int((part["quality"] == "low").sum())
        want = int(round(target * n))
        if want < n_low:
            raise ParamError(
                "degrade.target_ratio",
                f"= {target} is below the {split} split's current low-quality fraction "
                f"{n_low / n:.4f} ({n_low} of {plural(n, 'image')}); degradation can only add "
                "low-quality images (use null to keep the native ratio)")
        high = np.sort(part.loc[part["quality"] == "high", "image_id"].to_numpy(str))
        pick = rng_for(seed, "choose", split).permutation(len(high))[: want - n_low]
        chosen.update(high[pick].tolist())
    return chosen
