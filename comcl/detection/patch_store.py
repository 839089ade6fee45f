"""The patch store: every lesion and healthy window cut once into one uint8 array.

``data/patches/store/patches.npy`` holds N x size x size x C (C = 3, or 1 for greyscale)
and ``index.parquet`` one row per patch: ``pool`` (HL, LL, HH, LH: the paper's four
pools), ``lesion`` (bool), ``image_id``, the window, ``lesion_class``, ``score`` and
``quality``. Training memory-maps the array (``np.load(..., mmap_mode="r")``), so patches
are read at memory speed and nothing is decoded during training.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from comcl.common import manifest, paths
from comcl.common.atomic import atomic_dir, atomic_file
from comcl.common.errors import DataError
from comcl.common.text import plural
from comcl.imaging.imagestore import ImageStore

POOLS = ("HL", "LL", "HH", "LH")
ARRAY = "patches.npy"
INDEX = "index.parquet"
WINDOW = ["x0", "y0", "x1", "y1"]


def build(lesion_boxes: str | Path, healthy_boxes: str | Path, degraded: str | Path,
          out: str | Path, figure: str | Path | None = None, progress: bool = True) -> dict:
    parts = []
    for path, lesion in ((lesion_boxes, True), (healthy_boxes, False)):
        df = pd.read_parquet(path)
        manifest.require_columns(df, ["image_id", "subset", "quality", "lesion_class", "score"]
                                 + WINDOW, str(path))
        parts.append(df.assign(lesion=lesion))
    index = pd.concat(parts, ignore_index=True)
    index = index.rename(columns={"subset": "pool"})
    index = index[["pool", "lesion", "image_id"] + WINDOW + ["lesion_class", "score", "quality"]]
    if index.empty:
        raise DataError(f"{lesion_boxes}, {healthy_boxes}: no windows to store")
    sides = set((index["x1"] - index["x0"]).tolist()) | set((index["y1"] - index["y0"]).tolist())
    if len(sides) != 1:
        raise DataError(f"{lesion_boxes}, {healthy_boxes}: windows of several sizes {sorted(sides)}")
    size = sides.pop()
    order = {p: i for i, p in enumerate(POOLS)}
    index = index.sort_values(["pool", "image_id", "y0", "x0"], key=lambda c: c.map(order)
                              if c.name == "pool" else c, kind="stable").reset_index(drop=True)
    store = ImageStore(Path(degraded) / paths.IMAGES)
    first = store.image(index["image_id"].iloc[0])
    channels = 1 if first.ndim == 2 else first.shape[2]
    with atomic_dir(out) as tmp:
        arr = np.lib.format.open_memmap(tmp / ARRAY, mode="w+", dtype=np.uint8,
                                        shape=(len(index), size, size, channels))
        groups = index.groupby("image_id", sort=False).indices
        for iid, rows in tqdm(groups.items(), desc="patches", unit="img", disable=not progress):
            img = store.image(iid)
            if img.ndim == 2:
                img = img[..., None]
            h, w = img.shape[:2]
            for r in rows:
                x0, y0, x1, y1 = (int(index.at[r, k]) for k in WINDOW)
                if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                    raise DataError(f"window {x0},{y0},{x1},{y1} of {iid} leaves the "
                                    f"{w}x{h} image")
                arr[r] = img[y0:y1, x0:x1]
        arr.flush()
        del arr
        manifest.write(index, tmp / INDEX)
    summary = {"patches": len(index), "size": int(size), "channels": int(channels),
               "per_pool": {p: int((index["pool"] == p).sum()) for p in POOLS}}
    if figure:
        draw_grid(Path(out), figure)
    return summary


def load(folder: str | Path) -> tuple[np.ndarray, pd.DataFrame]:
    folder = Path(folder)
    if not (folder / ARRAY).exists():
        raise DataError(f"{folder / ARRAY}: patch store not found; run `build_patches` first")
    return np.load(folder / ARRAY, mmap_mode="r"), pd.read_parquet(folder / INDEX)


POOL_NAMES = {"HL": "high quality, lesion", "LL": "low quality, lesion",
              "HH": "high quality, healthy", "LH": "low quality, healthy"}


def draw_grid(folder: Path, path: str | Path, per_row: int = 8) -> None:
    """The grid of ``grid_figure``, written atomically."""
    import matplotlib.pyplot as plt

    fig = grid_figure(folder, per_row)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=80, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)


def grid_figure(folder: Path, per_row: int = 8):
    """One row per pool (HL, LL, HH, LH; an empty pool says so): patches spread evenly
    over the pool, lesion patches titled with their class."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arr, index = load(folder)
    fig, axes = plt.subplots(len(POOLS), per_row, squeeze=False, layout="constrained",
                             figsize=(1.25 * per_row + 1.2, 1.5 * len(POOLS)))
    for r, pool in enumerate(POOLS):
        rows = np.flatnonzero(index["pool"].to_numpy() == pool)
        picks = rows[np.unique(np.linspace(0, len(rows) - 1, min(per_row, len(rows)))
                               .round().astype(int))] if len(rows) else []
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(picks):
                patch = arr[picks[c]]
                grey = patch.shape[2] == 1
                ax.imshow(patch[..., 0] if grey else patch, cmap="gray" if grey else None,
                          vmin=0, vmax=255)
                if index.at[picks[c], "lesion"]:
                    ax.set_title(str(index.at[picks[c], "lesion_class"]), fontsize=6, pad=2)
            else:
                for side in ax.spines.values():
                    side.set_visible(False)
            if c == 0:
                ax.set_ylabel(f"{pool}: {POOL_NAMES[pool]}\n"
                              f"{plural(len(rows), 'patch', 'patches')}", fontsize=7)
        if not len(rows):
            axes[r][0].text(0.05, 0.5, "(empty)", transform=axes[r][0].transAxes,
                            fontsize=8, va="center")
    size = arr.shape[1]
    fig.suptitle(f"patch store: {size} px windows, one row per pool", fontsize=9)
    return fig
