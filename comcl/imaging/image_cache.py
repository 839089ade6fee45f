"""Whole images resized once for training and evaluation, in a memory-mapped array.

``resized(store_dir, ids, size)`` decodes and resizes the images on a process pool into
an (N, size, size, C) uint8 array backed by a temporary file, so memory stays bounded
whatever the dataset size; the file goes when the array is closed (``close``).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from comcl.common.parallel import ordered_map
from comcl.imaging.imagestore import ImageStore

_STORES: dict[str, ImageStore] = {}


CHUNK = 32  # images per pool task: amortises the per-task overhead


def _load_one(store: ImageStore, iid: str, size: int) -> np.ndarray:
    img = store.image(iid)
    if img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img if img.ndim == 3 else img[..., None]


def _load(args) -> np.ndarray:
    folder, ids, size = args
    store = _STORES.get(folder) or _STORES.setdefault(folder, ImageStore(folder))
    return np.stack([_load_one(store, iid, size) for iid in ids])


class ResizedImages:
    def __init__(self, array: np.ndarray, tmpdir: str):
        self.array = array
        self._tmpdir = tmpdir

    def close(self) -> None:
        self.array = None
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def resized(store_dir: str | Path, ids: list[str], size: int, workers: int | None = None,
            desc: str = "images", progress: bool = True) -> ResizedImages:
    folder = str(store_dir)
    first = _load((folder, ids[:1], size))
    tmpdir = tempfile.mkdtemp(prefix="comcl-images-")
    arr = np.lib.format.open_memmap(Path(tmpdir) / "images.npy", mode="w+", dtype=np.uint8,
                                    shape=(len(ids), size, size, first.shape[3]))
    jobs = [(folder, ids[i:i + CHUNK], size) for i in range(0, len(ids), CHUNK)]
    if len(jobs) < 4:
        workers = 1  # not worth starting processes
    pos = 0
    for block in ordered_map(_load, jobs, workers, desc, progress=progress,
                             unit=f"x{CHUNK} img"):
        arr[pos:pos + len(block)] = block
        pos += len(block)
    arr.flush()
    return ResizedImages(arr, tmpdir)
